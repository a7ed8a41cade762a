//! Archive profile: round trips between every pair of formats, and hostile
//! archives (escaping names, links, special files, bombs, too many or too deep
//! entries) built inside each test. Every hostile case checks that nothing was
//! created outside the destination by listing the whole temporary folder.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reelforge::archive::{
    ArchiveError, ArchiveFormat, ArchiveSummary, ExtractLimits, create, extract, recompress,
};

const MIB: u64 = 1024 * 1024;

fn no_cancel() -> AtomicBool {
    AtomicBool::new(false)
}

/// Every path below `root` (relative, `/`-separated), with file contents
/// (`None` for directories). Symlinks are reported as such and never followed.
/// `recompress` with the default limits and no cancellation.
fn recompress_default(
    input: &Path,
    to: ArchiveFormat,
    work: &Path,
    out: &Path,
) -> Result<ArchiveSummary, ArchiveError> {
    recompress(
        input,
        to,
        work,
        out,
        &ExtractLimits::default(),
        &no_cancel(),
    )
}

fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let ft = fs::symlink_metadata(&path).unwrap().file_type();
            if ft.is_symlink() {
                out.insert(format!("{rel} -> symlink"), None);
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

fn names(root: &Path) -> Vec<String> {
    tree(root).into_keys().collect()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A source tree with nested and empty directories, binary and empty files,
/// unicode names and a path longer than the 100 bytes of a plain tar header.
fn sample_tree(root: &Path) {
    let long_dir = format!("long/{}", "segment-".repeat(8));
    for dir in [
        "a/b/c",
        "empty",
        "a/empty-too",
        "ñandú/日本語",
        long_dir.as_str(),
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("a/b/c/deep.txt"), b"deep\n".repeat(1000)).unwrap();
    fs::write(root.join("a/noise.bin"), noise(300_000, 7)).unwrap();
    fs::write(root.join("a/b/zeros.bin"), vec![0u8; 200_000]).unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(
        root.join("ñandú/日本語/файл 🎉.txt"),
        "héllo wörld\n".repeat(50),
    )
    .unwrap();
    fs::write(root.join("with space.txt"), b"spaces").unwrap();
    fs::write(
        root.join(&long_dir)
            .join(format!("{}.txt", "n".repeat(120))),
        b"long name",
    )
    .unwrap();
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "line {i}: the quick brown fox {}\n",
            i * 7919 % 1000
        ));
    }
    fs::write(root.join("text.txt"), text).unwrap();
}

#[test]
fn round_trips_between_every_pair_of_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    sample_tree(&src);
    let expected = tree(&src);
    let cancel = no_cancel();
    let limits = ExtractLimits::default();

    for from in ArchiveFormat::ALL {
        let first = tmp.path().join(format!("first.{}", from.extension()));
        let made = create(&src, from, &first, &cancel).unwrap();
        assert_eq!(ArchiveFormat::detect(&first).unwrap(), from);

        // Plain extraction of what we made.
        let dest = tmp.path().join(format!("x-{from}"));
        let got = extract(&first, from, &dest, &limits, &cancel).unwrap();
        assert_eq!(tree(&dest), expected, "extract {from}");
        assert_eq!(got, made, "summary of {from}");
        fs::remove_dir_all(&dest).unwrap();

        for to in ArchiveFormat::ALL {
            let work = tmp.path().join(format!("work-{from}-{to}"));
            fs::create_dir(&work).unwrap();
            let out = tmp.path().join(format!("out-{from}-to.{}", to.extension()));
            let summary = recompress(&first, to, &work, &out, &limits, &cancel).unwrap();
            assert_eq!(summary, made, "{from} -> {to}");
            assert_eq!(ArchiveFormat::detect(&out).unwrap(), to);
            assert!(
                names(&work).is_empty(),
                "work dir left behind for {from} -> {to}"
            );

            let dest = tmp.path().join(format!("check-{from}-{to}"));
            extract(&out, to, &dest, &limits, &cancel).unwrap();
            assert_eq!(tree(&dest), expected, "{from} -> {to}");
            fs::remove_dir_all(&dest).unwrap();
            fs::remove_file(&out).unwrap();
        }
    }
}

