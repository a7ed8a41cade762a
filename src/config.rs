//! Settings: defaults → optional `reelforge.toml` → `REELFORGE_*` environment → flags.
//!
//! Flags and environment are read by clap (`SettingsArgs`); the file fills what they left
//! unset; defaults fill the rest. `Settings::resolve` is the only constructor of `Settings`
//! and checks everything it can without side effects; `Settings::prepare` then creates the
//! data directories and loads (or generates) the JWT secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::RateLimit;
use crate::fetch::AllowList;
use crate::net::TrustedProxies;

/// The settings every role accepts, as flags or `REELFORGE_*` variables, and as keys of
/// `reelforge.toml` (the field names).
#[derive(Debug, Clone, Default, clap::Args, Deserialize, Serialize)]
#[serde(default, rename_all = "snake_case")]
pub struct SettingsArgs {
    /// The settings file this layer was read from, and the keys it set (see
    /// [`read_file_layer`]); empty for flags and the environment.
    #[arg(skip)]
    #[serde(skip)]
    pub file: FileOrigin,
    /// Address the API binds.
    #[arg(long, global = true, env = "REELFORGE_LISTEN")]
    pub listen: Option<String>,
    /// Address a `reelforge worker` binds for `/healthz`, `/readyz` and `/metrics` (probes and
    /// scraping); unset, a worker does not listen, so any number of them share a host.
    #[arg(long, global = true, env = "REELFORGE_WORKER_LISTEN")]
    pub worker_listen: Option<String>,
    /// Where the embedded defaults (database, objects, scratch, secret) live.
    #[arg(long, global = true, env = "REELFORGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` (default `sqlite://$DATA_DIR/reelforge.db`) or
    /// `postgres://USER:PASSWORD@HOST/DB` (`postgresql://` too).
    #[arg(
        long,
        global = true,
        env = "REELFORGE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// `file://PATH` (default `file://$DATA_DIR/objects`), `s3://BUCKET/PREFIX` or
    /// `gs://BUCKET/PREFIX` (credentials from the usual `AWS_*` / `GOOGLE_*` variables).
    #[arg(long, global = true, env = "REELFORGE_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// S3-compatible server for `s3://` storage, e.g. `https://minio.internal:9000`
    /// (path-style requests; plain `http://` only on loopback).
    #[arg(long, global = true, env = "REELFORGE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Where presigned download URLs point (default: the S3 endpoint): the address users
    /// reach the S3 server at when the API talks to it on a private name, e.g. through a
    /// proxy that passes the Host header on (plain `http://` only on loopback).
    #[arg(long, global = true, env = "REELFORGE_S3_PUBLIC_ENDPOINT")]
    pub s3_public_endpoint: Option<String>,
    /// Per-run temporary folders (default `$DATA_DIR/scratch`).
    #[arg(long, global = true, env = "REELFORGE_SCRATCH_DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Concurrent jobs in this process (default: half the CPU cores, at least 1).
    #[arg(long, global = true, env = "REELFORGE_WORKERS")]
    pub workers: Option<usize>,
    /// HS256 key for login tokens (default: generated into `$DATA_DIR/jwt-secret`).
    #[arg(
        long,
        global = true,
        env = "REELFORGE_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Login token lifetime, e.g. `1h`, `30m`.
    #[arg(long, global = true, env = "REELFORGE_TOKEN_TTL")]
    pub token_ttl: Option<String>,
    /// Largest accepted upload or download, e.g. `2GiB`.
    #[arg(long, global = true, env = "REELFORGE_MAX_UPLOAD")]
    pub max_upload: Option<String>,
    /// Hosts, IPs or CIDRs that URL fetches may reach although private or loopback.
    #[arg(long, global = true, env = "REELFORGE_FETCH_ALLOW")]
    pub fetch_allow: Option<String>,
    /// Reverse proxies (IPs or CIDRs) whose `X-Forwarded-For` names the client, e.g. `10.0.0.0/8`.
    #[arg(long, global = true, env = "REELFORGE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Signups per client address, `COUNT/PERIOD`: COUNT at once, then COUNT per PERIOD,
    /// e.g. `10/1h`.
    #[arg(long, global = true, env = "REELFORGE_SIGNUP_LIMIT")]
    pub signup_limit: Option<String>,
    /// Who may create an account: `open` (anyone who reaches the server), `invite` (with a
    /// code an admin made) or `closed` (only `reelforge user create` and admins).
    #[arg(long, global = true, env = "REELFORGE_SIGNUP")]
    pub signup: Option<String>,
    /// How long a finished task's files (input and outputs) are kept, e.g. `30d`; the task's
    /// record stays. `off` (the default): kept until the task is deleted.
    #[arg(long, global = true, env = "REELFORGE_RETENTION")]
    pub retention: Option<String>,
    /// Most bytes of inputs and outputs each user may have stored, e.g. `20GiB`; a new task
    /// over it is refused (`quota_exceeded`). `off` (the default): no limit.
    #[arg(long, global = true, env = "REELFORGE_USER_QUOTA")]
    pub user_quota: Option<String>,
    /// Password hashes (signups, logins) computed at once (default: the CPU cores); each
    /// takes 19 MiB while it runs.
    #[arg(long, global = true, env = "REELFORGE_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// SMTP server for notifications: `smtp://USER:PASSWORD@HOST[:587]` (STARTTLS),
    /// `smtps://USER:PASSWORD@HOST[:465]` (TLS) or `smtp://HOST:PORT?tls=none` (plain
    /// text, loopback only).
    #[arg(
        long,
        global = true,
        env = "REELFORGE_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// Sender of notification e-mails, `Name <address>` or `address`; required with
    /// REELFORGE_SMTP_URL.
    #[arg(long, global = true, env = "REELFORGE_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// PEM file of extra root certificates to trust for the SMTP server (a private CA).
    #[arg(long, global = true, env = "REELFORGE_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Base URL used in e-mails and webhooks (default: derived from the request).
    #[arg(long, global = true, env = "REELFORGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long running jobs may finish after SIGTERM before their leases are released.
    #[arg(long, global = true, env = "REELFORGE_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// A request's headers must arrive within this of its first byte (of the connection's
    /// opening, for the first request), or the connection is closed.
    #[arg(long, global = true, env = "REELFORGE_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// A connection that keeps the server waiting this long (between requests, or for more of
    /// a request body) is closed.
    #[arg(long, global = true, env = "REELFORGE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// One INFO line per request (method, route, status, latency, user, client address);
    /// `false` turns it off.
    #[arg(long, global = true, env = "REELFORGE_ACCESS_LOG", value_parser = clap::builder::BoolishValueParser::new())]
    pub access_log: Option<bool>,
    /// Kill an ffmpeg run whose progress has not advanced for this long (the attempt is retried).
    #[arg(long, global = true, env = "REELFORGE_STALL_TIMEOUT")]
    pub stall_timeout: Option<String>,
    /// Queue lease: a worker that has not renewed its job for this long (renewals come every
    /// second) loses it to another worker, e.g. `30s`.
    #[arg(long, global = true, env = "REELFORGE_LEASE")]
    pub lease: Option<String>,
    /// Longest accepted media, e.g. `4h`.
    #[arg(long, global = true, env = "REELFORGE_MAX_DURATION")]
    pub max_duration: Option<String>,
    /// Largest accepted video frame, `WIDTHxHEIGHT` (compared as a pixel count), e.g. `8192x4320`.
    #[arg(long, global = true, env = "REELFORGE_MAX_FRAME")]
    pub max_frame: Option<String>,
    /// Most bytes an archive may expand to (the archive profile), e.g. `4GiB`.
    #[arg(long, global = true, env = "REELFORGE_MAX_EXTRACT")]
    pub max_extract: Option<String>,
    /// Most streams an input may have.
    #[arg(long, global = true, env = "REELFORGE_MAX_STREAMS")]
    pub max_streams: Option<usize>,
    /// The ffmpeg program (default: `ffmpeg` on the PATH).
    #[arg(long, global = true, env = "REELFORGE_FFMPEG")]
    pub ffmpeg: Option<PathBuf>,
    /// The ffprobe program (default: `ffprobe` on the PATH).
    #[arg(long, global = true, env = "REELFORGE_FFPROBE")]
    pub ffprobe: Option<PathBuf>,
}

