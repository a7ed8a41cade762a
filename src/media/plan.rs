//! Pure planning of the `idrl` profile: from (probe result, options, paths)
//! to one ffmpeg argv per output part. Nothing here touches the filesystem or
//! spawns a process, so every argv is unit-tested.
//!
//! Each part is one ffmpeg run (exact durations). Issue 3 asks for one decode
//! of the input for all parts "unless measurement shows otherwise"; it did.
//! One run with N outputs (fps/framing once, `split` + `trim` per part, one
//! bumper split 2N ways, a `null` output so `-progress out_time` follows the
//! input: branch `idrl-single-decode-experiment`) was measured against these
//! runs on this 2-core machine (ffmpeg 5.1, x264 veryfast CRF 19):
//!
//! - Parts: identical decoded video frames, same durations (22.000 s), same
//!   A/V offsets (flash/beep clip: -2.3..0 ms in both modes).
//! - CPU: 60 s 1080p30 mandelbrot, 3 parts: 72-75 CPU-s vs 74-78 (-2 %);
//!   45 s 640x360 testsrc2: 4.68 vs 4.83 CPU-s, 2.80 vs 2.97 s wall (-3 %,
//!   -6 %). Only very short parts gain much (1 s parts: 6.1 vs 13.8 s wall).
//! - Memory: ffmpeg keeps every part's x264 encoder alive for the whole run,
//!   so peak RSS grows with the number of parts: ~230-260 MB per part at
//!   1080p (3 parts 953 MB vs 435 MB here; 10 parts 2.5 GB), ~35 MB at 360p
//!   (45 parts: 1.5 GB vs 110 MB). With 20 s parts and the 4 h duration limit
//!   that is unbounded; one run per part stays at one encoder.
//! - Progress: with several outputs `out_time` is the largest end time over
//!   all of them, so it stalls at the first part's length unless an extra
//!   output follows the input's timeline.
//!
//! A middle way, if the few percent ever matter: runs of up to K parts each
//! (input-seeked to the first), K bounded by frame size.
//!
//! ```text
//! ffmpeg -nostdin -hide_banner -loglevel error
//!   <safe input args> -ss START -t DUR -i file:INPUT
//!   <safe logo args> -i file:LOGO                       (when bumper_seconds > 0)
//!   -filter_complex GRAPH -map [v] -map [a] <encode settings> -progress pipe:1 -nostats -y file:OUT
//! ```
//!
//! GRAPH: the part's video is resampled to the output fps, centre-cropped or
//! letterboxed to the output frame, padded by cloning its last frame and
//! trimmed so it lasts exactly the part's duration; its audio is resampled to
//! 48 kHz stereo, padded with silence and trimmed the same way (or is pure
//! silence when the input has none). The bumper is the logo scaled to fit
//! inside the frame (aspect kept) and overlaid in the centre of a
//! background-colour frame, held for `bumper_seconds`, with silence under it;
//! it is split and concatenated before and after the part.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::probe::{MediaInfo, VideoStream};
use super::{SAFE_INPUT_ARGS, SAFE_LOGO_ARGS};

/// Output aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Aspect {
    #[default]
    #[serde(rename = "16:9")]
    Landscape16x9,
    #[serde(rename = "9:16")]
    Portrait9x16,
    #[serde(rename = "1:1")]
    Square1x1,
    #[serde(rename = "4:3")]
    Standard4x3,
    /// The display aspect ratio of the input (after rotation).
    #[serde(rename = "source")]
    Source,
}

impl Aspect {
    /// `(width, height)` of the ratio; `None` for [`Aspect::Source`].
    pub fn ratio(self) -> Option<(u32, u32)> {
        match self {
            Aspect::Landscape16x9 => Some((16, 9)),
            Aspect::Portrait9x16 => Some((9, 16)),
            Aspect::Square1x1 => Some((1, 1)),
            Aspect::Standard4x3 => Some((4, 3)),
            Aspect::Source => None,
        }
    }
}

/// How the input is made to fit the output aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Centre crop (the seed's behaviour).
    #[default]
    Crop,
    /// Letterbox / pillarbox onto the background colour.
    Pad,
}

