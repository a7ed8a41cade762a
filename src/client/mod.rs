//! The client side of the binary: `reelforge login`, `submit`, `tasks`, `download`… talking
//! to a running server over its HTTP API, as any other client would (no database, no
//! storage). One module per concern:
//!
//! - [`args`]: the commands and flags (clap), flattened into [`crate::cli::Command`];
//! - [`commands`]: what each command does; [`account`]: login, logout, whoami;
//! - [`api`]: the HTTP calls, and the API's errors turned into [`ClientError`]s;
//! - [`credentials`]: the server and credential kept in the user's config dir;
//! - [`options`]: `-o key=value` read against the profiles' schemas and validated before
//!   anything is sent;
//! - [`upload`]: files through tus, resumed after an interruption;
//! - [`watch`]: a task's live progress (Server-Sent Events);
//! - [`download`]: outputs, resumed with `Range`;
//! - [`report`]: what the user sees: bars on a terminal, plain lines when piped, NDJSON
//!   with `--json`; [`render`]: tables and task details.

pub mod account;
pub mod api;
pub mod args;
pub mod commands;
pub mod credentials;
pub mod download;
pub mod options;
pub mod render;
pub mod report;
pub mod upload;
pub mod watch;

/// How a client command ends, as its exit code (documented in `reelforge --help` and
/// docs/cli.md): scripts branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A task failed or was cancelled, the server failed, or it could not be reached.
    Failed = 1,
    /// The command line or an input is wrong (the API's 4xx validation errors too).
    Usage = 2,
    /// Not logged in, a refused credential, or a forbidden action.
    Auth = 4,
}

/// A client command's failure: one message that says what to do next, and its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    pub exit: Exit,
    pub message: String,
}

impl ClientError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        ClientError {
            exit,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A local file that could not be read or written, as a failure that names it.
pub fn io_error(what: &str, path: &std::path::Path, e: std::io::Error) -> ClientError {
    ClientError::failed(format!("could not {what} {}: {e}", path.display()))
}

/// Why one upload or download request stopped short.
pub enum Interrupted {
    /// Worth another try after a pause (a dropped connection, a busy upload, a 5xx).
    Retry(String),
    Fatal(ClientError),
}

/// Attempts in a row that gained no byte, and the pause before the next one: 1 s, 2 s,
/// 4 s… (at most 16 s), giving up after [`Stalls::LIMIT`].
#[derive(Default)]
pub struct Stalls(u32);

impl Stalls {
    pub const LIMIT: u32 = 5;

    /// A request that moved the transfer from `before` to `after`; `false` once too many
    /// in a row moved nothing.
    pub fn moved(&mut self, before: u64, after: u64) -> bool {
        self.0 = if after > before { 0 } else { self.0 + 1 };
        self.0 <= Self::LIMIT
    }

    /// A request that failed: the pause before trying again, or `None` to give up.
    pub fn failed(&mut self) -> Option<std::time::Duration> {
        self.0 += 1;
        (self.0 <= Self::LIMIT).then(|| std::time::Duration::from_secs(1 << (self.0 - 1).min(4)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Stalls;

    #[test]
    fn stalls_back_off_and_give_up_but_progress_starts_over() {
        let mut s = Stalls::default();
        let pauses: Vec<_> = std::iter::from_fn(|| s.failed()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16].map(Duration::from_secs));
        let mut s = Stalls::default();
        for _ in 0..4 {
            s.failed();
        }
        assert!(s.moved(10, 20), "a byte gained starts the count again");
        assert_eq!(s.failed(), Some(Duration::from_secs(1)));
        let mut s = Stalls::default();
        assert!((0..Stalls::LIMIT).all(|_| s.moved(10, 10)));
        assert!(!s.moved(10, 10), "too many requests that moved nothing");
    }
}
