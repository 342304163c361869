//! Refunds (R10, issue item 8): one record per `out_request_no` of a trade,
//! its states, and the rule that refunds never exceed what was paid.
//!
//! **States.** `Requested` (reserved, not yet answered) → `Succeeded` (money
//! went back: `fund_change = Y`, or a refund query says `REFUND_SUCCESS`) or
//! `Failed` (a definite refusal) or `Unknown` (10000 with `fund_change` not
//! `Y`, 20000, timeout: confirm with `alipay.trade.fastpay.refund.query`, and
//! if it was not received, send the same request again). As with trades, the
//! state is derived from facts that only grow, so answers in any order
//! converge; proof of money moving (success) outranks a refusal.
//!
//! **The cap.** Every refund that is not `Failed` holds its amount against
//! the trade's total: a new refund is accepted only when the held amounts
//! plus it stay within `total_amount` ([`check_refund`]). The store makes the
//! check and the insert one atomic step.

use jianlian_alipay::Fen;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fees::{RefundShare, RefundedSoFar, refund_share};
use crate::ids::{RefundId, RefundRequestNo, TradeId};
use crate::ledger::{Journal, LedgerError, refund_journal};
use crate::trade::{FailureReason, Trade, TradeState};

/// The state of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Reserved against the trade; Alipay has not answered.
    Requested,
    /// Not confirmed: query it, and resend the same request if it was not received.
    Unknown,
    Succeeded,
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Requested => "requested",
            RefundState::Unknown => "unknown",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RefundState> {
        [
            RefundState::Requested,
            RefundState::Unknown,
            RefundState::Succeeded,
            RefundState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the refund holds its amount against the trade's total.
    pub fn holds_amount(self) -> bool {
        self != RefundState::Failed
    }

    /// Whether the outcome must still be confirmed with a refund query.
    pub fn needs_confirmation(self) -> bool {
        matches!(self, RefundState::Requested | RefundState::Unknown)
    }
}

/// A refund request, before it has a row number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub trade: TradeId,
    pub out_request_no: RefundRequestNo,
    pub amount: Fen,
    pub reason: Option<String>,
    pub requested_at: Timestamp,
}

/// A refund as the gateway keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: RefundId,
    pub trade: TradeId,
    pub out_request_no: RefundRequestNo,
    pub amount: Fen,
    pub reason: Option<String>,
    pub state: RefundState,
    pub requested_at: Timestamp,
    pub state_since: Timestamp,
    /// The definite refusal, when there was one.
    pub failure: Option<FailureReason>,
    /// How the refund was booked, once it succeeded.
    pub share: Option<RefundShare>,
    /// When Alipay paid it back (`gmt_refund_pay`).
    pub refunded_at: Option<Timestamp>,
    pub version: i64,
}

impl Refund {
    /// The record for a reserved request, numbered `id`.
    pub fn from_request(id: RefundId, request: RefundRequest) -> Refund {
        Refund {
            id,
            trade: request.trade,
            out_request_no: request.out_request_no,
            amount: request.amount,
            reason: request.reason,
            state: RefundState::Requested,
            requested_at: request.requested_at,
            state_since: request.requested_at,
            failure: None,
            share: None,
            refunded_at: None,
            version: 1,
        }
    }
}

/// Why a refund was refused or an answer rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("refund_amount must be at least 0.01")]
    NotPositive,
    #[error("trade {trade} is {state} and cannot be refunded")]
    NotRefundable { trade: TradeId, state: &'static str },
    #[error(
        "refund of {requested} exceeds what is left to refund on trade {trade}: {refundable} of {total}"
    )]
    Exceeds {
        trade: TradeId,
        requested: Fen,
        refundable: Fen,
        total: Fen,
    },
    #[error(
        "out_request_no {out_request_no} was already used on trade {trade} for {existing}, not {requested}"
    )]
    Conflict {
        trade: TradeId,
        out_request_no: RefundRequestNo,
        existing: Fen,
        requested: Fen,
    },
    #[error("refund {0}: the trade was never booked as paid")]
    NoPaymentBooked(RefundId),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The cap (pure): may `amount` be refunded on `trade`, when refunds holding
