use std::io::{Read, Write};

use reelforge_testkit::app::*;
use serde_json::Value;

#[tokio::test]
async fn upload_streams_to_storage_and_downloads_with_range() {
    let app = spawn_app().await;
    let t = app.user("mia").await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = app
        .upload(
            &t,
            "../../My Clip.mov",
            bytes.clone(),
            &[("fileName", "holiday.mov")],
        )
        .await;
    assert_eq!(r.status(), 201);
    let task: Value = r.json().await.unwrap();
    assert_eq!(task["source"]["kind"], "upload");
    assert_eq!(task["source"]["filename"], "holiday.mov");
    assert_eq!(task["source"]["size"], 200_000);
    let id = task["id"].as_str().unwrap();
    // The stored name never carries a path.
    let files = app.stored_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].ends_with(format!("tasks/{id}/input/My_Clip.mov")),
        "{files:?}"
    );

    let whole = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["content-length"], "200000");
    assert_eq!(whole.headers()["content-type"], "video/quicktime");
    assert_eq!(whole.bytes().await.unwrap().to_vec(), bytes);

    let part = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 1000-1999/200000");
    assert_eq!(part.headers()["content-length"], "1000");
    assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[1000..2000]);

    let tail = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().to_vec(), bytes[199_990..]);

    let bad = app
        .get(&format!("/api/tasks/{id}/input"), &t)
        .header("range", "bytes=300000-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);
    assert_eq!(bad.headers()["content-range"], "bytes */200000");

    // The legacy /api/files route finds it by name.
    let by_name = app.get("/api/files/holiday.mov", &t).send().await.unwrap();
    assert_eq!(by_name.status(), 200);
    assert_eq!(by_name.bytes().await.unwrap().len(), 200_000);
    assert_eq!(
        app.get("/api/files/other.mov", &t)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // No outputs yet.
    assert_eq!(
        app.get(&format!("/api/tasks/{id}/outputs/x.mp4"), &t)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Delete removes the stored input too.
    assert_eq!(
        app.delete(&format!("/api/tasks/{id}"), &t)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

#[tokio::test]
async fn seed_b_field_names_are_accepted() {
    let app = spawn_app().await;
    let t = app.user("nina").await;
    // `video` as the file part.
    let form = reqwest::multipart::Form::new().part(
        "video",
        reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("a.mp4"),
    );
    let r = app
        .post("/api/tasks", &t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // `fileName` as the file part.
    let form = reqwest::multipart::Form::new().part(
        "fileName",
        reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("b.mp4"),
    );
    let r = app
        .post("/api/tasks", &t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["source"]["filename"], "b.mp4");
    // `newFormat` implies convert; an unknown format is refused and the upload is not left
    // behind.
    let r = app
        .upload(&t, "c.mp4", vec![1u8; 100], &[("newFormat", "webm")])
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["profile"].as_str(), v["options"]["format"].as_str()),
        (Some("convert"), Some("webm"))
    );
    let before = app.stored_files().len();
    let r = app
        .upload(&t, "c.mp4", vec![1u8; 100], &[("newFormat", "betamax")])
        .await;
    assert_eq!(error_code(r).await, (400, "invalid_options".into()));
    // Bad options JSON, and a missing file.
    let r = app
        .upload(&t, "d.mp4", vec![1u8; 100], &[("options", "{nope")])
        .await;
    assert_eq!(error_code(r).await, (400, "invalid_options".into()));
    let form = reqwest::multipart::Form::new().text("profile", "idrl");
    let r = app
        .post("/api/tasks", &t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "missing_field".into()));
    let r = app.upload(&t, "e.mp4", vec![], &[]).await;
    assert_eq!(error_code(r).await, (400, "empty_file".into()));
    assert_eq!(app.stored_files().len(), before);
}

/// Send a request by hand so the server can answer before the body is sent.
fn raw_upload(addr: &str, token: &str, declared: u64, send: usize) -> (String, usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let boundary = "XBOUNDARYX";
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < send {
        match s.write(&chunk[..chunk.len().min(send - sent)]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    let mut resp = vec![0u8; 4096];
    let n = s.read(&mut resp).unwrap_or(0);
    (String::from_utf8_lossy(&resp[..n]).to_string(), sent)
}

#[tokio::test]
async fn oversized_uploads_get_413_and_the_server_stays_healthy() {
    let app = spawn_app_with(Options {
        max_upload: Some("256KiB"),
        ..Default::default()
    })
    .await;
    let t = app.user("olga").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // Declared far over the limit: refused before the body is read.
    let (resp, _) = {
        let (a, t2) = (addr.clone(), t.clone());
        tokio::task::spawn_blocking(move || raw_upload(&a, &t2, 1024 * 1024 * 1024, 0))
            .await
            .unwrap()
    };
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("payload_too_large"), "{resp}");
    // No Content-Length (chunked) and more bytes than allowed: cut off while streaming.
    let r = app.upload_chunked(&t, 64, 16 * 1024).await;
    assert_eq!(error_code(r).await, (413, "payload_too_large".into()));
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    // Still serving.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = app.upload(&t, "small.mp4", vec![1u8; 1000], &[]).await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn per_task_logo_must_be_a_sane_png_and_leaves_nothing_when_refused() {
    let app = spawn_app().await;
    let t = app.user("zoe").await;
    let png = include_bytes!("../../assets/logo.png").to_vec();
    let form = |logo: Vec<u8>| reelforge_form(vec![1u8; 100], logo);
    let r = app
        .post("/api/tasks", &t)
        .multipart(form(b"GIF89a not a png at all....".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (415, "unsupported_logo".into()));
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    let r = app
        .post("/api/tasks", &t)
        .multipart(form(huge))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "invalid_logo".into()));
    let r = app
        .post("/api/tasks", &t)
        .multipart(form(vec![0u8; 5 * 1024 * 1024]))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "payload_too_large".into()));
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    let r = app
        .post("/api/tasks", &t)
        .multipart(form(png))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = id_of(r).await;
    let files = app.stored_files();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(format!("tasks/{id}/logo.png"))),
        "{files:?}"
    );
    assert_eq!(
        app.delete(&format!("/api/tasks/{id}"), &t)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(app.stored_files().is_empty());
}

