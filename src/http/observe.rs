//! What every request leaves behind: its metrics, and a line of the access log.
//!
//! Metric labels come from closed sets, because a Prometheus series lives for the life of the
//! process: a label taken from the request as sent (a made-up method, a random path) would
//! let any client grow `/metrics` without bound. The access log line (INFO, target
//! `reelforge::access`, off with `REELFORGE_ACCESS_LOG=false`) has the method, the matched
//! route and the path without its query (which may carry a token), the status, the latency,
//! the user a valid token named, and the client address (`REELFORGE_TRUSTED_PROXIES`).
//! Headers are never logged.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use super::AppState;

/// The label of every method outside the standard set.
const OTHER_METHOD: &str = "other";
/// The label of every request no route matched (404s of random paths).
const UNMATCHED_ROUTE: &str = "unmatched";

/// Longest path and method the access log repeats (a request line may be kilobytes long).
const MAX_LOGGED_CHARS: usize = 256;

/// Where `AuthUser` leaves the id of the user a request acted as, for the access log.
#[derive(Clone, Default)]
pub struct RequestUser(Arc<OnceLock<Uuid>>);

impl RequestUser {
    pub fn set(&self, id: Uuid) {
        let _ = self.0.set(id);
    }
}

/// Metrics and the access log line of every request.
pub(super) async fn record_request(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let route = route_label(&req);
    let method = req.method().clone();
    let seen = state.access_log.then(|| Seen::of(&req, &state));
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    record_metrics(&method, &route, resp.status(), elapsed);
    if let Some(seen) = seen {
        log_access(&seen, &method, &route, resp.status(), elapsed, &user);
    }
    resp
}

/// Request count and latency by method, matched route and status.
fn record_metrics(method: &Method, route: &str, status: StatusCode, elapsed: std::time::Duration) {
    let method = method_label(method);
    metrics::counter!(crate::telemetry::HTTP_REQUESTS,
        "method" => method, "route" => route.to_string(), "status" => status_label(status))
    .increment(1);
    metrics::histogram!(crate::telemetry::HTTP_DURATION, "method" => method, "route" => route.to_string())
        .record(elapsed.as_secs_f64());
}

/// What the access log keeps of a request before it is handed on.
struct Seen {
    path: String,
    client: String,
}

impl Seen {
    fn of(req: &Request, state: &AppState) -> Seen {
        let client = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| {
                state
                    .trusted_proxies
                    .client_ip(peer.ip(), req.headers())
                    .to_string()
            })
            .unwrap_or_else(|| "-".to_string());
        Seen {
            // `path()` leaves the query out: it may carry a token; so may a playback or
            // share path.
            path: shortened(&super::playback::logged_path(req.uri().path())),
            client,
        }
    }
}

fn log_access(
    seen: &Seen,
    method: &Method,
    route: &str,
    status: StatusCode,
    elapsed: std::time::Duration,
    user: &RequestUser,
) {
    let user = user
        .0
        .get()
        .map_or_else(|| "-".to_string(), Uuid::to_string);
    tracing::info!(
        target: "reelforge::access",
        method = %shortened(method.as_str()),
        route = %route,
        path = %seen.path,
        status = status.as_u16(),
        latency_ms = %format_args!("{:.1}", elapsed.as_secs_f64() * 1000.0),
        user = %user,
        client = %seen.client,
        "request"
    );
}

fn shortened(text: &str) -> String {
    text.chars().take(MAX_LOGGED_CHARS).collect()
}

/// The route pattern (`/api/tasks/{id}`), never the path as sent: patterns are the router's
/// own, a closed set.
fn route_label(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string())
}

/// The standard methods by name; any extension method is `other`.
pub(super) fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map(Method::as_str)
        .unwrap_or(OTHER_METHOD)
}

/// Registered status codes by number; anything else by class (`4xx`), so that at most a
/// few dozen values exist whatever a handler or a layer answers.
fn status_label(status: StatusCode) -> String {
    if status.canonical_reason().is_some() {
        return status.as_str().to_string();
    }
    format!("{}xx", status.as_u16() / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"FOO").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
        assert_eq!(status_label(StatusCode::NOT_FOUND), "404");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "5xx");
        assert_eq!(status_label(StatusCode::from_u16(299).unwrap()), "2xx");
    }
}
