//! The same cases against local files and against an S3-compatible server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use reelforge::storage::{Storage, StorageError, StorageOptions, keys};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::moto::Moto;

const MIB: usize = 1024 * 1024;

/// Held by the cases that move tens of MiB, so the memory measurement sees only its own.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub enum Backend {
    Local(tempfile::TempDir),
    S3 { moto: Moto, bucket: String },
}

pub struct Fixture {
    pub storage: Storage,
    pub backend: Backend,
}

impl Fixture {
    pub fn local() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        Fixture {
            storage: Storage::from_url(&url, &StorageOptions::default()).unwrap(),
            backend: Backend::Local(dir),
        }
    }

    /// A fresh server with bucket `reels`; the store works under `s3://reels/site/a`.
    pub async fn s3(test: &str) -> Option<Fixture> {
        let moto = Moto::start(test).await?;
        let bucket = "reels".to_string();
        moto.bucket(&bucket).await;
        Some(Fixture {
            storage: moto.storage(&format!("s3://{bucket}/site/a")),
            backend: Backend::S3 { moto, bucket },
        })
    }

    /// Everything the store holds, by the backend's own view: files under the root, or
    /// every object of the bucket plus one entry per unfinished multipart upload.
    pub async fn leftovers(&self) -> Vec<String> {
        match &self.backend {
            Backend::Local(dir) => {
                let mut out = vec![];
                walk(dir.path(), &mut out);
                out.into_iter().map(|p| p.display().to_string()).collect()
            }
            Backend::S3 { moto, bucket } => {
                let mut out = moto.all_keys(bucket).await;
                for i in 0..moto.open_uploads(bucket).await {
                    out.push(format!("<open multipart upload {i}>"));
                }
                out
            }
        }
    }

    /// Poll `leftovers` until empty (a dropped upload is aborted in the background).
    pub async fn wait_empty(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = self.leftovers().await;
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn walk(p: &std::path::Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Byte `i` of the test pattern.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// `total` bytes of the pattern in 1 MiB chunks, made only as they are pulled.
fn lazy_body(total: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    futures::stream::iter((0..total).step_by(MIB)).map(move |start| {
        let end = (start + MIB).min(total);
        Ok(Bytes::from((start..end).map(pattern).collect::<Vec<u8>>()))
    })
}

async fn read_all(s: &Storage, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let o = s.read(key, range).await.unwrap();
    let parts: Vec<Bytes> = o.body.try_collect().await.unwrap();
    parts.concat()
}

/// Resident set now, and the peak since the last reset, in bytes (Linux).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 48 MiB in lazily made 1 MiB chunks: several multipart parts, and the peak resident
/// memory grows by far less than the body (the cap is a few parts in flight).
async fn put_stream_large(f: Fixture, baseline: u64) {
    const TOTAL: usize = 48 * MIB;
    let key = keys::input(Uuid::now_v7(), "big.bin");
    // Reset the peak so it measures this upload; it is compared with the resident set
    // before any large upload of this test (freed memory stays resident for reuse).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let n = f
        .storage
        .put_stream(&key, lazy_body(TOTAL), u64::MAX)
        .await
        .unwrap();
    let (_, peak) = rss();
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "put_stream {} MiB: peak RSS grew by {:.1} MiB",
        TOTAL / MIB,
        grew as f64 / MIB as f64
    );
    assert_eq!(n, TOTAL as u64);
    assert!(
        grew < 40 * MIB as u64,
        "peak RSS grew by {grew} bytes for a {TOTAL}-byte upload"
    );
    assert_eq!(f.storage.size(&key).await.unwrap(), TOTAL as u64);
    if let Backend::S3 { moto, bucket } = &f.backend {
        // 8 MiB parts: six of them.
        let etag = moto.etag(bucket, &format!("site/a/{key}")).await;
        assert!(etag.trim_matches('"').ends_with("-6"), "{etag}");
        assert_eq!(moto.open_uploads(bucket).await, 0);
    }
    // Across the first part boundary, and the tail.
    let b = 8 * MIB as u64;
    let got = read_all(&f.storage, &key, Some(b - 3..b + 3)).await;
    let want: Vec<u8> = (b as usize - 3..b as usize + 3).map(pattern).collect();
    assert_eq!(got, want);
    let got = read_all(&f.storage, &key, Some(TOTAL as u64 - 5..TOTAL as u64)).await;
    let want: Vec<u8> = (TOTAL - 5..TOTAL).map(pattern).collect();
    assert_eq!(got, want);
    // The whole object, streamed back and compared.
    let o = f.storage.read(&key, None).await.unwrap();
    let mut body = o.body;
    let mut at = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().enumerate().all(|(i, b)| *b == pattern(at + i)));
        at += chunk.len();
    }
    assert_eq!(at, TOTAL);
    f.storage.delete(&key).await.unwrap();
    f.wait_empty().await;
}

