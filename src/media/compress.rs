//! Pure planning of the `compress` profile: one ffmpeg run writing
//! `{stem}.{ext}`, in the input's container unless `format` says otherwise,
//! with the format's default codecs (see [`Format`]).
//!
//! Rate control is either a `quality` preset (CRF / quantiser, one step
//! smaller than `convert`'s) or `target_size_mb`: the bitrate left for the
//! video is the target's bits over the duration minus the audio bitrate,
//! encoded in a single pass bounded by a VBV buffer (`-maxrate` 1.5×,
//! `-bufsize` 2×; VP9 in CBR mode). Measured on 10–20 s clips of
//! real-world-like complexity, x264 lands within −1.1 % … +5.9 % of the
//! target (two-pass: −1.1 % … −0.2 %), so one pass is kept: half the work,
//! one run; VP9 CBR within −0.5 % … +8.5 %. Content that needs fewer bits
//! than the target (e.g. still colour bars) comes out smaller whatever the
//! method. The legacy codecs (MPEG-4 Part 2, WMV2, MPEG-2) overshoot small
//! targets (+10 … +45 % measured at 100–700 kbit/s on noisy 320x180 video)
//! because their quantiser bottoms out at 31; two passes cannot go below
//! that either.
//!
//! Keeping the smaller of input and output is the job's decision, not the
//! planner's.

use serde::{Deserialize, Serialize};

use super::codecs::{Purpose, Quality, VideoRate};
use super::encode::{Job, audio_encode, kept_streams, render, video_encode};
use super::formats::Format;
use super::geometry::validate_max_height;
use super::planner::{OptionError, Paths, Plan, PlanError, checked_duration};
use super::probe::MediaInfo;

/// Options of the `compress` profile: exactly one of `quality` and
/// `target_size_mb`. Unknown fields are refused; call
/// [`CompressOptions::validate`] after deserialising.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Output size in MB (10^6 bytes), `> 0` and at most 100 000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_size_mb: Option<f64>,
    /// Maximum output height, `144..=4320`; never upscales.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Output format; default: the input's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

/// Largest `target_size_mb` accepted.
pub const MAX_TARGET_SIZE_MB: f64 = 100_000.0;

/// Share of the target kept for container overhead.
const MUX_OVERHEAD: f64 = 0.02;

/// Lowest video bitrate a target may leave, kbit/s.
pub const MIN_VIDEO_KBPS: u32 = 50;

/// Lowest audio bitrate a target may leave, kbit/s.
pub const MIN_AUDIO_KBPS: u32 = 32;

/// Audio bitrate of a target-size encode: an eighth of the total, within
/// [`MIN_AUDIO_KBPS`]..=128.
const MAX_TARGET_AUDIO_KBPS: u32 = 128;

fn check_format(format: Format, explicit: bool) -> Result<(), OptionError> {
    if format == Format::Gif || format.is_lossless_audio() {
        let message = if explicit {
            format!("cannot compress to {format}; choose a lossy format")
        } else {
            format!(
                "the input is {format}, which cannot be compressed in place; \
                 choose a lossy format (e.g. m4a, mp3, opus)"
            )
        };
        return Err(OptionError::new("format", message));
    }
    Ok(())
}

impl CompressOptions {
    /// The profile's name, as the API spells it.
    pub const NAME: &str = "compress";

    /// The options' JSON Schema: a branch per way of sizing (`quality` or
    /// `target_size_mb`) and kind of format (`max_height` does not apply to audio).
    pub fn schema() -> serde_json::Value {
        use super::schema::{documented, enum_of, max_height, object};
        use serde_json::json;
        let quality = documented(
            enum_of([Quality::Low, Quality::Medium, Quality::High]),
            "Quality preset (CRF-style).",
            None::<()>,
        );
        let target = json!({
            "type": "number", "exclusiveMinimum": 0, "maximum": MAX_TARGET_SIZE_MB,
            "description": "Output size in MB (10^6 bytes); the bitrate follows from the duration."
        });
        let lossy = |audio: bool| {
            enum_of(Format::ALL.into_iter().filter(move |f| {
                f.is_audio() == audio && *f != Format::Gif && !f.is_lossless_audio()
            }))
        };
        let mut branches = Vec::new();
        for (size_key, size) in [("quality", &quality), ("target_size_mb", &target)] {
            for audio in [false, true] {
                let mut props = json!({ size_key: size });
                let title = if audio {
                    props["format"] = documented(lossy(true), "Output format (audio).", None::<()>);
                    format!("by {size_key}, to an audio format")
                } else {
                    props["format"] = documented(
                        lossy(false),
                        "Output format (video); default: the input's container.",
                        None::<()>,
                    );
                    props["max_height"] = max_height(None);
                    format!("by {size_key}")
                };
                let mut o = object(&title, props);
                o["title"] = json!(title);
                o["required"] = if audio {
                    json!([size_key, "format"])
                } else {
                    json!([size_key])
                };
                branches.push(o);
            }
        }
        json!({
            "description": "Make a file smaller: give exactly one of `quality` and `target_size_mb`.",
            "oneOf": branches
        })
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        match (self.quality, self.target_size_mb) {
            (Some(_), Some(_)) => {
                return Err(OptionError::new(
                    "target_size_mb",
                    "give either `quality` or `target_size_mb`, not both",
                ));
            }
            (None, None) => {
                return Err(OptionError::new(
                    "quality",
                    "give either `quality` or `target_size_mb`",
                ));
            }
            (None, Some(mb)) if !mb.is_finite() || mb <= 0.0 || mb > MAX_TARGET_SIZE_MB => {
                return Err(OptionError::new(
                    "target_size_mb",
                    format!("must be a size in MB above 0 and at most {MAX_TARGET_SIZE_MB}"),
                ));
            }
            _ => {}
        }
        if let Some(h) = self.max_height {
            if self.format.is_some_and(Format::is_audio) {
                return Err(OptionError::new(
                    "max_height",
                    "does not apply to an audio format",
                ));
            }
            validate_max_height(h)?;
        }
        if let Some(format) = self.format {
            check_format(format, true)?;
        }
        Ok(())
    }
}

