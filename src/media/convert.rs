//! Pure planning of the `convert` profile: from (probe result, options,
//! paths) to one ffmpeg argv producing `{stem}.{ext}`.
//!
//! ```text
//! ffmpeg -nostdin -hide_banner -loglevel error
//!   <safe input args> [-ss START] [-to END] -i file:INPUT
//!   -map 0:V [-vf FILTERS | -filter_complex GIF_GRAPH] <video codec args>
//!   -map 0:A <audio codec args>
//!   -f MUXER -progress pipe:1 -nostats -y file:OUT
//! ```
//!
//! When the input's streams already fit the target container and no option
//! changes anything ([`fits_container`], no trim, no quality, ...), the run is
//! a remux: `-c copy`, no decoding at all.
//!
//! The codec tables here ([`Format`], [`Quality`]) are shared with the
//! `compress` profile, which only differs in rate control.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SAFE_INPUT_ARGS;
use super::plan::{
    OptionError, Plan, PlanError, PlannedRun, even_floor, even_round, path_str, sanitize_stem, secs,
};
use super::probe::{MediaInfo, VideoStream};

/// Output container (and, through it, the default codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// H.264 (yuv420p) + AAC, `+faststart`.
    Mp4,
    /// VP9 + Opus (libvpx realtime mode: faster than realtime on 720p).
    Webm,
    /// MPEG-4 Part 2 (`XVID` tag) + MP3.
    Avi,
    /// MPEG-2 video + MP2 in an MPEG-2 program stream (`.mpg`).
    Mpeg,
    /// WMV2 + WMA2 in ASF.
    Wmv,
    /// H.264 + AAC in Matroska.
    Mkv,
    /// H.264 (yuv420p) + AAC in QuickTime, `+faststart`.
    Mov,
    /// Palette-generated animated GIF, no audio; 15 fps and 480 px wide at most
    /// by default.
    Gif,
    /// MP3 (LAME).
    Mp3,
    /// AAC in an MPEG-4 audio file.
    M4a,
    /// Vorbis in Ogg.
    Ogg,
    /// Opus in Ogg.
    Opus,
    /// 16-bit PCM.
    Wav,
    /// FLAC.
    Flac,
    /// WMA2 in ASF.
    Wma,
}

impl Format {
    pub const ALL: [Format; 15] = [
        Format::Mp4,
        Format::Webm,
        Format::Avi,
        Format::Mpeg,
        Format::Wmv,
        Format::Mkv,
        Format::Mov,
        Format::Gif,
        Format::Mp3,
        Format::M4a,
        Format::Ogg,
        Format::Opus,
        Format::Wav,
        Format::Flac,
        Format::Wma,
    ];

