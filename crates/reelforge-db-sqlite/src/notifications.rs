//! The statements of notifications: e-mail preferences and the default webhook secret,
//! webhook endpoints, the outbox (`notifications`, also the queue of deliveries), the
//! delivery log and password resets.

use sqlx::SqliteExecutor;

use crate::Result;

/// What a user's notifications need to know about the user.
#[derive(Debug)]
pub struct NotifySettingsRow {
    pub username: String,
    pub email: String,
    pub disabled: bool,
    pub email_on_success: bool,
    pub email_on_failure: bool,
    pub webhook_secret: Option<String>,
    pub webhook_secret_old: Option<String>,
    pub webhook_secret_old_until: Option<i64>,
}

/// A row of `webhook_endpoints`; `events` is a JSON array.
#[derive(Debug)]
pub struct EndpointRow {
    pub id: String,
    pub user_id: String,
    pub url: String,
    pub events: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub secret_old: Option<String>,
    pub secret_old_until: Option<i64>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
}

/// A row of `notifications`.
#[derive(Debug)]
pub struct NotificationRow {
    pub id: String,
    pub user_id: String,
    pub task_id: Option<String>,
    pub channel: String,
    pub event: String,
    pub target: String,
    pub endpoint_id: Option<String>,
    pub payload: String,
    pub state: String,
    pub run_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub created_at: i64,
}

/// One line of an endpoint's delivery log.
#[derive(Debug)]
pub struct AttemptRow {
    pub id: String,
    pub notification_id: String,
    pub event: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub created_at: i64,
}

// --- users -------------------------------------------------------------------------------

