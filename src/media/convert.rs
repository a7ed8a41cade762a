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
mod tests {
    use super::super::INPUT_FORMAT_WHITELIST;
    use super::super::testutil::{arg_after, check_safety, fixture, has_flag, paths};
    use super::*;

    fn plan_of(name: &str, opts: &ConvertOptions) -> Plan {
        plan_convert(&fixture(name), opts, &paths(), "My clip (final)").unwrap()
    }

    fn argv_of(name: &str, opts: &ConvertOptions) -> Vec<String> {
        let plan = plan_of(name, opts);
        assert_eq!(plan.runs.len(), 1);
        let argv = plan.runs[0].argv.clone();
        check_safety(&argv);
        argv
    }

    fn to(format: Format) -> ConvertOptions {
        ConvertOptions::new(format)
    }

    #[test]
    fn mp4_to_webm_full_argv() {
        let plan = plan_of("landscape", &to(Format::Webm));
        assert_eq!((plan.width, plan.height), (1920, 1080));
        let run = &plan.runs[0];
        assert_eq!(run.output_name, "My_clip_final.webm");
        assert_eq!(
            run.output,
            PathBuf::from("/scratch/t1/out/My_clip_final.webm")
        );
        assert!((run.expected_duration - 2.0).abs() < 0.01);
        let expected = [
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            INPUT_FORMAT_WHITELIST,
            "-i",
            "file:/scratch/t1/input",
            "-map",
            "0:0",
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-row-mt",
            "1",
            "-crf",
            "33",
            "-b:v",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-map",
            "0:1",
            "-c:a",
            "libopus",
            "-b:a",
            "96k",
            "-f",
            "webm",
            "-progress",
            "pipe:1",
            "-nostats",
            "-y",
            "file:/scratch/t1/out/My_clip_final.webm",
        ];
        assert_eq!(run.argv, expected);
    }

    #[test]
    fn every_format_has_its_default_codecs() {
        type Case = (
            Format,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
            &'static str,
        );
        let cases: [Case; 15] = [
            (Format::Mp4, Some("libx264"), Some("aac"), "mp4", "mp4"),
            (
                Format::Webm,
                Some("libvpx-vp9"),
                Some("libopus"),
                "webm",
                "webm",
            ),
            (Format::Avi, Some("mpeg4"), Some("libmp3lame"), "avi", "avi"),
            (Format::Mpeg, Some("mpeg2video"), Some("mp2"), "vob", "mpg"),
            (Format::Wmv, Some("wmv2"), Some("wmav2"), "asf", "wmv"),
            (Format::Mkv, Some("libx264"), Some("aac"), "matroska", "mkv"),
            (Format::Mov, Some("libx264"), Some("aac"), "mov", "mov"),
            (Format::Gif, Some("gif"), None, "gif", "gif"),
            (Format::Mp3, None, Some("libmp3lame"), "mp3", "mp3"),
            (Format::M4a, None, Some("aac"), "ipod", "m4a"),
            (Format::Ogg, None, Some("libvorbis"), "ogg", "ogg"),
            (Format::Opus, None, Some("libopus"), "opus", "opus"),
            (Format::Wav, None, Some("pcm_s16le"), "wav", "wav"),
            (Format::Flac, None, Some("flac"), "flac", "flac"),
            (Format::Wma, None, Some("wmav2"), "asf", "wma"),
        ];
        for (format, v, a, muxer, ext) in cases {
            // The SD fixture (h264 + aac 44.1 kHz) fits no container but
            // mp4/mov/mkv/m4a: ask for a quality to re-encode everywhere.
            let mut opts = to(format);
            if !(format == Format::Gif || format.is_lossless_audio()) {
                opts.quality = Some(Quality::Medium);
            }
            let plan = plan_of("sd", &opts);
            let run = &plan.runs[0];
            let argv = &run.argv;
            check_safety(argv);
            assert_eq!(run.output_name, format!("My_clip_final.{ext}"));
            assert_eq!(format.extension(), ext);
            assert_eq!(arg_after(argv, "-f"), muxer, "{format}");
            assert_eq!(format.muxer(), muxer);
            match v {
                Some(v) => {
                    assert_eq!(arg_after(argv, "-c:v"), v, "{format}");
                    assert!(!format.is_audio());
                    let want = if format == Format::Gif {
                        (480, 360)
                    } else {
                        (640, 480)
                    };
                    assert_eq!((plan.width, plan.height), want);
                }
                None => {
                    assert!(!has_flag(argv, "-c:v"), "{format}");
                    assert!(has_flag(argv, "-vn"), "{format}");
                    assert!(format.is_audio());
                    assert_eq!((plan.width, plan.height), (0, 0));
                }
            }
            match a {
                Some(a) => {
                    assert_eq!(arg_after(argv, "-c:a"), a, "{format}");
                    assert_eq!(arg_after(argv, "-map").len(), 3);
                }
                None => {
                    assert!(!has_flag(argv, "-c:a"));
                    assert!(has_flag(argv, "-an"));
                }
            }
            if matches!(
                v,
                Some("libx264" | "libvpx-vp9" | "mpeg4" | "mpeg2video" | "wmv2")
            ) {
                assert_eq!(arg_after(argv, "-pix_fmt"), "yuv420p", "{format}");
            }
            let faststart = has_flag(argv, "-movflags");
            assert_eq!(
                faststart,
                matches!(format, Format::Mp4 | Format::Mov | Format::M4a),
                "{format}"
            );
            if faststart {
                assert_eq!(arg_after(argv, "-movflags"), "+faststart");
            }
            assert!(!has_flag(argv, "-c"), "{format} is not a remux");
        }
    }

