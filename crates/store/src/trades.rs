//! Trades: the idempotent intent insert and **the single write path**.
//!
//! [`Store::apply_observation`] is the only way a trade's state changes. It
//! reads the trade, runs the core's
//! [`jianlian_core::trade::apply_observation`], and writes atomically the new
//! row only if the version is still the one it read (compare-and-set), the
//! journals the change carries, the channel notification in the outbox, and
//! the closed loop's next step as a job. On SQLite the read and the write are
//! one transaction under the single writer; on PostgreSQL a change without an
//! outbox row is one statement whose parts hang on the compare-and-set (read
//! again and re-applied when another writer got there first), and one with
//! an outbox row a transaction that locks the row. State, books, outbox and
//! jobs therefore never disagree, whatever crashes when.

use jianlian_core::channel::Channel;
use jianlian_core::closed_loop::{self, plan};
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, ChannelOrderNo, TradeId, UpstreamOrderNo};
use jianlian_core::merchant::OnboardingState;
use jianlian_core::notify::RefundNotice;
use jianlian_core::trade::{Applied, Change, Observation, Trade, TradeIntent};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sqlx::AnyConnection;

use crate::jobs::{Job, JobState, NewJob, enqueue_in};
use crate::jobs::{insert_job, job_values, push_job};
use crate::ledger::{
    booked_twice, entry_values, insert_entries, insert_journal, journal_values, push_journal,
};
use crate::rows::{TradeRow, cancel_action_str, ms, to_json, trade_columns};
use crate::script::{Ran, Script, Value, run_sql};
use crate::sqlite_writer::Durability;
use crate::{Backend, CAS_ATTEMPTS_MAX, Store, StoreError};

/// The job kind that drives a trade's closed loop. Payload:
/// `{"trade": id, "version": v}`; a job whose version is no longer the
/// trade's is stale (a newer job exists) and is completed without action.
pub const TRADE_STEP_JOB: &str = "trade.step";

/// Attempts of a step job before it is dead (each attempt is one upstream
/// call that failed to be recorded; the sweeper revives dead ones).
const STEP_JOB_ATTEMPTS_MAX: u32 = 20;

/// How late a queued step job may run after its planned time and still count
/// as on schedule: a job whose attempt failed is retried some seconds later.
const STEP_JOB_SLACK: SignedDuration = SignedDuration::from_secs(60);

/// Whether a trade's step job will run its step without the sweeper: it is
/// running now (its lease has not expired), or it is queued with attempts
/// left and due by `due` (plus [`STEP_JOB_SLACK`]). A done or dead job, or
/// one out of attempts whose lease expired, is not.
fn step_job_on_schedule(job: &Job, due: Timestamp, now: Timestamp) -> bool {
    if job.state != JobState::Queued {
        return false;
    }
    let running = job.locked_until.is_some_and(|until| until > now);
    let latest = due.checked_add(STEP_JOB_SLACK).unwrap_or(due);
    running || (job.attempts < job.max_attempts && job.run_at <= latest)
}

/// The result of an idempotent insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted<T> {
    /// This call created it.
    Created(T),
    /// It already existed; here it is.
    Existing(T),
}

impl<T> Inserted<T> {
    pub fn into_inner(self) -> T {
        match self {
            Inserted::Created(t) | Inserted::Existing(t) => t,
        }
    }

    pub fn is_created(&self) -> bool {
        matches!(self, Inserted::Created(_))
    }
}

fn step_job(trade: &Trade, run_at: Timestamp) -> NewJob {
    NewJob {
        kind: TRADE_STEP_JOB.to_owned(),
        dedupe_key: format!("{TRADE_STEP_JOB}:{}:{}", trade.id, trade.version),
        payload: json!({ "trade": trade.id.get(), "version": trade.version }),
        run_at,
        max_attempts: STEP_JOB_ATTEMPTS_MAX,
    }
}

/// The intent insert of [`Store::insert_trade_intent`] for one backend:
/// `$from` yields the new row number as `n.id`, `$digits` formats it on at
/// least 12 digits (as [`UpstreamOrderNo::derive`] does).
macro_rules! insert_trade_sql {
    ($from:literal, $digits:literal) => {
        concat!(
            "INSERT INTO trades (id, kind, channel_app_id, merchant_id, smid, store_code, \
             terminal_id, channel_out_trade_no, upstream_out_trade_no, subject, total_amount, \
             notify_url, created_at, expires_at, state, cancel_action, state_since, flags, \
             fund_bills, progress, version) \
             SELECT n.id, $1, $2, $3, $4, $5, $6, $7, $8 || ",
            $digits,
            ", $9, $10, $11, $12, $13, $14, NULL, $12, $15, $16, $17, $18 FROM ",
            $from,
            " WHERE EXISTS (SELECT 1 FROM merchants m JOIN terminals t ON t.merchant_id = m.id \
             WHERE m.id = $3 AND m.state = $19 AND m.smid = $4 AND t.store_code = $5 \
             AND t.terminal_id = $6) \
             AND ($20 IS NULL OR EXISTS (SELECT 1 FROM channels c WHERE c.app_id = $2 \
             AND c.status = $20 AND c.public_key = $21 AND c.notify_hosts = $22)) \
             ON CONFLICT (channel_app_id, channel_out_trade_no) DO NOTHING \
             RETURNING id, upstream_out_trade_no"
        )
    };
}

