//! The bytes of resumable uploads (tus): appended by requests that may land on any API
//! process, so everything between two requests is in storage and in the upload's row
//! ([`PartsState`]), never in one process's memory.
//!
//! - **Local files** append to `uploads/{id}/data` at the recorded offset (what a failed
//!   request wrote past it is cut off first); the finished file is renamed to its key.
//! - **Object stores** (S3, GCS, memory) write a multipart upload to the final key, part by
//!   part, as tusd does: a part must be ≥ 5 MiB (S3) so bytes that do not fill one are staged
//!   in a tail object and read back by the next request. The tail's key names the state it
//!   belongs to (`uploads/{id}/tail-{parts}-{bytes}`), so a crash between writing a new tail
//!   and recording it leaves the recorded one intact. A part written by a request whose
//!   bytes are then refused (checksum) is simply not recorded; the next one overwrites it.
//!
//! Memory: one part (8 MiB unless the upload is huge) plus a body chunk per request.
//! Local bytes are written like every object of the local store: to the page cache, not
//! synced (a dead process loses nothing; a dead machine may lose the last seconds).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use object_store::multipart::PartId;
use object_store::{
    Attribute, Attributes, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};
use uuid::Uuid;

use super::{Storage, StorageError, content_type, map_not_found};

/// The smallest part: S3 wants ≥ 5 MiB; 8 MiB matches common client chunk sizes (a client
/// sending 8 MiB requests then never stages a tail).
pub const MIN_PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3 allows at most 10,000 parts per upload.
const MAX_PARTS: u64 = 10_000;

/// The part size of an upload of `length` bytes: whole MiB, enough for 10,000 parts.
pub fn part_size(length: u64) -> u64 {
    let mib = 1024 * 1024;
    length
        .div_ceil(MAX_PARTS)
        .div_ceil(mib)
        .saturating_mul(mib)
        .max(MIN_PART_SIZE)
}

/// Where an upload keeps what is not yet in its final object.
pub fn staging_prefix(id: Uuid) -> String {
    format!("uploads/{id}")
}

fn local_data_key(id: Uuid) -> String {
    format!("uploads/{id}/data")
}

fn tail_key(id: Uuid, parts: &PartsState) -> String {
    format!("uploads/{id}/tail-{}-{}", parts.etags.len(), parts.staged)
}

/// How an upload's bytes sit in object storage between requests: the parts written to a
/// multipart upload, and the tail shorter than a part staged in its own object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartsState {
    /// Bytes of every part but the last: ≥ 5 MiB (S3), fixed per upload.
    pub part_size: u64,
    pub multipart_id: Option<String>,
    /// The ETag of each part written, in part order.
    pub etags: Vec<String>,
    /// Bytes staged after the last part.
    pub staged: u64,
}

/// A digest algorithm of the tus `checksum` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// `Tus-Checksum-Algorithm`.
    pub const NAMES: &'static str = "sha1,sha256";

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// The digest a request's body must have.
#[derive(Debug, Clone)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub expected: Vec<u8>,
}

/// The running digest of a body.
struct Hasher(aws_lc_rs::digest::Context);

impl Hasher {
    fn new(algorithm: ChecksumAlgorithm) -> Self {
        Hasher(aws_lc_rs::digest::Context::new(match algorithm {
            // tus clients send sha1 (the one algorithm every client has); it detects
            // corruption in transit, which is all a checksum here is for.
            ChecksumAlgorithm::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            ChecksumAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
        }))
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(self) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// What a test holds finishing uploads on ([`Storage::hold_finishing`]).
type Hold = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
pub(super) struct FinishingHold(RwLock<Option<Hold>>);

/// One request's bytes for an upload.
pub struct Append<'a> {
    pub id: Uuid,
    /// The final key (the task's input).
    pub key: &'a str,
    pub length: u64,
    /// Where the request starts: the upload's recorded offset.
    pub offset: u64,
    pub checksum: Option<Checksum>,
    /// Set when the request's lock on the upload is lost: stop writing at once.
    pub lost: &'a AtomicBool,
}

/// How a request's body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendEnd {
    /// Every byte arrived (and matched the checksum, if one was given).
    Done,
    /// The body broke off (a dropped connection): what arrived is kept, unless a checksum
    /// was given (it cannot be checked, so nothing is kept).
    Interrupted(String),
    /// The body's digest is not the `Upload-Checksum`: nothing of it is kept.
    ChecksumMismatch,
    /// The body goes past `Upload-Length`: nothing of it is kept.
    TooLong,
    /// The lock was lost: nothing more is written, and nothing may be recorded.
    LockLost,
}

