//! The HTTP side of fetching: a reqwest client that cannot reach blocked addresses (no proxy,
//! no automatic redirects, a resolver that drops blocked answers), redirects followed hop by
//! hop with each hop re-checked by the policy, and the body streamed to a file under size and
//! time caps. The rules themselves live in `policy`; this module only applies them.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::filename::{disposition_filename, url_filename};
use super::policy::{check_parsed, ip_permitted};
use super::{AllowList, FetchError, FetchPolicy, check_url};

/// Write buffer in front of the destination file.
const WRITE_BUFFER: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Guarded resolver
// ---------------------------------------------------------------------------------------------

/// Marker error from [`GuardedResolver`] when every answer was blocked.
#[derive(Debug)]
pub struct BlockedAnswers;

impl fmt::Display for BlockedAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host name resolves only to addresses that are not allowed")
    }
}

impl std::error::Error for BlockedAnswers {}

/// DNS resolver for the HTTP client: drops blocked answers (unless allowed) and fails when
/// none remain. reqwest does not consult it for IP-literal hosts; those are checked per hop.
pub(super) struct GuardedResolver {
    pub(super) allow: Arc<AllowList>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let host_allowed = allow.allows_host(&host);
            let answers: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if answers.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no addresses for host",
                )
                .into());
            }
            let kept: Vec<SocketAddr> = answers
                .into_iter()
                .filter(|a| host_allowed || ip_permitted(a.ip(), &allow).is_ok())
                .collect();
            if kept.is_empty() {
                tracing::warn!(host = %host, "refused connection: all DNS answers blocked");
                return Err(Box::new(BlockedAnswers) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Fetcher
// ---------------------------------------------------------------------------------------------

/// Result of a successful [`Fetcher::fetch_to_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes written to the destination.
    pub size: u64,
    /// `Content-Type` of the final response.
    pub content_type: Option<String>,
    /// URL of the final response, after redirects.
    pub final_url: Url,
    /// Sanitised file name from `Content-Disposition`, else from the last path segment.
    pub filename_hint: Option<String>,
}

/// HTTP client with the SSRF guard built in. Cheap to share (`Arc` it or clone the client).
pub struct Fetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the client: no proxy, no automatic redirects, connect timeout, guarded resolver,
    /// rustls (uses the process-wide rustls provider when one is installed).
    pub fn new(policy: FetchPolicy) -> Result<Fetcher, FetchError> {
        let resolver = GuardedResolver {
            allow: Arc::new(policy.allow.clone()),
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .dns_resolver(resolver)
            .tls_backend_rustls()
            .user_agent(concat!("reelforge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "could not build the HTTP client");
                FetchError::Network("could not initialise the HTTP client".into())
            })?;
        Ok(Fetcher { client, policy })
    }

    /// The policy this fetcher enforces.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// The guarded client (no proxy, no redirects, filtering resolver), e.g. for webhooks.
    /// Callers must still run [`check_url`] on every URL they send to, because IP literals
    /// bypass the resolver.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// [`check_url`] with this fetcher's policy.
    pub async fn check(&self, raw: &str) -> Result<Url, FetchError> {
        check_url(raw, &self.policy).await
    }

    /// GETs `url` (following up to `max_redirects` redirects, each hop re-checked) and streams
    /// the body into `dest` (created or truncated). `on_bytes(received, content_length)` is
    /// called after every chunk. On any error the partially written `dest` is removed; a `dest`
    /// that existed before is left alone when the fetch fails before the body starts.
    ///
    /// `cancel` stops it ([`FetchError::Cancelled`]) while it waits for the network, never in
    /// the middle of a file operation. Never drop this future to stop it instead: those
    /// operations run on tokio's blocking threads, where one whose future was dropped still
    /// completes (the file created, or written, after the caller removed its folder). When
    /// this returns, every operation it began has ended, whatever the result.
    pub async fn fetch_to_file(
        &self,
        url: &Url,
        dest: &Path,
        cancel: &CancellationToken,
        mut on_bytes: impl FnMut(u64, Option<u64>),
    ) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + self.policy.total_timeout;
        let mut created = false;
        let result = self
            .fetch_inner(url, dest, deadline, cancel, &mut created, &mut on_bytes)
            .await;
        if let Err(err) = &result {
            tracing::debug!(code = %err.code(), error = %err, "fetch failed");
            if created {
                match tokio::fs::remove_file(dest).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(error = %e, "could not remove a partial download");
                    }
                    _ => {}
                }
            }
        }
        result
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        dest: &Path,
        deadline: Instant,
        cancel: &CancellationToken,
        created: &mut bool,
        on_bytes: &mut impl FnMut(u64, Option<u64>),
    ) -> Result<Fetched, FetchError> {
        // Nothing is written before the answer: dropping the requests is safe.
        let (response, final_url) = tokio::select! {
            r = self.follow_redirects(url, deadline) => r?,
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
        };
        let limit = self.policy.max_bytes;
        let total = response.content_length();
        if total.is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let headers = response.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let filename_hint = headers
            .get(CONTENT_DISPOSITION)
            .and_then(|v| disposition_filename(v.as_bytes()))
            .or_else(|| url_filename(&final_url));
        let size = self
            .stream_body(response, dest, deadline, cancel, created, on_bytes)
            .await?;
        Ok(Fetched {
            size,
            content_type,
            final_url,
            filename_hint,
        })
    }

    /// GETs `url`, following redirects by hand: every hop is checked against the policy
    /// before it is requested. Returns the final (2xx) response and its URL.
    async fn follow_redirects(
        &self,
        url: &Url,
        deadline: Instant,
    ) -> Result<(reqwest::Response, Url), FetchError> {
        let mut current = url.clone();
        let mut redirects = 0usize;
        loop {
            self.check_hop(&current, redirects, deadline).await?;
            let response = timeout_at(deadline, self.client.get(current.clone()).send())
                .await
                .map_err(|_| FetchError::Timeout)?
                .map_err(map_reqwest_error)?;
            let Some(next) = next_hop(&response, &current, redirects, self.policy.max_redirects)?
            else {
                return Ok((response, current));
            };
            redirects += 1;
            tracing::debug!(hop = redirects, "following redirect");
            current = next;
        }
    }

    /// The policy check of one hop, within the deadline. A refused redirect target says so:
    /// the user typed the first URL, not the ones after it.
    async fn check_hop(
        &self,
        url: &Url,
        redirects: usize,
        deadline: Instant,
    ) -> Result<(), FetchError> {
        let checked = timeout_at(deadline, check_parsed(url, &self.policy))
            .await
            .map_err(|_| FetchError::Timeout)?;
        checked.map_err(|err| match err {
            FetchError::NotAllowed(reason) if redirects > 0 => {
                FetchError::NotAllowed(format!("redirect target refused: {reason}"))
            }
            other => other,
        })
    }

    /// Streams the body into `dest` (created or truncated), counting bytes against
    /// `max_bytes` and every chunk against `deadline`, until the end or `cancel`. `created`
    /// is set as soon as `dest` exists, so that the caller can remove a partial download.
    async fn stream_body(
        &self,
        mut response: reqwest::Response,
        dest: &Path,
        deadline: Instant,
        cancel: &CancellationToken,
        created: &mut bool,
        on_bytes: &mut impl FnMut(u64, Option<u64>),
    ) -> Result<u64, FetchError> {
        let limit = self.policy.max_bytes;
        let total = response.content_length();
        let file = tokio::fs::File::create(dest)
            .await
            .map_err(FetchError::Io)?;
        *created = true;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut size = 0u64;
        let streamed = async {
            loop {
                let chunk = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                    chunk = timeout_at(deadline, response.chunk()) => chunk,
                };
                let chunk = chunk
                    .map_err(|_| FetchError::Timeout)?
                    .map_err(map_reqwest_error)?;
                let Some(chunk) = chunk else {
                    return Ok(size);
                };
                size = size.saturating_add(chunk.len() as u64);
                if size > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                out.write_all(&chunk).await.map_err(FetchError::Io)?;
                on_bytes(size, total);
            }
        }
        .await;
        // `write_all` returns once a blocking thread has the bytes; wait for it to write them
        // however the body ended, so that nothing writes to `dest` after this returns (a
        // failed fetch's buffered rest is not written: the file goes).
        match streamed {
            Ok(size) => {
                out.flush().await.map_err(FetchError::Io)?;
                Ok(size)
            }
            Err(e) => {
                let _ = out.get_mut().flush().await;
                Err(e)
            }
        }
    }
}