    #[test]
    fn fits_container_table() {
        use Format::*;
        // (fixture, formats whose container takes its streams as they are)
        let cases: [(&str, &[Format]); 10] = [
            ("landscape", &[Mp4, Mov, Mkv, M4a]),
            ("no_audio", &[Mp4, Mov, Mkv]),
            ("webm", &[Webm, Mkv, Opus]),
            ("avi", &[Mkv, Mp3]),
            ("mpeg2", &[Mpeg]),
            ("wav", &[Wav]),
            ("audio_only", &[M4a]),
            ("surround", &[M4a]),
            ("odd", &[]),
            ("rotated", &[Mp4, Mov, M4a]),
        ];
        for (name, fits) in cases {
            let info = fixture(name);
            for format in Format::ALL {
                assert_eq!(
                    fits_container(&info, format),
                    fits.contains(&format),
                    "{name} → {format}"
                );
            }
        }
        // H.264 must be 4:2:0 for mp4/mov players; Matroska takes anything.
        let mut hi444 = fixture("landscape");
        if let Some(v) = hi444.video.as_mut() {
            v.pix_fmt = Some("yuv444p".into());
        }
        assert!(!fits_container(&hi444, Mp4));
        assert!(!fits_container(&hi444, Mov));
        assert!(fits_container(&hi444, Mkv));
    }

    #[test]
    fn fitting_streams_are_remuxed() {
        let cases = [
            ("landscape", Format::Mkv, "0:0", Some("0:1")),
            ("landscape", Format::Mov, "0:0", Some("0:1")),
            ("landscape", Format::Mp4, "0:0", Some("0:1")),
            ("no_audio", Format::Mkv, "0:0", None),
            ("webm", Format::Mkv, "0:0", Some("0:1")),
            ("webm", Format::Webm, "0:0", Some("0:1")),
            ("avi", Format::Mkv, "0:0", Some("0:1")),
            ("mpeg2", Format::Mpeg, "0:0", Some("0:1")),
            ("landscape", Format::M4a, "0:1", None),
            ("webm", Format::Opus, "0:1", None),
            ("wav", Format::Wav, "0:0", None),
        ];
        for (name, format, first, second) in cases {
            let plan = plan_of(name, &to(format));
            let argv = &plan.runs[0].argv;
            check_safety(argv);
            assert_eq!(arg_after(argv, "-c"), "copy", "{name} → {format}");
            let maps: Vec<&str> = argv
                .iter()
                .enumerate()
                .filter(|(_, a)| *a == "-map")
                .map(|(i, _)| argv[i + 1].as_str())
                .collect();
            let want: Vec<&str> = [Some(first), second].into_iter().flatten().collect();
            assert_eq!(maps, want, "{name} → {format}");
            for flag in [
                "-c:v",
                "-c:a",
                "-vf",
                "-filter_complex",
                "-b:a",
                "-ss",
                "-to",
            ] {
                assert!(!has_flag(argv, flag), "{name} → {format}: {flag}");
            }
            assert!((plan.runs[0].expected_duration - fixture(name).duration).abs() < 1e-9);
        }
        // Remux keeps the coded frame (the player applies the rotation)...
        let plan = plan_of("rotated", &to(Format::Mov));
        assert_eq!((plan.width, plan.height), (320, 180));
        assert_eq!(arg_after(&plan.runs[0].argv, "-c"), "copy");
        // ... where the container can say so; else ffmpeg rotates the pixels.
        let plan = plan_of("rotated", &to(Format::Mkv));
        assert_eq!((plan.width, plan.height), (180, 320));
        assert_eq!(arg_after(&plan.runs[0].argv, "-c:v"), "libx264");
        // Streams that do not fit are re-encoded.
        let argv = argv_of("avi", &to(Format::Mp4));
        assert_eq!(arg_after(&argv, "-c:v"), "libx264");
        assert_eq!(arg_after(&argv, "-c:a"), "aac");
    }