/// What an intent written for a channel the caller did not read just now
/// checks of it (`$20` status, `$21` public key, `$22` notify hosts, as
/// stored): everything the request's authentication and checks used.
fn channel_stamp(channel: &Channel) -> Result<[String; 3], StoreError> {
    Ok([
        channel.status.as_str().to_owned(),
        channel.public_key.clone(),
        to_json(&channel.notify_hosts)?,
    ])
}

/// The intent's channel check values: all NULL (no check) without `seen`.
fn channel_values(seen: Option<&Channel>) -> Result<[Value; 3], StoreError> {
    Ok(match seen {
        None => [Value::Text(None), Value::Text(None), Value::Text(None)],
        Some(channel) => channel_stamp(channel)?.map(Value::from),
    })
}

/// The intent insert on each backend.
macro_rules! intent_sqlite {
    () => {
        insert_trade_sql!(
            "(SELECT MAX(COALESCE((SELECT MAX(id) FROM trades), 0), \
             COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'trades'), 0)) + 1 AS id) n",
            "printf('%012d', n.id)"
        )
    };
}
macro_rules! intent_postgres {
    () => {
        insert_trade_sql!(
            // The sequence of the identity column, as PostgreSQL names it.
            "(SELECT nextval('trades_id_seq') AS id) n",
            "CASE WHEN n.id >= 1000000000000 THEN CAST(n.id AS TEXT) \
             ELSE lpad(CAST(n.id AS TEXT), 12, '0') END"
        )
    };
}

const INTENT_SQLITE: &str = intent_sqlite!();
const INTENT_POSTGRES: &str = intent_postgres!();

/// The intent insert and, for the row it wrote (none: no job), the first
/// step job as [`step_job`] makes it (`$23` kind, `$24` time, `$25`
/// attempts); a contract test compares the two.
const INTENT_WITH_JOB_SQLITE: &str = concat!(
    intent_sqlite!(),
    "; ",
    insert_job!(
        "$23",
        "$23 || ':' || id || ':' || version",
        "json_object('trade', id, 'version', version)",
        "$24",
        "$25"
    ),
    " FROM trades WHERE id = last_insert_rowid() AND changes() = 1 \
     ON CONFLICT (dedupe_key) DO NOTHING"
);
const INTENT_WITH_JOB_POSTGRES: &str = concat!(
    "WITH t AS (",
    intent_postgres!(),
    "), j AS (",
    insert_job!(
        "$23",
        "$23 || ':' || t.id || ':' || $18",
        "json_build_object('trade', t.id, 'version', $18)::text",
        "$24",
        "$25"
    ),
    " FROM t ON CONFLICT (dedupe_key) DO NOTHING) SELECT id, upstream_out_trade_no FROM t"
);

/// A channel's trade by Alipay's `trade_no` (`$1` the channel, `$2` the
/// number).
const TRADE_BY_TRADE_NO: &str = concat!(
    "SELECT ",
    trade_columns!(),
    " FROM trades WHERE channel_app_id = $1 AND trade_no = $2 AND version > 0"
);

impl Store {
    /// Commits a trade intent before any upstream call (R4, issue item 6).
    /// The same `(channel, out_trade_no)` always names the same trade, so
    /// identical concurrent requests create exactly one; the others get
    /// [`Inserted::Existing`] (compare with [`TradeIntent::matches`]). The
    /// first closed-loop step is enqueued in the same transaction, so a trade
    /// whose answer is never recorded is still resolved.
    pub async fn insert_trade_intent(
        &self,
        intent: &TradeIntent,
    ) -> Result<Inserted<Trade>, StoreError> {
        self.insert_trade_intent_as(intent, None).await
    }

    /// As [`Store::insert_trade_intent`], for a request authenticated with
    /// `seen`, a copy of the channel the caller did not read just now: the
    /// intent is written only while the channel is still active with the
    /// same key and notify hosts, and [`StoreError::ChannelChanged`] says
    /// when it is not (the caller reads the channel and starts over).
    pub async fn insert_trade_intent_as(
        &self,
        intent: &TradeIntent,
        seen: Option<&Channel>,
    ) -> Result<Inserted<Trade>, StoreError> {
        let intent = intent.clone();
        let seen = seen.cloned();
        self.write(move |store| async move {
            store.insert_trade_intent_now(&intent, seen.as_ref()).await
        })
        .await
    }

