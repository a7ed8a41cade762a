//! Object storage behind `object_store`, and the key layout of a task's files.
//!
//! Stores: `file://DIR`, `s3://bucket/prefix` (an S3-compatible server through
//! `StorageOptions::s3_endpoint`), `gs://bucket/prefix`; every key lives under the URL's
//! prefix. S3 and GCS also sign download URLs ([`Storage::signed_url`]), so the API redirects
//! downloaders to the store instead of proxying the bytes.
//!
//! Keys: `tasks/{task}/input/{filename}` for the original, and
//! `tasks/{task}/out/{run}/{name}` for outputs, where `run` is the task's run count when
//! the job was claimed. A re-run writes under a new `run`, and a successful finish removes
//! every other run's objects, so outputs are never duplicated and a stale worker can never
//! overwrite a newer result.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    Attribute, BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, RetryConfig, WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Multipart chunk size: S3 needs ≥ 5 MiB for every part but the last.
const CHUNK: usize = 8 * 1024 * 1024;
/// Parts in flight at once: bounds memory to about `CHUNK × (IN_FLIGHT + 1)`.
const IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("upload exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("storage did not answer within {0:?}")]
    Timeout(Duration),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    #[error("cancelled")]
    Cancelled,
}

fn map_not_found(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Store(other),
    }
}

/// A byte range to read, already checked against the object size.
pub type ByteRange = Range<u64>;

pub struct ObjectStream {
    pub size: u64,
    pub range: ByteRange,
    pub body: futures::stream::BoxStream<'static, Result<Bytes, StorageError>>,
}

/// How long a presigned download URL stays valid (S3 and GCS; at most 15 minutes).
pub const SIGNED_URL_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest wait for the readiness probe's write and delete.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the objects live: `REELFORGE_STORAGE_URL`, checked without any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:///abs/dir`
    Local(PathBuf),
    /// `s3://bucket/prefix`
    S3 { bucket: String, prefix: String },
    /// `gs://bucket/prefix`
    Gcs { bucket: String, prefix: String },
}

impl Location {
    /// Parse a storage URL; the error says what is wrong (the caller names the setting).
    pub fn parse(text: &str) -> Result<Location, String> {
        let url = url::Url::parse(text).map_err(|e| format!("{e}: {text:?}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials do not belong in the URL (use the AWS_* / GOOGLE_* variables)".into(),
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("no query or fragment expected: {text:?}"));
        }
        match url.scheme() {
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(format!(
                        "file:// URL must be a local absolute path: {text:?}"
                    ));
                }
                let dir = url
                    .to_file_path()
                    .map_err(|_| format!("file:// URL must be an absolute path: {text:?}"))?;
                Ok(Location::Local(dir))
            }
            scheme @ ("s3" | "gs") => {
                let bucket = url.host_str().unwrap_or("").to_string();
                if bucket.is_empty() {
                    return Err(format!(
                        "no bucket in {text:?} (use {scheme}://bucket/prefix)"
                    ));
                }
                if url.port().is_some() {
                    return Err(format!(
                        "no port expected in {text:?} (the endpoint is a separate setting)"
                    ));
                }
                let prefix = url.path().trim_matches('/').to_string();
                if !prefix.is_empty() {
                    ObjectPath::parse(&prefix)
                        .map_err(|e| format!("bad prefix {prefix:?}: {e}"))?;
                }
                Ok(if scheme == "s3" {
                    Location::S3 { bucket, prefix }
                } else {
                    Location::Gcs { bucket, prefix }
                })
            }
            other => Err(format!(
                "unsupported scheme {other:?} (file://, s3:// and gs:// are supported)"
            )),
        }
    }
}

/// Parse `REELFORGE_S3_ENDPOINT`: `https://…`, or `http://…` on a loopback address only.
pub fn parse_s3_endpoint(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{e}: {text:?}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(format!("no host in {text:?}")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "plain http is only allowed for a loopback endpoint, use https: {text:?}"
            ));
        }
        other => return Err(format!("unsupported scheme {other:?} (https:// expected)")),
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!("the endpoint is scheme://host:port only: {text:?}"));
    }
    Ok(url)
}

