//! A task followed live to its end through `GET /api/tasks/{id}/events` (Server-Sent
//! Events): a `task` event with the whole task when anything but the progress changes,
//! `progress` events in between. A stream cut before the end is reopened with
//! `Last-Event-ID`.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use super::api::Api;
use super::render::{Progress, Task};
use super::report::Reporter;
use super::{ClientError, ClientResult};
use crate::domain::TaskStatus;

/// Reopened streams in a row without news before giving up.
const MAX_RECONNECTS: u32 = 5;

/// The data of a `progress` event.
#[derive(Deserialize)]
struct ProgressEvent {
    status: TaskStatus,
    progress: Progress,
}

/// Follow task `id` until it ends, showing its progress under `label`; its final state.
pub async fn follow(api: &Api, id: Uuid, label: &str, reporter: &Reporter) -> ClientResult<Task> {
    let meter = reporter.percent(label);
    let mut last_id: Option<String> = None;
    let mut last_status: Option<TaskStatus> = None;
    let mut failures = 0;
    loop {
        let mut rb = api
            .request(Method::GET, &format!("/api/tasks/{id}/events"))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(tag) = &last_id {
            rb = rb.header("Last-Event-ID", tag.as_str());
        }
        let resp = api.send(rb).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            // We already had the final state; read it whole.
            meter.finish();
            return get(api, id).await;
        }
        let mut events = resp.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            if !event.id.is_empty() {
                last_id = Some(event.id.clone());
            }
            failures = 0;
            let (status, progress) = match event.event.as_str() {
                "task" => {
                    let value: serde_json::Value = parse(&event.data)?;
                    let task: Task = parse(&event.data)?;
                    reporter.event(serde_json::json!({"event": "task", "task": value}));
                    if task.status.is_final() {
                        meter.finish();
                        return Ok(task);
                    }
                    (task.status, task.progress)
                }
                "progress" => {
                    let p: ProgressEvent = parse(&event.data)?;
                    (p.status, p.progress)
                }
                _ => continue,
            };
            if last_status != Some(status) {
                last_status = Some(status);
                reporter.info(&format!("{label}: {}", status.as_str()));
            }
            let stage = progress.stage.map_or(status.as_str(), |s| s.as_str());
            meter.set(progress.percent.clamp(0.0, 100.0) as u64, stage);
        }
        failures += 1;
        if failures > MAX_RECONNECTS {
            meter.finish();
            return Err(ClientError::failed(format!(
                "lost the progress of task {id} (the stream keeps breaking); \
                 `reelforge watch {id}` follows it again"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `GET /api/tasks/{id}`.
pub async fn get(api: &Api, id: Uuid) -> ClientResult<Task> {
    api.json(api.request(Method::GET, &format!("/api/tasks/{id}")))
        .await
}

fn parse<T: serde::de::DeserializeOwned>(data: &str) -> ClientResult<T> {
    serde_json::from_str(data).map_err(|e| {
        ClientError::failed(format!(
            "the server sent an event this client cannot read ({e})"
        ))
    })
}
