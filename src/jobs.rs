//! The job pipeline: fetch or open the input → probe and validate → plan (pure) → run
//! ffmpeg → store and probe each output. Glue only: the decisions live in `media`, the
//! process handling in `process`, the bytes in `storage`.
//!
//! Every run works in its own scratch folder, removed whatever the outcome (`Scratch`), once
//! every writer into it has stopped: ffmpeg is killed and reaped, and the copies into it
//! (fetch, storage) stop on the run's cancel token themselves, never dropped half-way (a
//! file operation of tokio's blocking threads would outlive its dropped future). ffmpeg only
//! ever sees local files in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::{ArchiveError, ArchiveFormat, ExtractLimits, recompress};
use crate::db::{Db, Lease, retry_transient};
use crate::domain::ErrorCode;
use crate::domain::task::ArchiveOptions;
use crate::domain::{OutputFile, Profile, Source, Stage, TaskError, TaskRecord};
use crate::fetch::{FetchError, Fetcher};
use crate::media::formats::Format;
use crate::media::probe::{self, MediaInfo, ProbeLimits};
use crate::media::{self, Paths, Plan, PlanError, PlannedRun};
use crate::process::{self, CommandSpec, ProcessError};
use crate::storage::{Storage, StorageError, keys};

/// The service's default logo for bumpers.
pub const DEFAULT_LOGO: &[u8] = include_bytes!("../assets/logo.png");

/// Progress as the pipeline reports it; the queue persists it at most once a second (and
/// at once on a change of stage).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub stage: Stage,
    pub percent: f64,
    pub eta_seconds: Option<f64>,
}

impl Progress {
    pub const START: Progress = Progress {
        stage: Stage::Fetching,
        percent: 0.0,
        eta_seconds: None,
    };
}

/// One run of a claimed job: what the pipeline works with and reports to. The queue builds
/// it for each job it claims.
pub struct Run<'a> {
    pub env: &'a JobEnv,
    pub db: &'a Db,
    pub storage: &'a Storage,
    /// Every write about the task goes through it: it counts only while the lease is held.
    pub lease: &'a Lease,
    /// How long a lease lasts unrenewed: writes are retried through a database outage for
    /// half of it ([`crate::db::retry_transient`]).
    pub lease_duration: std::time::Duration,
    pub task: &'a TaskRecord,
    /// Fires when the run must stop: cancel, delete, lost lease, or shutdown.
    pub cancel: &'a CancellationToken,
    pub progress: &'a watch::Sender<Progress>,
}

/// How a job ended when it did not succeed.
#[derive(Debug)]
pub enum JobError {
    /// Infrastructure trouble: try again later.
    Retry(TaskError),
    /// The input or the request is at fault: fail now.
    Abort(TaskError),
    /// Stopped from outside (cancel, delete, lost lease, shutdown).
    Cancelled,
}

fn task_error(code: ErrorCode, message: impl Into<String>) -> TaskError {
    TaskError::new(code, message)
}

/// Settings of the pipeline.
pub struct JobEnv {
    pub fetcher: Fetcher,
    pub scratch_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub limits: ProbeLimits,
    pub extract_limits: ExtractLimits,
    pub stall_timeout: Duration,
}

/// A per-run folder, removed on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn create(root: &Path, lease: &Lease) -> std::io::Result<Scratch> {
        let path = root.join(format!("{}-{}", lease.task_id, lease.run));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(path.join("out"))?;
        Ok(Scratch { path })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove scratch");
        }
    }
}

