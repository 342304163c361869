//! Runs each store contract test against SQLite (always) and PostgreSQL (when
//! `JIANLIAN_TEST_POSTGRES_URL` is set), each PostgreSQL test in a schema of
//! its own that is dropped afterwards, so tests run in parallel and leave
//! nothing behind.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use jianlian_store::Store;
use sqlx::Connection;

/// A database for one test; [`Db::store`] opens a store on it (call it twice
/// for two "nodes").
#[derive(Debug, Clone)]
pub struct Db {
    pub url: String,
}

impl Db {
    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("connect the store")
    }
}

pub const POSTGRES_URL_VAR: &str = "JIANLIAN_TEST_POSTGRES_URL";

/// Runs `body` on a fresh SQLite file in a temporary directory.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("jianlian.db").display());
    body(Db { url }).await;
}

/// Runs `body` in a new PostgreSQL schema, dropped afterwards even when the
/// body panics. Without the variable it says so loudly and does nothing, except
/// under CI (`CI` set), where a missing PostgreSQL is a failure.
pub async fn on_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{POSTGRES_URL_VAR} must be set under CI: the PostgreSQL half of `{test}` cannot be skipped"
        );
        eprintln!(
            "\n!!! {POSTGRES_URL_VAR} is not set: the PostgreSQL half of store contract test \
             `{test}` did NOT run. CI sets it; locally use \
             {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test\n"
        );
        return;
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let schema = format!(
        "jl_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to JIANLIAN_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create the test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    let outcome = tokio::spawn(body(Db { url })).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop the test schema");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares a contract test: `contract!(name)` runs `async fn name(db: Db)`
/// as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::harness::on_sqlite(super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::harness::on_postgres(stringify!($name), super::$name).await;
                }
            }
        )*
    };
}