/// What configures a remote store besides its URL.
#[derive(Clone, Default)]
pub struct StorageOptions {
    /// An S3-compatible server (path-style requests); `None` = AWS (or `AWS_ENDPOINT`).
    pub s3_endpoint: Option<url::Url>,
    /// Where presigned URLs point when users reach the S3 server at another address than
    /// the service does (a public name in front of a private one); `None` = `s3_endpoint`.
    pub s3_public_endpoint: Option<url::Url>,
    /// `object_store` configuration keys (`aws_access_key_id`, `google_service_account`, …)
    /// applied over the `AWS_*` / `GOOGLE_*` environment. Not a setting: for embedding and tests.
    pub extra: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Storage {
    /// Every key is relative to the URL's prefix.
    store: Arc<dyn ObjectStore>,
    /// The same store for presigned URLs (S3, GCS); `None` for local files and memory.
    signer: Option<Arc<dyn Signer>>,
    /// The same store when it is a local directory: files then move between scratch and
    /// the store by hard link instead of a byte copy (see [`Storage::put_file`]).
    local: Option<Arc<LocalFileSystem>>,
    /// The same store's multipart API, whose uploads outlive a process (resumable uploads
    /// on S3, GCS and memory; `None` on local files, which append instead).
    multipart: Option<Arc<dyn MultipartStore>>,
    /// Tests: awaited before a resumable upload is made whole (see
    /// [`Storage::hold_finishing`]); shared by every clone.
    finishing_hold: Arc<resumable::FinishingHold>,
}

pub mod keys {
    use uuid::Uuid;

