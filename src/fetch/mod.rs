//! Guarded fetching of user-supplied URLs (SSRF protection).
//!
//! Every URL that the service fetches on a user's behalf goes through the same rules
//! (`POST /api/tasks` with a `url`):
//!
//! * only `http` and `https`;
//! * no credentials in the URL (`http://user:pass@host/`): they would be stored in the task
//!   object and logs, reqwest would turn them into an `Authorization` header, and the
//!   `trusted@evil` form is a classic way to confuse readers of the URL;
//! * the host may not be, or resolve to, a loopback, private, link-local, CGNAT, multicast,
//!   unspecified, broadcast, documentation or otherwise reserved address, including IPv6 forms
//!   that embed such an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4);
//! * names are rejected if *any* answer is blocked at submission time ([`check_url`]), and the
//!   HTTP client resolves names through a resolver that drops blocked answers, so a name that
//!   re-binds to an internal address between the check and the connection still cannot reach it;
//! * IP-literal hosts never reach a custom resolver in reqwest, so they are checked explicitly,
//!   on the first request and again on every redirect hop (redirects are followed by hand);
//! * no proxy from the environment; size and time are capped while streaming.
//!
//! `REELFORGE_FETCH_ALLOW` ([`AllowList`]) lifts the address rules for listed host names,
//! addresses and networks (tests and private deployments). It never lifts the scheme or
//! credential rules.
//!
//! Error messages name the category of a refused address ("loopback", "private", ...) but never
//! an address the user did not type: a name's answers and redirect targets are not echoed.
//!
//! Layout: `policy` holds the rules (address classes, [`AllowList`], [`check_url`]); `client`
//! applies them to HTTP ([`Fetcher`]); `filename` turns response headers into a safe name hint.
//! This module holds the types they share: [`FetchPolicy`] and [`FetchError`].

use crate::domain::ErrorCode;
use std::time::Duration;

mod client;
mod filename;
mod policy;

pub use client::{BlockedAnswers, Fetched, Fetcher};
pub use policy::{AllowList, blocked_reason, check_url};

/// Limits applied to every fetch.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub allow: AllowList,
    /// Largest accepted body, in bytes (a body of exactly this size is accepted).
    pub max_bytes: u64,
    /// TCP connect timeout (also bounds each host-name lookup made by the checks).
    pub connect_timeout: Duration,
    /// Deadline for the whole fetch: every redirect hop, the headers and the body.
    pub total_timeout: Duration,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow: AllowList::default(),
            max_bytes: 2 * 1024 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30 * 60),
            max_redirects: 10,
        }
    }
}

/// Why a URL was refused or a fetch failed. `Display` is safe to show to the user.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The text is not a usable absolute URL.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// Scheme, credentials or target address refused by policy.
    #[error("URL not allowed: {0}")]
    NotAllowed(String),
    /// Name resolution, connection or transfer failure.
    #[error("fetch failed: {0}")]
    Network(String),
    /// More than `max_redirects` redirects.
    #[error("fetch failed: more than {max} redirects")]
    TooManyRedirects { max: usize },
    /// A redirect without a usable `Location`.
    #[error("fetch failed: {0}")]
    BadRedirect(String),
    /// The total (or a lookup) timeout elapsed.
    #[error("fetch timed out")]
    Timeout,
    /// Announced or streamed body larger than `max_bytes`.
    #[error("input is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Final answer was not 2xx (or was a 3xx that is not a redirect).
    #[error("remote server answered HTTP {status}")]
    HttpStatus { status: u16 },
    /// Writing the destination file failed.
    #[error("fetch failed: could not store the downloaded data")]
    Io(#[source] std::io::Error),
    /// Stopped by its caller (the task was cancelled or deleted).
    #[error("fetch cancelled")]
    Cancelled,
}

impl FetchError {
    /// Stable snake_case error code for API responses and task errors.
    pub fn code(&self) -> ErrorCode {
        match self {
            FetchError::InvalidUrl(_) => ErrorCode::InvalidUrl,
            FetchError::NotAllowed(_) => ErrorCode::UrlNotAllowed,
            FetchError::Network(_)
            | FetchError::TooManyRedirects { .. }
            | FetchError::BadRedirect(_)
            | FetchError::Io(_) => ErrorCode::FetchFailed,
            FetchError::Timeout => ErrorCode::FetchTimeout,
            FetchError::TooLarge { .. } => ErrorCode::InputTooLarge,
            FetchError::HttpStatus { .. } => ErrorCode::HttpStatus,
            FetchError::Cancelled => ErrorCode::Cancelled,
        }
    }

    /// Whether trying the same fetch again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Network(_) | FetchError::Timeout | FetchError::Io(_) => true,
            FetchError::HttpStatus { status } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::InvalidUrl(_)
            | FetchError::NotAllowed(_)
            | FetchError::TooManyRedirects { .. }
            | FetchError::BadRedirect(_)
            | FetchError::TooLarge { .. }
            | FetchError::Cancelled => false,
        }
    }
}

#[cfg(test)]
mod tests;
