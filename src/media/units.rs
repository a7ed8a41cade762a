//! Values people type into options, read the way they type them and echoed the way the
//! API shows them: seconds (`90`, `90.5`, `"1:30"`, `"00:01:30.500"`) and frame rates
//! (`24`, `29.97`, `"30000/1001"`).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What a time option accepts, for error messages and the schema.
pub const TIME_WORDS: &str = "a number of seconds or a time like \"00:01:30.5\"";

/// `HH:MM:SS(.mmm)`, `MM:SS(.mmm)` or plain seconds → seconds. Minutes and seconds after a
/// colon are below 60; `None` for anything else.
pub fn parse_time(text: &str) -> Option<f64> {
    let text = text.trim();
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (last, whole) = parts.split_last()?;
    let seconds = parse_decimal(last)?;
    if !whole.is_empty() && seconds >= 60.0 {
        return None;
    }
    let mut total = seconds;
    for (i, part) in whole.iter().rev().enumerate() {
        if !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 6 {
            return None;
        }
        let n: f64 = part.parse().ok()?;
        // The field before the seconds is minutes (below 60 when hours precede it).
        if i == 0 && whole.len() == 2 && n >= 60.0 {
            return None;
        }
        total += n * 60f64.powi(i as i32 + 1);
    }
    Some(total)
}

/// `12`, `12.5`: digits with at most one dot, no sign, no exponent.
fn parse_decimal(text: &str) -> Option<f64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 9 || !digits(int) || !digits(frac) || frac.len() > 9 {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    text.parse().ok()
}

/// Seconds as the API shows them: whole values as integers (`20`, not `20.0`).
pub fn serialize_seconds<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// A number of seconds, read from a number or a time string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_seconds(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(TIME_WORDS)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_time(v)
                    .map(Seconds)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// `#[serde(with = "seconds")]` for an `f64` option.
pub mod seconds {
    use super::*;
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        serialize_seconds(v, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Seconds::deserialize(d).map(|s| s.0)
    }
}

/// `#[serde(with = "opt_seconds")]` for an `Option<f64>` option.
pub mod opt_seconds {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Seconds).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<Seconds>::deserialize(d)?.map(|s| s.0))
    }
}

/// `#[serde(with = "seconds_list")]` for an `Option<Vec<f64>>` option.
pub mod seconds_list {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|times| times.iter().copied().map(Seconds).collect::<Vec<_>>())
            .serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        let list = Option::<Vec<Seconds>>::deserialize(d)?;
        Ok(list.map(|l| l.into_iter().map(|s| s.0).collect()))
    }
}

/// What a frame-rate option accepts, for error messages and the schema.
pub const RATE_WORDS: &str = "frames per second like 24, 29.97 or \"30000/1001\"";

/// A frame rate as ffmpeg writes it (`25`, `30000/1001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    num: u32,
    den: u32,
}

impl Rate {
    pub const fn whole(n: u32) -> Rate {
        Rate { num: n, den: 1 }
    }

    pub const fn fraction(num: u32, den: u32) -> Rate {
        Rate { num, den }
    }

    pub fn value(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// A typed rate: `24`, `29.97`, `23.976` (the NTSC rates become their exact
    /// `N000/1001`), `"30000/1001"`. At most 3 decimals; `None` for zero or nonsense.
    pub fn parse(text: &str) -> Option<Rate> {
        let text = text.trim();
        let rate = match text.split_once('/') {
            Some((n, d)) => {
                let (num, den) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
                reduced(num, den)?
            }
            None => Self::from_decimal(parse_decimal(text)?)?,
        };
        (rate.num > 0).then_some(rate)
    }

    /// `29.97` → `30000/1001`; other values to the nearest 1/1000.
    pub fn from_decimal(v: f64) -> Option<Rate> {
        if !v.is_finite() || v <= 0.0 || v > 1000.0 {
            return None;
        }
        let ntsc = (v * 1.001).round();
        if v.fract() != 0.0 && (ntsc / 1.001 - v).abs() < 0.005 {
            return reduced(ntsc as u64 * 1000, 1001);
        }
        reduced((v * 1000.0).round() as u64, 1000)
    }
}

/// `num/den` in lowest terms, both fitting in `u32` and `den > 0`.
fn reduced(num: u64, den: u64) -> Option<Rate> {
    if den == 0 {
        return None;
    }
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let g = a.max(1);
    Some(Rate {
        num: u32::try_from(num / g).ok()?,
        den: u32::try_from(den / g).ok()?,
    })
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Whole rates as numbers (`24`), others as the exact fraction (`"30000/1001"`).
impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.den == 1 {
            s.serialize_u32(self.num)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(RATE_WORDS)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Rate::from_decimal(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Rate::whole)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Err(E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                Rate::parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_type_them() {
        for (text, want) in [
            ("90", 90.0),
            ("90.5", 90.5),
            ("1:30", 90.0),
            ("01:30.250", 90.25),
            ("00:01:30", 90.0),
            ("1:02:03.5", 3723.5),
            ("100:00:00", 360_000.0),
        ] {
            assert_eq!(parse_time(text), Some(want), "{text}");
        }
        for bad in [
            "", ":30", "1:60", "1:61:00", "-5", "1e3", "a:b", "1:2:3:4", "5.", "1::2",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn seconds_deserialize_from_numbers_and_strings_and_echo_as_numbers() {
        let s: Seconds = serde_json::from_str("\"00:00:20\"").unwrap();
        assert_eq!(s, Seconds(20.0));
        assert_eq!(serde_json::to_string(&s).unwrap(), "20");
        let s: Seconds = serde_json::from_str("2.5").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "2.5");
        let e = serde_json::from_str::<Seconds>("true")
            .unwrap_err()
            .to_string();
        assert!(e.contains(TIME_WORDS), "{e}");
    }

    #[test]
    fn rates_accept_decimals_and_fractions() {
        let ntsc = Rate::fraction(30000, 1001);
        for (json, want) in [
            ("24", Rate::whole(24)),
            ("29.97", ntsc),
            ("\"29.97\"", ntsc),
            ("\"30000/1001\"", ntsc),
            ("23.976", Rate::fraction(24000, 1001)),
            ("59.94", Rate::fraction(60000, 1001)),
            ("12.5", Rate::fraction(25, 2)),
            ("\"50/2\"", Rate::whole(25)),
        ] {
            assert_eq!(serde_json::from_str::<Rate>(json).unwrap(), want, "{json}");
        }
        for bad in ["0", "-1", "\"1/0\"", "\"abc\"", "true", "\"0/5\""] {
            assert!(serde_json::from_str::<Rate>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&ntsc).unwrap(), "\"30000/1001\"");
        assert_eq!(serde_json::to_string(&Rate::whole(24)).unwrap(), "24");
        assert_eq!(ntsc.to_string(), "30000/1001");
    }
}
