//! Generic async runner for external programs (ffmpeg, ffprobe, ...).
//!
//! Each child runs in its own process group; on cancel, timeout, stall, or
//! when the future is dropped, the whole group is killed with `SIGKILL`, so
//! helpers a program started die with it. stdout is parsed as ffmpeg
//! `-progress` output; stderr is kept as a bounded tail for error messages.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::domain::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Working directory of the child.
    pub cwd: PathBuf,
    /// Hard limit on the whole run.
    pub timeout: Duration,
    /// Kill the run when progress (`out_time`) has not advanced for this long.
    pub stall_timeout: Option<Duration>,
    /// Keep stdout (up to [`STDOUT_CAPTURE_BYTES`]) instead of parsing it as progress.
    pub capture_stdout: bool,
}

/// One ffmpeg `-progress` block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressUpdate {
    /// Position reached in the output.
    pub out_time: Duration,
    /// Encoding speed relative to real time (`1.5` for `speed=1.5x`).
    pub speed: Option<f64>,
    /// `progress=end`: the last block.
    pub done: bool,
}

/// A successful (exit status 0) run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// Everything the child wrote to stdout, when `capture_stdout` was set.
    pub stdout: Vec<u8>,
    /// Last lines of stderr (at most [`STDERR_TAIL_BYTES`]).
    pub stderr_tail: String,
    pub last_progress: Option<ProgressUpdate>,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("program not found: {0:?}")]
    NotFound(OsString),
    #[error("permission denied running {0:?}")]
    PermissionDenied(OsString),
    #[error("could not start {program:?}: {source}")]
    Spawn {
        program: OsString,
        #[source]
        source: io::Error,
    },
    #[error("i/o error while running the process: {0}")]
    Io(#[from] io::Error),
    #[error("cancelled")]
    Cancelled,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("no progress for {0:?}")]
    Stalled(Duration),
    #[error("exited with {}: {stderr_tail}", exit_description(*.code))]
    Status {
        /// Exit code; `None` when killed by a signal.
        code: Option<i32>,
        stderr_tail: String,
    },
}

fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("status {code}"),
        None => "a signal".to_owned(),
    }
}

impl ProcessError {
    /// Stable snake_case error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProcessError::NotFound(_) => ErrorCode::ProgramNotFound,
            ProcessError::PermissionDenied(_) => ErrorCode::ProgramNotExecutable,
            ProcessError::Spawn { .. } => ErrorCode::SpawnFailed,
            ProcessError::Io(_) => ErrorCode::ProcessIo,
            ProcessError::Cancelled => ErrorCode::Cancelled,
            ProcessError::Timeout(_) => ErrorCode::Timeout,
            ProcessError::Stalled(_) => ErrorCode::Stalled,
            ProcessError::Status { .. } => ErrorCode::ProcessFailed,
        }
    }
}

/// How many of the last stderr lines a failed run's log line carries.
const LOGGED_STDERR_LINES: usize = 12;

/// The last `n` non-empty lines of `text`, joined with ` | ` (one log line stays one line).
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// How much of stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// Most stdout kept with `capture_stdout` (ffprobe JSON is a few KiB).
pub const STDOUT_CAPTURE_BYTES: usize = 16 * 1024 * 1024;
/// Longest line kept from stdout/stderr; longer lines are cut.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// How long to wait for pipes to close once the child has exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Parses ffmpeg `-progress` output, one `key=value` line at a time.
#[derive(Debug, Clone, Default)]
pub struct ProgressParser {
    out_time_us: Option<u64>,
    speed: Option<f64>,
}

