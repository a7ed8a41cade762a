//! What every request leaves behind: its metrics. Labels come from closed sets, because a
//! Prometheus series lives for the life of the process: a label taken from the request as
//! sent (a made-up method, a random path) would let any client grow `/metrics` without bound.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// The label of every method outside the standard set.
const OTHER_METHOD: &str = "other";
/// The label of every request no route matched (404s of random paths).
const UNMATCHED_ROUTE: &str = "unmatched";

/// Request count and latency by method, matched route and status.
pub(super) async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_label(&req);
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = status_label(resp.status());
    metrics::counter!(crate::telemetry::HTTP_REQUESTS,
        "method" => method, "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!(crate::telemetry::HTTP_DURATION, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
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
