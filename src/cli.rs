//! The `reelforge` command line: roles, administration, and the client commands
//! ([`crate::client`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::client::args::ClientCommand;
use crate::config::{DatabaseArgs, MailArgs, Settings, SettingsArgs, read_file_layer};
use crate::startup::{Application, Role, shutdown_signal};

#[derive(Debug, Parser)]
#[command(
    name = "reelforge",
    version,
    about = "Self-hosted video processing and conversion service",
    after_help = "Client commands exit with 0 on success, 1 when a task failed or was \
        cancelled (or the server failed or could not be reached), 2 on a usage error, 4 when \
        not logged in or forbidden."
)]
pub struct Cli {
    /// Settings file (default: ./reelforge.toml when present).
    #[arg(long, global = true, env = "REELFORGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "pretty", value_parser = ["pretty", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API and workers in one process (the embedded default).
    Serve(SettingsArgs),
    /// API only (scale-out role).
    Api(SettingsArgs),
    /// Workers only (scale-out role).
    Worker(SettingsArgs),
    /// Apply database migrations and exit.
    Migrate(SettingsArgs),
    /// Administer accounts without the HTTP API.
    User {
        #[command(subcommand)]
        action: UserAction,
        #[command(flatten)]
        settings: DatabaseArgs,
    },
    /// E-mail: check the SMTP settings.
    Mail {
        #[command(subcommand)]
        action: MailAction,
        #[command(flatten)]
        settings: MailArgs,
    },
    #[command(flatten)]
    Client(ClientCommand),
    /// Print shell completions: `reelforge completions bash > /etc/bash_completion.d/reelforge`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether this runs a server role or administers its data (not a client command).
    pub fn is_service(&self) -> bool {
        matches!(
            self,
            Command::Serve(_)
                | Command::Api(_)
                | Command::Worker(_)
                | Command::Migrate(_)
                | Command::User { .. }
                | Command::Mail { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum MailAction {
    /// Send a test e-mail to ADDRESS through the SMTP server of the settings, and wait for
    /// the server to accept it.
    Test {
        /// The recipient, `address` or `Name <address>`.
        address: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account (the password is read from REELFORGE_NEW_PASSWORD or stdin).
    Create {
        username: String,
        email: String,
        /// Make it an admin: sees every user's tasks, the workers and the queue; manages
        /// users and invites.
        #[arg(long)]
        admin: bool,
    },
    /// List accounts (id, name, e-mail, active|disabled, admin|user).
    List,
    /// Make an account an admin.
    Promote { username: String },
    /// Take the admin role from an account.
    Demote { username: String },
    /// Make an invite code for `REELFORGE_SIGNUP=invite` (printed once).
    Invite {
        /// Days the code stays valid (1 to 365).
        #[arg(long, default_value_t = crate::db::NewInvite::DEFAULT_DAYS)]
        expires_in_days: u32,
        /// Who it is for, as a reminder in the admin view.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Disable an account: its tokens stop working and it cannot log in.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
}

fn settings(args: SettingsArgs, config: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    let file = read_file_layer(config)?;
    Ok(Settings::resolve(args, file)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve(a) => run_role(settings(a, config)?, Role::Serve).await,
        Command::Api(a) => run_role(settings(a, config)?, Role::Api).await,
        Command::Worker(a) => run_role(settings(a, config)?, Role::Worker).await,
        Command::Migrate(a) => {
            let mut s = settings(a, config)?;
            s.prepare(false)?;
            crate::db::connect(&s.database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            action,
            settings: a,
        } => {
            let mut s = settings(a.into(), config)?;
            s.prepare(false)?;
            user_command(&s, action).await
        }
        Command::Mail {
            action,
            settings: a,
        } => mail_command(&settings(a.into(), config)?, action).await,
        Command::Client(c) => Ok(crate::client::commands::run(c).await?),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "reelforge", &mut std::io::stdout());
            Ok(())
        }
    }
}

async fn mail_command(s: &Settings, action: MailAction) -> anyhow::Result<()> {
    match action {
        MailAction::Test { address } => {
            let to: lettre::message::Mailbox = address.trim().parse().map_err(|e| {
                anyhow::anyhow!(
                    "{address:?} is not an e-mail address ({e}); use e.g. you@example.com"
                )
            })?;
            let Some(mailer) = s.mailer()? else {
                anyhow::bail!(
                    "SMTP is not configured: set REELFORGE_SMTP_URL (e.g. \
                     smtp://USER:PASSWORD@smtp.example.com:587) and REELFORGE_MAIL_FROM \
                     (e.g. `Reelforge <noreply@example.com>`), or --smtp-url and --mail-from"
                );
            };
            let id = crate::mail::compose::message_id_at(
                uuid::Uuid::now_v7(),
                mailer.from().email.domain(),
            );
            let message = crate::mail::test_mail(&id, to.clone(), mailer.from().clone())?;
            mailer.send(message).await.map_err(|e| {
                anyhow::anyhow!(
                    "the test e-mail to {} was not sent ({}): {}",
                    to.email,
                    if e.is_transient() {
                        "a temporary failure"
                    } else {
                        "refused"
                    },
                    e.message()
                )
            })?;
            println!(
                "sent a test e-mail to {} through {}",
                to.email,
                mailer.server()
            );
            Ok(())
        }
    }
}

async fn run_role(mut settings: Settings, role: Role) -> anyhow::Result<()> {
    settings.prepare(role != Role::Api)?;
    let summary = settings.summary();
    let app = Application::build(settings, role).await?;
    // Once started: a start-up failure stays the one line that says what is wrong.
    tracing::info!(?role, "settings: {summary}");
    match app.local_addr() {
        Some(addr) => tracing::info!(%addr, ?role, "listening on http://{addr}"),
        None => tracing::info!(
            ?role,
            "started; not listening (set REELFORGE_WORKER_LISTEN for /healthz, /readyz, /metrics)"
        ),
    }
    app.run_until(shutdown_signal()).await
}

async fn user_command(s: &Settings, action: UserAction) -> anyhow::Result<()> {
    use crate::db::NewUser;
    use crate::domain::{EmailAddress, Password, Username};
    let db = crate::db::connect(&s.database_url).await?;
    match action {
        UserAction::Create {
            username,
            email,
            admin,
        } => {
            let password = match std::env::var("REELFORGE_NEW_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let username = Username::parse(&username).map_err(anyhow::Error::msg)?;
            let email = EmailAddress::parse(&email).map_err(anyhow::Error::msg)?;
            let password = Password::parse(&password).map_err(anyhow::Error::msg)?;
            let hash = crate::auth::hash_password(password.expose())?;
            let user = db
                .create_user(NewUser {
                    username,
                    email,
                    password_hash: hash,
                    admin,
                    invite_hash: None,
                })
                .await?;
            let role = if user.admin { " as an admin" } else { "" };
            println!("created {} ({}){role}", user.username, user.id);
        }
        UserAction::List => {
            for u in db.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.id,
                    u.username,
                    u.email,
                    if u.disabled { "disabled" } else { "active" },
                    if u.admin { "admin" } else { "user" }
                );
            }
        }
        UserAction::Invite {
            expires_in_days,
            note,
        } => {
            let (code, new) = crate::db::NewInvite::generate(&note, None, Some(expires_in_days))
                .map_err(anyhow::Error::msg)?;
            let invite = db.create_invite(new).await?;
            let until = invite
                .expires_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            eprintln!("invite code (shown once), valid until {until}:");
            println!("{code}");
        }
        UserAction::Disable { username }
        | UserAction::Enable { username }
        | UserAction::Promote { username }
        | UserAction::Demote { username }
            if username.is_empty() =>
        {
            anyhow::bail!("a username is required")
        }
        UserAction::Promote { username } => {
            if !db.set_user_admin(&username, true).await? {
                anyhow::bail!("no user named {username:?}");
            }
            println!("{username} is an admin");
        }
        UserAction::Demote { username } => {
            if !db.set_user_admin(&username, false).await? {
                anyhow::bail!("no user named {username:?}");
            }
            println!("{username} is no longer an admin");
        }
        UserAction::Disable { username } | UserAction::Enable { username }
            if username.is_empty() =>
        {
            anyhow::bail!("a username is required")
        }
        UserAction::Disable { username } => {
            if !db.set_user_disabled(&username, true).await? {
                anyhow::bail!("no user named {username:?}");
            }
            println!("disabled {username}");
        }
        UserAction::Enable { username } => {
            if !db.set_user_disabled(&username, false).await? {
                anyhow::bail!("no user named {username:?}");
            }
            println!("enabled {username}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The long help of `reelforge ARGS… --help`.
    fn help(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        cmd.build();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        sub.render_long_help().to_string()
    }

    #[test]
    fn user_commands_show_only_the_settings_they_use() {
        for path in [&["user"][..], &["user", "create"], &["user", "list"]] {
            let text = help(path);
            for used in ["--data-dir", "--database-url", "--config"] {
                assert!(text.contains(used), "{path:?}: {used} missing:\n{text}");
            }
            for unused in [
                "--listen",
                "--max-upload",
                "--jwt-secret",
                "--workers",
                "--storage-url",
            ] {
                assert!(!text.contains(unused), "{path:?} shows {unused}:\n{text}");
            }
        }
        for path in [&["mail"][..], &["mail", "test"]] {
            let text = help(path);
            for used in ["--smtp-url", "--mail-from", "--smtp-ca-file", "--config"] {
                assert!(text.contains(used), "{path:?}: {used} missing:\n{text}");
            }
            for unused in ["--listen", "--database-url", "--data-dir", "--workers"] {
                assert!(!text.contains(unused), "{path:?} shows {unused}:\n{text}");
            }
        }
        // The server roles still show every setting.
        let serve = help(&["serve"]);
        for flag in [
            "--listen",
            "--max-upload",
            "--header-timeout",
            "--access-log",
            "--smtp-ca-file",
        ] {
            assert!(serve.contains(flag), "{flag}:\n{serve}");
        }
    }
}
