//! A file to a task through tus (`/api/uploads`, see docs/uploads.md), resumable: the
//! upload's URL is kept in the cache dir from the moment it exists, so the same command run
//! again after Ctrl-C, a crash or a dropped connection asks the server how far it got
//! (`HEAD`) and sends only the rest. Within one run, a broken connection is resumed the
//! same way after a short pause.
//!
//! The upload's metadata names the profile and options, so the server makes the task as
//! the last byte arrives (`Reelforge-Task`).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use base64::Engine;
use futures::TryStreamExt;
use reqwest::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use super::api::Api;
use super::credentials::{cache_dir, write_private};
use super::options::Request;
use super::report::{Meter, Reporter};
use super::{ClientError, ClientResult, Interrupted, Stalls, io_error};
use crate::mail::compose::human_size;

/// What the cache dir keeps of an unfinished upload.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    /// `/api/uploads/{id}` on the server.
    upload: String,
    file: PathBuf,
    size: u64,
}

/// A local file to upload: its identity decides which pending upload it resumes.
pub struct LocalFile {
    pub path: PathBuf,
    pub size: u64,
    modified_ns: u128,
}

impl LocalFile {
    /// The file at `path`, refused unless it is a readable, non-empty regular file.
    pub fn open(path: &Path) -> ClientResult<LocalFile> {
        let meta = std::fs::metadata(path).map_err(|e| {
            ClientError::usage(format!(
                "{}: {e}; give a file or an http(s) URL",
                path.display()
            ))
        })?;
        if !meta.is_file() {
            return Err(ClientError::usage(format!(
                "{} is not a file; give a file or an http(s) URL",
                path.display()
            )));
        }
        if meta.len() == 0 {
            return Err(ClientError::usage(format!(
                "{} is empty: there is nothing to process",
                path.display()
            )));
        }
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let path = std::fs::canonicalize(path).map_err(|e| io_error("read", path, e))?;
        Ok(LocalFile {
            path,
            size: meta.len(),
            modified_ns,
        })
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload.bin".into())
    }

    /// Where this file's pending upload to `server` for `request` is kept: the same file
    /// (path, size, modification time) with the same task request resumes; a changed file
    /// or another profile starts over.
    fn pending_path(&self, server: &str, request: &Request) -> ClientResult<PathBuf> {
        let identity = serde_json::json!([
            server,
            self.path,
            self.size,
            self.modified_ns.to_string(),
            request.profile,
            request.options
        ]);
        let key = crate::auth::token_hash(&identity.to_string());
        Ok(cache_dir()?.join("uploads").join(format!("{key}.json")))
    }
}

/// Upload `file` and return the task the server made of it.
pub async fn upload(
    api: &Api,
    file: &LocalFile,
    request: &Request,
    reporter: &Reporter,
) -> ClientResult<Uuid> {
    let pending_path = file.pending_path(&api.server, request)?;
    let label = file.name();
    let (upload, mut offset) = match resume_point(api, &pending_path, file).await? {
        Some((upload, offset)) => {
            reporter.info(&format!(
                "{label}: resuming the upload at {} of {}",
                human_size(offset),
                human_size(file.size)
            ));
            (upload, offset)
        }
        None => {
            let upload = create(api, file, request).await?;
            let pending = Pending {
                upload: upload.clone(),
                file: file.path.clone(),
                size: file.size,
            };
            let bytes = serde_json::to_vec(&pending)
                .map_err(|e| ClientError::failed(format!("could not encode upload state: {e}")))?;
            write_private(&pending_path, &bytes)?;
            (upload, 0)
        }
    };
    let meter = Arc::new(reporter.bytes(&label, "upload", file.size, offset));
    let mut stalls = Stalls::default();
    let task = loop {
        if offset == file.size {
            match head(api, &upload).await?.1 {
                Some(task) => break task,
                None => {
                    return Err(ClientError::failed(format!(
                        "{label}: the server has every byte but made no task; run the command again"
                    )));
                }
            }
        }
        match patch(api, &upload, file, offset, meter.clone()).await {
            Ok(Sent::Done(task)) => break task,
            Ok(Sent::At(at)) => {
                if !stalls.moved(offset, at) {
                    meter.finish();
                    return Err(ClientError::failed(format!(
                        "{label}: the server takes no more bytes; run the same command again"
                    )));
                }
                offset = at;
            }
            Err(Interrupted::Fatal(e)) => {
                meter.finish();
                return Err(e);
            }
            Err(Interrupted::Retry(why)) => {
                let Some(pause) = stalls.failed() else {
                    meter.finish();
                    return Err(ClientError::failed(format!(
                        "{label}: the upload keeps failing ({why}); run the same command \
                         again to resume it"
                    )));
                };
                reporter.info(&format!(
                    "{label}: {why}; resuming in {} s",
                    pause.as_secs()
                ));
                tokio::time::sleep(pause).await;
                offset = head(api, &upload).await?.0;
            }
        }
    };
    meter.set(file.size, "");
    meter.finish();
    let _ = std::fs::remove_file(&pending_path);
    Ok(task)
}

