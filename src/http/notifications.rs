//! The user's notification settings: e-mail preferences (`/api/account/notifications`),
//! webhook endpoints (`/api/webhooks`), their delivery log, test events and redelivery, and
//! the default webhook secret (it signs a task's own `webhook_url`).
//!
//! A destination is checked against the fetch policy here, when it is registered, and
//! again by the deliverer at every attempt (`notify::webhook`). Secrets are shown when
//! made (creation, rotation) and on the default-secret route; never in a list or a log.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AuthUser, body_bytes, parse_json};
use super::tasks::{checked_webhook_url, task_id};
use crate::db::{
    DeliveryAttempt, Endpoint, EndpointUpdate, NewEndpoint, NewMessage, SigningSecrets,
};
use crate::domain::ErrorCode;
use crate::domain::notification::{Channel, EmailPreferences, Event, event_body, message_id};
use crate::notify::sign::new_secret;

/// How long a rotated-out secret still signs deliveries.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Endpoints per user.
pub const MAX_ENDPOINTS: usize = 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<Event>,
    pub enabled: bool,
    /// Why the service disabled it (`410 Gone`, five days of failed deliveries).
    pub disabled_reason: Option<String>,
    /// Since when its deliveries fail with no success between; `null` when healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret (after a rotation) still signs deliveries.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An endpoint with its new secret: the answer to creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Shown now only.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// The events an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum TaskEvent {
    #[serde(rename = "task.started")]
    Started,
    #[serde(rename = "task.succeeded")]
    Succeeded,
    #[serde(rename = "task.failed")]
    Failed,
    #[serde(rename = "task.cancelled")]
    Cancelled,
}

impl From<TaskEvent> for Event {
    fn from(e: TaskEvent) -> Event {
        match e {
            TaskEvent::Started => Event::TaskStarted,
            TaskEvent::Succeeded => Event::TaskSucceeded,
            TaskEvent::Failed => Event::TaskFailed,
            TaskEvent::Cancelled => Event::TaskCancelled,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `http` or `https`; checked against the same address rules as URL fetches.
    pub url: String,
    /// The events to send (default: all four).
    #[schema(min_items = 1)]
    pub events: Option<Vec<TaskEvent>>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    pub url: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<TaskEvent>>,
    /// `true` re-enables an endpoint the service disabled.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// The message (`webhook-id`).
    pub message_id: String,
    pub event: Event,
    pub attempt: u32,
    /// The receiver's HTTP status; `null` when there was no answer.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// The message queued (`webhook-id`).
    pub message_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveriesParams {
    /// 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DefaultSecret {
    /// `whsec_…`: verifies deliveries to a task's own `webhook_url`.
    pub secret: String,
    /// Until when the previous secret (after a rotation) still signs deliveries.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

fn view(e: &Endpoint) -> EndpointView {
    EndpointView {
        id: e.id,
        url: e.url.clone(),
        events: e.events.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since,
        previous_secret_expires_at: e.secrets.previous.as_ref().map(|(_, until)| *until),
        created_at: e.created_at,
    }
}

fn with_secret(e: &Endpoint) -> EndpointWithSecret {
    EndpointWithSecret {
        endpoint: view(e),
        secret: e.secrets.current.clone(),
    }
}

fn default_secret(s: SigningSecrets) -> DefaultSecret {
    DefaultSecret {
        secret: s.current,
        previous_secret_expires_at: s.previous.map(|(_, until)| until),
    }
}

fn overlap_end() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(ROTATION_OVERLAP.as_secs() as i64)
}

fn events_or_all(events: Option<Vec<TaskEvent>>) -> ApiResult<Vec<Event>> {
    let Some(events) = events else {
        return Ok(Event::TASK_EVENTS.to_vec());
    };
    if events.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            "`events` must name at least one of task.started, task.succeeded, task.failed, \
             task.cancelled",
        ));
    }
    // In the canonical order, each once.
    let given: Vec<Event> = events.into_iter().map(Event::from).collect();
    Ok(Event::TASK_EVENTS
        .into_iter()
        .filter(|e| given.contains(e))
        .collect())
}

async fn owned_endpoint(state: &AppState, user: AuthUser, id: &str) -> ApiResult<Endpoint> {
    state
        .db
        .endpoint(user.id, task_id(id)?)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// The user's webhook endpoints.
#[utoipa::path(get, path = "/api/webhooks", tag = "notifications",
    responses((status = 200, body = [EndpointView])),
    security(("bearer" = [])))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<EndpointView>>> {
    let endpoints = state.db.endpoints(user.id).await?;
    Ok(Json(endpoints.iter().map(view).collect()))
}

