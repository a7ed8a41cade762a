//! Request bodies are bounded: 64 KiB on the account routes, 1 MiB for other JSON, the upload
//! limit for multipart. A declared length over the bound is answered before the body is read;
//! a chunked body is cut off at the bound.

use std::time::Duration;

use reelforge_testkit::app::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MB: usize = 1024 * 1024;

/// Send `head` (request line and headers, without the blank line) and then `body` by hand,
/// reading the answer meanwhile: the server may answer and close before the body is sent.
/// Returns what the server wrote before it closed (or 10 s passed).
pub async fn send_raw(addr: &str, head: &str, body: Vec<Vec<u8>>) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!("{head}\r\nHost: {addr}\r\n\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        for chunk in body {
            wr.write_all(&chunk).await?;
        }
        // Keep the write side open: a closed one would end the request early.
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if complete(&answer) {
                break;
            }
        }
    })
    .await;
    writer.abort();
    String::from_utf8_lossy(&answer).to_string()
}

/// Whether `answer` holds a whole response (headers and a body of its `content-length`).
pub fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

/// `data` in chunked transfer coding, in pieces of `piece` bytes, with the last chunk.
pub fn chunked(data: Vec<u8>, piece: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = data
        .chunks(piece)
        .map(|c| {
            let mut v = format!("{:x}\r\n", c.len()).into_bytes();
            v.extend_from_slice(c);
            v.extend_from_slice(b"\r\n");
            v
        })
        .collect();
    out.push(b"0\r\n\r\n".to_vec());
    out
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

fn assert_too_large(answer: &str, what: &str) {
    assert!(answer.starts_with("HTTP/1.1 413"), "{what}: {answer:.300}");
    assert!(
        answer.contains(r#""error":"payload_too_large""#),
        "{what}: {answer:.300}"
    );
}

#[tokio::test]
async fn account_bodies_over_64_kib_are_refused_unread() {
    let app = spawn_app().await;
    let addr = addr(&app);
    for route in [
        "/api/auth/login",
        "/api/auth/signup",
        "/auth/login",
        "/auth/signup",
    ] {
        // Declared 50 MB and never sent: the answer cannot wait for the body.
        let head = format!(
            "POST {route} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
            50 * MB
        );
        let answer = send_raw(&addr, &head, vec![]).await;
        assert_too_large(&answer, route);
        assert!(answer.contains("65536 bytes"), "{answer}");
        // Chunked, no length: cut off at the bound, not read to the end.
        let head = format!("POST {route} HTTP/1.1\r\nTransfer-Encoding: chunked");
        let mut body = br#"{"username": "x", "password": ""#.to_vec();
        body.resize(4 * MB, b'a');
        let answer = send_raw(&addr, &head, chunked(body, 16 * 1024)).await;
        assert_too_large(&answer, route);
    }
    // Under the bound a long body is read and judged as usual.
    let password = "p".repeat(60 * 1024);
    let r = app
        .post_json(
            "/api/auth/login",
            &serde_json::json!({"username": "nobody", "password": password}),
        )
        .await;
    assert_eq!(error_code(r).await, (401, "invalid_credentials".into()));
}

#[tokio::test]
async fn other_json_bodies_are_bounded_at_1_mib() {
    let app = spawn_app().await;
    let t = app.user("jules").await;
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\n\
         Content-Length: {}",
        50 * MB
    );
    let answer = send_raw(&addr(&app), &head, vec![]).await;
    assert_too_large(&answer, "task JSON");
    // Routes that read no body are bounded too: the declared length is refused at once.
    let head = format!(
        "POST /api/tasks/0190a0a0-0000-7000-8000-000000000000/cancel HTTP/1.1\r\n\
         Authorization: Bearer {t}\r\nContent-Length: {}",
        50 * MB
    );
    assert_too_large(&send_raw(&addr(&app), &head, vec![]).await, "cancel");
    let r = app
        .post("/api/tasks", &t)
        .json(&serde_json::json!({"url": "http://93.184.216.34/a.mp4", "profile": "x".repeat(2 * MB)}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "payload_too_large".into()));
}

pub const BOUNDARY: &str = "XreelforgeBOUNDARYX";

/// A part of a hand-made multipart body: name, file name, bytes.
pub type Part<'a> = (&'a str, Option<&'a str>, Vec<u8>);

/// A multipart body of `parts`, with `preamble` before the first.
pub fn multipart(preamble: &[u8], parts: &[Part]) -> Vec<u8> {
    let mut out = preamble.to_vec();
    for (name, file, bytes) in parts {
        let file = file
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// `POST /api/tasks` of a multipart `body`, chunked (no length) when `chunk` is set.
pub async fn post_multipart(app: &TestApp, token: &str, body: Vec<u8>, chunk: bool) -> String {
    let framing = if chunk {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}"
    );
    let body = if chunk {
        chunked(body, 64 * 1024)
    } else {
        body.chunks(64 * 1024).map(<[u8]>::to_vec).collect()
    };
    send_raw(&addr(app), &head, body).await
}
