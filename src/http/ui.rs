//! The web UI: a few static files from `ui/`, embedded in the binary (no Node at build or
//! run time, nothing fetched from elsewhere). `GET /` is its page; the scripts call the
//! same API as every client, with the browser session's cookie.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorBody};

/// `(name under /ui/, media type, bytes)`. hls.js is only fetched by a page that plays HLS
/// in a browser without native HLS.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/app.css"),
    ),
    (
        "hls.light.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/vendor/hls.light.min.js"),
    ),
];

const PAGE: &str = include_str!("../../ui/index.html");

/// What every UI response may load and do: this origin only; media from `blob:` (hls.js
/// feeds the video element through MediaSource); no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Where the page carries the browser session (its user and CSRF token), so a page load
/// needs no extra request and a visitor without one sees no failed request.
const SESSION_SLOT: &str = "<!--session-->";

/// The web UI (load balancers health-check `/`: it always answers 200).
#[utoipa::path(get, path = "/", tag = "service",
    responses((status = 200, description = "The web UI's page (HTML)")))]
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match super::session::request_session(&state, &Method::GET, &headers).await {
        Ok(Some(session)) => super::session::session_body(&state, &session).await.ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = ?e, "could not read the session of a page load");
            None
        }
    };
    let data = session
        .and_then(|s| serde_json::to_string(&s).ok())
        .unwrap_or_else(|| "null".into())
        // Inside <script>: no `</script>` or `<!--` can come out of the data.
        .replace('<', "\\u003c");
    let html = PAGE.replace(
        SESSION_SLOT,
        &format!(r#"<script id="session" type="application/json">{data}</script>"#),
    );
    let mut r = served("text/html; charset=utf-8", html.into_bytes());
    // It carries this visitor's CSRF token.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A script or style sheet of the UI.
#[utoipa::path(get, path = "/ui/{file}", tag = "service",
    params(("file" = String, Path, description = "app.js, app.css or hls.light.min.js")),
    responses((status = 200, description = "The file"), (status = 404, body = ErrorBody)))]
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media_type, bytes)) => served(media_type, *bytes),
        None => ApiError::not_found().into_response(),
    }
}

fn served(media_type: &'static str, bytes: impl Into<axum::body::Body>) -> Response {
    let mut r = (StatusCode::OK, bytes.into()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    // Revalidated on every load: a new binary's UI is never mixed with an old one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}