/// Register an endpoint; its secret is in the answer, and only there.
#[utoipa::path(post, path = "/api/webhooks", tag = "notifications",
    request_body = CreateEndpoint,
    responses(
        (status = 201, body = EndpointWithSecret),
        (status = 400, body = ErrorBody, description = "a malformed URL or event list"),
        (status = 409, body = ErrorBody, description = "`too_many_endpoints`: you have 20 already"),
        (status = 422, body = ErrorBody, description = "`url_not_allowed`: the URL's host is private, loopback or reserved, or does not resolve"),
    ),
    security(("bearer" = [])))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    req: Request,
) -> ApiResult<Response> {
    let body: CreateEndpoint = parse_json(&body_bytes(req).await?)?;
    let events = events_or_all(body.events)?;
    let url = checked_webhook_url(&state, "url", &body.url).await?;
    if state.db.endpoints(user.id).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TooManyEndpoints,
            format!("you have {MAX_ENDPOINTS} endpoints already; delete one first"),
        ));
    }
    let endpoint = state
        .db
        .create_endpoint(
            user.id,
            NewEndpoint {
                url,
                events,
                enabled: body.enabled.unwrap_or(true),
                secret: new_secret(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(with_secret(&endpoint))).into_response())
}

/// One endpoint.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    Ok(Json(view(&owned_endpoint(&state, user, &id).await?)))
}

/// Change an endpoint's URL, events, or enabled flag (re-enabling clears what disabled it).
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "notifications",
    params(("id" = String, Path)),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, body = EndpointView),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`url_not_allowed`"),
    ),
    security(("bearer" = [])))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<EndpointView>> {
    let current = owned_endpoint(&state, user, &id).await?;
    let body: UpdateEndpoint = parse_json(&body_bytes(req).await?)?;
    let url = match body.url {
        Some(raw) => checked_webhook_url(&state, "url", &raw).await?,
        None => current.url,
    };
    let events = match body.events {
        Some(events) => events_or_all(Some(events))?,
        None => current.events,
    };
    let update = EndpointUpdate {
        url,
        events,
        enabled: body.enabled.unwrap_or(current.enabled),
    };
    let endpoint = state
        .db
        .update_endpoint(user.id, current.id, update)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(view(&endpoint)))
}

/// Remove an endpoint; its queued deliveries are cancelled.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.db.delete_endpoint(user.id, task_id(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

/// A new secret for the endpoint. The old one keeps signing (beside the new one) for 24 h,
/// so receivers can switch without missing a delivery.
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointWithSecret>> {
    let endpoint = state
        .db
        .rotate_endpoint_secret(user.id, task_id(&id)?, &new_secret(), overlap_end())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(with_secret(&endpoint)))
}

/// Queue a `webhook.test` event to the endpoint (even a disabled one is not sent to: enable
/// it first).
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 202, body = Queued), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the endpoint is disabled")),
    security(("bearer" = [])))]
pub async fn send_test(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let endpoint = owned_endpoint(&state, user, &id).await?;
    if !endpoint.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::EndpointDisabled,
            "the endpoint is disabled; enable it to send it events",
        ));
    }
    let now = Utc::now();
    let data = serde_json::json!({
        "endpoint_id": endpoint.id,
        "message": "a test event from Reelforge",
    });
    let message = NewMessage {
        id: Uuid::now_v7(),
        user_id: user.id,
        task_id: None,
        channel: Channel::Webhook,
        event: Event::WebhookTest,
        target: endpoint.url.clone(),
        endpoint_id: Some(endpoint.id),
        payload: event_body(Event::WebhookTest, now, &data),
    };
    let id = message.id;
    state.db.queue_message(message, now).await?;
    state.signals.message_queued();
    Ok(accepted(id))
}

fn accepted(id: Uuid) -> Response {
    let body = Queued {
        message_id: message_id(id),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// The endpoint's latest delivery attempts, newest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "notifications",
    params(("id" = String, Path), DeliveriesParams),
    responses((status = 200, body = [AttemptView]), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(params): Query<DeliveriesParams>,
) -> ApiResult<Json<Vec<AttemptView>>> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            "limit must be between 1 and 100",
        ));
    }
    let attempts = state
        .db
        .endpoint_attempts(user.id, task_id(&id)?, limit)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(attempts.iter().map(attempt_view).collect()))
}

fn attempt_view(a: &DeliveryAttempt) -> AttemptView {
    AttemptView {
        message_id: message_id(a.notification_id),
        event: a.event,
        attempt: a.attempt,
        status_code: a.status_code,
        error: a.error.clone(),
        latency_ms: a.latency_ms,
        at: a.at,
    }
}

/// Send a finished message (sent, failed or cancelled) to the endpoint again: same
/// `webhook-id`, a fresh round of attempts.
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{message_id}/redeliver",
    tag = "notifications",
    params(("id" = String, Path), ("message_id" = String, Path, description = "`msg_…`")),
    responses((status = 202, body = Queued),
              (status = 404, body = ErrorBody, description = "no finished message of this endpoint has that id")),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, message)): Path<(String, String)>,
) -> ApiResult<Response> {
    let endpoint = task_id(&id)?;
    let message = message
        .strip_prefix("msg_")
        .and_then(|hex| Uuid::try_parse(hex).ok())
        .ok_or_else(ApiError::not_found)?;
    if !state
        .db
        .redeliver(user.id, endpoint, message, Utc::now())
        .await?
    {
        return Err(ApiError::not_found());
    }
    state.signals.message_queued();
    Ok(accepted(message))
}

