//! [`NotificationRepo`] on SQLite, and the outbox writes of the task transitions.

use sqlx::{Sqlite, Transaction};

use super::*;
use crate::db::notify::{attach, events_json, millis, outbox_messages, parse_events, until};
use crate::domain::notification::{Channel, DeliveryState, EmailPreferences};

fn secrets(
    current: Option<String>,
    old: Option<String>,
    old_until: Option<i64>,
) -> RepoResult<Option<SigningSecrets>> {
    let previous = match (old, old_until) {
        (Some(s), Some(t)) => Some((s, time(t)?)),
        _ => None,
    };
    Ok(current.map(|current| SigningSecrets { current, previous }))
}

fn settings_from_row(r: sql::NotifySettingsRow) -> RepoResult<NotifySettings> {
    Ok(NotifySettings {
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
        )?,
    })
}

fn endpoint_from_row(r: sql::EndpointRow) -> RepoResult<Endpoint> {
    let events: Vec<String> = json("events", &r.events)?;
    Ok(Endpoint {
        id: uuid(&r.id)?,
        user_id: uuid(&r.user_id)?,
        url: r.url,
        events: parse_events(&events),
        enabled: r.enabled,
        disabled_reason: r.disabled_reason,
        secrets: secrets(Some(r.secret), r.secret_old, r.secret_old_until)?
            .ok_or_else(|| RepoError::Corrupt("endpoint secret".into()))?,
        failing_since: opt_time(r.failing_since)?,
        created_at: time(r.created_at)?,
    })
}

fn notification_from_row(r: sql::NotificationRow) -> RepoResult<Notification> {
    let corrupt = |what: &str, v: &str| RepoError::Corrupt(format!("notification {what} {v:?}"));
    Ok(Notification {
        id: uuid(&r.id)?,
        user_id: uuid(&r.user_id)?,
        task_id: r.task_id.as_deref().map(uuid).transpose()?,
        channel: Channel::parse(&r.channel).ok_or_else(|| corrupt("channel", &r.channel))?,
        event: Event::parse(&r.event).ok_or_else(|| corrupt("event", &r.event))?,
        target: r.target,
        endpoint_id: r.endpoint_id.as_deref().map(uuid).transpose()?,
        payload: r.payload,
        state: DeliveryState::parse_stored(&r.state).ok_or_else(|| corrupt("state", &r.state))?,
        run_at: time(r.run_at)?,
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        last_error: r.last_error,
        sent_at: opt_time(r.sent_at)?,
        created_at: time(r.created_at)?,
    })
}

fn attempt_from_row(r: sql::AttemptRow) -> RepoResult<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        id: uuid(&r.id)?,
        notification_id: uuid(&r.notification_id)?,
        event: Event::parse(&r.event)
            .ok_or_else(|| RepoError::Corrupt(format!("event {:?}", r.event)))?,
        attempt: u32::try_from(r.attempt).unwrap_or(0),
        status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
        error: r.error,
        latency_ms: u64::try_from(r.latency_ms).unwrap_or(0),
        at: time(r.created_at)?,
    })
}

async fn insert_message(
    tx: &mut Transaction<'_, Sqlite>,
    m: &NewMessage,
    now: i64,
) -> RepoResult<()> {
    sql::insert_notification(
        &mut **tx,
        &m.id.to_string(),
        &m.user_id.to_string(),
        m.task_id.map(|t| t.to_string()).as_deref(),
        m.channel.as_str(),
        m.event.as_str(),
        &m.target,
        m.endpoint_id.map(|e| e.to_string()).as_deref(),
        &m.payload,
        now,
    )
    .await?;
    Ok(())
}

/// Queue the messages the task's `event` owes, inside the transaction that records it.
pub(super) async fn write_outbox(
    tx: &mut Transaction<'_, Sqlite>,
    options: OutboxOptions,
    task_id: &str,
    event: Event,
    now: i64,
) -> RepoResult<()> {
    let Some(row) = sql::task_by_id(&mut **tx, task_id).await? else {
        return Ok(());
    };
    let task = task_from_row(row)?;
    let user = task.user_id.to_string();
    let Some(settings) = sql::notify_settings(&mut **tx, &user).await? else {
        return Ok(());
    };
    let settings = settings_from_row(settings)?;
    let endpoints = sql::subscribed_endpoints(&mut **tx, &user, event.as_str())
        .await?
        .into_iter()
        .map(|e| Ok((uuid(&e.id)?, e.url)))
        .collect::<RepoResult<Vec<_>>>()?;
    for m in outbox_messages(event, &task, &settings, &endpoints, options, time(now)?) {
        insert_message(tx, &m, now).await?;
    }
    Ok(())
}

