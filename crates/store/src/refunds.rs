//! Refunds: the atomic reservation that keeps cumulative refunds within the
//! paid amount under any concurrency, and refund outcomes written with their
//! journal, the channel's refund notification and, when refunds reach the
//! total, the trade's change, in one transaction.
//!
//! Both operations lock the trade first (PostgreSQL `FOR UPDATE`; SQLite's
//! `BEGIN IMMEDIATE`), so all refund writes of one trade are serialised and
//! the "held amounts + this one ≤ total" check cannot race.

use jianlian_alipay::Fen;
use jianlian_core::fees::RefundedSoFar;
use jianlian_core::ids::{RefundId, RefundRequestNo, TradeId};
use jianlian_core::notify::RefundNotice;
use jianlian_core::refund::{
    Refund, RefundApplied, RefundError, RefundObservation, RefundRequest, RefundState,
    apply_refund_observation, check_refund,
};
use jianlian_core::trade::Observation;
use jiff::{SignedDuration, Timestamp};
use sqlx::AnyConnection;

use crate::jobs::{NewJob, enqueue_in};
use crate::rows::{RefundRow, ms, refund_columns, to_json};
use crate::trades::{Write, apply_in};
use crate::{CAS_ATTEMPTS_MAX, Store, StoreError};

/// The job kind that confirms a refund whose outcome is not known. Payload:
/// `{"refund": id, "version": v}`; stale when the refund's version moved on.
/// The worker queries the refund (`alipay.trade.fastpay.refund.query`) and, if
/// Alipay did not receive it, sends the same request again (apis.md §2.7–2.8).
pub const REFUND_CONFIRM_JOB: &str = "refund.confirm";

/// A reserved refund is confirmed this long after the request if no answer
/// was recorded (the gateway died mid-call).
const REFUND_ANSWER_GRACE: SignedDuration = SignedDuration::from_secs(30);
/// Alipay asks for at least 10 s between a refund and its query.
const REFUND_QUERY_DELAY: SignedDuration = SignedDuration::from_secs(10);
const REFUND_JOB_ATTEMPTS_MAX: u32 = 20;

fn confirm_job(refund: &Refund, run_at: Timestamp) -> NewJob {
    NewJob {
        kind: REFUND_CONFIRM_JOB.to_owned(),
        dedupe_key: format!("{REFUND_CONFIRM_JOB}:{}:{}", refund.id, refund.version),
        payload: serde_json::json!({ "refund": refund.id.get(), "version": refund.version }),
        run_at,
        max_attempts: REFUND_JOB_ATTEMPTS_MAX,
    }
}

fn later(t: Timestamp, by: SignedDuration) -> Timestamp {
    t.checked_add(by).unwrap_or(t)
}

/// The result of a refund reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved now: call Alipay.
    Reserved(Refund),
    /// The same `out_request_no` and amount were reserved before (a retry):
    /// act on its state.
    Existing(Refund),
}

async fn refunds_of_trade_in(
    conn: &mut AnyConnection,
    trade: TradeId,
) -> Result<Vec<Refund>, StoreError> {
    let rows: Vec<RefundRow> = sqlx::query_as(concat!(
        "SELECT ",
        refund_columns!(),
        " FROM refunds WHERE trade_id = $1 ORDER BY id"
    ))
    .bind(trade.get())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Refund::try_from).collect()
}

fn sum(amounts: impl Iterator<Item = Fen>) -> Result<Fen, StoreError> {
    Fen::sum(amounts).map_err(StoreError::corrupt)
}

impl Store {
    /// Reserves a refund: inserted only if the amounts held by the trade's
    /// refunds that have not failed, plus this one, stay within the trade's
    /// total. A retry with the same `out_request_no` and amount returns the
    /// existing refund; a different amount is refused.
    pub async fn reserve_refund(&self, request: &RefundRequest) -> Result<Reservation, StoreError> {
        let request = request.clone();
        self.write(move |store| async move { store.reserve_refund_now(&request).await })
            .await
    }

