//! ffprobe: the argv to run it safely, pure parsing of its JSON output into
//! [`MediaInfo`], and validation against configurable [`ProbeLimits`].

use std::ffi::OsString;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{SAFE_INPUT_ARGS, file_url};

/// Arguments for `ffprobe` (without the program name) that print the format
/// and streams of `input` as JSON. The input gets the same protocol and
/// demuxer allow-lists as every ffmpeg input, so probing never opens URLs or
/// follows playlists.
pub fn ffprobe_args(input: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]
    .iter()
    .map(OsString::from)
    .collect();
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
    let mut args: Vec<OsString> = [
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-protocol_whitelist",
        super::INPUT_PROTOCOL_WHITELIST,
        "-format_whitelist",
        demuxer,
        "-f",
        demuxer,
        "-i",
    ]
    .iter()
    .map(OsString::from)
    .collect();
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
    pub fn code(&self) -> &'static str {
        match self {
            ProbeError::InvalidMedia(_) => "invalid_media",
            ProbeError::TooLong { .. } => "media_too_long",
            ProbeError::TooManyPixels { .. } => "media_too_large_frame",
            ProbeError::TooManyStreams { .. } => "too_many_streams",
            ProbeError::TooLarge { .. } => "file_too_large",
            ProbeError::NoVideo => "no_video_stream",
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

    let video = out
        .streams
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
        });

    let audio = out
        .streams
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
        });

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
mod tests {
    use super::*;

    const LANDSCAPE: &[u8] = include_bytes!("fixtures/landscape_1080p30.json");
    const PORTRAIT: &[u8] = include_bytes!("fixtures/portrait_1080x1920.json");
    const SD: &[u8] = include_bytes!("fixtures/sd_640x480.json");
    const NO_AUDIO: &[u8] = include_bytes!("fixtures/no_audio_720p.json");
    const LONG: &[u8] = include_bytes!("fixtures/long_45s.json");
    const CLIP_20_5: &[u8] = include_bytes!("fixtures/clip_20_5s.json");
    const ROTATED: &[u8] = include_bytes!("fixtures/rotated_phone.json");
    const AUDIO_ONLY: &[u8] = include_bytes!("fixtures/audio_only.json");

    fn parse(json: &[u8]) -> MediaInfo {
        parse_ffprobe(json).unwrap()
    }

    #[test]
    fn args_are_safe_and_end_with_file_url() {
        let args = ffprobe_args(Path::new("/scratch/in put.mp4"));
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        let i = args.iter().position(|a| *a == "-i").unwrap();
        assert_eq!(args[i + 1], "file:/scratch/in put.mp4");
        assert_eq!(i + 2, args.len());
        let before = &args[..i];
        let pw = before
            .iter()
            .position(|a| *a == "-protocol_whitelist")
            .unwrap();
        assert_eq!(before[pw + 1], "file");
        let fw = before
            .iter()
            .position(|a| *a == "-format_whitelist")
            .unwrap();
        assert_eq!(before[fw + 1], super::super::INPUT_FORMAT_WHITELIST);
        for want in ["-show_format", "-show_streams", "json"] {
            assert!(before.contains(&want));
        }
    }

    #[test]
    fn landscape_1080p_with_audio() {
        let info = parse(LANDSCAPE);
        assert_eq!(info.format_name, "mov,mp4,m4a,3gp,3g2,mj2");
        assert!((info.duration - 2.0).abs() < 0.05, "{}", info.duration);
        assert_eq!(info.stream_count, 2);
        assert!(info.size.unwrap() > 0);
        let v = info.video.unwrap();
        assert_eq!((v.index, v.codec.as_str()), (0, "h264"));
        assert_eq!((v.width, v.height), (1920, 1080));
        assert_eq!((v.display_width(), v.display_height()), (1920, 1080));
        assert_eq!(v.fps, Some(30.0));
        assert_eq!(v.pix_fmt.as_deref(), Some("yuv420p"));
        assert_eq!(v.rotation, 0);
        let a = info.audio.unwrap();
        assert_eq!(
            a,
            AudioStream {
                index: 1,
                codec: "aac".into(),
                channels: 2,
                sample_rate: 48000
            }
        );
    }

    #[test]
    fn portrait_and_sd() {
        let v = parse(PORTRAIT).video.unwrap();
        assert_eq!((v.display_width(), v.display_height()), (1080, 1920));
        let info = parse(SD);
        let v = info.video.unwrap();
        assert_eq!((v.width, v.height), (640, 480));
        assert_eq!(v.fps, Some(25.0));
        assert_eq!(info.audio.unwrap().sample_rate, 44100);
    }

    #[test]
    fn no_audio() {
        let info = parse(NO_AUDIO);
        assert!(info.audio.is_none());
        assert_eq!(info.stream_count, 1);
        let v = info.video.unwrap();
        assert_eq!((v.width, v.height, v.fps), (1280, 720, Some(24.0)));
    }

    #[test]
    fn durations() {
        assert!((parse(LONG).duration - 45.0).abs() < 0.05);
        assert!((parse(CLIP_20_5).duration - 20.5).abs() < 0.05);
        let v = parse(LONG).video.unwrap();
        assert_eq!((v.width, v.height), (64, 36));
    }