/// The settings of `reelforge user …`, which only opens the database: its `--help` shows
/// these and `--config`, not every server setting. The same variables and file keys as
/// [`SettingsArgs`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DatabaseArgs {
    /// Where the embedded defaults (the SQLite database) live.
    #[arg(long, global = true, env = "REELFORGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` (default `sqlite://$DATA_DIR/reelforge.db`) or
    /// `postgres://USER:PASSWORD@HOST/DB` (`postgresql://` too).
    #[arg(
        long,
        global = true,
        env = "REELFORGE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

/// The settings of `reelforge mail …`, which only talks to the SMTP server. The same
/// variables and file keys as [`SettingsArgs`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MailArgs {
    /// SMTP server: `smtp://USER:PASSWORD@HOST[:587]` (STARTTLS), `smtps://…[:465]` (TLS)
    /// or `smtp://HOST:PORT?tls=none` (plain text, loopback only).
    #[arg(
        long,
        global = true,
        env = "REELFORGE_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,
    /// Sender of the e-mails, `Name <address>` or `address`.
    #[arg(long, global = true, env = "REELFORGE_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// PEM file of extra root certificates to trust for the SMTP server (a private CA).
    #[arg(long, global = true, env = "REELFORGE_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
}

impl From<MailArgs> for SettingsArgs {
    fn from(a: MailArgs) -> SettingsArgs {
        SettingsArgs {
            smtp_url: a.smtp_url,
            mail_from: a.mail_from,
            smtp_ca_file: a.smtp_ca_file,
            ..SettingsArgs::default()
        }
    }
}

impl From<DatabaseArgs> for SettingsArgs {
    fn from(a: DatabaseArgs) -> SettingsArgs {
        SettingsArgs {
            data_dir: a.data_dir,
            database_url: a.database_url,
            ..SettingsArgs::default()
        }
    }
}

/// Who may create an account through the API (`REELFORGE_SIGNUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupMode {
    /// Anyone who can reach the server (the default: one machine, its owner signs up).
    Open,
    /// With an invite code an admin made.
    Invite,
    /// Nobody: accounts come from `reelforge user create` or an admin.
    Closed,
}

