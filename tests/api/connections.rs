//! Connections that keep the server waiting are closed: silent ones and half-sent heads after
//! `REELFORGE_HEADER_TIMEOUT`, idle keep-alive ones and half-sent bodies after
//! `REELFORGE_IDLE_TIMEOUT`; meanwhile the service answers.

use std::time::{Duration, Instant};

use reelforge_testkit::app::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read one response whose head ends the text or whose `content-length` body has arrived.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !crate::limits::complete(&got) {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).to_string()
}

/// Whether the server closes `s` within `limit` (end of stream or reset, nothing else read).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(limit, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_and_health_keeps_answering() {
    let app = spawn_app_with(Options {
        header_timeout: Some("500ms"),
        idle_timeout: Some("1500ms"),
        ..Default::default()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let health = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let start = Instant::now();
    let mut silent = vec![];
    let mut half_head = vec![];
    let mut keep_alive = vec![];
    let mut half_body = vec![];
    for _ in 0..100 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
            .await
            .unwrap();
        half_head.push(s);
    }
    for _ in 0..50 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(health.as_bytes()).await.unwrap();
        let answer = read_response(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        keep_alive.push(s);
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{\"user"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        half_body.push(s);
    }
    // 300 connections hold the server; it still answers.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    for s in silent.iter_mut().chain(half_head.iter_mut()) {
        assert!(
            closed_within(s, Duration::from_secs(3)).await,
            "a head was waited for too long"
        );
    }
    let heads_closed = start.elapsed();
    // An idle keep-alive connection outlives the header timeout: it still serves a request.
    let mut reused = keep_alive.pop().unwrap();
    reused.write_all(health.as_bytes()).await.unwrap();
    let answer = read_response(&mut reused).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for s in keep_alive.iter_mut().chain(half_body.iter_mut()) {
        assert!(
            closed_within(s, Duration::from_secs(4)).await,
            "an idle connection stayed open"
        );
    }
    assert!(closed_within(&mut reused, Duration::from_secs(4)).await);
    eprintln!(
        "heads closed after {heads_closed:?}, idle connections after {:?}",
        start.elapsed()
    );
    assert!(
        heads_closed >= Duration::from_millis(450),
        "{heads_closed:?}"
    );
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
