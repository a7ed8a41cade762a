//! What `serve` writes under its data dir is owner-only (files 0600, folders 0700) whatever
//! the umask it was started with: the database and its WAL files, the JWT secret, uploads
//! and outputs in local storage, and scratch.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reelforge_testkit::clips::clip_short;
use reelforge_testkit::process::{login, spawn_logged, submit_file, wait_for};

use crate::{REELFORGE, wait_until};

/// Every file and folder under `root` (itself included) with its permission bits.
fn modes_under(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![];
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // removed meanwhile
        };
        if meta.is_dir() {
            todo.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
        out.push((path, meta.permissions().mode() & 0o7777));
    }
    out
}

/// Entries that the group or others may use.
fn open_to_others(entries: &[(PathBuf, u32)]) -> Vec<String> {
    entries
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(p, mode)| format!("{} {mode:o}", p.display()))
        .collect()
}

fn has(entries: &[(PathBuf, u32)], pred: impl Fn(&str) -> bool) -> bool {
    entries.iter().any(|(p, _)| pred(&p.to_string_lossy()))
}

/// An ffprobe that waits, while a run's scratch folder exists, until `go` does.
fn held_ffprobe(dir: &Path, probing: &Path, go: &Path) -> PathBuf {
    let script = dir.join("ffprobe");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = -version ] && exec ffprobe -version\n\
             touch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.1; done\nexec ffprobe \"$@\"\n",
            probing.display(),
            go.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test]
async fn files_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (probing, go) = (dir.path().join("probing"), dir.path().join("go"));
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 000; exec \"$0\" serve", REELFORGE.0])
        .env("REELFORGE_DATA_DIR", &data)
        .env("REELFORGE_LISTEN", "127.0.0.1:0")
        .env("REELFORGE_WORKERS", "1")
        .env("REELFORGE_FFPROBE", held_ffprobe(dir.path(), &probing, &go));
    let server = spawn_logged(cmd, "http://");
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = login(&c, &server.base, true).await;
    let id = submit_file(
        &c,
        &server.base,
        &token,
        &clip_short(),
        "clip.mp4",
        &[("profile", "thumbnail")],
    )
    .await;

    // While the run is held in probing: its scratch folder and input are there.
    assert!(
        wait_until(Duration::from_secs(30), || probing.exists()).await,
        "the run never reached ffprobe"
    );
    let during = modes_under(&data);
    assert!(
        has(&during, |p| p.ends_with("reelforge.db-wal")),
        "{during:?}"
    );
    assert!(
        has(&during, |p| p.contains("/scratch/") && p.contains(&id)),
        "{during:?}"
    );
    assert!(
        has(&during, |p| p.contains("/objects/tasks/")),
        "{during:?}"
    );
    assert_eq!(
        open_to_others(&during),
        Vec::<String>::new(),
        "with the run held"
    );

    // The run's outputs, written by ffmpeg and linked into the store.
    std::fs::write(&go, b"").unwrap();
    let v = wait_for(
        &c,
        &server.base,
        &token,
        &id,
        Duration::from_secs(60),
        |v| v["status"] != "queued" && v["status"] != "running",
    )
    .await;
    assert_eq!(v["status"], "succeeded", "{v}");
    let after = modes_under(&data);
    assert!(has(&after, |p| p.contains("/out/")), "{after:?}");
    assert_eq!(
        open_to_others(&after),
        Vec::<String>::new(),
        "after the run"
    );
}