#[cfg(unix)]
#[test]
fn executable_bit_survives_and_nothing_else_does() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o4777)).unwrap();
    fs::write(src.join("plain"), b"x").unwrap();
    fs::set_permissions(src.join("plain"), fs::Permissions::from_mode(0o666)).unwrap();
    for format in ArchiveFormat::ALL {
        let a = tmp.path().join(format!("a.{}", format.extension()));
        create(&src, format, &a, &no_cancel()).unwrap();
        let dest = tmp.path().join(format!("d-{format}"));
        extract(&a, format, &dest, &ExtractLimits::default(), &no_cancel()).unwrap();
        let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("run.sh") & 0o7111, 0o111, "{format}");
        assert_eq!(mode("plain") & 0o7111, 0, "{format}");
        assert_eq!(mode("plain") & 0o002, 0, "{format}");
    }
}

#[test]
fn detection_is_by_magic_bytes_not_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f.txt"), b"hello").unwrap();

    let zip_named_tgz = tmp.path().join("really-a-zip.tar.gz");
    create(&src, ArchiveFormat::Zip, &zip_named_tgz, &no_cancel()).unwrap();
    assert_eq!(
        ArchiveFormat::detect(&zip_named_tgz).unwrap(),
        ArchiveFormat::Zip
    );
    let tgz_named_7z = tmp.path().join("really-a-tgz.7z");
    create(&src, ArchiveFormat::TarGz, &tgz_named_7z, &no_cancel()).unwrap();
    assert_eq!(
        ArchiveFormat::detect(&tgz_named_7z).unwrap(),
        ArchiveFormat::TarGz
    );

    // recompress goes by the bytes too.
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let out = tmp.path().join("out.7z");
    recompress_default(&zip_named_tgz, ArchiveFormat::SevenZ, &work, &out).unwrap();
    assert_eq!(ArchiveFormat::detect(&out).unwrap(), ArchiveFormat::SevenZ);

    for (name, bytes) in [
        ("text.zip", b"just some text, not an archive".as_slice()),
        ("empty.zip", b"".as_slice()),
        ("mp4.tar.gz", b"\0\0\0\x18ftypmp42".as_slice()),
    ] {
        let p = tmp.path().join(name);
        fs::write(&p, bytes).unwrap();
        let err = ArchiveFormat::detect(&p).unwrap_err();
        assert_eq!(err.code(), "unknown_archive", "{name}");
        let out = tmp.path().join(format!("{name}.out.zip"));
        let err = recompress_default(&p, ArchiveFormat::Zip, &work, &out).unwrap_err();
        assert_eq!(err.code(), "unknown_archive");
        assert!(!out.exists());
    }
}

