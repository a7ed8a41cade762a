//! The job pipeline: fetch or open the input → probe and validate → plan (pure) → run
//! ffmpeg → store and probe each output. Glue only: the decisions live in `media`, the
//! process handling in `process`, the bytes in `storage`.
//!
//! Every run works in its own scratch folder, removed whatever the outcome (`Scratch`).
//! ffmpeg only ever sees local files in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::db::ClaimedJob;
use crate::domain::{OutputFile, Profile, Source, Stage, TaskError, TaskRecord};
use crate::fetch::{FetchError, Fetcher};
use crate::media::plan::{PlanPaths, plan_idrl};
use crate::media::probe::{self, MediaInfo, ProbeLimits};
use crate::process::{self, CommandSpec, ProcessError};
use crate::queue::{Progress, WorkerContext};
use crate::storage::{Storage, StorageError, keys};

/// The service's default logo for bumpers.
pub const DEFAULT_LOGO: &[u8] = include_bytes!("../assets/logo.png");

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

fn task_error(code: &str, message: impl Into<String>) -> TaskError {
    TaskError {
        code: code.to_string(),
        message: message.into(),
    }
}

/// Settings of the pipeline.
pub struct JobEnv {
    pub fetcher: Fetcher,
    pub scratch_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub limits: ProbeLimits,
    pub stall_timeout: Duration,
}

/// A per-run folder, removed on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn create(root: &Path, job: &ClaimedJob) -> std::io::Result<Scratch> {
        let path = root.join(format!("{}-{}", job.task_id, job.run));
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
        StorageError::NotFound => JobError::Abort(task_error(
            "input_missing",
            "the task's input is no longer in storage",
        )),
        other => JobError::Retry(task_error("storage_error", other.to_string())),
    }
}

fn fetch_error(e: FetchError) -> JobError {
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
            "timeout",
            format!("{what} ran past its time limit"),
        )),
        ProcessError::Stalled(d) => JobError::Retry(task_error(
            "stalled",
            format!("{what} made no progress for {} s", d.as_secs()),
        )),
        ProcessError::NotFound(_) => JobError::Retry(task_error(
            "ffmpeg_missing",
            format!("{what} is not installed"),
        )),
        ProcessError::Status { stderr_tail, .. } => JobError::Abort(task_error(
            "processing_failed",
            format!("{what} failed: {}", redact(stderr_tail.trim(), scratch)),
        )),
        other => JobError::Retry(task_error(
            "process_error",
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

fn report(tx: &watch::Sender<Progress>, stage: Stage, percent: f64, eta: Option<f64>) {
    tx.send_if_modified(|p| {
        let percent = percent
            .clamp(0.0, 100.0)
            .max(if p.stage == stage { p.percent } else { 0.0 });
        let next = Progress {
            stage,
            percent,
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
                "invalid_media",
                "the file is not a readable audio or video file",
            )));
        }
        Err(e) => return Err(process_error(e, "ffprobe", cwd)),
    };
    probe::parse_ffprobe(&out.stdout)
        .map_err(|e| JobError::Abort(task_error(e.code(), e.to_string())))
}

