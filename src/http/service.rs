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

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.db.count_by_status().await {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!(crate::telemetry::TASKS_BY_STATUS, "status" => status.as_str())
                    .set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count tasks for metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