    pub fn task_prefix(task: Uuid) -> String {
        format!("tasks/{task}")
    }
    pub fn input(task: Uuid, filename: &str) -> String {
        format!("tasks/{task}/input/{filename}")
    }
    /// A per-task logo for the idrl bumpers (PNG).
    pub fn logo(task: Uuid) -> String {
        format!("tasks/{task}/logo.png")
    }
    pub fn outputs_prefix(task: Uuid) -> String {
        format!("tasks/{task}/out")
    }
    pub fn run_prefix(task: Uuid, run: u32) -> String {
        format!("tasks/{task}/out/{run}")
    }
    pub fn output(task: Uuid, run: u32, name: &str) -> String {
        format!("tasks/{task}/out/{run}/{name}")
    }
}

impl Storage {
    /// Open the store a storage URL names (see [`Location`]); remote stores read their
    /// credentials from the environment, then `options.extra`. No request is made here.
    pub fn from_url(url: &str, options: &StorageOptions) -> anyhow::Result<Self> {
        let location = Location::parse(url).map_err(|e| anyhow::anyhow!(e))?;
        if (options.s3_endpoint.is_some() || options.s3_public_endpoint.is_some())
            && !matches!(location, Location::S3 { .. })
        {
            anyhow::bail!("an S3 endpoint is set but the storage URL is not s3://");
        }
        match location {
            Location::Local(dir) => {
                std::fs::create_dir_all(&dir)?;
                let store =
                    Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true));
                Ok(Self {
                    store: store.clone(),
                    signer: None,
                    local: Some(store),
                    multipart: None,
                    finishing_hold: Arc::default(),
                })
            }
            Location::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry_config());
                for (k, v) in &options.extra {
                    let key: AmazonS3ConfigKey = k.parse()?;
                    b = b.with_config(key, v);
                }
                let at = |b: AmazonS3Builder, endpoint: &url::Url| {
                    b.with_endpoint(endpoint.as_str().trim_end_matches('/'))
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.scheme() == "http")
                };
                // Signing is local (no request): a second client configured with the
                // public address signs URLs for it, with the same credentials.
                let signer = match &options.s3_public_endpoint {
                    Some(public) => Some(at(b.clone(), public).build()?),
                    None => None,
                };
                if let Some(endpoint) = &options.s3_endpoint {
                    b = at(b, endpoint);
                }
                let mut storage = Self::remote(b.build()?, &prefix);
                if let Some(signer) = signer {
                    storage.signer = Some(Arc::new(PrefixStore::new(signer, prefix.as_str())));
                }
                Ok(storage)
            }
            Location::Gcs { bucket, prefix } => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry_config());
                for (k, v) in &options.extra {
                    let key: GoogleConfigKey = k.parse()?;
                    b = b.with_config(key, v);
                }
                Ok(Self::remote(b.build()?, &prefix))
            }
        }
    }

    fn remote<T: ObjectStore + Signer + MultipartStore>(store: T, prefix: &str) -> Self {
        let store = Arc::new(PrefixStore::new(store, prefix));
        Self {
            store: store.clone(),
            signer: Some(store.clone()),
            local: None,
            multipart: Some(store),
            finishing_hold: Arc::default(),
        }
    }

    pub fn in_memory() -> Self {
        let store = Arc::new(object_store::memory::InMemory::new());
        Self {
            store: store.clone(),
            signer: None,
            local: None,
            multipart: Some(store),
            finishing_hold: Arc::default(),
        }
    }

    /// Whether downloads go to the store directly through [`Storage::signed_url`].
    pub fn signs_urls(&self) -> bool {
        self.signer.is_some()
    }

    fn path(key: &str) -> ObjectPath {
        ObjectPath::from(key)
    }

    /// A presigned GET of `key`, valid for [`SIGNED_URL_TTL`], whose response is a download
    /// named `filename` of `content_type`. `None` when the store cannot sign (local files).
    pub async fn signed_url(
        &self,
        key: &str,
        content_disposition: &str,
        content_type: &str,
    ) -> Result<Option<url::Url>, StorageError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let options = SignedUrlOptions::new().with_query([
            ("response-content-disposition", content_disposition),
            ("response-content-type", content_type),
        ]);
        let url = signer
            .signed_url_opts(
                object_store::signer::Method::GET,
                &Self::path(key),
                SIGNED_URL_TTL,
                &options,
            )
            .await?;
        Ok(Some(url))
    }

    /// Stream a body into `key` through multipart writes, stopping with `TooLarge` as soon
    /// as more than `limit` bytes arrive. Nothing is left behind on error, nor when the
    /// caller stops polling (a dropped upload is aborted in the background).
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        body: S,
        limit: u64,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        // Remote stores serve downloads themselves (presigned URLs): give them the type.
        let mut opts = PutMultipartOptions::default();
        if self.signer.is_some() {
            opts.attributes
                .insert(Attribute::ContentType, content_type(key).into());
        }
        let upload = self
            .store
            .put_multipart_opts(&Self::path(key), opts)
            .await?;
        let mut guard = AbortOnDrop(Some(WriteMultipart::new_with_chunk_size(upload, CHUNK)));
        let mut body = body;
        let mut total: u64 = 0;
        let result: Result<(), StorageError> = async {
            let Some(writer) = guard.0.as_mut() else {
                return Ok(());
            };
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StorageError::Body(e.to_string()))?;
                total += chunk.len() as u64;
                if total > limit {
                    return Err(StorageError::TooLarge(limit));
                }
                writer.wait_for_capacity(IN_FLIGHT).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        let Some(writer) = guard.0.take() else {
            return Err(StorageError::Body("upload already closed".into()));
        };
        match result {
            // `finish` aborts the upload itself when completing fails.
            Ok(()) => {
                writer.finish().await?;
                Ok(total)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, key, "could not abort a multipart upload");
                }
                Err(e)
            }
        }
    }

    /// Store a finished local file under `key`. On local storage on the same file system
    /// the file is hard-linked into place (no byte copy: a 1 GiB output costs the same as
    /// 1 KiB); otherwise it is streamed. The caller must not modify `path` afterwards.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        if let Some(local) = &self.local {
            let dest = local.path_to_filesystem(&Self::path(key))?;
            if let Some(size) = link_into_store(path, &dest).await? {
                return Ok(size);
            }
        }
        let mut file = tokio::fs::File::open(path).await?;
        let stream = async_stream_file(&mut file);
        self.put_stream(key, Box::pin(stream), u64::MAX).await
    }

    /// Bring `key` into a new local file at `path`, which must not exist. On local storage
    /// on the same file system this is a hard link (objects are immutable once written:
    /// every write of a key replaces its file, it never rewrites one in place), so the
    /// caller must only read `path`.
    ///
    /// `cancel` stops a copy between chunks ([`StorageError::Cancelled`], `path` left as
    /// far as it got). Never drop this future to stop it instead: its file operations run
    /// on tokio's blocking threads, where one whose future was dropped still completes —
    /// a link or a file made after the caller removed the folder, or while it does. When
    /// this returns, every operation it began has ended, whatever the result.
    pub async fn get_to_file(
        &self,
        key: &str,
        path: &Path,
        cancel: &CancellationToken,
    ) -> Result<u64, StorageError> {
        if let Some(local) = &self.local {
            let src = local.path_to_filesystem(&Self::path(key))?;
            match tokio::fs::hard_link(&src, path).await {
                Ok(()) => return Ok(tokio::fs::metadata(path).await?.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StorageError::NotFound);
                }
                Err(e) if cross_device(&e) => {} // stream it below
                Err(e) => return Err(e.into()),
            }
        }
        // Nothing is written locally before the answer: dropping the request is safe.
        let location = Self::path(key);
        let got = tokio::select! {
            got = self.store.get(&location) => got.map_err(map_not_found)?,
            _ = cancel.cancelled() => return Err(StorageError::Cancelled),
        };
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(path).await?;
        let mut total = 0u64;
        let copied = async {
            loop {
                let chunk = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(StorageError::Cancelled),
                    chunk = stream.next() => chunk,
                };
                let Some(chunk) = chunk else {
                    return Ok(total);
                };
                let chunk = chunk?;
                total += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
        }
        .await;
        // `write_all` returns once a blocking thread has the bytes; wait for it to write them
        // however the copy ended, so that nothing writes to `path` after this returns.
        let flushed = file.flush().await;
        let total = copied?;
        flushed?;
        Ok(total)
    }

    pub async fn size(&self, key: &str) -> Result<u64, StorageError> {
        let meta = self
            .store
            .head(&Self::path(key))
            .await
            .map_err(map_not_found)?;
        Ok(meta.size)
    }

    /// Read `key`, all of it or `range` (already validated against the size).
    pub async fn read(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectStream, StorageError> {
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&Self::path(key), opts)
            .await
            .map_err(map_not_found)?;
        let size = got.meta.size;
        let range = got.range.clone();
        Ok(ObjectStream {
            size,
            range,
            body: got.into_stream().map_err(StorageError::from).boxed(),
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&Self::path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .list_dated(prefix)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Every key under `prefix`, with when it was last written.
    pub async fn list_dated(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, StorageError> {
        let p = Self::path(prefix);
        let metas: Vec<_> = self.store.list(Some(&p)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.last_modified))
            .collect())
    }

    /// Delete every key under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        for k in &keys {
            self.delete(k).await?;
        }
        Ok(keys.len())
    }

    /// Remove every output run of `task` except `keep`.
    pub async fn prune_runs(&self, task: Uuid, keep: u32) -> Result<(), StorageError> {
        let keep_prefix = format!("{}/", keys::run_prefix(task, keep));
        for k in self.list(&keys::outputs_prefix(task)).await? {
            if !k.starts_with(&keep_prefix) {
                self.delete(&k).await?;
            }
        }
        Ok(())
    }

    /// Readiness: a small object can be written and removed within a few seconds.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let key = ObjectPath::from(format!(".readyz/{}", Uuid::now_v7()));
        let probe = async {
            self.store
                .put(&key, object_store::PutPayload::from_static(b"ok"))
                .await?;
            self.store.delete(&key).await?;
            Ok(())
        };
        tokio::time::timeout(PING_TIMEOUT, probe)
            .await
            .map_err(|_| StorageError::Timeout(PING_TIMEOUT))?
    }
}