impl SignupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "invite" => Ok(Self::Invite),
            "closed" => Ok(Self::Closed),
            _ => Err(format!("{s:?} is not one of open, invite, closed")),
        }
    }
}

/// Fully resolved settings. Build with [`Settings::resolve`].
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Where a `worker` serves health and metrics; `None`: it does not listen.
    pub worker_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub storage_url: String,
    /// The S3 endpoint, and (for embedding and tests) extra `object_store` keys.
    pub storage_options: crate::storage::StorageOptions,
    pub scratch_dir: PathBuf,
    pub workers: usize,
    /// Notification deliverers in a process that runs workers.
    pub deliverers: usize,
    pub jwt_secret: Option<Secret>,
    pub token_ttl: Duration,
    pub max_upload: u64,
    pub fetch_allow: AllowList,
    pub trusted_proxies: TrustedProxies,
    /// Signups per client address.
    pub signup_limit: RateLimit,
    /// Who may sign up.
    pub signup: SignupMode,
    /// How long finished tasks' files are kept (`None`: until deleted).
    pub retention: Option<Duration>,
    /// Most bytes each user may have stored (`None`: no limit).
    pub user_quota: Option<u64>,
    /// Password hashes computed at once.
    pub hash_concurrency: usize,
    /// The SMTP server (`REELFORGE_SMTP_URL`, checked); its password never prints.
    pub smtp_url: Option<crate::mail::SmtpUrl>,
    /// The sender of e-mails; always set when `smtp_url` is.
    pub mail_from: Option<lettre::message::Mailbox>,
    /// Extra root certificates for the SMTP server's TLS (read by `mail::Mailer`).
    pub smtp_ca_file: Option<PathBuf>,
    pub public_url: Option<url::Url>,
    pub shutdown_grace: Duration,
    /// A request head is due within this of its first byte (`http::serve`).
    pub header_timeout: Duration,
    /// Between requests, and for more of a body, the client may keep a connection waiting
    /// this long (`http::serve`).
    pub idle_timeout: Duration,
    /// Log every request at INFO.
    pub access_log: bool,
    pub stall_timeout: Duration,
    /// What ffprobe must find acceptable before any processing.
    pub probe_limits: crate::media::probe::ProbeLimits,
    /// Bounds of archive extraction.
    pub extract_limits: crate::archive::ExtractLimits,
    /// First retry delay of an infrastructure failure; doubles per attempt (max 5 min).
    pub retry_base: Duration,
    /// Queue lease length; a worker renews it every second.
    pub lease: Duration,
    /// Retries of infrastructure failures before a task fails.
    pub max_attempts: u32,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// The settings file's keys in use, to name them in `prepare`'s errors.
    origin: FileOrigin,
}

/// A string that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// A bad setting: one line saying which and why. A value from the settings file is named
/// as the file has it (`` `max_upload` in /etc/reelforge.toml``), others by their variable.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", written.as_deref().unwrap_or(setting))]
pub struct SettingError {
    /// The `REELFORGE_*` variable (or `config file`).
    pub setting: &'static str,
    pub reason: String,
    /// Where the value was written, when the settings file holds it.
    pub written: Option<String>,
}

fn bad(setting: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError {
        setting,
        reason: reason.into(),
        written: None,
    }
}

/// An error about `key` as written in the settings file at `path`.
fn bad_key(key: &str, path: &Path, reason: impl Into<String>) -> SettingError {
    SettingError {
        written: Some(format!("`{key}` in {}", path.display())),
        ..bad("config file", reason)
    }
}

/// Which settings file a layer came from and which keys it set.
#[derive(Debug, Clone, Default)]
pub struct FileOrigin {
    pub path: Option<PathBuf>,
    pub keys: Vec<String>,
}

impl FileOrigin {
    /// The keys of this file that `args` (flags and environment) did not override.
    fn beneath(&self, args: &SettingsArgs) -> FileOrigin {
        let overridden = serde_json::to_value(args).unwrap_or_default();
        let keys = self
            .keys
            .iter()
            .filter(|k| overridden.get(k.as_str()).is_none_or(|v| v.is_null()))
            .cloned()
            .collect();
        FileOrigin {
            path: self.path.clone(),
            keys,
        }
    }

    /// `e`, naming its key as the file has it when the value came from the file.
    fn attribute(&self, mut e: SettingError) -> SettingError {
        let key = e
            .setting
            .strip_prefix("REELFORGE_")
            .map(str::to_ascii_lowercase);
        if let (Some(key), Some(path)) = (key, &self.path)
            && self.keys.contains(&key)
        {
            e.written = Some(format!("`{key}` in {}", path.display()));
        }
        e
    }
}