/// Remove scratch folders left by runs of a process that died (embedded mode, at start).
pub fn sweep_scratch(root: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(e.path())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn storage_error(e: StorageError) -> JobError {
    match e {
        StorageError::Cancelled => JobError::Cancelled,
        StorageError::NotFound => JobError::Abort(task_error(
            ErrorCode::InputMissing,
            "the task's input is no longer in storage",
        )),
        other => JobError::Retry(task_error(ErrorCode::StorageError, other.to_string())),
    }
}

fn fetch_error(e: FetchError) -> JobError {
    if let FetchError::Cancelled = e {
        return JobError::Cancelled;
    }
    let err = task_error(e.code(), e.to_string());
    if e.is_retryable() {
        JobError::Retry(err)
    } else {
        JobError::Abort(err)
    }
}

/// Replace the scratch path in ffmpeg's messages: clients never see file-system paths.
fn redact(text: &str, scratch: &Path) -> String {
    text.replace(&*scratch.to_string_lossy(), "<scratch>")
}

fn process_error(e: ProcessError, what: &str, scratch: &Path) -> JobError {
    match e {
        ProcessError::Cancelled => JobError::Cancelled,
        ProcessError::Timeout(_) => JobError::Retry(task_error(
            ErrorCode::Timeout,
            format!("{what} ran past its time limit"),
        )),
        ProcessError::Stalled(d) => JobError::Retry(task_error(
            ErrorCode::Stalled,
            format!("{what} made no progress for {} s", d.as_secs()),
        )),
        ProcessError::NotFound(_) => JobError::Retry(task_error(
            ErrorCode::FfmpegMissing,
            format!("{what} is not installed"),
        )),
        ProcessError::Status { stderr_tail, .. } => JobError::Abort(task_error(
            ErrorCode::ProcessingFailed,
            format!("{what} failed: {}", redact(stderr_tail.trim(), scratch)),
        )),
        other => JobError::Retry(task_error(
            ErrorCode::ProcessError,
            redact(&other.to_string(), scratch),
        )),
    }
}

/// A command line as shown to the task's owner: the program's file name, arguments quoted
/// for a POSIX shell where needed, and the run's scratch folder left out of every path.
pub fn display_command(program: &Path, args: &[String], scratch: &Path) -> String {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ffmpeg".to_string());
    let prefix = format!("{}/", scratch.display());
    let mut out = name;
    for a in args {
        let rel = a.replace(&prefix, "");
        out.push(' ');
        if !rel.is_empty()
            && rel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=+@%".contains(c))
        {
            out.push_str(&rel);
        } else {
            out.push('\'');
            out.push_str(&rel.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

/// Hard limit for one ffmpeg run: generous, but scaled to the media it produces.
pub fn run_timeout(expected_seconds: f64) -> Duration {
    Duration::from_secs_f64((expected_seconds * 20.0).max(120.0) + 60.0)
}

/// One bar for the whole run: each stage owns a slice of it, so the task's `percent` only
/// ever moves forward (fetching 0–5, probing 5, processing 5–99, storing 99; 100 is set
/// when the task succeeds).
pub fn overall_percent(stage: Stage, within_stage: f64) -> f64 {
    let p = within_stage.clamp(0.0, 100.0) / 100.0;
    match stage {
        Stage::Fetching => 5.0 * p,
        Stage::Probing => 5.0,
        Stage::Processing => 5.0 + 94.0 * p,
        Stage::Storing => 99.0,
    }
}

/// Report progress within a stage (`within_stage` in 0–100).
fn report(tx: &watch::Sender<Progress>, stage: Stage, within_stage: f64, eta: Option<f64>) {
    tx.send_if_modified(|p| {
        let next = Progress {
            stage,
            percent: overall_percent(stage, within_stage).max(p.percent),
            eta_seconds: eta,
        };
        let changed = *p != next;
        *p = next;
        changed
    });
}

/// Run ffprobe on a local file and parse it.
pub async fn probe_file(
    env: &JobEnv,
    path: &Path,
    cwd: &Path,
    cancel: &CancellationToken,
) -> Result<MediaInfo, JobError> {
    let spec = CommandSpec {
        program: env.ffprobe.clone().into_os_string(),
        args: probe::ffprobe_args(path),
        cwd: cwd.to_path_buf(),
        timeout: Duration::from_secs(60),
        stall_timeout: None,
        capture_stdout: true,
    };
    let out = match process::run(&spec, cancel, |_| {}).await {
        Ok(out) => out,
        Err(ProcessError::Status { .. }) => {
            return Err(JobError::Abort(task_error(
                ErrorCode::InvalidMedia,
                "the file is not a readable audio or video file",
            )));
        }
        Err(e) => return Err(process_error(e, "ffprobe", cwd)),
    };
    probe::parse_ffprobe(&out.stdout)
        .map_err(|e| JobError::Abort(task_error(e.code(), e.to_string())))
}

/// Run one task's job to its outputs (stored under this run's keys).
#[tracing::instrument(skip_all, fields(task = %run.task.id, run = run.lease.run))]
pub async fn execute(run: &Run<'_>) -> Result<JobOutput, JobError> {
    let (env, storage, task, cancel, progress) =
        (run.env, run.storage, run.task, run.cancel, run.progress);
    let scratch = Scratch::create(&env.scratch_dir, run.lease)
        .map_err(|e| JobError::Retry(task_error(ErrorCode::ScratchError, e.to_string())))?;
    let dir = scratch.path();

    // fetching
    report(progress, Stage::Fetching, 0.0, None);
    let (input_path, input_key) = fetch_input(env, storage, task, dir, cancel, progress).await?;
    if cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }

    let out_dir = dir.join("out");
    let (mut result, info) = match &task.profile {
        Profile::Archive(options) => (
            recompress_archive(run, &input_path, dir, &out_dir, options).await?,
            None,
        ),
        _ => {
            let (result, info) = process_media(run, &input_path, &input_key, dir, &out_dir).await?;
            (result, Some(info))
        }
    };

    // storing
    report(progress, Stage::Storing, 0.0, None);
    let files = list_files(&out_dir)
        .map_err(|e| JobError::Retry(task_error(ErrorCode::ScratchError, e.to_string())))?;
    if let (Profile::Compress(_), Some(info)) = (&task.profile, &info) {
        result = Some(keep_smaller(&files, &input_path, info)?);
    }
    if files.is_empty() {
        return Err(JobError::Abort(task_error(
            ErrorCode::NoOutput,
            "processing produced no file",
        )));
    }
    let mut outputs = Vec::with_capacity(files.len());
    for (name, path) in files {
        if cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let meta = describe_output(env, &path, dir, cancel).await?;
        let key = keys::output(task.id, run.lease.run, &name);
        let size = storage.put_file(&key, &path).await.map_err(storage_error)?;
        outputs.push(OutputFile {
            name,
            key,
            size,
            ..meta
        });
    }
    Ok(JobOutput {
        outputs,
        result,
        input_seconds: info.map(|i| i.duration),
    })
}

/// probe → validate → plan → run ffmpeg, for every media profile. Returns the profile's
/// summary and the probed input; the outputs are in `out_dir`.
async fn process_media(
    run: &Run<'_>,
    input_path: &Path,
    input_key: &str,
    dir: &Path,
    out_dir: &Path,
) -> Result<(Option<serde_json::Value>, MediaInfo), JobError> {
    let (env, cancel, progress) = (run.env, run.cancel, run.progress);
    // probing
    report(progress, Stage::Probing, 0.0, None);
    let info = probe_file(env, input_path, dir, cancel).await?;
    // Recorded before validation so the owner sees what was refused.
    let within = run.lease_duration / 2;
    let recorded = retry_transient(within, "set_input", || {
        run.db.set_input(run.lease, &info, input_key)
    })
    .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => return Err(JobError::Cancelled),
        Err(e) => {
            return Err(JobError::Retry(task_error(
                ErrorCode::DatabaseError,
                e.to_string(),
            )));
        }
    }
    probe::validate(&info, &env.limits)
        .map_err(|e| JobError::Abort(task_error(e.code(), e.to_string())))?;

    // processing
    report(progress, Stage::Processing, 0.0, None);
    let planned = plan_task(run, &info, input_path, out_dir, dir).await?;
    let commands: Vec<String> = planned
        .runs
        .iter()
        .map(|r| display_command(&env.ffmpeg, &r.argv, dir))
        .collect();
    let saved = retry_transient(within, "set_commands", || {
        run.db.set_commands(run.lease, &commands)
    })
    .await
    .map_err(|e| JobError::Retry(task_error(ErrorCode::DatabaseError, e.to_string())))?;
    if !saved {
        return Err(JobError::Cancelled);
    }
    run_all(env, &planned.runs, dir, cancel, progress).await?;
    Ok((planned.result, info))
}

fn archive_error(e: ArchiveError) -> JobError {
    match e {
        ArchiveError::Cancelled => JobError::Cancelled,
        ArchiveError::Io(io) => JobError::Retry(task_error(ErrorCode::IoError, io.to_string())),
        other => JobError::Abort(task_error(other.code(), other.to_string())),
    }
}

/// The `archive` profile: no ffmpeg and no probing; a bounded, link-refusing extraction
/// into scratch and a new archive, in a blocking thread that stops when `cancel` fires.
async fn recompress_archive(
    run: &Run<'_>,
    input: &Path,
    dir: &Path,
    out_dir: &Path,
    options: &ArchiveOptions,
) -> Result<Option<serde_json::Value>, JobError> {
    let (env, task, cancel) = (run.env, run.task, run.cancel);
    report(run.progress, Stage::Processing, 0.0, None);
    let from = ArchiveFormat::detect(input).map_err(archive_error)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| JobError::Retry(task_error(ErrorCode::ScratchError, e.to_string())))?;
    let name = format!("{}.{}", task.source.stem(), options.format.extension());
    let out = out_dir.join(&name);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, cancel) = (stop.clone(), cancel.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            stop.store(true, Ordering::SeqCst);
        })
    };
    let (src, work, to, dest) = (input.to_path_buf(), dir.to_path_buf(), options.format, out);
    let limits = env.extract_limits.clone();
    let summary =
        tokio::task::spawn_blocking(move || recompress(&src, to, &work, &dest, &limits, &stop))
            .await;
    watcher.abort();
    let summary = summary
        .map_err(|e| JobError::Retry(task_error(ErrorCode::Internal, e.to_string())))?
        .map_err(archive_error)?;
    Ok(Some(serde_json::json!({
            "from": from.as_str(),
            "to": options.format.as_str(),
            "entries": summary.entries,
            "files": summary.files,
            "dirs": summary.dirs,
            "total_bytes": summary.total_bytes,
    })))
}

