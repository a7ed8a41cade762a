//! Pure planning of a chunked encode: one long single-output video encode (`convert`,
//! `compress`) split into runs that can go to different workers, and the run that joins
//! them.
//!
//! ```text
//! input ─┬─ chunk 0: -ss A0 -to A1 -i INPUT  video only, setpts=PTS-STARTPTS ─┐
//!        ├─ chunk 1: -ss A1 -to A2 -i INPUT  …                                 ├─ join: concat
//!        ├─ …                                                                  │  demuxer, -c copy
//!        └─ audio:   the whole window, encoded once (no seams) ───────────────┘
//! ```
//!
//! Cuts sit just before a keyframe of the source (half-way between the keyframe and the
//! frame before it), so each chunk's accurate seek decodes nothing it throws away and
//! no frame falls on a boundary: every source frame lands in exactly one chunk. Each chunk
//! restarts its timestamps at zero; the concat demuxer lays the chunks end to end, so the
//! joined video has the single run's frames and timestamps. Only encodes whose codec
//! restarts cleanly at a keyframe and that keep the source's frames one for one are split
//! ([`chunkable`]): H.264 and VP9, no frame-rate change.

use std::ffi::OsString;
use std::path::Path;

use super::args::{QUIET_ARGS, SAFE_INPUT_ARGS, file_url, output_args, path_str, strings};
use super::codecs::VideoCodec;
use super::encode::{Job, Part, render_run};
use super::formats::Format;
use super::planner::{PlanError, PlannedRun, sanitize_stem};

/// When and how finely an encode is split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSettings {
    /// Encodes of at most this many seconds of video run whole.
    pub threshold: f64,
    /// The length each chunk aims at, in seconds; a chunk ends at the first keyframe at
    /// or after it, and no chunk is shorter than half of it.
    pub length: f64,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        ChunkSettings {
            threshold: 120.0,
            length: 30.0,
        }
    }
}

/// Demuxers the join may open: the concat list, and the containers chunks are written in.
/// The list is the service's own (plain relative names, `-safe 1`), never an upload.
pub const JOIN_FORMAT_WHITELIST: &str = "concat,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm";

/// The name of the concat list the join reads, next to the chunks.
pub const JOIN_LIST: &str = "chunks.ffconcat";

/// The presentation times of one video stream's frames, in order, and which are keyframes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoFrames {
    frames: Vec<(f64, bool)>,
}

/// `ffprobe` arguments listing the packets of stream `index` (no decoding): one
/// `pts_time,flags` line each, read by [`VideoFrames::parse`].
pub fn packet_args(input: &Path, index: usize) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-v", "error", "-select_streams"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(index.to_string().into());
    args.extend(
        ["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"]
            .iter()
            .map(OsString::from),
    );
    args.extend(SAFE_INPUT_ARGS.iter().map(OsString::from));
    args.push("-i".into());
    args.push(file_url(input));
    args
}

impl VideoFrames {
    /// Reads [`packet_args`]' output. Lines without a time (`N/A`) are skipped: a stream
    /// whose frames cannot be placed gets no cut, so its encode runs whole.
    pub fn parse(csv: &[u8]) -> VideoFrames {
        let text = String::from_utf8_lossy(csv);
        let mut frames: Vec<(f64, bool)> = text
            .lines()
            .filter_map(|line| {
                let (time, flags) = line.trim().split_once(',')?;
                let time: f64 = time.parse().ok().filter(|t: &f64| t.is_finite())?;
                Some((time, flags.starts_with('K')))
            })
            .collect();
        frames.sort_by(|a, b| a.0.total_cmp(&b.0));
        VideoFrames { frames }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// `time` moved half-way between the last frame before it and the first at or after
    /// it: the same frames fall on each side, none on the bound.
    pub fn between_frames(&self, time: f64) -> f64 {
        let after = self.frames.partition_point(|f| f.0 < time);
        match (
            after.checked_sub(1).map(|i| self.frames[i].0),
            self.frames.get(after),
        ) {
            (Some(before), Some(&(at, _))) => (before + at) / 2.0,
            _ => time,
        }
    }

    /// Where to cut the window `[from, to)` into chunks of about `length` seconds: each
    /// cut half-way between a keyframe and the frame before it, the first keyframe at or
    /// after `length` past the previous cut's keyframe; none leaving a last chunk shorter
    /// than `length / 2`.
    pub fn cut_points(&self, from: f64, to: f64, length: f64) -> Vec<f64> {
        let mut cuts = vec![];
        if length.is_nan() || length <= 0.0 {
            return cuts;
        }
        let mut chunk_start = from;
        let mut i = 1;
        while i < self.frames.len() {
            let (time, key) = self.frames[i];
            if time >= to - length / 2.0 {
                break;
            }
            if key && time >= chunk_start + length {
                let before = self.frames[i - 1].0;
                cuts.push((before + time) / 2.0);
                chunk_start = time;
            }
            i += 1;
        }
        cuts
    }
}

/// Whether `job` may be split: a video encode (not a remux) with a codec that restarts
/// cleanly at each chunk's first frame, in a container the join reads, keeping the
/// source's frames (a frame-rate change would pick frames per chunk, not per video).
pub(crate) fn chunkable(job: &Job) -> bool {
    let video_ok = job
        .video
        .as_ref()
        .is_some_and(|v| matches!(v.codec, VideoCodec::H264 | VideoCodec::Vp9) && v.fps.is_none());
    let container_ok = matches!(
        job.format,
        Format::Mp4 | Format::Mov | Format::Mkv | Format::Webm
    );
    !job.remux && job.video_index.is_some() && video_ok && container_ok
}

/// A single-output encode long enough to split, and chunkable: what
/// [`super::chunkable_encode`] found. Its cuts come from the video's packets
/// ([`packet_args`] on [`Chunkable::video_index`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunkable {
    job: Job,
}