#[test]
fn tar_root_entry_and_old_style_directories() {
    let tar = raw_tar(&[
        RawEntry {
            name: b"./",
            kind: tar::EntryType::Directory,
            data: b"",
            link: b"",
        },
        file_entry("./olddir/", b""),
        file_entry("./olddir/f.txt", b"v7"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.tar.gz");
    fs::write(&a, gzip(&tar)).unwrap();
    let dest = tmp.path().join("dest");
    let summary = extract(
        &a,
        ArchiveFormat::TarGz,
        &dest,
        &ExtractLimits::default(),
        &no_cancel(),
    )
    .unwrap();
    assert_eq!(
        summary,
        ArchiveSummary {
            entries: 2,
            files: 1,
            dirs: 1,
            total_bytes: 2
        }
    );
    assert_eq!(
        names(&dest),
        vec!["olddir/".to_string(), "olddir/f.txt".into()]
    );
}

#[test]
fn format_names_and_serde() {
    for (s, f) in [
        ("zip", ArchiveFormat::Zip),
        ("7z", ArchiveFormat::SevenZ),
        ("tar.gz", ArchiveFormat::TarGz),
        ("tar.bz2", ArchiveFormat::TarBz2),
    ] {
        assert_eq!(s.parse::<ArchiveFormat>().unwrap(), f);
        assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<ArchiveFormat>(&format!("\"{s}\"")).unwrap(),
            f
        );
        assert_eq!(f.extension(), s);
    }
    assert!(serde_json::from_str::<ArchiveFormat>("\"rar\"").is_err());
}

// ---------------------------------------------------------------------------
// Hostile archives
// ---------------------------------------------------------------------------

/// A tar entry written byte for byte, bypassing the checks of the tar
/// crate's path setters.
struct RawEntry<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: &'a [u8],
}

fn file_entry<'a>(name: &'a str, data: &'a [u8]) -> RawEntry<'a> {
    RawEntry {
        name: name.as_bytes(),
        kind: tar::EntryType::Regular,
        data,
        link: b"",
    }
}

fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(e.name);
            old.linkname[..e.link.len()].copy_from_slice(e.link);
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append(&h, e.data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn bzip(data: &[u8]) -> Vec<u8> {
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(data).unwrap();
    bz.finish().unwrap()
}

fn zip_bytes(build: impl FnOnce(&mut zip::ZipWriter<io::Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    build(&mut w);
    w.finish().unwrap().into_inner()
}

fn zip_files(files: &[(&str, &[u8])]) -> Vec<u8> {
    zip_bytes(|w| {
        for (name, data) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
    })
}

fn sevenz_files(entries: Vec<(sevenz_rust2::ArchiveEntry, Vec<u8>)>) -> Vec<u8> {
    let mut w = sevenz_rust2::ArchiveWriter::new(io::Cursor::new(Vec::new())).unwrap();
    for (entry, data) in entries {
        w.push_archive_entry(entry, Some(data.as_slice())).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A scene for one hostile extraction: `root/outer/inner/dest` is the
/// destination, so that `../../x` would land at `root/outer/x`, still inside
/// the folder we list.
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    archive: PathBuf,
    dest: PathBuf,
}

fn scene(bytes: &[u8], ext: &str) -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let archive = root.join(format!("hostile.{ext}"));
    fs::write(&archive, bytes).unwrap();
    fs::create_dir_all(root.join("outer/inner")).unwrap();
    let dest = root.join("outer/inner/dest");
    Scene {
        _tmp: tmp,
        root,
        archive,
        dest,
    }
}

impl Scene {
    fn extract(&self, format: ArchiveFormat, limits: &ExtractLimits) -> ArchiveError {
        match extract(&self.archive, format, &self.dest, limits, &no_cancel()) {
            Ok(summary) => panic!("{format} archive was accepted: {summary:?}"),
            Err(e) => e,
        }
    }

    /// Nothing exists besides the archive and the (now removed) destination's
    /// parents.
    fn assert_untouched(&self) {
        let name = self.archive.file_name().unwrap().to_string_lossy();
        assert_eq!(
            names(&self.root),
            vec![name.to_string(), "outer/".into(), "outer/inner/".into()],
        );
    }
}

fn assert_refused(bytes: &[u8], format: ArchiveFormat, code: &str) {
    let s = scene(bytes, format.extension());
    let err = s.extract(format, &ExtractLimits::default());
    assert_eq!(err.code(), code, "{err}");
    s.assert_untouched();
}

#[test]
fn escaping_and_absolute_names_are_refused_in_every_format() {
    assert!(!Path::new("/etc/x").exists());
    for name in [
        "../../escape",
        "/etc/x",
        "a/../../b",
        "ok/../../../escape",
        "..\\..\\escape",
        "C:\\x",
        "\\\\server\\share\\x",
    ] {
        // A legitimate file first, so that the cleanup is exercised too.
        let tar = raw_tar(&[file_entry("fine.txt", b"ok"), file_entry(name, b"evil")]);
        assert_refused(&gzip(&tar), ArchiveFormat::TarGz, "unsafe_archive_path");
        assert_refused(&bzip(&tar), ArchiveFormat::TarBz2, "unsafe_archive_path");

        let zip = zip_files(&[("fine.txt", b"ok"), (name, b"evil")]);
        assert_refused(&zip, ArchiveFormat::Zip, "unsafe_archive_path");

        let sz = sevenz_files(vec![
            (
                sevenz_rust2::ArchiveEntry::new_file("fine.txt"),
                b"ok".to_vec(),
            ),
            (sevenz_rust2::ArchiveEntry::new_file(name), b"evil".to_vec()),
        ]);
        assert_refused(&sz, ArchiveFormat::SevenZ, "unsafe_archive_path");
    }
    assert!(!Path::new("/etc/x").exists());
}

#[test]
fn empty_names_are_refused() {
    let zip = zip_files(&[("", b"nameless")]);
    assert_refused(&zip, ArchiveFormat::Zip, "unsafe_archive_path");
    let tar = raw_tar(&[file_entry("", b"nameless")]);
    assert_refused(&gzip(&tar), ArchiveFormat::TarGz, "unsafe_archive_path");
    // A file called "." is no file either.
    let tar = raw_tar(&[file_entry("./", b"dot")]);
    assert_refused(&gzip(&tar), ArchiveFormat::TarGz, "unsafe_archive_path");
}

#[test]
fn tar_links_and_special_files_are_refused() {
    let cases: [(&str, tar::EntryType, &[u8], &str); 5] = [
        (
            "passwd",
            tar::EntryType::Symlink,
            b"/etc/passwd",
            "archive_link_refused",
        ),
        (
            "up",
            tar::EntryType::Symlink,
            b"../../..",
            "archive_link_refused",
        ),
        (
            "hard",
            tar::EntryType::Link,
            b"fine.txt",
            "archive_link_refused",
        ),
        ("fifo", tar::EntryType::Fifo, b"", "unsafe_archive_path"),
        ("null", tar::EntryType::Char, b"", "unsafe_archive_path"),
    ];
    for (name, kind, link, code) in cases {
        let tar = raw_tar(&[
            file_entry("fine.txt", b"ok"),
            RawEntry {
                name: name.as_bytes(),
                kind,
                data: b"",
                link,
            },
            // Something that would follow the link if it had been created.
            file_entry(&format!("{name}/after"), b"x"),
        ]);
        assert_refused(&gzip(&tar), ArchiveFormat::TarGz, code);
        assert_refused(&bzip(&tar), ArchiveFormat::TarBz2, code);
    }
}

#[test]
fn zip_symlink_entries_are_refused() {
    let zip = zip_bytes(|w| {
        let o = zip::write::SimpleFileOptions::default();
        w.start_file("fine.txt", o).unwrap();
        w.write_all(b"ok").unwrap();
        w.add_symlink("passwd", "/etc/passwd", o).unwrap();
    });
    assert_refused(&zip, ArchiveFormat::Zip, "archive_link_refused");

    // A symlink and a fifo by their unix mode bits, patched into the central
    // directory (the writer only lets permission bits through).
    for (mode, code) in [
        (0o120_777u32, "archive_link_refused"),
        (0o010_644, "unsafe_archive_path"),
        (0o020_644, "unsafe_archive_path"),
    ] {
        let mut zip = zip_bytes(|w| {
            let o = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
            w.start_file("special", o).unwrap();
            w.write_all(b"/etc/passwd").unwrap();
        });
        let cd = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        zip[cd + 5] = 3; // made by: unix
        zip[cd + 38..cd + 42].copy_from_slice(&(mode << 16).to_le_bytes());
        assert_refused(&zip, ArchiveFormat::Zip, code);
    }
}

#[test]
fn sevenz_symlink_entries_are_refused() {
    let mut link = sevenz_rust2::ArchiveEntry::new_file("passwd");
    link.has_windows_attributes = true;
    link.windows_attributes = 0x20 | 0x8000 | (0o120_777 << 16);
    let sz = sevenz_files(vec![
        (
            sevenz_rust2::ArchiveEntry::new_file("fine.txt"),
            b"ok".to_vec(),
        ),
        (link, b"/etc/passwd".to_vec()),
    ]);
    assert_refused(&sz, ArchiveFormat::SevenZ, "archive_link_refused");

    let mut reparse = sevenz_rust2::ArchiveEntry::new_file("junction");
    reparse.has_windows_attributes = true;
    reparse.windows_attributes = 0x400;
    let sz = sevenz_files(vec![(reparse, b"C:\\Windows".to_vec())]);
    assert_refused(&sz, ArchiveFormat::SevenZ, "archive_link_refused");
}

#[cfg(unix)]
#[test]
fn existing_symlinks_in_dest_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), dest.join("victim")).unwrap();

    for name in ["link/new-file", "link/victim", "victim"] {
        let archive = tmp.path().join("a.tar.gz");
        fs::write(&archive, gzip(&raw_tar(&[file_entry(name, b"evil")]))).unwrap();
        let err = extract(
            &archive,
            ArchiveFormat::TarGz,
            &dest,
            &ExtractLimits::default(),
            &no_cancel(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "archive_link_refused", "{name}: {err}");
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
        assert_eq!(names(&outside), vec!["victim".to_string()]);
    }
}

#[test]
fn failure_removes_only_what_the_extraction_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir_all(dest.join("existing")).unwrap();
    fs::write(dest.join("keep.txt"), b"keep").unwrap();
    let archive = tmp.path().join("a.tar.gz");
    let tar = raw_tar(&[
        file_entry("new/a.txt", b"a"),
        file_entry("existing/b.txt", b"b"),
        file_entry("top.txt", b"t"),
        file_entry("../../escape", b"evil"),
    ]);
    fs::write(&archive, gzip(&tar)).unwrap();
    let err = extract(
        &archive,
        ArchiveFormat::TarGz,
        &dest,
        &ExtractLimits::default(),
        &no_cancel(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "unsafe_archive_path");
    assert_eq!(
        names(&dest),
        vec!["existing/".to_string(), "keep.txt".into()]
    );
}

#[test]
fn duplicate_entries_are_refused() {
    let tar = raw_tar(&[file_entry("a.txt", b"1"), file_entry("a.txt", b"2")]);
    assert_refused(&gzip(&tar), ArchiveFormat::TarGz, "invalid_archive");
    let tar = raw_tar(&[file_entry("a", b"file"), file_entry("a/b", b"under a file")]);
    assert_refused(&gzip(&tar), ArchiveFormat::TarGz, "invalid_archive");
}

#[test]
fn too_many_entries() {
    let limits = ExtractLimits {
        max_entries: 10,
        ..ExtractLimits::default()
    };
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}.txt"), vec![b'x'; 10]))
        .collect();

    let zip = zip_files(
        &files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect::<Vec<_>>(),
    );
    let s = scene(&zip, "zip");
    assert_eq!(
        s.extract(ArchiveFormat::Zip, &limits).code(),
        "too_many_entries"
    );
    s.assert_untouched();

    // tar is a stream: ten files get written before the eleventh is seen,
    // and are removed again.
    let entries: Vec<RawEntry<'_>> = files.iter().map(|(n, d)| file_entry(n, d)).collect();
    let s = scene(&gzip(&raw_tar(&entries)), "tar.gz");
    assert_eq!(
        s.extract(ArchiveFormat::TarGz, &limits).code(),
        "too_many_entries"
    );
    s.assert_untouched();

    let sz = sevenz_files(
        files
            .iter()
            .map(|(n, d)| (sevenz_rust2::ArchiveEntry::new_file(n), d.clone()))
            .collect(),
    );
    let s = scene(&sz, "7z");
    assert_eq!(
        s.extract(ArchiveFormat::SevenZ, &limits).code(),
        "too_many_entries"
    );
    s.assert_untouched();
}

