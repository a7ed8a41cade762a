//! `POST /api/tasks` as `multipart/form-data`: the file part streams straight into
//! storage (never whole in memory), a `logo` part is checked and stored beside it, and the
//! text parts name the profile. A refused upload leaves nothing behind.
//!
//! Every byte is bounded: the whole body by `body_limit` (enforced by `limits`), each text
//! part by its own small cap, and what the multipart parser holds outside part data (a
//! preamble, part headers) by `PARSER_HOLD_BYTES`. A part the service does not know is refused,
//! not skipped: a misspelt `options` would otherwise run the task with defaults.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::AuthUser;
use super::tasks::{created, resolve_profile};
use crate::db::NewTask;
use crate::domain::ErrorCode;
use crate::domain::{Source, TaskRecord, safe_filename};
use crate::media::LogoError;
use crate::storage::{StorageError, keys};

/// The text parts and the most bytes each may have.
const TEXT_PARTS: [(&str, u64); 6] = [
    ("fileName", 4 * 1024),
    ("newFormat", 4 * 1024),
    ("webhook_url", 4 * 1024),
    ("profile", 4 * 1024),
    ("expires_in", 1024),
    ("options", 64 * 1024),
];

/// Every part name a client may send, for the error that refuses another.
const KNOWN_PARTS: &str =
    "file (or video), fileName, newFormat, profile, options, webhook_url, expires_in and logo";

/// Boundaries and part headers of a valid upload: a few hundred bytes a part.
const FRAMING_BYTES: u64 = 64 * 1024;

/// The most the parser may hold that it has not handed out as part data: a chunk or two of
/// the body in flight (hyper reads at most a few hundred KiB at a time) and the framing.
const PARSER_HOLD_BYTES: u64 = 1024 * 1024;

/// The most bytes an upload's body may have: the file, a logo, every text part and the
/// framing around them. Anything longer cannot be a valid upload.
pub(super) fn body_limit(max_upload: u64) -> u64 {
    let text: u64 = TEXT_PARTS.iter().map(|(_, cap)| cap).sum();
    max_upload
        .saturating_add(crate::media::MAX_LOGO_BYTES)
        .saturating_add(text)
        .saturating_add(FRAMING_BYTES)
}

pub(super) async fn create_from_upload(
    state: AppState,
    user: AuthUser,
    req: Request,
) -> ApiResult<Response> {
    // Under a quota the file may take only the room left: a body clearly over it is refused
    // unread, one near it is cut off where the room ends (and removed).
    let room = super::usage::quota_room(&state, user.id).await?;
    // Everything a body may carry besides the file (a logo, text parts, framing).
    let envelope = body_limit(0);
    if let (Some(room), Some(declared)) = (room, super::limits::declared_length(req.headers()))
        && declared.saturating_sub(envelope) > room.left()
    {
        return Err(room.refuse(Some(declared.saturating_sub(envelope))));
    }
    let watch = BodyWatch::default();
    let req = req.map(|body| watch.wrap(body));
    let mut multipart = Multipart::from_request(req, &state)
        .await
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidMultipart, e.body_text()))?;
    let mut parts = UploadParts::new(Uuid::now_v7(), watch, state.max_upload, room);
    let outcome = async {
        parts.read(&state, &mut multipart).await?;
        let mut new = parts.new_task(user.id)?;
        let webhook = parts.webhook_url.as_deref();
        new.webhook_url = super::tasks::optional_webhook_url(&state, webhook).await?;
        Ok::<TaskRecord, ApiError>(state.db.create_task(new, state.max_attempts).await?)
    }
    .await;
    match outcome {
        Ok(task) => {
            state.signals.task_created(task.id, task.user_id);
            Ok(created(&task.view()))
        }
        Err(e) => {
            parts.remove_stored(&state).await;
            Err(e)
        }
    }
}

/// The file as stored under the task's input key.
#[derive(Clone)]
struct StoredInput {
    key: String,
    filename: String,
    size: u64,
}

/// What an upload carried so far; its file and logo are already in storage.
struct UploadParts {
    task_id: Uuid,
    input: Option<StoredInput>,
    has_logo: bool,
    /// `fileName`: the name to show, when the file part's own name is not it.
    file_name: Option<String>,
    /// `newFormat`: shorthand for the convert profile (legacy field).
    new_format: Option<String>,
    profile: Option<String>,
    options: Option<String>,
    webhook_url: Option<String>,
    expires_in: Option<String>,
    watch: BodyWatch,
    max_upload: u64,
    /// The owner's room under `REELFORGE_USER_QUOTA`, when one is set.
    room: Option<super::usage::QuotaRoom>,
}