impl Chunkable {
    /// `Some` when `job` is [`chunkable`] and its window is longer than the threshold.
    pub(crate) fn of(job: Job, settings: &ChunkSettings) -> Option<Chunkable> {
        (chunkable(&job) && job.expected_duration > settings.threshold).then_some(Chunkable { job })
    }

    /// The stream (input index) whose keyframes place the cuts.
    pub fn video_index(&self) -> usize {
        self.job.video_index.unwrap_or(0)
    }

    /// The chunked runs over `frames`, or `None` when the video has no keyframe to cut
    /// at (then the encode runs whole).
    pub fn plan(
        &self,
        frames: &VideoFrames,
        settings: &ChunkSettings,
        input: &Path,
        work: &Path,
        out_dir: &Path,
        stem: &str,
    ) -> Result<Option<ChunkedPlan>, PlanError> {
        let from = self.job.start.unwrap_or(0.0);
        let to = from + self.job.expected_duration;
        let cuts = frames.cut_points(from, to, settings.length);
        if cuts.is_empty() {
            return Ok(None);
        }
        // A trim bound on a frame's own time is ambiguous once a chunk's seek moved the
        // timestamps: between frames it is not, and it keeps the same frames.
        let mut bounds = vec![self.job.start.map(|t| frames.between_frames(t))];
        bounds.extend(cuts.into_iter().map(Some));
        bounds.push(self.job.end.map(|t| frames.between_frames(t)));
        plan_chunked(&self.job, &bounds, input, work, out_dir, stem).map(Some)
    }
}

/// The runs of a chunked encode. Chunks and audio write under the work folder and may run
/// in any order, anywhere; `join` runs last, reading [`ChunkedPlan::list`] (to be written
/// as [`JOIN_LIST`] in the work folder) and the audio, and writes the output.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkedPlan {
    pub chunks: Vec<PlannedRun>,
    pub audio: Option<PlannedRun>,
    pub join: PlannedRun,
    /// The concat list naming the chunks, in order, relative to the work folder.
    pub list: String,
}

/// Splits `job`'s video at `bounds`: the window's start (`None`: the input's), the cuts
/// (from [`VideoFrames::cut_points`]), the window's end (`None`: the input's). `work`
/// holds the chunks, the audio and the list; the output goes to `out_dir`.
pub(crate) fn plan_chunked(
    job: &Job,
    bounds: &[Option<f64>],
    input: &Path,
    work: &Path,
    out_dir: &Path,
    stem: &str,
) -> Result<ChunkedPlan, PlanError> {
    let ext = job.format.extension();
    let from = job.start.unwrap_or(0.0);
    let to = from + job.expected_duration;
    let mut chunks = Vec::with_capacity(bounds.len().saturating_sub(1));
    let mut list = String::from("ffconcat version 1.0\n");
    for (i, window) in bounds.windows(2).enumerate() {
        let name = format!("chunk_{i:04}.{ext}");
        let (start, end) = (window[0], window[1]);
        let piece = Job {
            start,
            end,
            expected_duration: end.unwrap_or(to) - start.unwrap_or(from),
            ..job.clone()
        };
        chunks.push(render_run(
            &piece,
            input,
            work.join(&name),
            name.clone(),
            Part::Video,
        )?);
        list.push_str(&format!("file '{name}'\n"));
    }
    let audio = match job.audio {
        Some(_) => {
            let name = format!("audio.{ext}");
            Some(render_run(job, input, work.join(&name), name, Part::Audio)?)
        }
        None => None,
    };
    let output_name = format!("{}.{ext}", sanitize_stem(stem));
    let output = out_dir.join(&output_name);
    let argv = join_args(job.format, &work.join(JOIN_LIST), audio.as_ref(), &output)?;
    let join = PlannedRun {
        argv,
        output,
        output_name,
        expected_duration: job.expected_duration,
    };
    Ok(ChunkedPlan {
        chunks,
        audio,
        join,
        list,
    })
}

/// The join: the chunks' video through the concat demuxer and the audio, both copied.
fn join_args(
    format: Format,
    list: &Path,
    audio: Option<&PlannedRun>,
    output: &Path,
) -> Result<Vec<String>, PlanError> {
    let mut argv: Vec<String> = strings(&QUIET_ARGS).collect();
    argv.extend(strings(&[
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        JOIN_FORMAT_WHITELIST,
        "-f",
        "concat",
        "-safe",
        "1",
    ]));
    argv.extend(["-i".to_owned(), format!("file:{}", path_str(list)?)]);
    if let Some(audio) = audio {
        argv.extend(strings(&SAFE_INPUT_ARGS));
        argv.extend([
            "-i".to_owned(),
            format!("file:{}", path_str(&audio.output)?),
        ]);
    }
    argv.extend(strings(&["-map", "0:v"]));
    if audio.is_some() {
        argv.extend(strings(&["-map", "1:a"]));
    }
    argv.extend(strings(&["-c", "copy"]));
    if matches!(format, Format::Mp4 | Format::Mov) {
        argv.extend(strings(&["-movflags", "+faststart"]));
    }
    argv.extend(output_args(format.muxer(), output)?);
    Ok(argv)
}

#[cfg(test)]
mod tests;