fn reelforge_form(media: Vec<u8>, logo: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(media).file_name("clip.mp4"),
        )
        .part(
            "logo",
            reqwest::multipart::Part::bytes(logo).file_name("logo.png"),
        )
}

/// Text parts have small caps; a part the service does not know, or one given twice, is
/// refused (a misspelt `options` must not run the task with defaults). Nothing is kept.
#[tokio::test]
async fn text_parts_are_capped_and_unknown_or_repeated_parts_refused() {
    use crate::limits::{Part, multipart, post_multipart};
    let app = spawn_app().await;
    let t = app.user("pia").await;
    let file = || ("file", Some("a.mp4"), vec![1u8; 1000]);
    let cases: Vec<(Vec<Part>, &str, &str)> = vec![
        (
            vec![file(), ("options", None, vec![b' '; 100 * 1024])],
            "HTTP/1.1 413",
            "the `options` part exceeds its limit of 65536 bytes",
        ),
        (
            vec![file(), ("profile", None, vec![b'x'; 1024 * 1024])],
            "HTTP/1.1 413",
            "the `profile` part exceeds its limit",
        ),
        (
            vec![file(), ("junk", None, vec![b'j'; 8 * 1024 * 1024])],
            "HTTP/1.1 400",
            "unknown part `junk`; the parts are file (or video), fileName, newFormat, profile, options, webhook_url, expires_in and logo",
        ),
        (
            vec![("junk", Some("j.bin"), vec![b'j'; 8 * 1024 * 1024]), file()],
            "HTTP/1.1 400",
            "unknown part `junk`",
        ),
        (
            vec![
                file(),
                ("profile", None, b"idrl".to_vec()),
                ("profile", None, b"convert".to_vec()),
            ],
            "HTTP/1.1 400",
            "the `profile` part is given twice",
        ),
    ];
    for (parts, status, message) in cases {
        for chunk in [false, true] {
            let answer = post_multipart(&app, &t, multipart(b"", &parts), chunk).await;
            assert!(answer.starts_with(status), "{message}: {answer:.400}");
            assert!(answer.contains(message), "{message}: {answer:.400}");
        }
    }
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    // Within the caps all is as before.
    let parts = [file(), ("profile", None, b"thumbnail".to_vec())];
    let answer = post_multipart(&app, &t, multipart(b"", &parts), true).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer:.400}");
}

/// A chunked upload is bounded over the whole body, not only the file part: what the parser
/// would have to hold outside part data (here a preamble of 8 MB) is refused at its bound.
#[tokio::test]
async fn a_chunked_upload_is_bounded_over_the_whole_body() {
    use crate::limits::{multipart, post_multipart};
    let app = spawn_app_with(Options {
        max_upload: Some("256KiB"),
        ..Default::default()
    })
    .await;
    let t = app.user("quentin").await;
    let preamble = vec![b'p'; 8 * 1024 * 1024];
    let parts = [("file", Some("a.mp4"), vec![1u8; 1000])];
    let answer = post_multipart(&app, &t, multipart(&preamble, &parts), true).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.400}");
    assert!(answer.contains("payload_too_large"), "{answer:.400}");
    // The declared length is checked against the same bound before anything is read.
    let answer = post_multipart(&app, &t, multipart(&preamble, &parts), false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.400}");
    assert!(answer.contains("262144 bytes"), "{answer:.400}");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}
