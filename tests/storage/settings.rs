//! Storage settings: what is accepted, what is refused with one line naming the setting,
//! and the single rustls crypto provider.

use std::process::{Command, Stdio};

use reelforge::config::{Settings, SettingsArgs};
use reelforge::storage::{Location, Storage, StorageOptions, parse_s3_endpoint};

fn resolve(storage_url: &str, s3_endpoint: Option<&str>) -> Result<Settings, String> {
    Settings::resolve(
        SettingsArgs {
            storage_url: Some(storage_url.into()),
            s3_endpoint: s3_endpoint.map(str::to_string),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn storage_urls_parse_with_bucket_and_prefix() {
    assert_eq!(
        Location::parse("s3://reels/site/a/").unwrap(),
        Location::S3 {
            bucket: "reels".into(),
            prefix: "site/a".into()
        }
    );
    assert_eq!(
        Location::parse("gs://reels").unwrap(),
        Location::Gcs {
            bucket: "reels".into(),
            prefix: "".into()
        }
    );
    assert_eq!(
        Location::parse("file:///srv/reelforge/objects").unwrap(),
        Location::Local("/srv/reelforge/objects".into())
    );
    for (bad, why) in [
        ("s3://", "no bucket"),
        ("s3://key:secret@reels/x", "credentials"),
        ("s3://reels:9000/x", "no port"),
        ("s3://reels/x?region=eu", "no query"),
        ("gs://reels/a//b", "bad prefix"),
        ("azure://c/x", "unsupported scheme"),
        ("file://otherhost/srv", "local absolute path"),
        ("::not a url", "relative URL"),
    ] {
        let e = Location::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn s3_endpoints_allow_http_only_on_loopback() {
    assert!(parse_s3_endpoint("https://minio.internal:9000").is_ok());
    assert!(parse_s3_endpoint("http://127.0.0.1:9000").is_ok());
    assert!(parse_s3_endpoint("http://[::1]:9000/").is_ok());
    assert!(parse_s3_endpoint("http://localhost:9000").is_ok());
    let e = parse_s3_endpoint("http://minio.internal:9000").unwrap_err();
    assert!(e.contains("loopback"), "{e}");
    assert!(parse_s3_endpoint("ftp://127.0.0.1").is_err());
    assert!(parse_s3_endpoint("https://minio.internal/bucket").is_err());
}

#[test]
fn settings_name_the_bad_storage_setting() {
    let s = resolve("s3://reels/p", Some("http://127.0.0.1:9000")).unwrap();
    assert_eq!(
        s.storage_options.s3_endpoint.as_ref().map(|u| u.as_str()),
        Some("http://127.0.0.1:9000/")
    );
    let e = resolve("s3:///p", None).err().unwrap();
    assert!(e.starts_with("REELFORGE_STORAGE_URL: "), "{e}");
    let e = resolve("s3://reels", Some("http://10.0.0.5:9000"))
        .err()
        .unwrap();
    assert!(e.starts_with("REELFORGE_S3_ENDPOINT: "), "{e}");
    let e = resolve("gs://reels", Some("https://minio.internal"))
        .err()
        .unwrap();
    assert!(e.starts_with("REELFORGE_S3_ENDPOINT: "), "{e}");
    // The toml key is `s3_endpoint`.
    let file: SettingsArgs =
        toml::from_str("storage_url = \"s3://reels\"\ns3_endpoint = \"https://s3.example\"\n")
            .unwrap();
    let s = Settings::resolve(SettingsArgs::default(), file).unwrap();
    assert_eq!(s.storage_url, "s3://reels");
    assert!(s.storage_options.s3_endpoint.is_some());
}

#[test]
fn the_public_s3_endpoint_is_checked_like_the_endpoint() {
    let public = |storage_url: &str, endpoint: &str| {
        Settings::resolve(
            SettingsArgs {
                storage_url: Some(storage_url.into()),
                s3_public_endpoint: Some(endpoint.into()),
                ..Default::default()
            },
            SettingsArgs::default(),
        )
        .map_err(|e| e.to_string())
    };
    let s = public("s3://reels", "https://objects.example.com").unwrap();
    assert_eq!(
        s.storage_options
            .s3_public_endpoint
            .as_ref()
            .map(|u| u.as_str()),
        Some("https://objects.example.com/")
    );
    for (storage_url, endpoint, why) in [
        ("s3://reels", "http://objects.example.com", "loopback"),
        (
            "s3://reels",
            "https://objects.example.com/bucket",
            "scheme://host:port only",
        ),
        (
            "gs://reels",
            "https://objects.example.com",
            "only applies to s3://",
        ),
    ] {
        let e = public(storage_url, endpoint).err().unwrap();
        assert!(e.starts_with("REELFORGE_S3_PUBLIC_ENDPOINT: "), "{e}");
        assert!(e.contains(why), "{e}");
    }
}

/// The binary refuses a malformed storage setting at start: exit 1, one line naming it.
#[test]
fn startup_fails_fast_on_bad_storage_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (env, needle) in [
        (
            vec![("REELFORGE_STORAGE_URL", "s3://")],
            "REELFORGE_STORAGE_URL",
        ),
        (
            vec![("REELFORGE_STORAGE_URL", "ftp://reels/x")],
            "REELFORGE_STORAGE_URL",
        ),
        (
            vec![
                ("REELFORGE_STORAGE_URL", "s3://reels"),
                ("REELFORGE_S3_ENDPOINT", "http://s3.example.com"),
            ],
            "REELFORGE_S3_ENDPOINT",
        ),
        // Well-formed, but the store cannot be built: still one line, naming the setting.
        (
            vec![
                ("REELFORGE_STORAGE_URL", "gs://reels"),
                ("GOOGLE_SERVICE_ACCOUNT", "/nonexistent/reelforge-sa.json"),
            ],
            "REELFORGE_STORAGE_URL",
        ),
    ] {
        let start = std::time::Instant::now();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reelforge"));
        cmd.arg("serve")
            .env("REELFORGE_DATA_DIR", d)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with("reelforge: ") && lines[0].contains(needle),
            "{stderr}"
        );
    }
}

/// `cargo tree -i CRATE` over every dependency kind: what depends on the crate.
fn dependents(krate: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal,build,dev",
            "-i",
            krate,
        ])
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// One rustls provider: `ring` is not compiled in (Cargo.lock names it only as an optional
/// dependency that no feature turns on), aws-lc-rs is.
#[test]
fn only_aws_lc_rs_is_compiled_in() {
    assert_eq!(dependents("ring"), "");
    let lc = dependents("aws-lc-rs");
    assert!(lc.contains("object_store") && lc.contains("rustls"), "{lc}");
}

/// Building the HTTPS clients of S3 and GCS and of reqwest, and using one, does not panic
/// over crypto providers (it would with ring and aws-lc-rs both present and none chosen).
#[tokio::test]
async fn https_clients_build_and_connect() {
    reelforge::install_crypto_provider();
    let s3 = Storage::from_url(
        "s3://reels/p",
        &StorageOptions {
            s3_endpoint: Some(url::Url::parse("https://127.0.0.1:1").unwrap()),
            s3_public_endpoint: None,
            extra: vec![
                ("aws_access_key_id".into(), "x".into()),
                ("aws_secret_access_key".into(), "y".into()),
                ("aws_region".into(), "us-east-1".into()),
            ],
        },
    )
    .unwrap();
    // Nothing listens on port 1: a connection error, not a panic.
    assert!(s3.size("tasks/x").await.is_err());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(client.get("https://127.0.0.1:1/").send().await.is_err());
}
