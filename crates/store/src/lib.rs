//! Persistence for the acquirer: SQLite (embedded, the default) and
//! PostgreSQL through one code path (`sqlx::Any`), with runtime queries and
//! embedded migrations for each backend.
//!
//! Code map:
//! - [`Store::connect`] (here): opens either backend and migrates it.
//! - `channels`, `merchants`: the registries (identity uniqueness is UNIQUE
//!   constraints; `source` changes are audited).
//! - `trades`: trade intents (idempotent by `(channel, out_trade_no)`) and
//!   **the single write path** [`Store::apply_observation`], which runs the
//!   core transition with compare-and-set and writes the ledger journal, the
//!   outbox row and the next closed-loop job in the same transaction.
//! - `refunds`: the atomic refund reservation and refund outcomes.
//! - `ledger`: journals read back and checked.
//! - `outbox`: channel notifications and their delivery bookkeeping.
//! - `jobs`: leased background jobs, claimable by several gateway processes.
//! - `sqlite_writer`: SQLite's single writer, on a thread of its own, with
//!   group commit (every SQLite write transaction goes through it).
//! - `script`: several statements of one write in one round trip.
//!
//! **Conventions.** Money is BIGINT fen and time BIGINT epoch milliseconds on
//! both backends, so rows decode the same way. Time is always passed in by the
//! caller (the gateway's `Clock`); SQL never reads the database clock.
//! Every write that spans rows is one transaction: on SQLite a savepoint in
//! the writer's `BEGIN IMMEDIATE` transaction (writers queue for the writer
//! instead of failing when a read would have to become a write); on
//! PostgreSQL the rows it reads are locked with `FOR UPDATE`.
//!
//! **Jobs the store enqueues itself**, in the transaction of the write that
//! makes them necessary (the gateway runs them; each is idempotent):
//! - [`TRADE_STEP_JOB`]: the closed loop's next step of a trade (poll, query,
//!   cancel), due when `jianlian_core::closed_loop::plan` says; one per trade
//!   version, so a superseded job is recognised as stale. The first one is
//!   enqueued with the intent, so a trade whose answer is lost still resolves.
//! - [`NOTIFY_JOB`]: delivery of one outbox row to the channel; record the
//!   result with [`Store::notification_delivered`] or
//!   [`Store::notification_failed`].
//! - [`REFUND_CONFIRM_JOB`]: a refund query for a refund whose outcome is not
//!   known (after the reservation, as a crash guard, and 10 s after an
//!   unconfirmed answer).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

mod channels;
mod jobs;
mod ledger;
mod merchants;
mod outbox;
mod refunds;
mod rows;
mod script;
mod sqlite_writer;
mod trades;

pub use jobs::{Job, JobFate, JobState, NewJob};
pub use merchants::MerchantFilter;
pub use outbox::NOTIFY_JOB;
pub use refunds::{REFUND_CONFIRM_JOB, Reservation};
pub use sqlite_writer::CommitStats;
pub use trades::{Inserted, TRADE_STEP_JOB};

use sqlite_writer::{Durability, SqliteTxn, SqliteWriter};

