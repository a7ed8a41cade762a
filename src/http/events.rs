//! `GET /api/tasks/{id}/events`: Server-Sent Events, one per change of the task, closed
//! after the final state. Changes made in this process wake the stream at once; a
//! one-second poll catches changes made by other processes.
//!
//! An event is `task` (the whole task object) when anything but the progress changed, and
//! `progress` (`id`, `status`, `progress` only) when only the progress did, so a running
//! task does not resend its command lines every second. Every event's `id:` is a tag of
//! the task's whole state. No history is kept: a client reconnecting with `Last-Event-ID`
//! gets the current state as one `task` event if it changed since, and nothing it already
//! has; one that already has the final state is answered `204 No Content`, which tells an
//! `EventSource` to stop reconnecting.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::AuthUser;
use super::tasks::task_id;
use crate::domain::task::ProgressView;
use crate::domain::{TaskStatus, TaskView};

/// The data of a `progress` event.
#[derive(Serialize)]
struct ProgressEvent<'a> {
    id: Uuid,
    status: TaskStatus,
    progress: &'a ProgressView,
}

/// Live status and progress of one task.
#[utoipa::path(get, path = "/api/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path, description = "task id"),
           ("Last-Event-ID" = Option<String>, Header,
            description = "The `id` of the last event received (browsers send it when they \
                reconnect): the stream then starts with the current state only if it \
                changed since")),
    responses(
        (status = 200, description = "`text/event-stream`, closed after the final state. \
            Event `task`: the task object, sent first and whenever anything but the \
            progress changes. Event `progress`: `{id, status, progress}` when only the \
            progress changes. Each event's `id` is an opaque tag of the task's state."),
        (status = 204, description = "`Last-Event-ID` names the task's final state: \
            nothing more will come (an `EventSource` stops reconnecting)"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn task_events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = task_id(&id)?;
    let first = state
        .db
        .get_task(user.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let view = first.view();
    if first.status.is_final() && resumed.as_deref() == Some(state_tag(&view).as_str()) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut changes = state.signals.task_changes();
    let stream = async_stream(move |tx| async move {
        let mut sent = Sent {
            tag: resumed,
            rest: None,
        };
        let mut current = Some(first);
        while let Some(task) = current.take() {
            if let Some(event) = sent.next_event(&task.view())
                && tx.send(event).await.is_err()
            {
                break;
            }
            if task.status.is_final() {
                break;
            }
            // Wait for a change to this task, or poll.
            let deadline = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    msg = changes.recv() => match msg {
                        Ok(changed) if changed == id => break,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            match state.db.get_task(user.id, id).await {
                Ok(Some(t)) => current = Some(t),
                // Deleted, or the database went away: end the stream.
                _ => break,
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What the client has: the tag of the last state sent (or named by `Last-Event-ID`), and
/// that state without its progress (unknown after a reconnect).
struct Sent {
    tag: Option<String>,
    rest: Option<serde_json::Value>,
}

impl Sent {
    /// The event that brings the client to `view`, if it is not there yet.
    fn next_event(&mut self, view: &TaskView) -> Option<Event> {
        let tag = state_tag(view);
        if self.tag.as_deref() == Some(tag.as_str()) {
            return None;
        }
        let rest = without_progress(view);
        let data = if self.rest.as_ref() == Some(&rest) {
            let progress = ProgressEvent {
                id: view.id,
                status: view.status,
                progress: &view.progress,
            };
            Event::default().event("progress").json_data(progress)
        } else {
            Event::default().event("task").json_data(view)
        };
        self.tag = Some(tag.clone());
        self.rest = Some(rest);
        // Serializing these types cannot fail; were it to, the next change is sent whole.
        data.ok().map(|e| e.id(tag))
    }
}

/// The task object without `progress`: what decides between a `task` and a `progress`
/// event.
fn without_progress(view: &TaskView) -> serde_json::Value {
    let mut v = serde_json::to_value(view).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("progress");
    }
    v
}

/// An opaque tag of the task's whole state, the same in every API process: FNV-1a (64 bit)
/// of the task object's JSON, in hexadecimal.
fn state_tag(view: &TaskView) -> String {
    let json = serde_json::to_vec(view).unwrap_or_default();
    let hash = json.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// A stream fed by a producer task through a small channel.
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(producer(tx));
    futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}

/// Live changes of every recent task of the caller (the web UI's task list).
#[utoipa::path(get, path = "/api/events", tag = "tasks",
    responses(
        (status = 200, description = "`text/event-stream` that stays open. Event `task`: a \
            task object (without `commands`) whenever one of the caller's 100 newest tasks \
            appears or changes. Event `deleted`: `{id}` when one is gone. Nothing is sent \
            for the tasks as they were when the stream opened: fetch `GET /api/tasks` first."),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn user_events(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    let query = crate::db::ListQuery {
        limit: 100,
        descending: true,
        status: None,
        after: None,
    };
    let mut known = tags_of(&state.db.list_tasks(user.id, &query).await?);
    let mut changes = state.signals.task_changes();
    let stream = async_stream(move |tx| async move {
        loop {
            let deadline = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = deadline => {}
                msg = changes.recv() => {
                    if matches!(msg, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        break;
                    }
                }
            }
            let Ok(tasks) = state.db.list_tasks(user.id, &query).await else {
                break;
            };
            let now = tags_of(&tasks);
            let mut events = vec![];
            for task in &tasks {
                if known.get(&task.id) != now.get(&task.id) {
                    let mut view = task.view();
                    view.commands = None;
                    events.extend(Event::default().event("task").json_data(view).ok());
                }
            }
            for gone in known.keys().filter(|id| !now.contains_key(id)) {
                let data = serde_json::json!({ "id": gone });
                events.extend(Event::default().event("deleted").json_data(data).ok());
            }
            known = now;
            for event in events {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn tags_of(tasks: &[crate::domain::TaskRecord]) -> std::collections::HashMap<Uuid, String> {
    tasks.iter().map(|t| (t.id, state_tag(&t.view()))).collect()
}
