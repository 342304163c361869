//! The job runner: one step function, [`run_due`], that claims the jobs due
//! at `now` (leased in the database, so several gateway processes never run
//! one job twice), runs each, and reports what happened. `serve` calls it on
//! a ticker; tests call it after advancing the shared manual clock.
//!
//! Jobs (enqueued by the store in the transaction that makes them needed):
//! - `trade.step`: the closed loop's next step (R4.2, R4.3): poll, query or
//!   cancel upstream, then feed the answer to the single write path with the
//!   step, which enqueues the following step. A job for an older version of
//!   the trade is stale and completes without a call.
//! - `refund.confirm`: a refund whose outcome is not known is queried; if
//!   Alipay did not receive it, the same request (same `out_request_no`) is
//!   sent again.
//! - `notify.channel`: delivers one outbox row to the channel (`notify_out`).
//!
//! Each run also sweeps: an unresolved trade past its deadline whose step
//! job is missing, dead or far behind its plan gets it revived (reported and
//! counted), so no trade stays open for ever; one whose job is alive and on
//! schedule is left to it.

use std::sync::Arc;

use futures_util::StreamExt as _;
use jianlian_alipay::api::trade::{TradeCancel, TradeQuery, TradeRef, TradeRefundQuery};
use jianlian_core::closed_loop::{NextAction, StepKind, next_action};
use jianlian_core::ids::{RefundId, TradeId};
use jianlian_core::refund::{RefundObservation, RefundQueryAnswer};
use jianlian_core::trade::Observation;
use jianlian_store::{Job, NOTIFY_JOB, REFUND_CONFIRM_JOB, StoreError, TRADE_STEP_JOB};
use jiff::{SignedDuration, Timestamp};

use crate::service::Service;
use crate::upstream::{cancel_answer, query_answer, refund_query_answer};

/// Most overdue trades one sweep revives.
const SWEEP_BATCH_MAX: u32 = 100;
/// Back-off of a job whose attempt failed before anything was recorded.
const JOB_RETRY_DELAY: SignedDuration = SignedDuration::from_secs(10);

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Jobs claimed.
    pub claimed: usize,
    /// Jobs that made an upstream call or a delivery.
    pub acted: usize,
    /// Jobs that failed and will run again (or died).
    pub failed: usize,
    /// Overdue trades revived by the sweeper.
    pub swept: usize,
}

/// What one job did.
pub(crate) enum Done {
    /// Completed (or stale) without calling out.
    Quiet,
    /// Called upstream or delivered.
    Acted,
    /// Failed; retried later.
    Failed,
}

/// Runs every job due at `now`, at most `worker.batch_max` per claim, and
/// claims again until nothing is due (bounded: at most 100 claims).
pub async fn run_due(svc: &Arc<Service>, now: Timestamp) -> Result<RunReport, StoreError> {
    let mut report = RunReport::default();
    let overdue = svc.store.overdue_trades(now, SWEEP_BATCH_MAX).await?;
    for trade in &overdue {
        // Only a real gap is news: a trade whose step job is alive (a cancel
        // backing off while Alipay is down) is left to it, without a warning
        // or a count at every tick.
        if svc.store.requeue_trade_step(trade.id, now).await? {
            tracing::warn!(trade = %trade.id, state = trade.state.as_str(), "trade overdue and its closed loop lost: revived");
            report.swept += 1;
        } else {
            tracing::debug!(trade = %trade.id, state = trade.state.as_str(), "trade overdue; its closed loop is on schedule");
        }
    }
    metrics::counter!("jianlian_trades_swept_total")
        .increment(u64::try_from(report.swept).unwrap_or(0));
    let settings = svc.settings.worker;
    for _ in 0..100 {
        let jobs = svc
            .store
            .claim(&svc.worker_id, now, settings.lease, settings.batch_max)
            .await?;
        if jobs.is_empty() {
            break;
        }
        report.claimed += jobs.len();
        let results: Vec<Done> = futures_util::stream::iter(jobs)
            .map(|job| run_job(svc, job, now))
            .buffer_unordered(settings.concurrency_max)
            .collect()
            .await;
        for done in results {
            match done {
                Done::Quiet => {}
                Done::Acted => report.acted += 1,
                Done::Failed => report.failed += 1,
            }
        }
    }
    Ok(report)
}

async fn run_job(svc: &Arc<Service>, job: Job, now: Timestamp) -> Done {
    let result = match job.kind.as_str() {
        TRADE_STEP_JOB => trade_step(svc, &job, now).await,
        REFUND_CONFIRM_JOB => refund_confirm(svc, &job, now).await,
        NOTIFY_JOB => crate::notify_out::deliver(svc, &job, now).await,
        other => Err(format!("unknown job kind {other}")),
    };
    metrics::counter!("jianlian_jobs_run_total", "kind" => kind_label(&job.kind)).increment(1);
    match result {
        Ok(done) => done,
        Err(error) => {
            tracing::warn!(job = job.id, kind = %job.kind, %error, "job failed");
            let retry_at = now.checked_add(JOB_RETRY_DELAY).unwrap_or(now);
            if let Err(e) = svc.store.fail(&job, &error, now, retry_at).await {
                tracing::warn!(job = job.id, error = %e, "recording a job failure");
            }
            Done::Failed
        }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        TRADE_STEP_JOB => TRADE_STEP_JOB,
        REFUND_CONFIRM_JOB => REFUND_CONFIRM_JOB,
        NOTIFY_JOB => NOTIFY_JOB,
        _ => "other",
    }
}

