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
    metrics::describe_histogram!(
        NOTIFICATION_LATENCY,
        metrics::Unit::Seconds,
        "From a message's event committing to its delivery, by channel"
    );
}