#[test]
fn too_deep() {
    let deep = vec!["d"; 40].join("/") + "/f.txt";
    let tar = raw_tar(&[file_entry(&deep, b"x")]);
    assert_refused(&gzip(&tar), ArchiveFormat::TarGz, "archive_too_deep");
    let zip = zip_files(&[(deep.as_str(), b"x")]);
    assert_refused(&zip, ArchiveFormat::Zip, "archive_too_deep");
}

#[test]
fn corrupt_archives_are_invalid_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("noise.bin"), noise(200_000, 3)).unwrap();
    for format in ArchiveFormat::ALL {
        let a = tmp.path().join(format!("a.{}", format.extension()));
        create(&src, format, &a, &no_cancel()).unwrap();
        let mut bytes = fs::read(&a).unwrap();
        // Truncated to a third.
        let s = scene(&bytes[..bytes.len() / 3], format.extension());
        assert_eq!(
            s.extract(format, &ExtractLimits::default()).code(),
            "invalid_archive",
            "truncated {format}"
        );
        s.assert_untouched();
        // Flipped bytes in the middle of the data.
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 64] {
            *b ^= 0x5A;
        }
        let s = scene(&bytes, format.extension());
        assert_eq!(
            s.extract(format, &ExtractLimits::default()).code(),
            "invalid_archive",
            "damaged {format}"
        );
        s.assert_untouched();
    }
    // The right magic followed by garbage.
    for (format, head) in [
        (ArchiveFormat::TarGz, b"\x1f\x8b".as_slice()),
        (ArchiveFormat::TarBz2, b"BZh9".as_slice()),
        (ArchiveFormat::Zip, b"PK\x03\x04".as_slice()),
        (ArchiveFormat::SevenZ, b"7z\xBC\xAF\x27\x1C".as_slice()),
    ] {
        let mut bytes = head.to_vec();
        bytes.extend(noise(4096, 9));
        assert_refused(&bytes, format, "invalid_archive");
    }
    // gzip of something that is not a tar.
    assert_refused(
        &gzip(&noise(10_000, 5)),
        ArchiveFormat::TarGz,
        "invalid_archive",
    );
}