/// Run one task's job to its outputs (stored under this run's keys).
#[tracing::instrument(skip_all, fields(task = %task.id, run = job.run))]
pub async fn execute(
    ctx: &WorkerContext,
    owner: &str,
    job: &ClaimedJob,
    task: &TaskRecord,
    cancel: &CancellationToken,
    progress: &watch::Sender<Progress>,
) -> Result<Vec<OutputFile>, JobError> {
    let (env, storage) = (&ctx.env, &ctx.storage);
    let scratch = Scratch::create(&env.scratch_dir, job)
        .map_err(|e| JobError::Retry(task_error("scratch_error", e.to_string())))?;
    let dir = scratch.path();

    // fetching
    report(progress, Stage::Fetching, 0.0, None);
    let (input_path, input_key) = fetch_input(env, storage, task, dir, cancel, progress).await?;
    if cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }

    // probing
    report(progress, Stage::Probing, 0.0, None);
    let info = probe_file(env, &input_path, dir, cancel).await?;
    // Recorded before validation so the owner sees what was refused.
    match ctx.db.set_input(job, owner, &info, &input_key).await {
        Ok(true) => {}
        Ok(false) => return Err(JobError::Cancelled),
        Err(e) => return Err(JobError::Retry(task_error("database_error", e.to_string()))),
    }
    probe::validate(&info, &env.limits)
        .map_err(|e| JobError::Abort(task_error(e.code(), e.to_string())))?;
    info.require_video()
        .map_err(|e| JobError::Abort(task_error(e.code(), e.to_string())))?;

    // processing
    report(progress, Stage::Processing, 0.0, None);
    let logo = dir.join("logo.png");
    match storage.get_to_file(&keys::logo(task.id), &logo).await {
        Ok(_) => {}
        Err(StorageError::NotFound) => tokio::fs::write(&logo, DEFAULT_LOGO)
            .await
            .map_err(|e| JobError::Retry(task_error("scratch_error", e.to_string())))?,
        Err(e) => return Err(storage_error(e)),
    }
    let plan = match &task.profile {
        Profile::Idrl(options) => plan_idrl(
            &info,
            options,
            &PlanPaths {
                input: input_path.clone(),
                logo,
                out_dir: dir.join("out"),
            },
            &task.source.stem(),
        )
        .map_err(|e| JobError::Abort(task_error(e.code(), e.to_string())))?,
    };
    let commands: Vec<String> = plan
        .runs
        .iter()
        .map(|r| display_command(&env.ffmpeg, &r.argv, dir))
        .collect();
    if !ctx
        .db
        .set_commands(job, owner, &commands)
        .await
        .map_err(|e| JobError::Retry(task_error("database_error", e.to_string())))?
    {
        return Err(JobError::Cancelled);
    }
    let total: f64 = plan
        .runs
        .iter()
        .map(|r| r.expected_duration)
        .sum::<f64>()
        .max(0.001);
    let mut done_before = 0.0;
    let started = std::time::Instant::now();
    for run in &plan.runs {
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
            // Processing ends at 99 %; storing finishes the bar.
            report(progress, Stage::Processing, percent.min(99.0), eta);
        })
        .await
        .map_err(|e| process_error(e, "ffmpeg", dir))?;
        done_before += run.expected_duration;
    }

    // storing
    report(progress, Stage::Storing, 99.0, None);
    let mut outputs = Vec::with_capacity(plan.runs.len());
    for run in &plan.runs {
        if cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let out_info = probe_file(env, &run.output, dir, cancel)
            .await
            .map_err(|e| match e {
                JobError::Abort(err) => JobError::Retry(task_error(
                    "output_invalid",
                    format!("a produced file could not be read back: {}", err.message),
                )),
                other => other,
            })?;
        let key = keys::output(task.id, job.run, &run.output_name);
        let size = storage
            .put_file(&key, &run.output)
            .await
            .map_err(storage_error)?;
        outputs.push(OutputFile {
            name: run.output_name.clone(),
            key,
            size,
            duration: Some(out_info.duration),
            width: out_info.video.as_ref().map(|v| v.width),
            height: out_info.video.as_ref().map(|v| v.height),
            video_codec: out_info.video.as_ref().map(|v| v.codec.clone()),
            audio_codec: out_info.audio.as_ref().map(|a| a.codec.clone()),
        });
    }
    Ok(outputs)
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
        tokio::select! {
            r = storage.get_to_file(key, &path) => { r.map_err(storage_error)?; }
            _ = cancel.cancelled() => return Err(JobError::Cancelled),
        }
        return Ok((path, key.clone()));
    }
    let Source::Url { url } = &task.source else {
        return Err(JobError::Abort(task_error(
            "input_missing",
            "the upload is missing",
        )));
    };
    let url = env.fetcher.check(url).await.map_err(fetch_error)?;
    let fetched = tokio::select! {
        r = env.fetcher.fetch_to_file(&url, &path, |got, total| {
            if let Some(total) = total.filter(|t| *t > 0) {
                report(progress, Stage::Fetching, got as f64 / total as f64 * 100.0, None);
            }
        }) => r.map_err(fetch_error)?,
        _ = cancel.cancelled() => {
            let _ = std::fs::remove_file(&path);
            return Err(JobError::Cancelled);
        }
    };
    let name =
        crate::http::tasks::safe_filename(fetched.filename_hint.as_deref().unwrap_or("input"));
    let key = keys::input(task.id, &name);
    storage.put_file(&key, &path).await.map_err(storage_error)?;
    Ok((path, key))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn run_timeout_scales_with_duration() {
        assert_eq!(run_timeout(1.0), Duration::from_secs(180));
        assert_eq!(run_timeout(600.0), Duration::from_secs(12_060));
    }
}