/// Options of the `idrl` profile. Unknown fields are ignored; a known field
/// with the wrong type is a deserialisation error. Call
/// [`IdrlOptions::validate`] after deserialising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdrlOptions {
    /// Length of each part; `0` = no split; else `1..=3600`.
    #[serde(serialize_with = "super::serialize_seconds")]
    pub segment_seconds: f64,
    /// How long the logo card is shown before and after each part; `0..=10`.
    #[serde(serialize_with = "super::serialize_seconds")]
    pub bumper_seconds: f64,
    pub aspect: Aspect,
    pub fit: Fit,
    /// Output frames per second; `1..=60`.
    pub fps: u32,
    /// Maximum output height (never upscaled); `144..=4320`.
    pub max_height: u32,
    /// Background colour of the bumper and of letterbox bars: an ffmpeg
    /// colour name (`black`, `white`, `navy`, ...) or `#RRGGBB`.
    pub background: String,
}

impl Default for IdrlOptions {
    fn default() -> Self {
        IdrlOptions {
            segment_seconds: 20.0,
            bumper_seconds: 1.0,
            aspect: Aspect::default(),
            fit: Fit::default(),
            fps: 24,
            max_height: 1080,
            background: "black".to_owned(),
        }
    }
}

/// An invalid option value; `option` is the field name as the API spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid option `{option}`: {message}")]
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

impl IdrlOptions {
    pub fn validate(&self) -> Result<(), OptionError> {
        let s = self.segment_seconds;
        if !s.is_finite() || !(s == 0.0 || (1.0..=3600.0).contains(&s)) {
            return Err(OptionError::new(
                "segment_seconds",
                "must be 0 (no split) or between 1 and 3600",
            ));
        }
        let b = self.bumper_seconds;
        if !b.is_finite() || !(0.0..=10.0).contains(&b) {
            return Err(OptionError::new(
                "bumper_seconds",
                "must be between 0 and 10",
            ));
        }
        if !(1..=60).contains(&self.fps) {
            return Err(OptionError::new("fps", "must be between 1 and 60"));
        }
        if !(144..=4320).contains(&self.max_height) {
            return Err(OptionError::new(
                "max_height",
                "must be between 144 and 4320",
            ));
        }
        ffmpeg_color(&self.background).ok_or_else(|| {
            OptionError::new(
                "background",
                "must be a colour name (e.g. black, white, navy) or #RRGGBB",
            )
        })?;
        Ok(())
    }
}

/// Colour names ffmpeg understands (`ffmpeg -colors`), lower case.
#[rustfmt::skip]
pub const COLOR_NAMES: &[&str] = &[
    "aliceblue", "antiquewhite", "aqua", "aquamarine", "azure", "beige", "bisque", "black",
    "blanchedalmond", "blue", "blueviolet", "brown", "burlywood", "cadetblue", "chartreuse",
    "chocolate", "coral", "cornflowerblue", "cornsilk", "crimson", "cyan", "darkblue",
    "darkcyan", "darkgoldenrod", "darkgray", "darkgreen", "darkkhaki", "darkmagenta",
    "darkolivegreen", "darkorange", "darkorchid", "darkred", "darksalmon", "darkseagreen",
    "darkslateblue", "darkslategray", "darkturquoise", "darkviolet", "deeppink", "deepskyblue",
    "dimgray", "dodgerblue", "firebrick", "floralwhite", "forestgreen", "fuchsia", "gainsboro",
    "ghostwhite", "gold", "goldenrod", "gray", "green", "greenyellow", "honeydew", "hotpink",
    "indianred", "indigo", "ivory", "khaki", "lavender", "lavenderblush", "lawngreen",
    "lemonchiffon", "lightblue", "lightcoral", "lightcyan", "lightgoldenrodyellow",
    "lightgreen", "lightgrey", "lightpink", "lightsalmon", "lightseagreen", "lightskyblue",
    "lightslategray", "lightsteelblue", "lightyellow", "lime", "limegreen", "linen", "magenta",
    "maroon", "mediumaquamarine", "mediumblue", "mediumorchid", "mediumpurple",
    "mediumseagreen", "mediumslateblue", "mediumspringgreen", "mediumturquoise",
    "mediumvioletred", "midnightblue", "mintcream", "mistyrose", "moccasin", "navajowhite",
    "navy", "oldlace", "olive", "olivedrab", "orange", "orangered", "orchid", "palegoldenrod",
    "palegreen", "paleturquoise", "palevioletred", "papayawhip", "peachpuff", "peru", "pink",
    "plum", "powderblue", "purple", "red", "rosybrown", "royalblue", "saddlebrown", "salmon",
    "sandybrown", "seagreen", "seashell", "sienna", "silver", "skyblue", "slateblue",
    "slategray", "snow", "springgreen", "steelblue", "tan", "teal", "thistle", "tomato",
    "turquoise", "violet", "wheat", "white", "whitesmoke", "yellow", "yellowgreen",
];

