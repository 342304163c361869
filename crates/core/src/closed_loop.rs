//! The closed loop (R4.2, R4.3): every trade ends paid or closed, never left
//! waiting. Given a trade, [`plan`] says what to do next and when; the gateway
//! does it and feeds the answer back as an observation carrying the same
//! [`Step`], so a step replayed after a crash is recognised and changes nothing.
//!
//! The rules, with [`LoopPolicy`]'s defaults:
//! - `Created` (no answer recorded, e.g. the gateway died mid-call): after
//!   `intent_stale_after` (30 s), treat as unknown.
//! - `Unknown` (20000, timeout, bad signature): query at once; if the query
//!   learns nothing, retry once after `query_retry_interval` (5 s)
//!   (`query_attempts_max` = 2); then cancel. Never assume failure.
//! - `Paying` after a barcode pay (10003): poll every `poll_interval` (5 s), up
//!   to `poll_count_max` (12) polls; still waiting after the last → cancel at
//!   once. A precreate or create trade waits for its buyer until it expires,
//!   then gets one last poll, then a cancel.
//! - Cancel: `retry_flag = Y` or an unknown answer → cancel again, backing off
//!   from `cancel_retry_interval` (5 s) doubling up to `cancel_retry_interval_max`
//!   (10 min), without end: a trade is never abandoned. A refused cancel → one
//!   query to learn why, then cancel again if still unresolved.
//! - A resolved trade (paid, failed, closed, cancelled, refunded, finished)
//!   needs nothing.
//!
//! The sweeper uses [`deadline`]: a trade still unresolved after it is overdue
//! and is reported and re-driven.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::trade::{StepOutcome, Trade, TradeKind, TradeState};

/// The closed loop's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopPolicy {
    /// Gap between polls of a 10003 trade (R4.2: 5 s).
    pub poll_interval: SignedDuration,
    /// Polls before cancelling (R4.2: 12).
    pub poll_count_max: u32,
    /// How long a trade may stay `Created` before it is treated as unknown;
    /// must exceed the upstream call timeout, or a slow answer would race a query.
    pub intent_stale_after: SignedDuration,
    /// Queries of an unknown trade before cancelling (R4.3: query, retry once).
    pub query_attempts_max: u32,
    /// Gap before retrying a query that learned nothing.
    pub query_retry_interval: SignedDuration,
    /// First gap between cancels; doubles up to the max.
    pub cancel_retry_interval: SignedDuration,
    pub cancel_retry_interval_max: SignedDuration,
    /// How long a precreate QR lives when the channel gives no timeout (R5.1: 2 h).
    pub precreate_timeout_default: SignedDuration,
    /// How long a created trade lives when the channel gives no timeout (F2F: 3 h).
    pub create_timeout_default: SignedDuration,
    /// Slack after expiry before a still unresolved trade counts as overdue.
    pub resolve_grace: SignedDuration,
}

