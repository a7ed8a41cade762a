//! Resumable uploads (tus 1.0) from the outside: raw HTTP requests for every status code
//! of the protocol ([`protocol_cases`], run on each storage backend by its suite), and the
//! independent Python client `tuspy` ([`tuspy_upload`]).

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::app::{TestApp, error_code};

pub const OFFSET_STREAM: &str = "application/offset+octet-stream";

/// `Upload-Metadata` of `pairs`.
pub fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// `Upload-Checksum` of `bytes`.
pub fn sha1_header(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    format!("sha1 {}", STANDARD.encode(digest))
}

/// Bytes that differ at every position, so a misplaced byte shows.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A tus request of `token` to `path` (`/api/uploads…` or an upload's URL).
pub fn request(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
}

/// Create an upload of `length` bytes; returns its path (`/api/uploads/{id}`).
pub async fn create(app: &TestApp, token: &str, length: u64, meta: &[(&str, &str)]) -> String {
    let r = request(app, Method::POST, "/api/uploads", token)
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata(meta))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    location(&r)
}

pub fn location(r: &Response) -> String {
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/api/uploads/"), "{loc}");
    loc
}

pub async fn patch(
    app: &TestApp,
    token: &str,
    path: &str,
    offset: u64,
    bytes: Vec<u8>,
) -> Response {
    request(app, Method::PATCH, path, token)
        .header("upload-offset", offset.to_string())
        .header("content-type", OFFSET_STREAM)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// `Upload-Offset` as `HEAD` reports it.
pub async fn offset(app: &TestApp, token: &str, path: &str) -> u64 {
    let r = request(app, Method::HEAD, path, token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "HEAD {path}");
    header_u64(&r, "upload-offset")
}

pub fn header_u64(r: &Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

fn assert_tus(r: &Response) {
    assert_eq!(
        r.headers()["tus-resumable"],
        "1.0.0",
        "{} {}",
        r.status(),
        r.url()
    );
}

/// Expect `status` and error `code` (and `Tus-Resumable`, as on every response).
async fn expect_error(r: Response, status: u16, code: &str) {
    assert_tus(&r);
    assert_eq!(error_code(r).await, (status, code.to_string()));
}

/// Every status code of the protocol, through raw HTTP, as a client sees them. Leaves one
/// finished upload turned into a task; returns that task's id.
pub async fn protocol_cases(app: &TestApp, max_upload: u64) -> String {
    let t = app.user("tusa").await;
    let other = app.user("tusb").await;

    // OPTIONS: what the server speaks, no token needed.
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/api/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_tus(&r);
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    let ext = r.headers()["tus-extension"].to_str().unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{e} missing from {ext}");
    }
    assert_eq!(header_u64(&r, "tus-max-size"), max_upload);
    assert!(
        r.headers()["tus-checksum-algorithm"]
            .to_str()
            .unwrap()
            .contains("sha1")
    );

    // 412: no or another protocol version (with the version spoken).
    for version in [None, Some("0.2.2")] {
        let mut req = app
            .client
            .post(app.url("/api/uploads"))
            .bearer_auth(&t)
            .header("upload-length", "10");
        if let Some(v) = version {
            req = req.header("tus-resumable", v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["tus-version"], "1.0.0");
        expect_error(r, 412, "unsupported_version").await;
    }
    // 401 without a token.
    let r = app
        .client
        .post(app.url("/api/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthorized").await;
    // 400: no length, a bad length, bad metadata, metadata naming a bad profile; empty.
    // (headers, the error code, a metadata key naming a profile that does not exist)
    type BadCreation<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let bad_creations: [BadCreation; 5] = [
        (&[], "invalid_header", ""),
        (&[("upload-length", "ten")], "invalid_header", ""),
        (
            &[("upload-length", "10"), ("upload-metadata", "filename !!")],
            "invalid_header",
            "",
        ),
        (&[("upload-length", "10")], "invalid_profile", "profile"),
        (&[("upload-length", "0")], "empty_file", ""),
    ];
    for (headers, code, meta_key) in bad_creations {
        let mut req = request(app, Method::POST, "/api/uploads", &t);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !meta_key.is_empty() {
            req = req.header("upload-metadata", metadata(&[(meta_key, "nonesuch")]));
        }
        expect_error(req.send().await.unwrap(), 400, code).await;
    }
    // 413: longer than REELFORGE_MAX_UPLOAD.
    let r = request(app, Method::POST, "/api/uploads", &t)
        .header("upload-length", (max_upload + 1).to_string())
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "payload_too_large").await;

    // 201, with a future Upload-Expires; HEAD echoes the sanitised metadata.
    let all = data(300_000);
    let r = request(app, Method::POST, "/api/uploads", &t)
        .header("upload-length", all.len().to_string())
        .header(
            "upload-metadata",
            metadata(&[("filename", "../My Clip\u{7}.mp4")]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_tus(&r);
    let expires = r.headers()["upload-expires"].to_str().unwrap();
    let expires = httpdate::parse_http_date(expires).unwrap();
    assert!(expires > SystemTime::now(), "Upload-Expires is in the past");
    let up = location(&r);
    let r = request(app, Method::HEAD, &up, &t).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(header_u64(&r, "upload-offset"), 0);
    assert_eq!(header_u64(&r, "upload-length"), all.len() as u64);
    assert_eq!(
        r.headers()["upload-metadata"],
        metadata(&[("filename", "My_Clip.mp4")]).as_str()
    );

    // Another user's upload is not there at all.
    for method in [Method::HEAD, Method::PATCH, Method::DELETE] {
        let r = request(app, method.clone(), &up, &other)
            .header("upload-offset", "0")
            .header("content-type", OFFSET_STREAM)
            .body(vec![1u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} of another user's upload");
    }
    assert_eq!(offset(app, &t, &up).await, 0);

    // PATCH: 415 for another type, 400 without an offset, 409 at the wrong one.
    let r = request(app, Method::PATCH, &up, &t)
        .header("upload-offset", "0")
        .header("content-type", "application/octet-stream")
        .body(all[..10].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 415, "unsupported_content_type").await;
    let r = request(app, Method::PATCH, &up, &t)
        .header("content-type", OFFSET_STREAM)
        .body(all[..10].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_header").await;
    expect_error(
        patch(app, &t, &up, 5, all[..10].to_vec()).await,
        409,
        "offset_mismatch",
    )
    .await;

    // 100 000 bytes stored; HEAD says so; Upload-Expires moves on.
    let r = patch(app, &t, &up, 0, all[..100_000].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_tus(&r);
    assert_eq!(header_u64(&r, "upload-offset"), 100_000);
    assert!(r.headers().contains_key("upload-expires"));

    // 460: a checksum that does not match keeps nothing; the right one is stored.
    let chunk = all[100_000..200_000].to_vec();
    let r = request(app, Method::PATCH, &up, &t)
        .header("upload-offset", "100000")
        .header("content-type", OFFSET_STREAM)
        .header("upload-checksum", sha1_header(b"something else"))
        .body(chunk.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 460, "checksum_mismatch").await;
    assert_eq!(offset(app, &t, &up).await, 100_000);
    let r = request(app, Method::PATCH, &up, &t)
        .header("upload-offset", "100000")
        .header("content-type", OFFSET_STREAM)
        .header("upload-checksum", "md5 1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(chunk.clone())
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unsupported_checksum").await;
    let r = request(app, Method::PATCH, &up, &t)
        .header("upload-offset", "100000")
        .header("content-type", OFFSET_STREAM)
        .header("upload-checksum", sha1_header(&chunk))
        .body(chunk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(header_u64(&r, "upload-offset"), 200_000);

    // 413: bytes past Upload-Length keep nothing.
    let mut too_long = all[200_000..].to_vec();
    too_long.push(7);
    expect_error(
        patch(app, &t, &up, 200_000, too_long).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(offset(app, &t, &up).await, 200_000);

    // A task from an unfinished upload: 409.
    let r = app
        .post_json_as(
            "/api/tasks",
            &t,
            &json!({"upload": up, "profile": "thumbnail"}),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "upload_incomplete".into()));

    // The last bytes: finished. No task yet (no profile in the metadata).
    let r = patch(app, &t, &up, 200_000, all[200_000..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header_u64(&r, "upload-offset"), all.len() as u64);
    assert!(!r.headers().contains_key("reelforge-task"));

    // POST /api/tasks {"upload": URL} makes the task, with the upload's id, once.
    let r = app
        .post_json_as("/api/tasks", &other, &json!({"upload": up}))
        .await;
    assert_eq!(r.status(), 404, "another user's upload made a task");
    let r = app
        .post_json_as(
            "/api/tasks",
            &t,
            &json!({"upload": up, "profile": "thumbnail"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    assert!(up.ends_with(&id), "{up} vs task {id}");
    assert_eq!(task["profile"], "thumbnail");
    assert_eq!(task["source"]["kind"], "upload");
    assert_eq!(task["source"]["filename"], "My_Clip.mp4");
    assert_eq!(task["source"]["size"], all.len() as u64);
    let r = app
        .post_json_as("/api/tasks", &t, &json!({"upload": up}))
        .await;
    assert_eq!(error_code(r).await, (409, "upload_used".into()));
    // The task's input is the bytes sent, once, in order.
    let input = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(input.status(), 200);
    assert!(
        input.bytes().await.unwrap() == all,
        "the input differs from the bytes sent"
    );

    // creation-with-upload, metadata naming the profile: the task is queued as the
    // last byte arrives, and its URL is in the answer.
    let small = data(50_000);
    let r = request(app, Method::POST, "/api/uploads", &t)
        .header("upload-length", small.len().to_string())
        .header(
            "upload-metadata",
            metadata(&[
                ("filename", "a.mov"),
                ("profile", "convert"),
                ("options", r#"{"format":"webm"}"#),
            ]),
        )
        .header("content-type", OFFSET_STREAM)
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header_u64(&r, "upload-offset"), small.len() as u64);
    let task_url = r.headers()["reelforge-task"].to_str().unwrap().to_string();
    let made = app.get(&task_url, &t).send().await.unwrap();
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["status"], "queued");
    assert_eq!(made["options"]["format"], "webm");
    assert_eq!(made["source"]["filename"], "a.mov");
    // A repeated final PATCH changes nothing.
    let up2 = location(&r);
    let r = patch(app, &t, &up2, small.len() as u64, vec![]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["reelforge-task"], task_url.as_str());

    // DELETE (termination): 204, then gone.
    let up3 = create(app, &t, 1000, &[]).await;
    assert_eq!(patch(app, &t, &up3, 0, data(400)).await.status(), 204);
    let r = request(app, Method::DELETE, &up3, &t).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_tus(&r);
    let r = request(app, Method::HEAD, &up3, &t).send().await.unwrap();
    assert_eq!(r.status(), 404);
    id
}

/// The `tuspy` client's Python (`REELFORGE_TEST_TUSPY`, a venv `scripts/test.sh` makes);
/// `None` (said on stderr) when unset outside CI, a failure under CI.
pub fn tuspy_python(test: &str) -> Option<String> {
    match std::env::var("REELFORGE_TEST_TUSPY") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if crate::in_ci() => {
            panic!("REELFORGE_TEST_TUSPY is not set under CI: scripts/test.sh need_tuspy")
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: tus client case {test}: REELFORGE_TEST_TUSPY is not set (bash \
                 scripts/test.sh makes a venv with tuspy and sets it)"
            );
            None
        }
    }
}

/// Upload `file` with tuspy (`tests/tus/tuspy_upload.py`) in `chunk`-byte requests; returns
/// the upload's URL as the client reports it. (A child process awaited, never waited for:
/// the server under test may share this thread.)
pub async fn tuspy_upload(
    python: &str,
    app: &TestApp,
    token: &str,
    file: &Path,
    chunk: usize,
    meta: &[(&str, &str)],
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tus/tuspy_upload.py");
    let meta = serde_json::to_string(
        &meta
            .iter()
            .cloned()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([
            &app.url("/api/uploads"),
            token,
            file.to_str().unwrap(),
            &chunk.to_string(),
            &meta,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "tuspy failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A PATCH written by hand on its own connection, so a test decides when each byte goes and
/// where the connection ends (a client that stalls, or one cut off mid-way).
pub struct RawPatch {
    stream: tokio::net::TcpStream,
}

impl RawPatch {
    /// Send the headers of a PATCH announcing `length` body bytes.
    pub async fn start(app: &TestApp, token: &str, path: &str, offset: u64, length: u64) -> Self {
        use tokio::io::AsyncWriteExt;
        let addr = app.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n\
             Content-Type: {OFFSET_STREAM}\r\nContent-Length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        RawPatch { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The response's status line (after the whole body was sent).
    pub async fn status(mut self) -> u16 {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        let n = self.stream.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// End the connection before the announced length: the server reads what was sent,
    /// then the body breaks off.
    pub async fn cut(mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.shutdown().await;
    }

    /// Go away without the answer: close this side, then wait until the server has closed
    /// the connection (hyper drops the request's handler as it does). Returns what the
    /// server sent before.
    pub async fn leave(mut self) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = self.stream.shutdown().await;
        let mut got = vec![];
        // The end of the stream, or a reset: either way the server is gone.
        let _ = self.stream.read_to_end(&mut got).await;
        got
    }
}

/// Send an upload's last `bytes` (at `offset`) from a client that goes away while the
/// server makes the upload whole. The server is held just before that step
/// (`Storage::hold_finishing`, left in place) until the client has closed its side and seen
/// the server close the connection; then it goes on. Returns when the task the upload's
/// metadata names is queued (the last thing a finished upload's request does); panics if
/// it never is, the request's work having gone with its client.
pub async fn finish_and_leave(app: &TestApp, token: &str, path: &str, offset: u64, bytes: &[u8]) {
    let (reached_tx, mut reached) = tokio::sync::mpsc::unbounded_channel();
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let held = go.clone();
    app.worker.storage.hold_finishing(move || {
        let (reached, go) = (reached_tx.clone(), held.clone());
        Box::pin(async move {
            let _ = reached.send(());
            go.notified().await;
        })
    });
    let mut raw = RawPatch::start(app, token, path, offset, bytes.len() as u64).await;
    raw.send(bytes).await;
    within(
        reached.recv(),
        "the last bytes never reached the finishing step",
    )
    .await;
    let answer = within(raw.leave(), "the server kept the connection open").await;
    assert!(
        answer.is_empty(),
        "answered before finishing: {}",
        String::from_utf8_lossy(&answer)
    );
    go.notify_one();
    within(
        app.worker.signals.wait_for_job(),
        "the finished upload's task was never queued (the request's work went with its client?)",
    )
    .await;
}

/// `f`, or a panic saying `what` after 30 s (a test that fails must not hang).
async fn within<T>(f: impl std::future::Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} (waited 30 s)"))
}