/// The default secret: it signs deliveries to a task's own `webhook_url` (made on first
/// use).
#[utoipa::path(get, path = "/api/account/webhook-secret", tag = "notifications",
    responses((status = 200, body = DefaultSecret)),
    security(("bearer" = [])))]
pub async fn get_default_secret(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<DefaultSecret>> {
    let secrets = state
        .db
        .webhook_secret(user.id, &new_secret())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(default_secret(secrets)))
}

/// A new default secret; the old one keeps signing (beside it) for 24 h.
#[utoipa::path(post, path = "/api/account/webhook-secret/rotate", tag = "notifications",
    responses((status = 200, body = DefaultSecret)),
    security(("bearer" = [])))]
pub async fn rotate_default_secret(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<DefaultSecret>> {
    let secrets = state
        .db
        .rotate_webhook_secret(user.id, &new_secret(), overlap_end())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(default_secret(secrets)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationSettings {
    /// What the service e-mails about finished tasks.
    pub email: EmailPreferences,
    /// Whether this service sends e-mail at all (an SMTP server is configured); read-only.
    #[serde(default)]
    pub email_available: bool,
}

/// The user's e-mail preferences.
#[utoipa::path(get, path = "/api/account/notifications", tag = "notifications",
    responses((status = 200, body = NotificationSettings)),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<NotificationSettings>> {
    let settings = state
        .db
        .notify_settings(user.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(NotificationSettings {
        email: settings.preferences,
        email_available: state.email_available,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    pub email: EmailPreferences,
}

/// Set the e-mail preferences (e-mail on success, on failure or cancellation, both or
/// neither).
#[utoipa::path(put, path = "/api/account/notifications", tag = "notifications",
    request_body = UpdateSettings,
    responses((status = 200, body = NotificationSettings), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    user: AuthUser,
    req: Request,
) -> ApiResult<Json<NotificationSettings>> {
    let body: UpdateSettings = parse_json(&body_bytes(req).await?)?;
    if !state.db.set_email_preferences(user.id, body.email).await? {
        return Err(ApiError::not_found());
    }
    Ok(Json(NotificationSettings {
        email: body.email,
        email_available: state.email_available,
    }))
}

/// A small self-contained page (the unsubscribe link opens in any mail client's browser).
fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · Reelforge</title>\
         <body style=\"font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;\
         padding:0 1rem\"><h1>{title}</h1>{body_html}</body></html>"
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

fn bad_link() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This link does not work",
        "<p>The unsubscribe link is incomplete or not one of ours. Copy the whole link from \
         the e-mail, or turn e-mails off on your account page.</p>",
    )
}

/// The unsubscribe link of an e-mail, opened in a browser: a page with one button.
#[utoipa::path(get, path = "/api/unsubscribe/{token}", tag = "notifications",
    params(("token" = String, Path, description = "from an e-mail's List-Unsubscribe link")),
    responses((status = 200, description = "an HTML page with a button that turns e-mail off",
               content_type = "text/html"),
              (status = 404, description = "not a valid link (an HTML page)", content_type = "text/html")))]
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let Some(user) = state.link_key.unsubscribe_user(&token) else {
        return Ok(bad_link());
    };
    let Some(settings) = state.db.notify_settings(user).await? else {
        return Ok(bad_link());
    };
    let name = crate::mail::compose::escape_html(&settings.username);
    Ok(page(
        StatusCode::OK,
        "Turn off e-mails?",
        &format!(
            "<p>Reelforge e-mails <strong>{name}</strong> when a task finishes. \
             Press the button to stop these e-mails (you can turn them on again on your \
             account page).</p><form method=\"post\"><button type=\"submit\" \
             style=\"font:inherit;padding:.5rem 1rem\">Turn off e-mails</button></form>"
        ),
    ))
}

/// RFC 8058 one-click unsubscribe (`List-Unsubscribe=One-Click`), and the page's button:
/// turns the user's task e-mails off.
#[utoipa::path(post, path = "/api/unsubscribe/{token}", tag = "notifications",
    params(("token" = String, Path, description = "from an e-mail's List-Unsubscribe link")),
    responses((status = 200, description = "e-mails are off (an HTML page)", content_type = "text/html"),
              (status = 404, description = "not a valid link (an HTML page)", content_type = "text/html")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let Some(user) = state.link_key.unsubscribe_user(&token) else {
        return Ok(bad_link());
    };
    let off = EmailPreferences {
        on_success: false,
        on_failure: false,
    };
    if !state.db.set_email_preferences(user, off).await? {
        return Ok(bad_link());
    }
    tracing::info!(%user, "e-mail notifications turned off by unsubscribe link");
    let account = state.links.account();
    Ok(page(
        StatusCode::OK,
        "E-mails are off",
        &format!(
            "<p>You will get no more e-mails about your tasks. To turn them on again, go to \
             <a href=\"{account}\">your account page</a>.</p>"
        ),
    ))
}
