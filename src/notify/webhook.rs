//! One webhook attempt: the destination checked against the fetch policy (again, at every
//! delivery), a signed POST through the guarded client (no proxy, no redirects followed,
//! a resolver that connects only to addresses the policy allows), 15 s at most.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use super::sign::signature_header;
use crate::fetch::Fetcher;

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// A delivery to make.
pub struct Delivery<'a> {
    pub url: &'a str,
    /// `msg_…`, the same on every attempt.
    pub msg_id: &'a str,
    /// Unix seconds of this attempt.
    pub timestamp: i64,
    pub body: &'a str,
    /// The secrets valid now (after a rotation, the new and the old one).
    pub secrets: Vec<&'a str>,
}

/// How the attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx.
    Accepted(u16),
    /// `410 Gone`: the receiver wants no more (the endpoint is disabled).
    Gone,
    /// Another status (a 3xx is not followed: it counts as a failure).
    Refused {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, reset, timed out…
    Unreachable(String),
    /// The destination is not allowed (now): never sent.
    NotAllowed(String),
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Accepted(s) | Answer::Refused { status: s, .. } => Some(*s),
            Answer::Gone => Some(410),
            Answer::Unreachable(_) | Answer::NotAllowed(_) => None,
        }
    }

    /// The failure in words, for the delivery log and the task's `last_error`.
    pub fn error(&self) -> Option<String> {
        match self {
            Answer::Accepted(_) => None,
            Answer::Gone => Some("the endpoint answered 410 Gone".into()),
            Answer::Refused { status, .. } => Some(format!("the endpoint answered HTTP {status}")),
            Answer::Unreachable(e) | Answer::NotAllowed(e) => Some(e.clone()),
        }
    }
}

/// Make one attempt; the answer and how long it took.
pub async fn send(fetcher: &Fetcher, d: &Delivery<'_>) -> (Answer, Duration) {
    let started = Instant::now();
    let answer = attempt(fetcher, d).await;
    (answer, started.elapsed())
}

async fn attempt(fetcher: &Fetcher, d: &Delivery<'_>) -> Answer {
    let url = match fetcher.check(d.url).await {
        Ok(u) => u,
        Err(e) => return Answer::NotAllowed(e.to_string()),
    };
    let signature = signature_header(&d.secrets, d.msg_id, d.timestamp, d.body);
    let request = fetcher
        .client()
        .post(url)
        .timeout(TIMEOUT)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("webhook-id", d.msg_id)
        .header("webhook-timestamp", d.timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.body.to_string());
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            match status {
                200..=299 => Answer::Accepted(status),
                410 => Answer::Gone,
                _ => Answer::Refused {
                    status,
                    retry_after,
                },
            }
        }
        Err(e) if e.is_timeout() => {
            Answer::Unreachable(format!("no answer within {} s", TIMEOUT.as_secs()))
        }
        Err(e) => Answer::Unreachable(describe(&e)),
    }
}

/// A transport error in words, without the URL (which may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<crate::fetch::BlockedAnswers>() {
            return "URL not allowed: the host name resolves to an address that is not allowed"
                .into();
        }
        source = s.source();
    }
    if e.is_connect() {
        "could not connect to the endpoint".into()
    } else {
        "the connection to the endpoint failed".into()
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let later = std::time::SystemTime::now() + Duration::from_secs(3600);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(d > Duration::from_secs(3500) && d <= Duration::from_secs(3600));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
