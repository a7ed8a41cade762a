//! Standard Webhooks 1.0 signatures: a secret is `whsec_` and base64 of its key bytes; a
//! delivery is signed `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one
//! signature per valid secret, separated by spaces.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const PREFIX: &str = "whsec_";

/// A fresh secret: 32 random bytes (the specification asks for 24 to 64).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a `whsec_…` secret; `None` when it is not one.
fn key_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()
}

/// `v1,<signature>` of one message with one secret; `None` for a malformed secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes(secret)?);
    let signed = format!("{msg_id}.{timestamp}.{body}");
    let tag = hmac::sign(&key, signed.as_bytes());
    Some(format!("v1,{}", STANDARD.encode(tag.as_ref())))
}

/// The `webhook-signature` header: the message signed with every secret given.
pub fn signature_header(secrets: &[&str], msg_id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the specification.
    #[test]
    fn signs_the_published_test_vector() {
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn new_secrets_are_long_random_and_usable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(key_bytes(&a).map(|k| k.len()), Some(32));
        assert!(sign(&a, "msg_1", 1, "{}").is_some());
        assert_eq!(sign("not-a-secret", "msg_1", 1, "{}"), None);
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let (old, new) = (new_secret(), new_secret());
        let header = signature_header(&[&new, &old], "msg_1", 7, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(Some(parts[0].to_string()), sign(&new, "msg_1", 7, "{}"));
        assert_eq!(Some(parts[1].to_string()), sign(&old, "msg_1", 7, "{}"));
    }
}
