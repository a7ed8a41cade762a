//! The encoders the planners use, and their rate-control tables: quality presets per
//! codec and profile, audio bitrates each encoder accepts, frame rates MPEG-2 can signal,
//! and the x264/AAC [`EncodeSettings`] of idrl and hls.

use serde::{Deserialize, Serialize};

pub use super::units::Rate;

/// Quality preset: CRF, quantiser or bitrate depending on the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    Low,
    #[default]
    Medium,
    High,
}

impl Quality {
    /// The value of this preset among a table's `[high, medium, low]`.
    fn pick(self, high: u32, medium: u32, low: u32) -> u32 {
        match self {
            Quality::High => high,
            Quality::Medium => medium,
            Quality::Low => low,
        }
    }
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
    pub(crate) fn encoder(self) -> &'static str {
        match self {
            VideoCodec::H264 => "libx264",
            VideoCodec::Vp9 => "libvpx-vp9",
            VideoCodec::Mpeg4 => "mpeg4",
            VideoCodec::Mpeg2 => "mpeg2video",
            VideoCodec::Wmv2 => "wmv2",
            VideoCodec::Gif => "gif",
        }
    }

    pub(crate) fn rate_args(self, rate: VideoRate) -> Vec<String> {
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
    let [high, medium, low] = match (codec, purpose) {
        (VideoCodec::H264, Convert) => [20, 23, 28],
        (VideoCodec::H264, Compress) => [24, 27, 31],
        (VideoCodec::Vp9, Convert) => [28, 33, 40],
        (VideoCodec::Vp9, Compress) => [35, 39, 45],
        (_, Convert) => [3, 5, 8],
        (_, Compress) => [5, 8, 12],
    };
    q.pick(high, medium, low)
}

/// MP2 only accepts these bitrates (kbit/s, MPEG-1 layer II).
const MP2_BITRATES: [u32; 14] = [
    32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
];

impl AudioCodec {
    pub(crate) fn encoder(self) -> &'static str {
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

    pub(crate) fn is_lossless(self) -> bool {
        matches!(self, AudioCodec::Pcm16 | AudioCodec::Flac)
    }

    /// Channels the encoder takes reliably (more are downmixed to stereo).
    pub(crate) fn max_channels(self) -> u32 {
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
        let [high, medium, low] = match (purpose, opus) {
            (Purpose::Convert, false) => [192, 128, 96],
            (Purpose::Convert, true) => [128, 96, 64],
            (Purpose::Compress, false) => [128, 96, 64],
            (Purpose::Compress, true) => [96, 64, 48],
        };
        Some(q.pick(high, medium, low))
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

/// The frame rates MPEG-2 video can signal.
const MPEG2_RATES: [Rate; 8] = [
    Rate::fraction(24000, 1001),
    Rate::fraction(24, 1),
    Rate::fraction(25, 1),
    Rate::fraction(30000, 1001),
    Rate::fraction(30, 1),
    Rate::fraction(50, 1),
    Rate::fraction(60000, 1001),
    Rate::fraction(60, 1),
];

pub(crate) fn nearest_mpeg2_rate(fps: f64) -> Rate {
    let mut best = MPEG2_RATES[2];
    for r in MPEG2_RATES {
        if (r.value() - fps).abs() < (best.value() - fps).abs() {
            best = r;
        }
    }
    best
}

pub(crate) fn same_rate(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.01
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
    pub fn output_args(&self, fps: Rate) -> Vec<String> {
        let (crf, fps) = (self.crf.to_string(), fps.to_string());
        let audio_bitrate = format!("{}k", self.audio_bitrate_kbps);
        let video = ["-c:v", "libx264", "-preset", &self.preset, "-crf", &crf];
        let frames = ["-pix_fmt", "yuv420p", "-r", &fps];
        let audio = [
            "-c:a",
            "aac",
            "-b:a",
            &audio_bitrate,
            "-ar",
            "48000",
            "-ac",
            "2",
        ];
        let mp4 = ["-movflags", "+faststart"];
        [&video[..], &frames, &audio, &mp4]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}
