//! Where the client keeps what outlives one command: the credential of each server it
//! logged in to (`credentials.json` in the config dir, mode 0600) and the state of
//! unfinished uploads (the cache dir).
//!
//! Directories follow the XDG base directory rules: `$XDG_CONFIG_HOME/reelforge`
//! (default `~/.config/reelforge`) and `$XDG_CACHE_HOME/reelforge` (`~/.cache/reelforge`).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ClientError, ClientResult, io_error};

/// The server a command talks to when neither `--server` nor `REELFORGE_SERVER` names one
/// and nobody logged in: the default `reelforge serve` address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// One server's credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    /// An API key (`rf_…`) or a login token.
    pub token: String,
    pub username: String,
    /// The key `reelforge login` made with a password (revoked again by `logout`); `None`
    /// for a key given with `--with-token`, which belongs to whoever made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_key: Option<Uuid>,
}

/// `credentials.json`: a credential per server, and the server last logged in to.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Store {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub servers: BTreeMap<String, Credential>,
}

fn base_dir(xdg: &str, fallback: &str) -> ClientResult<PathBuf> {
    if let Some(dir) = std::env::var_os(xdg).map(PathBuf::from)
        && dir.is_absolute()
    {
        return Ok(dir.join("reelforge"));
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(fallback).join("reelforge")),
        _ => Err(ClientError::usage(format!(
            "neither {xdg} nor HOME is set to an absolute path: set one of them"
        ))),
    }
}

/// `$XDG_CONFIG_HOME/reelforge`, else `~/.config/reelforge`.
pub fn config_dir() -> ClientResult<PathBuf> {
    base_dir("XDG_CONFIG_HOME", ".config")
}

/// `$XDG_CACHE_HOME/reelforge`, else `~/.cache/reelforge`.
pub fn cache_dir() -> ClientResult<PathBuf> {
    base_dir("XDG_CACHE_HOME", ".cache")
}

/// A server URL as typed (`localhost:8080`, `https://media.example.com/`) in the one
/// spelling the store keys on: scheme, host, port, no trailing slash.
pub fn normalize_server(text: &str) -> ClientResult<String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| {
        ClientError::usage(format!(
            "{text:?} is not a server URL ({e}); use e.g. https://media.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ClientError::usage(format!(
            "{text:?} is not an http(s) server URL; use e.g. https://media.example.com"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

impl Store {
    fn path() -> ClientResult<PathBuf> {
        Ok(config_dir()?.join("credentials.json"))
    }

    /// The stored credentials (none when the file does not exist yet).
    pub fn load() -> ClientResult<Store> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::failed(format!(
                    "{} is not a credentials file ({e}); delete it and run `reelforge login`",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::default()),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    /// Write the store whole, readable by its owner only; a reader never sees half a file.
    pub fn save(&self) -> ClientResult<()> {
        let path = Self::path()?;
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ClientError::failed(format!("could not encode credentials: {e}")))?;
        write_private(&path, &bytes)
    }
}

/// Write `bytes` to `path` through a temporary file renamed over it, mode 0600 (folders
/// 0700), whatever the umask.
pub fn write_private(path: &Path, bytes: &[u8]) -> ClientResult<()> {
    let dir = path
        .parent()
        .ok_or_else(|| ClientError::failed(format!("{} has no folder", path.display())))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("create", dir, e))?;
    let tmp = dir.join(format!(".{}.tmp", Uuid::now_v7().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("write", path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_keyed_in_one_spelling() {
        for (typed, key) in [
            ("localhost:8080", "http://localhost:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://media.example.com", "https://media.example.com"),
            (
                "HTTPS://Media.Example.com:443/",
                "https://media.example.com",
            ),
            (
                "https://example.com/reelforge/",
                "https://example.com/reelforge",
            ),
        ] {
            assert_eq!(normalize_server(typed).unwrap(), key, "{typed}");
        }
        for bad in ["ftp://example.com", "http://", ""] {
            let e = normalize_server(bad).unwrap_err();
            assert!(e.message.contains("server URL"), "{bad}: {e}");
        }
    }
}
