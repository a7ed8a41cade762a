//! Tasks as the rest of the code sees them: status, stage, source, profile, outputs, and the
//! JSON object the API returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ErrorCode;
use super::field_error::{describe, json_kind, whole_numbers};
use super::notification::{NotificationView, display_url};
use crate::media::OptionError;
use crate::media::compress::CompressOptions;
use crate::media::convert::ConvertOptions;
use crate::media::hls::HlsOptions;
use crate::media::idrl::IdrlOptions;
use crate::media::probe::MediaInfo;
use crate::media::thumbnail::ThumbnailOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// What a running task is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Fetching,
    Probing,
    Processing,
    Storing,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetching => "fetching",
            Stage::Probing => "probing",
            Stage::Processing => "processing",
            Stage::Storing => "storing",
        }
    }
    pub fn parse(s: &str) -> Option<Stage> {
        [
            Stage::Fetching,
            Stage::Probing,
            Stage::Processing,
            Stage::Storing,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Where the input comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Url { url: String },
    Upload { filename: String, size: u64 },
}

impl Source {
    /// Base name for outputs: the upload's file name or the URL's last path segment.
    pub fn stem(&self) -> String {
        let name = match self {
            Source::Upload { filename, .. } => filename.clone(),
            Source::Url { url } => url::Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.path_segments()
                        .and_then(|mut s| s.next_back().map(str::to_string))
                })
                .unwrap_or_default(),
        };
        // Two-part archive extensions go whole: `photos.tar.gz` → `photos`.
        let lower = name.to_ascii_lowercase();
        let name = [".tar.gz", ".tar.bz2"]
            .iter()
            .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len())
            .map(|ext| name[..name.len() - ext.len()].to_string())
            .unwrap_or(name);
        let stem = match name.rsplit_once('.') {
            Some((s, _)) if !s.is_empty() => s.to_string(),
            _ => name,
        };
        crate::media::sanitize_stem(&stem)
    }
}

/// The processing asked for. Stored as `{"profile": NAME, "options": {...}}`, NAME being
/// the variant in snake_case, which is [`Profile::name`] (a test checks they agree).
/// Media profiles are planned by [`crate::media::plan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "profile", content = "options", rename_all = "snake_case")]
pub enum Profile {
    /// The default profile: the input is cut into parts of `segment_seconds`, each with a
    /// logo card (bumper) before and after it, 16:9 H.264/AAC.
    Idrl(IdrlOptions),
    Convert(ConvertOptions),
    Compress(CompressOptions),
    Thumbnail(ThumbnailOptions),
    Hls(HlsOptions),
    Archive(ArchiveOptions),
}

/// Options of the `archive` profile: the format to recompress into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveOptions {
    pub format: crate::archive::ArchiveFormat,
}

impl ArchiveOptions {
    /// The profile's name, as the API spells it.
    pub const NAME: &str = "archive";

    /// The options' JSON Schema.
    pub fn schema() -> serde_json::Value {
        use crate::media::schema::{documented, enum_of, object};
        let mut s = object(
            "Recompress an archive (zip, 7z, tar.gz, tar.bz2) into another format, extraction bounded.",
            serde_json::json!({
                "format": documented(enum_of(crate::archive::ArchiveFormat::ALL),
                    "The archive format to write.", None::<()>)
            }),
        );
        s["required"] = serde_json::json!(["format"]);
        s
    }
}

