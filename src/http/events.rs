//! `GET /api/tasks/{id}/events`: Server-Sent Events, one per status or progress change,
//! closed after the final state. Changes made in this process wake the stream at once; a
//! one-second poll catches changes made by other processes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::AuthUser;
use super::tasks::task_id;

/// Live status and progress of one task.
#[utoipa::path(get, path = "/api/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path)),
    responses((status = 200, description = "text/event-stream of task objects (event `task`)"),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn task_events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = task_id(&id)?;
    let first = state
        .db
        .get_task(user.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut changes = state.signals.task_changes();
    let stream = async_stream(move |tx| async move {
        let mut last: Option<String> = None;
        let mut current = Some(first);
        while let Some(task) = current.take() {
            let view = task.view();
            let text = serde_json::to_string(&view).unwrap_or_default();
            if last.as_deref() != Some(text.as_str()) {
                if tx
                    .send(Event::default().event("task").data(text.clone()))
                    .await
                    .is_err()
                {
                    break;
                }
                last = Some(text);
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
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
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