impl ProgressParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line; returns an update at the end of each block
    /// (`progress=continue` or `progress=end`).
    pub fn feed_line(&mut self, line: &str) -> Option<ProgressUpdate> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key.trim() {
            // Both are microseconds (`out_time_ms` is misnamed in ffmpeg).
            "out_time_us" | "out_time_ms" => {
                if let Ok(us) = value.parse::<i64>() {
                    self.out_time_us = Some(u64::try_from(us).unwrap_or(0));
                }
            }
            "out_time" if self.out_time_us.is_none() => {
                self.out_time_us = parse_clock_us(value);
            }
            "speed" => {
                self.speed = value
                    .strip_suffix('x')
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0);
            }
            "progress" => {
                let update = ProgressUpdate {
                    out_time: Duration::from_micros(self.out_time_us.unwrap_or(0)),
                    speed: self.speed,
                    done: value == "end",
                };
                // The next block reports its own values.
                self.out_time_us = None;
                self.speed = None;
                return Some(update);
            }
            _ => {}
        }
        None
    }
}

/// `HH:MM:SS.micro` → microseconds.
fn parse_clock_us(value: &str) -> Option<u64> {
    let mut parts = value.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !s.is_finite() || s < 0.0 {
        return None;
    }
    let whole = h.checked_mul(3600)?.checked_add(m.checked_mul(60)?)?;
    whole
        .checked_mul(1_000_000)?
        .checked_add((s * 1e6).round() as u64)
}

/// Splits a byte stream into lines, cutting overlong lines.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
    /// Dropping the rest of an overlong line.
    skipping: bool,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(String)) {
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping || !self.pending.is_empty() {
                    emit(self.take());
                }
                self.skipping = false;
            } else if self.skipping {
                continue;
            } else if self.pending.len() >= MAX_LINE_BYTES {
                emit(self.take());
                self.skipping = true;
            } else {
                self.pending.push(b);
            }
        }
    }

    fn finish(&mut self, emit: impl FnOnce(String)) {
        if !self.pending.is_empty() {
            emit(self.take());
        }
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.pending)
            .trim_end_matches('\r')
            .to_owned();
        self.pending.clear();
        line
    }
}

/// The last lines of a stream, at most [`STDERR_TAIL_BYTES`].
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > STDERR_TAIL_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len() + 1,
                None => break,
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::with_capacity(self.bytes);
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(line);
        }
        out
    }
}

/// Kills the child's process group when dropped, unless disarmed.
struct GroupGuard {
    pgid: Option<libc::pid_t>,
}

impl GroupGuard {
    /// Guards the group of `child`: with process_group(0) the child's pid is its
    /// process group id.
    fn for_child(child: &Child) -> Self {
        GroupGuard {
            pgid: child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()),
        }
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            kill_group(pgid);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_group(pgid: libc::pid_t) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety requirements; a negative pid
    // addresses the process group we created for the child (ESRCH when it
    // is already gone is fine).
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

enum Stop {
    Exited(io::Result<ExitStatus>),
    Cancelled,
    Timeout,
    Stalled(Duration),
}

/// Output pipes being read.
struct Pipes<O, E> {
    stdout: Option<O>,
    stderr: Option<E>,
    out_lines: LineSplitter,
    err_lines: LineSplitter,
    parser: ProgressParser,
    tail: Tail,
    last_progress: Option<ProgressUpdate>,
    captured: Option<Vec<u8>>,
}

impl Pipes<ChildStdout, ChildStderr> {
    /// Takes the child's output pipes; with `capture_stdout` stdout is kept, not parsed.
    fn new(child: &mut Child, capture_stdout: bool) -> Self {
        Pipes {
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            out_lines: LineSplitter::default(),
            err_lines: LineSplitter::default(),
            parser: ProgressParser::new(),
            tail: Tail::default(),
            last_progress: None,
            captured: capture_stdout.then(Vec::new),
        }
    }
}

impl<O: AsyncRead + Unpin, E: AsyncRead + Unpin> Pipes<O, E> {
    /// Handles one chunk of stdout; returns whether progress advanced.
    fn on_stdout(&mut self, chunk: &[u8], on_progress: &mut impl FnMut(ProgressUpdate)) -> bool {
        if let Some(buf) = &mut self.captured {
            let room = STDOUT_CAPTURE_BYTES.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            return false;
        }
        let mut advanced = false;
        let parser = &mut self.parser;
        let last = &mut self.last_progress;
        self.out_lines.push(chunk, |line| {
            if let Some(update) = parser.feed_line(&line) {
                let previous = last.map(|p| p.out_time);
                if update.done || previous.is_none_or(|p| update.out_time > p) {
                    advanced = true;
                }
                *last = Some(update);
                on_progress(update);
            }
        });
        advanced
    }

