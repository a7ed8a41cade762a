//! The SSRF-guarded fetcher: address policy, and real HTTP on loopback.

mod http;
mod policy;
