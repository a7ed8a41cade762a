//! Credentials: argon2id password hashes, HS256 login tokens, and login rate limits.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Hash with argon2id (the crate's defaults are the OWASP minimum). CPU-heavy: call from
/// `spawn_blocking`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// Constant-work check; a malformed stored hash counts as a mismatch.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the user does not exist, so an
/// unknown user costs the same time as a wrong password.
pub fn dummy_hash() -> String {
    let random: [u8; 16] = rand::random();
    let pw: String = random.iter().map(|b| format!("{b:02x}")).collect();
    hash_password(&pw).unwrap_or_default()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub exp: u64,
    pub iat: u64,
}

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
        }
    }

    pub fn issue(&self, user: Uuid) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user,
            iat: now,
            exp: now + self.ttl.as_secs().max(1),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user id of a valid, unexpired token. An expired token is told apart (its
    /// signature checked first) so that a client knows to log in again rather than to fix
    /// its token.
    pub fn verify(&self, token: &str) -> Result<Uuid, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims.sub)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Well signed, but past its `exp`.
    Expired,
    /// Malformed, wrongly signed, or missing a claim.
    Invalid,
}

/// Login attempts per client IP and per account name.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        // Per IP: bursts of 20, then one every 3 s. Per account: 5, then one every 12 s.
        Self::new(20, Duration::from_secs(3), 5, Duration::from_secs(12))
    }
}

impl LoginLimiter {
    pub fn new(ip_burst: u32, ip_every: Duration, acct_burst: u32, acct_every: Duration) -> Self {
        let quota = |burst: u32, every: Duration| {
            Quota::with_period(every)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            per_ip: governor::RateLimiter::keyed(quota(ip_burst, ip_every)),
            per_account: governor::RateLimiter::keyed(quota(acct_burst, acct_every)),
        }
    }

    /// `Err(wait)` when either limit is exhausted.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), Duration> {
        let clock = DefaultClock::default();
        let now = clock.now();
        let key = account.to_lowercase();
        let ip_res = self.per_ip.check_key(&ip);
        let acct_res = self.per_account.check_key(&key);
        let wait = [ip_res.err(), acct_res.err()]
            .into_iter()
            .flatten()
            .map(|nu| nu.wait_time_from(now))
            .max();
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
        match wait {
            Some(w) => Err(w.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_reject() {
        let h = hash_password("Admin123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Admin123", &h));
        assert!(!verify_password("Admin124", &h));
        assert!(!verify_password("Admin123", "not a hash"));
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let t = Tokens::new("0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let id = Uuid::now_v7();
        let tok = t.issue(id).unwrap();
        assert_eq!(t.verify(&tok), Ok(id));
        let other = Tokens::new("another-secret-another-secret-xx", Duration::from_secs(60));
        assert_eq!(other.verify(&tok), Err(TokenError::Invalid));
        assert_eq!(t.verify("garbage"), Err(TokenError::Invalid));
        // A token whose exp is in the past.
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: id,
                iat: 1,
                exp: 2,
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(t.verify(&expired), Err(TokenError::Expired));
    }

    #[test]
    fn limiter_blocks_after_burst_per_account_and_per_ip() {
        let l = LoginLimiter::new(100, Duration::from_secs(60), 3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(ip, "Alice").is_ok());
        }
        let wait = l.check(ip, "alice").unwrap_err();
        assert!(wait >= Duration::from_secs(1));
        assert!(l.check(ip, "bob").is_ok());
        let l = LoginLimiter::new(2, Duration::from_secs(60), 100, Duration::from_secs(60));
        assert!(l.check(ip, "a").is_ok());
        assert!(l.check(ip, "b").is_ok());
        assert!(l.check(ip, "c").is_err());
        assert!(l.check("10.0.0.1".parse().unwrap(), "c").is_ok());
    }
}