/// What a successful run hands to the queue.
pub struct JobOutput {
    pub outputs: Vec<OutputFile>,
    /// The profile's summary, stored on the task.
    pub result: Option<serde_json::Value>,
    /// The input's duration, for media profiles (the processing speed metric).
    pub input_seconds: Option<f64>,
}

fn plan_error(e: PlanError) -> JobError {
    JobError::Abort(task_error(e.code(), e.to_string()))
}

/// Plan the task's runs (pure), fetching first what its profile needs (the logo).
async fn plan_task(
    run: &Run<'_>,
    info: &MediaInfo,
    input: &Path,
    out_dir: &Path,
    dir: &Path,
) -> Result<Plan, JobError> {
    let task = run.task;
    let logo = if task.profile.wants_logo() {
        Some(fetch_logo(run.storage, task, dir, run.cancel).await?)
    } else {
        None
    };
    let paths = Paths {
        input: input.to_path_buf(),
        out_dir: out_dir.to_path_buf(),
        logo,
    };
    media::plan(&task.profile, info, &paths, &task.source.stem()).map_err(plan_error)
}

/// The task's own logo from storage, else the service's default, as `{dir}/logo.png`.
async fn fetch_logo(
    storage: &Storage,
    task: &TaskRecord,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<PathBuf, JobError> {
    let logo = dir.join("logo.png");
    match storage
        .get_to_file(&keys::logo(task.id), &logo, cancel)
        .await
    {
        Ok(_) => {}
        Err(StorageError::NotFound) => tokio::fs::write(&logo, DEFAULT_LOGO)
            .await
            .map_err(|e| JobError::Retry(task_error(ErrorCode::ScratchError, e.to_string())))?,
        Err(e) => return Err(storage_error(e)),
    }
    Ok(logo)
}

/// Run the planned ffmpeg runs in order, reporting one progress bar over all of them.
async fn run_all(
    env: &JobEnv,
    runs: &[PlannedRun],
    dir: &Path,
    cancel: &CancellationToken,
    progress: &watch::Sender<Progress>,
) -> Result<(), JobError> {
    if let Some(out) = runs.first().and_then(|r| r.output.parent()) {
        tokio::fs::create_dir_all(out)
            .await
            .map_err(|e| JobError::Retry(task_error(ErrorCode::ScratchError, e.to_string())))?;
    }
    let total: f64 = runs
        .iter()
        .map(|r| r.expected_duration)
        .sum::<f64>()
        .max(0.001);
    let mut done_before = 0.0;
    let started = std::time::Instant::now();
    for run in runs {
        let spec = CommandSpec {
            program: env.ffmpeg.clone().into_os_string(),
            args: run.argv.iter().map(Into::into).collect(),
            cwd: dir.to_path_buf(),
            timeout: run_timeout(run.expected_duration),
            stall_timeout: Some(env.stall_timeout),
            capture_stdout: false,
        };
        let base = done_before;
        process::run(&spec, cancel, |u| {
            let produced = base + u.out_time.as_secs_f64().min(run.expected_duration);
            let percent = if u.done {
                (base + run.expected_duration) / total * 100.0
            } else {
                produced / total * 100.0
            };
            let elapsed = started.elapsed().as_secs_f64();
            let eta = (produced > 0.5 && elapsed > 0.5)
                .then(|| (total - produced).max(0.0) * elapsed / produced);
            report(progress, Stage::Processing, percent, eta);
        })
        .await
        .map_err(|e| process_error(e, "ffmpeg", dir))?;
        done_before += run.expected_duration;
    }
    Ok(())
}

/// Every regular file in `dir` (name, path), sorted by name. Two-pass logs and other
/// scratch never go there.
fn list_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = vec![];
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            files.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Compress never hands back something bigger than it was given in the same container:
/// when the re-encode is not smaller and the input already is a file of the output's
/// format ([`Format::holds`]), the input is kept under the output's name. An input in
/// another container is never handed back under this format's name (a QuickTime file
/// called `clip.webm`): then the re-encode, in the format asked for, is kept even though
/// it is larger. The summary says which (`kept`) and why.
fn keep_smaller(
    files: &[(String, PathBuf)],
    input: &Path,
    info: &MediaInfo,
) -> Result<serde_json::Value, JobError> {
    let io =
        |e: std::io::Error| JobError::Retry(task_error(ErrorCode::ScratchError, e.to_string()));
    let input_size = std::fs::metadata(input).map_err(io)?.len();
    let Some((name, path)) = files.first() else {
        return Err(JobError::Abort(task_error(
            ErrorCode::NoOutput,
            "compress produced no file",
        )));
    };
    let output_size = std::fs::metadata(path).map_err(io)?.len();
    let format = Format::of_file_name(name);
    let same_container = format.is_some_and(|f| f.holds(info));
    let larger = output_size >= input_size;
    let kept_input = larger && same_container;
    if kept_input {
        std::fs::copy(input, path).map_err(io)?;
    }
    let final_size = if kept_input { input_size } else { output_size };
    let message = match (larger, same_container) {
        (false, _) => "compressed".to_string(),
        (true, true) => {
            "the compressed file was not smaller than the input; the input is kept".to_string()
        }
        (true, false) => format!(
            "the compressed file is not smaller than the input, but the input is not a {} \
             file; the re-encode is kept",
            format.map_or_else(|| "file of this".to_string(), |f| f.to_string())
        ),
    };
    Ok(serde_json::json!({
        "input_size": input_size,
        "compressed_size": output_size,
        "output_size": final_size,
        "ratio": if input_size > 0 { final_size as f64 / input_size as f64 } else { 1.0 },
        "kept": if kept_input { "input" } else { "compressed" },
        "message": message,
    }))
}

/// Size aside, what an output is: probed when it is audio, video or an image; playlists
/// and other text are stored as they are.
async fn describe_output(
    env: &JobEnv,
    path: &Path,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<OutputFile, JobError> {
    const PROBED: [&str; 21] = [
        "mp4", "m4v", "mov", "webm", "mkv", "avi", "mpg", "mpeg", "wmv", "ts", "gif", "mp3", "m4a",
        "ogg", "opus", "wav", "flac", "wma", "jpg", "png", "webp",
    ];
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !PROBED.contains(&ext.as_str()) {
        // Playlists, archives: stored as they are.
        return Ok(unprobed_output());
    }
    let spec = CommandSpec {
        program: env.ffprobe.clone().into_os_string(),
        args: probe::ffprobe_output_args(path),
        cwd: dir.to_path_buf(),
        timeout: Duration::from_secs(60),
        stall_timeout: None,
        capture_stdout: true,
    };
    let out = process::run(&spec, cancel, |_| {})
        .await
        .map_err(|e| match e {
            ProcessError::Status { stderr_tail, .. } => JobError::Retry(task_error(
                ErrorCode::OutputInvalid,
                format!(
                    "a produced file could not be read back: {}",
                    redact(stderr_tail.trim(), dir)
                ),
            )),
            other => process_error(other, "ffprobe", dir),
        })?;
    Ok(output_meta(&out.stdout))
}

/// What ffprobe's JSON says of an output; fields it does not give stay `None`.
fn output_meta(ffprobe_json: &[u8]) -> OutputFile {
    let v: serde_json::Value = serde_json::from_slice(ffprobe_json).unwrap_or_default();
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let of = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind).cloned();
    let mut meta = unprobed_output();
    if let Some(video) = of("video") {
        meta.width = video["width"].as_u64().and_then(|w| u32::try_from(w).ok());
        meta.height = video["height"].as_u64().and_then(|h| u32::try_from(h).ok());
        meta.video_codec = video["codec_name"].as_str().map(str::to_string);
    }
    if let Some(audio) = of("audio") {
        meta.audio_codec = audio["codec_name"].as_str().map(str::to_string);
    }
    meta.duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0);
    meta
}