    /// File extension of the output, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
            Format::Avi => "avi",
            Format::Mpeg => "mpg",
            Format::Wmv => "wmv",
            Format::Mkv => "mkv",
            Format::Mov => "mov",
            Format::Gif => "gif",
            Format::Mp3 => "mp3",
            Format::M4a => "m4a",
            Format::Ogg => "ogg",
            Format::Opus => "opus",
            Format::Wav => "wav",
            Format::Flac => "flac",
            Format::Wma => "wma",
        }
    }

    /// Whether the output holds audio only (the input's video is dropped).
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Format::Mp3
                | Format::M4a
                | Format::Ogg
                | Format::Opus
                | Format::Wav
                | Format::Flac
                | Format::Wma
        )
    }

    /// Whether the format stores audio without loss (no quality or bitrate).
    pub fn is_lossless_audio(self) -> bool {
        matches!(self, Format::Wav | Format::Flac)
    }

    /// The ffmpeg muxer written with `-f`.
    pub fn muxer(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
            Format::Avi => "avi",
            // MPEG-2 program stream (`mpeg` is MPEG-1 systems).
            Format::Mpeg => "vob",
            Format::Wmv | Format::Wma => "asf",
            Format::Mkv => "matroska",
            Format::Mov => "mov",
            Format::Gif => "gif",
            Format::Mp3 => "mp3",
            Format::M4a => "ipod",
            Format::Ogg => "ogg",
            Format::Opus => "opus",
            Format::Wav => "wav",
            Format::Flac => "flac",
        }
    }

    /// Default encoders of the format.
    pub(crate) fn codecs(self) -> (Option<VideoCodec>, Option<AudioCodec>) {
        use AudioCodec as A;
        use VideoCodec as V;
        match self {
            Format::Mp4 | Format::Mov | Format::Mkv => (Some(V::H264), Some(A::Aac)),
            Format::Webm => (Some(V::Vp9), Some(A::Opus)),
            Format::Avi => (Some(V::Mpeg4), Some(A::Mp3)),
            Format::Mpeg => (Some(V::Mpeg2), Some(A::Mp2)),
            Format::Wmv => (Some(V::Wmv2), Some(A::Wmav2)),
            Format::Gif => (Some(V::Gif), None),
            Format::Mp3 => (None, Some(A::Mp3)),
            Format::M4a => (None, Some(A::Aac)),
            Format::Ogg => (None, Some(A::Vorbis)),
            Format::Opus => (None, Some(A::Opus)),
            Format::Wav => (None, Some(A::Pcm16)),
            Format::Flac => (None, Some(A::Flac)),
            Format::Wma => (None, Some(A::Wmav2)),
        }
    }

    /// The format of the input's container, when it is one of ours: what
    /// `compress` keeps when no `format` is given. QuickTime-family files
    /// are `mp4` (`m4a` without video); Matroska is `webm` when its codecs
    /// are WebM's; MPEG-TS and FLV (no matching output) become `mp4`.
    pub fn of_input(info: &MediaInfo) -> Option<Format> {
        let names: Vec<&str> = info.format_name.split(',').map(str::trim).collect();
        let has = |n: &str| names.contains(&n);
        let video = info.video.is_some();
        let pick = |v: Format, a: Format| if video { v } else { a };
        if has("mp4") || has("mov") {
            Some(pick(Format::Mp4, Format::M4a))
        } else if has("matroska") || has("webm") {
            let webm = Format::Webm;
            Some(if fits_container(info, webm) {
                pick(webm, Format::Opus)
            } else {
                pick(Format::Mkv, Format::M4a)
            })
        } else if has("avi") {
            Some(pick(Format::Avi, Format::Mp3))
        } else if has("mpeg") {
            Some(pick(Format::Mpeg, Format::Mp3))
        } else if has("mpegts") || has("flv") {
            Some(pick(Format::Mp4, Format::M4a))
        } else if has("asf") {
            Some(pick(Format::Wmv, Format::Wma))
        } else if has("ogg") {
            Some(pick(Format::Webm, Format::Ogg))
        } else if has("mp3") {
            Some(Format::Mp3)
        } else if has("aac") {
            Some(Format::M4a)
        } else if has("wav") || has("w64") {
            Some(Format::Wav)
        } else if has("flac") {
            Some(Format::Flac)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Mpeg => "mpeg",
            other => other.extension(),
        })
    }
}

/// Quality preset: CRF, quantiser or bitrate depending on the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    Low,
    #[default]
    Medium,
    High,
}

/// Video encoders used by the planners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    H264,
    Vp9,
    Mpeg4,
    Mpeg2,
    Wmv2,
    Gif,
}

/// Audio encoders used by the planners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioCodec {
    Aac,
    Opus,
    Mp3,
    Mp2,
    Wmav2,
    Vorbis,
    Pcm16,
    Flac,
}

/// x264 preset of every H.264 encode (the measured knee on 2 cores, as idrl).
pub const X264_PRESET: &str = "veryfast";

/// libvpx-vp9 speed settings: realtime deadline, fastest speed, row
/// multithreading. Measured at ~3.2–3.7× realtime for a 10 s 720p30 clip on
/// 2 cores (the `good` deadline at `-cpu-used 5` ran at 0.7×).
pub const VP9_SPEED_ARGS: [&str; 6] = ["-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"];

/// Which profile's preset table a quality refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `convert`: visually close to the source.
    Convert,
    /// `compress`: noticeably smaller files.
    Compress,
}

/// Rate control of a video encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum VideoRate {
    Quality(Quality, Purpose),
    /// Average bitrate in kbit/s (single pass, bounded by a VBV buffer).
    Bitrate(u32),
}

