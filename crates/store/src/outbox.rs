//! The outbox of channel notifications (R7, issue item 7). A row is written in
//! the transaction of the trade change (a status a channel sees, or a refund
//! that went through) it reports, together with the job that delivers it;
//! one row per change (`(trade_id, notice_key)` is unique); delivery results update the row and the job in one
//! transaction, fenced by the job's lease.

use jianlian_alipay::api::trade::TradeStatus;
use jianlian_core::ids::TradeId;
use jianlian_core::notify::{
    OutboxMessage, OutboxStatus, RefundNotice, RetrySchedule, notification_fields,
};
use jianlian_core::trade::Trade;
use jiff::Timestamp;
use serde_json::json;
use sqlx::AnyConnection;

use crate::jobs::{Job, NewJob, enqueue_in};
use crate::rows::{app_id, from_json, ms, opt_ts, to_json, trade_id, ts};
use crate::{Store, StoreError};

/// The job kind that delivers one outbox row. Payload:
/// `{"outbox": id, "generation": g}` (a replay bumps the generation).
pub const NOTIFY_JOB: &str = "notify.channel";

/// Claims of one delivery job: the longest schedule's deliveries
/// (`RETRY_GAPS_MAX + 1`) plus a few for workers that crash mid-delivery.
const NOTIFY_JOB_ATTEMPTS_MAX: u32 = 40;

#[derive(Debug, sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    trade_id: i64,
    channel_app_id: String,
    notify_url: String,
    fields: String,
    status: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

macro_rules! outbox_columns {
    () => {
        "id, trade_id, channel_app_id, notify_url, fields, status, attempts, next_attempt_at, \
         last_error, created_at, delivered_at"
    };
}

impl TryFrom<OutboxRow> for OutboxMessage {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: r.id,
            trade: trade_id(r.trade_id)?,
            channel: app_id(&r.channel_app_id)?,
            notify_url: r.notify_url,
            fields: from_json("outbox.fields", &r.fields)?,
            status: OutboxStatus::parse(&r.status)
                .ok_or_else(|| StoreError::corrupt(format!("outbox status {:?}", r.status)))?,
            attempts: u32::try_from(r.attempts).map_err(StoreError::corrupt)?,
            next_attempt_at: opt_ts(r.next_attempt_at)?,
            last_error: r.last_error,
            created_at: ts(r.created_at)?,
            delivered_at: opt_ts(r.delivered_at)?,
        })
    }
}

fn notify_job(outbox: i64, generation: i64, run_at: Timestamp) -> NewJob {
    NewJob {
        kind: NOTIFY_JOB.to_owned(),
        dedupe_key: format!("{NOTIFY_JOB}:{outbox}:{generation}"),
        payload: json!({ "outbox": outbox, "generation": generation }),
        run_at,
        max_attempts: NOTIFY_JOB_ATTEMPTS_MAX,
    }
}

/// Queues the notification that `trade` is now `status` (once per status),
/// or, with `refund`, that one of its refunds went through (once per
/// refund; the fields carry the refund's), with its delivery job, in the
/// caller's transaction.
pub(crate) async fn insert_in(
    conn: &mut AnyConnection,
    trade: &Trade,
    status: TradeStatus,
    refund: Option<&RefundNotice>,
    now: Timestamp,
) -> Result<Option<i64>, StoreError> {
    let Some(url) = trade.notify_url.as_deref() else {
        return Ok(None);
    };
    let (key, notify_id) = match refund {
        None => (
            status.as_str().to_owned(),
            format!("{}_{}", trade.upstream_order_no, status.as_str()),
        ),
        Some(r) => (
            r.key(),
            format!("{}_refund_{}", trade.upstream_order_no, r.refund),
        ),
    };
    let mut fields = notification_fields(trade, status, &notify_id);
    if let Some(r) = refund {
        r.add_fields(&mut fields);
    }
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO outbox (trade_id, channel_app_id, trade_status, notice_key, notify_url, \
         fields, status, attempts, next_attempt_at, last_error, created_at, delivered_at, \
         generation) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, NULL, $7, NULL, 0) \
         ON CONFLICT (trade_id, notice_key) DO NOTHING RETURNING id",
    )
    .bind(trade.id.get())
    .bind(trade.channel.as_str().to_owned())
    .bind(status.as_str())
    .bind(key)
    .bind(url.to_owned())
    .bind(to_json(&fields)?)
    .bind(ms(now))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = id {
        // The row, not the job, decides when a message is dead (the schedule
        // is the gateway's configuration, passed in at each failure).
        enqueue_in(&mut *conn, &notify_job(id, 0, now)).await?;
    }
    Ok(id)
}

fn payload_id(job: &Job) -> Result<i64, StoreError> {
    job.payload
        .get("outbox")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| StoreError::corrupt(format!("job {} has no outbox id", job.id)))
}