impl Default for LoopPolicy {
    fn default() -> Self {
        LoopPolicy {
            poll_interval: SignedDuration::from_secs(5),
            poll_count_max: 12,
            intent_stale_after: SignedDuration::from_secs(30),
            query_attempts_max: 2,
            query_retry_interval: SignedDuration::from_secs(5),
            cancel_retry_interval: SignedDuration::from_secs(5),
            cancel_retry_interval_max: SignedDuration::from_mins(10),
            precreate_timeout_default: SignedDuration::from_hours(2),
            create_timeout_default: SignedDuration::from_hours(3),
            resolve_grace: SignedDuration::from_mins(10),
        }
    }
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("closed-loop setting {0} must be positive")]
pub struct PolicyError(pub &'static str);

impl LoopPolicy {
    /// Refuses zero or negative intervals and counts (they would spin or never act).
    pub fn check(&self) -> Result<(), PolicyError> {
        let positive = [
            ("poll_interval", self.poll_interval),
            ("intent_stale_after", self.intent_stale_after),
            ("query_retry_interval", self.query_retry_interval),
            ("cancel_retry_interval", self.cancel_retry_interval),
            ("cancel_retry_interval_max", self.cancel_retry_interval_max),
            ("precreate_timeout_default", self.precreate_timeout_default),
            ("create_timeout_default", self.create_timeout_default),
        ];
        for (name, value) in positive {
            if !value.is_positive() {
                return Err(PolicyError(name));
            }
        }
        if self.poll_count_max == 0 {
            return Err(PolicyError("poll_count_max"));
        }
        if self.query_attempts_max == 0 {
            return Err(PolicyError("query_attempts_max"));
        }
        Ok(())
    }

    /// When the buyer can no longer pay. A barcode trade is done when its
    /// polls are (the cashier is waiting); the others live for the channel's
    /// `timeout_express`, or the default.
    pub fn expires_at(
        &self,
        kind: TradeKind,
        created_at: Timestamp,
        timeout: Option<SignedDuration>,
    ) -> Timestamp {
        let life = match kind {
            TradeKind::BarcodePay => self.intent_stale_after.saturating_add(times(
                self.poll_interval,
                self.poll_count_max.saturating_add(1),
            )),
            TradeKind::Precreate => timeout.unwrap_or(self.precreate_timeout_default),
            TradeKind::Create => timeout.unwrap_or(self.create_timeout_default),
        };
        add(created_at, life)
    }
}

fn times(d: SignedDuration, n: u32) -> SignedDuration {
    d.checked_mul(i32::try_from(n).unwrap_or(i32::MAX))
        .unwrap_or(SignedDuration::MAX)
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// What kind of call a step makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// `alipay.trade.query` of a trade waiting for its buyer.
    Poll,
    /// `alipay.trade.query` of an unknown trade, or after a refused cancel.
    Query,
    /// `alipay.trade.cancel`.
    Cancel,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Poll => "poll",
            StepKind::Query => "query",
            StepKind::Cancel => "cancel",
        }
    }

    pub fn parse(text: &str) -> Option<StepKind> {
        [StepKind::Poll, StepKind::Query, StepKind::Cancel]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One step of the loop: its number on the trade (1, 2, …), its kind, and
/// which attempt of that kind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    pub number: u32,
    pub kind: StepKind,
    pub attempt: u32,
}

/// The next step of a trade and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub step: Step,
    pub due_at: Timestamp,
}

/// What to do next for `trade`; `None` once it is resolved. Pure: the same
/// trade always gets the same plan, so a crashed worker's successor repeats it.
pub fn plan(trade: &Trade, policy: &LoopPolicy) -> Option<Planned> {
    if trade.state.is_resolved() {
        return None;
    }
    let progress = &trade.progress;
    let number = progress
        .last_step
        .map_or(1, |last| last.step.number.saturating_add(1));
    let last_at = progress.last_step.map_or(trade.state_since, |last| last.at);
    let step = |kind, attempt| Step {
        number,
        kind,
        attempt,
    };
    let poll = step(StepKind::Poll, progress.polls.saturating_add(1));
    let query = step(StepKind::Query, progress.queries.saturating_add(1));
    let cancel = step(StepKind::Cancel, progress.cancels.saturating_add(1));
    let planned = |step, due_at| Some(Planned { step, due_at });

    if progress.cancels > 0 {
        let last = progress.last_step?;
        return match (last.step.kind, last.outcome) {
            (StepKind::Cancel, StepOutcome::Refused) => planned(query, last_at),
            (StepKind::Cancel, _) => planned(
                cancel,
                add(last_at, cancel_backoff(policy, progress.cancels)),
            ),
            _ => planned(cancel, add(last_at, policy.cancel_retry_interval)),
        };
    }
    match trade.state {
        TradeState::Created if progress.queries == 0 => {
            planned(query, add(trade.created_at, policy.intent_stale_after))
        }
        TradeState::Created | TradeState::Unknown => {
            if progress.queries == 0 {
                planned(query, trade.state_since)
            } else if progress.queries < policy.query_attempts_max {
                planned(query, add(last_at, policy.query_retry_interval))
            } else {
                planned(cancel, last_at)
            }
        }
        TradeState::Paying => match trade.kind {
            TradeKind::BarcodePay if progress.polls < policy.poll_count_max => planned(
                poll,
                add(
                    trade.state_since,
                    times(policy.poll_interval, progress.polls.saturating_add(1)),
                ),
            ),
            TradeKind::Precreate | TradeKind::Create if progress.polls == 0 => {
                planned(poll, trade.expires_at)
            }
            _ => planned(cancel, last_at),
        },
        _ => None,
    }
}

/// What to do for a trade at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextAction {
    /// The trade is resolved: nothing, ever.
    Nothing,
    /// Nothing before this time; then ask again.
    WaitUntil(Timestamp),
    /// Carry out this step now and apply its answer with the same step.
    Run(Step),
}