/// Over the limit after two parts were sent: refused, and nothing remains (no object, no
/// parts of an unfinished multipart upload).
async fn too_large_leaves_nothing(f: Fixture) {
    let _heavy = HEAVY.lock().await;
    let key = keys::input(Uuid::now_v7(), "huge.bin");
    let r = f
        .storage
        .put_stream(&key, lazy_body(30 * MIB), 20 * MIB as u64)
        .await;
    assert!(
        matches!(r, Err(StorageError::TooLarge(l)) if l == 20 * MIB as u64),
        "{r:?}"
    );
    assert!(matches!(
        f.storage.size(&key).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(f.leftovers().await, Vec::<String>::new());

    // A body that fails half-way is aborted the same way.
    let failing = lazy_body(12 * MIB).chain(futures::stream::iter([Err(std::io::Error::other(
        "client went away",
    ))]));
    let r = f.storage.put_stream(&key, failing, u64::MAX).await;
    assert!(matches!(r, Err(StorageError::Body(_))), "{r:?}");
    assert_eq!(f.leftovers().await, Vec::<String>::new());

    // An upload whose caller stops polling (the client hung up) is aborted too.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stalls = lazy_body(17 * MIB).chain(futures::stream::once(async move {
        let _ = tx.send(());
        futures::future::pending::<Result<Bytes, std::io::Error>>().await
    }));
    let upload = f.storage.put_stream(&key, Box::pin(stalls), u64::MAX);
    tokio::select! {
        r = upload => panic!("a stalled body finished: {r:?}"),
        _ = rx => {}
    }
    f.wait_empty().await;
}

async fn get_range_and_errors(f: Fixture) {
    let t = Uuid::now_v7();
    let key = keys::input(t, "clip.mov");
    let bytes: Vec<u8> = (0..3000).map(pattern).collect();
    let n = f
        .storage
        .put_stream(
            &key,
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes.clone()))]),
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(n, 3000);
    assert_eq!(f.storage.size(&key).await.unwrap(), 3000);
    assert_eq!(read_all(&f.storage, &key, None).await, bytes);
    let o = f.storage.read(&key, Some(999..1001)).await.unwrap();
    assert_eq!((o.size, o.range.clone()), (3000, 999..1001));
    let part: Vec<Bytes> = o.body.try_collect().await.unwrap();
    assert_eq!(part.concat(), bytes[999..1001]);
    assert_eq!(
        read_all(&f.storage, &key, Some(2990..3000)).await,
        bytes[2990..]
    );

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("copy");
    let go = CancellationToken::new();
    assert_eq!(
        f.storage.get_to_file(&key, &local, &go).await.unwrap(),
        3000
    );
    assert_eq!(std::fs::read(&local).unwrap(), bytes);
    // Cancelled: a local link is made all the same (one quick operation, never abandoned),
    // a download stops before its first byte.
    let stop = CancellationToken::new();
    stop.cancel();
    let copied = f
        .storage
        .get_to_file(&key, &dir.path().join("c2"), &stop)
        .await;
    match &f.backend {
        Backend::Local(_) => assert_eq!(copied.unwrap(), 3000),
        Backend::S3 { .. } => assert!(matches!(copied, Err(StorageError::Cancelled)), "{copied:?}"),
    }
    // And back again under another key.
    let key2 = keys::output(t, 1, "copy.mov");
    assert_eq!(f.storage.put_file(&key2, &local).await.unwrap(), 3000);
    assert_eq!(read_all(&f.storage, &key2, None).await, bytes);

    let missing = keys::input(t, "nope.mov");
    assert!(matches!(
        f.storage.size(&missing).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        f.storage.read(&missing, None).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        f.storage.get_to_file(&missing, &local, &go).await,
        Err(StorageError::NotFound)
    ));
    // Deleting what is not there is not an error.
    f.storage.delete(&missing).await.unwrap();
    assert_eq!(
        f.storage
            .delete_prefix(&keys::task_prefix(t))
            .await
            .unwrap(),
        2
    );
    f.wait_empty().await;
}