    fn on_stderr(&mut self, chunk: &[u8]) {
        let tail = &mut self.tail;
        self.err_lines.push(chunk, |line| tail.push(line));
    }

    fn finish(&mut self) {
        let tail = &mut self.tail;
        self.err_lines.finish(|line| tail.push(line));
    }

    /// Reads both pipes to EOF (bounded by `deadline`).
    async fn drain(&mut self, deadline: Instant, on_progress: &mut impl FnMut(ProgressUpdate)) {
        let mut out_buf = [0u8; 4096];
        let mut err_buf = [0u8; 4096];
        while self.stdout.is_some() || self.stderr.is_some() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                read = read_opt(&mut self.stdout, &mut out_buf) => match read {
                    Ok(n) if n > 0 => { self.on_stdout(&out_buf[..n], on_progress); }
                    _ => self.stdout = None,
                },
                read = read_opt(&mut self.stderr, &mut err_buf) => match read {
                    Ok(n) if n > 0 => self.on_stderr(&err_buf[..n]),
                    _ => self.stderr = None,
                },
            }
        }
        self.finish();
    }
}

/// Reads from the pipe if it is still open; never resolves otherwise.
async fn read_opt<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Kills the group while the child is still unreaped (so the group id cannot
/// have been reused), then reaps the child.
async fn kill_and_reap(
    mut guard: GroupGuard,
    mut child: Child,
    error: ProcessError,
    spec: &CommandSpec,
) -> ProcessError {
    guard.kill();
    let _ = child.wait().await;
    guard.disarm();
    tracing::debug!(program = ?spec.program, %error, "process killed");
    error
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn spawn(spec: &CommandSpec) -> Result<Child, ProcessError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        // Children get a minimal environment: never the service's secrets or credentials
        // (JWT key, AWS_*/GOOGLE_*), nor loader paths of the parent.
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("LC_ALL", "C");
    // If this process dies without running destructors (SIGKILL, abort), the kernel kills
    // the child too, so a crashed worker never leaves an ffmpeg running on its own.
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ProcessError::NotFound(spec.program.clone()),
        io::ErrorKind::PermissionDenied => ProcessError::PermissionDenied(spec.program.clone()),
        _ => ProcessError::Spawn {
            program: spec.program.clone(),
            source: e,
        },
    })
}

/// Runs `spec` to completion, reporting ffmpeg `-progress` blocks from its
/// stdout to `on_progress`.
///
/// On `cancel`, on `spec.timeout`, or when progress has not advanced for
/// `spec.stall_timeout`, the child's whole process group is killed with
/// SIGKILL and reaped before returning. Dropping the returned future kills
/// the group too. Exit status 0 → `Ok`; anything else →
/// [`ProcessError::Status`] with the tail of stderr.
pub async fn run<F: FnMut(ProgressUpdate)>(
    spec: &CommandSpec,
    cancel: &CancellationToken,
    on_progress: F,
) -> Result<RunOutput, ProcessError> {
    let result = run_inner(spec, cancel, on_progress).await;
    let program = std::path::Path::new(&spec.program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    };
    metrics::counter!(crate::telemetry::PROCESS_RUNS, "program" => program, "outcome" => outcome)
        .increment(1);
    result
}

