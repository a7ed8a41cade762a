//! The tus 1.0 headers, parsed and written: pure functions, no I/O.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::domain::ErrorCode;
use crate::http::error::ApiError;
use crate::storage::resumable::{Checksum, ChecksumAlgorithm};

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
/// The media type of every body that carries upload bytes.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

pub static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
pub static TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
pub static TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
pub static TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
pub static TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
pub static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub static UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
pub static UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
pub static UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
pub static UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
/// Where the task made from a finished upload is (`/api/tasks/{id}`).
pub static REELFORGE_TASK: HeaderName = HeaderName::from_static("reelforge-task");

/// Metadata keys and how long each value may be (bytes of text).
const MAX_KEYS: usize = 32;
const MAX_KEY_LEN: usize = 64;
const MAX_VALUE_LEN: usize = 1024;
/// `options` carries a JSON object.
const MAX_OPTIONS_LEN: usize = 16 * 1024;

/// `Tus-Resumable` must name the version the server speaks (412 otherwise, with the
/// versions it does speak in `Tus-Version`).
pub fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(v) if v.trim() == VERSION => Ok(()),
        Some(v) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::UnsupportedVersion,
            format!(
                "Tus-Resumable {:?} is not supported; this server speaks tus {VERSION}",
                v.chars().take(32).collect::<String>()
            ),
        )),
        None => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::UnsupportedVersion,
            format!("send `Tus-Resumable: {VERSION}` with every tus request"),
        )),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidHeader, message)
}

/// A non-negative integer header (`Upload-Length`, `Upload-Offset`); `None` when absent.
pub fn size(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("{name} must be a whole number of bytes")));
    }
    text.parse()
        .map(Some)
        .map_err(|_| invalid(format!("{name} is out of range")))
}

/// Whether the body is upload bytes: `Content-Type: application/offset+octet-stream`.
pub fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

pub fn unsupported_content_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedContentType,
        format!("upload bytes must be sent as Content-Type: {OFFSET_OCTET_STREAM}"),
    )
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(value) = headers.get(&UPLOAD_CHECKSUM) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let (name, digest) = text
        .split_once(' ')
        .ok_or_else(|| invalid("Upload-Checksum must be `<algorithm> <base64 digest>`"))?;
    let algorithm = ChecksumAlgorithm::parse(name).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::UnsupportedChecksum,
            format!(
                "checksum algorithm {:?} is not supported; use one of {}",
                name.chars().take(32).collect::<String>(),
                ChecksumAlgorithm::NAMES
            ),
        )
    })?;
    let expected = STANDARD
        .decode(digest.trim())
        .map_err(|_| invalid("the Upload-Checksum digest is not base64"))?;
    Ok(Some(Checksum {
        algorithm,
        expected,
    }))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (a key alone means an empty
/// value). Keys are ASCII letters, digits, `.`, `_` and `-`; values must be UTF-8 text.
/// Control characters are removed from values, and `filename` is made a safe file name, so
/// nothing stored can break a header, a log line or a path.
pub fn parse_metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    let Some(value) = headers.get(&UPLOAD_METADATA) else {
        return Ok(out);
    };
    let text = value
        .to_str()
        .map_err(|_| invalid("Upload-Metadata must be ASCII"))?;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = pair.split(' ').filter(|w| !w.is_empty());
        let key = words.next().unwrap_or_default();
        let encoded = words.next().unwrap_or_default();
        if words.next().is_some() {
            return Err(invalid(format!(
                "Upload-Metadata pair {:?} has more than a key and a value",
                short(pair)
            )));
        }
        let valid_key = key.len() <= MAX_KEY_LEN
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid_key {
            return Err(invalid(format!(
                "Upload-Metadata key {:?} must be 1–{MAX_KEY_LEN} letters, digits, '.', '_' or '-'",
                short(key)
            )));
        }
        let decoded = STANDARD.decode(encoded).map_err(|_| {
            invalid(format!(
                "the Upload-Metadata value of {key:?} is not base64"
            ))
        })?;
        let value = String::from_utf8(decoded)
            .map_err(|_| invalid(format!("the Upload-Metadata value of {key:?} is not UTF-8")))?;
        let cap = if key == "options" {
            MAX_OPTIONS_LEN
        } else {
            MAX_VALUE_LEN
        };
        if value.len() > cap {
            return Err(invalid(format!(
                "the Upload-Metadata value of {key:?} is over {cap} bytes"
            )));
        }
        if out.insert(key.to_string(), sanitise(key, &value)).is_some() {
            return Err(invalid(format!("Upload-Metadata names {key:?} twice")));
        }
        if out.len() > MAX_KEYS {
            return Err(invalid(format!(
                "Upload-Metadata has more than {MAX_KEYS} keys"
            )));
        }
    }
    Ok(out)
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

