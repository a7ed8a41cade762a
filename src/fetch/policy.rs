//! The SSRF rules as data and checks: which addresses are blocked and why,
//! the allow-list that lifts them, and the URL check run at submission time
//! and on every redirect hop. Apart from the host-name lookup in
//! [`check_url`], nothing here does I/O, so the rules are testable alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use tokio::time::timeout;
use url::{Host, Url};

use super::{FetchError, FetchPolicy};

/// Longest URL accepted, in bytes.
const MAX_URL_LEN: usize = 8 * 1024;

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
pub(super) fn ip_permitted(ip: IpAddr, allow: &AllowList) -> Result<(), &'static str> {
    match blocked_reason(ip) {
        Some(reason) if !allow.allows_ip(ip) => Err(reason),
        _ => Ok(()),
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
pub(super) async fn check_parsed(url: &Url, policy: &FetchPolicy) -> Result<(), FetchError> {
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
        Some(Host::Domain(name)) => check_name(name, port, policy).await,
    }
}

/// A host name is refused when *any* of its answers is blocked (unless the allow-list names
/// it); the resolver in front of the client filters the answers again at connection time.
async fn check_name(name: &str, port: u16, policy: &FetchPolicy) -> Result<(), FetchError> {
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

fn check_literal(ip: IpAddr, allow: &AllowList) -> Result<(), FetchError> {
    ip_permitted(ip, allow)
        .map_err(|reason| FetchError::NotAllowed(format!("{reason} addresses are not allowed")))
}
