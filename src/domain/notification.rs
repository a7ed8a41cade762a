//! Notifications as the domain sees them: the events, the channels, the state of a message
//! owed, and the pure rule of which messages an event owes (`owed`).
//!
//! A message is written to the outbox in the transaction that records its event, and its
//! id (a UUIDv7) is its identity for good: the `webhook-id` of every attempt, the
//! `Message-ID` of every e-mail attempt.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TaskStatus;

/// What a message is about. The `task.*` events are the ones webhooks subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Event {
    #[serde(rename = "task.started")]
    TaskStarted,
    #[serde(rename = "task.succeeded")]
    TaskSucceeded,
    #[serde(rename = "task.failed")]
    TaskFailed,
    #[serde(rename = "task.cancelled")]
    TaskCancelled,
    /// "Send test event" on an endpoint.
    #[serde(rename = "webhook.test")]
    WebhookTest,
    /// The e-mail to the owner of an endpoint that was disabled.
    #[serde(rename = "webhook.endpoint_disabled")]
    EndpointDisabled,
    /// The e-mail with a password reset link.
    #[serde(rename = "account.password_reset")]
    PasswordReset,
}

impl Event {
    /// The events a webhook endpoint may subscribe to.
    pub const TASK_EVENTS: [Event; 4] = [
        Event::TaskStarted,
        Event::TaskSucceeded,
        Event::TaskFailed,
        Event::TaskCancelled,
    ];
    const ALL: [Event; 7] = [
        Event::TaskStarted,
        Event::TaskSucceeded,
        Event::TaskFailed,
        Event::TaskCancelled,
        Event::WebhookTest,
        Event::EndpointDisabled,
        Event::PasswordReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::TaskStarted => "task.started",
            Event::TaskSucceeded => "task.succeeded",
            Event::TaskFailed => "task.failed",
            Event::TaskCancelled => "task.cancelled",
            Event::WebhookTest => "webhook.test",
            Event::EndpointDisabled => "webhook.endpoint_disabled",
            Event::PasswordReset => "account.password_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The event of a task reaching `status`, if that status has one.
    pub fn of_status(status: TaskStatus) -> Option<Event> {
        match status {
            TaskStatus::Running => Some(Event::TaskStarted),
            TaskStatus::Succeeded => Some(Event::TaskSucceeded),
            TaskStatus::Failed => Some(Event::TaskFailed),
            TaskStatus::Cancelled => Some(Event::TaskCancelled),
            TaskStatus::Queued => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Email, Channel::Webhook]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// Where a message stands. `queued` also covers a message waiting for its next attempt;
/// `sending` is an attempt in progress (a worker holds its lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Sending,
    Sent,
    Failed,
    Cancelled,
}

impl DeliveryState {
    /// As stored (`running` is the queue's word for `sending`).
    pub fn as_stored(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sending => "running",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }
    pub fn parse_stored(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Queued,
            DeliveryState::Sending,
            DeliveryState::Sent,
            DeliveryState::Failed,
            DeliveryState::Cancelled,
        ]
        .into_iter()
        .find(|d| d.as_stored() == s)
    }
}

/// A message owed, as the task object lists it (no secret in it: a webhook URL shows
/// without its query, which may hold a token).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    /// The message id: the `webhook-id` (`msg_…`) or the e-mail's Message-ID.
    pub id: String,
    pub channel: Channel,
    pub event: Event,
    /// The e-mail address, or the webhook URL without its query.
    pub target: String,
    /// The webhook endpoint it goes to; `null` for an e-mail or the task's own URL.
    pub endpoint_id: Option<Uuid>,
    pub status: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The id a message carries on the wire: `msg_` and the UUID's 32 hex digits.
pub fn message_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// A URL for display: scheme, host, port and path, without credentials, query or fragment.
pub fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => String::from("(invalid URL)"),
    }
}

/// The body of every message of an event: `{type, timestamp, data}`, the webhook body
/// byte for byte (kept as written, so every attempt signs the same bytes).
pub fn event_body(event: Event, at: DateTime<Utc>, data: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct Body<'a, T: Serialize> {
        #[serde(rename = "type")]
        kind: &'a str,
        timestamp: String,
        data: &'a T,
    }
    let body = Body {
        kind: event.as_str(),
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        data,
    };
    // Serializing plain data to a string cannot fail; an empty object is the fallback.
    serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"))
}