/// Every key `reelforge.toml` may hold: the settings' field names.
fn known_keys() -> Vec<String> {
    use clap::Args;
    SettingsArgs::augment_args(clap::Command::new("reelforge"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

/// Refuse a key no setting has, suggesting the ones it was probably meant to be.
fn check_keys(table: &toml::Table, path: &Path) -> Result<(), SettingError> {
    let known = known_keys();
    for key in table.keys() {
        if known.contains(key) {
            continue;
        }
        let close = close_matches(key, &known);
        let hint = match close.as_slice() {
            [] => "see the settings table of the README for the keys".to_string(),
            some => format!("did you mean {}?", some.join(" or ")),
        };
        return Err(bad_key(key, path, format!("no such setting; {hint}")));
    }
    Ok(())
}

/// Known keys that `key` looks like a slip of: another case, `-` for `_`, the variable's
/// name, or a typo or two.
fn close_matches(key: &str, known: &[String]) -> Vec<String> {
    let lower = key.to_ascii_lowercase().replace('-', "_");
    let bare = lower.strip_prefix("reelforge_").unwrap_or(&lower);
    known
        .iter()
        .filter(|k| strsim::damerau_levenshtein(bare, k) <= 2)
        .map(|k| format!("`{k}`"))
        .collect()
}

impl SettingsArgs {
    /// Fill unset values from `other` (a lower layer).
    fn or(self, other: SettingsArgs) -> SettingsArgs {
        SettingsArgs {
            file: if self.file.path.is_some() {
                self.file
            } else {
                other.file
            },
            listen: self.listen.or(other.listen),
            worker_listen: self.worker_listen.or(other.worker_listen),
            data_dir: self.data_dir.or(other.data_dir),
            database_url: self.database_url.or(other.database_url),
            storage_url: self.storage_url.or(other.storage_url),
            s3_endpoint: self.s3_endpoint.or(other.s3_endpoint),
            s3_public_endpoint: self.s3_public_endpoint.or(other.s3_public_endpoint),
            scratch_dir: self.scratch_dir.or(other.scratch_dir),
            workers: self.workers.or(other.workers),
            jwt_secret: self.jwt_secret.or(other.jwt_secret),
            token_ttl: self.token_ttl.or(other.token_ttl),
            max_upload: self.max_upload.or(other.max_upload),
            fetch_allow: self.fetch_allow.or(other.fetch_allow),
            trusted_proxies: self.trusted_proxies.or(other.trusted_proxies),
            signup_limit: self.signup_limit.or(other.signup_limit),
            signup: self.signup.or(other.signup),
            retention: self.retention.or(other.retention),
            user_quota: self.user_quota.or(other.user_quota),
            hash_concurrency: self.hash_concurrency.or(other.hash_concurrency),
            smtp_url: self.smtp_url.or(other.smtp_url),
            mail_from: self.mail_from.or(other.mail_from),
            smtp_ca_file: self.smtp_ca_file.or(other.smtp_ca_file),
            public_url: self.public_url.or(other.public_url),
            shutdown_grace: self.shutdown_grace.or(other.shutdown_grace),
            header_timeout: self.header_timeout.or(other.header_timeout),
            idle_timeout: self.idle_timeout.or(other.idle_timeout),
            access_log: self.access_log.or(other.access_log),
            stall_timeout: self.stall_timeout.or(other.stall_timeout),
            lease: self.lease.or(other.lease),
            max_duration: self.max_duration.or(other.max_duration),
            max_frame: self.max_frame.or(other.max_frame),
            max_streams: self.max_streams.or(other.max_streams),
            max_extract: self.max_extract.or(other.max_extract),
            ffmpeg: self.ffmpeg.or(other.ffmpeg),
            ffprobe: self.ffprobe.or(other.ffprobe),
        }
    }
}

/// Read `reelforge.toml` (or the given file). A missing default file is not an error.
/// Relative paths in the file are relative to the file's own folder, as a reader of the file
/// expects; they come back absolute.
pub fn read_file_layer(path: Option<&Path>) -> Result<SettingsArgs, SettingError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("reelforge.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(SettingsArgs::default());
        }
        Err(e) => return Err(bad("config file", format!("{}: {e}", path.display()))),
    };
    let path = std::path::absolute(&path)
        .map_err(|e| bad("config file", format!("{}: {e}", path.display())))?;
    let mut layer = parse_file(&text, &path)?;
    let folder = path.parent().unwrap_or(Path::new("/"));
    layer.file = FileOrigin {
        keys: layer.file.keys,
        path: Some(path.clone()),
    };
    Ok(layer.absolute_paths(folder))
}

/// The settings in a file's text: every key known, every value of its type, errors naming
/// the key as written.
fn parse_file(text: &str, path: &Path) -> Result<SettingsArgs, SettingError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
        bad(
            "config file",
            format!("{}{at}: {}", path.display(), e.message().trim()),
        )
    })?;
    check_keys(&table, path)?;
    let keys = table.keys().cloned().collect();
    let mut layer: SettingsArgs = serde_path_to_error::deserialize(toml::Value::Table(table))
        .map_err(|e| {
            let key = e.path().to_string();
            bad_key(&key, path, e.into_inner().message().trim().to_string())
        })?;
    layer.file.keys = keys;
    Ok(layer)
}

impl SettingsArgs {
    /// Every path-valued setting made absolute against `base` (absolute itself). Programs
    /// named without a `/` stay names to look up on the `PATH`. Relative paths must not
    /// survive resolution: ffmpeg runs inside a per-run scratch folder, where a relative
    /// path points nowhere.
    fn absolute_paths(self, base: &Path) -> SettingsArgs {
        let program = |p: PathBuf| {
            if p.components().count() > 1 {
                absolute_under(base, &p)
            } else {
                p
            }
        };
        SettingsArgs {
            data_dir: self.data_dir.map(|p| absolute_under(base, &p)),
            scratch_dir: self.scratch_dir.map(|p| absolute_under(base, &p)),
            smtp_ca_file: self.smtp_ca_file.map(|p| absolute_under(base, &p)),
            database_url: self.database_url.map(|u| absolute_sqlite_url(&u, base)),
            ffmpeg: self.ffmpeg.map(program),
            ffprobe: self.ffprobe.map(program),
            ..self
        }
    }
}

