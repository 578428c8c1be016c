//! A fresh, empty PostgreSQL schema per test, on the server CI and development machines run.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The server tests use: `MOAT_TEST_POSTGRES_URL`, or the local one on 127.0.0.1:5432.
pub fn postgres_server_url() -> String {
    std::env::var("MOAT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty schema of its own and returns a URL whose connections use it, so tests
/// running at once never see each other's tables. Schemas left by test processes that have
/// exited are dropped first. Panics when the server cannot be reached: a test that asked for
/// PostgreSQL must not pass without it.
pub async fn fresh_postgres_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = postgres_server_url();
    let mut admin = PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is needed by this test (.ci/run starts it): {e}"));
    let leftovers: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'moat_test_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for schema in leftovers {
        let owner_alive = schema
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !owner_alive {
            // Another process may be dropping it too; either way it goes.
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut admin).await;
        }
    }
    let schema = format!("moat_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("drop {schema}: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("create {schema}: {e}"));
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}options[search_path]={schema}")
}