use jianlian_core::closed_loop::LoopPolicy;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither sqlite://… nor postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} {key} does not exist")]
    NotFound { what: &'static str, key: String },
    /// A uniqueness rule refused the write; the message says which.
    #[error("{0}")]
    Duplicate(String),
    /// The request itself is unacceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(
        "{what} {key} kept changing under concurrent writers; gave up after {attempts} attempts"
    )]
    Contended {
        what: &'static str,
        key: String,
        attempts: u32,
    },
    /// A write made for a channel as the caller last saw it found the
    /// channel changed (key, status or notify hosts): read it again.
    #[error("channel {0} changed since it was read")]
    ChannelChanged(String),
    #[error("the store's writer thread failed: {0}")]
    Writer(String),
    #[error("job {job} is no longer leased by {worker}")]
    LeaseLost { job: i64, worker: String },
    #[error(transparent)]
    Transition(#[from] jianlian_core::trade::TransitionError),
    #[error(transparent)]
    Refund(#[from] jianlian_core::refund::RefundError),
    #[error(transparent)]
    Merchant(#[from] jianlian_core::merchant::MerchantError),
    #[error(transparent)]
    Channel(#[from] jianlian_core::channel::ChannelError),
    #[error(transparent)]
    Ledger(#[from] jianlian_core::ledger::LedgerError),
    #[error(transparent)]
    Intent(#[from] jianlian_core::trade::IntentError),
    #[error(transparent)]
    Id(#[from] jianlian_core::ids::IdError),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(what.to_string())
    }

    /// The database message when `e` is a unique-constraint violation.
    pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<String> {
        match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Some(format!(
                "{} {}",
                db.constraint().unwrap_or_default(),
                db.message()
            )),
            _ => None,
        }
    }
}

/// How many times a compare-and-set write is retried before giving up.
pub(crate) const CAS_ATTEMPTS_MAX: u32 = 16;

/// Connections per pool: enough for the gateway's concurrency, bounded.
const POOL_CONNECTIONS_MAX: u32 = 16;
/// A pooled PostgreSQL connection idle longer than this is pinged before use.
const POOL_PING_IDLE: Duration = Duration::from_secs(1);
/// How long a caller waits for a pooled connection.
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How SQLite makes commits durable (PostgreSQL ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// Every commit is synced to disk before it returns (SQLite's default):
    /// a committed trade intent survives a power loss. One exception, the
    /// answer recorded by the request that created a trade, is on disk
    /// within 50 ms (see `sqlite_writer`).
    #[default]
    Full,
    /// WAL without a sync per commit: safe against corruption and process
    /// crashes, but the last commits may be lost if the machine loses power.
    Normal,
}

/// Options of [`Store::connect_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    pub sqlite_synchronous: SqliteSynchronous,
}

/// The store: a pool on one backend plus the closed-loop policy used to plan
/// each trade's next step when a change is written.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    policy: LoopPolicy,
    /// SQLite only: its single writer (see `sqlite_writer`). This process's
    /// writers queue there, in order and without sleeping, instead of in
    /// SQLite's busy handler (which sleeps up to 100 ms per retry).
    sqlite: Option<Arc<SqliteWriter>>,
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing, WAL, busy timeout, foreign
    /// keys) or `postgres://…`, and runs the embedded migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    /// As [`Store::connect`], with options.
    pub async fn connect_with(url: &str, store_options: StoreOptions) -> Result<Store, StoreError> {
        let synchronous = store_options.sqlite_synchronous;
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let sqlite = match backend {
            Backend::Sqlite => {
                // The writer's own connection. WAL is a property of the file:
                // set it once, before the pool opens connections.
                let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                sqlite_pragmas(&mut conn, synchronous).await?;
                // With FULL the writer syncs the log itself, after the
                // commits that need it (see `sqlite_writer`).
                let wal = match synchronous {
                    SqliteSynchronous::Full => {
                        sqlite_writer::open_wal(&mut conn).await?.map(|file| {
                            sqlite_writer::WalSync {
                                file,
                                deferred_after: sqlite_writer::DEFERRED_SYNC_AFTER,
                            }
                        })
                    }
                    SqliteSynchronous::Normal => None,
                };
                let mut checkpointer = sqlx::AnyConnection::connect_with(&options).await?;
                sqlite_pragmas(&mut checkpointer, synchronous).await?;
                Some(SqliteWriter::new(conn, checkpointer, wal)?)
            }
            Backend::Postgres => None,
        };
        let pool = AnyPoolOptions::new()
            // A connection to a local SQLite file cannot go stale the way a
            // network connection can: no ping (a round trip to its thread)
            // before each use. A PostgreSQL connection is pinged only when
            // it sat idle for a while: one used a moment ago answered then,
            // and a ping per checkout was a round trip per write.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if backend == Backend::Postgres && meta.idle_for > POOL_PING_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .max_connections(POOL_CONNECTIONS_MAX)
            .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlite_pragmas(conn, synchronous).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            policy: LoopPolicy::default(),
            sqlite,
        })
    }

    /// The same store with another closed-loop policy.
    pub fn with_policy(mut self, policy: LoopPolicy) -> Store {
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &LoopPolicy {
        &self.policy
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers (`/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (tests dropping a PostgreSQL schema need it).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction, for callers that enqueue jobs together
    /// with their own writes ([`WriteTx::enqueue`]). On SQLite it holds the
    /// writer until it commits: call no other writing method of the store
    /// while it is open (that call would wait for it).
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        Ok(WriteTx {
            tx: self.begin_write().await?,
        })
    }

    /// Runs `work`, a write, on the writer's thread when there is one (SQLite;
    /// see `sqlite_writer`) and in place otherwise (PostgreSQL locks rows,
    /// not the database, so its writers do not queue behind each other). The
    /// write runs to its end even if the caller stops waiting for it.
    pub(crate) async fn write<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Store) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        match &self.sqlite {
            None => work(store).await,
            Some(writer) => writer
                .runtime()
                .spawn(work(store))
                .await
                .map_err(|e| StoreError::Writer(format!("a write did not finish: {e}")))?,
        }
    }

    pub(crate) async fn begin_write(&self) -> Result<Txn, StoreError> {
        Ok(match &self.sqlite {
            Some(writer) => Txn::Sqlite(writer.begin().await?),
            None => Txn::Pool(self.pool.begin().await?),
        })
    }

    /// One write of a single query (on SQLite maybe several statements, see
    /// `script`), atomic on its own: on SQLite begun, run and committed in
    /// one round trip; on PostgreSQL one statement in autocommit. Returns
    /// once it is durable.
    pub(crate) async fn write_once(
        &self,
        postgres: &str,
        sqlite: &str,
        values: Vec<script::Value>,
    ) -> Result<script::Ran, sqlx::Error> {
        self.write_once_as(Durability::Synced, postgres, sqlite, values)
            .await
    }

    /// As [`Store::write_once`], returning once the write is committed when
    /// `durability` is [`Durability::Deferred`] and the backend is SQLite
    /// (on disk a moment later, see `sqlite_writer`). On PostgreSQL the
    /// statement itself says how it commits (see `change_statement`).
    pub(crate) async fn write_once_as(
        &self,
        durability: Durability,
        postgres: &str,
        sqlite: &str,
        values: Vec<script::Value>,
    ) -> Result<script::Ran, sqlx::Error> {
        match &self.sqlite {
            Some(writer) => writer.transact(durability, sqlite, values).await,
            None => {
                let mut conn = self.pool.acquire().await?;
                script::run_sql(&mut conn, postgres.to_owned(), values, 0).await
            }
        }
    }

    /// Starts a write transaction whose first query is the backend's of
    /// `postgres` and `sqlite` (on SQLite sent with the `BEGIN`, one round
    /// trip).
    pub(crate) async fn begin_write_with(
        &self,
        postgres: &'static str,
        sqlite: &'static str,
        values: Vec<script::Value>,
    ) -> Result<(Txn, script::Ran), sqlx::Error> {
        match &self.sqlite {
            Some(writer) => {
                let (tx, ran) = writer.begin_with(sqlite, values).await?;
                Ok((Txn::Sqlite(tx), ran))
            }
            None => {
                let mut tx = self.pool.begin().await?;
                let ran = script::run_sql(&mut tx, postgres.to_owned(), values, 0).await?;
                Ok((Txn::Pool(tx), ran))
            }
        }
    }

    /// Logical and physical commits of the SQLite writer (`None` on
    /// PostgreSQL): how much group commit saved.
    pub fn sqlite_commit_stats(&self) -> Option<CommitStats> {
        self.sqlite.as_ref().map(|w| w.stats())
    }

    /// Picks the statement for this backend.
    pub(crate) fn sql(&self, postgres: &'static str, sqlite: &'static str) -> &'static str {
        match self.backend {
            Backend::Postgres => postgres,
            Backend::Sqlite => sqlite,
        }
    }
}

/// Every SQLite connection's settings.
async fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    synchronous: SqliteSynchronous,
) -> Result<(), sqlx::Error> {
    // Writers of other processes (the admin CLI) queue for SQLite's single
    // lock (30 s) instead of failing at once.
    conn.execute("PRAGMA busy_timeout = 30000").await?;
    if synchronous == SqliteSynchronous::Normal {
        conn.execute("PRAGMA synchronous = NORMAL").await?;
    }
    conn.execute("PRAGMA foreign_keys = ON").await?;
    // The writer's checkpointer copies the log back (see `sqlite_writer`).
    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
    Ok(())
}

/// Checks a SQLite URL, creates the file's directory, and asks for the file
/// to be created if missing. In-memory databases are refused: every pooled
/// connection would see a different, empty database.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path.contains(":memory:") || query.contains("mode=memory") {
        return Err(StoreError::UnsupportedUrl(format!(
            "{url} (the SQLite store needs a file path)"
        )));
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

/// A write transaction: on SQLite a logical transaction of the writer
/// (holding its connection until it commits, rolls back or is dropped), on
/// PostgreSQL a pooled transaction.
#[derive(Debug)]
pub(crate) enum Txn {
    Sqlite(SqliteTxn),
    Pool(Transaction<'static, Any>),
}

impl std::ops::Deref for Txn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        match self {
            Txn::Sqlite(tx) => tx.conn_ref(),
            Txn::Pool(tx) => tx,
        }
    }
}

impl std::ops::DerefMut for Txn {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            Txn::Sqlite(tx) => tx.conn(),
            Txn::Pool(tx) => tx,
        }
    }
}

impl Txn {
    /// Returns once the writes are durable (on SQLite, after the group
    /// commit that contains them).
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Txn::Sqlite(tx) => tx.commit().await,
            Txn::Pool(tx) => tx.commit().await,
        }
    }

    /// Runs `script` as the last statements and commits: on SQLite in one
    /// round trip. Returns the script's results once they are durable. On
    /// PostgreSQL a [`script::Script::guarded`] script whose first statement
    /// wrote nothing is rolled back instead.
    pub(crate) async fn commit_with(
        self,
        script: script::Script,
    ) -> Result<script::Ran, sqlx::Error> {
        match self {
            Txn::Sqlite(tx) => tx.commit_with(script).await,
            Txn::Pool(mut tx) => {
                let guarded = script.is_guarded();
                let ran = script.run(&mut tx).await?;
                if guarded && ran.first_wrote_nothing() {
                    tx.rollback().await?;
                } else {
                    tx.commit().await?;
                }
                Ok(ran)
            }
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Txn::Sqlite(tx) => tx.rollback().await,
            Txn::Pool(tx) => tx.rollback().await,
        }
    }
}

/// A write transaction handed to a caller.
#[derive(Debug)]
pub struct WriteTx {
    tx: Txn,
}

impl WriteTx {
    /// Enqueues a job in this transaction: it exists only if the transaction commits.
    pub async fn enqueue(&mut self, job: &NewJob) -> Result<Option<i64>, StoreError> {
        jobs::enqueue_in(&mut self.tx, job).await
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The transaction, for statements of the caller's own.
    pub fn connection(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}
