//! Reelforge: a self-hosted video processing and conversion service.
//!
//! See `ARCHITECTURE.md` for the map of this crate.

pub mod admission;
pub mod archive;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod domain;
pub mod fetch;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod media;
pub mod net;
pub mod notify;
pub mod os;
pub mod playback;
pub mod process;
pub mod queue;
pub mod retention;
pub mod signals;
pub mod startup;
pub mod storage;
pub mod telemetry;

/// rustls needs exactly one process-wide crypto provider: aws-lc-rs everywhere.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
