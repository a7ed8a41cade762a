//! `POST /api/tasks` as `multipart/form-data`: the file part streams straight into
//! storage (never whole in memory), a `logo` part is checked and stored beside it, and the
//! text parts name the profile. A refused upload leaves nothing behind.

use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::TryStreamExt;
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

/// The multipart envelope adds a little; anything past limit + 64 KiB cannot fit.
const ENVELOPE_BYTES: u64 = 64 * 1024;

pub(super) async fn create_from_upload(
    state: AppState,
    user: AuthUser,
    req: Request,
) -> ApiResult<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_upload.saturating_add(ENVELOPE_BYTES)) {
        return Err(ApiError::too_large(state.max_upload));
    }
    let mut multipart = Multipart::from_request(req, &state)
        .await
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidMultipart, e.body_text()))?;
    let mut parts = UploadParts::new(Uuid::now_v7());
    let outcome = async {
        parts.read(&state, &mut multipart).await?;
        let new = parts.new_task(user.id)?;
        Ok::<TaskRecord, ApiError>(state.db.create_task(new, state.max_attempts).await?)
    }
    .await;
    match outcome {
        Ok(task) => {
            state.signals.job_queued();
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
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidMultipart, e.body_text())
}

impl UploadParts {
    fn new(task_id: Uuid) -> Self {
        UploadParts {
            task_id,
            input: None,
            has_logo: false,
            file_name: None,
            new_format: None,
            profile: None,
            options: None,
        }
    }

    async fn read(&mut self, state: &AppState, multipart: &mut Multipart) -> ApiResult<()> {
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or("").to_string();
            let is_file = field.file_name().is_some() || matches!(name.as_str(), "file" | "video");
            if name == "logo" {
                self.store_logo(state, field).await?;
            } else if is_file && matches!(name.as_str(), "file" | "video" | "fileName") {
                self.store_input(state, field).await?;
            } else {
                let text = field.text().await.map_err(multipart_error)?;
                match name.as_str() {
                    "fileName" => self.file_name = Some(text),
                    "newFormat" => self.new_format = Some(text),
                    "profile" => self.profile = Some(text),
                    "options" => self.options = Some(text),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn store_logo(&mut self, state: &AppState, field: Field<'_>) -> ApiResult<()> {
        let bytes = read_small_part(field, crate::media::MAX_LOGO_BYTES).await?;
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
        let body = field.map_err(|e| e.body_text());
        let size = state
            .storage
            .put_stream(&key, body, state.max_upload)
            .await
            .map_err(|e| match e {
                StorageError::TooLarge(l) => ApiError::too_large(l),
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
        })
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

/// Read a small multipart part whole, refusing it past `limit` bytes.
async fn read_small_part(mut field: Field<'_>, limit: u64) -> ApiResult<bytes::Bytes> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(buf))
}