impl UploadParts {
    fn new(
        task_id: Uuid,
        watch: BodyWatch,
        max_upload: u64,
        room: Option<super::usage::QuotaRoom>,
    ) -> Self {
        UploadParts {
            task_id,
            input: None,
            has_logo: false,
            file_name: None,
            new_format: None,
            profile: None,
            options: None,
            webhook_url: None,
            expires_in: None,
            watch,
            max_upload,
            room,
        }
    }

    async fn read(&mut self, state: &AppState, multipart: &mut Multipart) -> ApiResult<()> {
        while let Some(field) = multipart.next_field().await.map_err(|e| self.error(e))? {
            let name = field.name().unwrap_or("").to_string();
            match name.as_str() {
                "logo" => self.store_logo(state, field).await?,
                "file" | "video" => self.store_input(state, field).await?,
                // The conversion tool names its file part `fileName`; as text it is the name.
                "fileName" if field.file_name().is_some() => self.store_input(state, field).await?,
                _ => self.read_text(&name, field).await?,
            }
        }
        Ok(())
    }

    /// A text part, whole, within its cap; an unknown or repeated part is refused.
    async fn read_text(&mut self, name: &str, field: Field<'_>) -> ApiResult<()> {
        let Some(&(_, cap)) = TEXT_PARTS.iter().find(|(known, _)| *known == name) else {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidMultipart,
                format!(
                    "unknown part {}; the parts are {KNOWN_PARTS}",
                    quoted_name(name)
                ),
            ));
        };
        let bytes = self.read_small_part(field, name, cap).await?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidMultipart,
                format!("the `{name}` part is not UTF-8 text"),
            )
        })?;
        let slot = match name {
            "fileName" => &mut self.file_name,
            "newFormat" => &mut self.new_format,
            "profile" => &mut self.profile,
            "webhook_url" => &mut self.webhook_url,
            "expires_in" => &mut self.expires_in,
            _ => &mut self.options,
        };
        if slot.replace(text).is_some() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidMultipart,
                format!("the `{name}` part is given twice"),
            ));
        }
        Ok(())
    }

    /// A multipart failure as the client should read it: the body over its bound and framing
    /// the parser would have to buffer are 413, the rest is malformed input.
    fn error(&self, e: MultipartError) -> ApiError {
        if self.watch.0.over_limit.load(Ordering::Relaxed) {
            return ApiError::too_large(self.max_upload);
        }
        if self.watch.0.framing_too_long.load(Ordering::Relaxed) {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!(
                    "the multipart framing (a preamble or part headers) exceeds its limit of \
                     {PARSER_HOLD_BYTES} bytes"
                ),
            );
        }
        ApiError::bad_request(ErrorCode::InvalidMultipart, e.body_text())
    }

    /// Read a small part whole, refusing it past `limit` bytes.
    async fn read_small_part(
        &self,
        mut field: Field<'_>,
        name: &str,
        limit: u64,
    ) -> ApiResult<Bytes> {
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| self.error(e))? {
            self.watch.handed_out(chunk.len());
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    format!("the `{name}` part exceeds its limit of {limit} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    }

    async fn store_logo(&mut self, state: &AppState, field: Field<'_>) -> ApiResult<()> {
        if self.has_logo {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidMultipart,
                "the `logo` part is given twice",
            ));
        }
        let bytes = self
            .read_small_part(field, "logo", crate::media::MAX_LOGO_BYTES)
            .await?;
        crate::media::check_logo_png(&bytes).map_err(|e| match e {
            LogoError::NotPng => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.code(), e.to_string())
            }
            LogoError::BadSize { .. } => ApiError::bad_request(e.code(), e.to_string()),
        })?;
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        let key = keys::logo(self.task_id);
        state
            .storage
            .put_stream(&key, body, crate::media::MAX_LOGO_BYTES)
            .await?;
        self.has_logo = true;
        Ok(())
    }

    async fn store_input(&mut self, state: &AppState, field: Field<'_>) -> ApiResult<()> {
        if self.input.is_some() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidMultipart,
                "only one file part is accepted",
            ));
        }
        let filename = safe_filename(field.file_name().unwrap_or("upload.bin"));
        let key = keys::input(self.task_id, &filename);
        let watch = self.watch.clone();
        let body = field
            .inspect_ok(move |chunk| watch.handed_out(chunk.len()))
            .map_err(|e| e.body_text());
        let size = state
            .storage
            .put_stream(&key, body, self.file_limit())
            .await
            .map_err(|e| match e {
                StorageError::TooLarge(l) => self.file_too_large(l),
                StorageError::Body(_) if self.watch.0.over_limit.load(Ordering::Relaxed) => {
                    ApiError::too_large(self.max_upload)
                }
                StorageError::Body(m) => ApiError::bad_request(ErrorCode::InvalidMultipart, m),
                other => ApiError::Internal(other.into()),
            })?;
        self.input = Some(StoredInput {
            key,
            filename,
            size,
        });
        Ok(())
    }

    /// The task the parts describe, or why they describe none.
    fn new_task(&self, user_id: Uuid) -> ApiResult<NewTask> {
        let input = self.input.clone().ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::MissingField,
                "a file part named `file` is required",
            )
        })?;
        if input.size == 0 {
            return Err(ApiError::bad_request(
                ErrorCode::EmptyFile,
                "the uploaded file is empty",
            ));
        }
        // HTML forms send empty inputs as empty parts: an empty part is an absent one.
        let given = |part: &Option<String>| part.clone().filter(|t| !t.trim().is_empty());
        let options = match given(&self.options) {
            None => None,
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidOptions,
                    format!("the `options` part must be a JSON object ({e})"),
                )
            })?),
        };
        let new_format = given(&self.new_format);
        let format = new_format.as_deref().map(|f| ("newFormat", f));
        let profile = resolve_profile(given(&self.profile).as_deref(), options, format)?;
        if self.has_logo && !profile.wants_logo() {
            return Err(ApiError::bad_request(
                ErrorCode::ConflictingFields,
                format!(
                    "the `logo` part applies to the idrl profile only, not to {}",
                    profile.name()
                ),
            ));
        }
        let filename = self
            .file_name
            .as_deref()
            .filter(|name| !name.trim().is_empty())
            .map(safe_filename)
            .unwrap_or(input.filename);
        Ok(NewTask {
            id: self.task_id,
            user_id,
            profile,
            source: Source::Upload {
                filename,
                size: input.size,
            },
            input_key: Some(input.key),
            webhook_url: None,
            keep_seconds: super::usage::expires_in(self.expires_in.as_deref())?,
        })
    }

    /// The most bytes the file may have: the upload limit, or the quota's room if smaller.
    fn file_limit(&self) -> u64 {
        self.room
            .map_or(self.max_upload, |r| r.left().min(self.max_upload))
    }

    /// The file went past `limit`: the quota's room, or the upload limit.
    fn file_too_large(&self, limit: u64) -> ApiError {
        match self.room {
            Some(room) if limit < self.max_upload => room.refuse(None),
            _ => ApiError::too_large(limit),
        }
    }

    /// Nothing may outlive a refused upload (input, logo).
    async fn remove_stored(&self, state: &AppState) {
        if (self.input.is_some() || self.has_logo)
            && let Err(e) = state
                .storage
                .delete_prefix(&keys::task_prefix(self.task_id))
                .await
        {
            tracing::warn!(error = %e, "could not remove a refused upload");
        }
    }
}

