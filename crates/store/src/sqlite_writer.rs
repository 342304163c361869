//! SQLite's single writer: one connection on a thread of its own, with group
//! commit.
//!
//! SQLite lets one transaction write at a time, and with `synchronous=FULL`
//! (the default) each commit waits for the disk. Two things follow.
//!
//! **Its own thread.** A transaction holds the write lock across several
//! statements, and between two statements the task holding it must be
//! polled again. On the request runtime that task waits behind whatever the
//! workers are doing — an RSA signature costs about a millisecond — and every
//! writer queued behind the lock waits with it. So writes run on
//! [`WriterThread`], a single-threaded runtime that does nothing else.
//!
//! **Group commit.** Writers that queue while a transaction runs join it:
//! each logical transaction is a savepoint inside one physical transaction,
//! and the physical `COMMIT` (one disk sync) happens when nobody else is
//! waiting or [`BATCH_MAX`] logical transactions have joined. A logical
//! commit returns only after the physical commit that contains it, so a
//! caller is never told "committed" before the disk is; a logical rollback
//! rolls back its savepoint and leaves the others alone. With no
//! concurrency every commit is physical at once, as before.
//!
//! **Checkpoints elsewhere.** In WAL mode SQLite copies the log back into
//! the database every 1000 pages, in whichever commit crosses the mark, and
//! syncs the disk there: that commit, and every writer queued behind it,
//! stalled for tens of milliseconds (the slowest 1% of payments in
//! BENCHMARKS.md). Automatic checkpoints are off on every connection; a
//! connection of the writer's own runs passive checkpoints (which never
//! block writers) every [`CHECKPOINT_EVERY`] physical commits.
//!
//! **The disk sync is the writer's own.** With `synchronous=FULL` the
//! writer's connection runs at `NORMAL` (no sync in its commits) and the
//! writer syncs the log file itself after a physical commit that holds a
//! [`Durability::Synced`] logical commit, before telling that one it is
//! done; the log is written in order, so the sync holds every earlier
//! commit too. A [`Durability::Deferred`] logical commit is told as soon as
//! it is committed (visible to every connection) and is on disk with the
//! next sync: the next synced commit's, or the deferred sync a moment later
//! ([`DEFERRED_SYNC_AFTER`]). Only a power loss in that window can lose it;
//! a process crash cannot (the page cache keeps it). The store defers only
//! writes that a synced write already provides for (see
//! `Store::apply_observation_to`).
//!
//! The invariant that keeps every waiter moving: **whoever releases the
//! connection while nobody waits for it leaves no physical transaction
//! open.** Every path that releases it (commit, rollback, a dropped
//! transaction, a writer that stopped waiting) upholds it, the last two
//! through a flush task on the writer thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sqlx::{AnyConnection, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::StoreError;
use crate::script::{Ran, Script, Value, run_sql};

/// Most logical transactions in one physical commit: bounds the time the
/// first of them waits for the disk (each takes a few hundred microseconds).
pub(crate) const BATCH_MAX: usize = 16;

/// Physical commits between two passive checkpoints: about 1000 pages of
/// log at the sizes of this schema's transactions, SQLite's own default.
pub(crate) const CHECKPOINT_EVERY: u64 = 64;

/// The longest a deferred commit waits for its disk sync when no synced
/// commit comes first.
pub(crate) const DEFERRED_SYNC_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// The database's log file, which the writer syncs itself, and how long a
/// deferred commit may wait for a sync ([`DEFERRED_SYNC_AFTER`]).
#[derive(Debug)]
pub(crate) struct WalSync {
    pub(crate) file: std::fs::File,
    pub(crate) deferred_after: std::time::Duration,
}

/// The log file of `conn`'s database, for the writer to sync; `conn` no
/// longer syncs its own commits. `None` when the database is not in WAL
/// mode (a file system without it): then every commit syncs itself.
pub(crate) async fn open_wal(
    conn: &mut sqlx::AnyConnection,
) -> Result<Option<std::fs::File>, StoreError> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Ok(None);
    }
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&mut *conn)
            .await?;
    let path = format!("{file}-wal");
    let wal = std::fs::File::open(&path)
        .map_err(|e| StoreError::Writer(format!("cannot open the database log {path}: {e}")))?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(Some(wal))
}

/// When a logical commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Once it is on disk (with `synchronous=FULL`; as the pragma says otherwise).
    Synced,
    /// Once it is committed; on disk within [`DEFERRED_SYNC_AFTER`].
    Deferred,
}

