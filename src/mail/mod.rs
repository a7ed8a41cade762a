//! E-mail: the SMTP connection ([`Mailer`]) and the messages ([`compose`]).
//!
//! `smtp_url` (the parsed `REELFORGE_SMTP_URL`) and `compose` are pure and depend on
//! nothing of the service; `config` uses the former. [`Mailer`] is built from the resolved
//! `Settings` once per process and shared: it keeps a pool of SMTP connections. Callers
//! count deliveries and decide about retries ([`SendError`] says which kind of failure it
//! was); this module records no metric.

pub mod compose;
pub mod smtp_url;

#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Message, Tokio1Executor};

pub use compose::{
    MailOutput, TaskMail, TaskMailKind, endpoint_disabled_mail, message_id, password_reset_mail,
    task_mail, test_mail,
};
pub use smtp_url::{SmtpSecurity, SmtpUrl};

/// How long the SMTP server may take to accept a connection or answer a command.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends messages through the SMTP server of the settings.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: SmtpUrl,
}

/// Why a message was not sent, as a sentence for the log and the task's notification list
/// (never a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: a 4xx reply, or the server could not be reached, the TLS
    /// handshake failed, or it did not answer in time.
    #[error("{0}")]
    Transient(String),
    /// Sending the same message again gets the same answer: a 5xx reply (unknown
    /// recipient, refused sender, wrong password), or a message or server the client cannot
    /// work with.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient(m) | SendError::Permanent(m) => m,
        }
    }
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// A mailer for the settings `REELFORGE_SMTP_URL` (`server`), `REELFORGE_MAIL_FROM`
    /// and `REELFORGE_SMTP_CA_FILE` (`Settings::mailer` passes them); `None` without a
    /// server. Reads the CA file; connects to nothing yet. Build it, and drop it, inside the
    /// tokio runtime: its connection pool runs a task there.
    pub fn configured(
        server: Option<&SmtpUrl>,
        from: Option<&Mailbox>,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Option<Mailer>> {
        let Some(server) = server.cloned() else {
            return Ok(None);
        };
        // `Settings::resolve` refuses an SMTP URL without a sender.
        let from = from.cloned().context(
            "REELFORGE_MAIL_FROM: not set; set it to the sender of notification e-mails",
        )?;
        let extra_roots = ca_file.map(read_certificates).transpose()?;
        Mailer::new(server, from, extra_roots).map(Some)
    }

    /// A mailer for `server`, sending as `from`, trusting the system's root certificates
    /// and `extra_roots`.
    fn new(
        server: SmtpUrl,
        from: Mailbox,
        extra_roots: Option<Certificate>,
    ) -> anyhow::Result<Mailer> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(4));
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut params = TlsParameters::builder(server.host.clone());
            if let Some(roots) = &extra_roots {
                params = params.add_root_certificate(roots.clone());
            }
            params
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("REELFORGE_SMTP_CA_FILE: {e}"))
        };
        builder = builder.tls(match server.security {
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls()?),
            SmtpSecurity::Plain => Tls::None,
        });
        if let Some(credentials) = server.credentials.clone() {
            builder = builder.credentials(credentials);
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            server,
        })
    }

    /// The sender of every message (`REELFORGE_MAIL_FROM`).
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The server messages go to (its `Display` is `HOST:PORT (security)`, no password).
    pub fn server(&self) -> &SmtpUrl {
        &self.server
    }

    /// Hand `message` to the SMTP server (envelope from the message's `From` and `To`).
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(&e, &self.server)),
        }
    }
}

/// Every certificate of the PEM file at `path`, as the extra roots to trust.
fn read_certificates(path: &std::path::Path) -> anyhow::Result<Certificate> {
    let pem = std::fs::read(path)
        .with_context(|| format!("REELFORGE_SMTP_CA_FILE: {}", path.display()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        anyhow::bail!(
            "REELFORGE_SMTP_CA_FILE: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Certificate::from_pem(&pem).map_err(|e| {
        anyhow::anyhow!(
            "REELFORGE_SMTP_CA_FILE: {}: not PEM certificates ({e})",
            path.display()
        )
    })
}

/// A lettre error as a [`SendError`] sentence naming the server. lettre never sees the URL
/// and only sends the password inside `AUTH`, so none of its texts holds it.
fn classify(e: &lettre::transport::smtp::Error, server: &SmtpUrl) -> SendError {
    let at = format!("{}:{}", bracketed(&server.host), server.port);
    // lettre nests its errors ("Connection error: …"): the innermost says what happened.
    let source = innermost(e);
    let detail = if source.is_empty() {
        String::new()
    } else {
        format!(": {source}")
    };
    if let Some(code) = e.status() {
        let reply = format!("{code} {}", source.trim());
        return if e.is_permanent() {
            SendError::Permanent(format!("the mail server {at} refused: {}", reply.trim()))
        } else {
            SendError::Transient(format!(
                "the mail server {at} answered with a temporary failure: {}",
                reply.trim()
            ))
        };
    }
    if e.is_timeout() {
        return SendError::Transient(format!(
            "the mail server {at} did not answer within {} s",
            SMTP_TIMEOUT.as_secs()
        ));
    }
    if e.is_tls() || is_tls_failure(e) {
        return SendError::Transient(format!(
            "the TLS handshake with the mail server {at} failed{detail}"
        ));
    }
    if e.is_client() {
        // E.g. the server offers no STARTTLS, or no authentication mechanism we speak.
        return SendError::Permanent(format!(
            "the mail server {at} cannot take this message{detail}"
        ));
    }
    if e.is_response() {
        return SendError::Transient(format!(
            "the mail server {at} sent an answer that is not SMTP{detail}"
        ));
    }
    if e.is_transport_shutdown() {
        return SendError::Transient("the mail connection pool was shut down".into());
    }
    SendError::Transient(format!(
        "the connection to the mail server {at} failed{detail}"
    ))
}

/// The message of the last error in `e`'s source chain (empty when `e` has no source: its
/// own text is lettre's kind, which the caller words itself).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e.source();
    let mut text = String::new();
    while let Some(err) = current {
        text = err.to_string();
        current = err.source();
    }
    text
}

/// Whether a rustls error (a certificate refused, a failed handshake) is in `e`'s chain,
/// as itself or inside an I/O error (tokio-rustls wraps it so).
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<rustls::Error>()
            || err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        current = err.source();
    }
    false
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