/// The colour as written into the filter graph: a known lower-case name or
/// `0xRRGGBB`. `None` for anything else, so no filter syntax can get in.
fn ffmpeg_color(value: &str) -> Option<String> {
    if let Some(hex) = value.strip_prefix('#') {
        if hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(format!("0x{}", hex.to_ascii_uppercase()));
        }
        return None;
    }
    if value.len() <= 32
        && value.bytes().all(|b| b.is_ascii_lowercase())
        && COLOR_NAMES.contains(&value)
    {
        return Some(value.to_owned());
    }
    None
}

/// x264/AAC settings shared by every planned encode (and by benchmarks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncodeSettings {
    /// x264 preset; `veryfast` is the measured knee on 2 cores.
    pub preset: String,
    /// 19: the highest CRF whose parts keep SSIM ≥ 0.99 against the source on hard content
    /// (a mandelbrot zoom: CRF 22 → 0.9859, 20 → 0.9894, 19 → 0.9908, 1.32× CRF 22's bytes);
    /// see docs/benchmarks.md.
    pub crf: u8,
    pub audio_bitrate_kbps: u32,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            preset: "veryfast".to_owned(),
            crf: 19,
            audio_bitrate_kbps: 128,
        }
    }
}

impl EncodeSettings {
    /// Output options for H.264/yuv420p + AAC 48 kHz stereo MP4 at `fps`.
    pub fn output_args(&self, fps: u32) -> Vec<String> {
        [
            "-c:v",
            "libx264",
            "-preset",
            &self.preset,
            "-crf",
            &self.crf.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-r",
            &fps.to_string(),
            "-c:a",
            "aac",
            "-b:a",
            &format!("{}k", self.audio_bitrate_kbps),
            "-ar",
            "48000",
            "-ac",
            "2",
            "-movflags",
            "+faststart",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

/// Where the planned runs read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPaths {
    pub input: PathBuf,
    /// A PNG image.
    pub logo: PathBuf,
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Output frame size shared by every part.
    pub width: u32,
    pub height: u32,
    pub runs: Vec<PlannedRun>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// ffmpeg arguments, without the program name.
    pub argv: Vec<String>,
    pub output: PathBuf,
    /// `{stem}_part_{NNN}.mp4`
    pub output_name: String,
    /// Seconds: the part plus both bumpers (what `out_time` runs up to).
    pub expected_duration: f64,
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
}

impl PlanError {
    /// Stable snake_case error code.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::Option(_) => "invalid_option",
            PlanError::NoVideo => "no_video_stream",
            PlanError::NoAudio => "no_audio_stream",
            PlanError::InvalidDuration | PlanError::FrameTooSmall { .. } => "invalid_media",
            PlanError::NonUtf8Path(_) => "internal",
        }
    }
}

/// One part of the input: `[start, start + duration)` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub start: f64,
    pub duration: f64,
}

/// Remainders shorter than this join the previous part.
pub const MIN_TAIL_SECONDS: f64 = 1.0;

/// Splits `duration` into parts of `segment_seconds` (`0` = one part); the
/// last part is the remainder, and a remainder under
/// [`MIN_TAIL_SECONDS`] joins the previous part.
pub fn split_parts(duration: f64, segment_seconds: f64) -> Vec<Part> {
    if !duration.is_finite() || duration <= 0.0 {
        return Vec::new();
    }
    if !segment_seconds.is_finite() || segment_seconds <= 0.0 || duration <= segment_seconds {
        return vec![Part {
            start: 0.0,
            duration,
        }];
    }
    let full = (duration / segment_seconds).floor() as usize;
    let mut parts: Vec<Part> = (0..full)
        .map(|i| Part {
            start: i as f64 * segment_seconds,
            duration: segment_seconds,
        })
        .collect();
    let covered = full as f64 * segment_seconds;
    let tail = duration - covered;
    if tail >= MIN_TAIL_SECONDS {
        parts.push(Part {
            start: covered,
            duration: tail,
        });
    } else if let Some(last) = parts.last_mut() {
        last.duration += tail.max(0.0);
    }
    parts
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

/// How the (display-oriented) source becomes the output frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Crop `width`x`height` at (`x`, `y`) from the source, then scale.
    Crop {
        width: u32,
        height: u32,
        x: u32,
        y: u32,
    },
    /// Scale to fit inside the frame, then pad with the background colour.
    Pad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub framing: Framing,
}