/// What an append stored: the state to record, and how the body ended.
#[derive(Debug)]
pub struct Appended {
    /// Bytes of this request kept (the upload's offset grows by this much).
    pub kept: u64,
    pub parts: PartsState,
    pub end: AppendEnd,
    /// The upload is whole and in its final object.
    pub finished: bool,
}

/// Reads a body, hashing and counting it, until it ends, breaks, or goes past `room`.
struct BodyReader<S> {
    body: S,
    hasher: Option<Hasher>,
    room: u64,
    received: u64,
}

enum Next {
    Chunk(Bytes),
    End(AppendEnd),
}

impl<S, E> BodyReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    async fn next(&mut self, lost: &AtomicBool) -> Next {
        if lost.load(Ordering::SeqCst) {
            return Next::End(AppendEnd::LockLost);
        }
        match self.body.next().await {
            None => Next::End(AppendEnd::Done),
            Some(Err(e)) => Next::End(AppendEnd::Interrupted(e.to_string())),
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if self.received > self.room {
                    return Next::End(AppendEnd::TooLong);
                }
                if let Some(h) = &mut self.hasher {
                    h.update(&chunk);
                }
                Next::Chunk(chunk)
            }
        }
    }

    /// Whether the bytes read may be kept, given how the body ended.
    fn verdict(self, end: AppendEnd, expected: Option<&Checksum>) -> AppendEnd {
        match (end, expected, self.hasher) {
            (AppendEnd::Done, Some(c), Some(h)) => {
                if h.finish() == c.expected {
                    AppendEnd::Done
                } else {
                    AppendEnd::ChecksumMismatch
                }
            }
            (end, _, _) => end,
        }
    }
}

fn keeps(end: &AppendEnd, checksummed: bool) -> bool {
    match end {
        AppendEnd::Done => true,
        AppendEnd::Interrupted(_) => !checksummed,
        _ => false,
    }
}

impl Storage {
    /// The storage state of a new upload. On object stores an upload longer than one part
    /// starts its multipart upload now, so its id is recorded from the start and an
    /// abandoned upload can always be aborted.
    pub async fn begin_resumable(
        &self,
        key: &str,
        length: u64,
    ) -> Result<PartsState, StorageError> {
        let part_size = part_size(length);
        let mut parts = PartsState {
            part_size,
            ..PartsState::default()
        };
        if let Some(multipart) = &self.multipart
            && length > part_size
        {
            let opts = PutMultipartOptions {
                attributes: self.typed(key),
                ..Default::default()
            };
            let id = multipart
                .create_multipart_opts(&Self::path(key), opts)
                .await?;
            parts.multipart_id = Some(id);
        }
        Ok(parts)
    }

    /// Tests: await `hold` whenever an upload's last bytes have arrived, before it is made
    /// whole (the multipart upload completed, the local file moved to its key), so that a
    /// test can act while a request stands at that point (its client going away).
    pub fn hold_finishing(
        &self,
        hold: impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        if let Ok(mut slot) = self.finishing_hold.0.write() {
            *slot = Some(Arc::new(hold));
        }
    }

    async fn before_finishing(&self) {
        let hold = self.finishing_hold.0.read().ok().and_then(|h| h.clone());
        if let Some(hold) = hold {
            hold().await;
        }
    }

    /// Attributes of an object a client may download straight from the store.
    fn typed(&self, key: &str) -> Attributes {
        let mut attributes = Attributes::new();
        if self.signer.is_some() {
            attributes.insert(Attribute::ContentType, content_type(key).into());
        }
        attributes
    }