impl SqliteRepo {
    /// The tasks, each with its notifications.
    pub(super) async fn with_notifications(
        &self,
        tasks: Vec<TaskRecord>,
    ) -> RepoResult<Vec<TaskRecord>> {
        if tasks.is_empty() {
            return Ok(tasks);
        }
        let ids = to_json(&tasks.iter().map(|t| t.id.to_string()).collect::<Vec<_>>())?;
        let rows = sql::notifications_of_tasks(&self.pool, &ids).await?;
        let notifications = rows
            .into_iter()
            .map(notification_from_row)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(attach(tasks, notifications))
    }
}

#[async_trait]
impl NotificationRepo for SqliteRepo {
    async fn notify_settings(&self, user: Uuid) -> RepoResult<Option<NotifySettings>> {
        sql::notify_settings(&self.pool, &user.to_string())
            .await?
            .map(settings_from_row)
            .transpose()
    }

    async fn set_email_preferences(&self, user: Uuid, p: EmailPreferences) -> RepoResult<bool> {
        let user = user.to_string();
        Ok(sql::set_email_preferences(&self.pool, &user, p.on_success, p.on_failure).await? == 1)
    }

    async fn webhook_secret(&self, user: Uuid, fresh: &str) -> RepoResult<Option<SigningSecrets>> {
        sql::create_webhook_secret(&self.pool, &user.to_string(), fresh).await?;
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
        let id = user.to_string();
        sql::rotate_webhook_secret(&self.pool, &id, fresh, millis(old_until)).await?;
        Ok(self
            .notify_settings(user)
            .await?
            .and_then(|s| s.webhook_secret))
    }

    async fn create_endpoint(&self, user: Uuid, new: NewEndpoint) -> RepoResult<Endpoint> {
        let id = Uuid::now_v7();
        let now = now_ms();
        sql::insert_endpoint(
            &self.pool,
            &id.to_string(),
            &user.to_string(),
            &new.url,
            &events_json(&new.events).to_string(),
            new.enabled,
            &new.secret,
            now,
        )
        .await?;
        Ok(Endpoint {
            id,
            user_id: user,
            url: new.url,
            events: new.events,
            enabled: new.enabled,
            disabled_reason: None,
            secrets: SigningSecrets {
                current: new.secret,
                previous: None,
            },
            failing_since: None,
            created_at: time(now)?,
        })
    }

    async fn endpoints(&self, user: Uuid) -> RepoResult<Vec<Endpoint>> {
        sql::endpoints_of_user(&self.pool, &user.to_string())
            .await?
            .into_iter()
            .map(endpoint_from_row)
            .collect()
    }

    async fn endpoint(&self, user: Uuid, id: Uuid) -> RepoResult<Option<Endpoint>> {
        sql::endpoint_of_user(&self.pool, &id.to_string(), &user.to_string())
            .await?
            .map(endpoint_from_row)
            .transpose()
    }

    async fn endpoint_for_delivery(&self, id: Uuid) -> RepoResult<Option<Endpoint>> {
        sql::endpoint_by_id(&self.pool, &id.to_string())
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
        let events = events_json(&update.events).to_string();
        let (id_s, user_s) = (id.to_string(), user.to_string());
        let n = sql::update_endpoint(
            &self.pool,
            &id_s,
            &user_s,
            &update.url,
            &events,
            update.enabled,
        )
        .await?;
        if n == 0 {
            return Ok(None);
        }
        self.endpoint(user, id).await
    }

    async fn delete_endpoint(&self, user: Uuid, id: Uuid) -> RepoResult<bool> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await?;
        if sql::delete_endpoint(&mut *tx, &id, &user.to_string()).await? != 1 {
            return Ok(false);
        }
        sql::cancel_queued_of_endpoint(&mut *tx, &id, "the endpoint was deleted").await?;
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
        let (id_s, user_s) = (id.to_string(), user.to_string());
        let n = sql::rotate_endpoint_secret(&self.pool, &id_s, &user_s, fresh, millis(old_until))
            .await?;
        if n == 0 {
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
        let rows = sql::attempts_of_endpoint(&self.pool, &id.to_string(), i64::from(limit)).await?;
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
        let n = sql::redeliver_notification(
            &self.pool,
            &message.to_string(),
            &endpoint.to_string(),
            &user.to_string(),
            millis(now),
        )
        .await?;
        Ok(n == 1)
    }