fn sanitise(key: &str, value: &str) -> String {
    let text: String = value.chars().filter(|c| !c.is_control()).collect();
    match key {
        "filename" | "name" => crate::domain::safe_filename(&text),
        _ => text,
    }
}

/// The stored metadata as `Upload-Metadata` says it.
pub fn encode_metadata(metadata: &BTreeMap<String, String>) -> Option<HeaderValue> {
    if metadata.is_empty() {
        return None;
    }
    let pairs: Vec<String> = metadata
        .iter()
        .map(|(k, v)| format!("{k} {}", STANDARD.encode(v)))
        .collect();
    HeaderValue::from_str(&pairs.join(",")).ok()
}

/// An HTTP date (`Upload-Expires`).
pub fn http_date(time: chrono::DateTime<chrono::Utc>) -> HeaderValue {
    let system: SystemTime = time.into();
    HeaderValue::from_str(&httpdate::fmt_http_date(system))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert((*name).clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn code(e: ApiError) -> (StatusCode, ErrorCode) {
        match e {
            ApiError::Client { status, code, .. } => (status, code),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_version_must_be_1_0_0() {
        assert!(check_version(&headers(&[(&TUS_RESUMABLE, "1.0.0")])).is_ok());
        for bad in [headers(&[(&TUS_RESUMABLE, "0.2.2")]), HeaderMap::new()] {
            let (status, c) = code(check_version(&bad).unwrap_err());
            assert_eq!(status, StatusCode::PRECONDITION_FAILED);
            assert_eq!(c, ErrorCode::UnsupportedVersion);
        }
    }

    #[test]
    fn sizes_are_whole_numbers() {
        let h = headers(&[(&UPLOAD_LENGTH, "1024")]);
        assert_eq!(size(&h, &UPLOAD_LENGTH).unwrap(), Some(1024));
        assert_eq!(size(&h, &UPLOAD_OFFSET).unwrap(), None);
        for bad in ["-1", "1.5", "", "12a", "99999999999999999999999"] {
            let h = headers(&[(&UPLOAD_OFFSET, bad)]);
            assert_eq!(
                code(size(&h, &UPLOAD_OFFSET).unwrap_err()).1,
                ErrorCode::InvalidHeader
            );
        }
    }

    #[test]
    fn metadata_is_decoded_and_sanitised() {
        // "filename" = "../../x\n.mp4", "profile" = "convert", "empty" alone.
        let h = headers(&[(
            &UPLOAD_METADATA,
            "filename Li4vLi4veAoubXA0, profile Y29udmVydA==,empty",
        )]);
        let m = parse_metadata(&h).unwrap();
        assert_eq!(m["filename"], "x.mp4");
        assert_eq!(m["profile"], "convert");
        assert_eq!(m["empty"], "");
        let back = encode_metadata(&m).unwrap();
        let again = parse_metadata(&headers(&[(&UPLOAD_METADATA, back.to_str().unwrap())]));
        assert_eq!(again.unwrap(), m);
    }

    #[test]
    fn bad_metadata_is_refused_in_words() {
        for bad in [
            "filename !!!",
            "bad\tkey YQ==",
            "a YQ== extra",
            "x YQ==,x Yg==",
            "blob //79",
        ] {
            let h = headers(&[(&UPLOAD_METADATA, bad)]);
            assert_eq!(
                code(parse_metadata(&h).unwrap_err()).1,
                ErrorCode::InvalidHeader,
                "{bad}"
            );
        }
    }

    #[test]
    fn checksums_name_a_known_algorithm() {
        let h = headers(&[(&UPLOAD_CHECKSUM, "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")]);
        let c = checksum(&h).unwrap().unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.expected.len(), 20);
        let h = headers(&[(&UPLOAD_CHECKSUM, "md5 1B2M2Y8AsgTpgAmY7PhCfg==")]);
        assert_eq!(
            code(checksum(&h).unwrap_err()).1,
            ErrorCode::UnsupportedChecksum
        );
        let h = headers(&[(&UPLOAD_CHECKSUM, "sha1")]);
        assert_eq!(code(checksum(&h).unwrap_err()).1, ErrorCode::InvalidHeader);
    }

    #[test]
    fn only_offset_streams_carry_bytes() {
        let h = headers(&[(&header::CONTENT_TYPE, "application/offset+octet-stream")]);
        assert!(is_offset_stream(&h));
        let h = headers(&[(&header::CONTENT_TYPE, "application/octet-stream")]);
        assert!(!is_offset_stream(&h));
        assert!(!is_offset_stream(&HeaderMap::new()));
    }

    #[test]
    fn expiry_is_an_http_date() {
        let t = chrono::DateTime::from_timestamp(1_403_712_000, 0).unwrap();
        assert_eq!(http_date(t), "Wed, 25 Jun 2014 16:00:00 GMT");
    }
}