/// Where `response` sends the fetch next: `Some(url)` for a redirect (at most
/// `max_redirects` of them), `None` for a success; any other status is an error.
fn next_hop(
    response: &reqwest::Response,
    current: &Url,
    redirects: usize,
    max_redirects: usize,
) -> Result<Option<Url>, FetchError> {
    let status = response.status();
    if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        if redirects >= max_redirects {
            return Err(FetchError::TooManyRedirects { max: max_redirects });
        }
        let location = response
            .headers()
            .get(LOCATION)
            .ok_or_else(|| FetchError::BadRedirect("redirect without a Location header".into()))?
            .to_str()
            .map_err(|_| FetchError::BadRedirect("redirect to an invalid URL".into()))?;
        let next = current
            .join(location)
            .map_err(|_| FetchError::BadRedirect("redirect to an invalid URL".into()))?;
        return Ok(Some(next));
    }
    if !status.is_success() {
        return Err(FetchError::HttpStatus {
            status: status.as_u16(),
        });
    }
    Ok(None)
}

/// Turns a reqwest error into a message without URLs or addresses (they stay in the log).
fn map_reqwest_error(err: reqwest::Error) -> FetchError {
    tracing::debug!(error = %err, "HTTP error");
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(e) = source {
        if e.is::<BlockedAnswers>() {
            return FetchError::NotAllowed(BlockedAnswers.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        source = e.source();
    }
    if err.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
        return FetchError::Timeout;
    }
    let what = if err.is_dns() {
        "could not resolve the host name"
    } else if err.is_connect() {
        "could not connect to the remote server"
    } else if err.is_body() || err.is_decode() {
        "the download was interrupted"
    } else {
        "the request failed"
    };
    FetchError::Network(match io_kind {
        Some(kind) => format!("{what} ({kind})"),
        None => what.to_owned(),
    })
}
