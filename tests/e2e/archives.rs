//! The archive profile through the API: recompression, and hostile archives refused with
//! nothing written outside the run's scratch folder.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use reelforge::archive::{ArchiveFormat, ExtractLimits, extract};
use reelforge_testkit::app::*;
use serde_json::Value;

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        let o = zip::write::SimpleFileOptions::default().compression_level(Some(9));
        w.start_file(*name, o).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn submit(app: &TestApp, t: &str, name: &str, bytes: Vec<u8>, to: &str) -> String {
    let r = app
        .upload(
            t,
            name,
            bytes,
            &[
                ("profile", "archive"),
                ("options", &format!(r#"{{"format": "{to}"}}"#)),
            ],
        )
        .await;
    assert_eq!(r.status(), 201);
    id_of(r).await
}

#[tokio::test]
async fn zip_recompresses_to_every_format_and_back() {
    let app = spawn_app().await;
    let t = app.user("gus").await;
    let files = vec![
        ("docs/readme.txt", b"hello archive\n".repeat(200)),
        (
            "docs/deep/data.bin",
            (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ),
        ("empty.txt", vec![]),
    ];
    let zip = zip_of(&files);
    for to in ["tar.gz", "tar.bz2", "7z", "zip"] {
        let id = submit(&app, &t, "photos.zip", zip.clone(), to).await;
        app.drain().await;
        let v: Value = app.task(&t, &id).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_eq!(v["result"]["from"], "zip");
        assert_eq!(v["result"]["to"], to);
        assert_eq!(v["result"]["files"], 3, "{v}");
        let name = v["outputs"][0]["name"].as_str().unwrap().to_string();
        assert_eq!(name, format!("photos.{to}"));
        let bytes = app
            .get(v["outputs"][0]["url"].as_str().unwrap(), &t)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join(&name);
        std::fs::write(&archive, &bytes).unwrap();
        let format = ArchiveFormat::detect(&archive).unwrap();
        assert_eq!(format.as_str(), to);
        let dest = dir.path().join("x");
        extract(
            &archive,
            format,
            &dest,
            &ExtractLimits::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        for (name, data) in &files {
            assert_eq!(
                &std::fs::read(dest.join(name)).unwrap(),
                data,
                "{name} via {to}"
            );
        }
    }
}

/// Every path under `root`.
fn listing(root: &Path) -> Vec<String> {
    let mut out = vec![];
    walk(root, &mut out);
    out.sort();
    out
}

fn walk(p: &Path, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.path().is_dir() {
                walk(&e.path(), out);
            }
        }
    }
}

#[tokio::test]
async fn hostile_archives_are_refused_and_nothing_escapes_scratch() {
    let app = spawn_app_with(Options {
        max_extract: Some("8MiB"),
        ..Default::default()
    })
    .await;
    let t = app.user("hal").await;
    let escape = zip_of(&[
        ("ok.txt", b"fine".to_vec()),
        ("../../escape", b"gotcha".to_vec()),
    ]);
    let absolute = zip_of(&[("/etc/x", b"gotcha".to_vec())]);
    // A few KiB that expand to 64 MiB.
    let bomb = zip_of(&[("zeros.bin", vec![0u8; 64 * 1024 * 1024])]);
    assert!(bomb.len() < 128 * 1024, "bomb is {} bytes", bomb.len());
    let cases = [
        (escape, "unsafe_archive_path"),
        (absolute, "unsafe_archive_path"),
        (bomb, "archive_too_large"),
        (b"not an archive at all".to_vec(), "unknown_archive"),
    ];
    let mut ids = vec![];
    for (bytes, code) in cases {
        ids.push((submit(&app, &t, "evil.zip", bytes, "tar.gz").await, code));
    }
    let scratch = app.data_dir.path().join("scratch");
    app.drain().await;
    for (id, code) in ids {
        let v: Value = app.task(&t, &id).await;
        assert_eq!(v["status"], "failed", "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["attempts"], 1);
    }
    // Nothing named escape or x anywhere in or beside the data dir (`../../escape` from the
    // extraction folder would land in scratch), scratch empty, only the inputs stored.
    let data = listing(app.data_dir.path());
    assert!(
        !data
            .iter()
            .any(|p| p.ends_with("/escape") || p.ends_with("/x")),
        "{data:?}"
    );
    assert!(!Path::new("/etc/x").exists());
    assert_eq!(listing(&scratch), Vec::<String>::new());
    let parent = app.data_dir.path().parent().unwrap();
    assert!(!parent.join("escape").exists());
    let stored = app.stored_files();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|f| f.to_string_lossy().contains("/input/"))
    );
}