/// `path` if absolute, else `base/path`, with `.` components removed (no file is touched).
fn absolute_under(base: &Path, path: &Path) -> PathBuf {
    let joined = base.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

/// A `sqlite:` URL whose file path is relative gets an absolute one; `:memory:`, absolute
/// paths and other schemes are returned as they are.
fn absolute_sqlite_url(url: &str, base: &Path) -> String {
    let Some(rest) = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("sqlite:"))
        .map(|_| &url[7..])
    else {
        return url.to_string();
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (file, query) = match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    };
    if file.is_empty() || file.starts_with(':') || file.starts_with('/') {
        return url.to_string();
    }
    let mut out = format!(
        "sqlite://{}",
        absolute_under(base, Path::new(file)).display()
    );
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Settings {
    /// Merge the layers and check every value, with relative paths taken from the current
    /// directory. Touches no file.
    pub fn resolve(args: SettingsArgs, file: SettingsArgs) -> Result<Settings, SettingError> {
        let cwd = std::env::current_dir().map_err(|e| {
            bad(
                "REELFORGE_DATA_DIR",
                format!("the current directory cannot be read ({e}); use absolute paths"),
            )
        })?;
        Self::resolve_in(args, file, &cwd)
    }

    /// [`Settings::resolve`] with relative paths taken from `cwd` (absolute). Every path in
    /// the result is absolute, whatever the layers said.
    pub fn resolve_in(
        args: SettingsArgs,
        file: SettingsArgs,
        cwd: &Path,
    ) -> Result<Settings, SettingError> {
        let origin = file.file.beneath(&args);
        Self::resolve_layers(args.or(file).absolute_paths(cwd), cwd, origin.clone())
            .map_err(|e| origin.attribute(e))
    }

    /// The merged layers `a` resolved; `origin` is kept to name file keys in later errors.
    fn resolve_layers(
        a: SettingsArgs,
        cwd: &Path,
        origin: FileOrigin,
    ) -> Result<Settings, SettingError> {
        let data_dir = a
            .data_dir
            .clone()
            .unwrap_or_else(|| absolute_under(cwd, Path::new("data")));
        let max_upload = parsed("REELFORGE_MAX_UPLOAD", &a.max_upload, "2GiB", parse_size)?;
        let stores = Stores::resolve(&a, &data_dir)?;
        let (probe_limits, extract_limits) = media_limits(&a, max_upload)?;
        let times = Durations::resolve(&a)?;
        let mail = MailSettings::resolve(&a)?;
        Ok(Settings {
            origin,
            listen: parsed(
                "REELFORGE_LISTEN",
                &a.listen,
                "127.0.0.1:8080",
                parse_address,
            )?,
            worker_listen: optional("REELFORGE_WORKER_LISTEN", &a.worker_listen, parse_address)?,
            scratch_dir: a
                .scratch_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("scratch")),
            data_dir,
            database_url: stores.database_url,
            storage_url: stores.storage_url,
            storage_options: stores.options,
            workers: a.workers.unwrap_or_else(default_workers),
            deliverers: 4,
            jwt_secret: a.jwt_secret.clone().map(Secret::new),
            token_ttl: times.token_ttl,
            max_upload,
            fetch_allow: parsed(
                "REELFORGE_FETCH_ALLOW",
                &a.fetch_allow,
                "",
                AllowList::parse,
            )?,
            trusted_proxies: parsed("REELFORGE_TRUSTED_PROXIES", &a.trusted_proxies, "", |t| {
                TrustedProxies::parse(t)
            })?,
            signup_limit: parsed(
                "REELFORGE_SIGNUP_LIMIT",
                &a.signup_limit,
                "10/1h",
                parse_rate,
            )?,
            signup: parsed("REELFORGE_SIGNUP", &a.signup, "open", SignupMode::parse)?,
            retention: parsed("REELFORGE_RETENTION", &a.retention, "off", |t| {
                off_or(t, parse_duration).and_then(|d| match d {
                    Some(d) if d < Duration::from_secs(60) => {
                        Err("at least 1m (or off)".to_string())
                    }
                    d => Ok(d),
                })
            })?,
            user_quota: parsed("REELFORGE_USER_QUOTA", &a.user_quota, "off", |t| {
                off_or(t, parse_size)
            })?,
            hash_concurrency: hash_concurrency(a.hash_concurrency)?,
            smtp_url: mail.smtp_url,
            mail_from: mail.mail_from,
            smtp_ca_file: mail.smtp_ca_file,
            public_url: optional("REELFORGE_PUBLIC_URL", &a.public_url, parse_url)?,
            shutdown_grace: times.shutdown_grace,
            header_timeout: times.header_timeout,
            idle_timeout: times.idle_timeout,
            access_log: a.access_log.unwrap_or(true),
            stall_timeout: times.stall_timeout,
            probe_limits,
            extract_limits,
            retry_base: Duration::from_secs(5),
            lease: times.lease,
            max_attempts: 3,
            ffmpeg: a.ffmpeg.clone().unwrap_or_else(|| PathBuf::from("ffmpeg")),
            ffprobe: a
                .ffprobe
                .clone()
                .unwrap_or_else(|| PathBuf::from("ffprobe")),
        })
    }

    /// Create the data directories, check they are writable, check ffmpeg, and load or
    /// generate the JWT secret. Fails with one line saying what is wrong.
    pub fn prepare(&mut self, needs_ffmpeg: bool) -> Result<(), SettingError> {
        let origin = self.origin.clone();
        self.prepare_unnamed(needs_ffmpeg)
            .map_err(|e| origin.attribute(e))
    }

    fn prepare_unnamed(&mut self, needs_ffmpeg: bool) -> Result<(), SettingError> {
        for (name, dir) in [
            ("REELFORGE_DATA_DIR", self.data_dir.clone()),
            ("REELFORGE_SCRATCH_DIR", self.scratch_dir.clone()),
        ] {
            ensure_writable_dir(&dir).map_err(|e| bad(name, format!("{}: {e}", dir.display())))?;
        }
        if let Ok(crate::storage::Location::Local(dir)) =
            crate::storage::Location::parse(&self.storage_url)
        {
            ensure_writable_dir(&dir)
                .map_err(|e| bad("REELFORGE_STORAGE_URL", format!("{}: {e}", dir.display())))?;
        }
        if needs_ffmpeg {
            for (name, program) in [("ffmpeg", &self.ffmpeg), ("ffprobe", &self.ffprobe)] {
                let ok = std::process::Command::new(program)
                    .arg("-version")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if !ok {
                    return Err(bad(
                        "ffmpeg",
                        format!(
                            "`{name}` was not found or does not run; install it (Debian: apt-get install ffmpeg)"
                        ),
                    ));
                }
            }
        }
        if self.jwt_secret.is_none() {
            let secret = load_or_create_secret(&self.data_dir.join("jwt-secret"))
                .map_err(|e| bad("REELFORGE_JWT_SECRET", e))?;
            self.jwt_secret = Some(secret);
        }
        Ok(())
    }
}

