//! Logging and metrics set-up; every metric name lives here.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "reelforge_http_requests_total";
pub const HTTP_DURATION: &str = "reelforge_http_request_duration_seconds";
pub const TASKS_BY_STATUS: &str = "reelforge_tasks";
pub const JOBS_FINISHED: &str = "reelforge_jobs_finished_total";
pub const JOB_DURATION: &str = "reelforge_job_duration_seconds";
pub const PROCESS_RUNS: &str = "reelforge_process_runs_total";
pub const UPLOAD_RECEIVED: &str = "reelforge_upload_received_bytes_total";
pub const NOTIFICATIONS: &str = "reelforge_notification_attempts_total";
pub const NOTIFICATION_LATENCY: &str = "reelforge_notification_latency_seconds";
pub const WORKER_SLOTS: &str = "reelforge_worker_slots";
pub const JOBS_RUNNING: &str = "reelforge_jobs_running";
pub const QUEUE_OLDEST: &str = "reelforge_queue_oldest_seconds";
pub const TASKS_FINISHED: &str = "reelforge_tasks_finished_total";
pub const MEDIA_MILLISECONDS: &str = "reelforge_media_milliseconds_total";
pub const PROCESSING_MILLISECONDS: &str = "reelforge_processing_milliseconds_total";
pub const SCRATCH_FREE: &str = "reelforge_scratch_free_bytes";
pub const READY: &str = "reelforge_ready";
pub const FILES_EXPIRED: &str = "reelforge_task_files_expired_total";
pub const STORED_BYTES: &str = "reelforge_stored_bytes";
pub const USER_STORED_BYTES_MAX: &str = "reelforge_user_stored_bytes_max";
pub const USERS_AT_QUOTA: &str = "reelforge_users_at_quota";
pub const SCRATCH_WAITING: &str = "reelforge_scratch_waiting";
pub const READ_CACHE: &str = "reelforge_read_cache_lookups_total";

/// Every metric above: docs/operations.md lists them, and the shipped alerts and dashboard
/// use no other (checked by the tests below).
pub const ALL: [&str; 23] = [
    HTTP_REQUESTS,
    HTTP_DURATION,
    TASKS_BY_STATUS,
    JOBS_FINISHED,
    JOB_DURATION,
    PROCESS_RUNS,
    UPLOAD_RECEIVED,
    NOTIFICATIONS,
    NOTIFICATION_LATENCY,
    WORKER_SLOTS,
    JOBS_RUNNING,
    QUEUE_OLDEST,
    TASKS_FINISHED,
    MEDIA_MILLISECONDS,
    PROCESSING_MILLISECONDS,
    SCRATCH_FREE,
    READY,
    FILES_EXPIRED,
    STORED_BYTES,
    USER_STORED_BYTES_MAX,
    USERS_AT_QUOTA,
    SCRATCH_WAITING,
    READ_CACHE,
];