/// The kept upload of this file and the server's offset, if it can still be resumed.
async fn resume_point(
    api: &Api,
    pending_path: &Path,
    file: &LocalFile,
) -> ClientResult<Option<(String, u64)>> {
    let Ok(bytes) = std::fs::read(pending_path) else {
        return Ok(None);
    };
    let forget = || {
        let _ = std::fs::remove_file(pending_path);
        Ok(None)
    };
    let Ok(pending) = serde_json::from_slice::<Pending>(&bytes) else {
        return forget();
    };
    if pending.size != file.size || !pending.upload.starts_with("/api/uploads/") {
        return forget();
    }
    let resp = api
        .request(Method::HEAD, &pending.upload)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .map_err(|e| api.unreachable(&e))?;
    match resp.status() {
        StatusCode::OK => {}
        // Expired, removed, or another account's: start again.
        StatusCode::NOT_FOUND | StatusCode::GONE => return forget(),
        _ => return Err(api.error_of(resp).await),
    }
    match header_u64(&resp, "upload-offset") {
        Some(offset) if header_u64(&resp, "upload-length") == Some(file.size) => {
            Ok(Some((pending.upload, offset)))
        }
        _ => forget(),
    }
}

/// `POST /api/uploads`: the upload's URL path.
async fn create(api: &Api, file: &LocalFile, request: &Request) -> ClientResult<String> {
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let options = serde_json::Value::Object(request.options.clone()).to_string();
    let metadata = format!(
        "filename {},profile {},options {}",
        b64(&file.name()),
        b64(&request.profile),
        b64(&options)
    );
    let resp = api
        .send(
            api.request(Method::POST, "/api/uploads")
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", file.size)
                .header("Upload-Metadata", metadata),
        )
        .await?;
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ClientError::failed("the server made an upload but gave no Location"))?;
    // The path on this server, whichever form the Location takes.
    let path = match url::Url::parse(location) {
        Ok(url) => url.path().to_string(),
        Err(_) => location.to_string(),
    };
    let prefix = url::Url::parse(&api.server)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    Ok(path.strip_prefix(&prefix).unwrap_or(&path).to_string())
}

enum Sent {
    /// Bytes stored up to here; more to send.
    At(u64),
    /// The last byte is stored and the task made.
    Done(Uuid),
}

/// One `PATCH` with the rest of the file from `offset`.
async fn patch(
    api: &Api,
    upload: &str,
    file: &LocalFile,
    offset: u64,
    meter: Arc<Meter>,
) -> Result<Sent, Interrupted> {
    let fatal = |e| Interrupted::Fatal(e);
    let mut f = tokio::fs::File::open(&file.path)
        .await
        .map_err(|e| fatal(io_error("read", &file.path, e)))?;
    f.seek(SeekFrom::Start(offset))
        .await
        .map_err(|e| fatal(io_error("read", &file.path, e)))?;
    let rest = file.size - offset;
    let mut sent = offset;
    let body = tokio_util::io::ReaderStream::with_capacity(f.take(rest), 256 * 1024).inspect_ok(
        move |chunk| {
            sent += chunk.len() as u64;
            meter.set(sent, "");
        },
    );
    let result = api
        .request(Method::PATCH, upload)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/offset+octet-stream",
        )
        .header(reqwest::header::CONTENT_LENGTH, rest)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => return Err(Interrupted::Retry(api.unreachable(&e).message)),
    };
    match resp.status() {
        StatusCode::NO_CONTENT => {}
        // Another request still holds the upload (one cut off a moment ago), or the offset
        // moved: ask again where it stands.
        StatusCode::LOCKED | StatusCode::CONFLICT => {
            return Err(Interrupted::Retry(format!(
                "the server is still finishing an earlier request ({})",
                resp.status()
            )));
        }
        s if s.is_server_error() => {
            return Err(Interrupted::Retry(api.error_of(resp).await.message));
        }
        _ => return Err(fatal(api.error_of(resp).await)),
    }
    if let Some(task) = task_header(&resp) {
        return Ok(Sent::Done(task));
    }
    match header_u64(&resp, "upload-offset") {
        Some(at) => Ok(Sent::At(at)),
        None => Err(fatal(ClientError::failed(
            "the server stored the bytes but did not say how many (no Upload-Offset)",
        ))),
    }
}

/// `HEAD`: the server's offset and the task, once there is one.
async fn head(api: &Api, upload: &str) -> ClientResult<(u64, Option<Uuid>)> {
    let resp = api
        .send(
            api.request(Method::HEAD, upload)
                .header("Tus-Resumable", "1.0.0"),
        )
        .await?;
    let offset = header_u64(&resp, "upload-offset")
        .ok_or_else(|| ClientError::failed("the server did not say the upload's offset"))?;
    Ok((offset, task_header(&resp)))
}

fn header_u64(resp: &Response, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Reelforge-Task: /api/tasks/{id}`.
fn task_header(resp: &Response) -> Option<Uuid> {
    let value = resp.headers().get("reelforge-task")?.to_str().ok()?;
    value.rsplit('/').next()?.parse().ok()
}