    #[test]
    fn rotated_phone_clip_swaps_display_size() {
        let v = parse(ROTATED).video.unwrap();
        assert_eq!((v.width, v.height), (320, 180));
        // Display matrix says 90° counter-clockwise = 270° clockwise.
        assert_eq!(v.rotation, 270);
        assert!(v.is_quarter_turn());
        assert_eq!((v.display_width(), v.display_height()), (180, 320));
    }

    #[test]
    fn legacy_rotate_tag() {
        let json = br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264",
            "width":1920,"height":1080,"avg_frame_rate":"30000/1001","tags":{"rotate":"90"}}],
            "format":{"format_name":"mov,mp4","duration":"3.5"}}"#;
        let info = parse(json);
        let v = info.video.unwrap();
        assert_eq!(v.rotation, 90);
        assert_eq!((v.display_width(), v.display_height()), (1080, 1920));
        assert!((v.fps.unwrap() - 29.97).abs() < 0.01);
        assert_eq!(info.size, None);
    }

    #[test]
    fn audio_only_parses_but_has_no_video() {
        let info = parse(AUDIO_ONLY);
        assert!(info.video.is_none());
        assert_eq!(info.audio.as_ref().unwrap().channels, 1);
        assert_eq!(validate(&info, &ProbeLimits::default()), Ok(()));
        let err = info.require_video().unwrap_err();
        assert_eq!(err.code(), "no_video_stream");
    }

    #[test]
    fn cover_art_is_not_video() {
        let json = br#"{"streams":[
            {"index":0,"codec_type":"audio","codec_name":"mp3","channels":2,"sample_rate":"44100"},
            {"index":1,"codec_type":"video","codec_name":"mjpeg","width":500,"height":500,
             "disposition":{"attached_pic":1}}],
            "format":{"format_name":"mp3","duration":"180.0","size":"4000000"}}"#;
        let info = parse(json);
        assert!(info.video.is_none());
        assert_eq!(info.stream_count, 2);
    }

    #[test]
    fn duration_falls_back_to_longest_stream() {
        let json = br#"{"streams":[
            {"index":0,"codec_type":"video","codec_name":"vp9","width":640,"height":360,"duration":"9.5"},
            {"index":1,"codec_type":"audio","codec_name":"opus","channels":2,"sample_rate":"48000","duration":"10.02"}],
            "format":{"format_name":"matroska,webm","duration":"N/A"}}"#;
        assert!((parse(json).duration - 10.02).abs() < 1e-9);
    }

    #[test]
    fn non_media_is_invalid_media() {
        // What ffprobe prints on stdout for a file it cannot open.
        for json in [
            &b"{\n\n}\n"[..],
            b"",
            b"not json",
            b"[]",
            br#"{"format":{}}"#,
        ] {
            let err = parse_ffprobe(json).unwrap_err();
            assert_eq!(err.code(), "invalid_media", "{json:?}");
        }
        // A format without any duration (e.g. a single image).
        let json = br#"{"streams":[{"index":0,"codec_type":"video","width":10,"height":10}],
            "format":{"format_name":"png_pipe"}}"#;
        assert_eq!(parse_ffprobe(json).unwrap_err().code(), "invalid_media");
        // Wrong types anywhere we read are invalid media, not a panic.
        let json = br#"{"streams":[{"index":"zero"}],"format":{"format_name":"x","duration":"1"}}"#;
        assert_eq!(parse_ffprobe(json).unwrap_err().code(), "invalid_media");
    }

    #[test]
    fn every_fixture_passes_default_limits() {
        for json in [
            LANDSCAPE, PORTRAIT, SD, NO_AUDIO, LONG, CLIP_20_5, ROTATED, AUDIO_ONLY,
        ] {
            let info = parse(json);
            assert_eq!(validate(&info, &ProbeLimits::default()), Ok(()));
            // MediaInfo round-trips through serde (it is stored with tasks).
            let back: MediaInfo =
                serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
            assert_eq!(back, info);
        }
    }

    #[test]
    fn limits_have_distinct_codes() {
        let info = parse(LANDSCAPE);
        let base = ProbeLimits::default();
        let cases = [
            (
                ProbeLimits {
                    max_duration_s: 1.0,
                    ..base.clone()
                },
                "media_too_long",
            ),
            (
                ProbeLimits {
                    max_pixels: 1280 * 720,
                    ..base.clone()
                },
                "media_too_large_frame",
            ),
            (
                ProbeLimits {
                    max_streams: 1,
                    ..base.clone()
                },
                "too_many_streams",
            ),
            (
                ProbeLimits {
                    max_file_size: 1000,
                    ..base.clone()
                },
                "file_too_large",
            ),
        ];
        for (limits, code) in cases {
            assert_eq!(validate(&info, &limits).unwrap_err().code(), code);
        }
        let mut broken = info.clone();
        broken.duration = f64::NAN;
        assert_eq!(
            validate(&broken, &base).unwrap_err().code(),
            "invalid_media"
        );
    }
}