/// One hash per CPU core by default: more would only wait for a core while holding memory.
fn hash_concurrency(given: Option<usize>) -> Result<usize, SettingError> {
    match given {
        Some(0) => Err(bad("REELFORGE_HASH_CONCURRENCY", "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

impl Settings {
    /// The SMTP mailer of these settings, `None` when `REELFORGE_SMTP_URL` is not set.
    pub fn mailer(&self) -> anyhow::Result<Option<crate::mail::Mailer>> {
        crate::mail::Mailer::configured(
            self.smtp_url.as_ref(),
            self.mail_from.as_ref(),
            self.smtp_ca_file.as_deref(),
        )
    }

    /// One line of what this process runs with, for the start-up log: the kinds of database
    /// and storage, the places, the workers and every limit. Never a secret: no URL is
    /// repeated (database and SMTP URLs may hold passwords), nor the JWT secret or storage
    /// credentials.
    pub fn summary(&self) -> String {
        let database = match crate::db::Backend::of_url(&self.database_url) {
            Some(crate::db::Backend::Sqlite) => "sqlite",
            Some(crate::db::Backend::Postgres) => "postgres",
            None => "unknown",
        };
        let storage = match crate::storage::Location::parse(&self.storage_url) {
            Ok(crate::storage::Location::Local(_)) => "file",
            Ok(crate::storage::Location::S3 { .. }) => "s3",
            Ok(crate::storage::Location::Gcs { .. }) => "gcs",
            Err(_) => "unknown",
        };
        // The server and how it is reached; never the user or the password.
        let smtp = self.smtp_url.as_ref().map_or_else(
            || "none".to_string(),
            |u| format!("{}:{}/{}", u.host, u.port, u.security),
        );
        let config = self
            .origin
            .path
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string());
        format!(
            "database={database} storage={storage} data_dir={} scratch_dir={} workers={} \
             max_upload={} max_extract={} max_duration={}s max_frame_pixels={} max_streams={} \
             token_ttl={:?} header_timeout={:?} idle_timeout={:?} shutdown_grace={:?} \
             stall_timeout={:?} lease={:?} access_log={} trusted_proxies={} signup={} \
             retention={} user_quota={} smtp={smtp} config={config}",
            self.data_dir.display(),
            self.scratch_dir.display(),
            self.workers,
            size_text(self.max_upload),
            size_text(self.extract_limits.max_total_bytes),
            self.probe_limits.max_duration_s,
            self.probe_limits.max_pixels,
            self.probe_limits.max_streams,
            self.token_ttl,
            self.header_timeout,
            self.idle_timeout,
            self.shutdown_grace,
            self.stall_timeout,
            self.lease,
            self.access_log,
            if self.trusted_proxies.is_empty() {
                "none"
            } else {
                "set"
            },
            self.signup.as_str(),
            self.retention
                .map_or_else(|| "off".to_string(), |d| format!("{d:?}")),
            self.user_quota.map_or_else(|| "off".to_string(), size_text),
        )
    }
}

/// `2GiB` when a size is a whole number of a binary unit, else bytes.
fn size_text(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| n >= *unit && n.is_multiple_of(*unit))
        .map_or_else(
            || format!("{n}B"),
            |(unit, name)| format!("{}{name}", n / unit),
        )
}

fn default_workers() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores / 2).max(1)
}

