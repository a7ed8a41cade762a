use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use reqwest::dns::{Name, Resolve};
use url::Url;

use super::AllowList;
use super::client::{BlockedAnswers, GuardedResolver};
use super::filename::{disposition_filename, percent_decode, url_filename};

#[tokio::test]
async fn resolver_filters_blocked_answers() {
    let name = |s: &str| Name::from_str(s).unwrap();
    let guarded = GuardedResolver {
        allow: Arc::new(AllowList::default()),
    };
    let err = match guarded.resolve(name("localhost")).await {
        Ok(_) => panic!("localhost must be refused"),
        Err(e) => e,
    };
    assert!(err.is::<BlockedAnswers>());

    let guarded = GuardedResolver {
        allow: Arc::new(AllowList::parse("127.0.0.1/32").unwrap()),
    };
    let addrs: Vec<SocketAddr> = guarded.resolve(name("localhost")).await.unwrap().collect();
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
    );

    let guarded = GuardedResolver {
        allow: Arc::new(AllowList::parse("LocalHost.").unwrap()),
    };
    assert!(guarded.resolve(name("localhost")).await.is_ok());
}

#[test]
fn content_disposition_names() {
    let f = |v: &str| disposition_filename(v.as_bytes());
    assert_eq!(
        f("attachment; filename=\"clip.mp4\""),
        Some("clip.mp4".into())
    );
    assert_eq!(f("attachment; filename=clip.mov"), Some("clip.mov".into()));
    assert_eq!(
        f("attachment; filename=\"a.mp4\"; filename*=UTF-8''%C3%A9t%C3%A9.mp4"),
        Some("été.mp4".into())
    );
    assert_eq!(
        f("attachment; filename=\"../../etc/passwd\""),
        Some("passwd".into())
    );
    assert_eq!(
        f("attachment; filename=\"a\\\"b.mp4\""),
        Some("a\"b.mp4".into())
    );
    assert_eq!(f("attachment; filename=\"..\""), None);
    assert_eq!(f("inline"), None);
}

#[test]
fn url_names() {
    let u = |s: &str| url_filename(&Url::parse(s).unwrap());
    assert_eq!(
        u("https://x.example/a/My%20Clip.mp4?x=1"),
        Some("My Clip.mp4".into())
    );
    assert_eq!(u("https://x.example/a/b/"), Some("b".into()));
    assert_eq!(u("https://x.example/"), None);
    assert_eq!(u("https://x.example/%2e%2e"), None);
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%4"), "%4");
}
