//! Fetches against local axum servers on loopback addresses only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reelforge::fetch::{AllowList, FetchError, FetchPolicy, Fetched, Fetcher, check_url};
use tokio_util::sync::CancellationToken;
use url::Url;

const FILE_LEN: usize = 300_000;

fn payload() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{}", self.addr, path)).unwrap()
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn count(State(hits): State<Arc<AtomicUsize>>, req: Request, next: Next) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

async fn spawn_server(bind: &str) -> Server {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/file",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "video/mp4"),
                        (
                            header::CONTENT_DISPOSITION,
                            "attachment; filename=\"clip.mp4\"",
                        ),
                    ],
                    payload(),
                )
            }),
        )
        .route("/named/{name}", get(|| async { "tiny" }))
        .route("/big", get(|| async { vec![b'x'; 5000] }))
        .route(
            "/chunked",
            get(|| async {
                let chunks = (0..10).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'c'; 1000])));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route(
            "/stall",
            get(|| async {
                let first = futures::stream::once(async {
                    Ok::<_, Infallible>(Bytes::from_static(b"first chunk"))
                });
                let stalled = futures::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok::<_, Infallible>(Bytes::from_static(b"never"))
                });
                Body::from_stream(futures::StreamExt::chain(first, stalled))
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/unavailable",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/hop/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    redirect("/file")
                } else {
                    redirect(&format!("/hop/{}", n - 1))
                }
            }),
        )
        .route("/loop", get(|| async { redirect("/loop") }))
        .route(
            "/away",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                redirect(q.get("to").map(String::as_str).unwrap_or("/"))
            }),
        )
        .route("/noloc", get(|| async { StatusCode::FOUND }))
        .layer(middleware::from_fn_with_state(hits.clone(), count));
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { addr, hits }
}

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn policy(allow: &str) -> FetchPolicy {
    FetchPolicy {
        allow: AllowList::parse(allow).unwrap(),
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(20),
        ..FetchPolicy::default()
    }
}

fn fetcher(policy: FetchPolicy) -> Fetcher {
    init();
    Fetcher::new(policy).unwrap()
}

fn dest() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.bin");
    (dir, path)
}

/// A token never cancelled.
fn go() -> CancellationToken {
    CancellationToken::new()
}

async fn fetch(f: &Fetcher, url: &Url, dest: &std::path::Path) -> Result<Fetched, FetchError> {
    f.fetch_to_file(url, dest, &go(), |_, _| {}).await
}

#[tokio::test]
async fn fetches_allowed_loopback_to_file() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy("127.0.0.1"));
    let url = check_url(srv.url("/file").as_str(), f.policy())
        .await
        .unwrap();
    let (_dir, path) = dest();
    let mut progress = Vec::new();
    let got = f
        .fetch_to_file(&url, &path, &go(), |n, total| progress.push((n, total)))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), payload());
    assert_eq!(got.size, FILE_LEN as u64);
    assert_eq!(got.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(got.filename_hint.as_deref(), Some("clip.mp4"));
    assert_eq!(got.final_url, url);
    let (last, total) = *progress.last().unwrap();
    assert_eq!(last, FILE_LEN as u64);
    assert_eq!(total, Some(FILE_LEN as u64));
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(srv.hits(), 1);

    // file name from the path when there is no Content-Disposition
    let got = fetch(&f, &srv.url("/named/My%20Video.mov"), &path)
        .await
        .unwrap();
    assert_eq!(got.filename_hint.as_deref(), Some("My Video.mov"));
    assert_eq!(std::fs::read(&path).unwrap(), b"tiny");
}

#[tokio::test]
async fn allowed_host_name_goes_through_resolver() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy("localhost"));
    let url = check_url(
        &format!("http://localhost:{}/file", srv.addr.port()),
        f.policy(),
    )
    .await
    .unwrap();
    let (_dir, path) = dest();
    let got = fetch(&f, &url, &path).await.unwrap();
    assert_eq!(got.size, FILE_LEN as u64);
    assert_eq!(srv.hits(), 1);
}

