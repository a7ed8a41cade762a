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

use super::convert::{
    ConvertPaths, Format, Job, Purpose, Quality, VideoRate, audio_encode, render,
    validate_max_height, video_encode,
};
use super::plan::{OptionError, Plan, PlanError};
use super::probe::MediaInfo;

/// Options of the `compress` profile: exactly one of `quality` and
/// `target_size_mb`. Unknown fields are ignored; call
/// [`CompressOptions::validate`] after deserialising.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompressOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Output size in MB (10^6 bytes), `> 0` and at most 100 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_size_mb: Option<f64>,
    /// Maximum output height, `144..=4320`; never upscales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Output format; default: the input's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    if !duration.is_finite() || duration <= 0.0 {
        return Err(PlanError::InvalidDuration);
    }
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
    paths: &ConvertPaths,
    stem: &str,
) -> Result<Plan, PlanError> {
    opts.validate()?;
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
    if !info.duration.is_finite() || info.duration <= 0.0 {
        return Err(PlanError::InvalidDuration);
    }
    let (vcodec, acodec) = format.codecs();
    let video = if format.is_audio() {
        None
    } else {
        Some(info.video.as_ref().ok_or(PlanError::NoVideo)?)
    };
    let audio = acodec.and(info.audio.as_ref());
    if format.is_audio() && audio.is_none() {
        return Err(PlanError::NoAudio);
    }

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
    let job = Job {
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
    };
    render(&job, paths, stem)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{arg_after, check_safety, fixture, has_flag, paths};
    use super::*;

    fn by_quality(q: Quality) -> CompressOptions {
        CompressOptions {
            quality: Some(q),
            ..CompressOptions::default()
        }
    }

    fn by_size(mb: f64) -> CompressOptions {
        CompressOptions {
            target_size_mb: Some(mb),
            ..CompressOptions::default()
        }
    }

    fn argv_of(name: &str, opts: &CompressOptions) -> Vec<String> {
        let plan = plan_compress(&fixture(name), opts, &paths(), "My clip").unwrap();
        assert_eq!(plan.runs.len(), 1);
        let argv = plan.runs[0].argv.clone();
        check_safety(&argv);
        assert!(!has_flag(&argv, "-c"), "never a remux");
        argv
    }

    #[test]
    fn quality_keeps_the_container_with_its_codecs() {
        let cases = [
            (
                "landscape",
                "mp4",
                Some(("libx264", "-crf", "27")),
                Some("96k"),
            ),
            ("no_audio", "mp4", Some(("libx264", "-crf", "27")), None),
            (
                "webm",
                "webm",
                Some(("libvpx-vp9", "-crf", "39")),
                Some("64k"),
            ),
            ("odd", "mkv", Some(("libx264", "-crf", "27")), None),
            ("avi", "avi", Some(("mpeg4", "-q:v", "8")), Some("96k")),
            (
                "mpeg2",
                "mpg",
                Some(("mpeg2video", "-q:v", "8")),
                Some("96k"),
            ),
            ("audio_only", "m4a", None, Some("96k")),
        ];
        for (name, ext, video, audio) in cases {
            let plan = plan_compress(
                &fixture(name),
                &by_quality(Quality::Medium),
                &paths(),
                "My clip",
            )
            .unwrap();
            let run = &plan.runs[0];
            check_safety(&run.argv);
            assert_eq!(run.output_name, format!("My_clip.{ext}"), "{name}");
            assert!((run.expected_duration - fixture(name).duration).abs() < 1e-9);
            match video {
                Some((codec, flag, value)) => {
                    assert_eq!(arg_after(&run.argv, "-c:v"), codec, "{name}");
                    assert_eq!(arg_after(&run.argv, flag), value, "{name}");
                }
                None => assert!(has_flag(&run.argv, "-vn")),
            }
            match audio {
                Some(b) => assert_eq!(arg_after(&run.argv, "-b:a"), b, "{name}"),
                None => assert!(!has_flag(&run.argv, "-c:a"), "{name}"),
            }
        }
        let crf = |q| arg_after(&argv_of("landscape", &by_quality(q)), "-crf").to_owned();
        assert_eq!(
            [crf(Quality::High), crf(Quality::Medium), crf(Quality::Low)],
            ["24", "27", "31"]
        );
    }

    #[test]
    fn format_and_max_height() {
        let argv = argv_of(
            "landscape",
            &CompressOptions {
                max_height: Some(720),
                format: Some(Format::Webm),
                ..by_quality(Quality::Low)
            },
        );
        assert_eq!(arg_after(&argv, "-vf"), "scale=1280:720");
        assert_eq!(arg_after(&argv, "-c:v"), "libvpx-vp9");
        assert_eq!(arg_after(&argv, "-crf"), "45");
        // A lossless input needs a lossy format.
        let err =
            plan_compress(&fixture("wav"), &by_quality(Quality::High), &paths(), "x").unwrap_err();
        assert_eq!(err.code(), "invalid_option");
        assert!(err.to_string().contains("`format`"), "{err}");
        let argv = argv_of(
            "wav",
            &CompressOptions {
                format: Some(Format::Opus),
                ..by_quality(Quality::High)
            },
        );
        assert_eq!(arg_after(&argv, "-c:a"), "libopus");
        assert_eq!(arg_after(&argv, "-b:a"), "96k");
        // An audio format from a video input drops the video.
        let argv = argv_of(
            "landscape",
            &CompressOptions {
                format: Some(Format::Mp3),
                ..by_quality(Quality::Low)
            },
        );
        assert!(has_flag(&argv, "-vn"));
        assert_eq!(arg_after(&argv, "-b:a"), "64k");
        // Unknown container without a format.
        let mut info = fixture("landscape");
        info.format_name = "mxf".into();
        let err = plan_compress(&info, &by_quality(Quality::High), &paths(), "x").unwrap_err();
        assert!(err.to_string().contains("`format`"), "{err}");
        // Missing streams.
        let err = plan_compress(
            &fixture("no_audio"),
            &CompressOptions {
                format: Some(Format::M4a),
                ..by_quality(Quality::High)
            },
            &paths(),
            "x",
        )
        .unwrap_err();
        assert_eq!(err.code(), "no_audio_stream");
        let err = plan_compress(
            &fixture("audio_only"),
            &CompressOptions {
                format: Some(Format::Mp4),
                ..by_quality(Quality::High)
            },
            &paths(),
            "x",
        )
        .unwrap_err();
        assert_eq!(err.code(), "no_video_stream");
    }

    #[test]
    fn target_size_sets_bitrates() {
        // 45 s, 1 MB: 1e6 × 8 × 0.98 / 45 = 174.2 kbit/s; audio 32k.
        let argv = argv_of("long", &by_size(1.0));
        assert_eq!(arg_after(&argv, "-b:v"), "142k");
        assert_eq!(arg_after(&argv, "-maxrate"), "213k");
        assert_eq!(arg_after(&argv, "-bufsize"), "284k");
        assert_eq!(arg_after(&argv, "-b:a"), "32k");
        assert!(!has_flag(&argv, "-crf"));
        assert_eq!(arg_after(&argv, "-preset"), "veryfast");
        // 2 s, 1 MB: 3920 kbit/s; audio capped at 128k.
        let argv = argv_of("landscape", &by_size(1.0));
        assert_eq!(arg_after(&argv, "-b:v"), "3792k");
        assert_eq!(arg_after(&argv, "-b:a"), "128k");
        // No audio: everything to the video.
        let argv = argv_of("no_audio", &by_size(1.0));
        assert_eq!(arg_after(&argv, "-b:v"), "3920k");
        // VP9 and MPEG-2 (MP2 bitrate at most the share, from its table).
        let argv = argv_of("webm", &by_size(0.5));
        assert_eq!(arg_after(&argv, "-c:v"), "libvpx-vp9");
        assert!(!has_flag(&argv, "-crf"));
        let b = arg_after(&argv, "-b:v");
        assert_eq!(arg_after(&argv, "-minrate"), b);
        assert_eq!(arg_after(&argv, "-maxrate"), b);
        let t = target_bitrates(10.0, 1.0, Format::Mpeg, true).unwrap();
        assert_eq!(t.audio_kbps, Some(96));
        assert_eq!(t.video_kbps, Some(784 - 96));
        // Audio formats spend the whole budget on audio.
        let t = target_bitrates(45.0, 1.0, Format::Mp3, true).unwrap();
        assert_eq!(
            t,
            TargetBitrates {
                video_kbps: None,
                audio_kbps: Some(174)
            }
        );
        let t = target_bitrates(10.0, 100.0, Format::Mp3, true).unwrap();
        assert_eq!(t.audio_kbps, Some(320));
        assert_eq!(
            target_bitrates(10.0, 1.0, Format::M4a, false).unwrap_err(),
            PlanError::NoAudio
        );
        assert_eq!(
            target_bitrates(f64::NAN, 1.0, Format::Mp4, true).unwrap_err(),
            PlanError::InvalidDuration
        );
    }

    #[test]
    fn target_too_small_names_the_option() {
        let err = plan_compress(&fixture("long"), &by_size(0.2), &paths(), "x").unwrap_err();
        assert_eq!(err.code(), "invalid_option");
        let text = err.to_string();
        assert!(
            text.contains("`target_size_mb`") && text.contains("0.48 MB"),
            "{text}"
        );
        let err = target_bitrates(3600.0, 1.0, Format::Opus, true).unwrap_err();
        assert!(err.to_string().contains("target_size_mb"));
    }

    #[test]
    fn option_errors_name_the_option() {
        let cases: Vec<(CompressOptions, &str)> = vec![
            (CompressOptions::default(), "quality"),
            (
                CompressOptions {
                    quality: Some(Quality::Low),
                    target_size_mb: Some(1.0),
                    ..CompressOptions::default()
                },
                "target_size_mb",
            ),
            (by_size(0.0), "target_size_mb"),
            (by_size(-1.0), "target_size_mb"),
            (by_size(f64::NAN), "target_size_mb"),
            (by_size(1e6), "target_size_mb"),
            (
                CompressOptions {
                    max_height: Some(100),
                    ..by_size(1.0)
                },
                "max_height",
            ),
            (
                CompressOptions {
                    max_height: Some(720),
                    format: Some(Format::Mp3),
                    ..by_size(1.0)
                },
                "max_height",
            ),
            (
                CompressOptions {
                    format: Some(Format::Gif),
                    ..by_size(1.0)
                },
                "format",
            ),
            (
                CompressOptions {
                    format: Some(Format::Flac),
                    ..by_quality(Quality::High)
                },
                "format",
            ),
            (
                CompressOptions {
                    format: Some(Format::Wav),
                    ..by_quality(Quality::High)
                },
                "format",
            ),
        ];
        for (opts, name) in cases {
            let err = opts.validate().unwrap_err();
            assert_eq!(err.option, name, "{opts:?}");
            let perr = plan_compress(&fixture("landscape"), &opts, &paths(), "x").unwrap_err();
            assert_eq!(perr.code(), "invalid_option");
        }
    }

    #[test]
    fn options_deserialize_and_ignore_unknown_fields() {
        let opts: CompressOptions =
            serde_json::from_str(r#"{"target_size_mb":8,"max_height":720,"x":1}"#).unwrap();
        assert_eq!(opts.target_size_mb, Some(8.0));
        assert_eq!(opts.max_height, Some(720));
        assert_eq!(opts.validate(), Ok(()));
        let opts: CompressOptions =
            serde_json::from_str(r#"{"quality":"low","format":"webm"}"#).unwrap();
        assert_eq!(opts.quality, Some(Quality::Low));
        assert_eq!(opts.format, Some(Format::Webm));
        for bad in [
            r#"{"quality":"best"}"#,
            r#"{"target_size_mb":"8"}"#,
            r#"{"format":"exe"}"#,
        ] {
            assert!(
                serde_json::from_str::<CompressOptions>(bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            serde_json::to_value(by_quality(Quality::High)).unwrap(),
            serde_json::json!({"quality": "high"})
        );
    }
}
