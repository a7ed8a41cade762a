use super::limits::sanitize;
use super::*;

#[test]
fn sanitize_rules() {
    let ok = |n: &str| sanitize(n, 32).map_err(|e| e.code().as_str());
    assert_eq!(
        ok("a/b/c.txt"),
        Ok(vec!["a".into(), "b".into(), "c.txt".into()])
    );
    assert_eq!(ok("./a//b/"), Ok(vec!["a".into(), "b".into()]));
    assert_eq!(ok("a/../b"), Ok(vec!["b".into()]));
    assert_eq!(ok("./"), Ok(vec![]));
    assert_eq!(ok("a\\b"), Ok(vec!["a".into(), "b".into()]));
    for bad in [
        "",
        "/etc/x",
        "\\\\server\\share",
        "C:\\x",
        "c:x",
        "../x",
        "a/../../b",
        "a\\..\\..\\b",
        "a\0b",
    ] {
        assert_eq!(ok(bad), Err("unsafe_archive_path"), "{bad:?}");
    }
    let deep = vec!["d"; 33].join("/");
    assert_eq!(ok(&deep), Err("archive_too_deep"));
    let long = "x".repeat(256);
    assert_eq!(ok(&long), Err("unsafe_archive_path"));
}

#[test]
fn magic() {
    assert_eq!(
        ArchiveFormat::from_magic(b"PK\x03\x04rest"),
        Some(ArchiveFormat::Zip)
    );
    assert_eq!(
        ArchiveFormat::from_magic(b"PK\x05\x06"),
        Some(ArchiveFormat::Zip)
    );
    assert_eq!(
        ArchiveFormat::from_magic(b"7z\xBC\xAF\x27\x1C\x00\x04"),
        Some(ArchiveFormat::SevenZ)
    );
    assert_eq!(
        ArchiveFormat::from_magic(b"\x1F\x8B\x08"),
        Some(ArchiveFormat::TarGz)
    );
    assert_eq!(
        ArchiveFormat::from_magic(b"BZh91AY"),
        Some(ArchiveFormat::TarBz2)
    );
    assert_eq!(ArchiveFormat::from_magic(b"BZh0"), None);
    assert_eq!(ArchiveFormat::from_magic(b"ustar"), None);
    assert_eq!(ArchiveFormat::from_magic(b""), None);
}

#[test]
fn names_and_codes() {
    for f in ArchiveFormat::ALL {
        assert_eq!(f.as_str().parse::<ArchiveFormat>().ok(), Some(f));
        assert_eq!(f.extension(), f.to_string());
    }
    assert_eq!(
        "TGZ".parse::<ArchiveFormat>().ok(),
        Some(ArchiveFormat::TarGz)
    );
    assert_eq!(
        "rar"
            .parse::<ArchiveFormat>()
            .map_err(|e| e.code().as_str()),
        Err("unknown_archive")
    );
    assert_eq!(
        ArchiveError::TooLarge { limit: 1 }.code(),
        "archive_too_large"
    );
    assert_eq!(ArchiveError::Cancelled.code(), "cancelled");
}
