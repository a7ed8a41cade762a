//! Every stable error code a client can see: the `error` of the API's JSON errors and the
//! `error.code` of a failed task. The text is the contract; clients match on it, so a code
//! is added here once and never renamed.

use std::fmt;

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// A stable error code; [`ErrorCode::as_str`] is its wire form.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    // Requests the API refuses.
    /// The body is not JSON, or not the JSON expected.
    InvalidJson = "invalid_json",
    /// The body cannot be read.
    InvalidBody = "invalid_body",
    /// A field has a wrong value.
    InvalidField = "invalid_field",
    /// A required field is absent.
    MissingField = "missing_field",
    /// A query parameter has a wrong value.
    InvalidQuery = "invalid_query",
    /// The multipart upload is malformed.
    InvalidMultipart = "invalid_multipart",
    /// The uploaded file is empty.
    EmptyFile = "empty_file",
    /// `profile` names no profile.
    InvalidProfile = "invalid_profile",
    /// The profile's options are not valid: at submission, or when planning against the
    /// probed input (one code for both, since it is one condition for the client).
    InvalidOptions = "invalid_options",
    /// Two fields of the request ask for different things (`format` with `profile: hls`).
    ConflictingFields = "conflicting_fields",
    /// The per-task logo is not a PNG.
    UnsupportedLogo = "unsupported_logo",
    /// The per-task logo's size is out of bounds.
    InvalidLogo = "invalid_logo",
    /// The URL cannot be fetched (scheme, form).
    InvalidUrl = "invalid_url",
    /// The URL's host is private, loopback or reserved, and not allowed.
    UrlNotAllowed = "url_not_allowed",
    /// The body is over the size limit.
    PayloadTooLarge = "payload_too_large",
    /// No such resource, or not yours.
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    /// The requested byte range is outside the file.
    RangeNotSatisfiable = "range_not_satisfiable",
    /// No bearer token (or another scheme).
    Unauthorized = "unauthorized",
    /// The bearer token is malformed, wrongly signed, or its account is gone.
    InvalidToken = "invalid_token",
    /// The bearer token was valid but has expired: log in again.
    TokenExpired = "token_expired",
    /// Wrong user name, e-mail or password (never says which).
    InvalidCredentials = "invalid_credentials",
    /// Too many attempts; `Retry-After` says when to try again.
    RateLimited = "rate_limited",
    /// A request authenticated by the session cookie that may be cross-site: an unsafe
    /// method without the session's `X-CSRF-Token`, or from another origin.
    CsrfFailed = "csrf_failed",
    /// A playback link that is malformed, wrongly signed or expired.
    InvalidLink = "invalid_link",
    UsernameTaken = "username_taken",
    EmailTaken = "email_taken",
    WeakPassword = "weak_password",
    PasswordMismatch = "password_mismatch",
    /// The task has already ended.
    NotCancellable = "not_cancellable",
    /// Only failed or cancelled tasks can be retried.
    NotRetryable = "not_retryable",
    /// The database or the storage does not answer (`/readyz`).
    NotReady = "not_ready",
    /// A tus header (`Upload-Length`, `Upload-Offset`, `Upload-Metadata`, `Upload-Checksum`)
    /// is missing or malformed.
    InvalidHeader = "invalid_header",
    /// `Tus-Resumable` is missing or names a protocol version the server does not speak.
    UnsupportedVersion = "unsupported_version",
    /// The body's `Content-Type` is not the one the route takes.
    UnsupportedContentType = "unsupported_content_type",
    /// `Upload-Offset` is not where the upload stands (`HEAD` it to find out).
    OffsetMismatch = "offset_mismatch",
    /// The body's digest is not the one in `Upload-Checksum`: nothing of it was kept.
    ChecksumMismatch = "checksum_mismatch",
    /// The checksum algorithm is not one of `Tus-Checksum-Algorithm`.
    UnsupportedChecksum = "unsupported_checksum",
    /// Another request is writing this upload right now.
    UploadLocked = "upload_locked",
    /// The upload's time ran out; start a new one.
    UploadExpired = "upload_expired",
    /// The upload has not received all its bytes yet.
    UploadIncomplete = "upload_incomplete",
    /// A task was already made from this upload.
    UploadUsed = "upload_used",
    /// A webhook endpoint is disabled (enable it first).
    EndpointDisabled = "endpoint_disabled",
    /// The user has as many webhook endpoints as allowed.
    TooManyEndpoints = "too_many_endpoints",
    /// The API key may not do this (a `read` key and an unsafe method; keys managing keys).
    InsufficientScope = "insufficient_scope",
    /// The user has as many API keys as allowed.
    TooManyKeys = "too_many_keys",
    /// A password reset link that is unknown, used or expired.
    InvalidResetToken = "invalid_reset_token",
    /// Signing up is closed here (`REELFORGE_SIGNUP=closed`): an admin makes accounts.
    SignupClosed = "signup_closed",
    /// Signing up needs an invite code here (`REELFORGE_SIGNUP=invite`).
    InviteRequired = "invite_required",
    /// The invite code is unknown, used already or expired.
    InvalidInvite = "invalid_invite",
    /// Only an admin may do this.
    AdminOnly = "admin_only",
    /// An admin may not disable their own account (it would lock them out).
    OwnAccount = "own_account",
    /// The new task would take the user's stored bytes over `REELFORGE_USER_QUOTA`.
    QuotaExceeded = "quota_exceeded",
    /// The task's files were removed (`REELFORGE_RETENTION`, or its own `expires_in`).
    FilesExpired = "files_expired",
    /// The service sends no e-mail (no SMTP server is configured).
    EmailUnavailable = "email_unavailable",

    // Why a task failed: its input.
    /// Not a readable audio or video file.
    InvalidMedia = "invalid_media",
    NoVideoStream = "no_video_stream",
    NoAudioStream = "no_audio_stream",
    MediaTooLong = "media_too_long",
    MediaTooLargeFrame = "media_too_large_frame",
    TooManyStreams = "too_many_streams",
    FileTooLarge = "file_too_large",
    /// The input is no longer in storage.
    InputMissing = "input_missing",
    /// The URL's download is over the size limit.
    InputTooLarge = "input_too_large",
    FetchFailed = "fetch_failed",
    FetchTimeout = "fetch_timeout",
    /// The URL answered with an error status.
    HttpStatus = "http_status",
    UnknownArchive = "unknown_archive",
    InvalidArchive = "invalid_archive",
    ArchiveTooLarge = "archive_too_large",
    TooManyEntries = "too_many_entries",
    ArchiveTooDeep = "archive_too_deep",
    UnsafeArchivePath = "unsafe_archive_path",
    ArchiveLinkRefused = "archive_link_refused",

    // Why a task failed: its processing.
    /// ffmpeg refused the input.
    ProcessingFailed = "processing_failed",
    /// Processing produced no file.
    NoOutput = "no_output",
    /// A produced file could not be read back.
    OutputInvalid = "output_invalid",
    /// A run took longer than its time limit.
    Timeout = "timeout",
    /// A run made no progress for `REELFORGE_STALL_TIMEOUT`.
    Stalled = "stalled",
    Cancelled = "cancelled",
    /// Every attempt was used up.
    TooManyAttempts = "too_many_attempts",

    // The service's own trouble (retried).
    FfmpegMissing = "ffmpeg_missing",
    ProgramNotFound = "program_not_found",
    ProgramNotExecutable = "program_not_executable",
    SpawnFailed = "spawn_failed",
    ProcessIo = "process_io",
    ProcessFailed = "process_failed",
    ProcessError = "process_error",
    ScratchError = "scratch_error",
    StorageError = "storage_error",
    DatabaseError = "database_error",
    IoError = "io_error",
    Internal = "internal",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{text}"
            );
        }
    }
}