/// Bitrates (kbit/s) that make `duration` seconds weigh `target_size_mb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetBitrates {
    /// `None` for audio formats.
    pub video_kbps: Option<u32>,
    /// `None` when the output has no audio.
    pub audio_kbps: Option<u32>,
}

/// Splits the bit budget of `target_size_mb` over `duration` seconds between
/// video (when `format` is a video format) and audio (when `has_audio`).
/// Errors (naming `target_size_mb`) when the budget leaves less than
/// [`MIN_VIDEO_KBPS`] for video or 8 kbit/s for an audio format.
pub fn target_bitrates(
    duration: f64,
    target_size_mb: f64,
    format: Format,
    has_audio: bool,
) -> Result<TargetBitrates, PlanError> {
    checked_duration(duration)?;
    let audio_codec = format.codecs().1.filter(|_| has_audio);
    let budget_kbps = target_size_mb * 8000.0 * (1.0 - MUX_OVERHEAD) / duration;
    let too_small = |min_kbps: u32| {
        let min_mb = f64::from(min_kbps) * duration / 8000.0 / (1.0 - MUX_OVERHEAD);
        OptionError::new(
            "target_size_mb",
            format!(
                "too small for {:.1} s of media: at least {:.2} MB",
                duration,
                (min_mb * 100.0).ceil() / 100.0
            ),
        )
    };
    if format.is_audio() {
        let Some(codec) = audio_codec else {
            return Err(PlanError::NoAudio);
        };
        if budget_kbps < 8.0 {
            return Err(too_small(8).into());
        }
        let kbps = budget_kbps.floor().min(f64::from(u32::MAX)) as u32;
        return Ok(TargetBitrates {
            video_kbps: None,
            audio_kbps: Some(codec.accepted_kbps(kbps)),
        });
    }
    let audio_kbps = audio_codec.map(|codec| {
        let share = (budget_kbps / 8.0)
            .floor()
            .clamp(f64::from(MIN_AUDIO_KBPS), f64::from(MAX_TARGET_AUDIO_KBPS))
            as u32;
        codec.accepted_kbps_at_most(share)
    });
    let video = budget_kbps - f64::from(audio_kbps.unwrap_or(0));
    if video < f64::from(MIN_VIDEO_KBPS) {
        let min = MIN_VIDEO_KBPS + audio_kbps.map_or(0, |_| MIN_AUDIO_KBPS);
        return Err(too_small(min).into());
    }
    Ok(TargetBitrates {
        video_kbps: Some(video.floor().min(f64::from(u32::MAX)) as u32),
        audio_kbps,
    })
}

/// Plans the `compress` profile: one ffmpeg run writing `{stem}.{ext}`.
pub fn plan_compress(
    info: &MediaInfo,
    opts: &CompressOptions,
    paths: &Paths,
    stem: &str,
) -> Result<Plan, PlanError> {
    let job = compress_job(info, opts)?;
    render(&job, paths, stem)
}

/// The decisions of a compression (pure, before any argv).
pub(crate) fn compress_job(info: &MediaInfo, opts: &CompressOptions) -> Result<Job, PlanError> {
    opts.validate()?;
    let format = output_format(info, opts)?;
    checked_duration(info.duration)?;
    let (video, audio) = kept_streams(info, format)?;
    let (vcodec, acodec) = format.codecs();
    let (video_rate, audio_kbps) = match (opts.quality, opts.target_size_mb) {
        (_, Some(mb)) => {
            let t = target_bitrates(info.duration, mb, format, audio.is_some())?;
            (t.video_kbps.map(VideoRate::Bitrate), t.audio_kbps)
        }
        (q, None) => {
            let q = q.unwrap_or_default();
            let kbps = acodec.and_then(|c| c.preset_kbps(q, Purpose::Compress));
            (Some(VideoRate::Quality(q, Purpose::Compress)), kbps)
        }
    };

    let video_enc = match (video, vcodec, video_rate) {
        (Some(v), Some(codec), Some(rate)) => {
            Some(video_encode(v, codec, rate, opts.max_height, None)?)
        }
        _ => None,
    };
    let audio_enc = match (audio, acodec) {
        (Some(a), Some(codec)) => Some(audio_encode(a.channels, codec, audio_kbps)),
        _ => None,
    };
    let size = video_enc.as_ref().map_or((0, 0), |v| (v.width, v.height));
    Ok(Job {
        format,
        remux: false,
        video_index: video.map(|v| v.index),
        audio_index: audio.map(|a| a.index),
        video: video_enc,
        audio: audio_enc,
        start: None,
        end: None,
        expected_duration: info.duration,
        size,
    })
}

/// The asked format, else the input's own when it can be written and compressed.
fn output_format(info: &MediaInfo, opts: &CompressOptions) -> Result<Format, PlanError> {
    let format = match opts.format {
        Some(f) => f,
        None => {
            let f = Format::of_input(info).ok_or_else(|| {
                OptionError::new(
                    "format",
                    format!(
                        "the input's container ({}) cannot be written; choose a format",
                        info.format_name
                    ),
                )
            })?;
            check_format(f, false)?;
            f
        }
    };
    if opts.max_height.is_some() && format.is_audio() {
        return Err(OptionError::new("max_height", "does not apply to an audio format").into());
    }
    Ok(format)
}

#[cfg(test)]
mod tests;