impl VideoCodec {
    fn encoder(self) -> &'static str {
        match self {
            VideoCodec::H264 => "libx264",
            VideoCodec::Vp9 => "libvpx-vp9",
            VideoCodec::Mpeg4 => "mpeg4",
            VideoCodec::Mpeg2 => "mpeg2video",
            VideoCodec::Wmv2 => "wmv2",
            VideoCodec::Gif => "gif",
        }
    }

    fn rate_args(self, rate: VideoRate) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |a: &[&str]| args.extend(a.iter().map(|s| (*s).to_owned()));
        match self {
            VideoCodec::H264 => push(&["-preset", X264_PRESET]),
            VideoCodec::Vp9 => push(&VP9_SPEED_ARGS),
            _ => {}
        }
        match rate {
            VideoRate::Quality(q, purpose) => {
                let value = quality_value(self, q, purpose);
                match self {
                    VideoCodec::H264 => push(&["-crf", &value.to_string()]),
                    VideoCodec::Vp9 => push(&["-crf", &value.to_string(), "-b:v", "0"]),
                    VideoCodec::Mpeg4 | VideoCodec::Mpeg2 | VideoCodec::Wmv2 => {
                        push(&["-q:v", &value.to_string()]);
                    }
                    VideoCodec::Gif => {}
                }
            }
            VideoRate::Bitrate(kbps) => {
                let b = format!("{kbps}k");
                match self {
                    // libvpx's VBR overshoots small targets by 15–33 %
                    // (measured); its CBR mode lands within +9 %.
                    VideoCodec::Vp9 => push(&["-b:v", &b, "-minrate", &b, "-maxrate", &b]),
                    VideoCodec::Gif => {}
                    _ => {
                        let max = format!("{}k", kbps.saturating_mul(3) / 2);
                        let buf = format!("{}k", kbps.saturating_mul(2));
                        push(&["-b:v", &b, "-maxrate", &max, "-bufsize", &buf]);
                    }
                }
            }
        }
        args
    }
}

/// CRF (x264, VP9) or quantiser (MPEG-4/MPEG-2/WMV2) of a preset.
fn quality_value(codec: VideoCodec, q: Quality, purpose: Purpose) -> u32 {
    use Purpose::{Compress, Convert};
    use Quality::{High, Low, Medium};
    match (codec, purpose, q) {
        (VideoCodec::H264, Convert, High) => 20,
        (VideoCodec::H264, Convert, Medium) => 23,
        (VideoCodec::H264, Convert, Low) => 28,
        (VideoCodec::H264, Compress, High) => 24,
        (VideoCodec::H264, Compress, Medium) => 27,
        (VideoCodec::H264, Compress, Low) => 31,
        (VideoCodec::Vp9, Convert, High) => 28,
        (VideoCodec::Vp9, Convert, Medium) => 33,
        (VideoCodec::Vp9, Convert, Low) => 40,
        (VideoCodec::Vp9, Compress, High) => 35,
        (VideoCodec::Vp9, Compress, Medium) => 39,
        (VideoCodec::Vp9, Compress, Low) => 45,
        (_, Convert, High) => 3,
        (_, Convert, Medium) => 5,
        (_, Convert, Low) => 8,
        (_, Compress, High) => 5,
        (_, Compress, Medium) => 8,
        (_, Compress, Low) => 12,
    }
}

/// MP2 only accepts these bitrates (kbit/s, MPEG-1 layer II).
const MP2_BITRATES: [u32; 14] = [
    32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
];

impl AudioCodec {
    fn encoder(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Opus => "libopus",
            AudioCodec::Mp3 => "libmp3lame",
            AudioCodec::Mp2 => "mp2",
            AudioCodec::Wmav2 => "wmav2",
            AudioCodec::Vorbis => "libvorbis",
            AudioCodec::Pcm16 => "pcm_s16le",
            AudioCodec::Flac => "flac",
        }
    }

    fn is_lossless(self) -> bool {
        matches!(self, AudioCodec::Pcm16 | AudioCodec::Flac)
    }

    /// Channels the encoder takes reliably (more are downmixed to stereo).
    fn max_channels(self) -> u32 {
        match self {
            AudioCodec::Mp3 | AudioCodec::Mp2 | AudioCodec::Wmav2 | AudioCodec::Opus => 2,
            AudioCodec::Aac | AudioCodec::Vorbis | AudioCodec::Pcm16 | AudioCodec::Flac => 8,
        }
    }

    /// Highest bitrate worth asking for, kbit/s.
    fn max_kbps(self) -> u32 {
        match self {
            AudioCodec::Mp3 => 320,
            AudioCodec::Mp2 => 384,
            _ => 512,
        }
    }

    /// Default bitrate of a preset, kbit/s (`None` for lossless codecs).
    pub(crate) fn preset_kbps(self, q: Quality, purpose: Purpose) -> Option<u32> {
        if self.is_lossless() {
            return None;
        }
        let opus = self == AudioCodec::Opus;
        Some(match (purpose, q, opus) {
            (Purpose::Convert, Quality::High, false) => 192,
            (Purpose::Convert, Quality::Medium, false) => 128,
            (Purpose::Convert, Quality::Low, false) => 96,
            (Purpose::Convert, Quality::High, true) => 128,
            (Purpose::Convert, Quality::Medium, true) => 96,
            (Purpose::Convert, Quality::Low, true) => 64,
            (Purpose::Compress, Quality::High, false) => 128,
            (Purpose::Compress, Quality::Medium, false) => 96,
            (Purpose::Compress, Quality::Low, false) => 64,
            (Purpose::Compress, Quality::High, true) => 96,
            (Purpose::Compress, Quality::Medium, true) => 64,
            (Purpose::Compress, Quality::Low, true) => 48,
        })
    }

    /// The highest bitrate the encoder accepts that is not above `kbps`
    /// (its lowest when none is).
    pub(crate) fn accepted_kbps_at_most(self, kbps: u32) -> u32 {
        if self == AudioCodec::Mp2 {
            return MP2_BITRATES
                .iter()
                .copied()
                .filter(|b| *b <= kbps)
                .max()
                .unwrap_or(MP2_BITRATES[0]);
        }
        kbps.clamp(8, self.max_kbps())
    }

    /// A bitrate the encoder accepts, as close as possible to `kbps`.
    pub(crate) fn accepted_kbps(self, kbps: u32) -> u32 {
        let kbps = kbps.clamp(8, self.max_kbps());
        if self == AudioCodec::Mp2 {
            let mut best = MP2_BITRATES[0];
            for b in MP2_BITRATES {
                if b.abs_diff(kbps) < best.abs_diff(kbps) {
                    best = b;
                }
            }
            return best;
        }
        kbps
    }
}