fn ensure_writable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

/// Read the secret file, or create it with 64 random bytes (hex) and mode 0600.
fn load_or_create_secret(path: &Path) -> Result<Secret, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(Secret::new(s.trim())),
        Ok(_) => return Err(format!("{} is shorter than 32 characters", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let bytes: [u8; 64] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(hex.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Secret::new(hex))
}

/// Where the data lives: the database, the object store and its options.
struct Stores {
    database_url: String,
    storage_url: String,
    options: crate::storage::StorageOptions,
}

impl Stores {
    /// The URLs given, or the embedded defaults under `data_dir` (absolute).
    fn resolve(a: &SettingsArgs, data_dir: &Path) -> Result<Stores, SettingError> {
        let database_url = a
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("reelforge.db").display()));
        if crate::db::Backend::of_url(&database_url).is_none() {
            return Err(bad(
                "REELFORGE_DATABASE_URL",
                "unsupported scheme (sqlite:// and postgres:// are supported)",
            ));
        }
        let storage_url = a
            .storage_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        let location = crate::storage::Location::parse(&storage_url)
            .map_err(|e| bad("REELFORGE_STORAGE_URL", e))?;
        let s3_endpoint = optional(
            "REELFORGE_S3_ENDPOINT",
            &a.s3_endpoint,
            crate::storage::parse_s3_endpoint,
        )?;
        let s3_public_endpoint = optional(
            "REELFORGE_S3_PUBLIC_ENDPOINT",
            &a.s3_public_endpoint,
            crate::storage::parse_s3_endpoint,
        )?;
        let is_s3 = matches!(location, crate::storage::Location::S3 { .. });
        for (setting, value) in [
            ("REELFORGE_S3_ENDPOINT", &s3_endpoint),
            ("REELFORGE_S3_PUBLIC_ENDPOINT", &s3_public_endpoint),
        ] {
            if value.is_some() && !is_s3 {
                return Err(bad(
                    setting,
                    "only applies to s3:// storage (REELFORGE_STORAGE_URL)",
                ));
            }
        }
        Ok(Stores {
            database_url,
            storage_url,
            options: crate::storage::StorageOptions {
                s3_endpoint,
                s3_public_endpoint,
                extra: vec![],
            },
        })
    }
}

/// The e-mail settings: the SMTP server, the sender and the extra root certificates.
struct MailSettings {
    smtp_url: Option<crate::mail::SmtpUrl>,
    mail_from: Option<lettre::message::Mailbox>,
    smtp_ca_file: Option<PathBuf>,
}

impl MailSettings {
    fn resolve(a: &SettingsArgs) -> Result<MailSettings, SettingError> {
        // Its errors never repeat the URL: it may hold a password.
        let smtp_url = optional("REELFORGE_SMTP_URL", &a.smtp_url, |text| {
            crate::mail::SmtpUrl::parse(text)
        })?;
        let mail_from = optional("REELFORGE_MAIL_FROM", &a.mail_from, parse_mailbox)?;
        if smtp_url.is_some() && mail_from.is_none() {
            return Err(bad(
                "REELFORGE_MAIL_FROM",
                "must be set with REELFORGE_SMTP_URL: the sender of notification e-mails, \
                 e.g. `Reelforge <noreply@example.com>`",
            ));
        }
        match (&smtp_url, &a.smtp_ca_file) {
            (None, Some(_)) => {
                return Err(bad(
                    "REELFORGE_SMTP_CA_FILE",
                    "only applies with REELFORGE_SMTP_URL (the SMTP server's certificates)",
                ));
            }
            (Some(url), Some(_)) if url.security == crate::mail::SmtpSecurity::Plain => {
                return Err(bad(
                    "REELFORGE_SMTP_CA_FILE",
                    "REELFORGE_SMTP_URL says tls=none: a plain-text connection checks no \
                     certificate",
                ));
            }
            _ => {}
        }
        Ok(MailSettings {
            smtp_url,
            mail_from,
            smtp_ca_file: a.smtp_ca_file.clone(),
        })
    }
}

/// `Name <user@example.com>` or `user@example.com`.
fn parse_mailbox(text: &str) -> Result<lettre::message::Mailbox, String> {
    text.trim().parse().map_err(|e| {
        format!(
            "not a mailbox: {text:?} ({e}); use e.g. `Reelforge <noreply@example.com>` or \
             `noreply@example.com`"
        )
    })
}

/// What ffprobe must find acceptable, and the bounds of archive extraction.
fn media_limits(
    a: &SettingsArgs,
    max_upload: u64,
) -> Result<
    (
        crate::media::probe::ProbeLimits,
        crate::archive::ExtractLimits,
    ),
    SettingError,
