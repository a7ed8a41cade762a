//! [`NotificationRepo`] on PostgreSQL, and the outbox writes of the task transitions. Every
//! message queued is announced with `NOTIFY` on its own channel, so idle deliverers in any
//! process wake when the transaction commits.

use sqlx::{Postgres, Transaction};

use super::*;
use crate::db::notify::{attach, events_json, outbox_messages, parse_events, until};
use crate::domain::notification::{Channel, DeliveryState, EmailPreferences};

fn secrets(
    current: Option<String>,
    old: Option<String>,
    old_until: Option<DateTime<Utc>>,
) -> Option<SigningSecrets> {
    current.map(|current| SigningSecrets {
        current,
        previous: old.zip(old_until),
    })
}

fn settings_from_row(r: sql::NotifySettingsRow) -> NotifySettings {
    NotifySettings {
        username: r.username,
        email: r.email,
        disabled: r.disabled,
        preferences: EmailPreferences {
            on_success: r.email_on_success,
            on_failure: r.email_on_failure,
        },
        webhook_secret: secrets(
            r.webhook_secret,
            r.webhook_secret_old,
            r.webhook_secret_old_until,
        ),
    }
}

fn endpoint_from_row(r: sql::EndpointRow) -> RepoResult<Endpoint> {
    let events: Vec<String> = json("events", r.events)?;
    Ok(Endpoint {
        id: r.id,
        user_id: r.user_id,
        url: r.url,
        events: parse_events(&events),
        enabled: r.enabled,
        disabled_reason: r.disabled_reason,
        secrets: SigningSecrets {
            current: r.secret,
            previous: r.secret_old.zip(r.secret_old_until),
        },
        failing_since: r.failing_since,
        created_at: r.created_at,
    })
}

fn notification_from_row(r: sql::NotificationRow) -> RepoResult<Notification> {
    let corrupt = |what: &str, v: &str| RepoError::Corrupt(format!("notification {what} {v:?}"));
    Ok(Notification {
        id: r.id,
        user_id: r.user_id,
        task_id: r.task_id,
        channel: Channel::parse(&r.channel).ok_or_else(|| corrupt("channel", &r.channel))?,
        event: Event::parse(&r.event).ok_or_else(|| corrupt("event", &r.event))?,
        target: r.target,
        endpoint_id: r.endpoint_id,
        payload: r.payload,
        state: DeliveryState::parse_stored(&r.state).ok_or_else(|| corrupt("state", &r.state))?,
        run_at: r.run_at,
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        last_error: r.last_error,
        sent_at: r.sent_at,
        created_at: r.created_at,
    })
}

fn attempt_from_row(r: sql::AttemptRow) -> RepoResult<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        id: r.id,
        notification_id: r.notification_id,
        event: Event::parse(&r.event)
            .ok_or_else(|| RepoError::Corrupt(format!("event {:?}", r.event)))?,
        attempt: u32::try_from(r.attempt).unwrap_or(0),
        status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
        error: r.error,
        latency_ms: u64::try_from(r.latency_ms).unwrap_or(0),
        at: r.created_at,
    })
}

async fn insert_message(
    tx: &mut Transaction<'_, Postgres>,
    m: &NewMessage,
    now: DateTime<Utc>,
) -> RepoResult<()> {
    sql::insert_notification(
        &mut **tx,
        m.id,
        m.user_id,
        m.task_id,
        m.channel.as_str(),
        m.event.as_str(),
        &m.target,
        m.endpoint_id,
        &m.payload,
        now,
    )
    .await?;
    sql::notify_notification(&mut **tx, m.id).await?;
    Ok(())
}

/// Queue the messages the task's `event` owes, inside the transaction that records it.
pub(super) async fn write_outbox(
    tx: &mut Transaction<'_, Postgres>,
    options: OutboxOptions,
    task_id: Uuid,
    event: Event,
) -> RepoResult<()> {
    let Some(row) = sql::task_by_id(&mut **tx, task_id).await? else {
        return Ok(());
    };
    let task = task_from_row(row)?;
    let Some(settings) = sql::notify_settings(&mut **tx, task.user_id).await? else {
        return Ok(());
    };
    let settings = settings_from_row(settings);
    let endpoints: Vec<(Uuid, String)> =
        sql::subscribed_endpoints(&mut **tx, task.user_id, event.as_str())
            .await?
            .into_iter()
            .map(|e| (e.id, e.url))
            .collect();
    let now = Utc::now();
    for m in outbox_messages(event, &task, &settings, &endpoints, options, now) {
        insert_message(tx, &m, now).await?;
    }
    Ok(())
}