    #[test]
    fn options_that_change_something_ask_for_reencoding() {
        let remux = |opts: ConvertOptions| {
            let argv = argv_of("landscape", &opts);
            has_flag(&argv, "-c")
        };
        let mkv = || to(Format::Mkv);
        assert!(remux(mkv()));
        // Nothing to do: same fps, max_height above the source, start 0,
        // end past the end.
        assert!(remux(ConvertOptions {
            fps: Some(30),
            max_height: Some(1080),
            start: Some(0.0),
            end: Some(60.0),
            ..mkv()
        }));
        for opts in [
            ConvertOptions {
                quality: Some(Quality::High),
                ..mkv()
            },
            ConvertOptions {
                fps: Some(24),
                ..mkv()
            },
            ConvertOptions {
                max_height: Some(720),
                ..mkv()
            },
            ConvertOptions {
                start: Some(0.5),
                ..mkv()
            },
            ConvertOptions {
                end: Some(1.5),
                ..mkv()
            },
            ConvertOptions {
                audio_bitrate: Some("96k".into()),
                ..mkv()
            },
        ] {
            assert!(!remux(opts.clone()), "{opts:?}");
        }
    }

    #[test]
    fn quality_presets_per_codec() {
        let value = |format: Format, q: Quality, flag: &str| {
            let argv = argv_of(
                "sd",
                &ConvertOptions {
                    quality: Some(q),
                    ..to(format)
                },
            );
            arg_after(&argv, flag).to_owned()
        };
        use Quality::*;
        for (q, crf, vp9, qv, aac, opus) in [
            (High, "20", "28", "3", "192k", "128k"),
            (Medium, "23", "33", "5", "128k", "96k"),
            (Low, "28", "40", "8", "96k", "64k"),
        ] {
            assert_eq!(value(Format::Mp4, q, "-crf"), crf);
            assert_eq!(value(Format::Mp4, q, "-preset"), X264_PRESET);
            assert_eq!(value(Format::Mp4, q, "-b:a"), aac);
            assert_eq!(value(Format::Webm, q, "-crf"), vp9);
            assert_eq!(value(Format::Webm, q, "-b:v"), "0");
            assert_eq!(value(Format::Webm, q, "-b:a"), opus);
            assert_eq!(value(Format::Avi, q, "-q:v"), qv);
            assert_eq!(value(Format::Wmv, q, "-q:v"), qv);
            assert_eq!(value(Format::Mpeg, q, "-q:v"), qv);
            assert_eq!(value(Format::Mp3, q, "-b:a"), aac);
            assert_eq!(value(Format::Opus, q, "-b:a"), opus);
        }
        // audio_bitrate overrides the preset; MP2 snaps to its table.
        let bitrate = |format: Format, b: &str| {
            let argv = argv_of(
                "sd",
                &ConvertOptions {
                    audio_bitrate: Some(b.into()),
                    ..to(format)
                },
            );
            arg_after(&argv, "-b:a").to_owned()
        };
        assert_eq!(bitrate(Format::Mp4, "64k"), "64k");
        assert_eq!(bitrate(Format::Mpeg, "100k"), "96k");
        assert_eq!(bitrate(Format::Mpeg, "512k"), "384k");
        assert_eq!(bitrate(Format::Mp3, "512k"), "320k");
        assert_eq!(bitrate(Format::Ogg, "8K"), "8k");
        // MPEG-4 Part 2 in AVI gets the FourCC players know.
        let argv = argv_of("sd", &to(Format::Avi));
        assert_eq!(arg_after(&argv, "-tag:v"), "XVID");
    }

