//! Leased background jobs (dependencies.md §4), safe with several gateway
//! processes on one PostgreSQL: a job is claimed by one worker at a time for
//! a lease; a worker that dies loses its lease when it expires and the job is
//! claimed again. Completion is fenced by the lease (worker and attempt), so a
//! worker whose lease expired cannot complete a job someone else now holds.
//!
//! Claiming is one atomic statement: on PostgreSQL an `UPDATE … WHERE id IN
//! (SELECT … FOR UPDATE SKIP LOCKED)`, so racing workers take disjoint jobs
//! without waiting on each other; on SQLite the same `UPDATE … RETURNING`
//! inside `BEGIN IMMEDIATE` (SQLite has one writer at a time). Time is always
//! the caller's.

use jiff::{SignedDuration, Timestamp};
use sqlx::{AnyConnection, Row as _};

use crate::rows::{from_json, ms, opt_ts, to_json, ts};
use crate::script::{Script, Value, bind_all};
use crate::{Store, StoreError};

/// Most jobs one claim returns.
pub const CLAIM_LIMIT_MAX: u32 = 1_000;
/// Longest `last_error` kept, in bytes.
const ERROR_TEXT_MAX: usize = 2_000;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What the worker does (`trade.step`, `notify.channel`, …).
    pub kind: String,
    /// At most one job per key, ever: enqueueing a key again is a no-op.
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub run_at: Timestamp,
    /// Failed attempts before the job is dead (at least 1).
    pub max_attempts: u32,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting, or leased when `locked_until` is in the future.
    Queued,
    Done,
    /// Out of attempts; kept for inspection.
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    fn parse(text: &str) -> Option<JobState> {
        [JobState::Queued, JobState::Done, JobState::Dead]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A job as stored. A claimed job's `locked_by` and `attempts` are its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub run_at: Timestamp,
    /// Claims so far (this claim included).
    pub attempts: u32,
    pub max_attempts: u32,
    pub locked_by: Option<String>,
    pub locked_until: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFate {
    /// It runs again at this time.
    RetryAt(Timestamp),
    /// It is out of attempts.
    Dead,
}

#[derive(Debug, sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    dedupe_key: String,
    payload: String,
    state: String,
    run_at: i64,
    attempts: i64,
    max_attempts: i64,
    locked_by: Option<String>,
    locked_until: Option<i64>,
    last_error: Option<String>,
}

macro_rules! job_columns {
    () => {
        "id, kind, dedupe_key, payload, state, run_at, attempts, max_attempts, locked_by, \
         locked_until, last_error"
    };
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Job, StoreError> {
        let count = |n: i64| {
            u32::try_from(n).map_err(|_| StoreError::corrupt(format!("job {} count {n}", r.id)))
        };
        Ok(Job {
            id: r.id,
            kind: r.kind,
            dedupe_key: r.dedupe_key,
            payload: from_json("jobs.payload", &r.payload)?,
            state: JobState::parse(&r.state)
                .ok_or_else(|| StoreError::corrupt(format!("job state {:?}", r.state)))?,
            run_at: ts(r.run_at)?,
            attempts: count(r.attempts)?,
            max_attempts: count(r.max_attempts)?,
            locked_by: r.locked_by,
            locked_until: opt_ts(r.locked_until)?,
            last_error: r.last_error,
        })
    }
}