    async fn insert_trade_intent_now(
        &self,
        intent: &TradeIntent,
        seen: Option<&Channel>,
    ) -> Result<Inserted<Trade>, StoreError> {
        intent.check()?;
        // Every column but the row number and the upstream order number
        // (which embeds it) is known before the insert, and so is the first
        // step job (its time does not depend on the row number).
        let draft = Trade::from_intent(crate::rows::trade_id(1)?, intent.clone(), &self.policy);
        let step = plan(&draft, &self.policy);
        let mut values: Vec<Value> = vec![
            draft.kind.as_str().into(),
            draft.channel.as_str().into(),
            draft.merchant.get().into(),
            draft.smid.as_str().into(),
            draft.store.as_str().into(),
            draft.terminal.as_str().into(),
            draft.channel_order_no.as_str().into(),
            UpstreamOrderNo::prefix(draft.created_at).into(),
            draft.subject.clone().into(),
            draft.total_amount.get().into(),
            draft.notify_url.clone().into(),
            ms(draft.created_at).into(),
            ms(draft.expires_at).into(),
            draft.state.as_str().into(),
            i64::from(draft.flags.bits()).into(),
            to_json(&draft.facts.fund_bills)?.into(),
            to_json(&draft.progress)?.into(),
            draft.version.into(),
            OnboardingState::Onboarded.as_str().into(),
        ];
        values.extend(channel_values(seen)?);
        // One write assigns the row number, writes the whole row with its
        // upstream order number, checks routing (R2.2, R3.2: the smid is the
        // merchant's own and onboarded, the store and terminal registered)
        // and enqueues the first step job for the new row: on SQLite one
        // round trip with its BEGIN and COMMIT, on PostgreSQL one statement.
        // No row back: the order number was taken, or routing failed; both
        // are told apart below.
        let ran = match step {
            Some(next) => {
                let job = step_job(&draft, next.due_at);
                values.extend([
                    Value::from(job.kind),
                    ms(job.run_at).into(),
                    i64::from(job.max_attempts).into(),
                ]);
                self.write_once(INTENT_WITH_JOB_POSTGRES, INTENT_WITH_JOB_SQLITE, values)
                    .await?
            }
            None => {
                self.write_once(INTENT_POSTGRES, INTENT_SQLITE, values)
                    .await?
            }
        };
        let Some(row) = ran.rows.first() else {
            return self.intent_refused(intent, seen).await;
        };
        let (id, upstream): (i64, String) = sqlx::FromRow::from_row(row)?;
        let trade = Trade::from_intent(crate::rows::trade_id(id)?, intent.clone(), &self.policy);
        if trade.upstream_order_no.as_str() != upstream {
            return Err(StoreError::corrupt(format!(
                "trade {id} got upstream order number {upstream}, expected {}",
                trade.upstream_order_no
            )));
        }
        Ok(Inserted::Created(trade))
    }

    /// Why an intent insert wrote nothing: the channel is no longer what
    /// the caller saw, routing refused it (the error says why), or the
    /// channel's order number already names a trade (returned; its write is
    /// durable, as the refused insert waited for the commit that holds it).
    async fn intent_refused(
        &self,
        intent: &TradeIntent,
        seen: Option<&Channel>,
    ) -> Result<Inserted<Trade>, StoreError> {
        if let Some(seen) = seen {
            // As stored, as the insert compared it.
            let now: Option<(String, String, String)> = sqlx::query_as(
                "SELECT status, public_key, notify_hosts FROM channels WHERE app_id = $1",
            )
            .bind(seen.app_id.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await?;
            let [status, key, hosts] = channel_stamp(seen)?;
            if now != Some((status, key, hosts)) {
                return Err(StoreError::ChannelChanged(seen.app_id.to_string()));
            }
        }
        {
            let mut conn = self.pool.acquire().await?;
            check_routing_in(&mut conn, intent).await?;
        }
        let existing = self
            .trade_by_channel_order(&intent.channel, &intent.channel_order_no)
            .await?
            .ok_or_else(|| StoreError::Contended {
                what: "trade",
                key: format!("{}/{}", intent.channel, intent.channel_order_no),
                attempts: 1,
            })?;
        Ok(Inserted::Existing(existing))
    }

    pub async fn trade(&self, id: TradeId) -> Result<Option<Trade>, StoreError> {
        let row: Option<TradeRow> = sqlx::query_as(concat!(
            "SELECT ",
            trade_columns!(),
            " FROM trades WHERE id = $1 AND version > 0"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Trade::try_from).transpose()
    }

    /// The trade a channel knows by its `out_trade_no`.
    pub async fn trade_by_channel_order(
        &self,
        channel: &AppId,
        order_no: &ChannelOrderNo,
    ) -> Result<Option<Trade>, StoreError> {
        let row: Option<TradeRow> = sqlx::query_as(concat!(
            "SELECT ",
            trade_columns!(),
            " FROM trades WHERE channel_app_id = $1 AND channel_out_trade_no = $2 AND version > 0"
        ))
        .bind(channel.as_str().to_owned())
        .bind(order_no.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Trade::try_from).transpose()
    }

    /// The trade Alipay knows by the gateway's `out_trade_no` (notifications).
    pub async fn trade_by_upstream_order(
        &self,
        order_no: &UpstreamOrderNo,
    ) -> Result<Option<Trade>, StoreError> {
        let row: Option<TradeRow> = sqlx::query_as(concat!(
            "SELECT ",
            trade_columns!(),
            " FROM trades WHERE upstream_out_trade_no = $1"
        ))
        .bind(order_no.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Trade::try_from).transpose()
    }

    /// A channel's trade by Alipay's `trade_no` (the channel's
    /// `alipay.trade.query` by `trade_no`), found by the `trades_trade_no`
    /// index.
    pub async fn trade_by_trade_no(
        &self,
        channel: &AppId,
        trade_no: &str,
    ) -> Result<Option<Trade>, StoreError> {
        let row: Option<TradeRow> = sqlx::query_as(TRADE_BY_TRADE_NO)
            .bind(channel.as_str().to_owned())
            .bind(trade_no.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Trade::try_from).transpose()
    }

    /// Rows per business table, for operators and for tests that prove a
    /// refused request wrote nothing.
    pub async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        const TABLES: [(&str, &str); 12] = [
            ("channels", "SELECT COUNT(*) FROM channels"),
            ("merchants", "SELECT COUNT(*) FROM merchants"),
            ("stores", "SELECT COUNT(*) FROM stores"),
            ("terminals", "SELECT COUNT(*) FROM terminals"),
            ("trades", "SELECT COUNT(*) FROM trades"),
            ("refunds", "SELECT COUNT(*) FROM refunds"),
            ("journals", "SELECT COUNT(*) FROM journals"),
            ("outbox", "SELECT COUNT(*) FROM outbox"),
            ("jobs", "SELECT COUNT(*) FROM jobs"),
            (
                "trade_versions",
                "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM trades",
            ),
            (
                "merchant_versions",
                "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM merchants",
            ),
            (
                "refund_versions",
                "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM refunds",
            ),
        ];
        let mut counts = Vec::with_capacity(TABLES.len());
        for (name, sql) in TABLES {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
            counts.push((name, n));
        }
        Ok(counts)
    }

    /// Trades of some channels (the visibility rule's result), newest first
    /// (`limit` capped at 1000).
    pub async fn trades_of_channels(
        &self,
        channels: &[AppId],
        limit: u32,
    ) -> Result<Vec<Trade>, StoreError> {
        let limit = limit.clamp(1, 1_000);
        let mut trades = Vec::new();
        for channel in channels {
            let rows: Vec<TradeRow> = sqlx::query_as(concat!(
                "SELECT ",
                trade_columns!(),
                " FROM trades WHERE channel_app_id = $1 AND version > 0 ORDER BY id DESC LIMIT $2"
            ))
            .bind(channel.as_str().to_owned())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                trades.push(Trade::try_from(row)?);
            }
        }
        trades.sort_by_key(|t| std::cmp::Reverse(t.id));
        trades.truncate(usize::try_from(limit).unwrap_or(1_000));
        Ok(trades)
    }