// ---------------------------------------------------------------------------
// Bombs
// ---------------------------------------------------------------------------

/// Zeros, never held in memory.
fn zeros(len: u64) -> io::Take<io::Repeat> {
    io::repeat(0).take(len)
}

fn bomb_limits() -> ExtractLimits {
    ExtractLimits {
        max_total_bytes: 64 * MIB,
        max_ratio: None,
        ..ExtractLimits::default()
    }
}

/// Total size of every regular file below `root`.
fn bytes_below(root: &Path) -> u64 {
    tree(root)
        .values()
        .map(|v| v.as_ref().map_or(0, |d| d.len() as u64))
        .sum()
}

#[test]
fn zip_bomb_fails_fast() {
    // 200 MiB of zeros deflated to a few hundred KiB, built from a stream.
    let zip = zip_bytes(|w| {
        let o = zip::write::SimpleFileOptions::default().compression_level(Some(9));
        w.start_file("zeros.bin", o).unwrap();
        io::copy(&mut zeros(200 * MIB), w).unwrap();
    });
    assert!(zip.len() < 512 * 1024, "bomb is {} bytes", zip.len());
    let s = scene(&zip, "zip");
    let start = Instant::now();
    let err = s.extract(ArchiveFormat::Zip, &bomb_limits());
    assert!(
        matches!(err, ArchiveError::TooLarge { limit } if limit == 64 * MIB),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    s.assert_untouched();
}

#[test]
fn zip_bomb_with_lying_headers_is_stopped_by_counting() {
    // Ten entries of 20 MiB each; every declared size is patched to 1 byte, so
    // the up-front check on declared sizes passes and only counting can stop it.
    let mut zip = zip_bytes(|w| {
        for i in 0..10 {
            w.start_file(
                format!("z{i}.bin"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            io::copy(&mut zeros(20 * MIB), w).unwrap();
        }
    });
    let mut patched = 0;
    for sig in [b"PK\x03\x04", b"PK\x01\x02"] {
        let size_offset = if sig == b"PK\x03\x04" { 22 } else { 24 };
        let mut i = 0;
        while i + 46 < zip.len() {
            if &zip[i..i + 4] == sig {
                zip[i + size_offset..i + size_offset + 4].copy_from_slice(&1u32.to_le_bytes());
                patched += 1;
            }
            i += 1;
        }
    }
    assert!(patched >= 20);
    let s = scene(&zip, "zip");
    let err = s.extract(ArchiveFormat::Zip, &bomb_limits());
    // The zip reader may notice the lie itself (invalid) or we stop it by
    // counting (too large); either way far less than 200 MiB is written.
    assert!(
        matches!(err.code().as_str(), "archive_too_large" | "invalid_archive"),
        "{err}"
    );
    s.assert_untouched();
}

#[test]
fn tar_gz_bomb_is_stopped_by_counting_with_at_most_the_limit_written() {
    // A 1 GiB tar.gz of zeros, streamed (never in memory): ~1 MiB on disk.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    {
        let mut b = tar::Builder::new(&mut gz);
        for i in 0..4 {
            let mut h = tar::Header::new_gnu();
            h.set_size(256 * MIB);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("part{i}.bin"), zeros(256 * MIB))
                .unwrap();
        }
        b.finish().unwrap();
    }
    let bytes = gz.finish().unwrap();
    assert!(bytes.len() < 8 * 1024 * 1024);

    let s = scene(&bytes, "tar.gz");
    // Watch how much ever lands in dest while the extraction runs.
    let done = Arc::new(AtomicBool::new(false));
    let peak = {
        let dest = s.dest.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                if let Ok(rd) = fs::read_dir(&dest) {
                    let sum = rd
                        .flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum::<u64>();
                    peak = peak.max(sum);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let start = Instant::now();
    let err = s.extract(ArchiveFormat::TarGz, &bomb_limits());
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    assert!(
        matches!(err, ArchiveError::TooLarge { limit } if limit == 64 * MIB),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(peak <= 64 * MIB, "peak {peak}");
    s.assert_untouched();
}

#[test]
fn ratio_limit_stops_bombs_below_the_size_limit() {
    // 100 MiB of zeros in a tar.bz2 of a few hundred bytes: under the 4 GiB
    // default size limit, far over a 200:1 ratio.
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    {
        let mut b = tar::Builder::new(&mut bz);
        let mut h = tar::Header::new_gnu();
        h.set_size(100 * MIB);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "zeros.bin", zeros(100 * MIB))
            .unwrap();
        b.finish().unwrap();
    }
    let bytes = bz.finish().unwrap();
    let s = scene(&bytes, "tar.bz2");
    let err = s.extract(ArchiveFormat::TarBz2, &ExtractLimits::default());
    assert_eq!(err.code(), "archive_too_large", "{err}");
    s.assert_untouched();

    // Small and very compressible is fine (below the floor of the ratio).
    let s = scene(
        &gzip(&raw_tar(&[file_entry("z", &[0u8; 1 << 20])])),
        "tar.gz",
    );
    let summary = extract(
        &s.archive,
        ArchiveFormat::TarGz,
        &s.dest,
        &ExtractLimits::default(),
        &no_cancel(),
    )
    .unwrap();
    assert_eq!(
        summary,
        ArchiveSummary {
            entries: 1,
            files: 1,
            dirs: 0,
            total_bytes: 1 << 20
        }
    );
}

#[test]
fn total_size_limit_counts_all_entries_together() {
    let limits = ExtractLimits {
        max_total_bytes: 1000,
        ..ExtractLimits::default()
    };
    let tar = raw_tar(&[file_entry("a", &[1u8; 600]), file_entry("b", &[2u8; 600])]);
    let s = scene(&gzip(&tar), "tar.gz");
    let err = s.extract(ArchiveFormat::TarGz, &limits);
    assert!(
        matches!(err, ArchiveError::TooLarge { limit: 1000 }),
        "{err}"
    );
    s.assert_untouched();
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

/// Sets `flag` once a file below `dir` (or the file `dir` itself) has grown
/// past `bytes`.
fn cancel_when_bigger(
    dir: PathBuf,
    bytes: u64,
    flag: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let size = if dir.is_dir() {
                bytes_below(&dir)
            } else {
                fs::metadata(&dir).map(|m| m.len()).unwrap_or(0)
            };
            if size > bytes {
                flag.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[test]
fn cancelled_before_start() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let a = tmp.path().join("a.zip");
    create(&src, ArchiveFormat::Zip, &a, &no_cancel()).unwrap();
    let cancelled = AtomicBool::new(true);
    let dest = tmp.path().join("dest");
    let err = extract(
        &a,
        ArchiveFormat::Zip,
        &dest,
        &ExtractLimits::default(),
        &cancelled,
    )
    .unwrap_err();
    assert_eq!(err.code(), "cancelled");
    assert!(!dest.exists());
    let out = tmp.path().join("b.zip");
    assert_eq!(
        create(&src, ArchiveFormat::Zip, &out, &cancelled)
            .unwrap_err()
            .code(),
        "cancelled"
    );
    assert!(!out.exists());
}

#[test]
fn cancelling_stops_a_running_extraction_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    // 1 GiB of zeros in one entry, streamed into a ~1 MiB tar.gz.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut b = tar::Builder::new(&mut gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(1024 * MIB);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "zeros.bin", zeros(1024 * MIB))
            .unwrap();
        b.finish().unwrap();
    }
    let bytes = gz.finish().unwrap();
    // The archive arrives through a FIFO: its first half, then nothing until the watcher
    // has cancelled, then the rest. So the extraction is always mid-entry when the flag is
    // set, however the threads are scheduled.
    let archive = tmp.path().join("big.tar.gz");
    let c_path = std::ffi::CString::new(archive.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let dest = tmp.path().join("dest");
    let flag = Arc::new(AtomicBool::new(false));
    let watcher = cancel_when_bigger(dest.clone(), 4 * MIB, flag.clone());
    let feeder = {
        let (archive, flag) = (archive.clone(), flag.clone());
        std::thread::spawn(move || {
            let mut fifo = File::create(&archive).unwrap();
            let (first, rest) = bytes.split_at(bytes.len() / 2);
            // The reader closes the FIFO as soon as it is cancelled, which may be during the
            // first half already: a broken pipe is expected on either write.
            let _ = fifo.write_all(first);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = fifo.write_all(rest);
        })
    };
    let limits = ExtractLimits {
        max_ratio: None,
        ..ExtractLimits::default()
    };
    let err = extract(&archive, ArchiveFormat::TarGz, &dest, &limits, &flag).unwrap_err();
    watcher.join().unwrap();
    feeder.join().unwrap();
    assert_eq!(err.code(), "cancelled", "{err}");
    assert!(!dest.exists());
}

#[test]
fn cancelling_stops_a_running_creation_and_removes_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // Incompressible, so that the output grows steadily while it is made.
    fs::write(src.join("big.bin"), noise(96 * MIB as usize, 11)).unwrap();
    for format in ArchiveFormat::ALL {
        let out = tmp.path().join(format!("out.{}", format.extension()));
        let flag = Arc::new(AtomicBool::new(false));
        let watcher = cancel_when_bigger(out.clone(), MIB, flag.clone());
        let start = Instant::now();
        let err = create(&src, format, &out, &flag).unwrap_err();
        watcher.join().unwrap();
        assert_eq!(err.code(), "cancelled", "{format}: {err}");
        assert!(start.elapsed() < Duration::from_secs(20));
        assert!(!out.exists(), "{format}");
    }
}

// ---------------------------------------------------------------------------
// Creation refuses what it cannot pack faithfully
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn create_refuses_symlinks_in_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
    for format in ArchiveFormat::ALL {
        let out = tmp.path().join(format!("out.{}", format.extension()));
        let err = create(&src, format, &out, &no_cancel()).unwrap_err();
        assert_eq!(err.code(), "archive_link_refused");
        assert!(!out.exists());
    }
}

#[test]
fn create_never_overwrites_and_recompress_needs_a_fresh_work_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let out = tmp.path().join("out.zip");
    fs::write(&out, b"precious").unwrap();
    let err = create(&src, ArchiveFormat::Zip, &out, &no_cancel()).unwrap_err();
    assert_eq!(err.code(), "io_error");
    assert_eq!(fs::read(&out).unwrap(), b"precious");

    let a = tmp.path().join("a.tar.gz");
    create(&src, ArchiveFormat::TarGz, &a, &no_cancel()).unwrap();
    let work = tmp.path().join("work");
    fs::create_dir_all(work.join("x")).unwrap();
    let err =
        recompress_default(&a, ArchiveFormat::Zip, &work, &tmp.path().join("new.zip")).unwrap_err();
    assert_eq!(err.code(), "io_error");
}

#[test]
fn recompress_failure_leaves_no_output_and_no_work_files() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.tar.gz");
    fs::write(
        &bad,
        gzip(&raw_tar(&[
            file_entry("fine.txt", b"ok"),
            file_entry("../../escape", b"evil"),
        ])),
    )
    .unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let out = tmp.path().join("out.zip");
    let err = recompress_default(&bad, ArchiveFormat::Zip, &work, &out).unwrap_err();
    assert_eq!(err.code(), "unsafe_archive_path");
    assert!(!out.exists());
    assert_eq!(
        names(tmp.path()),
        vec!["bad.tar.gz".to_string(), "work/".into()]
    );
}
