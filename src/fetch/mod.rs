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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::time::{Instant, timeout, timeout_at};
use url::{Host, Url};

/// Longest URL accepted, in bytes.
const MAX_URL_LEN: usize = 8 * 1024;
/// Longest filename hint returned, in characters.
const MAX_FILENAME_CHARS: usize = 200;
/// Write buffer in front of the destination file.
const WRITE_BUFFER: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Address classification
// ---------------------------------------------------------------------------------------------

/// Why `ip` must not be fetched from, or `None` when it is an ordinary public address.
///
/// IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:aabb:ccdd::/48`) are classified by the embedded IPv4 address. IPv6 outside global
/// unicast `2000::/3` is always refused.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    let reason = match (a, b, c) {
        _ if ip == Ipv4Addr::BROADCAST => "broadcast",
        _ if ip == Ipv4Addr::UNSPECIFIED => "unspecified",
        (0, _, _) => "reserved (this network)",
        (10, _, _) => "private",
        (100, _, _) if b & 0xc0 == 64 => "shared address space (CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, 169) if d == 254 => "link-local (cloud metadata)",
        (169, 254, _) => "link-local",
        (172, _, _) if b & 0xf0 == 16 => "private",
        (192, 0, 0) => "reserved (IETF protocol assignments)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "reserved (6to4 relay anycast)",
        (192, 168, _) => "private",
        (198, _, _) if b & 0xfe == 18 => "benchmarking",
        _ if (224..240).contains(&a) => "multicast",
        _ if a >= 240 => "reserved",
        _ => return None,
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let low_v4 = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (IPv4-mapped)
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return v4_reason(low_v4);
    }
    // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765)
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return v4_reason(low_v4);
    }
    // ::a.b.c.d (IPv4-compatible, deprecated)
    if s[..6] == [0; 6] {
        return v4_reason(low_v4);
    }
    // 64:ff9b::/96 (NAT64 well-known prefix)
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return v4_reason(low_v4);
    }
    // 64:ff9b:1::/48 (local-use NAT64, RFC 8215): translator-specific, never public.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("reserved (local-use NAT64)");
    }
    // 2002::/16 (6to4): the IPv4 address of the tunnel end point follows the prefix.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (s[1] >> 8) as u8,
            (s[1] & 0xff) as u8,
            (s[2] >> 8) as u8,
            (s[2] & 0xff) as u8,
        );
        return v4_reason(v4);
    }
    let reason = match s[0] {
        // 2001:0::/32 Teredo (embeds an obfuscated IPv4 client address).
        0x2001 if s[1] == 0 => "reserved (Teredo)",
        0x2001 if s[1] == 2 && s[2] == 0 => "benchmarking",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] & 0xf000 == 0 => "documentation",
        x if x & 0xfe00 == 0xfc00 => "unique-local",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x0100 if s[1..4] == [0; 3] => "reserved (discard-only)",
        x if x & 0xe000 != 0x2000 => "reserved",
        _ => return None,
    };
    Some(reason)
}

// ---------------------------------------------------------------------------------------------
// Allow-list
// ---------------------------------------------------------------------------------------------

