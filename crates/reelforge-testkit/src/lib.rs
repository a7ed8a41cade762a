//! What Reelforge's integration tests (`tests/*`) share, one module per concern:
//!
//! - [`app`]: `spawn_app()`, a real server on a random port with a temporary data dir, and
//!   the `TestApp` that drives its HTTP API and its queue;
//! - [`clips`]: media made by ffmpeg's lavfi sources for the tests through the API, a
//!   loopback HTTP server for URL tasks, and plain ffprobe JSON to check outputs with;
//! - [`pg`]: throw-away PostgreSQL databases, the repository on either backend and
//!   [`on_both_backends!`];
//! - [`plans`]: the planners' argv run with the real ffmpeg, outputs probed with the
//!   service's own ffprobe argv and checked against an [`plans::Expect`];
//! - [`proxy`]: a TCP proxy that counts what a client sends a server, and slows or cuts it;
//! - [`process`]: real `reelforge` processes of the built binary, and the HTTP calls the
//!   tests make to them;
//! - [`smtp`]: a real SMTP server (aiosmtpd) in STARTTLS, TLS or plain mode, and the
//!   messages it received, parsed independently;
//! - [`tus`]: resumable uploads from outside: raw protocol cases and the `tuspy` client.
//!
//! A dev-only crate (`publish = false`), a dev-dependency of the root package: it depends on
//! `reelforge` itself, and the tests share one build of it with this crate.

pub mod app;
pub mod clips;
pub mod pg;
pub mod plans;
pub mod process;
pub mod proxy;
pub mod smtp;
pub mod tus;
pub mod webhooks;

/// Whether this runs under CI (`CI` set and not `false`), where a test that would skip for
/// lack of a server fails instead.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}
