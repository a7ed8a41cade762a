use super::*;

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("2GiB"), Ok(2 * 1024 * 1024 * 1024));
    assert_eq!(parse_size("10KiB"), Ok(10240));
    assert_eq!(parse_size("1MB"), Ok(1_000_000));
    assert_eq!(parse_size("17"), Ok(17));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("5 parsecs").is_err());
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert!(parse_duration("soon").is_err());
    assert_eq!(parse_frame("8192x4320"), Ok(8192 * 4320));
    assert!(parse_frame("8192").is_err());
    assert!(parse_frame("0x5").is_err());
}

#[test]
fn layers_flag_beats_file_beats_default() {
    let flags = SettingsArgs {
        listen: Some("127.0.0.1:9000".into()),
        ..Default::default()
    };
    let file: SettingsArgs =
        toml::from_str("listen = \"127.0.0.1:7000\"\nworkers = 3\ntoken_ttl = \"2h\"\n").unwrap();
    let s = Settings::resolve(flags, file).unwrap();
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.workers, 3);
    assert_eq!(s.token_ttl, Duration::from_secs(7200));
    assert_eq!(s.max_upload, 2 * 1024 * 1024 * 1024);
    assert!(s.database_url.ends_with("reelforge.db"));
}

#[test]
fn bad_settings_say_which() {
    let r = Settings::resolve(
        SettingsArgs {
            storage_url: Some("::not a url".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
    );
    let e = r.err().unwrap();
    assert_eq!(e.setting, "REELFORGE_STORAGE_URL");
    let e = Settings::resolve(
        SettingsArgs {
            listen: Some("nowhere".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .err()
    .unwrap();
    assert_eq!(e.setting, "REELFORGE_LISTEN");
    let e = Settings::resolve(
        SettingsArgs {
            database_url: Some("mysql://db/reelforge".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .err()
    .unwrap();
    assert_eq!(e.setting, "REELFORGE_DATABASE_URL");
    for lease in ["2s", "soon"] {
        let e = Settings::resolve(
            SettingsArgs {
                lease: Some(lease.into()),
                ..Default::default()
            },
            SettingsArgs::default(),
        )
        .err()
        .unwrap();
        assert_eq!(e.setting, "REELFORGE_LEASE", "{lease}");
    }
}

#[test]
fn lease_defaults_to_30s_and_is_a_setting() {
    let s = Settings::resolve(SettingsArgs::default(), SettingsArgs::default()).unwrap();
    assert_eq!(s.lease, std::time::Duration::from_secs(30));
    let s = Settings::resolve(
        SettingsArgs {
            lease: Some("5s".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .unwrap();
    assert_eq!(s.lease, std::time::Duration::from_secs(5));
}

#[test]
fn signup_is_open_unless_set_to_invite_or_closed() {
    let with = |v: Option<&str>| {
        Settings::resolve(
            SettingsArgs {
                signup: v.map(str::to_string),
                ..Default::default()
            },
            SettingsArgs::default(),
        )
    };
    assert_eq!(with(None).unwrap().signup, SignupMode::Open);
    assert_eq!(with(Some("Invite")).unwrap().signup, SignupMode::Invite);
    assert_eq!(with(Some("closed")).unwrap().signup, SignupMode::Closed);
    assert!(
        with(Some("closed"))
            .unwrap()
            .summary()
            .contains("signup=closed")
    );
    let e = with(Some("friends")).err().unwrap();
    assert_eq!(e.setting, "REELFORGE_SIGNUP");
    assert!(e.to_string().contains("open, invite, closed"), "{e}");
}

#[test]
fn retention_and_quota_are_off_unless_set() {
    let with = |retention: Option<&str>, quota: Option<&str>| {
        Settings::resolve(
            SettingsArgs {
                retention: retention.map(str::to_string),
                user_quota: quota.map(str::to_string),
                ..Default::default()
            },
            SettingsArgs::default(),
        )
    };
    let s = with(None, None).unwrap();
    assert_eq!((s.retention, s.user_quota), (None, None));
    assert!(s.summary().contains("retention=off user_quota=off"));
    let s = with(Some("30d"), Some("20GiB")).unwrap();
    assert_eq!(s.retention, Some(Duration::from_secs(30 * 24 * 3600)));
    assert_eq!(s.user_quota, Some(20 << 30));
    assert!(s.summary().contains("user_quota=20GiB"), "{}", s.summary());
    assert_eq!(with(Some("off"), Some("off")).unwrap().retention, None);
    for (retention, quota, setting) in [
        (Some("30s"), None, "REELFORGE_RETENTION"),
        (Some("forever"), None, "REELFORGE_RETENTION"),
        (None, Some("lots"), "REELFORGE_USER_QUOTA"),
    ] {
        assert_eq!(with(retention, quota).err().unwrap().setting, setting);
    }
}

#[test]
fn signup_limit_defaults_to_ten_an_hour_and_is_a_setting() {
    let s = Settings::resolve(SettingsArgs::default(), SettingsArgs::default()).unwrap();
    assert_eq!(
        s.signup_limit,
        RateLimit {
            burst: 10,
            every: Duration::from_secs(360)
        }
    );
    let s = Settings::resolve(
        SettingsArgs {
            signup_limit: Some("1000/1m".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .unwrap();
    assert_eq!(s.signup_limit.burst, 1000);
    assert_eq!(s.signup_limit.every, Duration::from_millis(60));
    for bad in ["10", "ten/1h", "0/1h", "10/0s", "10/soon"] {
        let e = Settings::resolve(
            SettingsArgs {
                signup_limit: Some(bad.into()),
                ..Default::default()
            },
            SettingsArgs::default(),
        )
        .err()
        .unwrap();
        assert_eq!(e.setting, "REELFORGE_SIGNUP_LIMIT", "{bad}");
    }
}

#[test]
fn hash_concurrency_defaults_to_the_cores_and_is_at_least_one() {
    let s = Settings::resolve(SettingsArgs::default(), SettingsArgs::default()).unwrap();
    assert!(s.hash_concurrency >= 1);
    let with = |n| SettingsArgs {
        hash_concurrency: Some(n),
        ..Default::default()
    };
    let s = Settings::resolve(with(3), SettingsArgs::default()).unwrap();
    assert_eq!(s.hash_concurrency, 3);
    let e = Settings::resolve(with(0), SettingsArgs::default())
        .err()
        .unwrap();
    assert_eq!(e.setting, "REELFORGE_HASH_CONCURRENCY");
}

#[test]
fn postgres_urls_are_accepted() {
    for url in [
        "postgres://reelforge:pw@127.0.0.1:5432/reelforge",
        "postgresql://db.internal/reelforge?sslmode=require",
    ] {
        let s = Settings::resolve(
            SettingsArgs {
                database_url: Some(url.into()),
                ..Default::default()
            },
            SettingsArgs::default(),
        )
        .ok()
        .unwrap();
        assert_eq!(s.database_url, url);
    }
}

#[test]
fn secret_is_generated_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::resolve(
        SettingsArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .unwrap();
    s.prepare(false).unwrap();
    let first = s.jwt_secret.clone().unwrap();
    let mode = std::fs::metadata(dir.path().join("jwt-secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    s.jwt_secret = None;
    s.prepare(false).unwrap();
    assert_eq!(first.expose(), s.jwt_secret.unwrap().expose());
    assert!(first.expose().len() >= 64);
}

#[test]
fn every_path_is_absolute_whatever_the_layers_say() {
    let cwd = Path::new("/srv/reelforge");
    let s = Settings::resolve_in(SettingsArgs::default(), SettingsArgs::default(), cwd).unwrap();
    assert_eq!(s.data_dir, Path::new("/srv/reelforge/data"));
    assert_eq!(s.scratch_dir, Path::new("/srv/reelforge/data/scratch"));
    assert_eq!(s.database_url, "sqlite:///srv/reelforge/data/reelforge.db");
    assert_eq!(s.storage_url, "file:///srv/reelforge/data/objects");
    assert_eq!(
        s.ffmpeg,
        Path::new("ffmpeg"),
        "a bare name is looked up on the PATH"
    );

    let s = Settings::resolve_in(
        SettingsArgs {
            data_dir: Some("./state/../state".into()),
            scratch_dir: Some("tmp/scratch".into()),
            database_url: Some("sqlite:db/r.db?mode=rwc".into()),
            ffprobe: Some("./bin/ffprobe".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
        cwd,
    )
    .unwrap();
    assert!(s.data_dir.is_absolute() && s.data_dir.starts_with(cwd));
    assert_eq!(s.scratch_dir, Path::new("/srv/reelforge/tmp/scratch"));
    assert_eq!(s.database_url, "sqlite:///srv/reelforge/db/r.db?mode=rwc");
    assert_eq!(s.ffprobe, Path::new("/srv/reelforge/bin/ffprobe"));
    assert_eq!(
        s.storage_url,
        format!("file://{}/objects", s.data_dir.display())
    );
}

#[test]
fn sqlite_urls_keep_memory_absolute_and_other_schemes() {
    let base = Path::new("/b");
    for kept in [
        "sqlite::memory:",
        "sqlite:///abs/r.db",
        "postgres://u:p@h/db",
        "sqlite://",
    ] {
        assert_eq!(absolute_sqlite_url(kept, base), kept);
    }
    assert_eq!(
        absolute_sqlite_url("sqlite://r.db", base),
        "sqlite:///b/r.db"
    );
    assert_eq!(
        absolute_sqlite_url("SQLite:x/r.db", base),
        "sqlite:///b/x/r.db"
    );
}

#[test]
fn file_paths_are_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let file = etc.join("reelforge.toml");
    std::fs::write(
        &file,
        "data_dir = \"var\"\nscratch_dir = \"scratch\"\nffmpeg = \"ffmpeg\"\n",
    )
    .unwrap();
    let layer = read_file_layer(Some(&file)).unwrap();
    let s = Settings::resolve_in(SettingsArgs::default(), layer, Path::new("/elsewhere")).unwrap();
    assert_eq!(s.data_dir, etc.join("var"));
    assert_eq!(s.scratch_dir, etc.join("scratch"));
    assert_eq!(s.ffmpeg, Path::new("ffmpeg"));
    // A flag or variable stays relative to the current directory.
    let layer = read_file_layer(Some(&file)).unwrap();
    let flags = SettingsArgs {
        data_dir: Some("mine".into()),
        ..Default::default()
    };
    let s = Settings::resolve_in(flags, layer, Path::new("/elsewhere")).unwrap();
    assert_eq!(s.data_dir, Path::new("/elsewhere/mine"));
}

#[test]
fn unwritable_data_dir_fails_fast() {
    let mut s = Settings::resolve(
        SettingsArgs {
            data_dir: Some(PathBuf::from("/proc/reelforge-cannot-write")),
            ..Default::default()
        },
        SettingsArgs::default(),
    )
    .unwrap();
    let e = s.prepare(false).err().unwrap();
    assert_eq!(e.setting, "REELFORGE_DATA_DIR");
}

/// `reelforge.toml` with `text` in a fresh folder; the folder lives as long as the guard.
fn settings_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reelforge.toml");
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_it_and_its_close_matches() {
    for (text, key, hint) in [
        (
            "max_uplod = \"1GiB\"\n",
            "max_uplod",
            "did you mean `max_upload`?",
        ),
        (
            "REELFORGE_LISTEN = \"127.0.0.1:1\"\n",
            "REELFORGE_LISTEN",
            "did you mean `listen`?",
        ),
        (
            "max-upload = \"1GiB\"\n",
            "max-upload",
            "did you mean `max_upload`?",
        ),
        ("colour = \"blue\"\n", "colour", "see the settings table"),
    ] {
        let (_dir, file) = settings_file(text);
        let e = read_file_layer(Some(&file)).err().unwrap();
        let line = e.to_string();
        assert!(
            line.starts_with(&format!("`{key}` in {}: ", file.display())),
            "{line}"
        );
        assert!(line.contains(hint), "{line}");
    }
    // Known keys are fine, whatever their order.
    let (_dir, file) = settings_file("workers = 2\nlisten = \"127.0.0.1:1\"\n");
    assert!(read_file_layer(Some(&file)).is_ok());
}

#[test]
fn errors_name_the_key_as_the_file_has_it() {
    let (_dir, file) = settings_file("listen = \"nowhere\"\nworkers = 2\n");
    let layer = read_file_layer(Some(&file)).unwrap();
    let e = Settings::resolve(SettingsArgs::default(), layer)
        .err()
        .unwrap();
    assert_eq!(e.setting, "REELFORGE_LISTEN");
    let line = e.to_string();
    assert!(
        line.starts_with(&format!("`listen` in {}: not an address", file.display())),
        "{line}"
    );
    // The same value from a flag or variable is named by its variable.
    let layer = read_file_layer(Some(&file)).unwrap();
    let flags = SettingsArgs {
        listen: Some("elsewhere".into()),
        ..Default::default()
    };
    let line = Settings::resolve(flags, layer).err().unwrap().to_string();
    assert!(line.starts_with("REELFORGE_LISTEN: "), "{line}");
    // A value of the wrong type names its key.
    let (_dir, file) = settings_file("workers = \"four\"\n");
    let line = read_file_layer(Some(&file)).err().unwrap().to_string();
    assert!(
        line.starts_with(&format!("`workers` in {}: ", file.display())),
        "{line}"
    );
    // So do the checks made when the directories are prepared.
    let (_dir, file) = settings_file("data_dir = \"/proc/reelforge-cannot-write\"\n");
    let layer = read_file_layer(Some(&file)).unwrap();
    let mut s = Settings::resolve(SettingsArgs::default(), layer).unwrap();
    let line = s.prepare(false).err().unwrap().to_string();
    assert!(
        line.starts_with(&format!("`data_dir` in {}: ", file.display())),
        "{line}"
    );
}

#[test]
fn the_summary_names_kinds_places_and_limits_but_no_secret() {
    let mut s = Settings::resolve_in(
        SettingsArgs {
            database_url: Some("postgres://reelforge:hunter2@db.internal/reelforge".into()),
            storage_url: Some("s3://media-bucket/reelforge".into()),
            jwt_secret: Some("jwt-secret-that-must-not-print-0123456789".into()),
            smtp_url: Some("smtp://mailer:mailpass@smtp.internal:587".into()),
            mail_from: Some("Reelforge <noreply@example.com>".into()),
            workers: Some(3),
            max_upload: Some("512MiB".into()),
            ..Default::default()
        },
        SettingsArgs::default(),
        Path::new("/srv/reelforge"),
    )
    .unwrap();
    s.storage_options.extra = vec![("aws_secret_access_key".into(), "s3-key-secret".into())];
    let line = s.summary();
    for part in [
        "database=postgres",
        "storage=s3",
        "data_dir=/srv/reelforge/data ",
        "workers=3",
        "max_upload=512MiB",
        "max_duration=14400s",
        "header_timeout=10s",
        "idle_timeout=75s",
        "access_log=true",
        "smtp=smtp.internal:587/starttls",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    for secret in [
        "hunter2",
        "jwt-secret-that",
        "mailpass",
        "s3-key-secret",
        "reelforge:",
    ] {
        assert!(!line.contains(secret), "{secret} in {line}");
    }
}

/// Resolve `args` alone (no file), from `/srv/reelforge`.
fn resolve_args(args: SettingsArgs) -> Result<Settings, SettingError> {
    Settings::resolve_in(args, SettingsArgs::default(), Path::new("/srv/reelforge"))
}

#[test]
fn smtp_settings_are_parsed_once_and_checked() {
    let s = resolve_args(SettingsArgs {
        smtp_url: Some("smtps://me%40example.com:p%40ss@mx.example.com".into()),
        mail_from: Some("Reelforge <noreply@example.com>".into()),
        smtp_ca_file: Some("certs/ca.pem".into()),
        ..Default::default()
    })
    .unwrap();
    let smtp = s.smtp_url.as_ref().unwrap();
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.security),
        ("mx.example.com", 465, crate::mail::SmtpSecurity::Tls)
    );
    assert!(smtp.credentials.is_some());
    let from = s.mail_from.as_ref().unwrap();
    assert_eq!(from.name.as_deref(), Some("Reelforge"));
    assert_eq!(from.email.to_string(), "noreply@example.com");
    // A relative CA file is taken from the current directory, like every path.
    assert_eq!(
        s.smtp_ca_file.as_deref(),
        Some(Path::new("/srv/reelforge/certs/ca.pem"))
    );
    assert!(s.summary().contains("smtp=mx.example.com:465/tls"));
    assert!(!s.summary().contains("p@ss"));

    // Unset: no mailer, and a bare address is a sender too.
    let s = resolve_args(SettingsArgs {
        mail_from: Some("noreply@example.com".into()),
        ..Default::default()
    })
    .unwrap();
    assert!(s.smtp_url.is_none());
    assert!(s.summary().contains("smtp=none"));
}

#[test]
fn bad_smtp_settings_say_which_and_what_to_do() {
    let cases = [
        (
            SettingsArgs {
                smtp_url: Some("smtp://u:hunter2@mx.example.com".into()),
                ..Default::default()
            },
            "REELFORGE_MAIL_FROM",
            "must be set with REELFORGE_SMTP_URL",
        ),
        (
            SettingsArgs {
                smtp_url: Some("smtp://u:hunter2@mx.example.com".into()),
                mail_from: Some("not an address".into()),
                ..Default::default()
            },
            "REELFORGE_MAIL_FROM",
            "not a mailbox",
        ),
        (
            SettingsArgs {
                smtp_url: Some("smtp://u:hunter2@mx.example.com?tls=none".into()),
                mail_from: Some("noreply@example.com".into()),
                ..Default::default()
            },
            "REELFORGE_SMTP_URL",
            "only allowed to a loopback host",
        ),
        (
            SettingsArgs {
                smtp_url: Some("imap://u:hunter2@mx.example.com".into()),
                mail_from: Some("noreply@example.com".into()),
                ..Default::default()
            },
            "REELFORGE_SMTP_URL",
            "unsupported scheme",
        ),
        (
            SettingsArgs {
                smtp_ca_file: Some("/etc/ssl/private-ca.pem".into()),
                ..Default::default()
            },
            "REELFORGE_SMTP_CA_FILE",
            "only applies with REELFORGE_SMTP_URL",
        ),
        (
            SettingsArgs {
                smtp_url: Some("smtp://127.0.0.1:2525?tls=none".into()),
                mail_from: Some("noreply@example.com".into()),
                smtp_ca_file: Some("/etc/ssl/private-ca.pem".into()),
                ..Default::default()
            },
            "REELFORGE_SMTP_CA_FILE",
            "checks no certificate",
        ),
    ];
    for (args, setting, reason) in cases {
        let e = resolve_args(args).err().unwrap();
        let line = e.to_string();
        assert_eq!(e.setting, setting, "{line}");
        assert!(line.starts_with(&format!("{setting}: ")), "{line}");
        assert!(line.contains(reason), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }
}

#[test]
fn smtp_settings_come_from_the_file_too() {
    let (_dir, file) = settings_file(
        "smtp_url = \"smtp://127.0.0.1:2525?tls=none\"\nmail_from = \"noreply@example.com\"\n",
    );
    let layer = read_file_layer(Some(&file)).unwrap();
    let s = Settings::resolve(SettingsArgs::default(), layer).unwrap();
    assert_eq!(
        s.smtp_url.unwrap().security,
        crate::mail::SmtpSecurity::Plain
    );
    // The CA file of the file is relative to the file's folder, and named as the file has it.
    let (dir, file) = settings_file("smtp_ca_file = \"ca.pem\"\n");
    let layer = read_file_layer(Some(&file)).unwrap();
    assert_eq!(layer.smtp_ca_file, Some(dir.path().join("ca.pem")));
    let line = Settings::resolve(SettingsArgs::default(), layer)
        .err()
        .unwrap()
        .to_string();
    assert!(
        line.starts_with(&format!("`smtp_ca_file` in {}: ", file.display())),
        "{line}"
    );
}
