use super::*;

fn chunks(n: usize, size: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    futures::stream::iter((0..n).map(move |i| Ok(Bytes::from(vec![i as u8; size]))))
}

#[tokio::test]
async fn put_read_range_and_limits_on_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let s = Storage::from_url(&url, &StorageOptions::default()).unwrap();
    let n = s
        .put_stream("tasks/a/input/x.bin", chunks(3, 1000), 10_000)
        .await
        .unwrap();
    assert_eq!(n, 3000);
    assert_eq!(s.size("tasks/a/input/x.bin").await.unwrap(), 3000);
    let r = s
        .read("tasks/a/input/x.bin", Some(999..1001))
        .await
        .unwrap();
    let body: Vec<Bytes> = r.body.try_collect().await.unwrap();
    assert_eq!(body.concat(), vec![0u8, 1u8]);
    assert_eq!(r.size, 3000);

    let err = s
        .put_stream("tasks/a/input/big.bin", chunks(20, 1000), 10_000)
        .await;
    assert!(matches!(err, Err(StorageError::TooLarge(10_000))));
    assert!(matches!(
        s.size("tasks/a/input/big.bin").await,
        Err(StorageError::NotFound)
    ));
    // No partial file anywhere under the root.
    let mut files = vec![];
    for e in walk(dir.path()) {
        files.push(e);
    }
    assert_eq!(files.len(), 1, "{files:?}");
}

#[tokio::test]
async fn prune_keeps_only_the_winning_run() {
    let s = Storage::in_memory();
    let t = Uuid::now_v7();
    for run in 1..=3 {
        s.put_stream(&keys::output(t, run, "a.mp4"), chunks(1, 10), 100)
            .await
            .unwrap();
    }
    s.put_stream(&keys::input(t, "in.mp4"), chunks(1, 10), 100)
        .await
        .unwrap();
    s.prune_runs(t, 2).await.unwrap();
    let mut left = s.list(&keys::task_prefix(t)).await.unwrap();
    left.sort();
    assert_eq!(
        left,
        vec![keys::input(t, "in.mp4"), keys::output(t, 2, "a.mp4")]
    );
    assert_eq!(s.delete_prefix(&keys::task_prefix(t)).await.unwrap(), 2);
    assert!(s.list(&keys::task_prefix(t)).await.unwrap().is_empty());
}

#[tokio::test]
async fn local_store_moves_files_by_hard_link_and_stays_immutable() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let s = Storage::from_url(
        &format!("file://{}", root.path().display()),
        &StorageOptions::default(),
    )
    .unwrap();

    // put_file: the stored object is the scratch file's inode, not a copy.
    let produced = scratch.path().join("out.mp4");
    std::fs::write(&produced, b"first output").unwrap();
    assert_eq!(
        s.put_file("tasks/t/out/1/out.mp4", &produced)
            .await
            .unwrap(),
        12
    );
    let stored = root.path().join("tasks/t/out/1/out.mp4");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().ino(),
        std::fs::metadata(&produced).unwrap().ino()
    );
    // The staging name never shows in a listing, and nothing else is left behind.
    assert_eq!(
        s.list("tasks/t").await.unwrap(),
        vec!["tasks/t/out/1/out.mp4"]
    );
    assert_eq!(walk(root.path()), vec![stored.clone()]);
    // Removing scratch keeps the object.
    drop(scratch);
    let body: Vec<Bytes> = s
        .read("tasks/t/out/1/out.mp4", None)
        .await
        .unwrap()
        .body
        .try_collect()
        .await
        .unwrap();
    assert_eq!(body.concat(), b"first output");

    // get_to_file: a link too; a later write of the key replaces the object's file,
    // so what a run already brought into scratch does not change under it.
    let scratch = tempfile::tempdir().unwrap();
    let input = scratch.path().join("input");
    assert_eq!(
        s.get_to_file("tasks/t/out/1/out.mp4", &input, &CancellationToken::new())
            .await
            .unwrap(),
        12
    );
    assert_eq!(std::fs::metadata(&input).unwrap().nlink(), 2);
    s.put_stream("tasks/t/out/1/out.mp4", chunks(1, 3), 100)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&input).unwrap(), b"first output");
    assert_eq!(s.size("tasks/t/out/1/out.mp4").await.unwrap(), 3);
    assert!(matches!(
        s.get_to_file(
            "tasks/t/missing",
            &scratch.path().join("m"),
            &CancellationToken::new()
        )
        .await,
        Err(StorageError::NotFound)
    ));
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}