    async fn queue_message(&self, message: NewMessage, now: DateTime<Utc>) -> RepoResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_message(&mut tx, &message, millis(now)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn notification(&self, id: Uuid) -> RepoResult<Option<Notification>> {
        sql::notification_by_id(&self.pool, &id.to_string())
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
        let now = millis(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sql::claim_notification(&mut *tx, owner, now + ms(lease), now).await?;
        tx.commit().await?;
        row.map(notification_from_row).transpose()
    }

    async fn renew_notification(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let n = sql::renew_notification(&self.pool, &id.to_string(), owner, millis(until)).await?;
        Ok(n == 1)
    }

    async fn end_delivery(
        &self,
        n: &Notification,
        owner: &str,
        end: &DeliveryEnd,
        attempt: Option<&AttemptRecord>,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let (id, now_ms) = (n.id.to_string(), millis(now));
        let endpoint = n.endpoint_id.map(|e| e.to_string());
        let mut tx = self.pool.begin().await?;
        let changed = match end {
            DeliveryEnd::Sent => {
                sql::end_notification(&mut *tx, &id, owner, "sent", None, Some(now_ms)).await?
            }
            DeliveryEnd::Retry { error, at } => {
                sql::retry_notification(&mut *tx, &id, owner, error, millis(*at)).await?
            }
            DeliveryEnd::Failed(e) => {
                sql::end_notification(&mut *tx, &id, owner, "failed", Some(e), None).await?
            }
            DeliveryEnd::Cancelled(e) => {
                sql::end_notification(&mut *tx, &id, owner, "cancelled", Some(e), None).await?
            }
        };
        if changed != 1 {
            return Ok(false);
        }
        if let Some(a) = attempt {
            sql::insert_attempt(
                &mut *tx,
                &Uuid::now_v7().to_string(),
                &id,
                endpoint.as_deref(),
                i64::from(n.attempts),
                a.status_code.map(i64::from),
                a.error.as_deref(),
                ms(a.latency),
                now_ms,
            )
            .await?;
            if let Some(endpoint) = &endpoint {
                match end {
                    DeliveryEnd::Sent => {
                        sql::endpoint_succeeded(&mut *tx, endpoint).await?;
                    }
                    DeliveryEnd::Retry { .. } | DeliveryEnd::Failed(_) => {
                        sql::endpoint_failed(&mut *tx, endpoint, now_ms).await?;
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
        let id = id.to_string();
        let mut tx = self.pool.begin().await?;
        if sql::disable_endpoint(&mut *tx, &id, reason).await? != 1 {
            return Ok(false);
        }
        let why = format!("the endpoint was disabled: {reason}");
        sql::cancel_queued_of_endpoint(&mut *tx, &id, &why).await?;
        if let Some(m) = notice {
            insert_message(&mut tx, &m, millis(now)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn next_notification_in(&self, now: DateTime<Utc>) -> RepoResult<Option<Duration>> {
        let next = sql::next_notification_at(&self.pool).await?;
        next.map(|t| Ok(until(time(t)?, now))).transpose()
    }

    async fn create_password_reset(
        &self,
        reset: NewPasswordReset,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let now = millis(now);
        let mut tx = self.pool.begin().await?;
        sql::insert_password_reset(
            &mut *tx,
            &reset.id.to_string(),
            &reset.user_id.to_string(),
            &reset.token_hash,
            now,
            millis(reset.expires_at),
        )
        .await?;
        if let Some(m) = &reset.message {
            insert_message(&mut tx, m, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn resets_since(&self, user: Uuid, since: DateTime<Utc>) -> RepoResult<u32> {
        let n = sql::resets_since(&self.pool, &user.to_string(), millis(since)).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<Uuid>> {
        let now = millis(now);
        let mut tx = self.pool.begin().await?;
        let Some(user) = sql::use_password_reset(&mut *tx, token_hash, now).await? else {
            return Ok(None);
        };
        if sql::set_password_hash(&mut *tx, &user, password_hash).await? != 1 {
            return Ok(None);
        }
        sql::delete_sessions_of_user(&mut *tx, &user).await?;
        sql::end_password_resets(&mut *tx, &user, now).await?;
        tx.commit().await?;
        uuid(&user).map(Some)
    }
}