impl PgRepo {
    /// The tasks, each with its notifications.
    pub(super) async fn with_notifications(
        &self,
        tasks: Vec<TaskRecord>,
    ) -> RepoResult<Vec<TaskRecord>> {
        if tasks.is_empty() {
            return Ok(tasks);
        }
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let rows = sql::notifications_of_tasks(&self.pool, &ids).await?;
        let notifications = rows
            .into_iter()
            .map(notification_from_row)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(attach(tasks, notifications))
    }
}

#[async_trait]
impl NotificationRepo for PgRepo {
    async fn notify_settings(&self, user: Uuid) -> RepoResult<Option<NotifySettings>> {
        Ok(sql::notify_settings(&self.pool, user)
            .await?
            .map(settings_from_row))
    }

    async fn set_email_preferences(&self, user: Uuid, p: EmailPreferences) -> RepoResult<bool> {
        Ok(sql::set_email_preferences(&self.pool, user, p.on_success, p.on_failure).await? == 1)
    }

    async fn webhook_secret(&self, user: Uuid, fresh: &str) -> RepoResult<Option<SigningSecrets>> {
        sql::create_webhook_secret(&self.pool, user, fresh).await?;
        Ok(self
            .notify_settings(user)
            .await?
            .and_then(|s| s.webhook_secret))
    }

    async fn rotate_webhook_secret(
        &self,
        user: Uuid,
        fresh: &str,
        old_until: DateTime<Utc>,
    ) -> RepoResult<Option<SigningSecrets>> {
        sql::rotate_webhook_secret(&self.pool, user, fresh, old_until).await?;
        Ok(self
            .notify_settings(user)
            .await?
            .and_then(|s| s.webhook_secret))
    }

    async fn create_endpoint(&self, user: Uuid, new: NewEndpoint) -> RepoResult<Endpoint> {
        let id = Uuid::now_v7();
        let now = Utc::now();
        sql::insert_endpoint(
            &self.pool,
            id,
            user,
            &new.url,
            &events_json(&new.events),
            new.enabled,
            &new.secret,
            now,
        )
        .await?;
        self.endpoint(user, id)
            .await?
            .ok_or_else(|| RepoError::Corrupt(format!("endpoint {id} vanished")))
    }

    async fn endpoints(&self, user: Uuid) -> RepoResult<Vec<Endpoint>> {
        sql::endpoints_of_user(&self.pool, user)
            .await?
            .into_iter()
            .map(endpoint_from_row)
            .collect()
    }

    async fn endpoint(&self, user: Uuid, id: Uuid) -> RepoResult<Option<Endpoint>> {
        sql::endpoint_of_user(&self.pool, id, user)
            .await?
            .map(endpoint_from_row)
            .transpose()
    }

    async fn endpoint_for_delivery(&self, id: Uuid) -> RepoResult<Option<Endpoint>> {
        sql::endpoint_by_id(&self.pool, id)
            .await?
            .map(endpoint_from_row)
            .transpose()
    }

    async fn update_endpoint(
        &self,
        user: Uuid,
        id: Uuid,
        update: EndpointUpdate,
    ) -> RepoResult<Option<Endpoint>> {
        let events = events_json(&update.events);
        let n = sql::update_endpoint(&self.pool, id, user, &update.url, &events, update.enabled)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        self.endpoint(user, id).await
    }

    async fn delete_endpoint(&self, user: Uuid, id: Uuid) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        if sql::delete_endpoint(&mut *tx, id, user).await? != 1 {
            return Ok(false);
        }
        sql::cancel_queued_of_endpoint(&mut *tx, id, "the endpoint was deleted").await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_endpoint_secret(
        &self,
        user: Uuid,
        id: Uuid,
        fresh: &str,
        old_until: DateTime<Utc>,
    ) -> RepoResult<Option<Endpoint>> {
        if sql::rotate_endpoint_secret(&self.pool, id, user, fresh, old_until).await? == 0 {
            return Ok(None);
        }
        self.endpoint(user, id).await
    }

    async fn endpoint_attempts(
        &self,
        user: Uuid,
        id: Uuid,
        limit: u32,
    ) -> RepoResult<Option<Vec<DeliveryAttempt>>> {
        if self.endpoint(user, id).await?.is_none() {
            return Ok(None);
        }
        let rows = sql::attempts_of_endpoint(&self.pool, id, i64::from(limit)).await?;
        rows.into_iter()
            .map(attempt_from_row)
            .collect::<RepoResult<Vec<_>>>()
            .map(Some)
    }