    async fn reserve_refund_now(&self, request: &RefundRequest) -> Result<Reservation, StoreError> {
        let mut tx = self.begin_write().await?;
        let (trade, _) = self.lock_trade_in(&mut tx, request.trade).await?;
        let refunds = refunds_of_trade_in(&mut tx, trade.id).await?;
        if let Some(existing) = refunds
            .iter()
            .find(|r| r.out_request_no == request.out_request_no)
        {
            tx.rollback().await?;
            if existing.amount != request.amount {
                return Err(RefundError::Conflict {
                    trade: trade.id,
                    out_request_no: request.out_request_no.clone(),
                    existing: existing.amount,
                    requested: request.amount,
                }
                .into());
            }
            return Ok(Reservation::Existing(existing.clone()));
        }
        let held = sum(refunds
            .iter()
            .filter(|r| r.state.holds_amount())
            .map(|r| r.amount))?;
        check_refund(&trade, held, request.amount)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO refunds (trade_id, out_request_no, amount, reason, state, requested_at, \
             state_since, failure, share, refunded_at, version) \
             VALUES ($1, $2, $3, $4, 'requested', $5, $5, NULL, NULL, NULL, 1) RETURNING id",
        )
        .bind(request.trade.get())
        .bind(request.out_request_no.as_str().to_owned())
        .bind(request.amount.get())
        .bind(request.reason.clone())
        .bind(ms(request.requested_at))
        .fetch_one(&mut *tx)
        .await?;
        let id = RefundId::new(id).map_err(StoreError::corrupt)?;
        let refund = Refund::from_request(id, request.clone());
        enqueue_in(
            &mut tx,
            &confirm_job(&refund, later(request.requested_at, REFUND_ANSWER_GRACE)),
        )
        .await?;
        tx.commit().await?;
        Ok(Reservation::Reserved(refund))
    }

    pub async fn refund(&self, id: RefundId) -> Result<Option<Refund>, StoreError> {
        let row: Option<RefundRow> = sqlx::query_as(concat!(
            "SELECT ",
            refund_columns!(),
            " FROM refunds WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Refund::try_from).transpose()
    }

    pub async fn refund_by_request(
        &self,
        trade: TradeId,
        out_request_no: &RefundRequestNo,
    ) -> Result<Option<Refund>, StoreError> {
        let row: Option<RefundRow> = sqlx::query_as(concat!(
            "SELECT ",
            refund_columns!(),
            " FROM refunds WHERE trade_id = $1 AND out_request_no = $2"
        ))
        .bind(trade.get())
        .bind(out_request_no.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Refund::try_from).transpose()
    }

    /// The refunds of a trade, oldest first.
    pub async fn refunds_of_trade(&self, trade: TradeId) -> Result<Vec<Refund>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        refunds_of_trade_in(&mut conn, trade).await
    }

    /// Refunds whose outcome must still be confirmed (requested or unknown).
    pub async fn unconfirmed_refunds(&self, limit: u32) -> Result<Vec<Refund>, StoreError> {
        let rows: Vec<RefundRow> = sqlx::query_as(concat!(
            "SELECT ",
            refund_columns!(),
            " FROM refunds WHERE state IN ('requested', 'unknown') ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Refund::try_from).collect()
    }

    /// Records what Alipay said about a refund. When it succeeds, its journal
    /// is booked in the same transaction, and if the trade's successful
    /// refunds now reach its total the trade takes `FullyRefunded` there too.
    pub async fn apply_refund_observation(
        &self,
        id: RefundId,
        observation: &RefundObservation,
        now: Timestamp,
    ) -> Result<(Refund, bool), StoreError> {
        let observation = observation.clone();
        self.write(move |store| async move {
            store
                .apply_refund_observation_now(id, &observation, now)
                .await
        })
        .await
    }

    async fn apply_refund_observation_now(
        &self,
        id: RefundId,
        observation: &RefundObservation,
        now: Timestamp,
    ) -> Result<(Refund, bool), StoreError> {
        let trade_id = self
            .refund(id)
            .await?
            .ok_or(StoreError::NotFound {
                what: "refund",
                key: id.to_string(),
            })?
            .trade;
        for _ in 0..CAS_ATTEMPTS_MAX {
            let mut tx = self.begin_write().await?;
            let (trade, fees) = self.lock_trade_in(&mut tx, trade_id).await?;
            let refunds = refunds_of_trade_in(&mut tx, trade_id).await?;
            let refund =
                refunds
                    .iter()
                    .find(|r| r.id == id)
                    .cloned()
                    .ok_or(StoreError::NotFound {
                        what: "refund",
                        key: id.to_string(),
                    })?;
            let others = refunds
                .iter()
                .filter(|r| r.id != id && r.state == RefundState::Succeeded);
            let mut before = RefundedSoFar::default();
            for other in others {
                let share = other.share.ok_or_else(|| {
                    StoreError::corrupt(format!("succeeded refund {} has no share", other.id))
                })?;
                before.amount = before
                    .amount
                    .try_add(other.amount)
                    .map_err(StoreError::corrupt)?;
                before.merchant_part = before
                    .merchant_part
                    .try_add(share.merchant_part)
                    .map_err(StoreError::corrupt)?;
                before.fee_returned = before
                    .fee_returned
                    .try_add(share.fee_return)
                    .map_err(StoreError::corrupt)?;
            }
            let change = match apply_refund_observation(&refund, &trade, before, observation, now)?
            {
                RefundApplied::NoOp => {
                    tx.rollback().await?;
                    return Ok((refund, false));
                }
                RefundApplied::Changed(change) => change,
            };
            let next = &change.refund;
            let done = sqlx::query(
                "UPDATE refunds SET state = $1, state_since = $2, failure = $3, share = $4, \
                 refunded_at = $5, version = $6 WHERE id = $7 AND version = $8",
            )
            .bind(next.state.as_str())
            .bind(ms(next.state_since))
            .bind(next.failure.as_ref().map(to_json).transpose()?)
            .bind(next.share.as_ref().map(to_json).transpose()?)
            .bind(next.refunded_at.map(ms))
            .bind(next.version)
            .bind(id.get())
            .bind(refund.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                continue;
            }
            if let Some(journal) = &change.journal {
                crate::ledger::insert_journal_in(&mut tx, journal).await?;
            }
            if next.state.needs_confirmation() {
                enqueue_in(&mut tx, &confirm_job(next, later(now, REFUND_QUERY_DELAY))).await?;
            }
            // The channel hears of every refund that went through, as the
            // acquirer hears of it from Alipay (apis.md §2.7).
            let mut notice = (next.state == RefundState::Succeeded
                && refund.state != RefundState::Succeeded)
                .then(|| -> Result<RefundNotice, StoreError> {
                    Ok(RefundNotice {
                        refund: id,
                        out_request_no: next.out_request_no.clone(),
                        refund_fee: before
                            .amount
                            .try_add(next.amount)
                            .map_err(StoreError::corrupt)?,
                        refunded_at: next.refunded_at.unwrap_or(now),
                    })
                })
                .transpose()?;
            let mut trade_now = trade.clone();
            if change.fully_refunded {
                match apply_in(
                    &mut tx,
                    &self.policy,
                    &trade,
                    fees,
                    &Observation::FullyRefunded,
                    now,
                    notice.as_ref(),
                )
                .await?
                {
                    Write::NoOp => {}
                    // The closing notification carries the last refund.
                    Write::Changed { trade, notified } => {
                        trade_now = *trade;
                        if notified {
                            notice = None;
                        }
                    }
                    Write::Stale => {
                        tx.rollback().await?;
                        continue;
                    }
                }
            }
            if let Some(notice) = &notice
                && let Some(status) = trade_now.state.channel_status()
            {
                crate::outbox::insert_in(&mut tx, &trade_now, status, Some(notice), now).await?;
            }
            tx.commit().await?;
            return Ok((change.refund, true));
        }
        Err(StoreError::Contended {
            what: "refund",
            key: id.to_string(),
            attempts: CAS_ATTEMPTS_MAX,
        })
    }
}