fn payload_i64(job: &Job, key: &str) -> Result<i64, String> {
    job.payload
        .get(key)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| format!("job {} has no {key} in its payload", job.id))
}

async fn complete(svc: &Service, job: &Job, now: Timestamp) -> Result<(), String> {
    match svc.store.complete(job, now).await {
        Ok(()) => Ok(()),
        // Someone else holds it now (our lease expired): their run counts.
        Err(StoreError::LeaseLost { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// One step of a trade's closed loop.
async fn trade_step(svc: &Service, job: &Job, now: Timestamp) -> Result<Done, String> {
    let id = TradeId::new(payload_i64(job, "trade")?).map_err(|e| e.to_string())?;
    let version = payload_i64(job, "version")?;
    let Some(trade) = svc.store.trade(id).await.map_err(|e| e.to_string())? else {
        complete(svc, job, now).await?;
        return Ok(Done::Quiet);
    };
    if trade.version != version {
        // A newer change enqueued its own step job.
        complete(svc, job, now).await?;
        return Ok(Done::Quiet);
    }
    let step = match next_action(&trade, svc.store.policy(), now) {
        NextAction::Nothing => {
            complete(svc, job, now).await?;
            return Ok(Done::Quiet);
        }
        NextAction::WaitUntil(at) => {
            svc.store
                .reschedule(job, at, now)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Done::Quiet);
        }
        NextAction::Run(step) => step,
    };
    let upstream_ref = TradeRef::out_trade_no(trade.upstream_order_no.as_str());
    let observation = match step.kind {
        StepKind::Poll | StepKind::Query => {
            let q = TradeQuery {
                trade: upstream_ref,
                ..TradeQuery::default()
            };
            let outcome = svc.upstream.call(&q, false).await;
            Observation::Queried {
                step,
                answer: query_answer(&outcome),
            }
        }
        StepKind::Cancel => {
            let c = TradeCancel {
                trade: upstream_ref,
                ..TradeCancel::default()
            };
            let outcome = svc.upstream.call(&c, false).await;
            let answer = cancel_answer(&outcome);
            tracing::info!(trade = %trade.id, attempt = step.attempt, answer = ?answer, "closed loop cancel");
            Observation::CancelAnswered { step, answer }
        }
    };
    svc.store
        .apply_observation(trade.id, &observation, now)
        .await
        .map_err(|e| e.to_string())?;
    complete(svc, job, now).await?;
    Ok(Done::Acted)
}

/// Confirms a refund whose outcome is not known (apis.md §2.7, §2.8).
async fn refund_confirm(svc: &Service, job: &Job, now: Timestamp) -> Result<Done, String> {
    let id = RefundId::new(payload_i64(job, "refund")?).map_err(|e| e.to_string())?;
    let version = payload_i64(job, "version")?;
    let Some(refund) = svc.store.refund(id).await.map_err(|e| e.to_string())? else {
        complete(svc, job, now).await?;
        return Ok(Done::Quiet);
    };
    if refund.version != version || !refund.state.needs_confirmation() {
        complete(svc, job, now).await?;
        return Ok(Done::Quiet);
    }
    let trade = svc
        .store
        .trade(refund.trade)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("refund {id}: trade {} is missing", refund.trade))?;
    let q = TradeRefundQuery {
        trade: TradeRef::out_trade_no(trade.upstream_order_no.as_str()),
        out_request_no: refund.out_request_no.to_string(),
        ..TradeRefundQuery::default()
    };
    let answer = refund_query_answer(&svc.upstream.call(&q, false).await);
    let not_received = answer == RefundQueryAnswer::NotRefunded;
    let (mut after, mut progressed) = svc
        .store
        .apply_refund_observation(id, &RefundObservation::Queried(answer), now)
        .await
        .map_err(|e| e.to_string())?;
    if not_received && after.state.needs_confirmation() {
        // Alipay refunds once per out_request_no: sending it again is safe.
        if let Some((resent, changed)) =
            crate::channel_api::resend_refund(svc, &trade, &after).await
        {
            after = resent;
            progressed |= changed;
        }
    }
    if after.state.needs_confirmation() && !progressed {
        // Nothing learned and no newer job queued: run this one again later.
        return Err(format!("refund {id}: still unconfirmed"));
    }
    complete(svc, job, now).await?;
    Ok(Done::Acted)
}