/// Options of the `convert` profile. Unknown fields are ignored; call
/// [`ConvertOptions::validate`] after deserialising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertOptions {
    pub format: Format,
    /// Re-encode with this preset (asks for re-encoding even when the
    /// streams would fit the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Maximum output height, `144..=4320`; never upscales. Video formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Output frames per second, `1..=60` (`1..=30` for gif). Video formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Trim: first second kept, `>= 0`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_seconds"
    )]
    pub start: Option<f64>,
    /// Trim: end second (exclusive), `> start`; past the end means the end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_seconds"
    )]
    pub end: Option<f64>,
    /// Audio bitrate like `128k`, `8k..=512k`. Lossy formats with audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_bitrate: Option<String>,
}

impl ConvertOptions {
    /// Options asking for nothing but the format.
    pub fn new(format: Format) -> Self {
        ConvertOptions {
            format,
            quality: None,
            max_height: None,
            fps: None,
            start: None,
            end: None,
            audio_bitrate: None,
        }
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        let format = self.format;
        if let Some(h) = self.max_height {
            if format.is_audio() {
                return Err(OptionError::new(
                    "max_height",
                    format!("does not apply to the audio format {format}"),
                ));
            }
            validate_max_height(h)?;
        }
        if let Some(fps) = self.fps {
            if format.is_audio() {
                return Err(OptionError::new(
                    "fps",
                    format!("does not apply to the audio format {format}"),
                ));
            }
            let max = if format == Format::Gif { 30 } else { 60 };
            if !(1..=max).contains(&fps) {
                return Err(OptionError::new(
                    "fps",
                    format!("must be between 1 and {max} for {format}"),
                ));
            }
        }
        validate_trim(self.start, self.end)?;
        if self.quality.is_some() && (format == Format::Gif || format.is_lossless_audio()) {
            return Err(OptionError::new(
                "quality",
                format!("does not apply to {format}"),
            ));
        }
        if let Some(bitrate) = &self.audio_bitrate {
            if format == Format::Gif || format.is_lossless_audio() {
                return Err(OptionError::new(
                    "audio_bitrate",
                    format!("does not apply to {format}"),
                ));
            }
            parse_kbps(bitrate)?;
        }
        Ok(())
    }

    /// The validated audio bitrate in kbit/s.
    fn audio_kbps(&self) -> Result<Option<u32>, OptionError> {
        self.audio_bitrate.as_deref().map(parse_kbps).transpose()
    }
}

pub(crate) fn validate_max_height(h: u32) -> Result<(), OptionError> {
    if (144..=4320).contains(&h) {
        Ok(())
    } else {
        Err(OptionError::new(
            "max_height",
            "must be between 144 and 4320",
        ))
    }
}