pub(crate) fn even_floor(x: f64) -> u32 {
    let v = x.floor().clamp(0.0, f64::from(u32::MAX));
    (v as u32) & !1
}

pub(crate) fn even_round(x: f64) -> u32 {
    let v = (x / 2.0).round().clamp(0.0, f64::from(u32::MAX / 2));
    (v as u32) * 2
}

/// Output frame size and framing for a video stream (rotation honoured).
/// Never upscales; both dimensions even.
pub fn output_geometry(
    video: &VideoStream,
    aspect: Aspect,
    fit: Fit,
    max_height: u32,
) -> Result<Geometry, PlanError> {
    let (dw, dh) = (video.display_width(), video.display_height());
    let (rw, rh) = aspect.ratio().unwrap_or((dw, dh));
    if dw == 0 || dh == 0 || rw == 0 || rh == 0 {
        return Err(PlanError::FrameTooSmall {
            width: dw,
            height: dh,
        });
    }
    let ratio = f64::from(rw) / f64::from(rh);
    // Is the source wider than the target ratio? (exact integer compare)
    let wider = u64::from(dw) * u64::from(rh) > u64::from(dh) * u64::from(rw);
    let (geometry_w, geometry_h, framing) = match fit {
        Fit::Crop => {
            let (cw, ch) = if wider {
                let cw = (f64::from(dh) * ratio).round().clamp(1.0, f64::from(dw)) as u32;
                (cw, dh)
            } else {
                let ch = (f64::from(dw) / ratio).round().clamp(1.0, f64::from(dh)) as u32;
                (dw, ch)
            };
            let height = even_floor(f64::from(ch.min(max_height)));
            let width = even_round(f64::from(height) * ratio).min(even_floor(f64::from(cw)));
            let framing = Framing::Crop {
                width: cw,
                height: ch,
                x: (dw - cw) / 2,
                y: (dh - ch) / 2,
            };
            (width, height, framing)
        }
        Fit::Pad => {
            // The smallest frame of the target ratio holding the whole source.
            let box_h = if wider {
                f64::from(dw) / ratio
            } else {
                f64::from(dh)
            };
            let height = even_floor(box_h.min(f64::from(max_height)));
            let width = even_round(f64::from(height) * ratio);
            (width, height, Framing::Pad)
        }
    };
    if geometry_w < 2 || geometry_h < 2 {
        return Err(PlanError::FrameTooSmall {
            width: geometry_w,
            height: geometry_h,
        });
    }
    Ok(Geometry {
        width: geometry_w,
        height: geometry_h,
        framing,
    })
}

