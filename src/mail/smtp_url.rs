//! `REELFORGE_SMTP_URL`, parsed once in `Settings::resolve`:
//!
//! - `smtp://[USER:PASSWORD@]HOST[:PORT]`: STARTTLS required (port 587 by default);
//!   `?tls=starttls` says the same explicitly;
//! - `smtps://[USER:PASSWORD@]HOST[:PORT]`: TLS from the first byte (port 465 by default);
//! - `smtp://HOST[:PORT]?tls=none`: plain text, only to a loopback host (`127.0.0.0/8`,
//!   `::1`, `localhost`), where nothing crosses a network.
//!
//! User and password are percent-decoded. Pure: no I/O, and no error repeats the URL or the
//! password (the URL is a secret setting).

use std::net::IpAddr;

use lettre::transport::smtp::authentication::Credentials;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// A plain connection upgraded with STARTTLS before anything else is said; a server
    /// that does not offer it is refused.
    StartTls,
    /// TLS from the first byte (`smtps://`, "implicit TLS").
    Tls,
    /// No encryption at all: loopback only.
    Plain,
}

impl SmtpSecurity {
    /// `starttls`, `tls` or `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::Plain => "plain",
        }
    }
}

impl std::fmt::Display for SmtpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked `REELFORGE_SMTP_URL`. `Debug` and `Display` never show the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// A name, or an IP address without brackets.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// User and password for `AUTH`, when the URL has them.
    pub credentials: Option<Credentials>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

/// `HOST:PORT (security)`, e.g. `smtp.example.com:587 (starttls)`; `[::1]:25 (plain)`.
impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{} ({})", self.host, self.port, self.security)
        } else {
            write!(f, "{}:{} ({})", self.host, self.port, self.security)
        }
    }
}

impl SmtpUrl {
    /// Parse and check `text`. The error is a sentence that neither repeats the URL nor
    /// the password.
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
        let default_security = match url.scheme() {
            "smtp" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::Tls,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: use smtp:// (STARTTLS), smtps:// (TLS) or \
                     smtp://…?tls=none (plain text, loopback only)"
                ));
            }
        };
        let security = tls_parameter(&url, default_security)?;
        let host = host_of(&url)?;
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(
                "an SMTP URL has no path or fragment: smtp://USER:PASSWORD@HOST:PORT".into(),
            );
        }
        if security == SmtpSecurity::Plain && !is_loopback(&host) {
            return Err(format!(
                "tls=none (plain text) is only allowed to a loopback host (127.0.0.1, ::1, \
                 localhost), not {host:?}: anyone on the way could read the password and the \
                 mail; use smtp:// (STARTTLS) or smtps:// (TLS)"
            ));
        }
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Plain => 25,
        });
        Ok(SmtpUrl {
            host,
            port,
            security,
            credentials: credentials(&url)?,
        })
    }
}

/// The `tls` query parameter against the scheme's default; no other parameter exists.
fn tls_parameter(url: &url::Url, default: SmtpSecurity) -> Result<SmtpSecurity, String> {
    let mut security = default;
    for (key, value) in url.query_pairs() {
        if key != "tls" {
            return Err(format!(
                "unknown parameter {key:?}: the only one is tls=starttls|tls|none"
            ));
        }
        let wanted = match value.as_ref() {
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            "none" => SmtpSecurity::Plain,
            other => {
                return Err(format!(
                    "tls={other:?} is not a choice: use tls=starttls, tls=tls (or smtps://) or \
                     tls=none"
                ));
            }
        };
        if default == SmtpSecurity::Tls && wanted != SmtpSecurity::Tls {
            return Err(format!(
                "smtps:// is TLS from the first byte; tls={value} contradicts it (use smtp:// \
                 for STARTTLS or plain text)"
            ));
        }
        security = wanted;
    }
    Ok(security)
}

/// The host as a resolver and a certificate check want it: a name in lower case, or an IP
/// address without brackets.
fn host_of(url: &url::Url) -> Result<String, String> {
    // smtp: is not a "special" scheme, so the url crate keeps names (and IPv4 literals) as
    // opaque text; IPv6 literals come parsed.
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
        None => String::new(),
    };
    if host.is_empty() {
        return Err("no host: use e.g. smtp://USER:PASSWORD@smtp.example.com:587".into());
    }
    if host.contains('%') || !host.is_ascii() {
        return Err(format!(
            "{host:?} is not a host name (international names in their xn-- form)"
        ));
    }
    Ok(host)
}