/// [`plan`] read against the clock: run the step if it is due, else wait.
pub fn next_action(trade: &Trade, policy: &LoopPolicy, now: Timestamp) -> NextAction {
    match plan(trade, policy) {
        None => NextAction::Nothing,
        Some(p) if p.due_at <= now => NextAction::Run(p.step),
        Some(p) => NextAction::WaitUntil(p.due_at),
    }
}

/// Gap before cancel number `done + 1`: the first retry waits
/// `cancel_retry_interval`, each later one twice as long, capped.
fn cancel_backoff(policy: &LoopPolicy, done: u32) -> SignedDuration {
    let doublings = done.saturating_sub(1).min(20);
    let factor = 1_i32 << doublings;
    policy
        .cancel_retry_interval
        .checked_mul(factor)
        .unwrap_or(policy.cancel_retry_interval_max)
        .min(policy.cancel_retry_interval_max)
}

/// When an unresolved trade becomes overdue for the sweeper.
pub fn deadline(trade: &Trade, policy: &LoopPolicy) -> Timestamp {
    let queries = times(policy.query_retry_interval, policy.query_attempts_max);
    add(add(trade.expires_at, queries), policy.resolve_grace)
}

/// Whether the sweeper must report and re-drive the trade.
pub fn is_overdue(trade: &Trade, policy: &LoopPolicy, now: Timestamp) -> bool {
    !trade.state.is_resolved() && now > deadline(trade, policy)
}

/// Why a `timeout_express` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "timeout_express {0:?} is invalid: expected a whole number of minutes (m), hours (h) or days (d) between 1m and 15d, or 1c"
)]
pub struct TimeoutError(pub String);

