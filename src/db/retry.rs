//! Writes of a job whose lease is held, made again through a short database outage (and the
//! API's task delete, through an outage or a lost race).

use std::time::Duration;

use super::{RepoError, RepoResult};

impl RepoError {
    /// Whether the same call may well succeed in a moment: the connection broke or could not
    /// be had (a database restart or failover), the server is shutting down or starting, or
    /// the statement lost a race (serialization failure, deadlock, SQLite busy).
    pub fn is_transient(&self) -> bool {
        let RepoError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // PostgreSQL: class 08 (connection exception), 57P01-57P03 (shutdown,
                // crash, not yet accepting), 40001/40P01; SQLite: BUSY (5) and LOCKED (6).
                code.starts_with("08")
                    || ["57P01", "57P02", "57P03", "40001", "40P01", "5", "6"]
                        .contains(&code.as_ref())
            }),
            _ => false,
        }
    }
}

/// Make a call of a job whose lease is held again while the database is briefly out of
/// reach (a restart, a failover), for up to `within` (half the lease: it still holds when
/// the database is back): a short outage then costs the job no attempt. Any other error,
/// or one that outlasts `within`, is returned.
pub async fn retry_transient<T, F, Fut>(within: Duration, what: &str, mut call: F) -> RepoResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = RepoResult<T>>,
{
    let deadline = std::time::Instant::now() + within;
    let mut pause = Duration::from_millis(100);
    loop {
        match call().await {
            Err(e) if e.is_transient() && std::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, what, ?pause, "the database is out of reach or the call lost a race; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use super::{RepoError, retry_transient};

    /// A database error with a SQLSTATE (or SQLite result) code.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn coded(code: &'static str) -> RepoError {
        RepoError::Database(sqlx::Error::Database(Box::new(Coded(code))))
    }

    fn reset() -> RepoError {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        RepoError::Database(sqlx::Error::Io(io))
    }

    #[test]
    fn outages_and_lost_races_are_transient_other_errors_are_not() {
        for e in [
            reset(),
            RepoError::Database(sqlx::Error::PoolTimedOut),
            coded("57P01"),
            coded("57P03"),
            coded("08006"),
            coded("40001"),
            coded("40P01"),
            coded("5"),
        ] {
            assert!(e.is_transient(), "{e}");
        }
        for e in [
            RepoError::Database(sqlx::Error::RowNotFound),
            RepoError::Database(sqlx::Error::PoolClosed),
            coded("23505"),
            coded("42P01"),
            RepoError::Conflict("email"),
            RepoError::Corrupt("x".into()),
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[tokio::test]
    async fn a_short_outage_is_waited_out_and_anything_else_returned_at_once() {
        let calls = AtomicU32::new(0);
        let ok = retry_transient(Duration::from_secs(5), "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(reset()),
                _ => Ok(true),
            }
        })
        .await;
        assert!(matches!(ok, Ok(true)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let err = retry_transient(Duration::from_secs(5), "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(coded("23505"))
        })
        .await;
        assert!(err.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "not transient: no second call"
        );

        let start = Instant::now();
        let err = retry_transient(Duration::from_millis(400), "test", || async {
            Err::<(), _>(reset())
        })
        .await;
        assert!(err.is_err_and(|e| e.is_transient()));
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "gave up near the window's end"
        );
    }
}
