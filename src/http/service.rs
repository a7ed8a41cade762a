//! Service routes: `/healthz`, `/readyz`, `/metrics` (the UI's `/` is in `ui.rs`).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ErrorBody, error_response};
use crate::domain::ErrorCode;

/// 200 while the process lives.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 only when the database and storage answer.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, description = "ready"), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (db, store) = tokio::join!(state.db.ping(), state.storage.ping());
    match (db, store) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready").into_response(),
        (Err(e), _) => {
            tracing::warn!(error = %e, "database not ready");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotReady,
                "the database does not answer",
            )
        }
        (_, Err(e)) => {
            tracing::warn!(error = %e, "storage not ready");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotReady,
                "the storage does not answer",
            )
        }
    }
}

/// Stored bytes (in total, the largest user's, and the users at their quota), read at most
/// once a minute: the sum walks every task, too much for every scrape of a big install.
/// Per-user figures are on the admin page, not in labels (one series per user would not
/// scale).
async fn storage_figures(state: &AppState) {
    use crate::telemetry::{STORED_BYTES, USER_STORED_BYTES_MAX, USERS_AT_QUOTA};
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    {
        let Ok(mut last) = LAST.lock() else { return };
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(60)) {
            return;
        }
        *last = Some(std::time::Instant::now());
    }
    match state.db.stored_bytes_by_user().await {
        Ok(users) => {
            let total: u64 = users.iter().map(|u| u.bytes).sum();
            let largest = users.first().map_or(0, |u| u.bytes);
            let at_quota = state
                .user_quota
                .map_or(0, |q| users.iter().filter(|u| u.bytes >= q).count());
            metrics::gauge!(STORED_BYTES).set(total as f64);
            metrics::gauge!(USER_STORED_BYTES_MAX).set(largest as f64);
            metrics::gauge!(USERS_AT_QUOTA).set(at_quota as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not sum stored bytes for metrics"),
    }
}

/// Prometheus text format. Figures of the database, the storage and the scratch disk are
/// read now, for this scrape.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    use crate::telemetry::{QUEUE_OLDEST, READY, SCRATCH_FREE, TASKS_BY_STATUS};
    let now = chrono::Utc::now();
    let (counts, oldest, db_ping, store_ping) = tokio::join!(
        state.db.count_by_status(),
        state.db.oldest_due_job(now),
        state.db.ping(),
        state.storage.ping()
    );
    match counts {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!(TASKS_BY_STATUS, "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count tasks for metrics"),
    }
    match oldest {
        Ok(due) => {
            let waited = due.map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0));
            metrics::gauge!(QUEUE_OLDEST).set(waited);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the queue's age for metrics"),
    }
    storage_figures(&state).await;
    let ready = db_ping.is_ok() && store_ping.is_ok();
    metrics::gauge!(READY).set(if ready { 1.0 } else { 0.0 });
    if let Some(dir) = &state.scratch_dir {
        match crate::os::free_bytes(dir) {
            Ok(free) => metrics::gauge!(SCRATCH_FREE).set(free as f64),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "could not read the scratch space")
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