    #[test]
    fn lossless_audio_has_no_bitrate() {
        for format in [Format::Wav, Format::Flac] {
            let argv = argv_of("landscape", &to(format));
            assert!(!has_flag(&argv, "-b:a"));
            assert!(has_flag(&argv, "-vn"));
            assert_eq!(arg_after(&argv, "-map"), "0:1");
        }
    }

    #[test]
    fn stereo_only_codecs_downmix() {
        for (format, downmix) in [
            (Format::Mp3, true),
            (Format::Opus, true),
            (Format::Wma, true),
            (Format::Ogg, false),
            (Format::Flac, false),
            (Format::Wav, false),
        ] {
            let argv = argv_of("surround", &to(format));
            assert_eq!(has_flag(&argv, "-ac"), downmix, "{format}");
            if downmix {
                assert_eq!(arg_after(&argv, "-ac"), "2");
            }
        }
        // Stereo input: nothing to downmix.
        assert!(!has_flag(&argv_of("landscape", &to(Format::Mp3)), "-ac"));
    }

    #[test]
    fn max_height_scales_down_only_with_even_sizes() {
        let sized = |name: &str, max_height: Option<u32>| {
            let p = plan_of(
                name,
                &ConvertOptions {
                    max_height,
                    quality: Some(Quality::Medium),
                    ..to(Format::Mp4)
                },
            );
            let vf = p.runs[0]
                .argv
                .iter()
                .position(|a| a == "-vf")
                .map(|i| p.runs[0].argv[i + 1].clone());
            ((p.width, p.height), vf)
        };
        assert_eq!(
            sized("landscape", Some(720)),
            ((1280, 720), Some("scale=1280:720".into()))
        );
        assert_eq!(
            sized("landscape", Some(145)),
            ((258, 144), Some("scale=258:144".into()))
        );
        // Never upscaled: a bound above the source changes nothing.
        assert_eq!(sized("sd", Some(4320)), ((640, 480), None));
        assert_eq!(
            sized("portrait", Some(720)),
            ((406, 720), Some("scale=406:720".into()))
        );
        // Odd source sizes become even (H.264 4:2:0 needs it).
        assert_eq!(sized("odd", None), ((160, 90), Some("scale=160:90".into())));
        // Rotation: sizes are in display orientation (ffmpeg autorotates).
        assert_eq!(sized("rotated", None), ((180, 320), None));
        assert_eq!(
            sized("rotated", Some(144)),
            ((82, 144), Some("scale=82:144".into()))
        );
    }

    #[test]
    fn scaled_size_rules() {
        let v = |w, h| VideoStream {
            index: 0,
            codec: "h264".into(),
            width: w,
            height: h,
            fps: None,
            pix_fmt: None,
            rotation: 0,
        };
        assert_eq!(scaled_size(&v(1920, 1080), None, None), Ok((1920, 1080)));
        assert_eq!(scaled_size(&v(1920, 1080), Some(480), None), Ok((854, 480)));
        assert_eq!(scaled_size(&v(1920, 1080), None, Some(480)), Ok((480, 270)));
        assert_eq!(
            scaled_size(&v(1080, 1920), Some(1080), Some(480)),
            Ok((480, 854))
        );
        assert_eq!(scaled_size(&v(320, 240), None, Some(480)), Ok((320, 240)));
        assert_eq!(scaled_size(&v(3, 3), None, None), Ok((2, 2)));
        assert_eq!(
            scaled_size(&v(1, 100), None, None).unwrap_err().code(),
            "invalid_media"
        );
        assert_eq!(
            scaled_size(&v(4000, 2), Some(144), Some(16))
                .unwrap_err()
                .code(),
            "invalid_media"
        );
    }

