//! The API's task objects as the client reads them, and as people read them: a table for
//! `reelforge tasks`, a block for `reelforge task ID`.

use chrono::{DateTime, Utc};
use console::Style;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::TaskStatus;
use crate::domain::task::{Source, Stage, TaskError};
use crate::mail::compose::{human_duration, human_size};

/// The fields of a task object the client uses (the API sends more).
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub status: TaskStatus,
    pub profile: String,
    #[serde(default)]
    pub options: serde_json::Value,
    pub source: Source,
    pub progress: Progress,
    #[serde(default)]
    pub outputs: Vec<Output>,
    pub error: Option<TaskError>,
    #[serde(default)]
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Progress {
    pub stage: Option<Stage>,
    pub percent: f64,
    pub eta_seconds: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Output {
    pub name: String,
    pub size: u64,
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The download route (`/api/tasks/{id}/outputs/{name}`).
    pub url: String,
}

/// The status word, coloured when `colour`.
pub fn status(s: TaskStatus, colour: bool) -> String {
    let style = match s {
        TaskStatus::Succeeded => Style::new().green(),
        TaskStatus::Failed => Style::new().red(),
        TaskStatus::Cancelled => Style::new().dim(),
        TaskStatus::Running => Style::new().yellow(),
        TaskStatus::Queued => Style::new().cyan(),
    };
    style.force_styling(colour).apply_to(s.as_str()).to_string()
}

/// What the task was made from: the upload's file name or the URL.
pub fn input(source: &Source) -> &str {
    match source {
        Source::Upload { filename, .. } => filename,
        Source::Url { url } => url,
    }
}

/// Where a running task is: `processing 42%`.
pub fn where_at(task: &Task) -> String {
    match (task.status, task.progress.stage) {
        (TaskStatus::Running, Some(stage)) => {
            format!("{} {:.0}%", stage.as_str(), task.progress.percent)
        }
        (TaskStatus::Running, None) => format!("{:.0}%", task.progress.percent),
        _ => String::new(),
    }
}

/// `text` cut to `width` characters, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The `reelforge tasks` table: one task per line, columns padded to their widest cell.
pub fn table(tasks: &[Task], colour: bool) -> String {
    let head = ["ID", "STATUS", "PROFILE", "INPUT", "PROGRESS", "CREATED"];
    let rows: Vec<[String; 6]> = tasks
        .iter()
        .map(|t| {
            [
                t.id.to_string(),
                t.status.as_str().to_string(),
                t.profile.clone(),
                fit(input(&t.source), 40),
                where_at(t),
                t.created_at.format("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    let mut widths = head.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [String; 6], status: Option<TaskStatus>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let pad = " ".repeat(w - cell.chars().count());
                match (i, status) {
                    (1, Some(s)) => format!("{}{pad}", self::status(s, colour)),
                    _ => format!("{cell}{pad}"),
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(head.map(str::to_string), None)];
    for (row, task) in rows.into_iter().zip(tasks) {
        out.push(line(row, Some(task.status)));
    }
    out.join("\n")
}

/// The `reelforge task ID` block.
pub fn detail(task: &Task, colour: bool) -> String {
    let mut lines = vec![
        format!("task      {}", task.id),
        format!("status    {}", status(task.status, colour)),
        format!("profile   {} {}", task.profile, task.options),
        format!("input     {}", input(&task.source)),
        format!(
            "created   {}",
            task.created_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    ];
    if let Some(at) = task.finished_at {
        lines.push(format!("finished  {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    let at = where_at(task);
    if !at.is_empty() {
        let eta = task
            .progress
            .eta_seconds
            .and_then(human_duration)
            .map(|d| format!(", {d} left"))
            .unwrap_or_default();
        lines.push(format!("progress  {at}{eta}"));
    }
    if let Some(e) = &task.error {
        lines.push(format!("error     {}: {}", e.code, e.message));
    }
    if let Some(at) = task.next_attempt_at {
        lines.push(format!(
            "retrying  at {} (attempt {} done)",
            at.format("%H:%M:%S UTC"),
            task.attempts
        ));
    }
    if !task.outputs.is_empty() {
        lines.push("outputs".to_string());
        for o in &task.outputs {
            let dims = match (o.width, o.height) {
                (Some(w), Some(h)) => format!("  {w}x{h}"),
                _ => String::new(),
            };
            let duration = o
                .duration
                .and_then(human_duration)
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            lines.push(format!(
                "  {}  {}{dims}{duration}",
                o.name,
                human_size(o.size)
            ));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: &str, filename: &str, stage: Option<&str>, percent: f64) -> Task {
        serde_json::from_value(serde_json::json!({
            "id": "0190f0c0-0000-7000-8000-000000000001",
            "status": status, "profile": "convert", "options": {"format": "webm"},
            "source": {"kind": "upload", "filename": filename, "size": 10},
            "input": null,
            "progress": {"stage": stage, "percent": percent, "eta_seconds": 65.0},
            "outputs": [{"name": "clip.webm", "size": 1_500_000, "duration": 2.0, "width": 320,
                         "height": 240, "video_codec": "vp9", "audio_codec": null,
                         "url": "/api/tasks/x/outputs/clip.webm"}],
            "error": null, "attempts": 1, "created_at": "2026-12-07T10:00:00Z",
            "started_at": null, "finished_at": null, "next_attempt_at": null,
            "webhook_url": null
        }))
        .unwrap()
    }

    #[test]
    fn the_table_lines_up_and_colours_only_when_asked() {
        let tasks = [
            task("running", "clip.mp4", Some("processing"), 42.4),
            task("succeeded", &"x".repeat(60), None, 100.0),
        ];
        let plain = table(&tasks, false);
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID "), "{plain}");
        let at = lines[0].find("STATUS").unwrap();
        assert_eq!(lines[1].find("running"), Some(at), "{plain}");
        assert_eq!(lines[2].find("succeeded"), Some(at), "{plain}");
        assert!(lines[1].contains("processing 42%"), "{plain}");
        assert!(
            lines[2].contains(&format!("{}…", "x".repeat(39))),
            "{plain}"
        );
        assert!(!plain.contains('\u{1b}'));
        let coloured = table(&tasks, true);
        assert!(
            coloured.contains("\u{1b}[32msucceeded\u{1b}[0m"),
            "{coloured:?}"
        );
    }

    #[test]
    fn details_show_progress_outputs_and_errors() {
        let t = task("running", "clip.mp4", Some("processing"), 42.0);
        let text = detail(&t, false);
        assert!(
            text.contains("progress  processing 42%, 1:05 left"),
            "{text}"
        );
        assert!(
            text.contains("  clip.webm  1.5 MB  320x240  0:02"),
            "{text}"
        );
        let mut failed = task("failed", "clip.mp4", None, 0.0);
        failed.error = Some(TaskError {
            code: "invalid_media".into(),
            message: "not a video".into(),
        });
        assert!(detail(&failed, false).contains("error     invalid_media: not a video"));
    }
}
