//! Pure planning of the `convert` profile: from (probe result, options,
//! paths) to one ffmpeg argv producing `{stem}.{ext}`.
//!
//! ```text
//! ffmpeg -nostdin -hide_banner -loglevel error
//!   <safe input args> [-ss START] [-to END] -i file:INPUT
//!   -map 0:V [-vf FILTERS | -filter_complex GIF_GRAPH] <video codec args>
//!   -map 0:A <audio codec args>
//!   -f MUXER -progress pipe:1 -nostats -y file:OUT
//! ```
//!
//! When the input's streams already fit the target container and no option
//! changes anything ([`fits_container`], no trim, no quality, ...), the run is
//! a remux: `-c copy`, no decoding at all.
//!
//! The codec and container tables are shared with `compress`: [`super::formats`],
//! [`super::codecs`]; the single-output run is [`super::encode`].

use serde::{Deserialize, Serialize};

use super::args::secs;
use super::codecs::{Purpose, Quality, Rate, VideoRate, same_rate};
use super::encode::{Job, audio_encode, kept_streams, render, video_encode};
use super::formats::{Format, fits_container};
use super::geometry::validate_max_height;
use super::planner::{OptionError, Paths, Plan, PlanError, checked_duration};
use super::probe::{MediaInfo, VideoStream};

/// Options of the `convert` profile. Unknown fields are refused; call
/// [`ConvertOptions::validate`] after deserialising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertOptions {
    pub format: Format,
    /// Re-encode with this preset (asks for re-encoding even when the
    /// streams would fit the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Maximum output height, `144..=4320`; never upscales. Video formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Output frames per second, `1..=60` (`1..=30` for gif). Video formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<Rate>,
    /// Trim: first second kept, `>= 0`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::units::opt_seconds"
    )]
    pub start: Option<f64>,
    /// Trim: end second (exclusive), `> start`; past the end means the end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::units::opt_seconds"
    )]
    pub end: Option<f64>,
    /// Audio bitrate like `128k`, `8k..=512k`. Lossy formats with audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_bitrate: Option<String>,
}

impl ConvertOptions {
    /// The profile's name, as the API spells it.
    pub const NAME: &str = "convert";

    /// The options' JSON Schema: one branch per kind of format, since which options
    /// apply (and `fps`'s limit) depends on it.
    pub fn schema() -> serde_json::Value {
        use super::schema::{documented, enum_of, max_height, object, rate, time};
        use serde_json::json;
        let formats =
            |keep: fn(Format) -> bool| enum_of(Format::ALL.into_iter().filter(|f| keep(*f)));
        let format = |keep: fn(Format) -> bool, what: &str| {
            documented(
                formats(keep),
                &format!("Target format ({what})."),
                None::<()>,
            )
        };
        let quality = documented(
            enum_of([Quality::Low, Quality::Medium, Quality::High]),
            "Re-encode with this preset, even when the streams would fit the container.",
            None::<()>,
        );
        let audio_bitrate = json!({
            "type": "string",
            "pattern": "^([89]|[1-9][0-9]|[1-4][0-9][0-9]|50[0-9]|51[0-2])[kK]$",
            "description": "Audio bitrate like `128k`, from 8k to 512k.",
            "examples": ["128k"]
        });
        let start = time("Trim: first second kept");
        let end = time("Trim: end (exclusive), after `start`; past the end means the end");
        let branch = |title: &str, props: serde_json::Value| {
            let mut o = object(title, props);
            o["title"] = json!(title);
            o["required"] = json!(["format"]);
            o
        };
        let video = |f: Format| !f.is_audio() && f != Format::Gif;
        let lossy = |f: Format| f.is_audio() && !f.is_lossless_audio();
        json!({
            "description": "Convert to another container (and its default codecs); a remux \
                when the streams already fit and nothing else is asked for.",
            "oneOf": [
                branch("video", json!({
                    "format": format(video, "video"), "quality": quality,
                    "max_height": max_height(None), "fps": rate(60, "Output frames per second"),
                    "start": start, "end": end, "audio_bitrate": audio_bitrate
                })),
                branch("gif", json!({
                    "format": format(|f| f == Format::Gif, "animated GIF, no audio"),
                    "max_height": max_height(None),
                    "fps": rate(30, "Output frames per second (default: at most 15)"),
                    "start": start, "end": end
                })),
                branch("lossy audio", json!({
                    "format": format(lossy, "audio only"), "quality": quality,
                    "start": start, "end": end, "audio_bitrate": audio_bitrate
                })),
                branch("lossless audio", json!({
                    "format": format(Format::is_lossless_audio, "lossless audio only"),
                    "start": start, "end": end
                }))
            ]
        })
    }

