//! Account newtypes. Each `parse` is the only way to build the value, so a `Username`
//! anywhere in the code is a valid one.

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The first character of `s` that is invisible or acts on the text around it: a format
/// character (general category Cf, e.g. U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH
/// SPACE) or a control character (Cc). In a name they make one look like another, or
/// reorder what is shown next to it.
fn hidden_character(s: &str) -> Option<char> {
    s.chars().find(|c| {
        matches!(
            c.general_category(),
            GeneralCategory::Format | GeneralCategory::Control
        )
    })
}

/// Refuses `s` if it has a [`hidden_character`], naming it by code point only: printed, it
/// would garble the message.
fn refuse_hidden(what: &str, s: &str) -> Result<(), String> {
    match hidden_character(s) {
        Some(c) => Err(format!(
            "the {what} must not contain invisible or control characters (U+{:04X} found)",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// 3–64 characters of `[A-Za-z0-9_.-]`. Case-insensitive: `alice` and `ALICE` are the same
/// user (the database compares `lower(username)`); the spelling given at signup is kept for
/// display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, String> {
        refuse_hidden("user name", s)?;
        let len = s.chars().count();
        if !(3..=64).contains(&len) {
            return Err("username must be 3 to 64 characters long".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("username may contain only letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid address: one `@`, a non-empty local part without spaces, and a
/// domain of dot-separated labels (letters, digits, hyphens) with at least one dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, String> {
        refuse_hidden("e-mail address", s)?;
        let s = s.trim();
        let err = || format!("{s:?} is not a valid e-mail address");
        if s.len() > 254 {
            return Err(err());
        }
        let (local, domain) = s.split_once('@').ok_or_else(err)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ','))
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(err());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err(err());
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The key used for case-insensitive uniqueness and look-up.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// At least 8 characters with an upper-case letter, a lower-case letter and a digit.
pub struct Password(String);

/// [`Password::parse`]'s rules as the API documents them (a JSON Schema `pattern`). The
/// length bounds are in the pattern rather than `minLength`/`maxLength`: with those beside
/// three lookaheads, schemathesis spent ~160 s building a 1024-character boundary value.
pub const PASSWORD_PATTERN: &str = "^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9]).{8,1024}$";

impl Password {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.chars().count() < 8 {
            return Err("password must be at least 8 characters long".into());
        }
        if s.chars().count() > 1024 {
            return Err("password must be at most 1024 characters long".into());
        }
        if !s.chars().any(|c| c.is_uppercase())
            || !s.chars().any(|c| c.is_lowercase())
            || !s.chars().any(|c| c.is_ascii_digit())
        {
            return Err(
                "password must contain an upper-case letter, a lower-case letter and a digit"
                    .into(),
            );
        }
        Ok(Self(s.to_string()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("admin").is_ok());
        assert!(Username::parse("a.b-c_d9").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse("ñandú").is_err());
    }

    #[test]
    fn hidden_characters_are_refused_by_code_point() {
        for (s, code) in [
            ("ad\u{202E}nim", "U+202E"),
            ("ad\u{200B}min", "U+200B"),
            ("\u{FEFF}admin", "U+FEFF"),
            ("ad\u{7}min", "U+0007"),
            ("ad\u{AD}min", "U+00AD"),
        ] {
            let e = Username::parse(s).unwrap_err();
            assert!(e.contains("user name") && e.contains(code), "{e}");
            let e = EmailAddress::parse(&format!("{s}@example.com")).unwrap_err();
            assert!(e.contains("e-mail address") && e.contains(code), "{e}");
            assert!(hidden_character(s).is_some());
        }
        // Letters of other scripts are not hidden (the user name rule is ASCII on its own).
        assert_eq!(hidden_character("ñandú-名前"), None);
    }

    #[test]
    fn emails() {
        for ok in ["admin@gmail.com", "A.B+tag@sub.example.org", "x@a-b.co"] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-x.com",
            "a@x..com",
            ".a@x.com",
            "a..b@x.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EmailAddress::parse("Admin@Gmail.COM").unwrap().normalized(),
            "admin@gmail.com"
        );
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("Admin123").is_ok());
        assert!(Password::parse("Adm1n").is_err());
        assert!(Password::parse("admin1234").is_err());
        assert!(Password::parse("ADMIN1234").is_err());
        assert!(Password::parse("Adminadmin").is_err());
        // The bounds the API schema states (8 and 1024 characters, counted as characters).
        assert!(Password::parse("Admin12").is_err());
        assert!(Password::parse(&format!("Aa1{}", "é".repeat(1021))).is_ok());
        assert!(Password::parse(&format!("Aa1{}", "é".repeat(1022))).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("Admin123").unwrap()),
            "Password(****)"
        );
    }
}

/// What an API key may do: read only, or everything its owner can (but manage keys).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum KeyScope {
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "read-write")]
    ReadWrite,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::ReadWrite => "read-write",
        }
    }
    pub fn parse(s: &str) -> Option<KeyScope> {
        [KeyScope::Read, KeyScope::ReadWrite]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}