async fn list_delete_prefix_and_prune(f: Fixture) {
    let (t, other) = (Uuid::now_v7(), Uuid::now_v7());
    let put = |key: String| {
        let s = f.storage.clone();
        async move {
            s.put_stream(
                &key,
                futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]),
                10,
            )
            .await
            .unwrap();
        }
    };
    for run in 1..=3 {
        put(keys::output(t, run, "a.mp4")).await;
        put(keys::output(t, run, "b.jpg")).await;
    }
    put(keys::input(t, "in.mp4")).await;
    put(keys::output(other, 1, "a.mp4")).await;
    f.storage.prune_runs(t, 2).await.unwrap();
    let mut left = f.storage.list(&keys::task_prefix(t)).await.unwrap();
    left.sort();
    assert_eq!(
        left,
        vec![
            keys::input(t, "in.mp4"),
            keys::output(t, 2, "a.mp4"),
            keys::output(t, 2, "b.jpg"),
        ]
    );
    assert_eq!(
        f.storage
            .delete_prefix(&keys::task_prefix(t))
            .await
            .unwrap(),
        3
    );
    assert!(
        f.storage
            .list(&keys::task_prefix(t))
            .await
            .unwrap()
            .is_empty()
    );
    // The other task was not touched.
    assert_eq!(
        f.storage.list(&keys::task_prefix(other)).await.unwrap(),
        vec![keys::output(other, 1, "a.mp4")]
    );
    f.storage
        .delete_prefix(&keys::task_prefix(other))
        .await
        .unwrap();
    f.wait_empty().await;
}

async fn ping_leaves_nothing(f: Fixture) {
    f.storage.ping().await.unwrap();
    f.wait_empty().await;
}

/// Local storage has no signed URLs: downloads stream through the API.
async fn signed_urls_only_remote(f: Fixture) {
    let key = keys::input(Uuid::now_v7(), "a.mp4");
    let url = f
        .storage
        .signed_url(&key, "attachment; filename=\"a.mp4\"", "video/mp4")
        .await
        .unwrap();
    match &f.backend {
        Backend::Local(_) => assert!(url.is_none() && !f.storage.signs_urls()),
        Backend::S3 { moto, .. } => {
            let url = url.unwrap();
            assert!(f.storage.signs_urls());
            assert!(url.as_str().starts_with(&moto.endpoint), "{url}");
        }
    }
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn local() {
                super::$case(super::Fixture::local()).await;
            }
            #[tokio::test]
            async fn s3() {
                if let Some(f) = super::Fixture::s3(concat!(stringify!($case), "::s3")).await {
                    super::$case(f).await;
                }
            }
        }
    )*};
}

on_both!(
    too_large_leaves_nothing,
    get_range_and_errors,
    list_delete_prefix_and_prune,
    ping_leaves_nothing,
    signed_urls_only_remote,
);

/// Local and S3 in one test holding `HEAVY`, so no other large upload of this binary runs
/// beside it while the peak memory is measured.
#[tokio::test]
async fn put_stream_large_with_constant_memory() {
    let _heavy = HEAVY.lock().await;
    let s3 = Fixture::s3("put_stream_large_with_constant_memory::s3").await;
    let (baseline, _) = rss();
    put_stream_large(Fixture::local(), baseline).await;
    if let Some(f) = s3 {
        put_stream_large(f, baseline).await;
    }
}

/// Two installations in one bucket under different prefixes never see or delete each
/// other's keys, and every key is under its store's prefix.
#[tokio::test]
async fn prefixes_keep_installations_apart() {
    let Some(moto) = Moto::start("prefixes_keep_installations_apart").await else {
        return;
    };
    moto.bucket("shared").await;
    let (a, b) = (
        moto.storage("s3://shared/site-a"),
        moto.storage("s3://shared/site-b/nested/"),
    );
    let t = Uuid::now_v7();
    for s in [&a, &b] {
        s.put_stream(
            &keys::input(t, "in.mp4"),
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]),
            10,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        moto.all_keys("shared").await,
        vec![
            format!("site-a/{}", keys::input(t, "in.mp4")),
            format!("site-b/nested/{}", keys::input(t, "in.mp4")),
        ]
    );
    assert_eq!(a.list("").await.unwrap(), vec![keys::input(t, "in.mp4")]);
    assert_eq!(a.delete_prefix(&keys::task_prefix(t)).await.unwrap(), 1);
    assert_eq!(
        moto.all_keys("shared").await,
        vec![format!("site-b/nested/{}", keys::input(t, "in.mp4"))]
    );
    assert_eq!(b.size(&keys::input(t, "in.mp4")).await.unwrap(), 3);
    // Signed URLs carry the prefix too.
    let url = b
        .signed_url(&keys::input(t, "in.mp4"), "attachment", "video/mp4")
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.path().starts_with("/shared/site-b/nested/tasks/"),
        "{url}"
    );
}
