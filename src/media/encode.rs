//! A single-output encode, shared by `convert` and `compress`: the decisions ([`Job`]:
//! remux or which encoders, size, rate, trim) and their one ffmpeg run ([`render`]).

use super::args::{input_args, output_args, strings};
use super::codecs::{AudioCodec, Rate, VideoCodec, VideoRate, nearest_mpeg2_rate, same_rate};
use super::formats::Format;
use super::geometry::scaled_size;
use super::planner::{Paths, Plan, PlanError, PlannedRun, sanitize_stem};
use super::probe::{AudioStream, MediaInfo, VideoStream};
use std::path::{Path, PathBuf};

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

/// The input's streams a single-output run of `format` keeps: the first video stream
/// (none for audio formats) and the first audio stream (none for formats without audio).
/// Errors when a stream the format needs is missing.
pub(crate) fn kept_streams(
    info: &MediaInfo,
    format: Format,
) -> Result<(Option<&VideoStream>, Option<&AudioStream>), PlanError> {
    let video = if format.is_audio() {
        None
    } else {
        Some(info.video.as_ref().ok_or(PlanError::NoVideo)?)
    };
    let audio = format.codecs().1.and(info.audio.as_ref());
    if format.is_audio() && audio.is_none() {
        return Err(PlanError::NoAudio);
    }
    Ok((video, audio))
}

/// The video encode for `format` from the stream, with optional scaling
/// and frame-rate change.
pub(crate) fn video_encode(
    video: &VideoStream,
    codec: VideoCodec,
    rate: VideoRate,
    max_height: Option<u32>,
    fps: Option<Rate>,
) -> Result<VideoEncode, PlanError> {
    let max_width = (codec == VideoCodec::Gif).then_some(GIF_MAX_WIDTH);
    let (width, height) = scaled_size(video, max_height, max_width)?;
    let source = video.fps;
    let target = match codec {
        // MPEG-2 can only signal a few rates: snap to the nearest.
        VideoCodec::Mpeg2 => {
            let want = fps.map(Rate::value).or(source).unwrap_or(25.0);
            Some(nearest_mpeg2_rate(want))
        }
        VideoCodec::Gif => match fps {
            Some(f) => Some(f),
            // Default: at most 15 fps, never more than the source.
            None if source.is_some_and(|s| s <= f64::from(GIF_DEFAULT_FPS)) => None,
            None => Some(Rate::whole(GIF_DEFAULT_FPS)),
        },
        _ => fps,
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

fn video_args(index: usize, enc: &VideoEncode, part: Part) -> Vec<String> {
    let mut argv = Vec::new();
    let mut chain: Vec<String> = Vec::new();
    if part == Part::Video {
        // A chunk starts at its own zero, so the join lays chunks end to end exactly.
        chain.push("setpts=PTS-STARTPTS".to_owned());
    }
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

/// What one run of a [`Job`] writes: the whole output, or one piece of a chunked encode
/// ([`super::chunks`]): the video of one time window, or the whole audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Whole,
    Video,
    Audio,
}

/// Renders a [`Job`] into its single run.
pub(crate) fn render(job: &Job, paths: &Paths, stem: &str) -> Result<Plan, PlanError> {
    let output_name = format!("{}.{}", sanitize_stem(stem), job.format.extension());
    let output = paths.out_dir.join(&output_name);
    let run = render_run(job, &paths.input, output, output_name, Part::Whole)?;
    Ok(Plan {
        width: job.size.0,
        height: job.size.1,
        runs: vec![run],
        result: None,
    })
}

/// One run of `job` over `input`, writing `part` of it to `output`.
pub(crate) fn render_run(
    job: &Job,
    input: &Path,
    output: PathBuf,
    output_name: String,
    part: Part,
) -> Result<PlannedRun, PlanError> {
    let mut argv = input_args(input, job.start, job.end)?;
    if job.remux {
        if let Some(i) = job.video_index.filter(|_| !job.format.is_audio()) {
            argv.extend(["-map".to_owned(), format!("0:{i}")]);
        }
        if let Some(i) = job.audio_index {
            argv.extend(["-map".to_owned(), format!("0:{i}")]);
        }
        argv.extend(strings(&["-c", "copy"]));
    } else {
        if let (Some(i), Some(enc), true) = (job.video_index, &job.video, part != Part::Audio) {
            argv.extend(video_args(i, enc, part));
        }
        if let (Some(i), Some(enc), true) = (job.audio_index, &job.audio, part != Part::Video) {
            argv.extend(audio_args(i, enc));
        }
    }
    if job.format.is_audio() || part == Part::Audio {
        argv.push("-vn".to_owned());
    } else if job.format == Format::Gif || part == Part::Video {
        argv.push("-an".to_owned());
    }
    // Pieces are read once by the join, which moves the index itself.
    if part == Part::Whole && matches!(job.format, Format::Mp4 | Format::Mov | Format::M4a) {
        argv.extend(strings(&["-movflags", "+faststart"]));
    }
    argv.extend(output_args(job.format.muxer(), &output)?);
    Ok(PlannedRun {
        argv,
        output,
        output_name,
        expected_duration: job.expected_duration,
    })
}
