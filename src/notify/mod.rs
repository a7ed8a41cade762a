//! Delivering notifications: the deliverer side of the outbox.
//!
//! Task transitions write the messages they owe in their own transaction (`db`); here a
//! deliverer claims one due message with a lease, makes one attempt (a signed webhook POST,
//! or an e-mail), and records how it ended, conditional on still holding the lease. A
//! deliverer that dies mid-attempt leaves the lease to expire: the message is claimed again
//! and sent again with the same id, so receivers can drop duplicates.
//!
//! `run_one` takes the time as an argument, so tests drive the retry schedule without
//! waiting; `deliverer_loop` runs it with the clock.

mod email;
pub mod links;
pub mod schedule;
pub mod sign;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::{AttemptRecord, Db, DeliveryEnd, NewMessage, Notification, SigningSecrets};
use crate::domain::notification::{Channel, Event, display_url, event_body, message_id};
use crate::fetch::Fetcher;
use crate::mail::Mailer;
use crate::signals::Signals;
use webhook::{Answer, Delivery};

/// Everything deliverers share in a process.
pub struct Notifier {
    pub db: Db,
    /// The guarded HTTP client and the fetch policy webhooks are held to.
    pub fetcher: Arc<Fetcher>,
    /// The SMTP server, when e-mail is configured.
    pub mailer: Option<Arc<Mailer>>,
    pub lease: Duration,
    pub signals: Signals,
    /// The tokens of e-mailed links, and where the links point.
    pub link_key: links::LinkKey,
    pub links: links::Links,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// An attempt was made (or the message had nothing left to send to) and recorded.
    Attempted { id: Uuid, end: DeliveryEnd },
    /// The attempt's result was dropped: the lease was lost meanwhile.
    Dropped { id: Uuid },
}

/// Claim one due message at `now`, attempt it, record the outcome.
pub async fn run_one(n: &Notifier, owner: &str, now: DateTime<Utc>) -> anyhow::Result<Step> {
    let Some(message) = n.db.claim_notification(owner, n.lease, now).await? else {
        return Ok(Step::Idle);
    };
    let attempt = async {
        match message.channel {
            Channel::Webhook => deliver_webhook(n, &message, now).await,
            Channel::Email => match &n.mailer {
                Some(mailer) => email::deliver(n, mailer, &message, now).await,
                None => Ok((
                    DeliveryEnd::Cancelled("e-mail is not configured".into()),
                    None,
                    None,
                )),
            },
        }
    };
    let (end, attempt, answer) = keep_lease(n, &message, owner, now, attempt).await?;
    let recorded =
        n.db.end_delivery(&message, owner, &end, attempt.as_ref(), now)
            .await?;
    let outcome = outcome_label(&end);
    metrics::counter!(crate::telemetry::NOTIFICATIONS, "channel" => message.channel.as_str(),
        "outcome" => if recorded { outcome } else { "dropped" })
    .increment(1);
    if !recorded {
        return Ok(Step::Dropped { id: message.id });
    }
    if end == DeliveryEnd::Sent {
        let waited = (now - message.created_at).to_std().unwrap_or_default();
        metrics::histogram!(crate::telemetry::NOTIFICATION_LATENCY,
            "channel" => message.channel.as_str())
        .record(waited.as_secs_f64());
    }
    if let Some(endpoint) = message.endpoint_id {
        after_endpoint_attempt(n, &message, endpoint, answer.as_ref(), now).await?;
    }
    if let Some(task) = message.task_id {
        n.signals.task_changed(task);
    }
    tracing::info!(message = %message_id(message.id), channel = message.channel.as_str(),
        event = message.event.as_str(), attempt = message.attempts, outcome, "notification attempt");
    Ok(Step::Attempted {
        id: message.id,
        end,
    })
}

/// Run `attempt` while renewing the message's lease every third of it (a slow receiver or
/// SMTP server may take longer than a short lease), from `now` on the caller's clock.
async fn keep_lease<T>(
    n: &Notifier,
    m: &Notification,
    owner: &str,
    now: DateTime<Utc>,
    attempt: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let started = std::time::Instant::now();
    let every = (n.lease / 3).max(Duration::from_millis(500));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            result = &mut attempt => return result,
            _ = tick.tick() => {
                let until = now + chrono::Duration::from_std(started.elapsed() + n.lease)?;
                if let Err(e) = n.db.renew_notification(m.id, owner, until).await {
                    tracing::warn!(error = %e, "could not renew a delivery's lease");
                }
            }
        }
    }
}

fn outcome_label(end: &DeliveryEnd) -> &'static str {
    match end {
        DeliveryEnd::Sent => "sent",
        DeliveryEnd::Retry { .. } => "retry",
        DeliveryEnd::Failed(_) => "failed",
        DeliveryEnd::Cancelled(_) => "cancelled",
    }
}