    #[test]
    fn fps_option_and_mpeg2_rates() {
        let fps_filter = |name: &str, format: Format, fps: Option<u32>| {
            let argv = argv_of(
                name,
                &ConvertOptions {
                    fps,
                    quality: Some(Quality::Medium),
                    ..to(format)
                },
            );
            argv.iter()
                .position(|a| a == "-vf")
                .map(|i| argv[i + 1].clone())
        };
        assert_eq!(fps_filter("sd", Format::Mp4, None), None);
        assert_eq!(fps_filter("sd", Format::Mp4, Some(25)), None);
        assert_eq!(
            fps_filter("sd", Format::Mp4, Some(12)),
            Some("fps=12".into())
        );
        // MPEG-2 can only signal standard rates: snapped to the nearest.
        assert_eq!(fps_filter("landscape", Format::Mpeg, None), None);
        assert_eq!(
            fps_filter("landscape", Format::Mpeg, Some(15)),
            Some("fps=24000/1001".into())
        );
        assert_eq!(
            fps_filter("landscape", Format::Mpeg, Some(29)),
            Some("fps=30000/1001".into())
        );
        assert_eq!(
            fps_filter("landscape", Format::Mpeg, Some(48)),
            Some("fps=50".into())
        );
        let mut unknown = fixture("sd");
        if let Some(v) = unknown.video.as_mut() {
            v.fps = None;
        }
        let p = plan_convert(&unknown, &to(Format::Mpeg), &paths(), "x").unwrap();
        assert_eq!(arg_after(&p.runs[0].argv, "-vf"), "fps=25");
    }

