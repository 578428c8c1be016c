//! The harness every store test file shares: a fresh database per test on each backend.

#![allow(dead_code, reason = "each test file uses the part of the harness it needs")]

use moat_store::Store;

/// One backend's database for one test, and a folder for the files a test writes (spools).
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/nested/moat.db", dir.path().display());
        TestDb { dir, url }
    }

    pub async fn postgres() -> Self {
        TestDb { dir: tempfile::tempdir().expect("tempdir"), url: moat_testkit::fresh_postgres_schema().await }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// Runs SQL on a connection of its own, behind the store's back (to break or inspect it).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        if self.is_postgres() {
            let mut c = sqlx::PgConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
    }
}

/// Runs each named test once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn sqlite() {
                super::$test(super::TestDb::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$test(super::TestDb::postgres().await).await;
            }
        }
    )*};
}