fn validate_trim(start: Option<f64>, end: Option<f64>) -> Result<(), OptionError> {
    if let Some(s) = start
        && (!s.is_finite() || s < 0.0)
    {
        return Err(OptionError::new(
            "start",
            "must be a number of seconds >= 0",
        ));
    }
    if let Some(e) = end {
        if !e.is_finite() || e <= 0.0 {
            return Err(OptionError::new("end", "must be a number of seconds > 0"));
        }
        if let Some(s) = start
            && e <= s
        {
            return Err(OptionError::new("end", "must be after `start`"));
        }
    }
    Ok(())
}

/// `"128k"` → 128; `8k..=512k`.
pub fn parse_kbps(value: &str) -> Result<u32, OptionError> {
    let err = || OptionError::new("audio_bitrate", "must look like 128k, between 8k and 512k");
    let digits = value
        .strip_suffix('k')
        .or_else(|| value.strip_suffix('K'))
        .ok_or_else(err)?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let kbps: u32 = digits.parse().map_err(|_| err())?;
    if (8..=512).contains(&kbps) {
        Ok(kbps)
    } else {
        Err(err())
    }
}

/// Seconds echoed as the API shows them (see [`super::serialize_seconds`]).
pub(crate) struct Seconds(pub f64);

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::serialize_seconds(&self.0, s)
    }
}

pub(crate) fn serialize_opt_seconds<S: serde::Serializer>(
    v: &Option<f64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => super::serialize_seconds(v, s),
        None => s.serialize_none(),
    }
}

/// Where a `convert` (or `compress`) run reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertPaths {
    pub input: PathBuf,
    pub out_dir: PathBuf,
}

fn any_of(codec: Option<&str>, allowed: &[&str]) -> bool {
    codec.is_some_and(|c| allowed.contains(&c))
}

/// Whether the input's first video and audio streams (the ones a conversion
/// keeps) can be stream-copied into `format` as they are, with the
/// compatibility the format promises (e.g. H.264 must be yuv420p for mp4).
/// Audio formats only look at the audio stream. Never true for gif, nor
/// when a stream the format needs is missing, nor for a rotated video
/// outside mp4/mov.
pub fn fits_container(info: &MediaInfo, format: Format) -> bool {
    let video = info.video.as_ref();
    let audio = info.audio.as_ref().map(|a| a.codec.as_str());
    if format.is_audio() {
        let allowed: &[&str] = match format {
            Format::Mp3 => &["mp3"],
            Format::M4a => &["aac"],
            Format::Ogg => &["vorbis"],
            Format::Opus => &["opus"],
            Format::Wav => &["pcm_s16le"],
            Format::Flac => &["flac"],
            Format::Wma => &["wmav1", "wmav2"],
            _ => &[],
        };
        return any_of(audio, allowed);
    }
    let Some(video) = video else {
        return false;
    };
    // Only QuickTime-family containers carry a display matrix here (ffmpeg
    // 5.1 writes none to Matroska, and AVI/MPEG/ASF have none): a rotated
    // stream copied anywhere else would play sideways.
    if video.rotation != 0 && !matches!(format, Format::Mp4 | Format::Mov) {
        return false;
    }
    let yuv420 = matches!(video.pix_fmt.as_deref(), Some("yuv420p" | "yuvj420p"));
    let codec = Some(video.codec.as_str());
    // Audio is optional in every video container.
    let audio_ok = |allowed: &[&str]| audio.is_none() || any_of(audio, allowed);
    match format {
        Format::Mp4 | Format::Mov => any_of(codec, &["h264"]) && yuv420 && audio_ok(&["aac"]),
        Format::Mkv => {
            any_of(codec, &["h264", "hevc", "vp8", "vp9", "av1"])
                && audio_ok(&["aac", "mp3", "opus", "vorbis", "flac", "ac3"])
        }
        Format::Webm => any_of(codec, &["vp8", "vp9", "av1"]) && audio_ok(&["opus", "vorbis"]),
        Format::Avi => any_of(codec, &["mpeg4"]) && audio_ok(&["mp3"]),
        Format::Mpeg => any_of(codec, &["mpeg2video", "mpeg1video"]) && audio_ok(&["mp2", "mp1"]),
        Format::Wmv => {
            any_of(codec, &["wmv1", "wmv2", "wmv3", "vc1"]) && audio_ok(&["wmav1", "wmav2"])
        }
        _ => false,
    }
}

/// A frame rate as ffmpeg writes it (`25`, `30000/1001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    num: u32,
    den: u32,
}

