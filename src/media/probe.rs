//! ffprobe: the argv to run it safely, pure parsing of its JSON output into
//! [`MediaInfo`], and validation against configurable [`ProbeLimits`].

use std::ffi::OsString;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{SAFE_INPUT_ARGS, file_url};
use crate::domain::ErrorCode;

/// ffprobe's options for the format and streams as JSON, errors only.
const PRINT_JSON: [&str; 6] = [
    "-v",
    "error",
    "-print_format",
    "json",
    "-show_format",
    "-show_streams",
];

/// Arguments for `ffprobe` (without the program name) that print the format
/// and streams of `input` as JSON. The input gets the same protocol and
/// demuxer allow-lists as every ffmpeg input, so probing never opens URLs or
/// follows playlists.
pub fn ffprobe_args(input: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = PRINT_JSON.iter().map(OsString::from).collect();
    args.extend(SAFE_INPUT_ARGS.iter().map(OsString::from));
    args.push("-i".into());
    args.push(file_url(input));
    args
}

/// Arguments for `ffprobe` reading back one of the service's own outputs:
/// [`ffprobe_args`], except that GIF and image outputs get their single-file
/// demuxer forced (see [`super::output_demuxer`]). Still images have no
/// duration, so [`parse_ffprobe`] refuses them: read their size from the JSON.
pub fn ffprobe_output_args(output: &Path) -> Vec<OsString> {
    let Some(demuxer) = super::output_demuxer(output) else {
        return ffprobe_args(output);
    };
    let mut args: Vec<OsString> = PRINT_JSON.iter().map(OsString::from).collect();
    args.extend(
        [
            "-protocol_whitelist",
            super::INPUT_PROTOCOL_WHITELIST,
            "-format_whitelist",
            demuxer,
            "-f",
            demuxer,
            "-i",
        ]
        .iter()
        .map(OsString::from),
    );
    args.push(file_url(output));
    args
}

/// What the service needs to know about a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Seconds: the container's duration, else the longest stream's.
    pub duration: f64,
    /// ffprobe's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format_name: String,
    /// File size in bytes, when ffprobe reports it.
    pub size: Option<u64>,
    /// The first video stream that is not an attached picture (cover art).
    pub video: Option<VideoStream>,
    /// The first audio stream.
    pub audio: Option<AudioStream>,
    /// All streams of every kind (video, audio, subtitles, data, ...).
    pub stream_count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStream {
    /// The stream's index in the file (for `-map 0:{index}` / `[0:{index}]`).
    pub index: usize,
    pub codec: String,
    /// Coded width, before rotation.
    pub width: u32,
    /// Coded height, before rotation.
    pub height: u32,
    pub fps: Option<f64>,
    pub pix_fmt: Option<String>,
    /// Clockwise rotation in degrees needed for display, normalised to
    /// `0..360` (from the display matrix side data, else the `rotate` tag).
    /// ffmpeg applies it automatically when decoding (`-autorotate`).
    pub rotation: i32,
}

impl VideoStream {
    /// Whether the rotation turns the picture by a quarter turn, swapping
    /// width and height on display.
    pub fn is_quarter_turn(&self) -> bool {
        let quarter = ((self.rotation.rem_euclid(360) + 45) / 90) % 4;
        quarter % 2 == 1
    }

    /// Width as displayed, after rotation.
    pub fn display_width(&self) -> u32 {
        if self.is_quarter_turn() {
            self.height
        } else {
            self.width
        }
    }

