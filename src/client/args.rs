//! The client commands' command line (flattened into `reelforge`'s own).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use uuid::Uuid;

/// The server flag every client command takes.
#[derive(Debug, Clone, Args)]
pub struct ServerArg {
    /// The Reelforge server, e.g. https://media.example.com (default: the one you logged in
    /// to last, else http://127.0.0.1:8080).
    #[arg(long, env = "REELFORGE_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

/// `--json`: NDJSON (one JSON object per line) on stdout instead of text.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// Print JSON (one object per line) instead of text: for scripts.
    #[arg(long)]
    pub json: bool,
}

/// A task's id.
#[derive(Debug, Clone, Args)]
pub struct TaskArg {
    /// The task's id (as `reelforge tasks` lists it).
    #[arg(value_name = "ID")]
    pub id: Uuid,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Log in to a server: the password makes an API key for this machine, kept in the
    /// config dir (mode 0600). REELFORGE_TOKEN, when set, is used instead.
    Login(LoginArgs),
    /// Forget this server's credential (and revoke the key `login` made for it).
    Logout(ServerArg),
    /// Who you are on the server, and with which credential.
    Whoami {
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Submit files (uploaded resumably) or http(s) URLs for processing, a task each.
    ///
    /// An interrupted upload (Ctrl-C, a lost connection) resumes where the server stands
    /// when the same command is run again. Exit status with --wait: 0 every task succeeded,
    /// 1 one failed or was cancelled, 2 usage error, 4 not logged in or forbidden.
    Submit(SubmitArgs),
    /// List your tasks, newest first.
    Tasks(TasksArgs),
    /// One task in detail.
    Task {
        #[command(flatten)]
        task: TaskArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Follow a task's progress live until it ends (exit 0 if it succeeded, 1 if not).
    Watch {
        #[command(flatten)]
        task: TaskArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Download a finished task's outputs (a partial download is continued).
    Download {
        #[command(flatten)]
        task: TaskArg,
        /// The folder to save into (made if missing).
        #[arg(long, short, default_value = ".", value_name = "DIR")]
        output: PathBuf,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Cancel a queued or running task.
    Cancel(TaskArg),
    /// Run a failed or cancelled task again.
    Retry(TaskArg),
    /// Delete a task and its files.
    Delete(TaskArg),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// The account's username or e-mail (asked when not given).
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read an API key (or a login token) from stdin instead of asking for a password.
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    pub with_token: bool,
    /// Read the password from stdin instead of the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Files to upload and http(s) URLs for the server to fetch.
    #[arg(required = true, value_name = "FILE|URL")]
    pub inputs: Vec<String>,
    /// The processing profile (idrl, convert, compress, thumbnail, hls, archive; default
    /// idrl).
    #[arg(long, short)]
    pub profile: Option<String>,
    /// A profile option, `-o key=value` (repeatable), checked before anything is sent.
    #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Wait for the tasks to end, showing their progress; the exit status tells how they
    /// ended.
    #[arg(long)]
    pub wait: bool,
    /// Download the outputs into DIR when the tasks succeed (implies --wait).
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
    #[command(flatten)]
    pub json: JsonArg,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only tasks with this status.
    #[arg(long, value_parser = ["queued", "running", "succeeded", "failed", "cancelled"])]
    pub status: Option<String>,
    /// How many tasks, newest first (1–1000).
    #[arg(long, short = 'n', default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[command(flatten)]
    pub json: JsonArg,
    #[command(flatten)]
    pub server: ServerArg,
}
