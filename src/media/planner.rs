//! The planner contract every profile follows: one function
//! `plan_{profile}(&MediaInfo, &Options, &Paths, stem) -> Result<Plan, PlanError>` from
//! (probe result, options, where to read and write, output stem) to a [`Plan`] of ffmpeg
//! runs and the profile's summary; [`super::plan`] picks it for a task's profile. Planning
//! is pure: nothing touches the file system or spawns a process, so every argv is
//! unit-tested. Outputs are named after the stem, sanitised with [`sanitize_stem`].

use crate::domain::ErrorCode;
use std::path::PathBuf;

/// Where the planned runs read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub input: PathBuf,
    /// The folder every output is written to.
    pub out_dir: PathBuf,
    /// A PNG image, for the profiles that show a logo ([`crate::domain::Profile::wants_logo`]:
    /// idrl's bumpers); the others ignore it.
    pub logo: Option<PathBuf>,
}

/// What a task's processing runs, and what it will report.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Output frame size shared by every video output; `(0, 0)` for audio outputs and
    /// for the HLS ladder (one size per rung).
    pub width: u32,
    pub height: u32,
    /// The ffmpeg runs, in order.
    pub runs: Vec<PlannedRun>,
    /// The profile's summary of the finished run, stored on the task (the HLS ladder).
    pub result: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// ffmpeg arguments, without the program name.
    pub argv: Vec<String>,
    pub output: PathBuf,
    /// The output's file name, e.g. `{stem}_part_{NNN}.mp4`.
    pub output_name: String,
    /// Seconds of output the run produces (what `-progress` `out_time` runs up to).
    pub expected_duration: f64,
}

/// An invalid option value; `option` is the field name as the API spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("options.{option}: {message}")]
pub struct OptionError {
    pub option: &'static str,
    pub message: String,
}

impl OptionError {
    pub(crate) fn new(option: &'static str, message: impl Into<String>) -> Self {
        OptionError {
            option,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error("media has no video stream")]
    NoVideo,
    #[error("media has no audio stream")]
    NoAudio,
    #[error("media has no usable duration")]
    InvalidDuration,
    #[error("output frame would be {width}x{height}, too small")]
    FrameTooSmall { width: u32, height: u32 },
    #[error("path is not valid UTF-8: {0}")]
    NonUtf8Path(PathBuf),
    /// The profile shows a logo but [`Paths::logo`] is empty.
    #[error("the profile needs a logo image and none was given")]
    NoLogo,
    /// The profile has no media planner (archive).
    #[error("archives are not media")]
    NotMedia,
}

impl PlanError {
    /// Stable snake_case error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanError::Option(_) => ErrorCode::InvalidOptions,
            PlanError::NoVideo => ErrorCode::NoVideoStream,
            PlanError::NoAudio => ErrorCode::NoAudioStream,
            PlanError::InvalidDuration | PlanError::FrameTooSmall { .. } => ErrorCode::InvalidMedia,
            PlanError::NonUtf8Path(_) | PlanError::NoLogo | PlanError::NotMedia => {
                ErrorCode::Internal
            }
        }
    }
}

/// `duration` when it is usable (finite and above zero), else [`PlanError::InvalidDuration`].
pub(crate) fn checked_duration(duration: f64) -> Result<f64, PlanError> {
    if duration.is_finite() && duration > 0.0 {
        Ok(duration)
    } else {
        Err(PlanError::InvalidDuration)
    }
}

/// Keeps `[A-Za-z0-9_-]` (other characters become `_`, runs collapsed),
/// trims `_`/`-` at both ends, at most 64 characters, never empty.
pub fn sanitize_stem(stem: &str) -> String {
    let mut out = String::with_capacity(stem.len().min(64));
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let trimmed: String = out
        .trim_matches(|c| c == '_' || c == '-')
        .chars()
        .take(64)
        .collect();
    let trimmed = trimmed.trim_end_matches(['_', '-']);
    if trimmed.is_empty() {
        "video".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_sanitised() {
        assert_eq!(sanitize_stem("My clip (final)"), "My_clip_final");
        assert_eq!(sanitize_stem("../../etc/passwd"), "etc_passwd");
        assert_eq!(sanitize_stem("-rf"), "rf");
        assert_eq!(sanitize_stem(""), "video");
        assert_eq!(sanitize_stem("日本語"), "video");
        assert_eq!(sanitize_stem("a-b_c9"), "a-b_c9");
        assert_eq!(sanitize_stem(&"x".repeat(100)).len(), 64);
        let s = sanitize_stem(&format!("{}_{}", "y".repeat(63), "z".repeat(5)));
        assert_eq!(s, "y".repeat(63));
    }
}
