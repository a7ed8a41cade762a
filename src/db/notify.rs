//! The notification side of the repository: settings, webhook endpoints, the outbox and its
//! deliveries, and password resets.
//!
//! The outbox is written by the task transitions themselves (`claim` → `task.started`;
//! `finish` and `cancel_task` → the final events), inside their transactions: a message
//! exists exactly when its event committed. Deliveries are claimed like jobs: a lease, an
//! attempt counted at claim, and every write after it conditional on the lease owner.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;
use crate::domain::notification::{
    Channel, DeliveryState, EmailPreferences, Event, NotificationView, Recipients, display_url,
    event_body, message_id, owed,
};

/// What the task transitions write to the outbox besides webhooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxOptions {
    /// E-mail is configured: finished tasks owe their owners an e-mail (per preferences).
    pub email: bool,
}

/// A signing secret and, after a rotation, the previous one while it stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecrets {
    pub current: String,
    pub previous: Option<(String, DateTime<Utc>)>,
}

impl SigningSecrets {
    /// The secrets a delivery at `now` signs with: the current one, and the previous one
    /// until it runs out.
    pub fn valid_at(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut out = vec![self.current.as_str()];
        if let Some((old, until)) = &self.previous
            && *until > now
        {
            out.push(old.as_str());
        }
        out
    }
}

/// What notifications need to know about a user.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub username: String,
    pub email: String,
    pub disabled: bool,
    pub preferences: EmailPreferences,
    /// The default webhook secret (signs a task's own `webhook_url`); none until first needed.
    pub webhook_secret: Option<SigningSecrets>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub events: Vec<Event>,
    pub enabled: bool,
    /// Why the service disabled it (`410 Gone`, five days of failures).
    pub disabled_reason: Option<String>,
    pub secrets: SigningSecrets,
    /// The first failed delivery since the last success.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<Event>,
    pub enabled: bool,
    pub secret: String,
}

/// A change to an endpoint (the whole of its editable fields).
pub struct EndpointUpdate {
    pub url: String,
    pub events: Vec<Event>,
    pub enabled: bool,
}

/// A message owed (a row of the outbox).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub task_id: Option<Uuid>,
    pub channel: Channel,
    pub event: Event,
    pub target: String,
    pub endpoint_id: Option<Uuid>,
    /// JSON; a webhook's body byte for byte.
    pub payload: String,
    pub state: DeliveryState,
    pub run_at: DateTime<Utc>,
    /// Attempts made, this one included once claimed.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A message to queue that no task event writes (a test event, a reset e-mail, …).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub user_id: Uuid,
    pub task_id: Option<Uuid>,
    pub channel: Channel,
    pub event: Event,
    pub target: String,
    pub endpoint_id: Option<Uuid>,
    pub payload: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryEnd {
    Sent,
    /// Try again at this time.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// No more attempts.
    Failed(String),
    /// Nothing to send any more (endpoint gone or disabled, e-mail turned off).
    Cancelled(String),
}

/// One webhook attempt, for the endpoint's delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
}

/// A line of an endpoint's delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub event: Event,
    pub attempt: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub at: DateTime<Utc>,
}

/// A password reset to record with the e-mail that carries it.
pub struct NewPasswordReset {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// The e-mail, `None` when e-mail is not configured (nothing could deliver it).
    pub message: Option<NewMessage>,
}

#[async_trait]
pub trait NotificationRepo: Send + Sync {
    async fn notify_settings(&self, user: Uuid) -> RepoResult<Option<NotifySettings>>;
    /// `false`: no such user.
    async fn set_email_preferences(&self, user: Uuid, p: EmailPreferences) -> RepoResult<bool>;
    /// The user's default webhook secrets, made with `fresh` if there were none.
    async fn webhook_secret(&self, user: Uuid, fresh: &str) -> RepoResult<Option<SigningSecrets>>;
    /// A new default secret; the current one stays valid until `old_until`.
    async fn rotate_webhook_secret(
        &self,
        user: Uuid,
        fresh: &str,
        old_until: DateTime<Utc>,
    ) -> RepoResult<Option<SigningSecrets>>;