#[tokio::test]
async fn refused_without_allow_list_before_any_connection() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy(""));
    let (_dir, path) = dest();
    for url in [
        srv.url("/file"),
        Url::parse(&format!("http://localhost:{}/file", srv.addr.port())).unwrap(),
        Url::parse(&format!("http://0x7f000001:{}/file", srv.addr.port())).unwrap(),
        Url::parse(&format!(
            "http://[::ffff:127.0.0.1]:{}/file",
            srv.addr.port()
        ))
        .unwrap(),
    ] {
        let err = check_url(url.as_str(), f.policy()).await.unwrap_err();
        assert_eq!(err.code(), "url_not_allowed", "{url}");
        let err = fetch(&f, &url, &path).await.unwrap_err();
        assert_eq!(err.code(), "url_not_allowed", "{url}");
        assert!(!err.is_retryable());
    }
    assert_eq!(srv.hits(), 0);
    assert!(!path.exists());

    // a refusal before the body starts leaves an existing destination alone
    std::fs::write(&path, b"keep").unwrap();
    fetch(&f, &srv.url("/file"), &path).await.unwrap_err();
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
}

/// The client's resolver is the second line of defence: a name whose answers are all blocked
/// is never connected to. (IP literals bypass reqwest resolvers: that is why every hop goes
/// through the literal check too.)
#[tokio::test]
async fn guarded_client_resolver_blocks_names() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy(""));
    let url = format!("http://localhost:{}/file", srv.addr.port());
    let err = f.client().get(&url).send().await.unwrap_err();
    assert!(format!("{err:?}").contains("BlockedAnswers"), "{err:?}");
    assert_eq!(srv.hits(), 0);
}

#[tokio::test]
async fn follows_redirects() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy("127.0.0.1"));
    let (_dir, path) = dest();
    let got = fetch(&f, &srv.url("/hop/3"), &path).await.unwrap();
    assert_eq!(got.final_url, srv.url("/file"));
    assert_eq!(got.size, FILE_LEN as u64);
    assert_eq!(srv.hits(), 5);
}

#[tokio::test]
async fn redirect_to_blocked_target_is_refused() {
    let srv = spawn_server("127.0.0.1:0").await;
    let other = spawn_server("127.0.0.2:0").await;
    let p2 = other.addr.port();
    let f = fetcher(policy("127.0.0.1/32"));
    let (_dir, path) = dest();
    // the second server is really reachable...
    assert!(
        Fetcher::new(policy("127.0.0.2"))
            .unwrap()
            .fetch_to_file(&other.url("/big"), &path, &go(), |_, _| {})
            .await
            .is_ok()
    );
    assert_eq!(other.hits(), 1);
    std::fs::remove_file(&path).unwrap();
    // ...but not through a redirect from an allowed host
    for target in [
        format!("http://127.0.0.2:{p2}/file"),
        format!("http://0x7f000002:{p2}/file"),
        format!("http://[::ffff:127.0.0.2]:{p2}/file"),
        format!("http://[::1]:{p2}/file"),
        format!("http://169.254.169.254:{p2}/latest/meta-data/"),
        format!("ftp://127.0.0.1:{p2}/file"),
        format!("http://user:pw@127.0.0.1:{}/file", srv.addr.port()),
    ] {
        let mut start = srv.url("/away");
        start.query_pairs_mut().append_pair("to", &target);
        let err = fetch(&f, &start, &path).await.unwrap_err();
        assert_eq!(err.code(), "url_not_allowed", "{target}: {err}");
        assert!(!err.is_retryable());
        let msg = err.to_string();
        assert!(msg.contains("redirect"), "{msg}");
        assert!(
            !msg.contains("127.0.0.2") && !msg.contains("169.254"),
            "{msg}"
        );
        assert!(!path.exists());
    }
    assert_eq!(other.hits(), 1);
}