> {
    let max_duration = parsed(
        "REELFORGE_MAX_DURATION",
        &a.max_duration,
        "4h",
        parse_duration,
    )?;
    let max_pixels = parsed(
        "REELFORGE_MAX_FRAME",
        &a.max_frame,
        "8192x4320",
        parse_frame,
    )?;
    let max_streams = a.max_streams.unwrap_or(16);
    if max_streams == 0 {
        return Err(bad("REELFORGE_MAX_STREAMS", "must be positive"));
    }
    let max_duration = positive("REELFORGE_MAX_DURATION", max_duration)?;
    let probe = crate::media::probe::ProbeLimits {
        max_duration_s: max_duration.as_secs_f64(),
        max_pixels,
        max_streams,
        max_file_size: max_upload,
    };
    let extract = crate::archive::ExtractLimits {
        max_total_bytes: parsed("REELFORGE_MAX_EXTRACT", &a.max_extract, "4GiB", parse_size)?,
        ..Default::default()
    };
    Ok((probe, extract))
}

/// The duration settings.
struct Durations {
    token_ttl: Duration,
    shutdown_grace: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    stall_timeout: Duration,
    lease: Duration,
}

impl Durations {
    fn resolve(a: &SettingsArgs) -> Result<Durations, SettingError> {
        let duration = |setting, value, default| parsed(setting, value, default, parse_duration);
        let lease = duration("REELFORGE_LEASE", &a.lease, "30s")?;
        if lease < Duration::from_secs(3) {
            // Renewals come every second: a shorter lease would be lost to a slow write.
            return Err(bad("REELFORGE_LEASE", "must be at least 3s"));
        }
        Ok(Durations {
            token_ttl: positive(
                "REELFORGE_TOKEN_TTL",
                duration("REELFORGE_TOKEN_TTL", &a.token_ttl, "1h")?,
            )?,
            shutdown_grace: duration("REELFORGE_SHUTDOWN_GRACE", &a.shutdown_grace, "30s")?,
            header_timeout: positive(
                "REELFORGE_HEADER_TIMEOUT",
                duration("REELFORGE_HEADER_TIMEOUT", &a.header_timeout, "10s")?,
            )?,
            idle_timeout: positive(
                "REELFORGE_IDLE_TIMEOUT",
                duration("REELFORGE_IDLE_TIMEOUT", &a.idle_timeout, "75s")?,
            )?,
            stall_timeout: positive(
                "REELFORGE_STALL_TIMEOUT",
                duration("REELFORGE_STALL_TIMEOUT", &a.stall_timeout, "120s")?,
            )?,
            lease,
        })
    }
}

/// The value given, or `default`, parsed; an error names the setting.
fn parsed<T>(
    setting: &'static str,
    value: &Option<String>,
    default: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, SettingError> {
    parse(value.as_deref().unwrap_or(default)).map_err(|e| bad(setting, e))
}

/// `None` for `off` (a limit or period that does not apply), else the value parsed.
fn off_or<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match text.trim() {
        "off" => Ok(None),
        t => parse(t).map(Some),
    }
}

/// The value parsed when given; `None` when unset.
fn optional<T>(
    setting: &'static str,
    value: &Option<String>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, SettingError> {
    value
        .as_deref()
        .map(parse)
        .transpose()
        .map_err(|e| bad(setting, e))
}

fn positive(setting: &'static str, d: Duration) -> Result<Duration, SettingError> {
    if d.is_zero() {
        return Err(bad(setting, "must be positive"));
    }
    Ok(d)
}

fn parse_url(text: &str) -> Result<url::Url, String> {
    url::Url::parse(text).map_err(|e| format!("{e}: {text:?}"))
}

fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not an address:port: {text:?}"))
}

/// `WIDTHxHEIGHT` → pixel count.
pub fn parse_frame(text: &str) -> Result<u64, String> {
    let err = || format!("not a frame size: {text:?} (use e.g. 8192x4320)");
    let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(err)?;
    let w: u64 = w.trim().parse().map_err(|_| err())?;
    let h: u64 = h.trim().parse().map_err(|_| err())?;
    if w == 0 || h == 0 {
        return Err(err());
    }
    Ok(w * h)
}

/// `10s`, `5m`, `1h`, `2d`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (use e.g. 30s, 5m, 1h)"))?;
    let mult = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(format!("not a duration: {text:?} (use e.g. 30s, 5m, 1h)")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("not a duration: {text:?}"));
    }
    Ok(Duration::from_secs_f64(n * mult))
}

/// `COUNT/PERIOD`, e.g. `10/1h`: COUNT at once, then one every PERIOD/COUNT.
pub fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let err = || format!("not a rate: {text:?} (use e.g. 10/1h: ten at once, ten an hour)");
    let (count, period) = text.split_once('/').ok_or_else(err)?;
    let burst: u32 = count.trim().parse().map_err(|_| err())?;
    let period = parse_duration(period).map_err(|_| err())?;
    if burst == 0 || period.is_zero() {
        return Err(format!(
            "{text:?}: the count and the period must be above zero"
        ));
    }
    Ok(RateLimit {
        burst,
        every: period / burst,
    })
}

/// `512`, `10KiB`, `64MiB`, `2GiB` (also `KB/MB/GB` as powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a size: {text:?} (use e.g. 512MiB, 2GiB)"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return Err(format!("not a size: {text:?} (use e.g. 512MiB, 2GiB)")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("not a size: {text:?}"));
    }
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests;