/// The savepoint of the logical transaction that holds the connection.
const SAVEPOINT: &str = "SAVEPOINT jl_write";
const RELEASE: &str = "RELEASE jl_write";
const ROLLBACK_TO: &str = "ROLLBACK TO jl_write";
/// A physical transaction and its first savepoint, in one round trip.
const BEGIN_AND_SAVEPOINT: &str = "BEGIN IMMEDIATE; SAVEPOINT jl_write";
/// The last savepoint and the physical transaction, in one round trip.
const RELEASE_AND_COMMIT: &str = "RELEASE jl_write; COMMIT";

/// How many logical and physical commits the writer made (their ratio is
/// the batching that group commit achieved), and the checkpoints beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    pub logical: u64,
    pub physical: u64,
    pub checkpoints: u64,
    /// Disk syncs of the log by the writer (`synchronous=FULL`), deferred
    /// ones included.
    pub syncs: u64,
}

/// The writer: its thread, its connection and who waits for it.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    thread: WriterThread,
    conn: Arc<Mutex<WriterConn>>,
    /// Writers queued for the connection.
    waiting: AtomicUsize,
    logical: AtomicU64,
    physical: AtomicU64,
    /// Wakes the checkpointer.
    checkpoint_due: Arc<tokio::sync::Notify>,
    /// Checkpoints completed so far.
    checkpoints_done: tokio::sync::watch::Receiver<u64>,
    /// The log file, synced by the writer (`synchronous=FULL`); `None` when
    /// the connection's own commits sync as its pragma says (`NORMAL`, or
    /// a database not in WAL mode).
    wal: Option<Arc<std::fs::File>>,
    /// Wakes the deferred sync.
    deferred_due: Arc<tokio::sync::Notify>,
    /// Syncs of the log so far (as `checkpoints_done`, a watch for tests).
    syncs: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The connection and the physical transaction's bookkeeping.
#[derive(Debug)]
pub(crate) struct WriterConn {
    conn: AnyConnection,
    /// A physical transaction is open.
    open: bool,
    /// Logical commits waiting for the physical commit.
    pending: Vec<(oneshot::Sender<Result<(), String>>, Durability)>,
    /// A logical transaction was dropped inside its savepoint, which must be
    /// rolled back before anyone else writes.
    abandoned: bool,
}

impl SqliteWriter {
    /// A writer on `conn`, with `checkpointer`, another connection to the
    /// same file, for checkpoints. Both must have automatic checkpoints off.
    /// With `wal`, the writer syncs commits itself and `conn` must run at
    /// `synchronous=NORMAL` (see the module documentation).
    pub(crate) fn new(
        conn: AnyConnection,
        checkpointer: AnyConnection,
        wal: Option<WalSync>,
    ) -> Result<Arc<SqliteWriter>, StoreError> {
        let thread = WriterThread::start()?;
        let checkpoint_due = Arc::new(tokio::sync::Notify::new());
        let (done, checkpoints_done) = tokio::sync::watch::channel(0);
        thread
            .runtime
            .spawn(checkpoints(checkpointer, checkpoint_due.clone(), done));
        let deferred_due = Arc::new(tokio::sync::Notify::new());
        let syncs = Arc::new(tokio::sync::watch::Sender::new(0));
        let wal = wal.map(|sync| {
            let file = Arc::new(sync.file);
            thread.runtime.spawn(deferred_syncs(
                file.clone(),
                sync.deferred_after,
                deferred_due.clone(),
                syncs.clone(),
            ));
            file
        });
        Ok(Arc::new(SqliteWriter {
            thread,
            conn: Arc::new(Mutex::new(WriterConn {
                conn,
                open: false,
                pending: Vec::new(),
                abandoned: false,
            })),
            waiting: AtomicUsize::new(0),
            logical: AtomicU64::new(0),
            physical: AtomicU64::new(0),
            checkpoint_due,
            checkpoints_done,
            wal,
            deferred_due,
            syncs,
        }))
    }

