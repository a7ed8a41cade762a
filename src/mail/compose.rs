//! The messages Reelforge sends, as pure functions from what they say to a
//! `lettre::Message`: `multipart/alternative` with a text and an HTML part, `From`, `To`,
//! `Subject`, `Date`, the `Message-ID` the caller chose (so a redelivery carries the same
//! one) and `Auto-Submitted: auto-generated` (RFC 3834: no vacation replies).
//!
//! Every text that comes from a user (file names, user names, error messages, URLs) is
//! HTML-escaped in the HTML part. The HTML has no remote image, no script and no style
//! sheet: inline styles only.

use std::fmt::Write as _;

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use url::Url;

/// What can go wrong building a message (lettre refuses it, e.g. without a recipient).
pub type ComposeError = lettre::error::Error;

/// A task reached a final state: the e-mail its owner gets.
#[derive(Debug, Clone)]
pub struct TaskMail {
    /// `<id@host>`: see [`message_id`].
    pub message_id: String,
    pub to: Mailbox,
    pub from: Mailbox,
    pub username: String,
    pub event: TaskMailKind,
    /// The input's file name (or the last part of its URL).
    pub input_name: String,
    /// The profile's name, e.g. `idrl`.
    pub profile: String,
    pub outputs: Vec<MailOutput>,
    /// The task's page.
    pub task_url: Url,
    /// On failure: what went wrong, in words.
    pub error: Option<String>,
    /// One-click unsubscribe (RFC 8058): a `POST` there turns these e-mails off.
    pub unsubscribe_url: Url,
}

/// Which final state the task reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskMailKind {
    Succeeded,
    Failed,
    Cancelled,
}

/// One output of the task, as the e-mail lists it.
#[derive(Debug, Clone)]
pub struct MailOutput {
    pub name: String,
    pub size_bytes: u64,
    pub duration_seconds: Option<f64>,
    pub download_url: Url,
}

/// `<{id}@{host}>` with the host of `public_url` (`reelforge.invalid` if it has none): the
/// `Message-ID` of a message about `id`, the same at every delivery.
pub fn message_id(id: impl std::fmt::Display, public_url: &Url) -> String {
    message_id_at(id, public_url.host_str().unwrap_or("reelforge.invalid"))
}

/// `<{id}@{domain}>`.
pub fn message_id_at(id: impl std::fmt::Display, domain: &str) -> String {
    format!("<{id}@{domain}>")
}