impl Store {
    pub async fn outbox_message(&self, id: i64) -> Result<Option<OutboxMessage>, StoreError> {
        let row: Option<OutboxRow> = sqlx::query_as(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(OutboxMessage::try_from).transpose()
    }

    /// The notifications of a trade, oldest first.
    pub async fn outbox_of_trade(&self, trade: TradeId) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE trade_id = $1 ORDER BY id"
        ))
        .bind(trade.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(OutboxMessage::try_from).collect()
    }

    /// Messages in a status, oldest first (`limit` capped at 1000): dead
    /// letters to list, or pending ones to measure notification lag.
    pub async fn outbox_in_status(
        &self,
        status: OutboxStatus,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE status = $1 ORDER BY id LIMIT $2"
        ))
        .bind(status.as_str())
        .bind(i64::from(limit.clamp(1, 1_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(OutboxMessage::try_from).collect()
    }

    /// The channel answered `success` to the delivery `job` carried.
    pub async fn notification_delivered(
        &self,
        job: &Job,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let job = job.clone();
        self.write(move |store| async move { store.notification_delivered_now(&job, now).await })
            .await
    }

    async fn notification_delivered_now(
        &self,
        job: &Job,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let id = payload_id(job)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $1, \
             next_attempt_at = NULL WHERE id = $2 AND status = 'pending'",
        )
        .bind(ms(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        complete_in(&mut tx, job, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A delivery failed: the row waits for the schedule's next gap, or
    /// becomes a dead letter after the last. Returns the row's new status.
    pub async fn notification_failed(
        &self,
        job: &Job,
        error: &str,
        now: Timestamp,
        schedule: &RetrySchedule,
    ) -> Result<OutboxStatus, StoreError> {
        let (job, error, schedule) = (job.clone(), error.to_owned(), schedule.clone());
        self.write(move |store| async move {
            store
                .notification_failed_now(&job, &error, now, &schedule)
                .await
        })
        .await
    }

    async fn notification_failed_now(
        &self,
        job: &Job,
        error: &str,
        now: Timestamp,
        schedule: &RetrySchedule,
    ) -> Result<OutboxStatus, StoreError> {
        let id = payload_id(job)?;
        let mut tx = self.begin_write().await?;
        let attempts: i64 = sqlx::query_scalar(self.sql(
            "SELECT attempts FROM outbox WHERE id = $1 FOR UPDATE",
            "SELECT attempts FROM outbox WHERE id = $1",
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let failed = u32::try_from(attempts.saturating_add(1)).map_err(StoreError::corrupt)?;
        let next = schedule.next_attempt(failed, now);
        let status = if next.is_some() {
            OutboxStatus::Pending
        } else {
            OutboxStatus::Dead
        };
        sqlx::query(
            "UPDATE outbox SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4 \
             WHERE id = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(i64::from(failed))
        .bind(next.map(ms))
        .bind(error.chars().take(2_000).collect::<String>())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        match next {
            Some(at) => reschedule_in(&mut tx, job, at, now).await?,
            None => complete_in(&mut tx, job, now).await?,
        }
        tx.commit().await?;
        Ok(status)
    }

    /// Replays a dead letter: it is pending again with a fresh schedule and a
    /// new delivery job.
    pub async fn replay_dead_letter(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let generation: Option<i64> = sqlx::query_scalar(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
             generation = generation + 1 WHERE id = $2 AND status = 'dead' RETURNING generation",
        )
        .bind(ms(now))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let generation = generation.ok_or(StoreError::NotFound {
            what: "dead letter",
            key: id.to_string(),
        })?;
        enqueue_in(&mut tx, &notify_job(id, generation, now)).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Completes a job in the caller's transaction, fenced by its lease.
async fn complete_in(
    conn: &mut AnyConnection,
    job: &Job,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL, updated_at = $1 \
         WHERE id = $2 AND state = 'queued' AND locked_by = $3 AND attempts = $4",
    )
    .bind(ms(now))
    .bind(job.id)
    .bind(job.locked_by.clone())
    .bind(i64::from(job.attempts))
    .execute(&mut *conn)
    .await?;
    lease_held(done.rows_affected(), job)
}

/// Puts a job back for `run_at` in the caller's transaction, fenced by its lease.
async fn reschedule_in(
    conn: &mut AnyConnection,
    job: &Job,
    run_at: Timestamp,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, locked_by = NULL, locked_until = NULL, updated_at = $2 \
         WHERE id = $3 AND state = 'queued' AND locked_by = $4 AND attempts = $5",
    )
    .bind(ms(run_at))
    .bind(ms(now))
    .bind(job.id)
    .bind(job.locked_by.clone())
    .bind(i64::from(job.attempts))
    .execute(&mut *conn)
    .await?;
    lease_held(done.rows_affected(), job)
}

fn lease_held(rows: u64, job: &Job) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            job: job.id,
            worker: job.locked_by.clone().unwrap_or_default(),
        })
    }
}