fn unprobed_output() -> OutputFile {
    OutputFile {
        name: String::new(),
        key: String::new(),
        size: 0,
        duration: None,
        width: None,
        height: None,
        video_codec: None,
        audio_codec: None,
    }
}

/// Bring the input into scratch: from storage (uploads, and URLs fetched by an earlier
/// attempt) or from the network (stored too, so a retry or a download needs no refetch).
async fn fetch_input(
    env: &JobEnv,
    storage: &Storage,
    task: &TaskRecord,
    dir: &Path,
    cancel: &CancellationToken,
    progress: &watch::Sender<Progress>,
) -> Result<(PathBuf, String), JobError> {
    let path = dir.join("input");
    if let Some(key) = &task.input_key {
        copy_stored_input(storage, key, &path, cancel).await?;
        return Ok((path, key.clone()));
    }
    let Source::Url { url } = &task.source else {
        return Err(JobError::Abort(task_error(
            ErrorCode::InputMissing,
            "the upload is missing",
        )));
    };
    let url = env.fetcher.check(url).await.map_err(fetch_error)?;
    // Stopped by `cancel` itself, never dropped half-way (see `copy_stored_input`); a
    // cancelled fetch removes its partial file.
    let fetched = env
        .fetcher
        .fetch_to_file(&url, &path, cancel, |got, total| {
            if let Some(total) = total.filter(|t| *t > 0) {
                report(
                    progress,
                    Stage::Fetching,
                    got as f64 / total as f64 * 100.0,
                    None,
                );
            }
        })
        .await
        .map_err(fetch_error)?;
    let name = crate::domain::safe_filename(fetched.filename_hint.as_deref().unwrap_or("input"));
    let key = keys::input(task.id, &name);
    storage.put_file(&key, &path).await.map_err(storage_error)?;
    Ok((path, key))
}