    /// How many trades are in each state (a metric), by state name.
    pub async fn trade_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM trades WHERE version > 0 GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(state, n)| Ok((state, u64::try_from(n).map_err(StoreError::corrupt)?)))
            .collect()
    }

    /// Trades the closed loop has not resolved yet, oldest expiry first.
    pub async fn unresolved_trades(&self, limit: u32) -> Result<Vec<Trade>, StoreError> {
        let rows: Vec<TradeRow> = sqlx::query_as(concat!(
            "SELECT ",
            trade_columns!(),
            " FROM trades WHERE state IN ('created', 'unknown', 'paying') AND version > 0 \
             ORDER BY expires_at, id LIMIT $1"
        ))
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Trade::try_from).collect()
    }

    /// The sweeper: unresolved trades past their deadline
    /// ([`closed_loop::deadline`]) at `now`.
    pub async fn overdue_trades(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Trade>, StoreError> {
        let trades = self.unresolved_trades(limit).await?;
        Ok(trades
            .into_iter()
            .filter(|t| closed_loop::is_overdue(t, &self.policy, now))
            .collect())
    }

    /// The sweeper's remedy: makes sure the trade's current step job is
    /// queued (reviving it if it died), due at `now` at the latest. Returns
    /// whether it had to: a trade that needs nothing, or whose step job is
    /// alive and on schedule (running now, or queued with attempts left and
    /// due within `STEP_JOB_SLACK` (a minute) of the planned step, such as a cancel
    /// backing off while Alipay is down), is left alone, so an overdue trade
    /// that is being worked on is not re-queued at every sweep.
    pub async fn requeue_trade_step(
        &self,
        id: TradeId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(trade) = self.trade(id).await? else {
            return Err(StoreError::NotFound {
                what: "trade",
                key: id.to_string(),
            });
        };
        let Some(next) = plan(&trade, &self.policy) else {
            return Ok(false);
        };
        let job = step_job(&trade, next.due_at.min(now));
        if let Some(current) = self.job_by_key(&job.dedupe_key).await?
            && step_job_on_schedule(&current, next.due_at.max(now), now)
        {
            return Ok(false);
        }
        let mut tx = self.begin_write().await?;
        if enqueue_in(&mut tx, &job).await?.is_none() {
            crate::jobs::revive_in(&mut tx, &job.dedupe_key, job.run_at, ms(now)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// **The single write path for trade state.** Applies `observation` at
    /// `now`; returns the trade as it now is and whether it changed.
    pub async fn apply_observation(
        &self,
        id: TradeId,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<(Trade, bool), StoreError> {
        let observation = observation.clone();
        self.write(
            move |store| async move { store.apply_observation_now(id, &observation, now).await },
        )
        .await
    }

    /// The single write path in one write, for the caller that holds
    /// `trade` as it is stored (the request that created it) and the
    /// merchant's fee rates `fees`: `observation` is applied to that copy,
    /// and the change is written only if the row is still at the copy's
    /// version and the rates are still `fees`, both checked by the write
    /// itself. `None` when the copy or the rates were stale: nothing was
    /// written, use [`Store::apply_observation`]. What the copy alone
    /// cannot decide (an observation it refuses or ignores, a change that
    /// queues a notification) goes the way of [`Store::apply_observation`].
    /// The one write returns once committed, before its disk sync (SQLite)
    /// or log flush (PostgreSQL): the first step job, durable with the
    /// intent, stands behind it.
    pub async fn apply_observation_to(
        &self,
        trade: &Trade,
        fees: FeePolicy,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<Option<(Trade, bool)>, StoreError> {
        let (trade, observation) = (trade.clone(), observation.clone());
        self.write(move |store| async move {
            store
                .apply_observation_to_now(&trade, fees, &observation, now)
                .await
        })
        .await
    }

    async fn apply_observation_to_now(
        &self,
        trade: &Trade,
        fees: FeePolicy,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<Option<(Trade, bool)>, StoreError> {
        // An observation the copy refuses may suit the stored row.
        let change = match jianlian_core::trade::apply_observation(trade, observation, now, fees) {
            Ok(Applied::Changed(change)) if !queues_notice(&change) => *change,
            _ => {
                return self
                    .apply_observation_now(trade.id, observation, now)
                    .await
                    .map(Some);
            }
        };
        // The backend's one write: on SQLite a script that fails when the
        // set wrote nothing, on PostgreSQL a statement that returns a row
        // when it wrote.
        let (sql, values) = match self.backend {
            Backend::Sqlite => unlocked_change_script(&self.policy, trade, &change, fees)?.joined(),
            Backend::Postgres => change_statement(
                &self.policy,
                trade,
                &change,
                Some(fees),
                Durability::Deferred,
            )?,
        };
        // Deferred: it returns before its disk sync (SQLite's writer) or
        // log flush (PostgreSQL's asynchronous commit). A crash in that
        // moment loses at most this change, which queues no notification
        // and which nothing durable can have read (every later synced
        // commit syncs it too). The trade's durable intent and first step
        // job then learn the outcome again from Alipay.
        let written = match self
            .write_once_as(Durability::Deferred, &sql, &sql, values)
            .await
        {
            Ok(ran) => self.backend == Backend::Sqlite || !ran.rows.is_empty(),
            Err(e) if stale_write(&e) => false,
            Err(e) => return Err(booked_twice(e, "a journal of trade", &trade.id.to_string())),
        };
        Ok(written.then_some((change.trade, true)))
    }

    async fn apply_observation_now(
        &self,
        id: TradeId,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<(Trade, bool), StoreError> {
        for _ in 0..CAS_ATTEMPTS_MAX {
            let applied = match self.backend {
                Backend::Sqlite => self.apply_locked(id, observation, now).await?,
                Backend::Postgres => self.apply_optimistically(id, observation, now).await?,
            };
            // None: another writer got there first; read again and re-apply.
            if let Some(applied) = applied {
                return Ok(applied);
            }
        }
        Err(StoreError::Contended {
            what: "trade",
            key: id.to_string(),
            attempts: CAS_ATTEMPTS_MAX,
        })
    }

    /// One attempt with the trade locked from the read to the commit. On
    /// SQLite the read goes with the BEGIN and a change without an outbox
    /// row (most answers) with the COMMIT: two round trips.
    async fn apply_locked(
        &self,
        id: TradeId,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<Option<(Trade, bool)>, StoreError> {
        let (mut tx, ran) = self
            .begin_write_with(TRADE_FOR_UPDATE, TRADE_WITH_FEES, vec![id.get().into()])
            .await?;
        let (trade, fees) = locked_trade(id, &ran)?;
        let change = match jianlian_core::trade::apply_observation(&trade, observation, now, fees)?
        {
            Applied::NoOp => {
                tx.rollback().await?;
                return Ok(Some((trade, false)));
            }
            Applied::Changed(change) => *change,
        };
        if queues_notice(&change) {
            return match write_change_in(&mut tx, &self.policy, &trade, change, now, None).await? {
                Write::Changed { trade, .. } => {
                    tx.commit().await?;
                    Ok(Some((*trade, true)))
                }
                Write::Stale | Write::NoOp => {
                    tx.rollback().await?;
                    Ok(None)
                }
            };
        }
        let script = change_script(&self.policy, &trade, &change)?;
        let ran = tx
            .commit_with(script)
            .await
            .map_err(|e| booked_twice(e, "a journal of trade", &id.to_string()))?;
        Ok((!ran.first_wrote_nothing()).then_some((change.trade, true)))
    }

    /// One attempt on PostgreSQL without a transaction: read, then write the
    /// whole change in one statement whose every part hangs on the
    /// compare-and-set of the row (two round trips instead of six). A change
    /// that queues a notification goes the locked way.
    async fn apply_optimistically(
        &self,
        id: TradeId,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<Option<(Trade, bool)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let ran = run_sql(
            &mut conn,
            TRADE_WITH_FEES.to_owned(),
            vec![id.get().into()],
            0,
        )
        .await?;
        let (trade, fees) = locked_trade(id, &ran)?;
        let change = match jianlian_core::trade::apply_observation(&trade, observation, now, fees)?
        {
            Applied::NoOp => return Ok(Some((trade, false))),
            Applied::Changed(change) => *change,
        };
        if queues_notice(&change) {
            drop(conn);
            return self.apply_locked(id, observation, now).await;
        }
        let (sql, values) =
            change_statement(&self.policy, &trade, &change, None, Durability::Synced)?;
        let ran = run_sql(&mut conn, sql, values, 0)
            .await
            .map_err(|e| booked_twice(e, "a journal of trade", &id.to_string()))?;
        Ok((!ran.rows.is_empty()).then_some((change.trade, true)))
    }
}

/// Whether writing `change` queues a notification to the channel (an
/// outbox row, whose delivery job needs the row's number).
fn queues_notice(change: &Change) -> bool {
    change.notice.is_some() && change.trade.notify_url.is_some()
}

/// A trade row with its merchant's fee rates (one round trip where a change
/// may book a fee).
#[derive(sqlx::FromRow)]
struct TradeFeesRow {
    #[sqlx(flatten)]
    trade: TradeRow,
    fee_rate_ppm: i64,
    credit_fee_rate_ppm: Option<i64>,
}

/// Reads a trade with its merchant's fee rates (`$1` the trade). The
/// `FOR UPDATE` form (PostgreSQL) locks only the trade's row; on SQLite the
/// writer's lock covers the database.
macro_rules! trade_with_fees_sql {
    ($lock:literal) => {
        concat!(
            "SELECT ",
            trade_columns!(),
            ", (SELECT fee_rate_ppm FROM merchants m WHERE m.id = trades.merchant_id) \
             AS fee_rate_ppm, \
             (SELECT credit_fee_rate_ppm FROM merchants m WHERE m.id = trades.merchant_id) \
             AS credit_fee_rate_ppm FROM trades WHERE id = $1 AND version > 0",
            $lock
        )
    };
}
const TRADE_FOR_UPDATE: &str = trade_with_fees_sql!(" FOR UPDATE");
const TRADE_WITH_FEES: &str = trade_with_fees_sql!("");

/// The trade (and fee rates) a lock read returned.
fn locked_trade(id: TradeId, ran: &Ran) -> Result<(Trade, FeePolicy), StoreError> {
    let row = ran.rows.first().ok_or(StoreError::NotFound {
        what: "trade",
        key: id.to_string(),
    })?;
    let row: TradeFeesRow = sqlx::FromRow::from_row(row)?;
    let fees = fee_policy(row.fee_rate_ppm, row.credit_fee_rate_ppm)?;
    Ok((Trade::try_from(row.trade)?, fees))
}

impl Store {
    /// Locks and reads a trade in the caller's transaction, with its
    /// merchant's fee rates read in the same statement.
    pub(crate) async fn lock_trade_in(
        &self,
        conn: &mut AnyConnection,
        id: TradeId,
    ) -> Result<(Trade, FeePolicy), StoreError> {
        let sql = self.sql(TRADE_FOR_UPDATE, TRADE_WITH_FEES);
        let ran = run_sql(conn, sql.to_owned(), vec![id.get().into()], 0).await?;
        locked_trade(id, &ran)
    }
}

/// What a write of a trade change did.
pub(crate) enum Write {
    NoOp,
    /// The row moved on since it was read.
    Stale,
    Changed {
        trade: Box<Trade>,
        /// Whether a notification to the channel was queued with it.
        notified: bool,
    },
}

/// Runs the core transition on `trade` (read in this transaction) and writes
/// the change with its journals, outbox row and next step job. `refund` is
/// the refund that caused the change (the last one, closing the trade): its
/// fields go into the notification, as in Alipay's.
pub(crate) async fn apply_in(
    conn: &mut AnyConnection,
    policy: &jianlian_core::closed_loop::LoopPolicy,
    trade: &Trade,
    fees: FeePolicy,
    observation: &Observation,
    now: Timestamp,
    refund: Option<&RefundNotice>,
) -> Result<Write, StoreError> {
    match jianlian_core::trade::apply_observation(trade, observation, now, fees)? {
        Applied::NoOp => Ok(Write::NoOp),
        Applied::Changed(change) => {
            write_change_in(conn, policy, trade, *change, now, refund).await
        }
    }
}

/// Writes `change` of `trade` in the caller's transaction: the row
/// (compare-and-set on the version read), its journals and next step job
/// (one round trip on SQLite), then its outbox row.
async fn write_change_in(
    conn: &mut AnyConnection,
    policy: &jianlian_core::closed_loop::LoopPolicy,
    trade: &Trade,
    change: Change,
    now: Timestamp,
    refund: Option<&RefundNotice>,
) -> Result<Write, StoreError> {
    let ran = change_script(policy, trade, &change)?
        .run(&mut *conn)
        .await
        .map_err(|e| booked_twice(e, "a journal of trade", &trade.id.to_string()))?;
    if ran.first_wrote_nothing() {
        return Ok(Write::Stale);
    }
    let mut notified = false;
    if let Some(notice) = change.notice {
        notified = crate::outbox::insert_in(&mut *conn, &change.trade, notice.status, refund, now)
            .await?
            .is_some();
    }
    Ok(Write::Changed {
        trade: Box::new(change.trade),
        notified,
    })
}

/// The statements of `change` but its outbox row: the row, compare-and-set
/// on the version read (first, [`Script::guarded`]), its journals and the
/// next step job.
fn change_script(
    policy: &jianlian_core::closed_loop::LoopPolicy,
    trade: &Trade,
    change: &Change,
) -> Result<Script, StoreError> {
    let script = Script::guarded(UPDATE_TRADE, update_values(&change.trade, trade.version)?);
    change_script_after(script, policy, change)
}

/// As [`change_script`] for a copy of the row that is not locked: the set
/// also needs the merchant's rates to be `fees`, and the script stops
/// ([`STOP_IF_STALE`]) when it wrote nothing.
fn unlocked_change_script(
    policy: &jianlian_core::closed_loop::LoopPolicy,
    trade: &Trade,
    change: &Change,
    fees: FeePolicy,
) -> Result<Script, StoreError> {
    let mut values = update_values(&change.trade, trade.version)?;
    values.extend(rate_values(fees));
    let mut script = Script::guarded(UPDATE_TRADE_AT_RATES, values);
    script.push(STOP_IF_STALE, vec![]);
    change_script_after(script, policy, change)
}

/// The journals and next step job of `change`, after the row's set.
fn change_script_after(
    mut script: Script,
    policy: &jianlian_core::closed_loop::LoopPolicy,
    change: &Change,
) -> Result<Script, StoreError> {
    for journal in &change.journals {
        push_journal(&mut script, journal);
    }
    if let Some(next) = plan(&change.trade, policy) {
        push_job(&mut script, &step_job(&change.trade, next.due_at))?;
    }
    Ok(script)
}

/// R2.2 and R3.2, enforced where the intent is written: the smid is the
/// merchant's own and onboarded, and the store and terminal are registered.
async fn check_routing_in(
    conn: &mut AnyConnection,
    intent: &TradeIntent,
) -> Result<(), StoreError> {
    // Which channel may route the merchant (itself or a parent channel) is
    // the visibility rule, applied by the caller with the channel tree.
    let merchant: Option<(Option<String>, String)> =
        sqlx::query_as("SELECT smid, state FROM merchants WHERE id = $1")
            .bind(intent.merchant.get())
            .fetch_optional(&mut *conn)
            .await?;
    let Some((smid, state)) = merchant else {
        return Err(StoreError::NotFound {
            what: "merchant",
            key: intent.merchant.to_string(),
        });
    };
    if state != OnboardingState::Onboarded.as_str() || smid.as_deref() != Some(intent.smid.as_str())
    {
        return Err(StoreError::Invalid(format!(
            "sub_merchant_id {} is not the onboarded smid of merchant {}",
            intent.smid, intent.merchant
        )));
    }
    let registered: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM terminals WHERE merchant_id = $1 AND store_code = $2 AND terminal_id = $3",
    )
    .bind(intent.merchant.get())
    .bind(intent.store.as_str().to_owned())
    .bind(intent.terminal.as_str().to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    if registered.is_none() {
        return Err(StoreError::NotFound {
            what: "store_id/terminal_id",
            key: format!(
                "{}/{} of merchant {}",
                intent.store, intent.terminal, intent.merchant
            ),
        });
    }
    Ok(())
}

/// A merchant's fee rates as stored (parts per million).
fn fee_policy(rate_ppm: i64, credit_ppm: Option<i64>) -> Result<FeePolicy, StoreError> {
    let to_rate = |ppm: i64| {
        u32::try_from(ppm)
            .ok()
            .and_then(|p| jianlian_alipay::Rate::from_ppm(p).ok())
            .ok_or_else(|| StoreError::corrupt(format!("fee rate {ppm} ppm")))
    };
    Ok(FeePolicy {
        rate: to_rate(rate_ppm)?,
        credit_rate: credit_ppm.map(to_rate).transpose()?,
    })
}

/// [`change_script`] as one PostgreSQL statement: the row's
/// compare-and-set, and the journals and step job selected from its result,
/// so that nothing is written unless the row was. Returns a row when it was.
/// [`Durability::Deferred`]: its commit does not wait for the server's log
/// flush (`synchronous_commit` off for its own transaction).
fn change_statement(
    policy: &jianlian_core::closed_loop::LoopPolicy,
    trade: &Trade,
    change: &Change,
    at_rates: Option<FeePolicy>,
    durability: Durability,
) -> Result<(String, Vec<Value>), StoreError> {
    use std::fmt::Write as _;
    let mut values = update_values(&change.trade, trade.version)?;
    let update = match at_rates {
        None => UPDATE_TRADE,
        Some(fees) => {
            values.extend(rate_values(fees));
            UPDATE_TRADE_AT_RATES
        }
    };
    let mut sql = format!("WITH u AS ({update} RETURNING id)");
    // Placeholders for `n` more values, numbered after those so far.
    let next = |values: &Vec<Value>, n: usize| -> String {
        (values.len() + 1..=values.len() + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, journal) in change.journals.iter().enumerate() {
        let head = journal_values(journal);
        let _ = write!(
            sql,
            concat!(
                ", j{} AS (",
                insert_journal!(),
                "SELECT {} FROM u RETURNING id)"
            ),
            i,
            next(&values, head.len())
        );
        values.extend(head);
        let mut rows = Vec::new();
        for entry in journal.entries() {
            let entry_values = entry_values(entry);
            rows.push(format!("({})", next(&values, entry_values.len())));
            values.extend(entry_values);
        }
        let _ = write!(
            sql,
            concat!(
                ", e{i} AS (",
                insert_entries!(),
                "SELECT j{i}.id, v.account, v.side, v.amount FROM j{i}, (VALUES {rows}) \
                 AS v (account, side, amount))"
            ),
            i = i,
            rows = rows.join(", ")
        );
    }
    if let Some(step) = plan(&change.trade, policy) {
        let job = job_values(&step_job(&change.trade, step.due_at))?;
        let _ = write!(
            sql,
            concat!(
                ", k AS (",
                insert_job!(
                    "v.kind",
                    "v.dedupe_key",
                    "v.payload",
                    "v.run_at",
                    "v.attempts"
                ),
                " FROM u, (VALUES ({})) AS v (kind, dedupe_key, payload, run_at, attempts) \
                 ON CONFLICT (dedupe_key) DO NOTHING)"
            ),
            next(&values, job.len())
        );
        values.extend(job);
    }
    sql.push_str(match durability {
        Durability::Synced => " SELECT id FROM u",
        Durability::Deferred => SELECT_U_COMMITTING_ASYNC,
    });
    Ok((sql, values))
}

/// The end of a deferred [`change_statement`]: `synchronous_commit` off,
/// local to the statement's own transaction (its setting is read at the
/// commit, and the connection's is back to the server's after it).
const SELECT_U_COMMITTING_ASYNC: &str =
    " SELECT u.id FROM u CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS d";

/// Writes every mutable column of a trade if the row is still at the
/// version read (values: [`update_values`]), and `$also`.
macro_rules! update_trade_sql {
    ($also:literal) => {
        concat!(
            "UPDATE trades SET upstream_out_trade_no = $1, expires_at = $2, \
             state = $3, cancel_action = $4, state_since = $5, flags = $6, trade_no = $7, \
             buyer_user_id = $8, buyer_logon_id = $9, receipt_amount = $10, buyer_pay_amount = $11, \
             paid_at = $12, fund_bills = $13, failure = $14, unknown_reason = $15, progress = $16, \
             fee = $17, fee_amount = $18, version = $19 WHERE id = $20 AND version = $21",
            $also
        )
    };
}
const UPDATE_TRADE: &str = update_trade_sql!("");
/// [`UPDATE_TRADE`] that also needs the merchant's fee rates to be the ones
/// the change was computed with ([`rate_values`]).
const UPDATE_TRADE_AT_RATES: &str = update_trade_sql!(
    " AND EXISTS (SELECT 1 FROM merchants m WHERE m.id = trades.merchant_id \
     AND m.fee_rate_ppm = $22 AND COALESCE(m.credit_fee_rate_ppm, -1) = $23)"
);

/// `$22`, `$23` of [`UPDATE_TRADE_AT_RATES`] (-1: no credit rate).
fn rate_values(fees: FeePolicy) -> [Value; 2] {
    [
        i64::from(fees.rate.ppm()).into(),
        fees.credit_rate.map_or(-1, |r| i64::from(r.ppm())).into(),
    ]
}

/// On SQLite, stops a script whose compare-and-set wrote nothing: the row
/// it inserts then fails the `stale_write` check (SQLite migration 0003), which
/// ends the script with an error and rolls back its savepoint.
const STOP_IF_STALE: &str = "INSERT INTO stale_writes (refused) SELECT 1 WHERE changes() = 0";

/// Whether `e` is [`STOP_IF_STALE`]'s refusal.
fn stale_write(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains("stale_write"))
}

fn update_values(trade: &Trade, expected: i64) -> Result<Vec<Value>, StoreError> {
    let facts = &trade.facts;
    Ok(vec![
        trade.upstream_order_no.as_str().into(),
        ms(trade.expires_at).into(),
        trade.state.as_str().into(),
        cancel_action_str(trade.state).map(str::to_owned).into(),
        ms(trade.state_since).into(),
        i64::from(trade.flags.bits()).into(),
        facts.trade_no.clone().into(),
        facts.buyer_user_id.clone().into(),
        facts.buyer_logon_id.clone().into(),
        facts.receipt_amount.map(|f| f.get()).into(),
        facts.buyer_pay_amount.map(|f| f.get()).into(),
        facts.paid_at.map(ms).into(),
        to_json(&facts.fund_bills)?.into(),
        facts.failure.as_ref().map(to_json).transpose()?.into(),
        facts.unknown_reason.clone().into(),
        to_json(&trade.progress)?.into(),
        trade.fee.as_ref().map(to_json).transpose()?.into(),
        trade.fee.map(|f| f.fee.get()).into(),
        trade.version.into(),
        trade.id.get().into(),
        expected.into(),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::Connection as _;

    /// A channel's query by `trade_no` reads the index, not the channel's
    /// trades: on a migrated SQLite database with no statistics, as a new
    /// gateway has.
    #[tokio::test]
    async fn a_query_by_trade_no_uses_its_index() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::migrate!("migrations/sqlite")
            .run(&mut conn)
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::TRADE_BY_TRADE_NO
        )))
        .bind("2021000000000001")
        .bind("2026120722001400000000000001")
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert_eq!(
            steps,
            ["SEARCH trades USING INDEX trades_trade_no (trade_no=? AND channel_app_id=?)"]
        );
    }

    /// A deferred answer commits asynchronously on its own: the setting
    /// does not outlive its statement on the pooled connection.
    #[tokio::test]
    async fn an_async_commit_ends_with_its_statement() {
        let Ok(url) = std::env::var("JIANLIAN_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "JIANLIAN_TEST_POSTGRES_URL must be set under CI"
            );
            eprintln!("JIANLIAN_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
            return;
        };
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let setting = "SELECT current_setting('synchronous_commit')";
        let before: String = sqlx::query_scalar(setting)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let sql = format!(
            "WITH u AS (SELECT $1::bigint AS id){}",
            super::SELECT_U_COMMITTING_ASYNC
        );
        // A constant of this module after a fixed head.
        let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .bind(7_i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(id, 7);
        let after: String = sqlx::query_scalar(setting)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((before.as_str(), after.as_str()), ("on", "on"));
        // The statement turns it off for the transaction it runs in (its
        // own in autocommit; here an explicit one, to look before the end).
        let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .bind(7_i64)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let inside: String = sqlx::query_scalar(setting)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(inside, "off");
        let after: String = sqlx::query_scalar(setting)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(after, "on");
    }
}
