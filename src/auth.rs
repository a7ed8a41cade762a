//! Credentials: argon2id password hashes (capped in number at once), HS256 login tokens,
//! and the rate limits of logins and signups.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Hash with argon2id (the crate's defaults are the OWASP minimum). CPU-heavy: the service
/// calls it through [`PasswordHashing`].
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

/// An opaque secret for a session cookie or a share link: 32 bytes of the thread's CSPRNG
/// (ChaCha, seeded from the OS), base64url without padding (43 characters).
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A key of its own for one purpose, derived from the service's secret (the JWT secret):
/// `HMAC-SHA256(secret, label)`. Each purpose has its label, so tokens of one purpose
/// never stand for another's, and every process of an installation derives the same key.
pub fn derive_key(secret: &str, label: &[u8]) -> aws_lc_rs::hmac::Key {
    use aws_lc_rs::hmac;
    let master = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let derived = hmac::sign(&master, label);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// What every API key starts with (so secret scanners and people can tell one).
pub const API_KEY_PREFIX: &str = "rf_";

/// A new API key: `rf_` and 43 base62 characters drawn from the CSPRNG (256 bits).
pub fn new_api_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..43)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{API_KEY_PREFIX}{body}")
}

/// What a key's owner sees of it in a list: the prefix and its first 8 characters.
pub fn api_key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + 8).collect()
}

/// What the database keeps of a random token: its SHA-256, in hex. The token has 256 bits
/// of entropy, so a fast hash is enough (no salt or stretching, unlike passwords), and a
/// look-up by hash is an index search.
pub fn token_hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal strings, compared in constant time (a CSRF token against the session's).
pub fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub exp: u64,
    pub iat: u64,
    /// The user's password version at issue: a password change voids the token.
    #[serde(default)]
    pub pwv: u32,
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

    /// A token of `user`, under their current password version.
    pub fn issue(&self, user: Uuid, password_version: u32) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user,
            pwv: password_version,
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
        self.verify_claims(token).map(|c| c.sub)
    }

    /// [`Tokens::verify`], with when the token was issued.
    pub fn verify_claims(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
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

/// How many attempts one key may make: `burst` at once, then one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub every: Duration,
}

impl RateLimit {
    fn quota(self) -> Quota {
        Quota::with_period(self.every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN))
    }
}

/// A [`RateLimit`] per key (a client address, an account).
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU32,
}

/// Checks between two sweeps of the keys whose bucket is full again. A sweep walks every
/// key, so sweeping at each check would make a flood of distinct keys quadratic.
const SWEEP_EVERY: u32 = 64;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limiter: governor::RateLimiter::keyed(limit.quota()),
            checks: AtomicU32::new(0),
        }
    }

    /// Counts an attempt of `key`; `Err(wait)` when it has none left. The wait is at least
    /// a second, as `Retry-After` counts whole seconds.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = DefaultClock::default().now();
        let result = self.limiter.check_key(key);
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.limiter.retain_recent();
        }
        result.map_err(|not_until| not_until.wait_time_from(now).max(Duration::from_secs(1)))
    }
}

/// Signups per client address (`REELFORGE_SIGNUP_LIMIT`): each one costs a password hash.
pub type SignupLimiter = KeyedLimiter<IpAddr>;

/// Whose login attempts count together: the account's, whichever of its names was typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountKey {
    /// The identifier names this user (by user name or e-mail, in any case).
    User(Uuid),
    /// It names nobody: the identifier as typed, trimmed, lower-cased and cut to
    /// [`AccountKey::MAX_TYPED`] characters, so a huge name is no huge key.
    Typed(String),
}

impl AccountKey {
    /// The longest e-mail address; nothing longer names an account.
    pub const MAX_TYPED: usize = 254;

    pub fn typed(login: &str) -> Self {
        let cut: String = login.trim().chars().take(Self::MAX_TYPED).collect();
        AccountKey::Typed(cut.to_lowercase())
    }
}

/// Login attempts per client address and per account.
pub struct LoginLimiter {
    per_address: KeyedLimiter<IpAddr>,
    per_account: KeyedLimiter<AccountKey>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        // Per address: bursts of 20, then one every 3 s. Per account: 5, then one every 12 s.
        Self::new(
            RateLimit {
                burst: 20,
                every: Duration::from_secs(3),
            },
            RateLimit {
                burst: 5,
                every: Duration::from_secs(12),
            },
        )
    }
}

impl LoginLimiter {
    pub fn new(per_address: RateLimit, per_account: RateLimit) -> Self {
        Self {
            per_address: KeyedLimiter::new(per_address),
            per_account: KeyedLimiter::new(per_account),
        }
    }

    /// Checked first: a limited address costs no account look-up.
    pub fn check_address(&self, client: IpAddr) -> Result<(), Duration> {
        self.per_address.check(&client)
    }

