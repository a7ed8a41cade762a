//! One e-mail attempt: the message rendered from its outbox row and the state of things now
//! (the owner's name and preferences), sent through the configured SMTP server.
//!
//! What is decided now rather than when the event happened: whether the owner still wants
//! the e-mail (an unsubscribe in between cancels it), and the links (tokens are recomputed:
//! the outbox holds none). The content comes from the row: the task as the event left it.

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde_json::Value;
use uuid::Uuid;

use super::{Attempt, Notifier, retry_or_fail};
use crate::db::{DeliveryEnd, Notification, NotifySettings};
use crate::domain::notification::Event;
use crate::mail::compose::{
    MailOutput, TaskMail, TaskMailKind, endpoint_disabled_mail, password_reset_mail, task_mail,
};
use crate::mail::{Mailer, SendError};

/// How long the reset link of a password reset e-mail works, in minutes (as the e-mail
/// says; `http::recovery::RESET_TTL` is the rule).
const RESET_MINUTES: u32 = 30;

pub(super) async fn deliver(
    n: &Notifier,
    mailer: &Mailer,
    m: &Notification,
    now: DateTime<Utc>,
) -> anyhow::Result<Attempt> {
    let cancelled = |why: &str| Ok((DeliveryEnd::Cancelled(why.to_string()), None, None));
    let Some(owner) = n.db.notify_settings(m.user_id).await? else {
        return cancelled("the account no longer exists");
    };
    if owner.disabled {
        return cancelled("the account is disabled");
    }
    let wanted = match m.event {
        Event::TaskSucceeded => owner.preferences.on_success,
        Event::TaskFailed | Event::TaskCancelled => owner.preferences.on_failure,
        _ => true,
    };
    if !wanted {
        return cancelled("e-mail notifications were turned off");
    }
    let to: Mailbox = match m.target.parse() {
        Ok(to) => to,
        Err(_) => {
            let end = DeliveryEnd::Failed(format!("{:?} is not an e-mail address", m.target));
            return Ok((end, None, None));
        }
    };
    let message = match compose(n, mailer, m, &owner, to) {
        Ok(message) => message,
        Err(e) => return Ok((DeliveryEnd::Failed(e), None, None)),
    };
    let end = match mailer.send(message).await {
        Ok(()) => DeliveryEnd::Sent,
        Err(SendError::Permanent(e)) => DeliveryEnd::Failed(e),
        Err(SendError::Transient(e)) => retry_or_fail(m, now, None, &Some(e)),
    };
    Ok((end, None, None))
}

/// The e-mail of the row's event; `Err` says why there is none.
fn compose(
    n: &Notifier,
    mailer: &Mailer,
    m: &Notification,
    owner: &NotifySettings,
    to: Mailbox,
) -> Result<lettre::Message, String> {
    let body: Value = serde_json::from_str(&m.payload).map_err(|e| e.to_string())?;
    let data = &body["data"];
    let message_id = crate::mail::compose::message_id(m.id.simple(), n.links.base());
    let from = mailer.from().clone();
    let composed = match m.event {
        Event::TaskSucceeded | Event::TaskFailed | Event::TaskCancelled => {
            task_mail(&task_content(n, m, owner, data, message_id, to, from)?)
        }
        Event::PasswordReset => {
            let reset = data["reset_id"]
                .as_str()
                .and_then(|s| Uuid::try_parse(s).ok())
                .ok_or("the reset e-mail names no reset")?;
            let link = n.links.reset(&n.link_key.reset_token(reset));
            password_reset_mail(&message_id, to, from, &owner.username, link, RESET_MINUTES)
        }
        Event::EndpointDisabled => endpoint_disabled_mail(
            &message_id,
            to,
            from,
            &owner.username,
            data["url"].as_str().unwrap_or_default(),
            data["reason"].as_str().unwrap_or_default(),
            n.links.account(),
        ),
        other => return Err(format!("{} is not sent by e-mail", other.as_str())),
    };
    composed.map_err(|e| e.to_string())
}

fn task_content(
    n: &Notifier,
    m: &Notification,
    owner: &NotifySettings,
    task: &Value,
    message_id: String,
    to: Mailbox,
    from: Mailbox,
) -> Result<TaskMail, String> {
    let id = m.task_id.ok_or("a task e-mail without a task")?;
    let event = match m.event {
        Event::TaskSucceeded => TaskMailKind::Succeeded,
        Event::TaskFailed => TaskMailKind::Failed,
        _ => TaskMailKind::Cancelled,
    };
    let outputs = task["outputs"]
        .as_array()
        .map(|outputs| {
            outputs
                .iter()
                .filter_map(|o| {
                    let name = o["name"].as_str()?;
                    Some(MailOutput {
                        name: name.to_string(),
                        size_bytes: o["size"].as_u64().unwrap_or(0),
                        duration_seconds: o["duration"].as_f64(),
                        download_url: n.links.output(id, name),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TaskMail {
        message_id,
        to,
        from,
        username: owner.username.clone(),
        event,
        input_name: input_name(&task["source"]),
        profile: task["profile"].as_str().unwrap_or("idrl").to_string(),
        outputs,
        task_url: n.links.task(id),
        error: task["error"]["message"].as_str().map(str::to_string),
        unsubscribe_url: n
            .links
            .unsubscribe(&n.link_key.unsubscribe_token(m.user_id)),
    })
}

/// The upload's file name, or the URL a task fetched.
fn input_name(source: &Value) -> String {
    source["filename"]
        .as_str()
        .or_else(|| source["url"].as_str())
        .unwrap_or("your file")
        .to_string()
}
