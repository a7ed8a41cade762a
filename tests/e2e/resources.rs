//! Resources stay bounded under hostile clients, measured on the real binary.
//!
//! Memory: ten concurrent 50 MB log-in bodies (declared and chunked), and multipart uploads
//! with a huge unknown part, a huge text part, a huge preamble and a file over the upload
//! limit. The resident set may grow by the work of bounded buffers, never by the bodies: the
//! bound is 64 MiB for the whole run (a 50 MB login body read whole would alone exceed it).
//!
//! Descriptors: with a limit of 256 open files, 300 connections that send nothing or half a
//! head do not keep `/healthz` from answering, and are all closed.

use std::time::{Duration, Instant};

use reelforge_testkit::process::{Server, login, spawn_logged};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::REELFORGE;

const MB: usize = 1024 * 1024;
const BOUNDARY: &str = "XresourcesBOUNDARYX";

/// How a flood sends its body.
#[derive(Clone, Copy)]
enum Framing {
    /// `Content-Length` declared up front.
    Declared,
    /// `Transfer-Encoding: chunked`: the server learns the size only while reading.
    Chunked,
}

/// Send `head`, then `prefix` and `size` filler bytes of `fill` and `suffix`, as fast as the
/// server takes them, while reading its answer; returns the status line (empty when the
/// connection was cut without one).
async fn flood(
    addr: String,
    head: String,
    (prefix, size, fill, suffix): (Vec<u8>, usize, u8, Vec<u8>),
    framing: Framing,
) -> String {
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let total = prefix.len() + size + suffix.len();
    let framing_header = match framing {
        Framing::Declared => format!("Content-Length: {total}"),
        Framing::Chunked => "Transfer-Encoding: chunked".to_string(),
    };
    let writer = tokio::spawn(async move {
        wr.write_all(format!("{head}\r\nHost: {addr}\r\n{framing_header}\r\n\r\n").as_bytes())
            .await?;
        write_piece(&mut wr, &prefix, framing).await?;
        // Written as it goes: at most one piece of the filler is ever held here.
        let piece = vec![fill; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(piece.len());
            write_piece(&mut wr, &piece[..n], framing).await?;
            left -= n;
        }
        write_piece(&mut wr, &suffix, framing).await?;
        if matches!(framing, Framing::Chunked) {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        // Keep the connection open: the server answers, then closes it.
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

async fn write_piece(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    piece: &[u8],
    framing: Framing,
) -> std::io::Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    if matches!(framing, Framing::Chunked) {
        wr.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await?;
        wr.write_all(piece).await?;
        return wr.write_all(b"\r\n").await;
    }
    wr.write_all(piece).await
}

/// The opening of a multipart part.
fn part_head(name: &str, file: Option<&str>) -> Vec<u8> {
    let file = file
        .map(|f| format!("; filename=\"{f}\""))
        .unwrap_or_default();
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n")
        .into_bytes()
}

fn closing() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
}

/// Run `load` while sampling the server's RSS; returns its result and the peak in KiB.
async fn peak_rss<T>(server: &Server, load: impl std::future::Future<Output = T>) -> (T, u64) {
    tokio::pin!(load);
    let mut peak = server.rss_kib().unwrap_or(0);
    loop {
        tokio::select! {
            out = &mut load => return (out, peak.max(server.rss_kib().unwrap_or(0))),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                peak = peak.max(server.rss_kib().unwrap_or(0));
            }
        }
    }
}

#[tokio::test]
async fn memory_stays_flat_under_oversized_logins_and_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let server = REELFORGE.start_role(
        "serve",
        dir.path(),
        &[
            ("REELFORGE_WORKERS", "0"),
            ("REELFORGE_MAX_UPLOAD", "32MiB"),
            ("REELFORGE_ACCESS_LOG", "false"),
        ],
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    // Warm up what every process has anyway (a password hash, a small upload).
    let token = login(&c, &server.base, true).await;
    let small = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![1u8; 4096]).file_name("warm.mp4"),
    );
    let r = c
        .post(format!("{}/api/tasks", server.base))
        .bearer_auth(&token)
        .multipart(small)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base = server.rss_kib().expect("no /proc RSS on this system");

    // (a) Ten concurrent 50 MB log-in bodies, half declared, half chunked.
    let started = Instant::now();
    let logins = (0..10).map(|i| {
        let framing = if i % 2 == 0 {
            Framing::Declared
        } else {
            Framing::Chunked
        };
        let body = (
            br#"{"username": "vic", "password": ""#.to_vec(),
            50 * MB,
            b'a',
            b"\"}".to_vec(),
        );
        let head = "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json".to_string();
        flood(addr.clone(), head, body, framing)
    });
    let (statuses, login_peak) = peak_rss(&server, futures::future::join_all(logins)).await;
    eprintln!(
        "RSS KiB: start {base}, peak under 10 × 50 MB log-ins {login_peak} (took {:?})",
        started.elapsed()
    );
    for s in &statuses {
        assert!(s.starts_with("HTTP/1.1 413"), "{statuses:?}");
    }

    // (b) Oversized multipart uploads, each cut off at its own bound.
    let upload_head = format!(
        "POST /api/tasks HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}"
    );
    let file_then = |name: &str| {
        let mut p = part_head("file", Some("a.mp4"));
        p.extend_from_slice(&[1u8; 1000]);
        p.extend_from_slice(b"\r\n");
        p.extend_from_slice(&part_head(name, None));
        p
    };
    let uploads = vec![
        // An unknown part of 50 MB.
        (file_then("junk"), Framing::Chunked),
        // A text part of 50 MB.
        (file_then("options"), Framing::Chunked),
        (file_then("profile"), Framing::Declared),
        // A preamble of 50 MB before the first part.
        (Vec::new(), Framing::Chunked),
        // A file of 50 MB, over the 32 MiB limit, declared and chunked.
        (part_head("file", Some("big.mp4")), Framing::Declared),
        (part_head("file", Some("big.mp4")), Framing::Chunked),
    ];
    let uploads = uploads.into_iter().map(|(prefix, framing)| {
        flood(
            addr.clone(),
            upload_head.clone(),
            (prefix, 50 * MB, b'z', closing()),
            framing,
        )
    });
    let (statuses, upload_peak) = peak_rss(&server, futures::future::join_all(uploads)).await;
    let end = server.rss_kib().unwrap_or(0);
    eprintln!("RSS KiB: peak under oversized uploads {upload_peak}, end {end}");
    for s in &statuses[..1] {
        assert!(s.starts_with("HTTP/1.1 400"), "{statuses:?}");
    }
    for s in &statuses[1..] {
        assert!(s.starts_with("HTTP/1.1 413"), "{statuses:?}");
    }
    let growth = login_peak.max(upload_peak).saturating_sub(base);
    assert!(
        growth < 64 * 1024,
        "RSS grew by {growth} KiB (from {base} KiB)"
    );
    // Still serving.
    let r = c
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn health_answers_while_silent_connections_outnumber_the_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 256 && exec \"$0\" serve",
        env!("CARGO_BIN_EXE_reelforge"),
    ])
    .env("REELFORGE_DATA_DIR", dir.path())
    .env("REELFORGE_LISTEN", "127.0.0.1:0")
    .env("REELFORGE_WORKERS", "0")
    .env("REELFORGE_HEADER_TIMEOUT", "1s")
    .env("REELFORGE_ACCESS_LOG", "false");
    let server = spawn_logged(cmd, "listening on http://");
    let addr = server.base.trim_start_matches("http://").to_string();
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // Paced, so the server accepts each rather than the listen backlog overflowing.
    let started = Instant::now();
    let mut silent = Vec::new();
    for i in 0..300 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        silent.push(s);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!("{} descriptors open after {:?}", fds(), started.elapsed());
    assert!(
        fds() >= 250,
        "the server should hold nearly every descriptor it may"
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        c.get(format!("{}/healthz", server.base)).send(),
    )
    .await;
    eprintln!(
        "/healthz with 300 silent connections and 256 descriptors: {:?} after {:?}",
        health.as_ref().map(|r| r.as_ref().map(|r| r.status())),
        started.elapsed()
    );
    assert!(
        matches!(&health, Ok(Ok(r)) if r.status() == 200),
        "{health:?}"
    );
    for s in &mut silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection stayed open: {read:?}"
        );
    }
    eprintln!("all 300 closed after {:?}", started.elapsed());
    assert!(
        server.logged("cannot accept a connection"),
        "the descriptors ran out"
    );
}