/// Parses `timeout_express` (`90m`, `2h`, `15d`, or `1c` = until the next
/// Beijing midnight) into a duration from `now`, within Alipay's 1m–15d.
pub fn parse_timeout_express(text: &str, now: Timestamp) -> Result<SignedDuration, TimeoutError> {
    let bad = || TimeoutError(text.to_owned());
    if text == "1c" {
        let today = jianlian_alipay::time::beijing_date(now);
        let tomorrow = today.tomorrow().map_err(|_| bad())?;
        return Ok(jianlian_alipay::time::beijing_midnight(tomorrow).duration_since(now));
    }
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" => n,
        "h" => n * 60,
        "d" => n * 24 * 60,
        _ => return Err(bad()),
    };
    if !(1..=15 * 24 * 60).contains(&minutes) {
        return Err(bad());
    }
    Ok(SignedDuration::from_mins(minutes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::FeePolicy;
    use crate::trade::{
        Applied, CancelAnswer, Observation, QueryAnswer, SyncAnswer, apply_observation,
    };
    use jianlian_alipay::Rate;

    fn apply(trade: &Trade, obs: Observation, now: Timestamp) -> Trade {
        match apply_observation(trade, &obs, now, FeePolicy::flat(Rate::ZERO)).unwrap() {
            Applied::Changed(c) => c.trade,
            Applied::NoOp => trade.clone(),
        }
    }

    fn secs(t: Timestamp, s: i64) -> Timestamp {
        t.checked_add(SignedDuration::from_secs(s)).unwrap()
    }

    #[test]
    fn a_10003_trade_is_polled_12_times_every_5s_then_cancelled() {
        let policy = LoopPolicy::default();
        let start = crate::trade::tests::sample_trade(TradeKind::BarcodePay);
        let t0 = start.created_at;
        let mut trade = apply(
            &start,
            Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None }),
            t0,
        );
        for n in 1..=12 {
            let p = plan(&trade, &policy).unwrap();
            assert_eq!(p.step.kind, StepKind::Poll);
            assert_eq!(p.step.attempt, n);
            assert_eq!(p.due_at, secs(t0, 5 * i64::from(n)));
            let still_waiting = QueryAnswer::Found(crate::trade::TradeSnapshot {
                status: jianlian_alipay::api::trade::TradeStatus::WaitBuyerPay,
                trade_no: None,
                total_amount: None,
                receipt_amount: None,
                buyer_pay_amount: None,
                buyer_user_id: None,
                buyer_logon_id: None,
                paid_at: None,
                fund_bills: vec![],
                refund_fee: None,
            });
            trade = apply(
                &trade,
                Observation::Queried {
                    step: p.step,
                    answer: still_waiting,
                },
                p.due_at,
            );
        }
        let p = plan(&trade, &policy).unwrap();
        assert_eq!(p.step.kind, StepKind::Cancel);
        assert_eq!(p.due_at, secs(t0, 60), "cancel right after the last poll");
        // retry_flag=Y: cancel again after 5 s, then 10 s.
        trade = apply(
            &trade,
            Observation::CancelAnswered {
                step: p.step,
                answer: CancelAnswer::Retry,
            },
            p.due_at,
        );
        let again = plan(&trade, &policy).unwrap();
        assert_eq!((again.step.kind, again.step.attempt), (StepKind::Cancel, 2));
        assert_eq!(again.due_at, secs(t0, 65));
        trade = apply(
            &trade,
            Observation::CancelAnswered {
                step: again.step,
                answer: CancelAnswer::Done {
                    action: Some(jianlian_alipay::api::trade::CancelAction::Close),
                },
            },
            again.due_at,
        );
        assert!(trade.state.is_resolved());
        assert_eq!(plan(&trade, &policy), None);
    }

    #[test]
    fn unknown_is_queried_retried_once_then_cancelled() {
        let policy = LoopPolicy::default();
        let start = crate::trade::tests::sample_trade(TradeKind::BarcodePay);
        let t0 = start.created_at;
        let mut trade = apply(
            &start,
            Observation::Answered(SyncAnswer::Unknown {
                reason: "timeout".into(),
            }),
            t0,
        );
        let first = plan(&trade, &policy).unwrap();
        assert_eq!((first.step.kind, first.due_at), (StepKind::Query, t0));
        trade = apply(
            &trade,
            Observation::Queried {
                step: first.step,
                answer: QueryAnswer::Unknown {
                    reason: "timeout".into(),
                },
            },
            t0,
        );
        let retry = plan(&trade, &policy).unwrap();
        assert_eq!((retry.step.kind, retry.step.attempt), (StepKind::Query, 2));
        assert_eq!(retry.due_at, secs(t0, 5));
        trade = apply(
            &trade,
            Observation::Queried {
                step: retry.step,
                answer: QueryAnswer::NotFound,
            },
            retry.due_at,
        );
        let cancel = plan(&trade, &policy).unwrap();
        assert_eq!(cancel.step.kind, StepKind::Cancel);
        // A refused cancel leads to a query, then a cancel again.
        trade = apply(
            &trade,
            Observation::CancelAnswered {
                step: cancel.step,
                answer: CancelAnswer::Refused(crate::trade::FailureReason {
                    code: "40004".into(),
                    msg: "Business Failed".into(),
                    sub_code: Some("ACQ.TRADE_CANCEL_TIME_OUT".into()),
                    sub_msg: None,
                }),
            },
            cancel.due_at,
        );
        assert_eq!(plan(&trade, &policy).unwrap().step.kind, StepKind::Query);
    }

    #[test]
    fn a_stale_intent_is_queried_after_30s() {
        let policy = LoopPolicy::default();
        let trade = crate::trade::tests::sample_trade(TradeKind::BarcodePay);
        let p = plan(&trade, &policy).unwrap();
        assert_eq!(p.step.kind, StepKind::Query);
        assert_eq!(p.due_at, secs(trade.created_at, 30));
        assert_eq!(
            next_action(&trade, &policy, secs(trade.created_at, 29)),
            NextAction::WaitUntil(p.due_at)
        );
        assert_eq!(
            next_action(&trade, &policy, secs(trade.created_at, 30)),
            NextAction::Run(p.step)
        );
        assert!(!is_overdue(&trade, &policy, secs(trade.created_at, 60)));
        assert!(is_overdue(&trade, &policy, secs(trade.created_at, 3600)));
    }

    #[test]
    fn timeout_express_parsing() {
        let now = jianlian_alipay::time::parse_beijing("2026-03-02 23:00:00").unwrap();
        assert_eq!(
            parse_timeout_express("90m", now),
            Ok(SignedDuration::from_mins(90))
        );
        assert_eq!(
            parse_timeout_express("15d", now),
            Ok(SignedDuration::from_hours(360))
        );
        assert_eq!(
            parse_timeout_express("1c", now),
            Ok(SignedDuration::from_hours(1))
        );
        for bad in ["", "0m", "16d", "1.5h", "10s", "m", "-5m"] {
            assert!(parse_timeout_express(bad, now).is_err(), "{bad:?}");
        }
    }
}