async fn run_inner<F: FnMut(ProgressUpdate)>(
    spec: &CommandSpec,
    cancel: &CancellationToken,
    mut on_progress: F,
) -> Result<RunOutput, ProcessError> {
    if cancel.is_cancelled() {
        return Err(ProcessError::Cancelled);
    }
    let started = Instant::now();
    let mut child = spawn(spec)?;
    let mut guard = GroupGuard::for_child(&child);
    let mut pipes = Pipes::new(&mut child, spec.capture_stdout);
    tracing::debug!(program = ?spec.program, pid = ?guard.pgid, "process started");

    let stop = wait_for_stop(
        spec,
        cancel,
        started,
        &mut child,
        &mut pipes,
        &mut on_progress,
    )
    .await;
    match stop {
        Stop::Exited(status) => {
            finish_exited(
                spec,
                status,
                started,
                &mut guard,
                &mut pipes,
                &mut on_progress,
            )
            .await
        }
        Stop::Cancelled => Err(kill_and_reap(guard, child, ProcessError::Cancelled, spec).await),
        Stop::Timeout => {
            Err(kill_and_reap(guard, child, ProcessError::Timeout(spec.timeout), spec).await)
        }
        Stop::Stalled(after) => {
            Err(kill_and_reap(guard, child, ProcessError::Stalled(after), spec).await)
        }
    }
}

/// Reads both pipes until the child exits, `cancel` fires, the run passes `spec.timeout`,
/// or progress has not advanced for `spec.stall_timeout`. Cancellation wins over the
/// deadlines, and those over output and exit, when several are ready at once.
async fn wait_for_stop<F: FnMut(ProgressUpdate)>(
    spec: &CommandSpec,
    cancel: &CancellationToken,
    started: Instant,
    child: &mut Child,
    pipes: &mut Pipes<ChildStdout, ChildStderr>,
    on_progress: &mut F,
) -> Stop {
    let deadline = started.checked_add(spec.timeout);
    let mut last_advance = started;
    let mut out_buf = [0u8; 4096];
    let mut err_buf = [0u8; 4096];

    loop {
        let stall_deadline = spec.stall_timeout.and_then(|s| last_advance.checked_add(s));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break Stop::Cancelled,
            _ = sleep_until_opt(deadline) => break Stop::Timeout,
            _ = sleep_until_opt(stall_deadline) => {
                break Stop::Stalled(spec.stall_timeout.unwrap_or_default())
            }
            read = read_opt(&mut pipes.stdout, &mut out_buf) => match read {
                Ok(n) if n > 0 => {
                    if pipes.on_stdout(&out_buf[..n], on_progress) {
                        last_advance = Instant::now();
                    }
                }
                _ => pipes.stdout = None,
            },
            read = read_opt(&mut pipes.stderr, &mut err_buf) => match read {
                Ok(n) if n > 0 => pipes.on_stderr(&err_buf[..n]),
                _ => pipes.stderr = None,
            },
            status = child.wait() => break Stop::Exited(status),
        }
    }
}