impl Rate {
    fn whole(n: u32) -> Rate {
        Rate { num: n, den: 1 }
    }
    fn value(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// The frame rates MPEG-2 video can signal.
const MPEG2_RATES: [Rate; 8] = [
    Rate {
        num: 24000,
        den: 1001,
    },
    Rate { num: 24, den: 1 },
    Rate { num: 25, den: 1 },
    Rate {
        num: 30000,
        den: 1001,
    },
    Rate { num: 30, den: 1 },
    Rate { num: 50, den: 1 },
    Rate {
        num: 60000,
        den: 1001,
    },
    Rate { num: 60, den: 1 },
];

fn nearest_mpeg2_rate(fps: f64) -> Rate {
    let mut best = MPEG2_RATES[2];
    for r in MPEG2_RATES {
        if (r.value() - fps).abs() < (best.value() - fps).abs() {
            best = r;
        }
    }
    best
}

fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.01
}

/// Output frame size for a video stream (display orientation): at most
/// `max_height` lines and `max_width` columns, aspect kept, never upscaled,
/// both dimensions even.
pub fn scaled_size(
    video: &VideoStream,
    max_height: Option<u32>,
    max_width: Option<u32>,
) -> Result<(u32, u32), PlanError> {
    let (dw, dh) = (video.display_width(), video.display_height());
    let too_small = PlanError::FrameTooSmall {
        width: dw,
        height: dh,
    };
    if dw < 2 || dh < 2 {
        return Err(too_small);
    }
    let (dwf, dhf) = (f64::from(dw), f64::from(dh));
    let mut h = dhf.min(f64::from(max_height.unwrap_or(dh)));
    let mut w = dwf * h / dhf;
    if let Some(mw) = max_width
        && w > f64::from(mw)
    {
        w = f64::from(mw);
        h = dhf * w / dwf;
    }
    // Rounded to even, but never above the source or a bound.
    let cap = |x: f64, bound: u32| even_round(x).min(even_floor(f64::from(bound)));
    let height = cap(h, max_height.map_or(dh, |m| m.min(dh)));
    let width = cap(w, max_width.map_or(dw, |m| m.min(dw)));
    if width < 2 || height < 2 {
        return Err(PlanError::FrameTooSmall { width, height });
    }
    Ok((width, height))
}

/// A planned video encode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VideoEncode {
    pub codec: VideoCodec,
    pub rate: VideoRate,
    pub width: u32,
    pub height: u32,
    /// Whether the frame is scaled (else the display size is kept).
    pub resize: bool,
    /// Frame rate to convert to, when it changes.
    pub fps: Option<Rate>,
}

/// A planned audio encode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioEncode {
    pub codec: AudioCodec,
    pub kbps: Option<u32>,
    /// Downmix to this many channels.
    pub channels: Option<u32>,
}

/// Everything a single-output run does; rendered by [`render`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    pub format: Format,
    /// Stream copy of the kept streams.
    pub remux: bool,
    pub video_index: Option<usize>,
    pub audio_index: Option<usize>,
    pub video: Option<VideoEncode>,
    pub audio: Option<AudioEncode>,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub expected_duration: f64,
    /// Output frame size (coded), `(0, 0)` for audio.
    pub size: (u32, u32),
}

/// The video encode for `format` from the stream, with optional scaling
/// and frame-rate change.
pub(crate) fn video_encode(
    video: &VideoStream,
    codec: VideoCodec,
    rate: VideoRate,
    max_height: Option<u32>,
    fps: Option<u32>,
) -> Result<VideoEncode, PlanError> {
    let max_width = (codec == VideoCodec::Gif).then_some(GIF_MAX_WIDTH);
    let (width, height) = scaled_size(video, max_height, max_width)?;
    let source = video.fps;
    let target = match codec {
        // MPEG-2 can only signal a few rates: snap to the nearest.
        VideoCodec::Mpeg2 => {
            let want = fps.map(f64::from).or(source).unwrap_or(25.0);
            Some(nearest_mpeg2_rate(want))
        }
        VideoCodec::Gif => match fps {
            Some(f) => Some(Rate::whole(f)),
            // Default: at most 15 fps, never more than the source.
            None if source.is_some_and(|s| s <= f64::from(GIF_DEFAULT_FPS)) => None,
            None => Some(Rate::whole(GIF_DEFAULT_FPS)),
        },
        _ => fps.map(Rate::whole),
    };
    let fps = target.filter(|t| source.is_none_or(|s| !same_rate(s, t.value())));
    Ok(VideoEncode {
        codec,
        rate,
        width,
        height,
        resize: (width, height) != (video.display_width(), video.display_height()),
        fps,
    })
}

