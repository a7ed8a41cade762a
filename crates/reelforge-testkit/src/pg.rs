//! Databases for tests: a SQLite file in a temporary folder, or a fresh PostgreSQL database
//! on the server named by `REELFORGE_TEST_PG_URL` (a superuser URL of a throw-away server;
//! `scripts/test.sh` starts one). Each PostgreSQL test gets its own `test_<uuid>` database,
//! dropped when the guard is dropped (also when the test panics).
//!
//! Without `REELFORGE_TEST_PG_URL`, PostgreSQL tests print that they were skipped, except
//! under CI (`CI` set and not `false`), where they fail: CI must really run them.

use reelforge::db::Db;
use sqlx::{Connection, Executor};

use crate::in_ci;

pub const PG_URL_VAR: &str = "REELFORGE_TEST_PG_URL";

/// A fresh, empty PostgreSQL database; dropped with this guard.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// `None` when no server is configured (outside CI only: under CI this panics).
    pub async fn create() -> Option<PgDatabase> {
        let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
            assert!(
                !in_ci(),
                "{PG_URL_VAR} is not set: CI must run the PostgreSQL tests \
                 (bash scripts/test.sh starts a throw-away server and sets it)"
            );
            eprintln!(
                "SKIPPED: PostgreSQL test, {PG_URL_VAR} is not set \
                 (bash scripts/test.sh starts a throw-away server and sets it)"
            );
            return None;
        };
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Some(PgDatabase {
            url: url.to_string(),
            admin_url,
            name,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside any async context we could rely on (possibly while a test's
        // runtime unwinds), so use a runtime of our own on a thread of our own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin.execute(sqlx::AssertSqlSafe(sql)).await?;
                admin.close().await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A connected repository and what keeps its database alive.
pub struct TestDb {
    // Fields drop in order: the pool goes before its database.
    pub db: Db,
    _sqlite: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        TestDb {
            db: reelforge::db::connect(&url).await.unwrap(),
            _sqlite: Some(dir),
            _pg: None,
        }
    }

    /// `None`: skipped (see the module comment).
    pub async fn postgres() -> Option<TestDb> {
        let pg = PgDatabase::create().await?;
        Some(TestDb {
            db: reelforge::db::connect(&pg.url).await.unwrap(),
            _sqlite: None,
            _pg: Some(pg),
        })
    }

    /// Another, independent connection pool to the same database (another process, as far
    /// as the database can tell).
    pub async fn second_pool(&self) -> Db {
        let url = &self.pg().url;
        reelforge::db::connect(url).await.unwrap()
    }

    /// The PostgreSQL database's URL, for a connection of the test's own (statements run
    /// by hand, e.g. to hold a transaction open half-way).
    pub fn pg_url(&self) -> &str {
        &self.pg().url
    }

    fn pg(&self) -> &PgDatabase {
        self._pg.as_ref().unwrap()
    }
}

/// Run each named `async fn(Db)` once on SQLite and once on PostgreSQL, as
/// `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let t = $crate::pg::TestDb::sqlite().await;
                super::$name(t.db.clone()).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(t) = $crate::pg::TestDb::postgres().await {
                    super::$name(t.db.clone()).await;
                }
            }
        }
    )*};
}