/// After the child has exited: removes what is left of its group, reads the pipes to their
/// end, and turns the exit status into the run's result.
async fn finish_exited<F: FnMut(ProgressUpdate)>(
    spec: &CommandSpec,
    status: io::Result<ExitStatus>,
    started: Instant,
    guard: &mut GroupGuard,
    pipes: &mut Pipes<ChildStdout, ChildStderr>,
    on_progress: &mut F,
) -> Result<RunOutput, ProcessError> {
    // Leftover members of the group (e.g. a helper holding our pipes
    // open) go too. While any member lives, its group id cannot be
    // reused; with none left, kill() just fails with ESRCH.
    guard.kill();
    guard.disarm();
    pipes
        .drain(Instant::now() + DRAIN_TIMEOUT, on_progress)
        .await;
    let status = status?;
    let elapsed = started.elapsed();
    tracing::debug!(program = ?spec.program, ?status, ?elapsed, "process exited");
    if status.success() {
        return Ok(RunOutput {
            stdout: pipes.captured.take().unwrap_or_default(),
            stderr_tail: pipes.tail.text(),
            last_progress: pipes.last_progress,
            elapsed,
        });
    }
    let stderr_tail = pipes.tail.text();
    // The user sees a short message in the task; the operator needs the cause.
    tracing::warn!(
        program = %Path::new(&spec.program).display(),
        status = %exit_description(status.code()),
        stderr = %last_lines(&stderr_tail, LOGGED_STDERR_LINES),
        "process failed"
    );
    Err(ProcessError::Status {
        code: status.code(),
        stderr_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `ffmpeg -progress pipe:1` output (ffmpeg 5.1), two blocks.
    const CAPTURED: &str = "frame=95\nfps=0.00\nstream_0_0_q=28.0\nbitrate=N/A\n\
        total_size=48\nout_time_us=3812200\nout_time_ms=3812200\nout_time=00:00:03.812200\n\
        dup_frames=0\ndrop_frames=0\nspeed=7.62x\nprogress=continue\n\
        frame=168\nfps=0.00\nstream_0_0_q=-1.0\nbitrate= 282.5kbits/s\ntotal_size=247876\n\
        out_time_us=7018667\nout_time_ms=7018667\nout_time=00:00:07.018667\ndup_frames=0\n\
        drop_frames=0\nspeed=27.1x\nprogress=end\n";

    #[test]
    fn parses_captured_progress() {
        let mut parser = ProgressParser::new();
        let updates: Vec<ProgressUpdate> = CAPTURED
            .lines()
            .filter_map(|l| parser.feed_line(l))
            .collect();
        assert_eq!(
            updates,
            [
                ProgressUpdate {
                    out_time: Duration::from_micros(3_812_200),
                    speed: Some(7.62),
                    done: false
                },
                ProgressUpdate {
                    out_time: Duration::from_micros(7_018_667),
                    speed: Some(27.1),
                    done: true
                },
            ]
        );
    }

    #[test]
    fn progress_edge_cases() {
        let mut p = ProgressParser::new();
        // Start of a run: N/A values, negative times.
        for line in [
            "out_time_us=N/A",
            "out_time_ms=-9223372036854775807",
            "speed=N/A",
        ] {
            assert_eq!(p.feed_line(line), None);
        }
        let u = p.feed_line("progress=continue").unwrap();
        assert_eq!((u.out_time, u.speed, u.done), (Duration::ZERO, None, false));
        // out_time_ms alone is microseconds too.
        p.feed_line("out_time_ms=1500000");
        p.feed_line("speed=   0x");
        let u = p.feed_line("progress=continue").unwrap();
        assert_eq!(
            (u.out_time, u.speed),
            (Duration::from_millis(1500), Some(0.0))
        );
        // Clock fallback, CRLF, junk.
        assert_eq!(p.feed_line("garbage without equals"), None);
        p.feed_line("out_time=01:02:03.500000\r");
        let u = p.feed_line("progress=end\r").unwrap();
        assert_eq!(u.out_time, Duration::from_millis(3_723_500));
        assert!(u.done);
    }

    #[test]
    fn splitter_and_tail_are_bounded() {
        let mut s = LineSplitter::default();
        let mut lines = Vec::new();
        s.push(b"ab", |l| lines.push(l));
        s.push(b"c\nde\r\n", |l| lines.push(l));
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        s.push(&long, |l| lines.push(l));
        s.push(b"\nlast", |l| lines.push(l));
        s.finish(|l| lines.push(l));
        assert_eq!(lines.len(), 4);
        assert_eq!((lines[0].as_str(), lines[1].as_str()), ("abc", "de"));
        assert_eq!(lines[2].len(), MAX_LINE_BYTES);
        assert_eq!(lines[3], "last");

        let mut tail = Tail::default();
        for i in 0..5000 {
            tail.push(format!("line {i}"));
        }
        let text = tail.text();
        assert!(text.len() <= STDERR_TAIL_BYTES);
        assert!(text.ends_with("line 4999"));
        assert!(text.starts_with("line "));
    }
}