impl Profile {
    /// The profile's name, as the API spells it: its options type's `NAME`.
    pub fn name(&self) -> &'static str {
        match self {
            Profile::Idrl(_) => IdrlOptions::NAME,
            Profile::Convert(_) => ConvertOptions::NAME,
            Profile::Compress(_) => CompressOptions::NAME,
            Profile::Thumbnail(_) => ThumbnailOptions::NAME,
            Profile::Hls(_) => HlsOptions::NAME,
            Profile::Archive(_) => ArchiveOptions::NAME,
        }
    }

    /// Whether the profile's runs show a logo (idrl's bumpers), which the job fetches
    /// before planning ([`crate::media::Paths::logo`]).
    pub fn wants_logo(&self) -> bool {
        matches!(self, Profile::Idrl(_))
    }

    pub fn options_json(&self) -> serde_json::Value {
        let v = match self {
            Profile::Idrl(o) => serde_json::to_value(o),
            Profile::Convert(o) => serde_json::to_value(o),
            Profile::Compress(o) => serde_json::to_value(o),
            Profile::Thumbnail(o) => serde_json::to_value(o),
            Profile::Hls(o) => serde_json::to_value(o),
            Profile::Archive(o) => serde_json::to_value(o),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// Deserialize and validate one profile's options; errors name the option as
/// `options.NAME` and say what it should be ([`describe`]).
fn parse_options<T: serde::de::DeserializeOwned>(
    profile: &str,
    value: serde_json::Value,
    validate: impl FnOnce(&T) -> Result<(), OptionError>,
) -> Result<T, (ErrorCode, String)> {
    let o: T = serde_path_to_error::deserialize(whole_numbers(value)).map_err(|e| {
        let path = format!("options.{}", e.path()).replace("options..", "options");
        let message =
            unknown_option(profile, e.inner()).unwrap_or_else(|| describe(&path, e.inner()));
        (ErrorCode::InvalidOptions, message)
    })?;
    validate(&o).map_err(|e| (ErrorCode::InvalidOptions, e.to_string()))?;
    Ok(o)
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as a sentence naming the profile,
/// a likely meant option (`segmentSeconds` → `segment_seconds`) and the valid ones.
fn unknown_option(profile: &str, err: &serde_json::Error) -> Option<String> {
    let text = err.to_string();
    let rest = text.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let squash = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
    let hint = valid
        .iter()
        .find(|v| squash(v) == squash(key))
        .map(|v| format!(" (did you mean `{v}`?)"))
        .unwrap_or_default();
    Some(format!(
        "`options.{key}` is not an option of the {profile} profile{hint}; its options are {}",
        valid.join(", ")
    ))
}

/// Names of every profile, for error messages.
pub const KNOWN_PROFILES: [&str; 6] = [
    IdrlOptions::NAME,
    ConvertOptions::NAME,
    CompressOptions::NAME,
    ThumbnailOptions::NAME,
    HlsOptions::NAME,
    ArchiveOptions::NAME,
];

/// Every profile with its options' JSON Schema, in [`KNOWN_PROFILES`]' order (the default
/// profile first): what the OpenAPI document and `docs/profiles.md` are made from.
pub fn option_schemas() -> [(&'static str, serde_json::Value); 6] {
    [
        (IdrlOptions::NAME, IdrlOptions::schema()),
        (ConvertOptions::NAME, ConvertOptions::schema()),
        (CompressOptions::NAME, CompressOptions::schema()),
        (ThumbnailOptions::NAME, ThumbnailOptions::schema()),
        (HlsOptions::NAME, HlsOptions::schema()),
        (ArchiveOptions::NAME, ArchiveOptions::schema()),
    ]
}

/// Parse `profile` + `options` from a request. `Err((code, message))`.
pub fn parse_profile(
    name: Option<&str>,
    options: Option<serde_json::Value>,
) -> Result<Profile, (ErrorCode, String)> {
    let value = match options {
        None | Some(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
        Some(v @ serde_json::Value::Object(_)) => v,
        Some(other) => {
            return Err((
                ErrorCode::InvalidOptions,
                format!("`options` must be a JSON object, not {}", json_kind(&other)),
            ));
        }
    };
    match name.unwrap_or(IdrlOptions::NAME) {
        p @ IdrlOptions::NAME => parse_options(p, value, IdrlOptions::validate).map(Profile::Idrl),
        p @ ConvertOptions::NAME => {
            parse_options(p, value, ConvertOptions::validate).map(Profile::Convert)
        }
        p @ CompressOptions::NAME => {
            parse_options(p, value, CompressOptions::validate).map(Profile::Compress)
        }
        p @ ThumbnailOptions::NAME => {
            parse_options(p, value, ThumbnailOptions::validate).map(Profile::Thumbnail)
        }
        p @ HlsOptions::NAME => parse_options(p, value, HlsOptions::validate).map(Profile::Hls),
        p @ ArchiveOptions::NAME => {
            parse_options(p, value, |_: &ArchiveOptions| Ok(())).map(Profile::Archive)
        }
        other => Err((
            ErrorCode::InvalidProfile,
            format!(
                "unknown profile {other:?}; expected one of {}",
                KNOWN_PROFILES.join(", ")
            ),
        )),
    }
}

/// One produced file, as recorded on the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub name: String,
    /// Storage key (never shown to clients).
    pub key: String,
    pub size: u64,
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskError {
    /// An [`ErrorCode`]'s text (kept as text: it is stored, and shown as stored).
    pub code: String,
    pub message: String,
}

impl TaskError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        TaskError {
            code: code.as_str().to_string(),
            message: message.into(),
        }
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: TaskStatus,
    pub profile: Profile,
    pub source: Source,
    pub input: Option<MediaInfo>,
    pub input_key: Option<String>,
    pub stage: Option<Stage>,
    pub percent: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub outputs: Vec<OutputFile>,
    pub error: Option<TaskError>,
    pub attempts: u32,
    /// The planned command lines of the latest run (scratch paths made relative).
    pub commands: Vec<String>,
    /// The profile's summary of the finished run, e.g. `{"input_size", "output_size",
    /// "ratio"}` for compress, the ladder for hls.
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// While a failed attempt waits to be retried: when the next one is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Where to send the task's own webhook events (signed with the owner's default secret).
    pub webhook_url: Option<String>,
    /// The messages its events owed, oldest first (loaded for the API's reads only).
    pub notifications: Vec<NotificationView>,
    /// The owner's `expires_in`: seconds its files are kept after it finishes.
    pub keep_seconds: Option<u64>,
    /// When its files (input and outputs) were removed by the retention sweep.
    pub files_expired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InputView {
    pub duration: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProgressView {
    pub stage: Option<Stage>,
    pub percent: f64,
    pub eta_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutputView {
    pub name: String,
    pub size: u64,
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub url: String,
}

/// The task object the API returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: Uuid,
    pub status: TaskStatus,
    pub profile: String,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    pub source: Source,
    pub input: Option<InputView>,
    pub progress: ProgressView,
    pub outputs: Vec<OutputView>,
    /// Why the task failed; on a `queued` task, why its last attempt failed (it is retried
    /// at `next_attempt_at`). `null` while it runs and once it succeeds.
    pub error: Option<TaskError>,
    /// Attempts used of the service's maximum (never more); a run stopped by a graceful
    /// shutdown gives its attempt back, and a retry by the user starts again from 0.
    pub attempts: u32,
    /// The ffmpeg command lines planned for the latest run, for troubleshooting. Left out
    /// of list responses asked with `commands=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// The profile's summary of the finished run (compress ratio, HLS ladder, …).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// On a `queued` task whose last attempt failed: when the next attempt is due (RFC
    /// 3339); `null` otherwise.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The task's own webhook URL (shown without its query), if it has one.
    pub webhook_url: Option<String>,
    /// The e-mails and webhook calls the task's events owed, and how each went. Left out of
    /// a webhook's own body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<NotificationView>>,
    /// Seconds the task's files are kept after it finishes, as asked at submission
    /// (`REELFORGE_RETENTION`, when set, may remove them sooner); `null`: not asked.
    pub expires_in: Option<u64>,
    /// When the task's files (input and outputs) were removed; its downloads then answer
    /// `410 files_expired`. `null` while they are kept.
    pub files_expired_at: Option<DateTime<Utc>>,
}

impl TaskRecord {
    pub fn view(&self) -> TaskView {
        let percent = match self.status {
            TaskStatus::Succeeded => 100.0,
            _ => self.percent.unwrap_or(0.0),
        };
        TaskView {
            id: self.id,
            status: self.status,
            profile: self.profile.name().to_string(),
            options: self.profile.options_json(),
            source: self.source.clone(),
            input: self.input.as_ref().map(|i| InputView {
                duration: i.duration,
                width: i.video.as_ref().map(|v| v.width),
                height: i.video.as_ref().map(|v| v.height),
                video_codec: i.video.as_ref().map(|v| v.codec.clone()),
                audio_codec: i.audio.as_ref().map(|a| a.codec.clone()),
            }),
            progress: ProgressView {
                stage: if self.status == TaskStatus::Running {
                    self.stage
                } else {
                    None
                },
                percent,
                eta_seconds: if self.status == TaskStatus::Running {
                    self.eta_seconds
                } else {
                    None
                },
            },
            outputs: self
                .outputs
                .iter()
                .map(|o| OutputView {
                    name: o.name.clone(),
                    size: o.size,
                    duration: o.duration,
                    width: o.width,
                    height: o.height,
                    video_codec: o.video_codec.clone(),
                    audio_codec: o.audio_codec.clone(),
                    url: format!("/api/tasks/{}/outputs/{}", self.id, o.name),
                })
                .collect(),
            error: self.error.clone(),
            attempts: self.attempts,
            commands: Some(self.commands.clone()),
            result: self.result.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            next_attempt_at: self
                .next_attempt_at
                .filter(|_| self.status == TaskStatus::Queued),
            webhook_url: self.webhook_url.as_deref().map(display_url),
            notifications: Some(self.notifications.clone()),
            expires_in: self.keep_seconds,
            files_expired_at: self.files_expired_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_the_stored_tag_and_parse_back() {
        let options = |name: &str| match name {
            ConvertOptions::NAME => Some(json!({"format": "mp4"})),
            CompressOptions::NAME => Some(json!({"quality": "low"})),
            ArchiveOptions::NAME => Some(json!({"format": "zip"})),
            _ => None,
        };
        for name in KNOWN_PROFILES {
            let profile = parse_profile(Some(name), options(name)).unwrap();
            assert_eq!(profile.name(), name);
            assert_eq!(serde_json::to_value(&profile).unwrap()["profile"], name);
            assert_eq!(profile.wants_logo(), name == IdrlOptions::NAME, "{name}");
        }
        assert_eq!(parse_profile(None, None).unwrap().name(), IdrlOptions::NAME);
        // A whole number written with a fraction is a whole number.
        let idrl = parse_profile(None, Some(json!({"max_height": 720.0}))).unwrap();
        assert!(matches!(idrl, Profile::Idrl(o) if o.max_height == 720));
        let (code, message) = parse_profile(None, Some(json!({"max_height": 720.5}))).unwrap_err();
        assert_eq!(code, "invalid_options");
        assert!(
            message.contains("`options.max_height` must be a whole number"),
            "{message}"
        );
        let (code, message) = parse_profile(Some("nope"), None).unwrap_err();
        assert_eq!(code, "invalid_profile");
        assert!(message.ends_with("idrl, convert, compress, thumbnail, hls, archive"));
    }
}