#[tokio::test]
async fn too_many_redirects() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(FetchPolicy {
        max_redirects: 3,
        ..policy("127.0.0.1")
    });
    let (_dir, path) = dest();
    let err = fetch(&f, &srv.url("/loop"), &path).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { max: 3 }),
        "{err:?}"
    );
    assert_eq!(err.code(), "fetch_failed");
    assert!(!err.is_retryable());
    assert_eq!(srv.hits(), 4);
    // exactly max_redirects hops are fine (hop/2 -> hop/1 -> hop/0 -> file)
    assert!(fetch(&f, &srv.url("/hop/2"), &path).await.is_ok());
    std::fs::remove_file(&path).unwrap();
    assert!(fetch(&f, &srv.url("/hop/3"), &path).await.is_err());
    let err = fetch(&f, &srv.url("/noloc"), &path).await.unwrap_err();
    assert!(matches!(err, FetchError::BadRedirect(_)), "{err:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn content_length_over_limit() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(FetchPolicy {
        max_bytes: 1000,
        ..policy("127.0.0.1")
    });
    let (_dir, path) = dest();
    let mut calls = 0;
    let err = f
        .fetch_to_file(&srv.url("/big"), &path, &go(), |_, _| calls += 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1000 }),
        "{err:?}"
    );
    assert_eq!(err.code(), "input_too_large");
    assert!(!err.is_retryable());
    assert_eq!(calls, 0);
    assert!(!path.exists());
}

#[tokio::test]
async fn chunked_body_over_limit() {
    let srv = spawn_server("127.0.0.1:0").await;
    let (_dir, path) = dest();
    let f = fetcher(FetchPolicy {
        max_bytes: 4000,
        ..policy("127.0.0.1")
    });
    let mut seen = Vec::new();
    let err = f
        .fetch_to_file(&srv.url("/chunked"), &path, &go(), |n, total| {
            seen.push((n, total))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "input_too_large");
    assert!(!path.exists());
    assert!(seen.iter().all(|&(n, total)| n <= 4000 && total.is_none()));

    // a body of exactly the limit is accepted
    let f = fetcher(FetchPolicy {
        max_bytes: 10_000,
        ..policy("127.0.0.1")
    });
    let got = fetch(&f, &srv.url("/chunked"), &path).await.unwrap();
    assert_eq!(got.size, 10_000);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 10_000);
}

#[tokio::test]
async fn total_timeout() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(FetchPolicy {
        total_timeout: Duration::from_millis(300),
        ..policy("127.0.0.1")
    });
    let (_dir, path) = dest();
    for route in ["/slow", "/stall"] {
        let started = Instant::now();
        let err = fetch(&f, &srv.url(route), &path).await.unwrap_err();
        assert_eq!(err.code(), "fetch_timeout", "{route}: {err:?}");
        assert!(err.is_retryable());
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(!path.exists(), "{route}");
    }
}

/// A fetch cancelled mid-body returns at once, its partial file removed; one cancelled while
/// it waits for the answer creates none.
#[tokio::test]
async fn cancel_stops_the_fetch_and_removes_the_partial_file() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy("127.0.0.1"));
    let (_dir, path) = dest();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let mut got = 0;
    // The first chunk arrives and is written; the rest stalls for 10 s.
    let err = f
        .fetch_to_file(&srv.url("/stall"), &path, &cancel, |n, _| {
            got = n;
            cancel.cancel();
        })
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Cancelled), "{err:?}");
    assert_eq!(err.code(), "cancelled");
    assert!(!err.is_retryable());
    assert_eq!(got, 11);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!path.exists());

    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
    });
    let err = f
        .fetch_to_file(&srv.url("/slow"), &path, &cancel, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!path.exists());
}

#[tokio::test]
async fn http_errors() {
    let srv = spawn_server("127.0.0.1:0").await;
    let f = fetcher(policy("127.0.0.1"));
    let (_dir, path) = dest();
    let err = fetch(&f, &srv.url("/missing"), &path).await.unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 404 }),
        "{err:?}"
    );
    assert_eq!(err.code(), "http_status");
    assert!(!err.is_retryable());
    let err = fetch(&f, &srv.url("/unavailable"), &path)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 503 }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!path.exists());
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let f = fetcher(policy("127.0.0.1"));
    let (_dir, path) = dest();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let err = fetch(&f, &url, &path).await.unwrap_err();
    assert_eq!(err.code(), "fetch_failed", "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");
}
