//! HTTP behaviour against a spawned server on a random port with a temporary data dir.

mod accounts;
mod admin;
mod connections;
mod contract;
mod keys;
mod lifecycle;
mod limits;
mod mail;
mod playback;
mod profiles_doc;
mod queue;
mod read_cache;
mod service;
mod sessions;
mod shares;
mod tasks;
mod tus;
mod ui;
mod uploads;
mod webhooks;