/// A part name as the error quotes it: short, and visibly empty when absent.
fn quoted_name(name: &str) -> String {
    if name.is_empty() {
        return "without a name".to_string();
    }
    let short: String = name.chars().take(64).collect();
    format!("`{short}`")
}

/// Watches the body the multipart parser reads: whether it hit the body's bound, and how
/// many bytes the parser holds that it has not handed out as part data. The parser buffers a
/// preamble or a part's headers whole while it searches for their end, so without this a
/// body of one endless header would sit in memory up to the whole upload limit.
#[derive(Clone, Default)]
struct BodyWatch(Arc<WatchState>);

#[derive(Default)]
struct WatchState {
    taken: AtomicU64,
    handed: AtomicU64,
    over_limit: AtomicBool,
    framing_too_long: AtomicBool,
}

impl BodyWatch {
    fn wrap(&self, body: Body) -> Body {
        let watch = self.clone();
        Body::from_stream(body.into_data_stream().map(move |item| watch.pass(item)))
    }

    /// Let a chunk through, or stop the body when the parser holds too much of it.
    fn pass(&self, item: Result<Bytes, axum::Error>) -> Result<Bytes, axum::Error> {
        let state = &self.0;
        let chunk = item.inspect_err(|e| {
            if super::limits::is_over_limit(e) {
                state.over_limit.store(true, Ordering::Relaxed);
            }
        })?;
        let taken =
            state.taken.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        let held = taken.saturating_sub(state.handed.load(Ordering::Relaxed));
        if held > PARSER_HOLD_BYTES {
            state.framing_too_long.store(true, Ordering::Relaxed);
            return Err(axum::Error::new(std::io::Error::other(
                "multipart framing over its bound",
            )));
        }
        Ok(chunk)
    }

    fn handed_out(&self, n: usize) {
        self.0.handed.fetch_add(n as u64, Ordering::Relaxed);
    }
}