pub async fn notify_settings(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
) -> Result<Option<NotifySettingsRow>> {
    sqlx::query_as!(
        NotifySettingsRow,
        r#"SELECT username, email, disabled AS "disabled: bool",
                  email_on_success AS "email_on_success: bool",
                  email_on_failure AS "email_on_failure: bool",
                  webhook_secret, webhook_secret_old, webhook_secret_old_until
           FROM users WHERE id = ?"#,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// Rows changed (0: no such user).
pub async fn set_email_preferences(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    on_success: bool,
    on_failure: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET email_on_success = ?, email_on_failure = ? WHERE id = ?",
        on_success,
        on_failure,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The user's default webhook secret, if there is none yet. Rows changed.
pub async fn create_webhook_secret(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    secret: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET webhook_secret = ? WHERE id = ? AND webhook_secret IS NULL",
        secret,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A new default secret; the current one stays valid until `old_until`. Rows changed.
pub async fn rotate_webhook_secret(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    secret: &str,
    old_until: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE users SET webhook_secret_old = webhook_secret,
                webhook_secret_old_until = CASE WHEN webhook_secret IS NULL THEN NULL ELSE ? END,
                webhook_secret = ?
         WHERE id = ?",
        old_until,
        secret,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- webhook endpoints -------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_endpoint(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    url: &str,
    events: &str,
    enabled: bool,
    secret: &str,
    created_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, user_id, url, events, enabled, secret, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        id,
        user_id,
        url,
        events,
        enabled,
        secret,
        created_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// `SELECT <every EndpointRow column> FROM webhook_endpoints <tail>`.
macro_rules! select_endpoints {
    ($tail:tt, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            EndpointRow,
            r#"SELECT id, user_id, url, events, enabled AS "enabled: bool", disabled_reason,
                      secret, secret_old, secret_old_until, failing_since, created_at
               FROM webhook_endpoints "# + $tail,
            $($arg),*
        )
    };
}

pub async fn endpoints_of_user(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
) -> Result<Vec<EndpointRow>> {
    select_endpoints!("WHERE user_id = ? ORDER BY id", user_id)
        .fetch_all(db)
        .await
}

pub async fn endpoint_of_user(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
) -> Result<Option<EndpointRow>> {
    select_endpoints!("WHERE id = ? AND user_id = ?", id, user_id)
        .fetch_optional(db)
        .await
}

/// Any user's endpoint (deliveries).
pub async fn endpoint_by_id(db: impl SqliteExecutor<'_>, id: &str) -> Result<Option<EndpointRow>> {
    select_endpoints!("WHERE id = ?", id)
        .fetch_optional(db)
        .await
}

/// The user's enabled endpoints subscribed to `event` (`events` holds `"event"`).
pub async fn subscribed_endpoints(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    event: &str,
) -> Result<Vec<EndpointRow>> {
    select_endpoints!(
        "WHERE user_id = ?1 AND enabled = 1
           AND EXISTS (SELECT 1 FROM json_each(events) WHERE value = ?2)
         ORDER BY id",
        user_id,
        event,
    )
    .fetch_all(db)
    .await
}

/// Rows changed. Re-enabling clears the reason and the failure streak.
pub async fn update_endpoint(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    url: &str,
    events: &str,
    enabled: bool,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET url = ?1, events = ?2,
                disabled_reason = CASE WHEN ?3 THEN NULL ELSE disabled_reason END,
                failing_since = CASE WHEN ?3 AND enabled = 0 THEN NULL ELSE failing_since END,
                enabled = ?3
         WHERE id = ?4 AND user_id = ?5",
        url,
        events,
        enabled,
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

pub async fn delete_endpoint(db: impl SqliteExecutor<'_>, id: &str, user_id: &str) -> Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM webhook_endpoints WHERE id = ? AND user_id = ?",
        id,
        user_id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A new secret; the current one stays valid until `old_until`. Rows changed.
pub async fn rotate_endpoint_secret(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    secret: &str,
    old_until: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET secret_old = secret, secret_old_until = ?, secret = ?
         WHERE id = ? AND user_id = ?",
        old_until,
        secret,
        id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A delivery to the endpoint failed at `now`: the streak starts unless it runs already.
/// Returns when the streak began.
pub async fn endpoint_failed(
    db: impl SqliteExecutor<'_>,
    id: &str,
    now: i64,
) -> Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?)
           WHERE id = ? RETURNING failing_since AS "failing_since!: i64""#,
        now,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn endpoint_succeeded(db: impl SqliteExecutor<'_>, id: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL",
        id
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Enabled → disabled with `reason`. Rows changed (0: already disabled, or gone).
pub async fn disable_endpoint(db: impl SqliteExecutor<'_>, id: &str, reason: &str) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ? WHERE id = ? AND enabled = 1",
        reason,
        id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- the outbox --------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_notification(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    task_id: Option<&str>,
    channel: &str,
    event: &str,
    target: &str,
    endpoint_id: Option<&str>,
    payload: &str,
    now: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO notifications (id, user_id, task_id, channel, event, target, endpoint_id,
                                    payload, state, run_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?9)",
        id,
        user_id,
        task_id,
        channel,
        event,
        target,
        endpoint_id,
        payload,
        now,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Take the next due delivery (queued and due, or running with an expired lease) for
/// `owner` until `lease_expires_at`, counting an attempt.
pub async fn claim_notification(
    db: impl SqliteExecutor<'_>,
    owner: &str,
    lease_expires_at: i64,
    now: i64,
) -> Result<Option<NotificationRow>> {
    sqlx::query_as!(
        NotificationRow,
        r#"UPDATE notifications SET state = 'running', lease_owner = ?1, lease_expires_at = ?2,
                  attempts = attempts + 1
           WHERE id = (SELECT id FROM notifications
                        WHERE (state = 'queued' AND run_at <= ?3)
                           OR (state = 'running' AND lease_expires_at < ?3)
                        ORDER BY run_at, id LIMIT 1)
           RETURNING id AS "id!", user_id AS "user_id!", task_id, channel AS "channel!",
                     event AS "event!", target AS "target!", endpoint_id,
                     payload AS "payload!", state AS "state!", run_at AS "run_at!",
                     attempts AS "attempts!", last_error, sent_at,
                     created_at AS "created_at!""#,
        owner,
        lease_expires_at,
        now,
    )
    .fetch_optional(db)
    .await
}

/// Extend the lease of a delivery `owner` holds. Rows changed.
pub async fn renew_notification(
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
    lease_expires_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET lease_expires_at = ?
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
        lease_expires_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// The end of a delivery held by `owner`: `sent`, `failed` or `cancelled`. Rows changed.
pub async fn end_notification(
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
    state: &str,
    last_error: Option<&str>,
    sent_at: Option<i64>,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = ?, last_error = ?, sent_at = ?,
                lease_owner = NULL, lease_expires_at = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
        state,
        last_error,
        sent_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Back to the queue, due at `run_at`. Rows changed.
pub async fn retry_notification(
    db: impl SqliteExecutor<'_>,
    id: &str,
    owner: &str,
    last_error: &str,
    run_at: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = 'queued', last_error = ?, run_at = ?,
                lease_owner = NULL, lease_expires_at = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'running'",
        last_error,
        run_at,
        id,
        owner,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// A finished webhook delivery of the user's endpoint, queued again with fresh attempts
/// (same id). Rows changed.
pub async fn redeliver_notification(
    db: impl SqliteExecutor<'_>,
    id: &str,
    endpoint_id: &str,
    user_id: &str,
    now: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = 'queued', run_at = ?, attempts = 0, last_error = NULL,
                sent_at = NULL
         WHERE id = ? AND endpoint_id = ? AND user_id = ?
           AND state IN ('sent', 'failed', 'cancelled')",
        now,
        id,
        endpoint_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// When the next delivery is due (a queued one's `run_at`, a running one's lease expiry).
pub async fn next_notification_at(db: impl SqliteExecutor<'_>) -> Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT MIN(t) AS "t: i64" FROM (
             SELECT MIN(run_at) AS t FROM notifications WHERE state = 'queued'
             UNION ALL
             SELECT MIN(lease_expires_at) FROM notifications WHERE state = 'running')"#
    )
    .fetch_one(db)
    .await
}

/// `SELECT <every NotificationRow column> FROM notifications <tail>`.
macro_rules! select_notifications {
    ($tail:tt, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            NotificationRow,
            r#"SELECT id, user_id, task_id, channel, event, target, endpoint_id, payload, state,
                      run_at, attempts, last_error, sent_at, created_at
               FROM notifications "# + $tail,
            $($arg),*
        )
    };
}

/// The notifications of the tasks whose ids are in the JSON array `task_ids`, oldest first.
pub async fn notifications_of_tasks(
    db: impl SqliteExecutor<'_>,
    task_ids: &str,
) -> Result<Vec<NotificationRow>> {
    select_notifications!(
        "WHERE task_id IN (SELECT value FROM json_each(?)) ORDER BY id",
        task_ids
    )
    .fetch_all(db)
    .await
}

pub async fn notification_by_id(
    db: impl SqliteExecutor<'_>,
    id: &str,
) -> Result<Option<NotificationRow>> {
    select_notifications!("WHERE id = ?", id)
        .fetch_optional(db)
        .await
}

/// Queued deliveries to the endpoint end as `cancelled` with `reason`. Rows changed.
pub async fn cancel_queued_of_endpoint(
    db: impl SqliteExecutor<'_>,
    endpoint_id: &str,
    reason: &str,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE notifications SET state = 'cancelled', last_error = ?
         WHERE endpoint_id = ? AND state = 'queued'",
        reason,
        endpoint_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

// --- the delivery log --------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
pub async fn insert_attempt(
    db: impl SqliteExecutor<'_>,
    id: &str,
    notification_id: &str,
    endpoint_id: Option<&str>,
    attempt: i64,
    status_code: Option<i64>,
    error: Option<&str>,
    latency_ms: i64,
    created_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_attempts (id, notification_id, endpoint_id, attempt, status_code,
                                       error, latency_ms, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        id,
        notification_id,
        endpoint_id,
        attempt,
        status_code,
        error,
        latency_ms,
        created_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The endpoint's latest attempts, newest first.
pub async fn attempts_of_endpoint(
    db: impl SqliteExecutor<'_>,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<AttemptRow>> {
    sqlx::query_as!(
        AttemptRow,
        r#"SELECT a.id AS "id!", a.notification_id AS "notification_id!", n.event AS "event!",
                  a.attempt AS "attempt!", a.status_code, a.error,
                  a.latency_ms AS "latency_ms!", a.created_at AS "created_at!"
           FROM webhook_attempts a JOIN notifications n ON n.id = a.notification_id
           WHERE a.endpoint_id = ? ORDER BY a.id DESC LIMIT ?"#,
        endpoint_id,
        limit,
    )
    .fetch_all(db)
    .await
}

// --- password resets ---------------------------------------------------------------------

pub async fn insert_password_reset(
    db: impl SqliteExecutor<'_>,
    id: &str,
    user_id: &str,
    token_hash: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?)",
        id,
        user_id,
        token_hash,
        created_at,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Resets asked for the user since `since`.
pub async fn resets_since(db: impl SqliteExecutor<'_>, user_id: &str, since: i64) -> Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COUNT(*) AS "n!: i64" FROM password_resets WHERE user_id = ? AND created_at >= ?"#,
        user_id,
        since,
    )
    .fetch_one(db)
    .await
}

/// Use the live reset of `token_hash`: its user, or `None` (unknown, used or expired).
pub async fn use_password_reset(
    db: impl SqliteExecutor<'_>,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>> {
    sqlx::query_scalar!(
        r#"UPDATE password_resets SET used_at = ?1
           WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
           RETURNING user_id AS "user_id!""#,
        now,
        token_hash,
    )
    .fetch_optional(db)
    .await
}

/// Every other reset of the user ends too (one reset ends them all). Rows changed.
pub async fn end_password_resets(
    db: impl SqliteExecutor<'_>,
    user_id: &str,
    now: i64,
) -> Result<u64> {
    let r = sqlx::query!(
        "UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
        now,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