/// Parsed `REELFORGE_FETCH_ALLOW`: host names, IP addresses and CIDR networks that may be
/// fetched even though they are private, loopback, etc.
///
/// Entries are separated by commas and/or white space:
/// * `host.example` — that exact name (case-insensitive, trailing dot ignored), whatever it
///   resolves to;
/// * `*.example.com` or `.example.com` — every sub-domain of `example.com` (not the apex);
/// * `10.1.2.3`, `::1`, `[::1]` — that address;
/// * `10.0.0.0/8`, `fd00::/8` — that network.
///
/// An address entry also covers the IPv4-mapped IPv6 form of the same address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    suffixes: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses the setting; any entry that is not a host name, IP address or CIDR is an error
    /// naming that entry.
    pub fn parse(s: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for entry in s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            list.add_entry(entry)?;
        }
        Ok(list)
    }

    fn add_entry(&mut self, entry: &str) -> Result<(), String> {
        let bad = || format!("`{entry}` is not a host name, IP address or CIDR network");
        let unbracketed = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .unwrap_or(entry);
        if unbracketed.contains('/') {
            let net = IpNet::from_str(unbracketed).map_err(|_| bad())?;
            self.nets.push(net.trunc());
            return Ok(());
        }
        if let Ok(ip) = IpAddr::from_str(unbracketed) {
            self.nets.push(IpNet::from(ip));
            return Ok(());
        }
        let (wildcard, name) = match entry.strip_prefix("*.").or_else(|| entry.strip_prefix('.')) {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        match Host::parse(name) {
            Ok(Host::Domain(domain)) => {
                let domain = normalize_name(&domain);
                if !valid_dns_name(&domain) {
                    return Err(bad());
                }
                if wildcard {
                    self.suffixes.push(domain);
                } else {
                    self.hosts.push(domain);
                }
                Ok(())
            }
            // Numeric forms such as `0x7f000001` or `2130706433` that URLs normalise.
            Ok(Host::Ipv4(v4)) if !wildcard => {
                self.nets.push(IpNet::from(IpAddr::V4(v4)));
                Ok(())
            }
            _ => Err(bad()),
        }
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.suffixes.is_empty() && self.nets.is_empty()
    }

    /// Whether the host name (as in a URL; brackets, case and a trailing dot are ignored) is
    /// listed. An IP literal is looked up among the address entries.
    pub fn allows_host(&self, host: &str) -> bool {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = IpAddr::from_str(bare) {
            return self.allows_ip(ip);
        }
        let name = normalize_name(bare);
        if name.is_empty() {
            return false;
        }
        self.hosts.contains(&name)
            || self.suffixes.iter().any(|suffix| {
                name.len() > suffix.len()
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            })
    }

    /// Whether the address lies in a listed address or network.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Blocked addresses are allowed only when the allow-list names them.
fn ip_permitted(ip: IpAddr, allow: &AllowList) -> Result<(), &'static str> {
    match blocked_reason(ip) {
        Some(reason) if !allow.allows_ip(ip) => Err(reason),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Policy and errors
// ---------------------------------------------------------------------------------------------

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
}

impl FetchError {
    /// Stable snake_case error code for API responses and task errors.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl(_) => "invalid_url",
            FetchError::NotAllowed(_) => "url_not_allowed",
            FetchError::Network(_)
            | FetchError::TooManyRedirects { .. }
            | FetchError::BadRedirect(_)
            | FetchError::Io(_) => "fetch_failed",
            FetchError::Timeout => "fetch_timeout",
            FetchError::TooLarge { .. } => "input_too_large",
            FetchError::HttpStatus { .. } => "http_status",
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
            | FetchError::TooLarge { .. } => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// URL checks
// ---------------------------------------------------------------------------------------------

/// Validates a user-supplied URL at submission time and returns it normalised.
///
/// Refuses non-http(s) schemes and embedded credentials; checks IP-literal hosts (decimal,
/// octal and hex IPv4 forms are normalised by the URL parser first); resolves names and refuses
/// them when any answer is a blocked address — unless the allow-list names the host or address.
pub async fn check_url(raw: &str, policy: &FetchPolicy) -> Result<Url, FetchError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(FetchError::InvalidUrl(format!(
            "longer than {MAX_URL_LEN} bytes"
        )));
    }
    let url = Url::parse(raw).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
    check_parsed(&url, policy).await?;
    Ok(url)
}

/// Policy checks on an already parsed URL (used for the first request and every hop).
async fn check_parsed(url: &Url, policy: &FetchPolicy) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::NotAllowed(
            "only http and https URLs are accepted".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::NotAllowed(
            "URLs with embedded credentials are not accepted".into(),
        ));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    match url.host() {
        None => Err(FetchError::InvalidUrl("the URL has no host".into())),
        Some(Host::Ipv4(v4)) => check_literal(IpAddr::V4(v4), &policy.allow),
        Some(Host::Ipv6(v6)) => check_literal(IpAddr::V6(v6), &policy.allow),
        Some(Host::Domain(name)) => {
            if policy.allow.allows_host(name) {
                return Ok(());
            }
            let answers = timeout(
                policy.connect_timeout,
                tokio::net::lookup_host((name, port)),
            )
            .await
            .map_err(|_| FetchError::Timeout)?
            .map_err(|e| {
                tracing::debug!(host = name, error = %e, "host lookup failed");
                FetchError::Network("could not resolve the host name".into())
            })?;
            let mut any = false;
            for addr in answers {
                any = true;
                ip_permitted(addr.ip(), &policy.allow).map_err(|reason| {
                    FetchError::NotAllowed(format!("the host name resolves to a {reason} address"))
                })?;
            }
            if any {
                Ok(())
            } else {
                Err(FetchError::Network(
                    "could not resolve the host name".into(),
                ))
            }
        }
    }
}

fn check_literal(ip: IpAddr, allow: &AllowList) -> Result<(), FetchError> {
    ip_permitted(ip, allow)
        .map_err(|reason| FetchError::NotAllowed(format!("{reason} addresses are not allowed")))
}

// ---------------------------------------------------------------------------------------------
// Guarded resolver
// ---------------------------------------------------------------------------------------------

/// Marker error from [`GuardedResolver`] when every answer was blocked.
#[derive(Debug)]
struct BlockedAnswers;

impl fmt::Display for BlockedAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host name resolves only to addresses that are not allowed")
    }
}

impl std::error::Error for BlockedAnswers {}