/// The media type of a file, by the extension of its name (or key).
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "mpeg" | "mpg" => "video/mpeg",
        "wmv" => "video/x-ms-wmv",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "wma" => "audio/x-ms-wma",
        "m3u8" => "application/vnd.apple.mpegurl",
        "ts" => "video/mp2t",
        "zip" => "application/zip",
        "7z" => "application/x-7z-compressed",
        // `.tar.gz` and `.tar.bz2`: the outer layer is what a client opens first.
        "gz" => "application/gzip",
        "bz2" => "application/x-bzip2",
        _ => "application/octet-stream",
    }
}

/// Retries of remote requests: a few quick ones, so a store that is down is reported in
/// seconds (readiness, uploads) instead of the library default of minutes.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Aborts a multipart upload that is dropped before it was finished or aborted.
struct AbortOnDrop(Option<WriteMultipart>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = writer.abort().await {
                    tracing::warn!(error = %e, "could not abort an abandoned multipart upload");
                }
            });
        }
    }
}

/// `EXDEV`: scratch and the store are on different file systems, so a link cannot work.
fn cross_device(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EXDEV)
}

/// Hard-link `src` into the store at `dest` atomically: link under a staging name that
/// `LocalFileSystem` ignores (`name#digits`, as its own staged writes), then rename over
/// `dest`. `None` when the two are on different file systems (the caller copies instead).
async fn link_into_store(src: &Path, dest: &Path) -> Result<Option<u64>, StorageError> {
    let size = tokio::fs::metadata(src).await?.len();
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut staged = dest.as_os_str().to_owned();
    staged.push(format!("#{}", rand::random::<u64>()));
    match tokio::fs::hard_link(src, &staged).await {
        Ok(()) => {}
        Err(e) if cross_device(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = tokio::fs::rename(&staged, dest).await {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(e.into());
    }
    Ok(Some(size))
}

fn async_stream_file(
    file: &mut tokio::fs::File,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + '_ {
    futures::stream::unfold(file, |file| async move {
        let mut buf = vec![0u8; 1024 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}

pub mod resumable;

#[cfg(test)]
mod tests;