/// The audio encode for `codec`, at `kbps` (snapped to what it accepts).
pub(crate) fn audio_encode(channels: u32, codec: AudioCodec, kbps: Option<u32>) -> AudioEncode {
    AudioEncode {
        codec,
        kbps: if codec.is_lossless() {
            None
        } else {
            kbps.map(|k| codec.accepted_kbps(k))
        },
        channels: (channels > codec.max_channels()).then_some(2),
    }
}

/// GIF defaults: frames per second and width bounds.
pub const GIF_DEFAULT_FPS: u32 = 15;
pub const GIF_MAX_WIDTH: u32 = 480;

/// Trim window `(start, end, expected duration)`; errors name the option.
pub(crate) fn trim_window(
    duration: f64,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<(Option<f64>, Option<f64>, f64), PlanError> {
    if !duration.is_finite() || duration <= 0.0 {
        return Err(PlanError::InvalidDuration);
    }
    let start = start.filter(|s| *s > 0.0);
    let end = end.filter(|e| *e < duration);
    let from = start.unwrap_or(0.0);
    let to = end.unwrap_or(duration);
    if from >= duration {
        return Err(OptionError::new(
            "start",
            format!("must be before the end of the media ({} s)", secs(duration)),
        )
        .into());
    }
    Ok((start, end, to - from))
}

/// Plans the `convert` profile: one ffmpeg run writing `{stem}.{ext}`.
pub fn plan_convert(
    info: &MediaInfo,
    opts: &ConvertOptions,
    paths: &ConvertPaths,
    stem: &str,
) -> Result<Plan, PlanError> {
    let job = convert_job(info, opts)?;
    render(&job, paths, stem)
}

/// The decisions of a conversion (pure, before any argv).
pub(crate) fn convert_job(info: &MediaInfo, opts: &ConvertOptions) -> Result<Job, PlanError> {
    opts.validate()?;
    let format = opts.format;
    let (start, end, expected_duration) = trim_window(info.duration, opts.start, opts.end)?;
    let (vcodec, acodec) = format.codecs();
    let video = if format.is_audio() {
        None
    } else {
        Some(info.video.as_ref().ok_or(PlanError::NoVideo)?)
    };
    let audio = match acodec {
        Some(_) => info.audio.as_ref(),
        None => None,
    };
    if format.is_audio() && audio.is_none() {
        return Err(PlanError::NoAudio);
    }

    let changes_video = video.is_some_and(|v| {
        opts.max_height.is_some_and(|m| m < v.display_height())
            || opts
                .fps
                .is_some_and(|f| v.fps.is_none_or(|s| !same_rate(s, f64::from(f))))
    });
    let asks_reencode = opts.quality.is_some()
        || opts.audio_bitrate.is_some()
        || start.is_some()
        || end.is_some()
        || changes_video;
    let remux = !asks_reencode && fits_container(info, format);

    let quality = opts.quality.unwrap_or_default();
    let (video_enc, size) = match (video, vcodec) {
        (Some(v), _) if remux => (None, (v.width, v.height)),
        (Some(v), Some(codec)) => {
            let enc = video_encode(
                v,
                codec,
                VideoRate::Quality(quality, Purpose::Convert),
                opts.max_height,
                opts.fps,
            )?;
            let size = (enc.width, enc.height);
            (Some(enc), size)
        }
        _ => (None, (0, 0)),
    };
    let audio_enc = match (audio, acodec) {
        (Some(a), Some(codec)) if !remux => {
            let kbps = opts
                .audio_kbps()?
                .or_else(|| codec.preset_kbps(quality, Purpose::Convert));
            Some(audio_encode(a.channels, codec, kbps))
        }
        _ => None,
    };
    Ok(Job {
        format,
        remux,
        video_index: video.map(|v| v.index),
        audio_index: audio.map(|a| a.index),
        video: video_enc,
        audio: audio_enc,
        start,
        end,
        expected_duration,
        size,
    })
}

fn strings(items: &[&str]) -> impl Iterator<Item = String> {
    items.iter().map(|s| (*s).to_owned())
}

/// The argv prefix shared by every run: quiet, no stdin, the input's
/// allow-lists, optional input seeking, then the input itself.
pub(crate) fn input_args(
    input: &std::path::Path,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<Vec<String>, PlanError> {
    let mut argv: Vec<String> =
        strings(&["-nostdin", "-hide_banner", "-loglevel", "error"]).collect();
    argv.extend(strings(&SAFE_INPUT_ARGS));
    if let Some(s) = start {
        argv.extend(["-ss".to_owned(), secs(s)]);
    }
    if let Some(e) = end {
        argv.extend(["-to".to_owned(), secs(e)]);
    }
    argv.extend(["-i".to_owned(), format!("file:{}", path_str(input)?)]);
    Ok(argv)
}

/// The argv suffix: muxer, progress on stdout, overwrite, output URL.
pub(crate) fn output_args(muxer: &str, output: &std::path::Path) -> Result<Vec<String>, PlanError> {
    let mut argv: Vec<String> =
        strings(&["-f", muxer, "-progress", "pipe:1", "-nostats", "-y"]).collect();
    argv.push(format!("file:{}", path_str(output)?));
    Ok(argv)
}

fn video_args(index: usize, enc: &VideoEncode) -> Vec<String> {
    let mut argv = Vec::new();
    let mut chain: Vec<String> = Vec::new();
    if let Some(rate) = enc.fps {
        chain.push(format!("fps={rate}"));
    }
    if enc.codec == VideoCodec::Gif {
        chain.push(format!("scale={}:{}:flags=lanczos", enc.width, enc.height));
        let graph = format!(
            "[0:{index}]{},split[g1][g2];[g1]palettegen=stats_mode=diff[pal];\
             [g2][pal]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle[v]",
            chain.join(",")
        );
        argv.extend(["-filter_complex".to_owned(), graph]);
        argv.extend(strings(&["-map", "[v]", "-c:v", "gif"]));
        return argv;
    }
    argv.extend(["-map".to_owned(), format!("0:{index}")]);
    if enc.resize {
        chain.push(format!("scale={}:{}", enc.width, enc.height));
    }
    if !chain.is_empty() {
        argv.extend(["-vf".to_owned(), chain.join(",")]);
    }
    argv.extend(["-c:v".to_owned(), enc.codec.encoder().to_owned()]);
    argv.extend(enc.codec.rate_args(enc.rate));
    argv.extend(strings(&["-pix_fmt", "yuv420p"]));
    if enc.codec == VideoCodec::Mpeg4 {
        // The FourCC most players know for MPEG-4 Part 2 in AVI.
        argv.extend(strings(&["-tag:v", "XVID"]));
    }
    argv
}

fn audio_args(index: usize, enc: &AudioEncode) -> Vec<String> {
    let mut argv = vec![
        "-map".to_owned(),
        format!("0:{index}"),
        "-c:a".to_owned(),
        enc.codec.encoder().to_owned(),
    ];
    if let Some(kbps) = enc.kbps {
        argv.extend(["-b:a".to_owned(), format!("{kbps}k")]);
    }
    if let Some(channels) = enc.channels {
        argv.extend(["-ac".to_owned(), channels.to_string()]);
    }
    argv
}

/// Renders a [`Job`] into its single run.
pub(crate) fn render(job: &Job, paths: &ConvertPaths, stem: &str) -> Result<Plan, PlanError> {
    let output_name = format!("{}.{}", sanitize_stem(stem), job.format.extension());
    let output = paths.out_dir.join(&output_name);
    let mut argv = input_args(&paths.input, job.start, job.end)?;
    if job.remux {
        if let Some(i) = job.video_index.filter(|_| !job.format.is_audio()) {
            argv.extend(["-map".to_owned(), format!("0:{i}")]);
        }
        if let Some(i) = job.audio_index {
            argv.extend(["-map".to_owned(), format!("0:{i}")]);
        }
        argv.extend(strings(&["-c", "copy"]));
    } else {
        if let (Some(i), Some(enc)) = (job.video_index, &job.video) {
            argv.extend(video_args(i, enc));
        }
        if let (Some(i), Some(enc)) = (job.audio_index, &job.audio) {
            argv.extend(audio_args(i, enc));
        }
    }
    if job.format.is_audio() {
        argv.push("-vn".to_owned());
    } else if job.format == Format::Gif {
        argv.push("-an".to_owned());
    }
    if matches!(job.format, Format::Mp4 | Format::Mov | Format::M4a) {
        argv.extend(strings(&["-movflags", "+faststart"]));
    }
    argv.extend(output_args(job.format.muxer(), &output)?);
    Ok(Plan {
        width: job.size.0,
        height: job.size.1,
        runs: vec![PlannedRun {
            argv,
            output,
            output_name,
            expected_duration: job.expected_duration,
        }],
    })
}

#[cfg(test)]
mod tests;