/// Enqueues in the caller's transaction; `None` when the dedupe key exists.
pub(crate) async fn enqueue_in(
    conn: &mut AnyConnection,
    job: &NewJob,
) -> Result<Option<i64>, StoreError> {
    let row = bind_all(sqlx::query(ENQUEUE), job_values(job)?)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Adds the enqueueing of `job` to `script`.
pub(crate) fn push_job(script: &mut Script, job: &NewJob) -> Result<(), StoreError> {
    script.push(ENQUEUE, job_values(job)?);
    Ok(())
}

/// `INSERT INTO jobs … SELECT` of a queued job from five SQL expressions
/// (kind, dedupe key, payload, run time, attempts); the statement goes on
/// with its `FROM` and conflict clause. Every job insert is written with it.
macro_rules! insert_job {
    ($kind:literal, $key:literal, $payload:literal, $run_at:literal, $attempts:literal) => {
        concat!(
            "INSERT INTO jobs (kind, dedupe_key, payload, state, run_at, attempts, \
             max_attempts, locked_by, locked_until, last_error, created_at, updated_at) SELECT ",
            $kind, ", ", $key, ", ", $payload, ", 'queued', ", $run_at, ", 0, ", $attempts,
            ", NULL, NULL, NULL, ", $run_at, ", ", $run_at
        )
    };
}
pub(crate) use insert_job;

/// Inserts a job unless its dedupe key exists; returns the new row number.
const ENQUEUE: &str = concat!(
    insert_job!("$1", "$2", "$3", "$4", "$5"),
    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id"
);

pub(crate) fn job_values(job: &NewJob) -> Result<Vec<Value>, StoreError> {
    Ok(vec![
        job.kind.clone().into(),
        job.dedupe_key.clone().into(),
        to_json(&job.payload)?.into(),
        ms(job.run_at).into(),
        i64::from(job.max_attempts.max(1)).into(),
    ])
}

/// Puts a finished or dead job back in the queue with fresh attempts.
pub(crate) async fn revive_in(
    conn: &mut AnyConnection,
    dedupe_key: &str,
    run_at: Timestamp,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, locked_by = NULL, \
         locked_until = NULL, updated_at = $2 \
         WHERE dedupe_key = $3 AND (state <> 'queued' OR run_at > $1)",
    )
    .bind(ms(run_at))
    .bind(now_ms)
    .bind(dedupe_key.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn clip(error: &str) -> String {
    let mut end = error.len().min(ERROR_TEXT_MAX);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].to_owned()
}

impl Store {
    /// Enqueues a job on its own; `None` when its dedupe key already exists.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Option<i64>, StoreError> {
        let job = job.clone();
        self.write(move |store| async move { store.enqueue_now(&job).await })
            .await
    }

    async fn enqueue_now(&self, job: &NewJob) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = enqueue_in(&mut tx, job).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims up to `limit` due jobs for `worker` until `now + lease`. Jobs
    /// whose lease expired are claimable again; jobs out of attempts whose
    /// lease expired are marked dead first.
    pub async fn claim(
        &self,
        worker: &str,
        now: Timestamp,
        lease: SignedDuration,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let worker = worker.to_owned();
        self.write(move |store| async move { store.claim_now(&worker, now, lease, limit).await })
            .await
    }

    async fn claim_now(
        &self,
        worker: &str,
        now: Timestamp,
        lease: SignedDuration,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let until = now
            .checked_add(lease)
            .map_err(|e| StoreError::Invalid(format!("lease {lease:?}: {e}")))?;
        let limit = i64::from(limit.clamp(1, CLAIM_LIMIT_MAX));
        let mut tx = self.begin_write().await?;
        // Jobs whose lease expired on their last attempt are dead, not stuck.
        let bury = self.sql(
            "UPDATE jobs SET state = 'dead', locked_by = NULL, locked_until = NULL, \
             last_error = COALESCE(last_error, 'lease expired on the last attempt'), \
             updated_at = $1 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' \
             AND attempts >= max_attempts AND locked_until IS NOT NULL AND locked_until < $1 \
             FOR UPDATE SKIP LOCKED)",
            "UPDATE jobs SET state = 'dead', locked_by = NULL, locked_until = NULL, \
             last_error = COALESCE(last_error, 'lease expired on the last attempt'), \
             updated_at = $1 WHERE state = 'queued' AND attempts >= max_attempts \
             AND locked_until IS NOT NULL AND locked_until < $1",
        );
        sqlx::query(bury).bind(ms(now)).execute(&mut *tx).await?;
        let claim = self.sql(
            concat!(
                "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1, \
                 updated_at = $3 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' \
                 AND run_at <= $3 AND (locked_until IS NULL OR locked_until < $3) \
                 AND attempts < max_attempts ORDER BY run_at, id LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) RETURNING ",
                job_columns!()
            ),
            concat!(
                "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1, \
                 updated_at = $3 WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' \
                 AND run_at <= $3 AND (locked_until IS NULL OR locked_until < $3) \
                 AND attempts < max_attempts ORDER BY run_at, id LIMIT $4) RETURNING ",
                job_columns!()
            ),
        );
        let rows: Vec<JobRow> = sqlx::query_as(claim)
            .bind(worker.to_owned())
            .bind(ms(until))
            .bind(ms(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut jobs = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    /// Marks a claimed job done. Fails with [`StoreError::LeaseLost`] when the
    /// lease is no longer this claim's.
    pub async fn complete(&self, job: &Job, now: Timestamp) -> Result<(), StoreError> {
        let job = job.clone();
        self.write(move |store| async move { store.complete_now(&job, now).await })
            .await
    }

    async fn complete_now(&self, job: &Job, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL, updated_at = $1 \
             WHERE id = $2 AND state = 'queued' AND locked_by = $3 AND attempts = $4",
        )
        .bind(ms(now))
        .bind(job.id)
        .bind(job.locked_by.clone())
        .bind(i64::from(job.attempts))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.fenced(done.rows_affected(), job)
    }

    /// Records a failed attempt: the job runs again at `retry_at`, or is dead
    /// when it has no attempts left.
    pub async fn fail(
        &self,
        job: &Job,
        error: &str,
        now: Timestamp,
        retry_at: Timestamp,
    ) -> Result<JobFate, StoreError> {
        let (job, error) = (job.clone(), error.to_owned());
        self.write(move |store| async move { store.fail_now(&job, &error, now, retry_at).await })
            .await
    }

    async fn fail_now(
        &self,
        job: &Job,
        error: &str,
        now: Timestamp,
        retry_at: Timestamp,
    ) -> Result<JobFate, StoreError> {
        let mut tx = self.begin_write().await?;
        let dead = job.attempts >= job.max_attempts;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, locked_by = NULL, locked_until = NULL, \
             last_error = $3, updated_at = $4 \
             WHERE id = $5 AND state = 'queued' AND locked_by = $6 AND attempts = $7",
        )
        .bind(if dead { "dead" } else { "queued" })
        .bind(ms(retry_at.max(now)))
        .bind(clip(error))
        .bind(ms(now))
        .bind(job.id)
        .bind(job.locked_by.clone())
        .bind(i64::from(job.attempts))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.fenced(done.rows_affected(), job)?;
        Ok(if dead {
            JobFate::Dead
        } else {
            JobFate::RetryAt(retry_at.max(now))
        })
    }

    /// Puts a claimed job back to run at `run_at` without counting the claim
    /// as an attempt (it was early, not failed).
    pub async fn reschedule(
        &self,
        job: &Job,
        run_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let job = job.clone();
        self.write(move |store| async move { store.reschedule_now(&job, run_at, now).await })
            .await
    }

    async fn reschedule_now(
        &self,
        job: &Job,
        run_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE jobs SET run_at = $1, attempts = attempts - 1, locked_by = NULL, \
             locked_until = NULL, updated_at = $2 \
             WHERE id = $3 AND state = 'queued' AND locked_by = $4 AND attempts = $5",
        )
        .bind(ms(run_at))
        .bind(ms(now))
        .bind(job.id)
        .bind(job.locked_by.clone())
        .bind(i64::from(job.attempts))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.fenced(done.rows_affected(), job)
    }

    fn fenced(&self, rows: u64, job: &Job) -> Result<(), StoreError> {
        if rows == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost {
                job: job.id,
                worker: job.locked_by.clone().unwrap_or_default(),
            })
        }
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Job::try_from).transpose()
    }

    pub async fn job_by_key(&self, dedupe_key: &str) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE dedupe_key = $1"
        ))
        .bind(dedupe_key.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Job::try_from).transpose()
    }

    /// Jobs in a state, oldest first (`limit` capped at 1000).
    pub async fn jobs_in_state(&self, state: JobState, limit: u32) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state = $1 ORDER BY run_at, id LIMIT $2"
        ))
        .bind(state.as_str())
        .bind(i64::from(limit.clamp(1, 1_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    /// How many queued jobs are due at `now` (a metric).
    pub async fn jobs_due(&self, now: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at <= $1 \
             AND (locked_until IS NULL OR locked_until < $1)",
        )
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        u64::try_from(n).map_err(StoreError::corrupt)
    }
}