/// `pretty` (default) or `json` lines on stderr; `RUST_LOG` filters.
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder (installed once; later calls share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0, 1800.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        READ_CACHE,
        "Look-ups of the read cache (accounts, API keys, tasks, task lists) by result: hit or miss"
    );
    metrics::describe_gauge!(
        SCRATCH_WAITING,
        "Workers waiting for scratch space before claiming their next job"
    );
    metrics::describe_gauge!(
        STORED_BYTES,
        metrics::Unit::Bytes,
        "Bytes of inputs and outputs stored for all users (read at most once a minute)"
    );
    metrics::describe_gauge!(
        USER_STORED_BYTES_MAX,
        metrics::Unit::Bytes,
        "Bytes stored by the user who stores most"
    );
    metrics::describe_gauge!(
        USERS_AT_QUOTA,
        "Users whose stored bytes reach REELFORGE_USER_QUOTA (their new tasks are refused)"
    );
    metrics::describe_counter!(
        FILES_EXPIRED,
        "Tasks whose files were removed at the end of their retention period"
    );
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by route"
    );
    metrics::describe_gauge!(
        TASKS_BY_STATUS,
        "Tasks by status (queue depth is status=queued)"
    );
    metrics::describe_counter!(JOBS_FINISHED, "Jobs finished by outcome");
    metrics::describe_histogram!(
        JOB_DURATION,
        metrics::Unit::Seconds,
        "Job wall time by outcome"
    );
    metrics::describe_counter!(PROCESS_RUNS, "ffmpeg/ffprobe runs by program and outcome");
    metrics::describe_counter!(
        UPLOAD_RECEIVED,
        "Bytes read from resumable upload (tus) request bodies, kept or not"
    );
    metrics::describe_counter!(
        NOTIFICATIONS,
        "Notification delivery attempts by channel and outcome (sent, retry, failed, \
         cancelled, dropped)"
    );
    metrics::describe_gauge!(
        WORKER_SLOTS,
        "Jobs this process may run at once (REELFORGE_WORKERS)"
    );
    metrics::describe_gauge!(JOBS_RUNNING, "Jobs this process runs now");
    metrics::describe_gauge!(
        QUEUE_OLDEST,
        metrics::Unit::Seconds,
        "How long the oldest due job has waited (0: none), read at scrape"
    );
    metrics::describe_counter!(
        TASKS_FINISHED,
        "Runs that ended a task, by profile, outcome and (failed) error code"
    );
    metrics::describe_counter!(
        MEDIA_MILLISECONDS,
        "Input media milliseconds of succeeded runs, by profile (speed: its rate over \
         reelforge_processing_milliseconds_total's)"
    );
    metrics::describe_counter!(
        PROCESSING_MILLISECONDS,
        "Wall milliseconds of succeeded runs of media profiles, by profile"
    );
    metrics::describe_gauge!(
        SCRATCH_FREE,
        metrics::Unit::Bytes,
        "Free space of the scratch dir's file system (processes that run jobs), at scrape"
    );
    metrics::describe_gauge!(
        READY,
        "1 when the database and the storage answer (as /readyz), at scrape"
    );
    metrics::describe_histogram!(
        NOTIFICATION_LATENCY,
        metrics::Unit::Seconds,
        "From a message's event committing to its delivery, by channel"
    );
}

#[cfg(test)]
mod tests {
    use super::ALL;

    /// The `reelforge_…` metric names a text mentions (a histogram's `_bucket`, `_sum` and
    /// `_count` series as the histogram).
    fn names_in(text: &str) -> Vec<String> {
        let mut names = vec![];
        let mut rest = text;
        while let Some(at) = rest.find("reelforge_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| ALL.contains(b)))
                .unwrap_or(name);
            names.push(base.to_string());
            rest = &tail[end..];
        }
        names
    }

    #[test]
    fn alerts_and_the_dashboard_use_only_metrics_that_exist() {
        for (file, text) in [
            (
                "alerts.yml",
                include_str!("../deploy/monitoring/alerts.yml"),
            ),
            (
                "alerts.test.yml",
                include_str!("../deploy/monitoring/alerts.test.yml"),
            ),
            (
                "reelforge.json",
                include_str!("../deploy/monitoring/grafana/dashboards/reelforge.json"),
            ),
        ] {
            let names = names_in(text);
            assert!(!names.is_empty(), "{file}");
            for name in names {
                assert!(
                    ALL.contains(&name.as_str()),
                    "{file} uses {name}, which is not exported"
                );
            }
        }
    }

    #[test]
    fn every_metric_is_documented_for_operators() {
        let doc = include_str!("../docs/operations.md");
        for name in ALL {
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/operations.md lacks {name}"
            );
        }
        for name in names_in(doc) {
            assert!(
                ALL.contains(&name.as_str()),
                "docs/operations.md names {name}"
            );
        }
    }
}
