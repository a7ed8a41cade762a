//! Address classification, allow-list parsing and submission checks. No network: only IP
//! literals and `localhost` (resolved from /etc/hosts).

use std::net::IpAddr;

use reelforge::fetch::{AllowList, FetchError, FetchPolicy, blocked_reason, check_url};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn blocked(s: &str) -> bool {
    blocked_reason(ip(s)).is_some()
}

#[test]
fn ipv4_classification() {
    for (addr, reason) in [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("100.127.255.255", "shared address space (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("0.1.2.3", "reserved (this network)"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved (IETF protocol assignments)"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
    ] {
        assert_eq!(blocked_reason(ip(addr)), Some(reason), "{addr}");
    }
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.1.1",
        "198.20.0.1",
        "223.255.255.255",
        "11.0.0.1",
    ] {
        assert_eq!(blocked_reason(ip(addr)), None, "{addr}");
    }
}

#[test]
fn ipv6_classification() {
    for (addr, reason) in [
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd00:ec2::254", "unique-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("fec0::1", "site-local (deprecated)"),
        ("2001::1", "reserved (Teredo)"),
        ("100::1", "reserved (discard-only)"),
        ("64:ff9b:1::1", "reserved (local-use NAT64)"),
        ("4000::1", "reserved"),
    ] {
        assert_eq!(blocked_reason(ip(addr)), Some(reason), "{addr}");
    }
    for addr in ["2606:4700::1", "2001:4860:4860::8888", "2a00:1450::1"] {
        assert_eq!(blocked_reason(ip(addr)), None, "{addr}");
    }
}

#[test]
fn ipv6_embedding_ipv4() {
    // IPv4-mapped
    assert_eq!(blocked_reason(ip("::ffff:127.0.0.1")), Some("loopback"));
    assert_eq!(blocked_reason(ip("::ffff:10.0.0.1")), Some("private"));
    assert_eq!(
        blocked_reason(ip("::ffff:169.254.169.254")),
        Some("link-local (cloud metadata)")
    );
    assert!(!blocked("::ffff:8.8.8.8"));
    // IPv4-translated and IPv4-compatible
    assert_eq!(blocked_reason(ip("::ffff:0:192.168.0.1")), Some("private"));
    assert_eq!(blocked_reason(ip("::127.0.0.1")), Some("loopback"));
    assert_eq!(blocked_reason(ip("::10.1.1.1")), Some("private"));
    // NAT64
    assert_eq!(blocked_reason(ip("64:ff9b::127.0.0.1")), Some("loopback"));
    assert_eq!(
        blocked_reason(ip("64:ff9b::100.64.0.1")),
        Some("shared address space (CGNAT)")
    );
    assert!(!blocked("64:ff9b::8.8.8.8"));
    // 6to4: 2002:0a00:0001:: embeds 10.0.0.1
    assert_eq!(blocked_reason(ip("2002:a00:1::1")), Some("private"));
    assert_eq!(blocked_reason(ip("2002:7f00:1::")), Some("loopback"));
    assert!(!blocked("2002:808:808::1"));
}

#[test]
fn allow_list_parsing() {
    let list = AllowList::parse(
        " media.internal, 10.0.0.5 192.168.0.0/16,,[::1]\t fd00::/8 *.corp.example .lan Files.Example. ",
    )
    .unwrap();
    assert!(!list.is_empty());
    assert!(list.allows_host("media.internal"));
    assert!(list.allows_host("MEDIA.internal."));
    assert!(!list.allows_host("other.internal"));
    assert!(!list.allows_host("xmedia.internal"));
    assert!(list.allows_host("files.example"));
    assert!(list.allows_host("a.corp.example"));
    assert!(list.allows_host("a.b.corp.example"));
    assert!(!list.allows_host("corp.example"));
    assert!(!list.allows_host("evilcorp.example"));
    assert!(list.allows_host("nas.lan"));
    assert!(list.allows_host("10.0.0.5"));
    assert!(list.allows_host("[::1]"));

    assert!(list.allows_ip(ip("10.0.0.5")));
    assert!(!list.allows_ip(ip("10.0.0.6")));
    assert!(list.allows_ip(ip("192.168.44.3")));
    assert!(list.allows_ip(ip("::ffff:192.168.44.3")));
    assert!(list.allows_ip(ip("::1")));
    assert!(list.allows_ip(ip("fd12::7")));
    assert!(!list.allows_ip(ip("127.0.0.1")));

    // host bits in a CIDR are tolerated; numeric IPv4 forms are addresses
    let list = AllowList::parse("127.0.0.1/8,0x0a000001").unwrap();
    assert!(list.allows_ip(ip("127.9.9.9")));
    assert!(list.allows_ip(ip("10.0.0.1")));

    assert!(AllowList::parse("").unwrap().is_empty());
    assert!(AllowList::parse(" , ,").unwrap().is_empty());
    assert_eq!(AllowList::default(), AllowList::parse("").unwrap());
}