    pub fn check_account(&self, account: &AccountKey) -> Result<(), Duration> {
        self.per_account.check(account)
    }
}

/// Password hashing and checking, at most a fixed number at once, each on a blocking
/// thread. An argon2 run holds 19 MiB and a core for tens of milliseconds: without a cap,
/// 64 parallel signups took the process to 1.27 GB. (That the 19 MiB go back to the system
/// afterwards is `os::return_large_allocations`.)
#[derive(Clone)]
pub struct PasswordHashing {
    permits: Arc<Semaphore>,
}

impl PasswordHashing {
    pub fn new(at_once: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(at_once.max(1))),
        }
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.run(move || hash_password(&password)).await?
    }

    pub async fn verify(&self, password: String, hash: String) -> anyhow::Result<bool> {
        self.run(move || verify_password(&password, &hash)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let permit = self.permits.clone().acquire_owned().await?;
        // The permit goes with the work: when a client hangs up, this future is dropped but
        // the blocking run goes on, and must go on counting.
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        });
        Ok(done.await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_long_random_and_base62() {
        let (a, b) = (new_api_key(), new_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with("rf_") && a.len() == 46, "{a}");
        assert!(a[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(api_key_prefix(&a), &a[..11]);
    }

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
        let tok = t.issue(id, 0).unwrap();
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
                pwv: 0,
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(t.verify(&expired), Err(TokenError::Expired));
    }

    fn limit(burst: u32) -> RateLimit {
        RateLimit {
            burst,
            every: Duration::from_secs(60),
        }
    }

    #[test]
    fn limiter_blocks_after_burst_per_account_and_per_address() {
        let l = LoginLimiter::new(limit(100), limit(3));
        let alice = AccountKey::User(Uuid::now_v7());
        for _ in 0..3 {
            assert!(l.check_account(&alice).is_ok());
        }
        let wait = l.check_account(&alice).unwrap_err();
        assert!(wait >= Duration::from_secs(1));
        assert!(l.check_account(&AccountKey::typed("bob")).is_ok());
        let l = LoginLimiter::new(limit(2), limit(100));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.check_address(ip).is_ok());
        assert!(l.check_address(ip).is_ok());
        assert!(l.check_address(ip).is_err());
        assert!(l.check_address("10.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn typed_account_keys_are_normalised_and_short() {
        assert_eq!(
            AccountKey::typed("  Bob@Example.COM "),
            AccountKey::typed("bob@example.com")
        );
        let AccountKey::Typed(key) = AccountKey::typed(&"X".repeat(1 << 20)) else {
            panic!("a typed key");
        };
        assert_eq!(key, "x".repeat(AccountKey::MAX_TYPED));
        // Cut on a character, never inside one.
        let AccountKey::Typed(key) = AccountKey::typed(&"é".repeat(1 << 20)) else {
            panic!("a typed key");
        };
        assert_eq!(key.chars().count(), AccountKey::MAX_TYPED);
    }

    #[test]
    fn the_signup_limiter_counts_per_address() {
        let l = SignupLimiter::new(limit(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_err());
        assert!(l.check(&"192.0.2.2".parse().unwrap()).is_ok());
    }

    /// Runs `n` jobs of 50 ms through `hashing`; returns the most that ran at once.
    async fn most_at_once(hashing: &PasswordHashing, n: usize) -> usize {
        use std::sync::atomic::AtomicUsize;
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..n).map(|_| {
            let (hashing, running, most) = (hashing.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                hashing
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap();
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_runs_at_most_its_permits_at_once() {
        assert_eq!(most_at_once(&PasswordHashing::new(2), 12).await, 2);
        assert_eq!(most_at_once(&PasswordHashing::new(1), 4).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_whose_caller_left_still_holds_its_permit() {
        use std::sync::atomic::AtomicBool;
        let hashing = PasswordHashing::new(1);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let first_done = Arc::new(AtomicBool::new(false));
        let done = first_done.clone();
        let h = hashing.clone();
        let caller = tokio::spawn(async move {
            h.run(move || {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_millis(200));
                done.store(true, Ordering::SeqCst);
            })
            .await
        });
        started.await.unwrap();
        // The client hangs up: its request future is dropped mid-run.
        caller.abort();
        let overlapped = hashing
            .run(move || !first_done.load(Ordering::SeqCst))
            .await
            .unwrap();
        assert!(
            !overlapped,
            "a second run started while the first still ran"
        );
    }

    #[tokio::test]
    async fn hashing_hashes_and_verifies() {
        let hashing = PasswordHashing::new(1);
        let h = hashing.hash("Admin123".into()).await.unwrap();
        assert!(hashing.verify("Admin123".into(), h.clone()).await.unwrap());
        assert!(!hashing.verify("Admin124".into(), h).await.unwrap());
    }
}