/// Whether a user wants e-mail about finished tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailPreferences {
    /// E-mail when a task succeeds.
    pub on_success: bool,
    /// E-mail when a task fails or is cancelled.
    pub on_failure: bool,
}

/// Who may be told of an event of one task.
#[derive(Debug, Clone)]
pub struct Recipients<'a> {
    /// The owner's address, when e-mail is configured and the owner is not disabled.
    pub email: Option<&'a str>,
    pub preferences: EmailPreferences,
    /// The owner's enabled endpoints subscribed to the event: (id, URL).
    pub endpoints: Vec<(Uuid, &'a str)>,
    /// The task's own webhook URL.
    pub task_webhook: Option<&'a str>,
}

/// One message an event owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub channel: Channel,
    pub target: String,
    /// The endpoint it goes to; `None` for an e-mail or the task's own URL.
    pub endpoint_id: Option<Uuid>,
}

/// The messages a task event owes: an e-mail for a finished task if the owner wants it,
/// and a webhook to each subscribed endpoint and to the task's own URL.
pub fn owed(event: Event, r: &Recipients<'_>) -> Vec<Owed> {
    let mut out = vec![];
    let wants_mail = match event {
        Event::TaskSucceeded => r.preferences.on_success,
        Event::TaskFailed | Event::TaskCancelled => r.preferences.on_failure,
        _ => false,
    };
    if let Some(address) = r.email.filter(|_| wants_mail) {
        out.push(Owed {
            channel: Channel::Email,
            target: address.to_string(),
            endpoint_id: None,
        });
    }
    for (id, url) in &r.endpoints {
        out.push(Owed {
            channel: Channel::Webhook,
            target: url.to_string(),
            endpoint_id: Some(*id),
        });
    }
    if let Some(url) = r
        .task_webhook
        .filter(|_| Event::TASK_EVENTS.contains(&event))
    {
        out.push(Owed {
            channel: Channel::Webhook,
            target: url.to_string(),
            endpoint_id: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipients<'a>(endpoints: Vec<(Uuid, &'a str)>) -> Recipients<'a> {
        Recipients {
            email: Some("ana@example.com"),
            preferences: EmailPreferences {
                on_success: true,
                on_failure: true,
            },
            endpoints,
            task_webhook: Some("https://hooks.example.com/task"),
        }
    }

    #[test]
    fn a_finished_task_owes_mail_and_every_webhook() {
        let ep = Uuid::now_v7();
        let owed = owed(
            Event::TaskSucceeded,
            &recipients(vec![(ep, "https://a.example.com/h")]),
        );
        let channels: Vec<_> = owed.iter().map(|o| (o.channel, o.endpoint_id)).collect();
        assert_eq!(
            channels,
            [
                (Channel::Email, None),
                (Channel::Webhook, Some(ep)),
                (Channel::Webhook, None)
            ]
        );
    }

    #[test]
    fn a_start_sends_no_mail_and_preferences_are_kept() {
        let started = owed(Event::TaskStarted, &recipients(vec![]));
        assert!(started.iter().all(|o| o.channel == Channel::Webhook));
        let mut r = recipients(vec![]);
        r.preferences.on_success = false;
        assert!(
            owed(Event::TaskSucceeded, &r)
                .iter()
                .all(|o| o.channel != Channel::Email)
        );
        assert!(
            owed(Event::TaskCancelled, &r)
                .iter()
                .any(|o| o.channel == Channel::Email)
        );
        r.email = None; // e-mail not configured
        assert!(
            owed(Event::TaskFailed, &r)
                .iter()
                .all(|o| o.channel != Channel::Email)
        );
    }

    #[test]
    fn events_round_trip_and_bodies_have_the_standard_shape() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_value(e).ok(),
                Some(serde_json::json!(e.as_str()))
            );
        }
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00.5Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        assert_eq!(
            event_body(Event::TaskFailed, at, &serde_json::json!({"id": "t"})),
            r#"{"type":"task.failed","timestamp":"2026-12-07T10:00:00.500Z","data":{"id":"t"}}"#
        );
    }

    #[test]
    fn urls_show_without_secrets() {
        assert_eq!(
            display_url("https://u:p@hooks.example.com/in?token=s3cret#x"),
            "https://hooks.example.com/in"
        );
        assert_eq!(
            message_id(Uuid::nil()),
            "msg_00000000000000000000000000000000"
        );
    }
}