    async fn create_endpoint(&self, user: Uuid, new: NewEndpoint) -> RepoResult<Endpoint>;
    async fn endpoints(&self, user: Uuid) -> RepoResult<Vec<Endpoint>>;
    async fn endpoint(&self, user: Uuid, id: Uuid) -> RepoResult<Option<Endpoint>>;
    /// Any user's endpoint (deliveries).
    async fn endpoint_for_delivery(&self, id: Uuid) -> RepoResult<Option<Endpoint>>;
    async fn update_endpoint(
        &self,
        user: Uuid,
        id: Uuid,
        update: EndpointUpdate,
    ) -> RepoResult<Option<Endpoint>>;
    /// Removes it and cancels its queued deliveries; `false` when there is no such endpoint.
    async fn delete_endpoint(&self, user: Uuid, id: Uuid) -> RepoResult<bool>;
    async fn rotate_endpoint_secret(
        &self,
        user: Uuid,
        id: Uuid,
        fresh: &str,
        old_until: DateTime<Utc>,
    ) -> RepoResult<Option<Endpoint>>;
    /// The endpoint's latest attempts, newest first; `None` when it is not the user's.
    async fn endpoint_attempts(
        &self,
        user: Uuid,
        id: Uuid,
        limit: u32,
    ) -> RepoResult<Option<Vec<DeliveryAttempt>>>;
    /// Queue again a finished delivery to the user's endpoint (same message id, fresh
    /// attempts); `false` when there is no such finished delivery.
    async fn redeliver(
        &self,
        user: Uuid,
        endpoint: Uuid,
        message: Uuid,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Queue one message (due now).
    async fn queue_message(&self, message: NewMessage, now: DateTime<Utc>) -> RepoResult<()>;
    async fn notification(&self, id: Uuid) -> RepoResult<Option<Notification>>;

    /// Take the next due delivery for `owner` until `now + lease`.
    async fn claim_notification(
        &self,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<Notification>>;
    /// Extend the lease of a delivery `owner` holds to `until`; `false`: it was lost.
    async fn renew_notification(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Record how the attempt of a delivery `owner` holds ended, with its log line and
    /// the endpoint's failure streak, in one transaction. `false`: the lease was lost.
    async fn end_delivery(
        &self,
        n: &Notification,
        owner: &str,
        end: &DeliveryEnd,
        attempt: Option<&AttemptRecord>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// When the endpoint's current failure streak began (`None`: it is not failing).
    async fn endpoint_failing_since(&self, id: Uuid) -> RepoResult<Option<DateTime<Utc>>>;
    /// Disable the endpoint with `reason`, cancel its queued deliveries and queue `notice`
    /// (the e-mail to its owner), in one transaction; `false` when it was disabled already.
    async fn disable_endpoint(
        &self,
        id: Uuid,
        reason: &str,
        notice: Option<NewMessage>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// How long until the next delivery is due (zero if one is due now).
    async fn next_notification_in(&self, now: DateTime<Utc>) -> RepoResult<Option<Duration>>;
    /// An idle deliverer waits here for a message to be queued, at most `timeout` (see
    /// [`super::JobQueue::wait_for_job`]).
    async fn wait_for_notification(&self, timeout: Duration) -> bool {
        tokio::time::sleep(timeout).await;
        false
    }

    /// Record a reset and queue its e-mail, in one transaction.
    async fn create_password_reset(
        &self,
        reset: NewPasswordReset,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Resets asked for the user since `since` (rate limit).
    async fn resets_since(&self, user: Uuid, since: DateTime<Utc>) -> RepoResult<u32>;
    /// Use the live reset of `token_hash`: set the new password, end every session and every
    /// other reset of the user, in one transaction. The user, or `None` (unknown, used or
    /// expired token).
    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<Uuid>>;
}

/// Milliseconds since the epoch (SQLite's times).
pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// How long from `now` until `at` (zero when it is past).
pub(super) fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// The events a stored JSON list names (unknown names are skipped: a newer version's).
pub(super) fn parse_events(list: &[String]) -> Vec<Event> {
    list.iter().filter_map(|e| Event::parse(e)).collect()
}

/// The stored JSON list of events.
pub(super) fn events_json(events: &[Event]) -> serde_json::Value {
    serde_json::Value::Array(
        events
            .iter()
            .map(|e| serde_json::Value::String(e.as_str().to_string()))
            .collect(),
    )
}

/// The messages a task's event owes, ready to insert: who, per [`owed`], and the body every
/// one of them carries (the task object as the event left it).
pub(super) fn outbox_messages(
    event: Event,
    task: &crate::domain::TaskRecord,
    settings: &NotifySettings,
    endpoints: &[(Uuid, String)],
    options: OutboxOptions,
    now: DateTime<Utc>,
) -> Vec<NewMessage> {
    let recipients = Recipients {
        email: Some(settings.email.as_str()).filter(|_| options.email && !settings.disabled),
        preferences: settings.preferences,
        endpoints: endpoints.iter().map(|(id, u)| (*id, u.as_str())).collect(),
        task_webhook: task.webhook_url.as_deref(),
    };
    let owed = owed(event, &recipients);
    if owed.is_empty() {
        return vec![];
    }
    let mut data = task.view();
    data.notifications = None;
    let payload = event_body(event, now, &data);
    owed.into_iter()
        .map(|o| NewMessage {
            id: Uuid::now_v7(),
            user_id: task.user_id,
            task_id: Some(task.id),
            channel: o.channel,
            event,
            target: o.target,
            endpoint_id: o.endpoint_id,
            payload: payload.clone(),
        })
        .collect()
}

/// A stored notification as the task object lists it.
pub(super) fn notification_view(n: &Notification) -> NotificationView {
    NotificationView {
        id: message_id(n.id),
        channel: n.channel,
        event: n.event,
        target: match n.channel {
            Channel::Webhook => display_url(&n.target),
            Channel::Email => n.target.clone(),
        },
        endpoint_id: n.endpoint_id,
        status: n.state,
        attempts: n.attempts,
        last_error: n.last_error.clone(),
        sent_at: n.sent_at,
    }
}

/// Hand each task the notifications that belong to it.
pub(super) fn attach(
    mut tasks: Vec<crate::domain::TaskRecord>,
    notifications: Vec<Notification>,
) -> Vec<crate::domain::TaskRecord> {
    for n in notifications {
        if let Some(t) = tasks.iter_mut().find(|t| Some(t.id) == n.task_id) {
            t.notifications.push(notification_view(&n));
        }
    }
    tasks
}