/// Whether `host` is this machine: `localhost`, `127.0.0.0/8` or `::1` (also as a
/// v4-mapped address). Names other than `localhost` do not count, whatever they resolve to.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// User and password, percent-decoded; both or neither.
fn credentials(url: &url::Url) -> Result<Option<Credentials>, String> {
    let user = decode(url.username(), "user name")?;
    let password = url.password().map(|p| decode(p, "password")).transpose()?;
    match (user.is_empty(), password) {
        (true, None) => Ok(None),
        (false, Some(password)) if !password.is_empty() => {
            Ok(Some(Credentials::new(user, password)))
        }
        (false, _) => Err(
            "a user name without a password: give both (smtp://USER:PASSWORD@HOST), with \
             reserved characters percent-encoded"
                .into(),
        ),
        (true, Some(_)) => {
            Err("a password without a user name: give both (smtp://USER:PASSWORD@HOST)".into())
        }
    }
}

/// Percent-decoded UTF-8; the error names the part, never its value.
fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("the {what} is not UTF-8 once percent-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> SmtpUrl {
        SmtpUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_three_forms_and_their_default_ports() {
        let u = ok("smtp://user:pass@smtp.example.com");
        assert_eq!(
            (u.host.as_str(), u.port, u.security),
            ("smtp.example.com", 587, SmtpSecurity::StartTls)
        );
        assert_eq!(
            u.credentials,
            Some(Credentials::new("user".into(), "pass".into()))
        );
        let u = ok("smtp://user:pass@SMTP.Example.com:2525?tls=starttls");
        assert_eq!(
            (u.host.as_str(), u.port, u.security),
            ("smtp.example.com", 2525, SmtpSecurity::StartTls)
        );
        let u = ok("smtps://mail.example.com");
        assert_eq!((u.port, u.security), (465, SmtpSecurity::Tls));
        assert_eq!(u.credentials, None);
        assert_eq!(ok("smtps://mail.example.com:4650?tls=tls").port, 4650);
        assert_eq!(
            ok("smtp://mail.example.com?tls=tls").security,
            SmtpSecurity::Tls
        );
        for local in [
            "smtp://127.0.0.1:2525?tls=none",
            "smtp://127.1.2.3?tls=none",
            "smtp://[::1]:25?tls=none",
            "smtp://LOCALHOST?tls=none",
            "smtp://u:p@localhost:1025?tls=none",
        ] {
            assert_eq!(ok(local).security, SmtpSecurity::Plain, "{local}");
        }
        assert_eq!(ok("smtp://[::1]:25?tls=none").host, "::1");
        assert_eq!(ok("smtp://127.0.0.1?tls=none").port, 25);
        assert_eq!(
            ok("smtp://[::1]:2525?tls=none").to_string(),
            "[::1]:2525 (plain)"
        );
        assert_eq!(
            ok("smtp://a:b@mx.example.com").to_string(),
            "mx.example.com:587 (starttls)"
        );
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let u = ok("smtp://me%40example.com:p%40ss%3Aw%2Frd%20x@mx.example.com");
        assert_eq!(
            u.credentials,
            Some(Credentials::new(
                "me@example.com".into(),
                "p@ss:w/rd x".into()
            ))
        );
    }

    #[test]
    fn plain_text_is_refused_beyond_loopback() {
        for remote in [
            "smtp://mx.example.com?tls=none",
            "smtp://10.0.0.5:25?tls=none",
            "smtp://[2001:db8::1]?tls=none",
            "smtp://localhost.example.com?tls=none",
            "smtp://0.0.0.0?tls=none",
        ] {
            let e = SmtpUrl::parse(remote).unwrap_err();
            assert!(
                e.contains("only allowed to a loopback host"),
                "{remote}: {e}"
            );
        }
    }

    #[test]
    fn mistakes_are_named_without_the_password() {
        for (text, needle) in [
            ("http://u:hunter2@mx.example.com", "unsupported scheme"),
            ("smtp://u:hunter2@mx.example.com?tls=maybe", "not a choice"),
            (
                "smtp://u:hunter2@mx.example.com?starttls=1",
                "unknown parameter",
            ),
            ("smtps://u:hunter2@mx.example.com?tls=none", "contradicts"),
            ("smtp://u:hunter2@mx.example.com/inbox", "no path"),
            ("smtp://u@mx.example.com", "without a password"),
            ("smtp://:hunter2@mx.example.com", "without a user name"),
            ("smtp://u:hunter2@", "empty host"),
            ("smtp:mx.example.com", "no host"),
            ("smtp://u:hunter2@mx.example.com:99999", "not a URL"),
            ("smtp://u:%ff%fe@mx.example.com", "not UTF-8"),
            ("not a url at all hunter2", "not a URL"),
        ] {
            let e = SmtpUrl::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains("hunter2"), "{text}: {e}");
        }
        let u = ok("smtp://user:hunter2@mx.example.com");
        assert!(!format!("{u:?} {u}").contains("hunter2"));
    }

    #[test]
    fn loopback_is_this_machine_only() {
        for yes in [
            "localhost",
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "example.com",
            "localhost.",
            "mylocalhost",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