    /// Makes every commit so far durable (with `synchronous=FULL`).
    fn sync(&self) -> Result<(), String> {
        match &self.wal {
            Some(wal) => sync_log(wal, &self.syncs),
            None => Ok(()),
        }
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.thread.runtime
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            logical: self.logical.load(Ordering::Relaxed),
            physical: self.physical.load(Ordering::Relaxed),
            checkpoints: *self.checkpoints_done.borrow(),
            syncs: *self.syncs.borrow(),
        }
    }

    /// Starts a logical transaction: waits for the connection, joins the open
    /// physical transaction or begins one, and sets the savepoint. (One
    /// round trip; if it fails, dropping the transaction undoes it.)
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<SqliteTxn, sqlx::Error> {
        let (mut txn, prefix, _) = self.begin_lazily(Durability::Synced).await;
        txn.conn().execute(prefix).await?;
        Ok(txn)
    }

    /// Starts a logical transaction whose first statements are `sql`, sent
    /// in one round trip with the `BEGIN`/`SAVEPOINT` (see `script`).
    pub(crate) async fn begin_with(
        self: &Arc<Self>,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<(SqliteTxn, Ran), sqlx::Error> {
        let (mut txn, prefix, skip) = self.begin_lazily(Durability::Synced).await;
        let ran = run_sql(txn.conn(), format!("{prefix}; {sql}"), values, skip).await?;
        Ok((txn, ran))
    }

    /// One logical transaction of `sql` alone: begun, run and committed in
    /// one round trip (when nobody waits to join; else it joins the group
    /// commit like [`SqliteTxn::commit`]). Returns once it is on disk, or
    /// once it is committed when `durability` is [`Durability::Deferred`].
    pub(crate) async fn transact(
        self: &Arc<Self>,
        durability: Durability,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Ran, sqlx::Error> {
        let (txn, prefix, skip) = self.begin_lazily(durability).await;
        txn.finish(format!("{prefix}; {sql}"), values, skip).await
    }

    /// Takes the connection for a logical transaction whose `BEGIN` or
    /// `SAVEPOINT` (returned, with its statement count) the caller sends in
    /// front of its first statements. If they fail, dropping the
    /// transaction undoes whatever of them ran (see [`WriterConn::recover`]).
    async fn begin_lazily(
        self: &Arc<Self>,
        durability: Durability,
    ) -> (SqliteTxn, &'static str, usize) {
        let mut queued = Queued::new(self);
        let mut guard = self.conn.clone().lock_owned().await;
        queued.served();
        guard.recover().await;
        let prefix = if guard.open {
            SAVEPOINT
        } else {
            BEGIN_AND_SAVEPOINT
        };
        guard.open = true;
        let txn = SqliteTxn {
            guard,
            writer: self.clone(),
            finished: false,
            durability,
        };
        (txn, prefix, statements(prefix))
    }

    /// Ends the open physical transaction unless someone will join it.
    async fn flush(self: Arc<Self>) {
        let mut guard = self.conn.clone().lock_owned().await;
        guard.recover().await;
        if self.waiting.load(Ordering::SeqCst) == 0 {
            let _ = guard.commit(&self, Durability::Deferred).await;
        }
    }

    fn spawn_flush(self: &Arc<Self>) {
        let writer = self.clone();
        self.thread.runtime.spawn(writer.flush());
    }
}

impl WriterConn {
    /// Rolls back the savepoint of a logical transaction that was dropped.
    async fn recover(&mut self) {
        if !std::mem::take(&mut self.abandoned) {
            return;
        }
        let undone = match self.conn.execute(ROLLBACK_TO).await {
            Ok(_) => self.conn.execute(RELEASE).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = undone {
            // The physical transaction is gone with it (SQLite rolls the
            // whole transaction back on some errors): so are the others.
            self.abort(&e).await;
        }
    }

    /// The physical commit, for the caller's own logical commit of
    /// `durability` and every pending one: each learns its result.
    async fn commit(
        &mut self,
        writer: &SqliteWriter,
        durability: Durability,
    ) -> Result<(), sqlx::Error> {
        self.commit_with(writer, "COMMIT", durability).await
    }

    /// The physical commit by `sql`, which ends with `COMMIT`.
    async fn commit_with(
        &mut self,
        writer: &SqliteWriter,
        sql: &'static str,
        durability: Durability,
    ) -> Result<(), sqlx::Error> {
        if !self.open {
            return Ok(());
        }
        let result = self.conn.execute(sql).await.map(|_| ());
        if let Err(e) = result {
            // Leave no half-state behind; an error here means none is open.
            let _ = self.conn.execute("ROLLBACK").await;
            let _ = self.committed(writer, Err(e.to_string()), durability);
            return Err(e);
        }
        self.committed(writer, Ok(()), durability)
            .map_err(sqlx::Error::Protocol)
    }

    /// The physical transaction ended with `result` (its `COMMIT` ran, or
    /// failed and was rolled back): every pending logical commit learns it,
    /// a synced one after the disk sync, which runs when the caller's own
    /// commit (`durability`) or a pending one needs it. Returns the caller's.
    fn committed(
        &mut self,
        writer: &SqliteWriter,
        result: Result<(), String>,
        durability: Durability,
    ) -> Result<(), String> {
        self.open = false;
        if let Err(e) = result {
            for (waiter, _) in self.pending.drain(..) {
                let _ = waiter.send(Err(e.clone()));
            }
            return Err(e);
        }
        let commits = writer.physical.fetch_add(1, Ordering::Relaxed) + 1;
        if commits.is_multiple_of(CHECKPOINT_EVERY) {
            writer.checkpoint_due.notify_one();
        }
        let mut synced = Vec::with_capacity(self.pending.len());
        for (waiter, wants) in self.pending.drain(..) {
            match wants {
                Durability::Deferred => {
                    let _ = waiter.send(Ok(()));
                }
                Durability::Synced => synced.push(waiter),
            }
        }
        if synced.is_empty() && durability == Durability::Deferred {
            writer.deferred_due.notify_one();
            return Ok(());
        }
        let result = writer.sync();
        for waiter in synced {
            let _ = waiter.send(result.clone());
        }
        result
    }

    /// Rolls the physical transaction back: every pending logical commit fails.
    async fn abort(&mut self, cause: &sqlx::Error) {
        if self.open {
            let _ = self.conn.execute("ROLLBACK").await;
            self.open = false;
        }
        let reason = format!("the group commit was rolled back: {cause}");
        for (waiter, _) in self.pending.drain(..) {
            let _ = waiter.send(Err(reason.clone()));
        }
    }
}

/// Syncs the log `after` a physical commit that held only deferred commits
/// (several such commits share one sync). Runs until the writer's runtime
/// ends with the writer.
async fn deferred_syncs(
    wal: Arc<std::fs::File>,
    after: std::time::Duration,
    due: Arc<tokio::sync::Notify>,
    syncs: Arc<tokio::sync::watch::Sender<u64>>,
) {
    loop {
        due.notified().await;
        tokio::time::sleep(after).await;
        let (wal, counted) = (wal.clone(), syncs.clone());
        match tokio::task::spawn_blocking(move || sync_log(&wal, &counted)).await {
            Ok(Ok(())) => {}
            // The next synced commit syncs them, or reports why it cannot.
            Ok(Err(e)) => tracing::warn!(error = %e, "SQLite log sync failed"),
            Err(e) => tracing::warn!(error = %e, "SQLite log sync did not finish"),
        }
    }
}

/// Syncs the log `wal` to disk (every commit written to it so far) and
/// counts the sync in `syncs`.
fn sync_log(wal: &std::fs::File, syncs: &tokio::sync::watch::Sender<u64>) -> Result<(), String> {
    wal.sync_data()
        .map_err(|e| format!("the database log could not be synced to disk: {e}"))?;
    syncs.send_modify(|n| *n += 1);
    Ok(())
}

/// Runs a passive checkpoint each time it is woken, on its own connection,
/// so the copy and its disk sync happen beside the writer, not in it. Runs
/// until the writer's runtime ends with the writer.
async fn checkpoints(
    mut conn: AnyConnection,
    due: Arc<tokio::sync::Notify>,
    done: tokio::sync::watch::Sender<u64>,
) {
    loop {
        due.notified().await;
        match conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            Ok(_) => done.send_modify(|n| *n += 1),
            // Nothing is lost: the log only grows until the next one works.
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
    }
}

/// Counts a writer in the queue until it gets the connection; a writer that
/// stops waiting may have been counted on to end the physical transaction,
/// so it leaves a flush behind.
struct Queued<'a> {
    writer: &'a Arc<SqliteWriter>,
    served: bool,
}

impl<'a> Queued<'a> {
    fn new(writer: &'a Arc<SqliteWriter>) -> Queued<'a> {
        writer.waiting.fetch_add(1, Ordering::SeqCst);
        Queued {
            writer,
            served: false,
        }
    }

    fn served(&mut self) {
        self.served = true;
        self.writer.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.writer.waiting.fetch_sub(1, Ordering::SeqCst);
            self.writer.spawn_flush();
        }
    }
}

/// A logical write transaction: the writer's connection inside a savepoint.
#[derive(Debug)]
pub(crate) struct SqliteTxn {
    guard: OwnedMutexGuard<WriterConn>,
    writer: Arc<SqliteWriter>,
    finished: bool,
    durability: Durability,
}

/// What ending a logical transaction left to wait for.
enum Ended {
    Done(Result<(), sqlx::Error>),
    AwaitCommit(oneshot::Receiver<Result<(), String>>),
}

impl SqliteTxn {
    /// Whether ending this transaction ends the physical one: nobody waits
    /// to join it, or the batch is full.
    fn commits_physically(&self, committing: bool) -> bool {
        let alone = self.writer.waiting.load(Ordering::SeqCst) == 0;
        alone || self.guard.pending.len() + usize::from(committing) >= BATCH_MAX
    }

    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.guard.conn
    }

    pub(crate) fn conn_ref(&self) -> &AnyConnection {
        &self.guard.conn
    }

    /// Keeps this transaction's writes; returns once they are on disk.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.commits_physically(true) {
            // Nobody will join: the savepoint and the physical transaction
            // end in one round trip (a failure of either rolls all back).
            let writer = self.writer.clone();
            let result = self
                .guard
                .commit_with(&writer, RELEASE_AND_COMMIT, self.durability)
                .await;
            if result.is_ok() {
                writer.logical.fetch_add(1, Ordering::Relaxed);
            }
            self.finished = true;
            return result;
        }
        let ended = match self.guard.conn.execute(RELEASE).await {
            Ok(_) => {
                self.writer.logical.fetch_add(1, Ordering::Relaxed);
                self.end(true).await
            }
            Err(e) => {
                self.guard.abort(&e).await;
                Ended::Done(Err(e))
            }
        };
        self.finished = true;
        // Releases the connection before waiting for the physical commit.
        drop(self);
        match ended {
            Ended::Done(result) => result,
            Ended::AwaitCommit(receiver) => wait_for_group(receiver).await,
        }
    }

    /// Runs `script` as this transaction's last statements and commits, in
    /// one round trip when nobody waits to join (else as [`Self::commit`]).
    /// Returns the script's results once it is on disk. If a statement
    /// fails, dropping the transaction rolls it back.
    pub(crate) async fn commit_with(self, script: Script) -> Result<Ran, sqlx::Error> {
        let (sql, values) = script.joined();
        self.finish(sql, values, 0).await
    }

    /// Runs `sql` (whose first `skip` statements are this transaction's
    /// `BEGIN`/`SAVEPOINT`) with the savepoint's `RELEASE` after it, and the
    /// physical `COMMIT` when nobody waits to join; then the bookkeeping of
    /// [`Self::commit`], and the wait for the group commit.
    async fn finish(
        mut self,
        sql: String,
        values: Vec<Value>,
        skip: usize,
    ) -> Result<Ran, sqlx::Error> {
        let alone = self.commits_physically(true);
        let suffix = if alone { RELEASE_AND_COMMIT } else { RELEASE };
        let mut ran = run_sql(self.conn(), format!("{sql}; {suffix}"), values, skip).await?;
        ran.affected
            .truncate(ran.affected.len().saturating_sub(statements(suffix)));
        self.released(alone).await?;
        Ok(ran)
    }

    /// After the savepoint was released (and, when `alone`, the physical
    /// transaction committed) by the statements [`Self::finish`] sent.
    async fn released(mut self, alone: bool) -> Result<(), sqlx::Error> {
        self.writer.logical.fetch_add(1, Ordering::Relaxed);
        self.finished = true;
        if alone {
            let writer = self.writer.clone();
            return self
                .guard
                .committed(&writer, Ok(()), self.durability)
                .map_err(sqlx::Error::Protocol);
        }
        let ended = self.end(true).await;
        drop(self);
        match ended {
            Ended::Done(result) => result,
            Ended::AwaitCommit(receiver) => wait_for_group(receiver).await,
        }
    }

    /// Discards this transaction's writes; the others in the physical
    /// transaction keep theirs.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let undone = match self.guard.conn.execute(ROLLBACK_TO).await {
            Ok(_) => self.guard.conn.execute(RELEASE).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let result = match undone {
            Ok(()) => match self.end(false).await {
                Ended::Done(r) => r,
                Ended::AwaitCommit(_) => Ok(()),
            },
            Err(e) => {
                self.guard.abort(&e).await;
                Err(e)
            }
        };
        self.finished = true;
        result
    }

    /// With the savepoint closed: commits the physical transaction now when
    /// nobody will join it (or the batch is full), else leaves that to the
    /// next writer. A committing transaction learns the physical result; a
    /// rolled-back one has nothing in it to learn about.
    async fn end(&mut self, committing: bool) -> Ended {
        let writer = self.writer.clone();
        if self.commits_physically(committing) {
            let own = if committing {
                self.durability
            } else {
                Durability::Deferred
            };
            let result = self.guard.commit(&writer, own).await;
            return Ended::Done(if committing { result } else { Ok(()) });
        }
        if !committing {
            return Ended::Done(Ok(()));
        }
        let (sender, receiver) = oneshot::channel();
        self.guard.pending.push((sender, self.durability));
        Ended::AwaitCommit(receiver)
    }
}

