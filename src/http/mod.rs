//! The HTTP edge: the router, its layers and the OpenAPI document. Handlers parse input into
//! domain types and call the repository and storage; they never run media tools.

pub mod accounts;
pub mod admin;
pub mod error;
pub mod events;
pub mod extract;
pub mod files;
pub mod keys;
pub mod limits;
pub mod notifications;
pub mod observe;
pub mod openapi;
pub mod playback;
pub mod recovery;
pub mod serve;
pub mod service;
pub mod session;
mod state;
pub mod tasks;
pub mod tus;
pub mod ui;
mod upload;
pub mod usage;

pub use state::AppState;

use crate::domain::ErrorCode;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// Legacy routes without `/api` (the video platform's clients): alias → canonical.
pub const ALIASES: [(&str, &str); 4] = [
    ("/auth/signup", "/api/auth/signup"),
    ("/auth/login", "/api/auth/login"),
    ("/tasks", "/api/tasks"),
    ("/tasks/{id}", "/api/tasks/{id}"),
];

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Reelforge", description = "Self-hosted video processing and conversion service"),
    tags(
        (name = "accounts", description = "Sign up, log in (bearer token or browser session), change password"),
        (name = "tasks", description = "Submit and follow processing tasks"),
        (name = "uploads", description = "Resumable uploads (tus 1.0): a finished upload becomes a task"),
        (name = "files", description = "Download inputs and outputs; playback URLs and share links"),
        (name = "notifications", description = "E-mail preferences and webhook endpoints (Standard Webhooks)"),
        (name = "admin", description = "Admins only: users and their tasks, invite codes, workers, queue and failures"),
        (name = "service", description = "Health, readiness, metrics"),
        (name = "aliases", description = "Legacy routes without /api: same handlers"),
    )
)]
struct ApiDoc;

/// Canonical routes with their OpenAPI operations.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(accounts::signup, accounts::signup_policy))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::account))
        .routes(routes!(usage::me))
        .routes(routes!(
            session::create_session,
            session::get_session,
            session::delete_session
        ))
        .routes(routes!(session::change_password))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(recovery::request_reset))
        .routes(routes!(recovery::confirm_reset))
        .routes(routes!(tasks::create_task, tasks::list_tasks))
        .routes(routes!(tasks::get_task, tasks::delete_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(tasks::retry_task))
        .routes(routes!(events::task_events))
        .routes(routes!(files::download_output))
        .routes(routes!(files::download_input))
        .routes(routes!(files::download_file))
        .routes(routes!(playback::playback_links))
        .routes(routes!(playback::create_share, playback::list_shares))
        .routes(routes!(playback::delete_share))
        .routes(routes!(playback::play))
        .routes(routes!(playback::shared))
        .routes(routes!(playback::go_output))
        .routes(routes!(ui::page))
        .routes(routes!(ui::asset))
        .routes(routes!(events::user_events))
        .routes(routes!(tasks::profiles))
        .routes(routes!(
            notifications::list_endpoints,
            notifications::create_endpoint
        ))
        .routes(routes!(
            notifications::get_endpoint,
            notifications::update_endpoint,
            notifications::delete_endpoint
        ))
        .routes(routes!(notifications::rotate_secret))
        .routes(routes!(notifications::send_test))
        .routes(routes!(notifications::deliveries))
        .routes(routes!(notifications::redeliver))
        .routes(routes!(notifications::get_default_secret))
        .routes(routes!(notifications::rotate_default_secret))
        .routes(routes!(
            notifications::get_settings,
            notifications::put_settings
        ))
        .routes(routes!(
            notifications::unsubscribe_page,
            notifications::unsubscribe
        ))
        .routes(routes!(admin::overview))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::update_user))
        .routes(routes!(admin::user_tasks))
        .routes(routes!(admin::user_task))
        .routes(routes!(admin::create_invite, admin::list_invites))
        .routes(routes!(admin::delete_invite))
        .routes(routes!(service::healthz))
        .routes(routes!(service::readyz))
        .routes(routes!(service::metrics))
        .merge(tus_routes())
}

/// The tus routes: every response, errors included, says `Tus-Resumable`.
fn tus_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tus::options, tus::create))
        .routes(routes!(tus::head, tus::patch, tus::terminate))
        .layer(middleware::from_fn(tus::tus_resumable))
}

/// The full OpenAPI document (see [`openapi::finish`]).
pub fn openapi() -> serde_json::Value {
    let (_, doc) = documented().split_for_parts();
    openapi::finish(doc)
}

/// The application router with every layer.
pub fn router(state: AppState) -> Router {
    let (api, doc) = documented().split_for_parts();
    let doc = openapi::finish(doc);
    let aliases = Router::new()
        .route(
            "/auth/signup",
            post(accounts::signup).get(accounts::signup_policy),
        )
        .route("/auth/login", post(accounts::login))
        .route("/tasks", post(tasks::create_task).get(tasks::list_tasks))
        .route(
            "/tasks/{id}",
            get(tasks::get_task).delete(tasks::delete_task),
        );
    Router::new()
        .merge(api)
        .merge(aliases)
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/api/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are bounded per route by `limits` (uploads far past axum's 2 MB default).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_body,
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::record_request,
        ))
        // Spans and events at DEBUG (`RUST_LOG=tower_http=debug` to see every request),
        // with the path only, and no playback or share token in it.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::extract::Request| {
                    tracing::debug_span!("request", method = %req.method(),
                        path = %playback::logged_path(req.uri().path()))
                },
            ),
        )
        .with_state(state)
}

/// What a `reelforge worker` process serves: health, readiness and metrics only (for
/// orchestrator probes and scraping); no API route.
pub fn service_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(service::healthz))
        .route("/readyz", get(service::readyz))
        .route("/metrics", get(service::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::record_request,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> Response {
    error::error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> Response {
    error::error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this method is not allowed on this route",
    )
}