/// `held` in total already exist?
pub fn check_refund(trade: &Trade, held: Fen, amount: Fen) -> Result<(), RefundError> {
    if amount <= Fen::ZERO {
        return Err(RefundError::NotPositive);
    }
    if trade.state != TradeState::Paid {
        return Err(RefundError::NotRefundable {
            trade: trade.id,
            state: trade.state.as_str(),
        });
    }
    let refundable = trade
        .total_amount
        .checked_sub(held)
        .unwrap_or(Fen::ZERO)
        .max(Fen::ZERO);
    if amount > refundable {
        return Err(RefundError::Exceeds {
            trade: trade.id,
            requested: amount,
            refundable,
            total: trade.total_amount,
        });
    }
    Ok(())
}

/// The answer of `alipay.trade.refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundAnswer {
    /// 10000 with `fund_change = Y`.
    Refunded { at: Option<Timestamp> },
    /// 10000 without `fund_change = Y`: confirm with a refund query.
    Accepted,
    /// A definite refusal.
    Failed(FailureReason),
    /// 20000, `*.SYSTEM_ERROR`, timeout, …
    Unknown { reason: String },
}

/// The answer of `alipay.trade.fastpay.refund.query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundQueryAnswer {
    /// `refund_status = REFUND_SUCCESS`.
    Succeeded {
        at: Option<Timestamp>,
    },
    /// No `refund_status`: not received (resend the same request) or failed.
    NotRefunded,
    Unknown {
        reason: String,
    },
}

/// One thing learned about a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundObservation {
    Answered(RefundAnswer),
    Queried(RefundQueryAnswer),
}

/// A refund change with what must be written with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundChange {
    pub refund: Refund,
    /// The refund journal, when it just succeeded.
    pub journal: Option<Journal>,
    /// Whether successful refunds now reach the trade's total: the trade
    /// then takes [`crate::trade::Observation::FullyRefunded`] in the same write.
    pub fully_refunded: bool,
}

/// The result of applying a refund observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundApplied {
    NoOp,
    Changed(Box<RefundChange>),
}

fn rank(state: RefundState) -> u8 {
    match state {
        RefundState::Requested => 0,
        RefundState::Unknown => 1,
        RefundState::Failed => 2,
        RefundState::Succeeded => 3,
    }
}

/// Applies an answer to a refund. `trade` is the refunded trade and `before`
/// what its *other* successful refunds took (for the fee return and the
/// last-refund rule).
pub fn apply_refund_observation(
    refund: &Refund,
    trade: &Trade,
    before: RefundedSoFar,
    observation: &RefundObservation,
    now: Timestamp,
) -> Result<RefundApplied, RefundError> {
    let (target, failure, at) = match observation {
        RefundObservation::Answered(RefundAnswer::Refunded { at })
        | RefundObservation::Queried(RefundQueryAnswer::Succeeded { at }) => {
            (RefundState::Succeeded, None, *at)
        }
        RefundObservation::Answered(RefundAnswer::Failed(reason)) => {
            (RefundState::Failed, Some(reason.clone()), None)
        }
        RefundObservation::Answered(RefundAnswer::Accepted | RefundAnswer::Unknown { .. })
        | RefundObservation::Queried(
            RefundQueryAnswer::NotRefunded | RefundQueryAnswer::Unknown { .. },
        ) => (RefundState::Unknown, None, None),
    };
    if rank(target) <= rank(refund.state) {
        return Ok(RefundApplied::NoOp);
    }
    let mut next = refund.clone();
    next.state = target;
    next.state_since = now;
    next.version = refund.version.saturating_add(1);
    if next.failure.is_none() {
        next.failure = failure;
    }
    let mut journal = None;
    let mut fully_refunded = false;
    if target == RefundState::Succeeded {
        let payment = trade
            .fee
            .as_ref()
            .ok_or(RefundError::NoPaymentBooked(refund.id))?;
        let share = refund_share(payment, before, refund.amount);
        journal = refund_journal(trade.id, refund.id, trade.merchant, &share, now)?;
        next.share = Some(share);
        next.refunded_at = at.or(Some(now));
        fully_refunded = before
            .amount
            .checked_add(refund.amount)
            .is_some_and(|sum| sum >= trade.total_amount);
    }
    Ok(RefundApplied::Changed(Box::new(RefundChange {
        refund: next,
        journal,
        fully_refunded,
    })))
}