    /// Height as displayed, after rotation.
    pub fn display_height(&self) -> u32 {
        if self.is_quarter_turn() {
            self.width
        } else {
            self.height
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStream {
    /// The stream's index in the file.
    pub index: usize,
    pub codec: String,
    pub channels: u32,
    pub sample_rate: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeError {
    #[error("not a supported media file: {0}")]
    InvalidMedia(String),
    #[error("media lasts {duration_s:.1} s, more than the limit of {max_s:.0} s")]
    TooLong { duration_s: f64, max_s: f64 },
    #[error("frame of {width}x{height} exceeds the limit of {max_pixels} pixels")]
    TooManyPixels {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("media has {count} streams, more than the limit of {max}")]
    TooManyStreams { count: usize, max: usize },
    #[error("file of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("media has no video stream")]
    NoVideo,
}

impl ProbeError {
    /// Stable snake_case error code for APIs and task records.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProbeError::InvalidMedia(_) => ErrorCode::InvalidMedia,
            ProbeError::TooLong { .. } => ErrorCode::MediaTooLong,
            ProbeError::TooManyPixels { .. } => ErrorCode::MediaTooLargeFrame,
            ProbeError::TooManyStreams { .. } => ErrorCode::TooManyStreams,
            ProbeError::TooLarge { .. } => ErrorCode::FileTooLarge,
            ProbeError::NoVideo => ErrorCode::NoVideoStream,
        }
    }
}

/// Limits checked after probing, before any processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeLimits {
    pub max_duration_s: f64,
    /// Maximum width × height of the video frame.
    pub max_pixels: u64,
    pub max_streams: usize,
    /// Bytes.
    pub max_file_size: u64,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        ProbeLimits {
            max_duration_s: 4.0 * 3600.0,
            max_pixels: 8192 * 4320,
            max_streams: 16,
            max_file_size: 8 * 1024 * 1024 * 1024,
        }
    }
}

/// Checks a probe result against the limits. Audio-only media passes (some
/// profiles accept it); use [`MediaInfo::require_video`] where video is needed.
pub fn validate(info: &MediaInfo, limits: &ProbeLimits) -> Result<(), ProbeError> {
    if !info.duration.is_finite() || info.duration <= 0.0 {
        return Err(ProbeError::InvalidMedia("no usable duration".into()));
    }
    if info.video.is_none() && info.audio.is_none() {
        return Err(ProbeError::InvalidMedia("no audio or video stream".into()));
    }
    if let Some(size) = info.size
        && size > limits.max_file_size
    {
        return Err(ProbeError::TooLarge {
            size,
            max: limits.max_file_size,
        });
    }
    if info.stream_count > limits.max_streams {
        return Err(ProbeError::TooManyStreams {
            count: info.stream_count,
            max: limits.max_streams,
        });
    }
    if info.duration > limits.max_duration_s {
        return Err(ProbeError::TooLong {
            duration_s: info.duration,
            max_s: limits.max_duration_s,
        });
    }
    if let Some(video) = &info.video {
        if video.width == 0 || video.height == 0 {
            return Err(ProbeError::InvalidMedia("video frame has no size".into()));
        }
        let pixels = u64::from(video.width) * u64::from(video.height);
        if pixels > limits.max_pixels {
            return Err(ProbeError::TooManyPixels {
                width: video.width,
                height: video.height,
                max_pixels: limits.max_pixels,
            });
        }
    }
    Ok(())
}

impl MediaInfo {
    /// The video stream, or [`ProbeError::NoVideo`].
    pub fn require_video(&self) -> Result<&VideoStream, ProbeError> {
        self.video.as_ref().ok_or(ProbeError::NoVideo)
    }
}

// ---- ffprobe JSON (only the fields we read; everything else is ignored) ----

#[derive(Deserialize)]
struct FfprobeOutput {
    #[serde(default)]
    streams: Vec<FfStream>,
    format: Option<FfFormat>,
}

#[derive(Deserialize)]
struct FfFormat {
    format_name: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    nb_streams: Option<usize>,
}

#[derive(Deserialize)]
struct FfStream {
    index: usize,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    pix_fmt: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    duration: Option<String>,
    disposition: Option<FfDisposition>,
    tags: Option<FfTags>,
    #[serde(default)]
    side_data_list: Vec<FfSideData>,
}

#[derive(Deserialize)]
struct FfDisposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct FfTags {
    rotate: Option<String>,
}

#[derive(Deserialize)]
struct FfSideData {
    side_data_type: Option<String>,
    rotation: Option<f64>,
}

fn parse_seconds(value: Option<&str>) -> Option<f64> {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
}