/// Seconds as an ffmpeg time/duration: up to microseconds, no trailing zeros.
pub(crate) fn secs(value: f64) -> String {
    let s = format!("{:.6}", value.max(0.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

pub(crate) fn path_str(path: &Path) -> Result<&str, PlanError> {
    path.to_str()
        .ok_or_else(|| PlanError::NonUtf8Path(path.to_path_buf()))
}

const AUDIO_FORMAT: &str = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo";

struct GraphInput<'a> {
    video: &'a VideoStream,
    audio_index: Option<usize>,
    geometry: Geometry,
    fps: u32,
    color: &'a str,
    part: f64,
    bumper: f64,
}

/// The `-filter_complex` graph for one part; outputs `[v]` and `[a]`.
fn filter_graph(g: &GraphInput<'_>) -> String {
    let (w, h) = (g.geometry.width, g.geometry.height);
    let part = secs(g.part);
    let mut graph = String::new();

    // Main video: fps first (cheapest: drops frames before any scaling).
    let _ = write!(graph, "[0:{}]fps={},", g.video.index, g.fps);
    match g.geometry.framing {
        Framing::Crop {
            width,
            height,
            x,
            y,
        } => {
            let _ = write!(graph, "crop={width}:{height}:{x}:{y},scale={w}:{h},");
        }
        Framing::Pad => {
            let _ = write!(
                graph,
                "scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
                 pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color={},",
                g.color
            );
        }
    }
    let _ = write!(
        graph,
        "setsar=1,format=yuv420p,tpad=stop=-1:stop_mode=clone,\
         trim=duration={part},setpts=PTS-STARTPTS[mv];"
    );

    // Main audio, or silence.
    match g.audio_index {
        Some(index) => {
            let _ = write!(
                graph,
                "[0:{index}]aresample=48000:async=1:first_pts=0,{AUDIO_FORMAT},apad,\
                 atrim=duration={part},asetpts=PTS-STARTPTS[ma];"
            );
        }
        None => {
            let _ = write!(
                graph,
                "anullsrc=r=48000:cl=stereo,{AUDIO_FORMAT},atrim=duration={part}[ma];"
            );
        }
    }

    if g.bumper > 0.0 {
        let bumper = secs(g.bumper);
        let _ = write!(
            graph,
            "color=c={color}:s={w}x{h}:r={fps}:d={bumper},format=yuv420p[bg];\
             [1:v]scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2[logo];\
             [bg][logo]overlay=x=(W-w)/2:y=(H-h)/2:format=auto,setsar=1,format=yuv420p,\
             split=2[b1][b2];\
             anullsrc=r=48000:cl=stereo,{AUDIO_FORMAT},atrim=duration={bumper},asplit=2[s1][s2];\
             [b1][s1][mv][ma][b2][s2]concat=n=3:v=1:a=1[v][a]",
            color = g.color,
            fps = g.fps,
        );
    } else {
        graph.push_str("[mv][ma]concat=n=1:v=1:a=1[v][a]");
    }
    graph
}

/// Plans the `idrl` profile with the default [`EncodeSettings`].
pub fn plan_idrl(
    info: &MediaInfo,
    opts: &IdrlOptions,
    paths: &PlanPaths,
    stem: &str,
) -> Result<Plan, PlanError> {
    plan_idrl_with(info, opts, paths, stem, &EncodeSettings::default())
}

/// Plans the `idrl` profile: one ffmpeg run per part.
pub fn plan_idrl_with(
    info: &MediaInfo,
    opts: &IdrlOptions,
    paths: &PlanPaths,
    stem: &str,
    encode: &EncodeSettings,
) -> Result<Plan, PlanError> {
    opts.validate()?;
    let video = info.video.as_ref().ok_or(PlanError::NoVideo)?;
    let parts = split_parts(info.duration, opts.segment_seconds);
    if parts.is_empty() {
        return Err(PlanError::InvalidDuration);
    }
    let geometry = output_geometry(video, opts.aspect, opts.fit, opts.max_height)?;
    let color = ffmpeg_color(&opts.background).ok_or_else(|| {
        // Unreachable after validate(), but never panic on user input.
        OptionError::new("background", "must be a colour name or #RRGGBB")
    })?;
    let input = format!("file:{}", path_str(&paths.input)?);
    let logo = format!("file:{}", path_str(&paths.logo)?);
    let stem = sanitize_stem(stem);

    let mut runs = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let output_name = format!("{stem}_part_{:03}.mp4", i + 1);
        let output = paths.out_dir.join(&output_name);
        let graph = filter_graph(&GraphInput {
            video,
            audio_index: info.audio.as_ref().map(|a| a.index),
            geometry,
            fps: opts.fps,
            color: &color,
            part: part.duration,
            bumper: opts.bumper_seconds,
        });

        let mut argv: Vec<String> = ["-nostdin", "-hide_banner", "-loglevel", "error"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        argv.extend(SAFE_INPUT_ARGS.iter().map(|s| (*s).to_owned()));
        argv.extend([
            "-ss".to_owned(),
            secs(part.start),
            "-t".to_owned(),
            secs(part.duration),
            "-i".to_owned(),
            input.clone(),
        ]);
        if opts.bumper_seconds > 0.0 {
            argv.extend(SAFE_LOGO_ARGS.iter().map(|s| (*s).to_owned()));
            argv.extend(["-i".to_owned(), logo.clone()]);
        }
        argv.extend(
            [
                "-filter_complex",
                &graph,
                "-map",
                "[v]",
                "-map",
                "[a]",
                "-map_metadata",
                "-1",
                "-map_chapters",
                "-1",
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        argv.extend(encode.output_args(opts.fps));
        argv.extend([
            "-f".to_owned(),
            "mp4".to_owned(),
            "-progress".to_owned(),
            "pipe:1".to_owned(),
            "-nostats".to_owned(),
            "-y".to_owned(),
            format!("file:{}", path_str(&output)?),
        ]);

        runs.push(PlannedRun {
            argv,
            output,
            output_name,
            expected_duration: part.duration + 2.0 * opts.bumper_seconds,
        });
    }
    Ok(Plan {
        width: geometry.width,
        height: geometry.height,
        runs,
    })
}

#[cfg(test)]
mod tests;