    /// Store one request's body for an upload whose recorded state is `parts`.
    pub async fn append_resumable<S, E>(
        &self,
        append: Append<'_>,
        parts: &PartsState,
        body: S,
    ) -> Result<Appended, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let reader = BodyReader {
            body,
            hasher: append.checksum.as_ref().map(|c| Hasher::new(c.algorithm)),
            room: append.length.saturating_sub(append.offset),
            received: 0,
        };
        if self.local.is_some() {
            self.append_local(append, parts, reader).await
        } else {
            self.append_parts(append, parts, reader).await
        }
    }

    async fn append_local<S, E>(
        &self,
        append: Append<'_>,
        parts: &PartsState,
        mut reader: BodyReader<S>,
    ) -> Result<Appended, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.local_path(&local_data_key(append.id))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // One blocking thread writes the chunks as they arrive (moved to it, not copied):
        // a write per chunk through tokio's file would copy each and hop threads for each.
        let (chunks, mut inbox) = tokio::sync::mpsc::channel::<Bytes>(16);
        let offset = append.offset;
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            use std::io::{Seek, Write};
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            // Bytes past the recorded offset are from a request that was refused or whose
            // process died before recording them.
            file.set_len(offset)?;
            file.seek(std::io::SeekFrom::Start(offset))?;
            while let Some(chunk) = inbox.blocking_recv() {
                file.write_all(&chunk)?;
            }
            Ok(file)
        });
        let end = loop {
            match reader.next(append.lost).await {
                Next::Chunk(chunk) => {
                    if chunks.send(chunk).await.is_err() {
                        break AppendEnd::Interrupted("the file writer stopped".into());
                    }
                }
                Next::End(end) => break end,
            }
        };
        drop(chunks);
        let file = writer
            .await
            .map_err(|e| StorageError::Body(format!("the file writer failed: {e}")))??;
        let received = reader.received;
        let end = reader.verdict(end, append.checksum.as_ref());
        // Like every object of the local store (object_store's LocalFileSystem), the bytes
        // are in the page cache when the client is told they are stored: the process may
        // die, the bytes stay (as in tusd's file store).
        let kept = if keeps(&end, append.checksum.is_some()) {
            received
        } else {
            file.set_len(append.offset)?;
            0
        };
        drop(file);
        let path = self.local_path(&local_data_key(append.id))?;
        let finished = append.offset + kept == append.length && end == AppendEnd::Done;
        if finished {
            self.before_finishing().await;
            let dest = self.local_path(append.key)?;
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::rename(&path, &dest).await?;
        }
        Ok(Appended {
            kept,
            parts: parts.clone(),
            end,
            finished,
        })
    }

    async fn append_parts<S, E>(
        &self,
        append: Append<'_>,
        parts: &PartsState,
        mut reader: BodyReader<S>,
    ) -> Result<Appended, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let part_size = usize::try_from(parts.part_size).unwrap_or(usize::MAX);
        let mut next = parts.clone();
        let mut buf = BytesMut::new();
        if parts.staged > 0 {
            buf.extend_from_slice(&self.read_tail(append.id, parts).await?);
        }
        let end = loop {
            match reader.next(append.lost).await {
                Next::Chunk(chunk) => {
                    buf.extend_from_slice(&chunk);
                    while buf.len() >= part_size && next.multipart_id.is_some() {
                        let part = buf.split_to(part_size).freeze();
                        self.put_part(append.key, &mut next, part).await?;
                    }
                }
                Next::End(end) => break end,
            }
        };
        let received = reader.received;
        let end = reader.verdict(end, append.checksum.as_ref());
        if !keeps(&end, append.checksum.is_some()) {
            // Parts written by this request are not recorded: the next one overwrites them.
            return Ok(Appended {
                kept: 0,
                parts: parts.clone(),
                end,
                finished: false,
            });
        }
        let finished = append.offset + received == append.length && end == AppendEnd::Done;
        if finished {
            self.before_finishing().await;
            self.finish_parts(append.key, &mut next, buf.freeze())
                .await?;
        } else {
            next.staged = buf.len() as u64;
            let changed = next.etags.len() != parts.etags.len() || next.staged != parts.staged;
            if changed && next.staged > 0 {
                let payload = PutPayload::from(buf.freeze());
                self.store
                    .put(&Self::path(&tail_key(append.id, &next)), payload)
                    .await?;
            }
        }
        Ok(Appended {
            kept: received,
            parts: next,
            end,
            finished,
        })
    }

    async fn read_tail(&self, id: Uuid, parts: &PartsState) -> Result<Bytes, StorageError> {
        let got = self
            .store
            .get(&Self::path(&tail_key(id, parts)))
            .await
            .map_err(map_not_found)?;
        let bytes = got.bytes().await?;
        if bytes.len() as u64 != parts.staged {
            return Err(StorageError::Body(format!(
                "the staged bytes of upload {id} are {} long, {} expected",
                bytes.len(),
                parts.staged
            )));
        }
        Ok(bytes)
    }

    async fn put_part(
        &self,
        key: &str,
        parts: &mut PartsState,
        part: Bytes,
    ) -> Result<(), StorageError> {
        let (Some(multipart), Some(id)) = (&self.multipart, &parts.multipart_id) else {
            return Err(StorageError::Body(
                "no multipart upload to add a part to".into(),
            ));
        };
        let index = parts.etags.len();
        let PartId { content_id } = multipart
            .put_part(&Self::path(key), id, index, PutPayload::from(part))
            .await?;
        parts.etags.push(content_id);
        Ok(())
    }

    /// The last bytes arrived: the object is made whole under its key.
    async fn finish_parts(
        &self,
        key: &str,
        parts: &mut PartsState,
        last: Bytes,
    ) -> Result<(), StorageError> {
        let Some(id) = parts.multipart_id.clone() else {
            // Shorter than one part: one plain write.
            let opts = PutOptions {
                attributes: self.typed(key),
                ..Default::default()
            };
            self.store
                .put_opts(&Self::path(key), PutPayload::from(last), opts)
                .await?;
            parts.staged = 0;
            return Ok(());
        };
        if !last.is_empty() || parts.etags.is_empty() {
            self.put_part(key, parts, last).await?;
        }
        let Some(multipart) = &self.multipart else {
            return Err(StorageError::Body("no multipart upload to complete".into()));
        };
        let etags = parts
            .etags
            .iter()
            .map(|content_id| PartId {
                content_id: content_id.clone(),
            })
            .collect();
        multipart
            .complete_multipart(&Self::path(key), &id, etags)
            .await?;
        parts.staged = 0;
        Ok(())
    }

    /// After a request's state was recorded: the tail of the state before it goes (a tail
    /// is named by its state, so an unchanged state keeps its tail).
    pub async fn drop_old_tail(&self, id: Uuid, before: &PartsState, after: &PartsState) {
        let old = tail_key(id, before);
        if self.local.is_some() || before.staged == 0 || old == tail_key(id, after) {
            return;
        }
        if let Err(e) = self.delete(&old).await {
            // Removed with the upload's other staged bytes when it finishes or expires.
            tracing::warn!(error = %e, upload = %id, "could not remove a staged tail");
        }
    }

    /// Remove everything an upload stored: its staged bytes, an unfinished multipart
    /// upload, and, when `with_object`, the finished object too.
    pub async fn discard_resumable(
        &self,
        id: Uuid,
        key: &str,
        parts: &PartsState,
        finished: bool,
        with_object: bool,
    ) -> Result<(), StorageError> {
        if !finished && let (Some(multipart), Some(upload)) = (&self.multipart, &parts.multipart_id)
        {
            match multipart.abort_multipart(&Self::path(key), upload).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.delete_prefix(&staging_prefix(id)).await?;
        if with_object {
            self.delete(key).await?;
        }
        Ok(())
    }

    fn local_path(&self, key: &str) -> Result<std::path::PathBuf, StorageError> {
        let Some(local) = &self.local else {
            return Err(StorageError::Body("not local storage".into()));
        };
        Ok(local.path_to_filesystem(&Self::path(key))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageOptions;
    use futures::TryStreamExt;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn parts_are_8_mib_until_10000_would_not_hold_the_upload() {
        let mib = MIB as u64;
        assert_eq!(part_size(0), 8 * mib);
        assert_eq!(part_size(2 * 1024 * mib), 8 * mib);
        assert_eq!(part_size(10_000 * 8 * mib), 8 * mib);
        let big = 10_000 * 8 * mib + 1;
        assert_eq!(part_size(big), 9 * mib);
        assert!(part_size(u64::MAX / 2) * MAX_PARTS >= u64::MAX / 2);
    }

    /// Bytes that differ at every position, so a misplaced byte shows.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// A body of `bytes` in 64 KiB chunks, optionally broken off after `cut` bytes.
    fn body(
        bytes: &[u8],
        cut: Option<usize>,
    ) -> impl Stream<Item = Result<Bytes, String>> + Unpin + use<> {
        let end = cut.unwrap_or(bytes.len());
        let mut items: Vec<Result<Bytes, String>> = bytes[..end]
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if cut.is_some() {
            items.push(Err("connection reset".into()));
        }
        futures::stream::iter(items)
    }

    struct Upload {
        id: Uuid,
        length: u64,
        offset: u64,
        parts: PartsState,
    }

    const KEY: &str = "tasks/t/input/clip.mp4";

    async fn send(
        s: &Storage,
        u: &mut Upload,
        bytes: &[u8],
        cut: Option<usize>,
        checksum: Option<Checksum>,
    ) -> Appended {
        let lost = AtomicBool::new(false);
        let append = Append {
            id: u.id,
            key: KEY,
            length: u.length,
            offset: u.offset,
            checksum,
            lost: &lost,
        };
        let a = s
            .append_resumable(append, &u.parts, body(bytes, cut))
            .await
            .unwrap();
        u.offset += a.kept;
        s.drop_old_tail(u.id, &u.parts, &a.parts).await;
        u.parts = a.parts.clone();
        a
    }

    fn sha1(bytes: &[u8]) -> Checksum {
        Checksum {
            algorithm: ChecksumAlgorithm::Sha1,
            expected: aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                bytes,
            )
            .as_ref()
            .to_vec(),
        }
    }

    /// 20 MiB in uneven requests: one broken off (kept), one with a wrong checksum
    /// (dropped), then the rest; the object is the bytes, once, in order.
    async fn resumes_to_the_exact_bytes(s: &Storage) {
        let all = data(20 * MIB + 12_345);
        let mut u = Upload {
            id: Uuid::now_v7(),
            length: all.len() as u64,
            offset: 0,
            parts: s.begin_resumable(KEY, all.len() as u64).await.unwrap(),
        };
        let a = send(s, &mut u, &all[..3 * MIB], None, None).await;
        assert_eq!(
            (a.kept, a.end, a.finished),
            (3 * MIB as u64, AppendEnd::Done, false)
        );
        // Broken off after 7 MiB: those are kept.
        let a = send(s, &mut u, &all[3 * MIB..], Some(7 * MIB), None).await;
        assert!(matches!(a.end, AppendEnd::Interrupted(_)), "{:?}", a.end);
        assert_eq!(u.offset, 10 * MIB as u64);
        // A wrong checksum: nothing kept, the state as it was.
        let before = u.parts.clone();
        let chunk = &all[10 * MIB..16 * MIB];
        let a = send(s, &mut u, chunk, None, Some(sha1(b"other"))).await;
        assert_eq!((a.kept, a.end), (0, AppendEnd::ChecksumMismatch));
        assert_eq!((u.offset, &u.parts), (10 * MIB as u64, &before));
        // Past the length: nothing kept.
        let mut too_long = all[10 * MIB..].to_vec();
        too_long.push(0);
        let a = send(s, &mut u, &too_long, None, None).await;
        assert_eq!((a.kept, a.end), (0, AppendEnd::TooLong));
        // The rest, checksummed.
        let a = send(s, &mut u, chunk, None, Some(sha1(chunk))).await;
        assert_eq!(a.end, AppendEnd::Done);
        let a = send(s, &mut u, &all[16 * MIB..], None, None).await;
        assert!(a.finished);
        let stored = s.read(KEY, None).await.unwrap();
        let got: Vec<Bytes> = stored.body.try_collect().await.unwrap();
        assert!(
            got.concat() == all,
            "the stored object differs from the bytes sent"
        );
        assert_eq!(
            s.list(&staging_prefix(u.id)).await.unwrap(),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn multipart_uploads_resume_to_the_exact_bytes() {
        let s = Storage::in_memory();
        resumes_to_the_exact_bytes(&s).await;
    }

    #[tokio::test]
    async fn local_uploads_resume_to_the_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let s = Storage::from_url(&url, &StorageOptions::default()).unwrap();
        resumes_to_the_exact_bytes(&s).await;
    }

    #[tokio::test]
    async fn discarding_aborts_and_removes_every_staged_byte() {
        let s = Storage::in_memory();
        let all = data(9 * MIB);
        let mut u = Upload {
            id: Uuid::now_v7(),
            length: 20 * MIB as u64,
            offset: 0,
            parts: s.begin_resumable(KEY, 20 * MIB as u64).await.unwrap(),
        };
        send(&s, &mut u, &all, None, None).await;
        assert_eq!((u.parts.etags.len(), u.parts.staged), (1, MIB as u64));
        assert_eq!(s.list(&staging_prefix(u.id)).await.unwrap().len(), 1);
        s.discard_resumable(u.id, KEY, &u.parts, false, true)
            .await
            .unwrap();
        assert!(s.list("").await.unwrap().is_empty());
    }
}