impl Drop for SqliteTxn {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped inside its savepoint (an error returned early): the
            // next holder rolls the savepoint back, and a flush makes sure
            // someone does even if nobody else comes.
            self.guard.abandoned = true;
            self.writer.spawn_flush();
        }
    }
}

/// How many statements `sql`, one of this module's, holds.
fn statements(sql: &str) -> usize {
    sql.matches(';').count() + 1
}

/// The result of the physical commit a logical one joined.
async fn wait_for_group(
    receiver: oneshot::Receiver<Result<(), String>>,
) -> Result<(), sqlx::Error> {
    match receiver.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(sqlx::Error::Protocol(reason)),
        Err(_) => Err(sqlx::Error::Protocol(
            "the group commit ended without an answer".into(),
        )),
    }
}

/// A thread of the store's own running a single-threaded runtime: writes
/// run there (see the module documentation).
#[derive(Debug)]
struct WriterThread {
    runtime: tokio::runtime::Handle,
    /// Dropped with the writer, which ends the thread.
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    fn start() -> Result<WriterThread, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Writer(format!("cannot build its runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("jianlian-store-writer".into())
            .spawn(move || {
                // Runs until the writer is gone (the sender drops).
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| StoreError::Writer(format!("cannot start its thread: {e}")))?;
        Ok(WriterThread {
            runtime: handle,
            _stop: stop,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Group commit keeps each writer's all-or-nothing promise: batched
    //! writers share disk syncs, a writer that rolls back or is dropped takes
    //! only its own writes with it, and a failed physical commit fails every
    //! writer in it.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::str::FromStr as _;

    use sqlx::any::AnyConnectOptions;
    use sqlx::{Connection as _, Executor as _};

    use super::*;

    /// A writer on a new database in `dir`, syncing deferred commits
    /// `deferred_after` them.
    async fn open_deferring(
        dir: &std::path::Path,
        deferred_after: std::time::Duration,
    ) -> (Arc<SqliteWriter>, AnyConnectOptions) {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", dir.join("w.db").display());
        let options = AnyConnectOptions::from_str(&url).unwrap();
        let mut conn = AnyConnection::connect_with(&options).await.unwrap();
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (v TEXT NOT NULL, parent_id INTEGER \
             REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .await
        .unwrap();
        let mut checkpointer = AnyConnection::connect_with(&options).await.unwrap();
        checkpointer
            .execute("PRAGMA wal_autocheckpoint = 0")
            .await
            .unwrap();
        // As the store opens it with synchronous=FULL: the writer syncs.
        let wal = WalSync {
            file: open_wal(&mut conn).await.unwrap().expect("WAL mode"),
            deferred_after,
        };
        (
            SqliteWriter::new(conn, checkpointer, Some(wal)).unwrap(),
            options,
        )
    }

    async fn open(dir: &std::path::Path) -> (Arc<SqliteWriter>, AnyConnectOptions) {
        open_deferring(dir, DEFERRED_SYNC_AFTER).await
    }

    /// One-round-trip write of `v` alone, returning once `durability` says.
    async fn write_alone(
        writer: &Arc<SqliteWriter>,
        durability: Durability,
        v: &str,
    ) -> Result<Ran, sqlx::Error> {
        writer
            .transact(
                durability,
                "INSERT INTO child (v) VALUES ($1)",
                vec![v.into()],
            )
            .await
    }

    async fn insert(tx: &mut SqliteTxn, v: &str, parent: Option<i64>) {
        sqlx::query("INSERT INTO child (v, parent_id) VALUES ($1, $2)")
            .bind(v.to_owned())
            .bind(parent)
            .execute(tx.conn())
            .await
            .unwrap();
    }

    /// The rows another connection sees: what was really committed.
    async fn committed(options: &AnyConnectOptions) -> Vec<String> {
        let mut conn = AnyConnection::connect_with(options).await.unwrap();
        sqlx::query_scalar("SELECT v FROM child ORDER BY v")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }

    /// A second writer, on its own task: inserts `v` (under `parent`), then
    /// commits or rolls back.
    fn second_writer(
        writer: &Arc<SqliteWriter>,
        v: &'static str,
        parent: Option<i64>,
        commit: bool,
    ) -> tokio::task::JoinHandle<Result<(), sqlx::Error>> {
        let writer = writer.clone();
        tokio::spawn(async move {
            let mut tx = writer.begin().await?;
            insert(&mut tx, v, parent).await;
            if commit {
                tx.commit().await
            } else {
                tx.rollback().await
            }
        })
    }

    /// Yields until `n` writers queue for the connection (bounded).
    async fn until_queued(writer: &SqliteWriter, n: usize) {
        for _ in 0..100_000 {
            if writer.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{n} writers never queued");
    }

    #[tokio::test]
    async fn concurrent_writers_share_disk_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let writer = writer.clone();
                writer.runtime().clone().spawn(async move {
                    let mut tx = writer.begin().await?;
                    insert(&mut tx, &format!("w{i:02}"), None).await;
                    tx.commit().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(committed(&options).await.len(), 40);
        let stats = writer.stats();
        assert_eq!(stats.logical, 40);
        assert!(
            stats.physical < stats.logical && stats.physical >= 40 / BATCH_MAX as u64,
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn one_round_trip_writes_commit_alone_or_end_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let two =
            "INSERT INTO child (v) VALUES ($1); INSERT INTO child (v) VALUES ($2) RETURNING v";
        let ran = writer
            .transact(Durability::Synced, two, vec!["a1".into(), "a2".into()])
            .await
            .unwrap();
        assert_eq!((ran.affected, ran.rows.len()), (vec![1, 1], 1));
        assert_eq!(writer.stats().physical, 1);
        // A writer holds the connection; the one-round-trip write queues,
        // the holder's commit joins the group, and the queued write (alone
        // by then) commits both.
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, "b", None).await;
        let queued = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .transact(Durability::Synced, two, vec!["c1".into(), "c2".into()])
                    .await
            })
        };
        until_queued(&writer, 1).await;
        first.commit().await.unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(committed(&options).await, ["a1", "a2", "b", "c1", "c2"]);
        assert_eq!(writer.stats().logical, 3);
        assert_eq!(writer.stats().physical, 2);
    }

    #[tokio::test]
    async fn a_failed_one_round_trip_write_takes_only_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, "kept", None).await;
        let failing = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .transact(
                        Durability::Synced,
                        "INSERT INTO child (v) VALUES ($1); INSERT INTO child (v) VALUES ($2)",
                        vec!["lost".into(), Value::Text(None)],
                    )
                    .await
            })
        };
        until_queued(&writer, 1).await;
        first.commit().await.unwrap();
        assert!(failing.await.unwrap().is_err());
        // Alone again: the next write commits at once, and the failed one
        // left nothing.
        writer
            .transact(Durability::Synced, "SELECT 1", vec![])
            .await
            .unwrap();
        assert_eq!(committed(&options).await, ["kept"]);
    }

