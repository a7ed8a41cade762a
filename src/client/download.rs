//! A task's outputs to a local folder. Bytes go to `NAME.part` first and are renamed once
//! whole; a `.part` left by an interrupted download is continued with `Range` (also after
//! a connection dropped within the run), and a file already there whole is not fetched
//! again.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

use super::api::Api;
use super::render::{Output, Task};
use super::report::Reporter;
use super::{ClientError, ClientResult, Interrupted, Stalls, io_error};

/// Every output of `task` into `dir` (made if missing); the files' paths.
pub async fn outputs(
    api: &Api,
    task: &Task,
    dir: &Path,
    reporter: &Reporter,
) -> ClientResult<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let mut files = Vec::with_capacity(task.outputs.len());
    for output in &task.outputs {
        let path = one(api, output, dir, reporter).await?;
        reporter.event(serde_json::json!({
            "event": "downloaded", "task": task.id, "file": path, "bytes": output.size
        }));
        reporter.info(&format!("downloaded {}", path.display()));
        files.push(path);
    }
    Ok(files)
}

/// The file name of an output, refused unless it is a plain name (no folder, no `..`).
fn safe_name(name: &str) -> ClientResult<&str> {
    let plain = Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name);
    if plain && !name.starts_with('.') {
        Ok(name)
    } else {
        Err(ClientError::failed(format!(
            "the server named an output {name:?}, which is not a plain file name; not saved"
        )))
    }
}

async fn one(api: &Api, output: &Output, dir: &Path, reporter: &Reporter) -> ClientResult<PathBuf> {
    let name = safe_name(&output.name)?;
    let target = dir.join(name);
    if std::fs::metadata(&target).is_ok_and(|m| m.len() == output.size) {
        reporter.info(&format!("{} is already here", target.display()));
        return Ok(target);
    }
    let part = dir.join(format!("{name}.part"));
    let mut have = std::fs::metadata(&part).map_or(0, |m| m.len());
    if have > output.size {
        have = 0;
    }
    let meter = reporter.bytes(name, "download", output.size, have);
    let mut stalls = Stalls::default();
    while have < output.size {
        match fetch(api, output, &part, have, &meter).await {
            Ok(at) => {
                if !stalls.moved(have, at) {
                    meter.finish();
                    return Err(ClientError::failed(format!(
                        "{name}: the server sends no more bytes; run the command again"
                    )));
                }
                have = at;
            }
            Err(Interrupted::Fatal(e)) => {
                meter.finish();
                return Err(e);
            }
            Err(Interrupted::Retry(why)) => {
                let Some(pause) = stalls.failed() else {
                    meter.finish();
                    return Err(ClientError::failed(format!(
                        "{name}: the download keeps failing ({why}); run the command again \
                         to continue it"
                    )));
                };
                tokio::time::sleep(pause).await;
                have = std::fs::metadata(&part).map_or(0, |m| m.len());
            }
        }
    }
    meter.finish();
    std::fs::rename(&part, &target).map_err(|e| io_error("write", &target, e))?;
    Ok(target)
}

/// One `GET` from byte `have` on, appended to `part`; how many bytes `part` has after.
async fn fetch(
    api: &Api,
    output: &Output,
    part: &Path,
    have: u64,
    meter: &super::report::Meter,
) -> Result<u64, Interrupted> {
    let mut rb = api.request(Method::GET, &output.url);
    if have > 0 {
        rb = rb.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| Interrupted::Retry(api.unreachable(&e).message))?;
    let start = match resp.status() {
        StatusCode::PARTIAL_CONTENT if have > 0 => have,
        // The whole file (the server ignored the range): start over.
        StatusCode::OK => 0,
        s if s.is_server_error() => {
            return Err(Interrupted::Retry(api.error_of(resp).await.message));
        }
        _ => return Err(Interrupted::Fatal(api.error_of(resp).await)),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(start == 0)
        .append(start > 0)
        .open(part)
        .await
        .map_err(|e| Interrupted::Fatal(io_error("write", part, e)))?;
    let mut at = start;
    let mut body = resp.bytes_stream();
    let mut broken = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                file.write_all(&bytes)
                    .await
                    .map_err(|e| Interrupted::Fatal(io_error("write", part, e)))?;
                at += bytes.len() as u64;
                meter.set(at.min(output.size), "");
            }
            Err(e) => {
                broken = Some(api.unreachable(&e).message);
                break;
            }
        }
    }
    file.flush()
        .await
        .map_err(|e| Interrupted::Fatal(io_error("write", part, e)))?;
    match broken {
        Some(why) => Err(Interrupted::Retry(why)),
        None if at > output.size => Err(Interrupted::Fatal(ClientError::failed(format!(
            "{}: the server sent more bytes than the output has; not saved",
            output.name
        )))),
        None => Ok(at),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names_are_saved() {
        assert!(super::safe_name("clip_part_001.mp4").is_ok());
        for bad in ["../x.mp4", "a/b.mp4", ".hidden", "..", "/etc/passwd", ""] {
            assert!(super::safe_name(bad).is_err(), "{bad}");
        }
    }
}