#[test]
fn allow_list_garbage() {
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/x",
        "999.1.1.1",
        "http://example.com",
        "host:8080",
        "exa mple.com/",
        "a..b",
        "foo!bar",
        "*.",
        "*.10.0.0.1",
        "[::1",
        "::1]/",
        "-",
        "/8",
    ] {
        let err = AllowList::parse(bad).expect_err(bad);
        assert!(!err.is_empty());
    }
    // the error names the offending entry
    let err = AllowList::parse("ok.example, 10.0.0.0/99").unwrap_err();
    assert!(err.contains("10.0.0.0/99"), "{err}");
}

async fn refused(raw: &str) -> FetchError {
    match check_url(raw, &FetchPolicy::default()).await {
        Ok(url) => panic!("{raw} accepted as {url}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn check_url_refuses() {
    for raw in [
        "ftp://example.com/a.mp4",
        "file:///etc/passwd",
        "gopher://example.com/",
        "data:text/plain,hi",
        "javascript:alert(1)",
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/x",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:10.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "https://10.1.2.3/",
        "http://192.168.0.1/",
        "http://localhost/",
        "http://localhost:9000/a",
        "http://user:pass@example.com/",
        "http://user@example.com/",
    ] {
        let err = refused(raw).await;
        assert_eq!(err.code(), "url_not_allowed", "{raw}: {err}");
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn check_url_messages_do_not_leak_resolved_addresses() {
    let err = refused("http://localhost/").await;
    let msg = err.to_string();
    assert!(msg.contains("loopback"), "{msg}");
    assert!(!msg.contains("127.0.0.1") && !msg.contains("::1"), "{msg}");
}

#[tokio::test]
async fn check_url_invalid() {
    for raw in [
        "",
        "not a url",
        "/relative/path",
        "http://",
        "http://[::1/",
        "http://exa mple.com/",
        "http://256.0.0.1/",
    ] {
        let err = refused(raw).await;
        assert_eq!(err.code(), "invalid_url", "{raw}: {err}");
        assert!(!err.is_retryable());
    }
    let long = format!("http://example.com/{}", "a".repeat(9000));
    assert_eq!(refused(&long).await.code(), "invalid_url");
}

#[tokio::test]
async fn check_url_allow_list() {
    let policy = FetchPolicy {
        allow: AllowList::parse("127.0.0.0/8, localhost").unwrap(),
        ..FetchPolicy::default()
    };
    for raw in [
        "http://127.0.0.1:8080/a.mp4",
        "http://0x7f000001/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:1234/",
        "https://localhost/",
    ] {
        let url = check_url(raw, &policy).await.unwrap();
        assert!(matches!(url.scheme(), "http" | "https"));
    }
    // normalised
    assert_eq!(
        check_url("  http://2130706433/x ", &policy)
            .await
            .unwrap()
            .as_str(),
        "http://127.0.0.1/x"
    );
    // the allow-list lifts address rules only
    for raw in [
        "ftp://127.0.0.1/",
        "http://a:b@127.0.0.1/",
        "http://[::1]/",
        "http://10.0.0.1/",
    ] {
        assert_eq!(
            check_url(raw, &policy).await.unwrap_err().code(),
            "url_not_allowed",
            "{raw}"
        );
    }
    // an IP entry covers the name's answers only if all of them are covered
    let v4_only = FetchPolicy {
        allow: AllowList::parse("127.0.0.1").unwrap(),
        ..FetchPolicy::default()
    };
    let localhost_all_v4 = tokio::net::lookup_host(("localhost", 80))
        .await
        .unwrap()
        .all(|a| a.ip() == ip("127.0.0.1"));
    assert_eq!(
        check_url("http://localhost/", &v4_only).await.is_ok(),
        localhost_all_v4
    );
}

#[test]
fn error_codes_and_retry() {
    use FetchError::*;
    let cases: Vec<(FetchError, &str, bool)> = vec![
        (InvalidUrl("x".into()), "invalid_url", false),
        (NotAllowed("x".into()), "url_not_allowed", false),
        (Network("x".into()), "fetch_failed", true),
        (TooManyRedirects { max: 3 }, "fetch_failed", false),
        (BadRedirect("x".into()), "fetch_failed", false),
        (Timeout, "fetch_timeout", true),
        (TooLarge { limit: 1 }, "input_too_large", false),
        (HttpStatus { status: 404 }, "http_status", false),
        (HttpStatus { status: 403 }, "http_status", false),
        (HttpStatus { status: 429 }, "http_status", true),
        (HttpStatus { status: 500 }, "http_status", true),
        (HttpStatus { status: 503 }, "http_status", true),
        (Io(std::io::Error::other("disk")), "fetch_failed", true),
    ];
    for (err, code, retry) in cases {
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(err.is_retryable(), retry, "{err:?}");
    }
}

#[test]
fn policy_defaults() {
    let p = FetchPolicy::default();
    assert_eq!(p.max_bytes, 2 * 1024 * 1024 * 1024);
    assert_eq!(p.connect_timeout, std::time::Duration::from_secs(10));
    assert_eq!(p.total_timeout, std::time::Duration::from_secs(1800));
    assert_eq!(p.max_redirects, 10);
    assert!(p.allow.is_empty());
}