    #[tokio::test]
    async fn a_transaction_begun_and_committed_with_statements() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let (tx, ran) = writer
            .begin_with(
                "INSERT INTO parent (id) VALUES ($1) RETURNING id",
                vec![7.into()],
            )
            .await
            .unwrap();
        assert_eq!(ran.rows.len(), 1);
        let mut script = Script::default();
        script.push(
            "INSERT INTO child (v, parent_id) VALUES ($1, $2)",
            vec!["x".into(), 7.into()],
        );
        assert_eq!(tx.commit_with(script).await.unwrap().affected, vec![1]);
        assert_eq!(committed(&options).await, ["x"]);
        // A failing last statement: the transaction is rolled back whole.
        let (tx, _) = writer
            .begin_with("INSERT INTO child (v) VALUES ($1)", vec!["y".into()])
            .await
            .unwrap();
        let mut script = Script::default();
        script.push("INSERT INTO child (v) VALUES ($1)", vec![Value::Text(None)]);
        assert!(tx.commit_with(script).await.is_err());
        writer
            .transact(Durability::Synced, "SELECT 1", vec![])
            .await
            .unwrap();
        assert_eq!(committed(&options).await, ["x"]);
    }

    #[tokio::test]
    async fn a_writer_alone_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let mut tx = writer.begin().await.unwrap();
        insert(&mut tx, "alone", None).await;
        tx.commit().await.unwrap();
        assert_eq!(committed(&options).await, ["alone"]);
        assert_eq!(
            writer.stats(),
            CommitStats {
                logical: 1,
                physical: 1,
                checkpoints: 0,
                syncs: 1
            }
        );
    }

    #[tokio::test]
    async fn a_deferred_commit_is_visible_before_its_sync_and_a_synced_one_covers_it() {
        let dir = tempfile::tempdir().unwrap();
        // No deferred sync within this test: only the synced commit syncs.
        let (writer, options) =
            open_deferring(dir.path(), std::time::Duration::from_secs(3600)).await;
        write_alone(&writer, Durability::Deferred, "deferred")
            .await
            .unwrap();
        assert_eq!(committed(&options).await, ["deferred"]);
        assert_eq!(writer.stats().syncs, 0);
        write_alone(&writer, Durability::Synced, "synced")
            .await
            .unwrap();
        assert_eq!(
            writer.stats(),
            CommitStats {
                logical: 2,
                physical: 2,
                checkpoints: 0,
                syncs: 1
            }
        );
    }

    #[tokio::test]
    async fn deferred_commits_alone_share_a_sync_a_moment_later() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) =
            open_deferring(dir.path(), std::time::Duration::from_millis(20)).await;
        for v in ["a", "b", "c"] {
            write_alone(&writer, Durability::Deferred, v).await.unwrap();
        }
        assert_eq!(committed(&options).await, ["a", "b", "c"]);
        let mut synced = writer.syncs.subscribe();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            synced.wait_for(|n| *n >= 1),
        )
        .await
        .expect("a deferred sync")
        .unwrap();
        let syncs = writer.stats().syncs;
        assert!((1..=3).contains(&syncs), "{syncs} syncs");
    }

    #[tokio::test]
    async fn a_group_ended_by_a_deferred_commit_syncs_for_the_synced_one_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) =
            open_deferring(dir.path(), std::time::Duration::from_secs(3600)).await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, "synced", None).await;
        let second = {
            let writer = writer.clone();
            tokio::spawn(
                async move { write_alone(&writer, Durability::Deferred, "deferred").await },
            )
        };
        until_queued(&writer, 1).await;
        // Someone waits: this commit joins the batch the deferred one ends.
        first.commit().await.unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(committed(&options).await, ["deferred", "synced"]);
        assert_eq!(
            writer.stats(),
            CommitStats {
                logical: 2,
                physical: 1,
                checkpoints: 0,
                syncs: 1
            }
        );
    }

    #[tokio::test]
    async fn a_database_not_in_wal_mode_keeps_syncing_its_own_commits() {
        let dir = tempfile::tempdir().unwrap();
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
        let options = AnyConnectOptions::from_str(&url).unwrap();
        let mut conn = AnyConnection::connect_with(&options).await.unwrap();
        conn.execute("PRAGMA journal_mode = DELETE").await.unwrap();
        assert!(open_wal(&mut conn).await.unwrap().is_none());
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        conn.execute("PRAGMA journal_mode = WAL").await.unwrap();
        assert!(open_wal(&mut conn).await.unwrap().is_some());
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL");
    }

    #[tokio::test]
    async fn a_dropped_writer_takes_only_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, "dropped", None).await;
        let second = second_writer(&writer, "kept", None, true);
        until_queued(&writer, 1).await;
        drop(first);
        second.await.unwrap().unwrap();
        assert_eq!(committed(&options).await, ["kept"]);
    }

    #[tokio::test]
    async fn a_commit_waits_for_the_writer_after_it_and_survives_its_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, "committed", None).await;
        let second = second_writer(&writer, "rolled back", None, false);
        until_queued(&writer, 1).await;
        // Someone waits, so this commit joins a batch the second writer ends.
        first.commit().await.unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(committed(&options).await, ["committed"]);
        assert_eq!(
            writer.stats(),
            CommitStats {
                logical: 1,
                physical: 1,
                checkpoints: 0,
                syncs: 1
            }
        );
    }

    #[tokio::test]
    async fn a_failed_physical_commit_fails_every_writer_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, options) = open(dir.path()).await;
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, "innocent", None).await;
        // A deferred foreign key fails only at COMMIT.
        let second = second_writer(&writer, "orphan", Some(42), true);
        until_queued(&writer, 1).await;
        let first = first.commit().await;
        let second = second.await.unwrap();
        assert!(second.is_err(), "the orphan's commit must fail");
        assert!(
            first.is_err(),
            "a writer must not be told its writes are committed when its batch was not"
        );
        assert!(committed(&options).await.is_empty());
        // The writer is usable afterwards.
        let mut tx = writer.begin().await.unwrap();
        insert(&mut tx, "after", None).await;
        tx.commit().await.unwrap();
        assert_eq!(committed(&options).await, ["after"]);
    }

    #[tokio::test]
    async fn the_log_is_copied_back_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = open(dir.path()).await;
        let database = dir.path().join("w.db");
        let before = std::fs::metadata(&database).unwrap().len();
        for i in 0..CHECKPOINT_EVERY {
            let mut tx = writer.begin().await.unwrap();
            insert(&mut tx, &format!("row {i}"), None).await;
            tx.commit().await.unwrap();
        }
        let mut done = writer.checkpoints_done.clone();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            done.wait_for(|n| *n >= 1),
        )
        .await
        .expect("a checkpoint after CHECKPOINT_EVERY commits")
        .unwrap();
        // Automatic checkpoints are off: only the checkpointer grew the file.
        assert!(std::fs::metadata(&database).unwrap().len() > before);
        assert_eq!(writer.stats().checkpoints, 1);
    }
}
