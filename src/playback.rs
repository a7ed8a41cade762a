//! Signed playback tokens: what lets a `<video>` element, an HLS player or `ffprobe`, which
//! cannot send an `Authorization` header, read one task's outputs for a short while.
//!
//! A token is `base64url(version ‖ user ‖ task ‖ expiry ‖ HMAC-SHA256(key, the rest))`: 1 +
//! 16 + 16 + 8 (seconds since the epoch, big-endian) + 32 bytes, 98 characters. It goes in
//! the URL's path (`/api/play/{token}/{name}`), not its query, so that the relative URIs of
//! an HLS playlist (`stream_0.m3u8`, `stream_0_000.ts`) resolve under the same token. The key
//! is derived from the service's JWT secret with its own label, so a playback token and a
//! login token can never stand for each other, and every API process of an installation
//! (same secret) accepts the tokens of the others. Nothing is stored: a token cannot be
//! revoked, so it lives [`PLAYBACK_TTL`]; share links (stored, revocable) are for longer.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// How long a playback URL works: long enough to watch a film, short enough that a URL
/// copied out of a page soon stops working.
pub const PLAYBACK_TTL: Duration = Duration::from_secs(60 * 60);

/// The label the playback key is derived with; a new format gets a new label.
const KEY_LABEL: &[u8] = b"reelforge playback v1";
const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 16 + 8;
const TOKEN_LEN: usize = BODY_LEN + 32;

/// What a token grants: reading `task`'s outputs (owned by `user`) until `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub user: Uuid,
    pub task: Uuid,
    /// Seconds since the Unix epoch.
    pub expires: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackError {
    /// Not a token of ours: bad encoding, length, version or signature.
    Invalid,
    /// Well signed, but past its expiry.
    Expired,
}

#[derive(Clone)]
pub struct PlaybackKey(hmac::Key);

impl PlaybackKey {
    /// `HMAC-SHA256(secret, "reelforge playback v1")` as the key.
    pub fn derive(secret: &str) -> Self {
        PlaybackKey(crate::auth::derive_key(secret, KEY_LABEL))
    }

    pub fn sign(&self, grant: Grant) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(grant.user.as_bytes());
        bytes.extend_from_slice(grant.task.as_bytes());
        bytes.extend_from_slice(&grant.expires.to_be_bytes());
        let tag = hmac::sign(&self.0, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The grant of a token signed with this key, if it has not expired at `now` (seconds
    /// since the epoch). The signature is checked (in constant time) before anything is
    /// read from the token.
    pub fn verify(&self, token: &str, now: u64) -> Result<Grant, PlaybackError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PlaybackError::Invalid)?;
        if bytes.len() != TOKEN_LEN {
            return Err(PlaybackError::Invalid);
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        hmac::verify(&self.0, body, tag).map_err(|_| PlaybackError::Invalid)?;
        if body[0] != VERSION {
            return Err(PlaybackError::Invalid);
        }
        let uuid_at = |at: usize| {
            <[u8; 16]>::try_from(&body[at..at + 16])
                .map(Uuid::from_bytes)
                .map_err(|_| PlaybackError::Invalid)
        };
        let expires = <[u8; 8]>::try_from(&body[33..41])
            .map(u64::from_be_bytes)
            .map_err(|_| PlaybackError::Invalid)?;
        let grant = Grant {
            user: uuid_at(1)?,
            task: uuid_at(17)?,
            expires,
        };
        if grant.expires <= now {
            return Err(PlaybackError::Expired);
        }
        Ok(grant)
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: u64) -> Grant {
        Grant {
            user: Uuid::now_v7(),
            task: Uuid::now_v7(),
            expires,
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let key = PlaybackKey::derive("a secret of at least thirty-two characters");
        let g = grant(1_000);
        let token = key.sign(g);
        assert_eq!(token.len(), 98);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(key.verify(&token, 999), Ok(g));
        assert_eq!(key.verify(&token, 1_000), Err(PlaybackError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let key = PlaybackKey::derive("secret one, long enough for the test");
        let token = key.sign(grant(u64::MAX));
        let other = PlaybackKey::derive("secret two, long enough for the test");
        assert_eq!(other.verify(&token, 0), Err(PlaybackError::Invalid));
        // Every single-character change is refused, wherever it is.
        let alphabet = ['A', 'b', '0', '-', '_'];
        for i in 0..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            let c = alphabet
                .iter()
                .find(|c| **c != chars[i])
                .copied()
                .unwrap_or('A');
            chars[i] = c;
            let changed: String = chars.into_iter().collect();
            if changed != token {
                assert!(key.verify(&changed, 0).is_err(), "position {i}");
            }
        }
        assert_eq!(key.verify("", 0), Err(PlaybackError::Invalid));
        assert_eq!(key.verify("not base64!", 0), Err(PlaybackError::Invalid));
        assert_eq!(key.verify(&token[..97], 0), Err(PlaybackError::Invalid));
    }

    #[test]
    fn the_key_is_not_the_jwt_secret() {
        // A token MACed with the raw secret (as HS256 would) is not a playback token.
        let secret = "the jwt secret, long enough for the test";
        let raw = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&[0u8; 40]);
        let tag = hmac::sign(&raw, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        let forged = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            PlaybackKey::derive(secret).verify(&forged, 0),
            Err(PlaybackError::Invalid)
        );
    }
}