/// The URL and secrets a webhook message goes out with now; `Err` with why there is nothing
/// to send to any more. An endpoint's message follows the endpoint (its current URL and
/// secrets); a task's own URL is signed with the owner's default secret.
async fn destination(
    n: &Notifier,
    m: &Notification,
) -> anyhow::Result<Result<(String, SigningSecrets), String>> {
    match m.endpoint_id {
        Some(id) => Ok(match n.db.endpoint_for_delivery(id).await? {
            None => Err("the endpoint was deleted".into()),
            Some(e) if !e.enabled => Err("the endpoint is disabled".into()),
            Some(e) => Ok((e.url, e.secrets)),
        }),
        None => Ok(
            match n.db.webhook_secret(m.user_id, &sign::new_secret()).await? {
                None => Err("the user no longer exists".into()),
                Some(secrets) => Ok((m.target.clone(), secrets)),
            },
        ),
    }
}

type Attempt = (DeliveryEnd, Option<AttemptRecord>, Option<Answer>);

async fn deliver_webhook(
    n: &Notifier,
    m: &Notification,
    now: DateTime<Utc>,
) -> anyhow::Result<Attempt> {
    let (url, secrets) = match destination(n, m).await? {
        Ok(d) => d,
        Err(why) => return Ok((DeliveryEnd::Cancelled(why), None, None)),
    };
    let msg_id = message_id(m.id);
    let delivery = Delivery {
        url: &url,
        msg_id: &msg_id,
        timestamp: now.timestamp(),
        body: &m.payload,
        secrets: secrets.valid_at(now),
    };
    let (answer, latency) = webhook::send(&n.fetcher, &delivery).await;
    let error = answer.error();
    let end = match &answer {
        Answer::Accepted(_) => DeliveryEnd::Sent,
        Answer::Gone | Answer::NotAllowed(_) => {
            DeliveryEnd::Failed(error.clone().unwrap_or_default())
        }
        Answer::Refused { retry_after, .. } => retry_or_fail(m, now, *retry_after, &error),
        Answer::Unreachable(_) => retry_or_fail(m, now, None, &error),
    };
    let record = AttemptRecord {
        status_code: answer.status(),
        error,
        latency,
    };
    Ok((end, Some(record), Some(answer)))
}

fn retry_or_fail(
    m: &Notification,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
    error: &Option<String>,
) -> DeliveryEnd {
    let error = error.clone().unwrap_or_default();
    match schedule::next_attempt(m.attempts, now, retry_after) {
        Some(at) => DeliveryEnd::Retry { error, at },
        None => DeliveryEnd::Failed(format!("{error} (gave up after {} attempts)", m.attempts)),
    }
}

/// An endpoint answering `410 Gone`, or failing for [`schedule::FAILING_LIMIT`] without a
/// success, is disabled, and its owner told by e-mail.
async fn after_endpoint_attempt(
    n: &Notifier,
    m: &Notification,
    endpoint: Uuid,
    answer: Option<&Answer>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let reason = match answer {
        Some(Answer::Gone) => "the endpoint answered 410 Gone".to_string(),
        Some(Answer::Accepted(_)) | None => return Ok(()),
        Some(_) => {
            let limit = chrono::Duration::from_std(schedule::FAILING_LIMIT)?;
            match n.db.endpoint_failing_since(endpoint).await? {
                Some(since) if now - since >= limit => {
                    "deliveries have failed for 5 days".to_string()
                }
                _ => return Ok(()),
            }
        }
    };
    let notice = if n.mailer.is_some() {
        disabled_notice(n, m, endpoint, &reason).await?
    } else {
        None
    };
    if n.db
        .disable_endpoint(endpoint, &reason, notice, now)
        .await?
    {
        tracing::warn!(endpoint = %endpoint, reason, "webhook endpoint disabled");
        n.signals.message_queued();
    }
    Ok(())
}

/// The e-mail telling the owner their endpoint was disabled.
async fn disabled_notice(
    n: &Notifier,
    m: &Notification,
    endpoint: Uuid,
    reason: &str,
) -> anyhow::Result<Option<NewMessage>> {
    let Some(owner) = n.db.notify_settings(m.user_id).await? else {
        return Ok(None);
    };
    let url = display_url(&m.target);
    let data = serde_json::json!({"endpoint_id": endpoint, "url": url, "reason": reason});
    Ok(Some(NewMessage {
        id: Uuid::now_v7(),
        user_id: m.user_id,
        task_id: None,
        channel: Channel::Email,
        event: Event::EndpointDisabled,
        target: owner.email,
        endpoint_id: None,
        payload: event_body(Event::EndpointDisabled, Utc::now(), &data),
    }))
}

/// Deliver messages until `stop`: claim with the clock, and when nothing is due wait for a
/// message queued here (`Signals`), in any process (PostgreSQL `NOTIFY`), or the next due
/// time (at most a second: the polling fallback).
pub async fn deliverer_loop(n: Arc<Notifier>, owner: String, stop: CancellationToken) {
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        match run_one(&n, &owner, Utc::now()).await {
            Ok(Step::Idle) => {
                failures = 0;
                let due =
                    n.db.next_notification_in(Utc::now())
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_millis(5), Duration::from_secs(1));
                tokio::select! {
                    _ = n.signals.wait_for_message() => {}
                    _ = n.db.wait_for_notification(due) => {}
                    _ = stop.cancelled() => {}
                }
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                let wait = crate::queue::backoff(Duration::from_millis(200), failures);
                tracing::error!(error = ?e, ?wait, "deliverer step failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
    }
}