/// `"30000/1001"` → 29.97; `"0/0"`, `"N/A"` → None.
fn parse_rate(value: Option<&str>) -> Option<f64> {
    let (num, den) = value?.split_once('/')?;
    let num: f64 = num.trim().parse().ok()?;
    let den: f64 = den.trim().parse().ok()?;
    let rate = num / den;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

/// Clockwise display rotation in `0..360`.
fn rotation_of(stream: &FfStream) -> i32 {
    // The display matrix angle is counter-clockwise; the legacy `rotate` tag
    // is clockwise.
    let from_matrix = stream
        .side_data_list
        .iter()
        .filter(|sd| {
            sd.side_data_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("Display Matrix"))
        })
        .find_map(|sd| sd.rotation)
        .filter(|r| r.is_finite())
        .map(|r| -r);
    let from_tag = || {
        stream
            .tags
            .as_ref()
            .and_then(|t| t.rotate.as_deref())
            .and_then(|r| r.trim().parse::<f64>().ok())
            .filter(|r| r.is_finite())
    };
    let degrees = from_matrix.or_else(from_tag).unwrap_or(0.0);
    // Clamp before the cast so absurd values cannot overflow.
    (degrees.clamp(-3600.0, 3600.0).round() as i32).rem_euclid(360)
}

fn is_type(stream: &FfStream, kind: &str) -> bool {
    stream.codec_type.as_deref() == Some(kind)
}

/// The first video stream with a frame size that is not cover art.
fn first_video(streams: &[FfStream]) -> Option<VideoStream> {
    streams
        .iter()
        .filter(|s| is_type(s, "video"))
        .filter(|s| s.disposition.as_ref().is_none_or(|d| d.attached_pic == 0))
        .find_map(|s| {
            Some(VideoStream {
                index: s.index,
                codec: s.codec_name.clone().unwrap_or_default(),
                width: s.width.filter(|w| *w > 0)?,
                height: s.height.filter(|h| *h > 0)?,
                fps: parse_rate(s.avg_frame_rate.as_deref())
                    .or_else(|| parse_rate(s.r_frame_rate.as_deref())),
                pix_fmt: s.pix_fmt.clone(),
                rotation: rotation_of(s),
            })
        })
}

/// The first audio stream with a channel count and a sample rate.
fn first_audio(streams: &[FfStream]) -> Option<AudioStream> {
    streams
        .iter()
        .filter(|s| is_type(s, "audio"))
        .find_map(|s| {
            Some(AudioStream {
                index: s.index,
                codec: s.codec_name.clone().unwrap_or_default(),
                channels: s.channels.filter(|c| *c > 0)?,
                sample_rate: s
                    .sample_rate
                    .as_deref()
                    .and_then(|r| r.trim().parse::<u32>().ok())
                    .filter(|r| *r > 0)?,
            })
        })
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output.
pub fn parse_ffprobe(json: &[u8]) -> Result<MediaInfo, ProbeError> {
    let out: FfprobeOutput = serde_json::from_slice(json)
        .map_err(|e| ProbeError::InvalidMedia(format!("unreadable probe output: {e}")))?;
    let format = out
        .format
        .ok_or_else(|| ProbeError::InvalidMedia("no container format recognised".into()))?;
    let format_name = format
        .format_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ProbeError::InvalidMedia("no container format recognised".into()))?;

    let video = first_video(&out.streams);
    let audio = first_audio(&out.streams);

    let duration = parse_seconds(format.duration.as_deref())
        .or_else(|| {
            out.streams
                .iter()
                .filter_map(|s| parse_seconds(s.duration.as_deref()))
                .reduce(f64::max)
        })
        .ok_or_else(|| ProbeError::InvalidMedia("unknown duration".into()))?;

    let size = format
        .size
        .as_deref()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let stream_count = out.streams.len().max(format.nb_streams.unwrap_or(0));

    Ok(MediaInfo {
        duration,
        format_name,
        size,
        video,
        audio,
        stream_count,
    })
}

#[cfg(test)]
mod tests;
