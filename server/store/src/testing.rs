//! Throwaway databases for tests, on either backend.
//!
//! SQLite always works: a file in a temporary folder. PostgreSQL is used when a
//! server answers at `SEATKEEPER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets a database of
//! its own, dropped when the test ends. Without a server the PostgreSQL half of
//! a test is skipped with a loud line, unless `SEATKEEPER_REQUIRE_POSTGRES=1`
//! (set by CI), which makes it a failure. The line goes straight to stderr,
//! past the test harness's capture, and to the file `SEATKEEPER_SKIP_LOG`
//! names, so that `scripts/test.sh` counts such a half as skipped, not passed.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::Store;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    pub url: String,
    _folder: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}", folder.path().join("seatkeeper.db").display());
        TestDatabase { url, _folder: Some(folder), postgres: None }
    }

    /// A fresh, empty PostgreSQL database, or `None` (after saying so on
    /// stderr) when no server is reachable and none is required.
    pub async fn postgres() -> Option<Self> {
        let admin_url = std::env::var("SEATKEEPER_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let required = std::env::var("SEATKEEPER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) if !required => {
                skipped(&format!("no server at {admin_url} ({e}); set SEATKEEPER_TEST_POSTGRES_URL"));
                return None;
            }
            Err(e) => panic!("PostgreSQL is required (SEATKEEPER_REQUIRE_POSTGRES=1) but {admin_url} refused: {e}"),
        };
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("randomness");
        let name = format!("seatkeeper_test_{}", hex::encode(random));
        sqlx::query(&format!("create database {name}")).execute(&mut admin).await.expect("create a test database");
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("SEATKEEPER_TEST_POSTGRES_URL must name a database: {admin_url}"),
        };
        Some(TestDatabase { url, _folder: None, postgres: Some((admin_url, name)) })
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open the test store")
    }
}

/// Says that this test's PostgreSQL half is skipped, where nobody can miss it.
fn skipped(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("!!! SKIPPED on PostgreSQL: {test}: {why}\n");
    // Not eprintln!, which the test harness captures and shows only on failure.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("SEATKEEPER_SKIP_LOG") {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else { return };
        // Drop runs outside any runtime we may borrow, so the database is dropped
        // from a thread with a small runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut admin).await.ok()
            })
        })
        .join();
    }
}