    /// Options asking for nothing but the format.
    pub fn new(format: Format) -> Self {
        ConvertOptions {
            format,
            quality: None,
            max_height: None,
            fps: None,
            start: None,
            end: None,
            audio_bitrate: None,
        }
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        let format = self.format;
        if let Some(h) = self.max_height {
            if format.is_audio() {
                return Err(OptionError::new(
                    "max_height",
                    format!("does not apply to the audio format {format}"),
                ));
            }
            validate_max_height(h)?;
        }
        if let Some(fps) = self.fps {
            if format.is_audio() {
                return Err(OptionError::new(
                    "fps",
                    format!("does not apply to the audio format {format}"),
                ));
            }
            let max = if format == Format::Gif { 30.0 } else { 60.0 };
            if !(1.0..=max).contains(&fps.value()) {
                return Err(OptionError::new(
                    "fps",
                    format!("must be between 1 and {max} for {format}"),
                ));
            }
        }
        validate_trim(self.start, self.end)?;
        if self.quality.is_some() && (format == Format::Gif || format.is_lossless_audio()) {
            return Err(OptionError::new(
                "quality",
                format!("does not apply to {format}"),
            ));
        }
        if let Some(bitrate) = &self.audio_bitrate {
            if format == Format::Gif || format.is_lossless_audio() {
                return Err(OptionError::new(
                    "audio_bitrate",
                    format!("does not apply to {format}"),
                ));
            }
            parse_kbps(bitrate)?;
        }
        Ok(())
    }

    /// Whether `max_height` or `fps` change the video stream.
    fn changes_video(&self, video: &VideoStream) -> bool {
        self.max_height.is_some_and(|m| m < video.display_height())
            || self
                .fps
                .is_some_and(|f| video.fps.is_none_or(|s| !same_rate(s, f.value())))
    }

    /// The validated audio bitrate in kbit/s.
    fn audio_kbps(&self) -> Result<Option<u32>, OptionError> {
        self.audio_bitrate.as_deref().map(parse_kbps).transpose()
    }
}

fn validate_trim(start: Option<f64>, end: Option<f64>) -> Result<(), OptionError> {
    if let Some(s) = start
        && (!s.is_finite() || s < 0.0)
    {
        return Err(OptionError::new(
            "start",
            "must be a number of seconds >= 0",
        ));
    }
    if let Some(e) = end {
        if !e.is_finite() || e <= 0.0 {
            return Err(OptionError::new("end", "must be a number of seconds > 0"));
        }
        if let Some(s) = start
            && e <= s
        {
            return Err(OptionError::new("end", "must be after `start`"));
        }
    }
    Ok(())
}

/// `"128k"` → 128; `8k..=512k`.
pub fn parse_kbps(value: &str) -> Result<u32, OptionError> {
    let err = || OptionError::new("audio_bitrate", "must look like 128k, between 8k and 512k");
    let digits = value
        .strip_suffix('k')
        .or_else(|| value.strip_suffix('K'))
        .ok_or_else(err)?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let kbps: u32 = digits.parse().map_err(|_| err())?;
    if (8..=512).contains(&kbps) {
        Ok(kbps)
    } else {
        Err(err())
    }
}

/// Trim window `(start, end, expected duration)`; errors name the option.
pub(crate) fn trim_window(
    duration: f64,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<(Option<f64>, Option<f64>, f64), PlanError> {
    checked_duration(duration)?;
    let start = start.filter(|s| *s > 0.0);
    let end = end.filter(|e| *e < duration);
    let from = start.unwrap_or(0.0);
    let to = end.unwrap_or(duration);
    if from >= duration {
        return Err(OptionError::new(
            "start",
            format!("must be before the end of the media ({} s)", secs(duration)),
        )
        .into());
    }
    Ok((start, end, to - from))
}

/// Plans the `convert` profile: one ffmpeg run writing `{stem}.{ext}`.
pub fn plan_convert(
    info: &MediaInfo,
    opts: &ConvertOptions,
    paths: &Paths,
    stem: &str,
) -> Result<Plan, PlanError> {
    let job = convert_job(info, opts)?;
    render(&job, paths, stem)
}

/// The decisions of a conversion (pure, before any argv).
pub(crate) fn convert_job(info: &MediaInfo, opts: &ConvertOptions) -> Result<Job, PlanError> {
    opts.validate()?;
    let format = opts.format;
    let (start, end, expected_duration) = trim_window(info.duration, opts.start, opts.end)?;
    let (video, audio) = kept_streams(info, format)?;
    let asks_reencode = opts.quality.is_some()
        || opts.audio_bitrate.is_some()
        || start.is_some()
        || end.is_some()
        || video.is_some_and(|v| opts.changes_video(v));
    let remux = !asks_reencode && fits_container(info, format);

    let (vcodec, acodec) = format.codecs();
    let quality = opts.quality.unwrap_or_default();
    let (video_enc, size) = match (video, vcodec) {
        (Some(v), _) if remux => (None, (v.width, v.height)),
        (Some(v), Some(codec)) => {
            let rate = VideoRate::Quality(quality, Purpose::Convert);
            let enc = video_encode(v, codec, rate, opts.max_height, opts.fps)?;
            let size = (enc.width, enc.height);
            (Some(enc), size)
        }
        _ => (None, (0, 0)),
    };
    let audio_enc = match (audio, acodec) {
        (Some(a), Some(codec)) if !remux => {
            let kbps = opts
                .audio_kbps()?
                .or_else(|| codec.preset_kbps(quality, Purpose::Convert));
            Some(audio_encode(a.channels, codec, kbps))
        }
        _ => None,
    };
    Ok(Job {
        format,
        remux,
        video_index: video.map(|v| v.index),
        audio_index: audio.map(|a| a.index),
        video: video_enc,
        audio: audio_enc,
        start,
        end,
        expected_duration,
        size,
    })
}

#[cfg(test)]
mod tests;