/// DNS resolver for the HTTP client: drops blocked answers (unless allowed) and fails when
/// none remain. reqwest does not consult it for IP-literal hosts; those are checked per hop.
struct GuardedResolver {
    allow: Arc<AllowList>,
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
    pub async fn fetch_to_file(
        &self,
        url: &Url,
        dest: &Path,
        mut on_bytes: impl FnMut(u64, Option<u64>),
    ) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + self.policy.total_timeout;
        let mut created = false;
        let result = self
            .fetch_inner(url, dest, deadline, &mut created, &mut on_bytes)
            .await;
        if let Err(err) = &result {
            tracing::debug!(code = err.code(), error = %err, "fetch failed");
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
        created: &mut bool,
        on_bytes: &mut impl FnMut(u64, Option<u64>),
    ) -> Result<Fetched, FetchError> {
        let policy = &self.policy;
        let mut current = url.clone();
        let mut redirects = 0usize;
        let mut response = loop {
            let checked = timeout_at(deadline, check_parsed(&current, policy))
                .await
                .map_err(|_| FetchError::Timeout)?;
            if let Err(err) = checked {
                return Err(match err {
                    FetchError::NotAllowed(reason) if redirects > 0 => {
                        FetchError::NotAllowed(format!("redirect target refused: {reason}"))
                    }
                    other => other,
                });
            }
            let response = timeout_at(deadline, self.client.get(current.clone()).send())
                .await
                .map_err(|_| FetchError::Timeout)?
                .map_err(map_reqwest_error)?;
            let status = response.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                if redirects >= policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        max: policy.max_redirects,
                    });
                }
                redirects += 1;
                let location = response
                    .headers()
                    .get(LOCATION)
                    .ok_or_else(|| {
                        FetchError::BadRedirect("redirect without a Location header".into())
                    })?
                    .to_str()
                    .map_err(|_| FetchError::BadRedirect("redirect to an invalid URL".into()))?;
                let next = current
                    .join(location)
                    .map_err(|_| FetchError::BadRedirect("redirect to an invalid URL".into()))?;
                tracing::debug!(hop = redirects, "following redirect");
                current = next;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::HttpStatus {
                    status: status.as_u16(),
                });
            }
            break response;
        };

        let limit = policy.max_bytes;
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
            .or_else(|| url_filename(&current));

        let file = tokio::fs::File::create(dest)
            .await
            .map_err(FetchError::Io)?;
        *created = true;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut size = 0u64;
        loop {
            let chunk = timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| FetchError::Timeout)?
                .map_err(map_reqwest_error)?;
            let Some(chunk) = chunk else { break };
            size = size.saturating_add(chunk.len() as u64);
            if size > limit {
                return Err(FetchError::TooLarge { limit });
            }
            out.write_all(&chunk).await.map_err(FetchError::Io)?;
            on_bytes(size, total);
        }
        out.flush().await.map_err(FetchError::Io)?;
        Ok(Fetched {
            size,
            content_type,
            final_url: current,
            filename_hint,
        })
    }
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

// ---------------------------------------------------------------------------------------------
// File-name hints
// ---------------------------------------------------------------------------------------------

/// File name from a `Content-Disposition` value; `filename*` (RFC 5987) wins over `filename`.
fn disposition_filename(value: &[u8]) -> Option<String> {
    let value = String::from_utf8_lossy(value);
    let mut plain = None;
    let mut extended = None;
    for (name, val) in disposition_params(&value) {
        if name.eq_ignore_ascii_case("filename*") {
            // charset'language'percent-encoded
            let encoded = val.splitn(3, '\'').nth(2).unwrap_or(&val);
            extended = Some(percent_decode(encoded));
        } else if name.eq_ignore_ascii_case("filename") {
            plain = Some(val);
        }
    }
    extended
        .and_then(|n| sanitize_filename(&n))
        .or_else(|| plain.and_then(|n| sanitize_filename(&n)))
}

/// `name=value` parameters after the disposition type; quoted values are unquoted.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = match value.split_once(';') {
        Some((_, rest)) => rest,
        None => return params,
    };
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().to_owned();
        let after = after.trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            val.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            params.push((name, val));
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let (val, tail) = after.split_once(';').unwrap_or((after, ""));
            params.push((name, val.trim().to_owned()));
            rest = tail;
        }
    }
    params
}

/// Decoded last path segment of the URL.
fn url_filename(url: &Url) -> Option<String> {
    let segment = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    sanitize_filename(&percent_decode(segment))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex_value(*h).zip(hex_value(*l)),
            _ => None,
        };
        if let Some((h, l)) = escaped {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Keeps only the final path component, drops control characters, refuses `.`/`..`/empty.
fn sanitize_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        None
    } else {
        Some(cleaned.to_owned())
    }
}

#[cfg(test)]
mod tests;