/// The stored input (an upload, or a URL fetched by an earlier attempt) into `path`. The
/// copy stops on `cancel` itself, and is never dropped half-way: a hard link or a write it
/// had handed to a blocking thread would still land, in a scratch folder being removed.
async fn copy_stored_input(
    storage: &Storage,
    key: &str,
    path: &Path,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    storage
        .get_to_file(key, path, cancel)
        .await
        .map_err(storage_error)?;
    if cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A cancelled copy into scratch returns only once its file operations have ended: they
    /// run on tokio's blocking threads, and one left behind (a hard link, a file created)
    /// would land in the scratch folder while it is being removed ("Directory not empty").
    /// The one blocking thread is kept busy, so the copy's operation waits in the queue
    /// while the copy is cancelled.
    #[test]
    fn a_cancelled_copy_into_scratch_leaves_no_operation_behind() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let root = tempfile::tempdir().unwrap();
            let url = format!("file://{}", root.path().join("store").display());
            let storage = Storage::from_url(&url, &Default::default()).unwrap();
            let key = "tasks/t/input/clip.mp4";
            let body = bytes::Bytes::from(vec![7u8; 4096]);
            let chunks = futures::stream::iter([Ok::<_, std::io::Error>(body)]);
            storage.put_stream(key, chunks, 1 << 20).await.unwrap();
            let scratch = root.path().join("scratch");
            std::fs::create_dir(&scratch).unwrap();

            let (open, gate) = std::sync::mpsc::channel::<()>();
            let busy = tokio::task::spawn_blocking(move || gate.recv());
            let cancel = CancellationToken::new();
            let path = scratch.join("input");
            let mut copy = std::pin::pin!(copy_stored_input(&storage, key, &path, &cancel));
            assert!(futures::poll!(copy.as_mut()).is_pending(), "queued");
            cancel.cancel();
            assert!(
                futures::poll!(copy.as_mut()).is_pending(),
                "the copy returned while its file operation was still to run"
            );
            open.send(()).unwrap();
            let copied = copy.await;
            let seen = names(&scratch);
            busy.await.unwrap().unwrap();
            // Every queued blocking operation has run once this one has (one thread, FIFO).
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            assert_eq!(
                names(&scratch),
                seen,
                "a file changed after the copy returned"
            );
            assert!(matches!(copied, Err(JobError::Cancelled)), "{copied:?}");
            std::fs::remove_dir_all(&scratch).unwrap();
        });
    }

    #[test]
    fn commands_are_shown_relative_and_quoted() {
        let scratch = Path::new("/data/scratch/0193-1");
        let args: Vec<String> = [
            "-i",
            "file:/data/scratch/0193-1/input",
            "-filter_complex",
            "[0:v]scale=640:360[v]; [v]null",
            "file:/data/scratch/0193-1/out/clip_part_001.mp4",
            "it's",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let shown = display_command(Path::new("/usr/bin/ffmpeg"), &args, scratch);
        assert_eq!(
            shown,
            "ffmpeg -i file:input -filter_complex '[0:v]scale=640:360[v]; [v]null' \
             file:out/clip_part_001.mp4 'it'\\''s'"
        );
        assert!(!shown.contains("/data/"));
    }

    #[test]
    fn progress_only_moves_forward_across_stages() {
        let (tx, rx) = watch::channel(Progress {
            stage: Stage::Fetching,
            percent: 0.0,
            eta_seconds: None,
        });
        let mut seen = vec![];
        for (stage, within) in [
            (Stage::Fetching, 0.0),
            (Stage::Fetching, 100.0),
            (Stage::Probing, 0.0),
            (Stage::Processing, 0.0),
            (Stage::Processing, 50.0),
            (Stage::Processing, 40.0), // a late, smaller report
            (Stage::Processing, 100.0),
            (Stage::Storing, 0.0),
        ] {
            report(&tx, stage, within, None);
            seen.push(rx.borrow().percent);
        }
        assert_eq!(seen, [0.0, 5.0, 5.0, 5.0, 52.0, 52.0, 99.0, 99.0]);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn run_timeout_scales_with_duration() {
        assert_eq!(run_timeout(1.0), Duration::from_secs(180));
        assert_eq!(run_timeout(600.0), Duration::from_secs(12_060));
    }
}
