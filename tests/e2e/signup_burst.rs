//! Password hashing is bounded: a burst of parallel signups to a real `serve` process keeps
//! its memory flat. Each argon2 run holds 19 MiB; unbounded, 64 at once took 1.27 GB.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reelforge_testkit::process::Server;
use serde_json::json;

use crate::REELFORGE;

const SIGNUPS: usize = 64;
/// `REELFORGE_HASH_CONCURRENCY` in this test, so the bound holds on a machine of any size.
const HASHES_AT_ONCE: &str = "2";
/// Two hashes of 19 MiB, with room for the allocator, threads and request buffers.
const MAX_GROWTH_KIB: u64 = 160 * 1024;

/// The highest RSS of `server` (KiB) seen every few milliseconds until `done` is set.
fn peak_rss(server: &Server, done: &AtomicBool) -> u64 {
    let mut peak = 0;
    while !done.load(Ordering::SeqCst) {
        peak = peak.max(server.rss_kib().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    peak
}

async fn signup(c: &reqwest::Client, base: &str, i: usize) -> u16 {
    c.post(format!("{base}/api/auth/signup"))
        .json(
            &json!({"username": format!("burst{i}"), "email": format!("burst{i}@example.com"),
            "password1": "Secret123", "password2": "Secret123"}),
        )
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_burst_keeps_memory_bounded() {
    let data = tempfile::tempdir().unwrap();
    // A per-address limit this burst never reaches: this measures the hashing cap alone
    // (the limit has its own test in tests/api/accounts.rs).
    let server = REELFORGE.start_role(
        "serve",
        data.path(),
        &[
            ("REELFORGE_WORKERS", "0"),
            ("REELFORGE_SIGNUP_LIMIT", "1000/1h"),
            ("REELFORGE_HASH_CONCURRENCY", HASHES_AT_ONCE),
        ],
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    // Warm up the process (first hash, connection pool) before the baseline.
    assert_eq!(signup(&c, &server.base, SIGNUPS).await, 201);
    let before = server.rss_kib().expect("the server's VmRSS");
    let done = AtomicBool::new(false);
    let (peak, statuses) = std::thread::scope(|s| {
        let sampler = s.spawn(|| peak_rss(&server, &done));
        let statuses = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(futures::future::join_all(
                (0..SIGNUPS).map(|i| signup(&c, &server.base, i)),
            ))
        });
        done.store(true, Ordering::SeqCst);
        (sampler.join().unwrap(), statuses)
    });
    let after = server.rss_kib().unwrap_or(0);
    let created = statuses.iter().filter(|s| **s == 201).count();
    eprintln!(
        "signup burst: {SIGNUPS} parallel signups, {created} created; RSS before {before} KiB, \
         peak {peak} KiB (+{} MiB), after {after} KiB; {HASHES_AT_ONCE} hashes at once",
        peak.saturating_sub(before) / 1024
    );
    assert_eq!(created, SIGNUPS, "{statuses:?}");
    assert!(
        peak.saturating_sub(before) < MAX_GROWTH_KIB,
        "RSS grew by {} MiB during the burst",
        peak.saturating_sub(before) / 1024
    );
}