    async fn redeliver(
        &self,
        user: Uuid,
        endpoint: Uuid,
        message: Uuid,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        if sql::redeliver_notification(&mut *tx, message, endpoint, user, now).await? != 1 {
            return Ok(false);
        }
        sql::notify_notification(&mut *tx, message).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn queue_message(&self, message: NewMessage, now: DateTime<Utc>) -> RepoResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_message(&mut tx, &message, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn notification(&self, id: Uuid) -> RepoResult<Option<Notification>> {
        sql::notification_by_id(&self.pool, id)
            .await?
            .map(notification_from_row)
            .transpose()
    }

    async fn claim_notification(
        &self,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<Notification>> {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let expires = now.checked_add_signed(lease).unwrap_or(now);
        sql::claim_notification(&self.pool, owner, expires, now)
            .await?
            .map(notification_from_row)
            .transpose()
    }

    async fn renew_notification(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Ok(sql::renew_notification(&self.pool, id, owner, until).await? == 1)
    }

    async fn end_delivery(
        &self,
        n: &Notification,
        owner: &str,
        end: &DeliveryEnd,
        attempt: Option<&AttemptRecord>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = match end {
            DeliveryEnd::Sent => {
                sql::end_notification(&mut *tx, n.id, owner, "sent", None, Some(now)).await?
            }
            DeliveryEnd::Retry { error, at } => {
                sql::retry_notification(&mut *tx, n.id, owner, error, *at).await?
            }
            DeliveryEnd::Failed(e) => {
                sql::end_notification(&mut *tx, n.id, owner, "failed", Some(e), None).await?
            }
            DeliveryEnd::Cancelled(e) => {
                sql::end_notification(&mut *tx, n.id, owner, "cancelled", Some(e), None).await?
            }
        };
        if changed != 1 {
            return Ok(false);
        }
        if let Some(a) = attempt {
            sql::insert_attempt(
                &mut *tx,
                Uuid::now_v7(),
                n.id,
                n.endpoint_id,
                i32::try_from(n.attempts).unwrap_or(i32::MAX),
                a.status_code.map(i32::from),
                a.error.as_deref(),
                ms(a.latency),
                now,
            )
            .await?;
            if let Some(endpoint) = n.endpoint_id {
                match end {
                    DeliveryEnd::Sent => {
                        sql::endpoint_succeeded(&mut *tx, endpoint).await?;
                    }
                    DeliveryEnd::Retry { .. } | DeliveryEnd::Failed(_) => {
                        sql::endpoint_failed(&mut *tx, endpoint, now).await?;
                    }
                    DeliveryEnd::Cancelled(_) => {}
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn endpoint_failing_since(&self, id: Uuid) -> RepoResult<Option<DateTime<Utc>>> {
        Ok(self
            .endpoint_for_delivery(id)
            .await?
            .and_then(|e| e.failing_since))
    }

    async fn disable_endpoint(
        &self,
        id: Uuid,
        reason: &str,
        notice: Option<NewMessage>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut tx = self.pool.begin().await?;
        if sql::disable_endpoint(&mut *tx, id, reason).await? != 1 {
            return Ok(false);
        }
        let why = format!("the endpoint was disabled: {reason}");
        sql::cancel_queued_of_endpoint(&mut *tx, id, &why).await?;
        if let Some(m) = notice {
            insert_message(&mut tx, &m, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn next_notification_in(&self, now: DateTime<Utc>) -> RepoResult<Option<Duration>> {
        let next = sql::next_notification_at(&self.pool).await?;
        Ok(next.map(|t| until(t, now)))
    }

    async fn wait_for_notification(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |w| &w.notifications).await
    }

    async fn create_password_reset(
        &self,
        reset: NewPasswordReset,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let mut tx = self.pool.begin().await?;
        sql::insert_password_reset(
            &mut *tx,
            reset.id,
            reset.user_id,
            &reset.token_hash,
            now,
            reset.expires_at,
        )
        .await?;
        if let Some(m) = &reset.message {
            insert_message(&mut tx, m, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn resets_since(&self, user: Uuid, since: DateTime<Utc>) -> RepoResult<u32> {
        let n = sql::resets_since(&self.pool, user, since).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<Uuid>> {
        let mut tx = self.pool.begin().await?;
        let Some(user) = sql::use_password_reset(&mut *tx, token_hash, now).await? else {
            return Ok(None);
        };
        if sql::set_password_hash(&mut *tx, user, password_hash).await? != 1 {
            return Ok(None);
        }
        sql::delete_sessions_of_user(&mut *tx, user).await?;
        sql::end_password_resets(&mut *tx, user, now).await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}