    #[test]
    fn gif_is_palette_generated_with_bounded_fps_and_width() {
        let plan = plan_of("landscape", &to(Format::Gif));
        assert_eq!((plan.width, plan.height), (480, 270));
        let argv = &plan.runs[0].argv;
        check_safety(argv);
        assert_eq!(
            arg_after(argv, "-filter_complex"),
            "[0:0]fps=15,scale=480:270:flags=lanczos,split[g1][g2];\
             [g1]palettegen=stats_mode=diff[pal];\
             [g2][pal]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle[v]"
        );
        assert_eq!(arg_after(argv, "-map"), "[v]");
        assert!(has_flag(argv, "-an"));
        assert!(!has_flag(argv, "-pix_fmt") && !has_flag(argv, "-vf"));
        // Explicit fps; a source slower than the default keeps its rate;
        // small frames are not upscaled; max_height bounds too.
        let g = |name: &str, opts: ConvertOptions| {
            let p = plan_of(name, &opts);
            (
                (p.width, p.height),
                arg_after(&p.runs[0].argv, "-filter_complex")
                    .split(',')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        let gif = || to(Format::Gif);
        assert_eq!(
            g(
                "sd",
                ConvertOptions {
                    fps: Some(10),
                    ..gif()
                }
            ),
            ((480, 360), "[0:0]fps=10,scale=480:360:flags=lanczos".into())
        );
        assert_eq!(
            g(
                "landscape",
                ConvertOptions {
                    max_height: Some(144),
                    ..gif()
                }
            ),
            ((256, 144), "[0:0]fps=15,scale=256:144:flags=lanczos".into())
        );
        assert_eq!(
            g("long", gif()),
            ((64, 36), "[0:0]fps=15,scale=64:36:flags=lanczos".into())
        );
        let mut slow = fixture("sd");
        if let Some(v) = slow.video.as_mut() {
            v.fps = Some(10.0);
        }
        let p = plan_convert(&slow, &gif(), &paths(), "x").unwrap();
        assert!(arg_after(&p.runs[0].argv, "-filter_complex").starts_with("[0:0]scale=480:360"));
    }

    #[test]
    fn trim_uses_input_seeking() {
        let p = plan_of(
            "long",
            &ConvertOptions {
                start: Some(10.0),
                end: Some(20.5),
                ..to(Format::Mp4)
            },
        );
        let argv = &p.runs[0].argv;
        check_safety(argv);
        let i = argv.iter().position(|a| a == "-i").unwrap();
        assert_eq!(&argv[i - 4..i], ["-ss", "10", "-to", "20.5"]);
        assert!((p.runs[0].expected_duration - 10.5).abs() < 1e-9);
        // End past the end: no -to, the rest of the input.
        let p = plan_of(
            "long",
            &ConvertOptions {
                start: Some(40.0),
                end: Some(99.0),
                ..to(Format::Mp3)
            },
        );
        assert!(!has_flag(&p.runs[0].argv, "-to"));
        assert!((p.runs[0].expected_duration - 5.0).abs() < 0.05);
        // Only an end.
        let p = plan_of(
            "long",
            &ConvertOptions {
                end: Some(3.0),
                ..to(Format::Webm)
            },
        );
        assert!(!has_flag(&p.runs[0].argv, "-ss"));
        assert_eq!(arg_after(&p.runs[0].argv, "-to"), "3");
        assert!((p.runs[0].expected_duration - 3.0).abs() < 1e-9);
        // A start past the end names the option.
        let err = plan_convert(
            &fixture("long"),
            &ConvertOptions {
                start: Some(45.5),
                ..to(Format::Mp4)
            },
            &paths(),
            "x",
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_option");
        assert!(err.to_string().contains("`start`"), "{err}");
    }

    #[test]
    fn missing_streams() {
        let err = plan_convert(&fixture("no_audio"), &to(Format::Mp3), &paths(), "x").unwrap_err();
        assert_eq!(
            (err.clone(), err.code()),
            (PlanError::NoAudio, "no_audio_stream")
        );
        let err =
            plan_convert(&fixture("audio_only"), &to(Format::Mp4), &paths(), "x").unwrap_err();
        assert_eq!(err.code(), "no_video_stream");
        let err = plan_convert(&fixture("wav"), &to(Format::Gif), &paths(), "x").unwrap_err();
        assert_eq!(err.code(), "no_video_stream");
        // Video without audio: a video output without audio.
        let argv = argv_of("no_audio", &to(Format::Webm));
        assert!(!has_flag(&argv, "-c:a"));
        assert_eq!(arg_after(&argv, "-map"), "0:0");
        // Audio-only input to audio formats.
        let argv = argv_of("audio_only", &to(Format::Mp3));
        assert_eq!(arg_after(&argv, "-map"), "0:0");
        assert_eq!(arg_after(&argv, "-c:a"), "libmp3lame");
    }

    #[test]
    fn option_errors_name_the_option() {
        let mp4 = || to(Format::Mp4);
        let cases: Vec<(ConvertOptions, &str)> = vec![
            (
                ConvertOptions {
                    start: Some(-1.0),
                    ..mp4()
                },
                "start",
            ),
            (
                ConvertOptions {
                    start: Some(f64::NAN),
                    ..mp4()
                },
                "start",
            ),
            (
                ConvertOptions {
                    end: Some(0.0),
                    ..mp4()
                },
                "end",
            ),
            (
                ConvertOptions {
                    end: Some(f64::INFINITY),
                    ..mp4()
                },
                "end",
            ),
            (
                ConvertOptions {
                    start: Some(5.0),
                    end: Some(5.0),
                    ..mp4()
                },
                "end",
            ),
            (
                ConvertOptions {
                    fps: Some(0),
                    ..mp4()
                },
                "fps",
            ),
            (
                ConvertOptions {
                    fps: Some(61),
                    ..mp4()
                },
                "fps",
            ),
            (
                ConvertOptions {
                    fps: Some(31),
                    ..to(Format::Gif)
                },
                "fps",
            ),
            (
                ConvertOptions {
                    fps: Some(24),
                    ..to(Format::Mp3)
                },
                "fps",
            ),
            (
                ConvertOptions {
                    max_height: Some(143),
                    ..mp4()
                },
                "max_height",
            ),
            (
                ConvertOptions {
                    max_height: Some(4321),
                    ..mp4()
                },
                "max_height",
            ),
            (
                ConvertOptions {
                    max_height: Some(720),
                    ..to(Format::Flac)
                },
                "max_height",
            ),
            (
                ConvertOptions {
                    quality: Some(Quality::High),
                    ..to(Format::Wav)
                },
                "quality",
            ),
            (
                ConvertOptions {
                    quality: Some(Quality::Low),
                    ..to(Format::Gif)
                },
                "quality",
            ),
            (
                ConvertOptions {
                    audio_bitrate: Some("128k".into()),
                    ..to(Format::Flac)
                },
                "audio_bitrate",
            ),
            (
                ConvertOptions {
                    audio_bitrate: Some("128k".into()),
                    ..to(Format::Gif)
                },
                "audio_bitrate",
            ),
        ];
        for bad in [
            "", "k", "128", "7k", "513k", "1000k", "12.5k", "-8k", "128kb", " 128k",
        ] {
            assert_eq!(
                parse_kbps(bad).unwrap_err().option,
                "audio_bitrate",
                "{bad:?}"
            );
        }
        for (good, kbps) in [("8k", 8), ("128k", 128), ("320K", 320), ("512k", 512)] {
            assert_eq!(parse_kbps(good), Ok(kbps));
        }
        for (opts, name) in cases.into_iter().chain([(
            ConvertOptions {
                audio_bitrate: Some("lots".into()),
                ..mp4()
            },
            "audio_bitrate",
        )]) {
            let err = opts.validate().unwrap_err();
            assert_eq!(err.option, name, "{opts:?}");
            assert!(err.to_string().contains(name));
            let perr = plan_convert(&fixture("landscape"), &opts, &paths(), "x").unwrap_err();
            assert_eq!(perr.code(), "invalid_option");
        }
        for format in Format::ALL {
            assert_eq!(to(format).validate(), Ok(()));
        }
    }

    #[test]
    fn options_deserialize_and_ignore_unknown_fields() {
        let opts: ConvertOptions = serde_json::from_str(r#"{"format":"webm"}"#).unwrap();
        assert_eq!(opts, to(Format::Webm));
        let opts: ConvertOptions = serde_json::from_str(
            r#"{"format":"mpeg","quality":"high","max_height":720,"fps":25,"start":1.5,
                "end":3,"audio_bitrate":"192k","newFormat":"x","other":[1]}"#,
        )
        .unwrap();
        assert_eq!(opts.format, Format::Mpeg);
        assert_eq!(opts.quality, Some(Quality::High));
        assert_eq!((opts.max_height, opts.fps), (Some(720), Some(25)));
        assert_eq!((opts.start, opts.end), (Some(1.5), Some(3.0)));
        assert_eq!(opts.validate(), Ok(()));
        for bad in [
            r#"{}"#,
            r#"{"format":"MP4"}"#,
            r#"{"format":"mp5"}"#,
            r#"{"format":"mp4","quality":"ultra"}"#,
            r#"{"format":"mp4","fps":"24"}"#,
            r#"{"format":"mp4","max_height":-1}"#,
            r#"{"format":"mp4","start":"1"}"#,
            r#"{"format":"mp4","audio_bitrate":128}"#,
        ] {
            assert!(
                serde_json::from_str::<ConvertOptions>(bad).is_err(),
                "{bad}"
            );
        }
        // Seconds echo like idrl's: whole values as integers.
        let echoed = serde_json::to_value(ConvertOptions {
            start: Some(1.0),
            end: Some(2.5),
            ..to(Format::Mp4)
        })
        .unwrap();
        assert_eq!(
            echoed,
            serde_json::json!({"format": "mp4", "start": 1, "end": 2.5})
        );
        for format in Format::ALL {
            let json = serde_json::to_value(to(format)).unwrap();
            assert_eq!(json, serde_json::json!({ "format": format.to_string() }));
            let back: ConvertOptions = serde_json::from_value(json).unwrap();
            assert_eq!(back.format, format);
        }
    }

    #[test]
    fn container_of_input() {
        use Format::*;
        for (name, want) in [
            ("landscape", Some(Mp4)),
            ("audio_only", Some(M4a)),
            ("webm", Some(Webm)),
            ("odd", Some(Mkv)),
            ("avi", Some(Avi)),
            ("mpeg2", Some(Mpeg)),
            ("wav", Some(Wav)),
        ] {
            assert_eq!(Format::of_input(&fixture(name)), want, "{name}");
        }
        let mut info = fixture("landscape");
        for (format_name, want) in [
            ("mpegts", Some(Mp4)),
            ("flv", Some(Mp4)),
            ("asf", Some(Wmv)),
            ("mxf", None),
            ("", None),
        ] {
            info.format_name = format_name.into();
            assert_eq!(Format::of_input(&info), want, "{format_name}");
        }
    }
}
