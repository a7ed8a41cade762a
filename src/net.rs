//! The client's address behind reverse proxies (`REELFORGE_TRUSTED_PROXIES`): a setting
//! (parsed with the others) and a rule the edge applies to each request, so it lives below
//! both.
//!
//! The socket peer is the client unless it is a trusted proxy. Then `X-Forwarded-For` is
//! read from the right (the entry the nearest proxy appended) and the first address that is
//! not itself a trusted proxy is the client: a client can prepend anything it likes to the
//! header, but it cannot change what the trusted proxies appended after it.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The networks whose `X-Forwarded-For` is believed. Empty (the default): never.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// IP addresses or CIDR networks, separated by commas or spaces. Host names are refused:
    /// a proxy is recognised by the address it connects from.
    pub fn parse(s: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for entry in s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let bare = entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry);
            let net = if bare.contains('/') {
                IpNet::from_str(bare).ok().map(|n| n.trunc())
            } else {
                IpAddr::from_str(bare).ok().map(IpNet::from)
            };
            nets.push(
                net.ok_or_else(|| format!("`{entry}` is not an IP address or CIDR network"))?,
            );
        }
        Ok(TrustedProxies { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The address to account a request to: the peer, or — when the peer is trusted — the
    /// rightmost `X-Forwarded-For` address that is not a trusted proxy. An entry that is not
    /// an address stops the walk at the last trusted hop (that proxy is then the client).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let mut entries = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            let Ok(text) = value.to_str() else {
                return client;
            };
            entries.extend(text.split(',').map(str::trim));
        }
        for entry in entries.into_iter().rev() {
            let Some(ip) = parse_forwarded_addr(entry) else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

impl TrustedProxies {
    /// Whether the client reached us over https. The service itself speaks plain HTTP, so
    /// that can only be a TLS-terminating proxy's word: `X-Forwarded-Proto: https` (its
    /// first entry, the scheme the client used) from a trusted peer. Anyone else's header
    /// is ignored.
    pub fn forwarded_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.trusts(peer.to_canonical())
            && headers
                .get(X_FORWARDED_PROTO)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]`, or either with a port.
fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(entry) {
        return Some(ip);
    }
    if let Ok(sa) = SocketAddr::from_str(entry) {
        return Some(sa.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| IpAddr::from_str(e).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_networks_and_refuses_names() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1 [::1] fd00::/8").unwrap();
        assert!(t.trusts(ip("10.9.8.7")));
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(t.trusts(ip("::ffff:127.0.0.1")));
        assert!(t.trusts(ip("::1")));
        assert!(t.trusts(ip("fd12::3")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let err = TrustedProxies::parse("10.0.0.1, proxy.internal").unwrap_err();
        assert!(err.contains("proxy.internal"), "{err}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn https_is_believed_from_trusted_proxies_only() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("HTTPS, http"));
        assert!(t.forwarded_https(ip("10.1.2.3"), &h));
        assert!(!t.forwarded_https(ip("203.0.113.5"), &h));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        assert!(!t.forwarded_https(ip("10.1.2.3"), &h));
        assert!(!t.forwarded_https(ip("10.1.2.3"), &HeaderMap::new()));
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&["198.51.100.1"]);
        assert_eq!(t.client_ip(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_peer_yields_the_rightmost_untrusted_address() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        // The client forged the first entry; the proxies appended the real one and their own.
        let h = headers(&["1.2.3.4, 198.51.100.9, 10.0.0.2"]);
        assert_eq!(t.client_ip(peer, &h), ip("198.51.100.9"));
        // Several header lines are one list, in order.
        let h = headers(&["1.2.3.4", "198.51.100.9:4711", "10.0.0.2"]);
        assert_eq!(t.client_ip(peer, &h), ip("198.51.100.9"));
        let h = headers(&["[2001:db8::7]:443"]);
        assert_eq!(t.client_ip(peer, &h), ip("2001:db8::7"));
        // No header: the proxy itself.
        assert_eq!(t.client_ip(peer, &HeaderMap::new()), peer);
        // Only trusted hops: the leftmost of them.
        let h = headers(&["10.1.1.1, 10.0.0.2"]);
        assert_eq!(t.client_ip(peer, &h), ip("10.1.1.1"));
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&["198.51.100.9, unknown, 10.0.0.2"]);
        assert_eq!(t.client_ip(peer, &h), ip("10.0.0.2"));
        let mapped = ip("::ffff:10.0.0.1");
        let h = headers(&["::ffff:198.51.100.9"]);
        assert_eq!(t.client_ip(mapped, &h), ip("198.51.100.9"));
    }
}