/// `List-Unsubscribe: <https://…>` (RFC 2369), the URL the one-click `POST` goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUnsubscribe(pub Url);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let inner = s
            .trim()
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .ok_or("List-Unsubscribe is not <URL>")?;
        Ok(ListUnsubscribe(Url::parse(inner)?))
    }

    fn display(&self) -> HeaderValue {
        // A serialized `Url` is ASCII with no space, `<` or `>`: nothing to encode.
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        if s.trim() == "List-Unsubscribe=One-Click" {
            Ok(ListUnsubscribePost)
        } else {
            Err("List-Unsubscribe-Post is not List-Unsubscribe=One-Click".into())
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".into())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): a machine wrote this, do not answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

/// "Your file is ready" / "Processing failed" / "Processing cancelled", with its
/// one-click unsubscribe headers.
pub fn task_mail(mail: &TaskMail) -> Result<Message, ComposeError> {
    let content = task_content(mail);
    envelope(
        &mail.message_id,
        mail.from.clone(),
        mail.to.clone(),
        &content.subject,
    )
    .header(ListUnsubscribe(mail.unsubscribe_url.clone()))
    .header(ListUnsubscribePost)
    .multipart(MultiPart::alternative_plain_html(
        content.text,
        content.html,
    ))
}

/// A link to choose a new password, valid for `valid_minutes`.
pub fn password_reset_mail(
    message_id: &str,
    to: Mailbox,
    from: Mailbox,
    username: &str,
    reset_url: Url,
    valid_minutes: u32,
) -> Result<Message, ComposeError> {
    let content = password_reset_content(username, &reset_url, valid_minutes);
    envelope(message_id, from, to, &content.subject).multipart(MultiPart::alternative_plain_html(
        content.text,
        content.html,
    ))
}

/// A webhook endpoint of the user was disabled (it kept failing, or answered `410 Gone`).
pub fn endpoint_disabled_mail(
    message_id: &str,
    to: Mailbox,
    from: Mailbox,
    username: &str,
    endpoint_url: &str,
    reason: &str,
    settings_url: Url,
) -> Result<Message, ComposeError> {
    let content = endpoint_disabled_content(username, endpoint_url, reason, &settings_url);
    envelope(message_id, from, to, &content.subject).multipart(MultiPart::alternative_plain_html(
        content.text,
        content.html,
    ))
}

/// What `reelforge mail test ADDRESS` sends: proof that the settings work.
pub fn test_mail(message_id: &str, to: Mailbox, from: Mailbox) -> Result<Message, ComposeError> {
    let content = test_content(&from);
    envelope(message_id, from, to, &content.subject).multipart(MultiPart::alternative_plain_html(
        content.text,
        content.html,
    ))
}

/// The headers every message has.
fn envelope(
    message_id: &str,
    from: Mailbox,
    to: Mailbox,
    subject: &str,
) -> lettre::message::MessageBuilder {
    Message::builder()
        .from(from)
        .to(to)
        .subject(one_line(subject))
        .date_now()
        .message_id(Some(message_id.to_string()))
        .header(AutoSubmitted)
}

/// What a message says, before it becomes MIME.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub(crate) fn task_content(mail: &TaskMail) -> Content {
    let name = one_line(&mail.input_name);
    let subject = match mail.event {
        TaskMailKind::Succeeded => format!("Your file is ready: {name}"),
        TaskMailKind::Failed => format!("Processing failed: {name}"),
        TaskMailKind::Cancelled => format!("Processing cancelled: {name}"),
    };
    // The one sentence that says what happened, with the input and the profile filled in.
    let said = |input: &str, profile: &str| match mail.event {
        TaskMailKind::Succeeded => {
            format!("{input} has been processed with the profile {profile}.")
        }
        TaskMailKind::Failed => {
            format!("{input} could not be processed with the profile {profile}.")
        }
        TaskMailKind::Cancelled => {
            format!("Processing {input} with the profile {profile} was cancelled.")
        }
    };
    let mut text = format!(
        "Hello {},\n\n{}\n",
        mail.username,
        said(&mail.input_name, &mail.profile)
    );
    let mut html = format!(
        "<p>Hello {},</p>\n<p>{}</p>\n",
        escape_html(&mail.username),
        said(
            &format!("<strong>{}</strong>", escape_html(&mail.input_name)),
            &format!("<strong>{}</strong>", escape_html(&mail.profile)),
        )
    );
    if mail.event == TaskMailKind::Failed {
        let error = mail
            .error
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or("no reason was recorded");
        let _ = write!(text, "\nWhat went wrong: {error}\n");
        let _ = writeln!(
            html,
            "<p>What went wrong: {}</p>",
            escape_html(error).replace('\n', "<br>\n")
        );
    }
    if !mail.outputs.is_empty() {
        let (files_text, files_html) = outputs(&mail.outputs);
        text.push_str(&files_text);
        html.push_str(&files_html);
    }
    let _ = write!(text, "\nThe task: {}\n", mail.task_url);
    let _ = writeln!(
        html,
        "<p><a href=\"{}\">Open the task</a></p>",
        escape_html(mail.task_url.as_str())
    );
    let footer_text = format!(
        "\n-- \nYou get this e-mail because e-mail notifications are on for your Reelforge \
         account ({}). To turn them off, open this link: {}\n",
        mail.username, mail.unsubscribe_url
    );
    let footer_html = format!(
        "<hr>\n<p style=\"font-size: small; color: #555;\">You get this e-mail because e-mail \
         notifications are on for your Reelforge account ({}). \
         <a href=\"{}\">Turn these e-mails off</a>.</p>\n",
        escape_html(&mail.username),
        escape_html(mail.unsubscribe_url.as_str())
    );
    text.push_str(&footer_text);
    html.push_str(&footer_html);
    Content {
        html: page(&subject, &html),
        subject,
        text,
    }
}

/// The list of outputs, as text and as HTML.
fn outputs(outputs: &[MailOutput]) -> (String, String) {
    let mut text = format!(
        "\n{}:\n",
        if outputs.len() == 1 {
            "The result"
        } else {
            "The results"
        }
    );
    let mut html = String::from("<ul>\n");
    for o in outputs {
        let mut facts = vec![human_size(o.size_bytes)];
        if let Some(d) = o.duration_seconds.and_then(human_duration) {
            facts.push(d);
        }
        let facts = facts.join(", ");
        let _ = write!(
            text,
            "\n- {} ({facts})\n  Download: {}\n",
            o.name, o.download_url
        );
        let _ = writeln!(
            html,
            "<li><a href=\"{}\">{}</a> ({facts})</li>",
            escape_html(o.download_url.as_str()),
            escape_html(&o.name)
        );
    }
    html.push_str("</ul>\n");
    (text, html)
}

pub(crate) fn password_reset_content(username: &str, reset_url: &Url, minutes: u32) -> Content {
    let subject = "Reset your Reelforge password".to_string();
    let text = format!(
        "Hello {username},\n\nSomeone asked to reset the password of your Reelforge account. \
         To choose a new password, open this link within {minutes} minutes:\n\n{reset_url}\n\n\
         The link works once. If you did not ask for this, ignore this e-mail: your password \
         stays as it is.\n"
    );
    let html = format!(
        "<p>Hello {},</p>\n<p>Someone asked to reset the password of your Reelforge account. \
         To choose a new password, open this link within {minutes} minutes:</p>\n\
         <p><a href=\"{}\">Choose a new password</a></p>\n\
         <p>The link works once. If you did not ask for this, ignore this e-mail: your \
         password stays as it is.</p>\n",
        escape_html(username),
        escape_html(reset_url.as_str())
    );
    Content {
        html: page(&subject, &html),
        subject,
        text,
    }
}

pub(crate) fn endpoint_disabled_content(
    username: &str,
    endpoint_url: &str,
    reason: &str,
    settings_url: &Url,
) -> Content {
    let subject = "A webhook endpoint was disabled".to_string();
    let text = format!(
        "Hello {username},\n\nReelforge stopped sending events to your webhook endpoint\n\n\
         {endpoint_url}\n\nbecause {reason}.\n\nNo event is sent to it until you enable it \
         again: {settings_url}\n"
    );
    let html = format!(
        "<p>Hello {},</p>\n<p>Reelforge stopped sending events to your webhook endpoint \
         <code>{}</code> because {}.</p>\n<p>No event is sent to it until you \
         <a href=\"{}\">enable it again</a>.</p>\n",
        escape_html(username),
        escape_html(endpoint_url),
        escape_html(reason),
        escape_html(settings_url.as_str())
    );
    Content {
        html: page(&subject, &html),
        subject,
        text,
    }
}

pub(crate) fn test_content(from: &Mailbox) -> Content {
    let subject = "Reelforge test e-mail".to_string();
    let text = format!(
        "This is a test e-mail from Reelforge (reelforge mail test).\n\nIt arrived, so the \
         SMTP settings work: notifications will be sent from {from}.\n"
    );
    let html = format!(
        "<p>This is a test e-mail from Reelforge (<code>reelforge mail test</code>).</p>\n\
         <p>It arrived, so the SMTP settings work: notifications will be sent from {}.</p>\n",
        escape_html(&from.to_string())
    );
    Content {
        html: page(&subject, &html),
        subject,
        text,
    }
}

/// A whole HTML document around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n</head>\n<body style=\"font-family: sans-serif; line-height: 1.5; \
         color: #222; max-width: 40em; margin: 0 auto; padding: 1em;\">\n{body}</body>\n</html>\n",
        escape_html(title)
    )
}

/// `text` made safe inside HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Control characters (line breaks among them) as spaces: a subject is one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A size as people read it, in decimal units: `512 B`, `1.5 kB`, `1.4 MB`, `2.0 GB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    // 999.95 would print as 1000.0 of the smaller unit.
    while value >= 999.95 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration as `m:ss` (`h:mm:ss` from an hour), rounded to the second; `None` for a
/// negative or non-finite number.
pub fn human_duration(seconds: f64) -> Option<String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    Some(if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    })
}
