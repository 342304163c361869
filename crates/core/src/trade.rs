//! Trades (R3–R5) and their state machine: the one function every source of
//! truth about a trade goes through.
//!
//! **Design.** What the gateway learns about a trade only ever grows: the
//! sync answer, polls and queries, Alipay's notifications, cancel answers,
//! reconciliation and the refund books each add *facts* ("Alipay has this
//! trade", "it is paid", "it is closed", …). Facts are kept as a set of
//! [`Flags`]; applying an observation is a union of flags plus fill-only
//! details, and the [`TradeState`] is *derived* from the flags. A union is
//! commutative, associative and idempotent, so:
//! - applying the same or an older observation changes nothing ([`Applied::NoOp`]);
//! - observations applied in any order converge to the same trade;
//! - no state ever moves back (a paid trade never becomes unpaid).
//!
//! Observations that contradict the trade (another amount, another Alipay
//! `trade_no`, "fully refunded" before any payment, a step of the wrong kind)
//! are rejected with [`TransitionError`] and change nothing.
//!
//! **Derivation** (first match wins). Paid: cancel refunded it →
//! `Cancelled{refund}`; closed after payment (full refund, R10) → `Refunded`;
//! `TRADE_FINISHED` → `Finished`; else `Paid`. Unpaid: cancelled →
//! `Cancelled{close | none}`; closed → `Closed`; Alipay has it →
//! `Paying`; a definite failure (40004) → `Failed`; the answer was unknown →
//! `Unknown`; else `Created` (intent committed, no answer yet). A trade that
//! Alipay shows waiting for the buyer stays `Paying` even after a contradicting
//! failure answer, so the closed loop (poll, then cancel) still runs.
//!
//! **Books and notices.** The change that first makes a trade paid books its
//! payment journal (fee from the merchant's [`FeePolicy`]); the change that
//! records a cancel with `action = refund` books the reversal. When the status
//! a channel would see (`trade_status`) changes to a final one and the trade
//! has a `notify_url`, the change carries a notice for the outbox.
//!
//! The fee is computed from the facts known when the payment is first
//! learned (receipt amount and funding, or the total when a cancel that
//! refunded the trade is the first news of its payment). Such a trade is
//! reversed in the same change, so its net books are zero whatever the order.

use jianlian_alipay::Fen;
use jianlian_alipay::api::trade::{
    CancelAction, NotifyFundBill, TradePayResponse, TradeQueryResponse, TradeStatus,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::closed_loop::{LoopPolicy, Step, StepKind};
use crate::fees::{FeePolicy, FundBill, PaymentFee, payment_fee};
use crate::ids::{
    AppId, ChannelOrderNo, MerchantId, Smid, StoreCode, TerminalId, TradeId, UpstreamOrderNo,
};
use crate::ledger::{Journal, LedgerError, payment_journal, reversal_journal};

/// How the trade was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeKind {
    /// `alipay.trade.pay`: the cashier scanned the buyer's code (R4).
    BarcodePay,
    /// `alipay.trade.precreate`: a QR for the buyer to scan (R5.1).
    Precreate,
    /// `alipay.trade.create`: a trade for a known buyer (R5.2, R6).
    Create,
}

impl TradeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeKind::BarcodePay => "barcode_pay",
            TradeKind::Precreate => "precreate",
            TradeKind::Create => "create",
        }
    }

    pub fn parse(text: &str) -> Option<TradeKind> {
        [
            TradeKind::BarcodePay,
            TradeKind::Precreate,
            TradeKind::Create,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// The Alipay method that starts this kind of trade.
    pub fn method(self) -> &'static str {
        match self {
            TradeKind::BarcodePay => "alipay.trade.pay",
            TradeKind::Precreate => "alipay.trade.precreate",
            TradeKind::Create => "alipay.trade.create",
        }
    }
}

/// The state of a trade, derived from its [`Flags`] (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TradeState {
    /// The intent is committed; Alipay has not answered yet.
    Created,
    /// Alipay's answer is unknown (20000, timeout, bad signature): query.
    Unknown,
    /// Alipay has the trade and waits for the buyer (10003 / `WAIT_BUYER_PAY`).
    Paying,
    /// Paid (`TRADE_SUCCESS`).
    Paid,
    /// Alipay refused the payment (40004): nothing happened.
    Failed,
    /// Closed unpaid (timeout or `alipay.trade.close`).
    Closed,
    /// Cancelled by `alipay.trade.cancel`: `close` (it was unpaid), `refund`
    /// (it was paid and the money went back), or none (Alipay never had it).
    Cancelled { action: Option<CancelAction> },
    /// Paid, then refunded in full (`TRADE_CLOSED` after payment).
    Refunded,
    /// Paid and no longer refundable (`TRADE_FINISHED`).
    Finished,
}

impl TradeState {
    /// The state's name in storage (the cancel action is stored beside it).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::Created => "created",
            TradeState::Unknown => "unknown",
            TradeState::Paying => "paying",
            TradeState::Paid => "paid",
            TradeState::Failed => "failed",
            TradeState::Closed => "closed",
            TradeState::Cancelled { .. } => "cancelled",
            TradeState::Refunded => "refunded",
            TradeState::Finished => "finished",
        }
    }

    /// Whether the money reached the merchant (it may have gone back since).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            TradeState::Paid
                | TradeState::Refunded
                | TradeState::Finished
                | TradeState::Cancelled {
                    action: Some(CancelAction::Refund)
                }
        )
    }

    /// Whether the closed loop is done with the trade: its outcome is known.
    pub fn is_resolved(self) -> bool {
        !matches!(
            self,
            TradeState::Created | TradeState::Unknown | TradeState::Paying
        )
    }

    /// The `trade_status` a channel sees; `None` for a failed trade (Alipay
    /// has no trade to show).
    pub fn channel_status(self) -> Option<TradeStatus> {
        match self {
            TradeState::Created | TradeState::Unknown | TradeState::Paying => {
                Some(TradeStatus::WaitBuyerPay)
            }
            TradeState::Paid => Some(TradeStatus::TradeSuccess),
            TradeState::Finished => Some(TradeStatus::TradeFinished),
            TradeState::Closed | TradeState::Cancelled { .. } | TradeState::Refunded => {
                Some(TradeStatus::TradeClosed)
            }
            TradeState::Failed => None,
        }
    }
}

/// The facts known about a trade, as bits. They are only ever added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Flags(u32);

impl Flags {
    /// The sync answer was unknown.
    pub const UNKNOWN: Flags = Flags(1);
    /// Alipay has the trade (10003, `WAIT_BUYER_PAY`, a `trade_no`).
    pub const EXISTS: Flags = Flags(1 << 1);
    /// The buyer paid.
    pub const PAID: Flags = Flags(1 << 2);
    /// Alipay closed the trade (`TRADE_CLOSED`, close, or refunds reached the total).
    pub const CLOSED: Flags = Flags(1 << 3);
    /// `TRADE_FINISHED`.
    pub const FINISHED: Flags = Flags(1 << 4);
    /// A definite failure (40004).
    pub const FAILED: Flags = Flags(1 << 5);
    /// Cancel answered without an action: Alipay had no such trade.
    pub const CANCELLED_NONE: Flags = Flags(1 << 6);
    /// Cancel closed the unpaid trade.
    pub const CANCELLED_CLOSE: Flags = Flags(1 << 7);
    /// Cancel refunded the paid trade.
    pub const CANCELLED_REFUND: Flags = Flags(1 << 8);

    const ALL: u32 = (1 << 9) - 1;

    pub const fn empty() -> Flags {
        Flags(0)
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// Reads stored bits, refusing unknown ones.
    pub fn from_bits(bits: u32) -> Option<Flags> {
        (bits & !Flags::ALL == 0).then_some(Flags(bits))
    }

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    #[must_use]
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// The state these facts mean (see the module doc).
    pub fn state(self) -> TradeState {
        let has = |f| self.contains(f);
        if has(Flags::PAID) {
            if has(Flags::CANCELLED_REFUND) {
                TradeState::Cancelled {
                    action: Some(CancelAction::Refund),
                }
            } else if has(Flags::CLOSED) || has(Flags::CANCELLED_CLOSE) {
                TradeState::Refunded
            } else if has(Flags::FINISHED) {
                TradeState::Finished
            } else {
                TradeState::Paid
            }
        } else if has(Flags::CANCELLED_CLOSE) {
            TradeState::Cancelled {
                action: Some(CancelAction::Close),
            }
        } else if has(Flags::CANCELLED_NONE) {
            TradeState::Cancelled { action: None }
        } else if has(Flags::CLOSED) {
            TradeState::Closed
        } else if has(Flags::EXISTS) {
            TradeState::Paying
        } else if has(Flags::FAILED) {
            TradeState::Failed
        } else if has(Flags::UNKNOWN) {
            TradeState::Unknown
        } else {
            TradeState::Created
        }
    }
}

/// Why Alipay refused (40004): passed through to the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    pub code: String,
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
}

/// What Alipay reported about the trade, kept once known (fill-only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Facts {
    pub trade_no: Option<String>,
    pub buyer_user_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub receipt_amount: Option<Fen>,
    pub buyer_pay_amount: Option<Fen>,
    pub paid_at: Option<Timestamp>,
    pub fund_bills: Vec<FundBill>,
    /// The 40004 answer, when there was one.
    pub failure: Option<FailureReason>,
    /// Why the sync answer was unknown, for operators.
    pub unknown_reason: Option<String>,
}

fn fill<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if slot.is_none() && value.is_some() {
        slot.clone_from(value);
    }
}

impl Facts {
    fn absorb(&mut self, s: &TradeSnapshot) {
        fill(&mut self.trade_no, &s.trade_no);
        fill(&mut self.buyer_user_id, &s.buyer_user_id);
        fill(&mut self.buyer_logon_id, &s.buyer_logon_id);
        // A trade still waiting for its buyer reports zeroed amounts
        // (`receipt_amount = 0.00`); kept, they would stick (fill-only) and the
        // payment would later be booked at zero.
        if !s.shows_payment() {
            return;
        }
        fill(&mut self.receipt_amount, &s.receipt_amount);
        fill(&mut self.buyer_pay_amount, &s.buyer_pay_amount);
        fill(&mut self.paid_at, &s.paid_at);
        if self.fund_bills.is_empty() && !s.fund_bills.is_empty() {
            self.fund_bills.clone_from(&s.fund_bills);
        }
    }
}

/// What Alipay said about a trade at one moment (a pay answer, a query, a
/// notification or a bill line), in the gateway's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeSnapshot {
    pub status: TradeStatus,
    pub trade_no: Option<String>,
    pub total_amount: Option<Fen>,
    pub receipt_amount: Option<Fen>,
    pub buyer_pay_amount: Option<Fen>,
    pub buyer_user_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    /// `gmt_payment` / `send_pay_date`.
    pub paid_at: Option<Timestamp>,
    pub fund_bills: Vec<FundBill>,
    /// Cumulative refunded amount (`refund_fee`, refund notifications).
    pub refund_fee: Option<Fen>,
}

/// Why a notification's fields do not make a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification field {field}: {problem}")]
pub struct SnapshotError {
    pub field: &'static str,
    pub problem: String,
}

impl TradeSnapshot {
    /// Whether the snapshot proves a payment happened, even when the status is
    /// `TRADE_CLOSED` (a fully refunded trade keeps its payment time).
    pub fn shows_payment(&self) -> bool {
        self.status.is_paid()
            || self.paid_at.is_some()
            || self.refund_fee.is_some_and(|f| f > Fen::ZERO)
            || self.buyer_pay_amount.is_some_and(|f| f > Fen::ZERO)
    }

    /// A pay answer of 10000 (the trade is paid).
    pub fn from_pay(r: &TradePayResponse) -> TradeSnapshot {
        TradeSnapshot {
            status: TradeStatus::TradeSuccess,
            trade_no: r.trade_no.clone(),
            total_amount: r.total_amount,
            receipt_amount: r.receipt_amount,
            buyer_pay_amount: r.buyer_pay_amount,
            buyer_user_id: r.buyer_user_id.clone(),
            buyer_logon_id: r.buyer_logon_id.clone(),
            paid_at: r.gmt_payment.map(|t| t.timestamp()),
            fund_bills: r
                .fund_bill_list
                .iter()
                .flatten()
                .map(FundBill::from)
                .collect(),
            refund_fee: None,
        }
    }

    /// A query answer; `None` when it carries no `trade_status`.
    pub fn from_query(r: &TradeQueryResponse) -> Option<TradeSnapshot> {
        Some(TradeSnapshot {
            status: r.trade_status?,
            trade_no: r.trade_no.clone(),
            total_amount: r.total_amount,
            receipt_amount: r.receipt_amount,
            buyer_pay_amount: r.buyer_pay_amount,
            buyer_user_id: r.buyer_user_id.clone(),
            buyer_logon_id: r.buyer_logon_id.clone(),
            paid_at: r.send_pay_date.map(|t| t.timestamp()),
            fund_bills: r
                .fund_bill_list
                .iter()
                .flatten()
                .map(FundBill::from)
                .collect(),
            refund_fee: None,
        })
    }

    /// A verified notification's fields (`get` returns a field's value).
    pub fn from_notification<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<TradeSnapshot, SnapshotError> {
        let bad = |field: &'static str, problem: String| SnapshotError { field, problem };
        let amount = |field: &'static str| -> Result<Option<Fen>, SnapshotError> {
            get(field)
                .map(|t| Fen::parse_yuan(t).map_err(|e| bad(field, e.to_string())))
                .transpose()
        };
        let time = |field: &'static str| -> Result<Option<Timestamp>, SnapshotError> {
            get(field)
                .map(|t| {
                    let main = t.split_once('.').map_or(t, |(m, _)| m);
                    jianlian_alipay::time::parse_beijing(main)
                        .map_err(|e| bad(field, e.to_string()))
                })
                .transpose()
        };
        let status_text =
            get("trade_status").ok_or_else(|| bad("trade_status", "missing".into()))?;
        let status = TradeStatus::parse(status_text)
            .ok_or_else(|| bad("trade_status", format!("unknown status {status_text:?}")))?;
        let fund_bills = match get("fund_bill_list") {
            None => Vec::new(),
            Some(json) => serde_json::from_str::<Vec<NotifyFundBill>>(json)
                .map_err(|e| bad("fund_bill_list", e.to_string()))?
                .iter()
                .map(FundBill::from)
                .collect(),
        };
        Ok(TradeSnapshot {
            status,
            trade_no: get("trade_no").map(str::to_owned),
            total_amount: amount("total_amount")?,
            receipt_amount: amount("receipt_amount")?,
            buyer_pay_amount: amount("buyer_pay_amount")?,
            buyer_user_id: get("buyer_id").map(str::to_owned),
            buyer_logon_id: get("buyer_logon_id").map(str::to_owned),
            paid_at: time("gmt_payment")?,
            fund_bills,
            refund_fee: amount("refund_fee")?,
        })
    }

    fn flags(&self) -> Flags {
        let mut flags = Flags::EXISTS;
        if self.shows_payment() {
            flags = flags.union(Flags::PAID);
        }
        match self.status {
            TradeStatus::WaitBuyerPay | TradeStatus::TradeSuccess => {}
            TradeStatus::TradeClosed => flags = flags.union(Flags::CLOSED),
            TradeStatus::TradeFinished => flags = flags.union(Flags::FINISHED),
        }
        flags
    }
}

/// The synchronous answer of pay, precreate or create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncAnswer {
    /// 10000 on pay: paid at once.
    Paid(TradeSnapshot),
    /// 10003 on pay, or 10000 on precreate/create: waiting for the buyer.
    AwaitingBuyer { trade_no: Option<String> },
    /// 40004 (or another definite refusal): nothing happened.
    Failed(FailureReason),
    /// 20000, `*.SYSTEM_ERROR`, timeout, transport error, bad signature.
    Unknown { reason: String },
}

/// The answer of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryAnswer {
    Found(TradeSnapshot),
    /// `ACQ.TRADE_NOT_EXIST`: Alipay has no such trade (yet).
    NotFound,
    /// The query itself failed; nothing learned.
    Unknown {
        reason: String,
    },
}

/// The answer of a cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelAnswer {
    /// 10000 with `retry_flag = N`: done; `action` says what it did.
    Done { action: Option<CancelAction> },
    /// 10000 with `retry_flag = Y`: cancel again.
    Retry,
    /// A definite refusal (e.g. `ACQ.TRADE_CANCEL_TIME_OUT`): query to learn why.
    Refused(FailureReason),
    /// Nothing learned (20000, timeout, …).
    Unknown { reason: String },
}

/// One thing the gateway learned about a trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observation {
    /// The synchronous answer of the call that started the trade.
    Answered(SyncAnswer),
    /// A poll or query planned by the closed loop, with its step.
    Queried { step: Step, answer: QueryAnswer },
    /// A query made outside the loop (a channel's `alipay.trade.query` refreshed upstream).
    Refreshed(TradeSnapshot),
    /// A verified notification from Alipay.
    Notified(TradeSnapshot),
    /// A cancel planned by the closed loop, with its step.
    CancelAnswered { step: Step, answer: CancelAnswer },
    /// The channel's `alipay.trade.close` succeeded upstream.
    ClosedOnRequest,
    /// A bill line or other reconciliation source.
    Reconciled(TradeSnapshot),
    /// Successful refunds reached the trade's total amount.
    FullyRefunded,
}

/// Why an observation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("trade {trade}: Alipay reports total_amount {reported}, the trade is {expected}")]
    AmountMismatch {
        trade: TradeId,
        expected: Fen,
        reported: Fen,
    },
    #[error("trade {trade}: Alipay reports trade_no {reported}, the trade has {known}")]
    TradeNoMismatch {
        trade: TradeId,
        known: String,
        reported: String,
    },
    #[error("trade {trade}: refunds reached the total but the trade was never paid")]
    NotPaid { trade: TradeId },
    #[error("trade {trade}: {kind:?} step {number} cannot carry this answer")]
    WrongStep {
        trade: TradeId,
        kind: StepKind,
        number: u32,
    },
    #[error("trade {trade}: cancel reported action=close on a paid trade")]
    CloseOfPaidTrade { trade: TradeId },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The closed loop's progress on a trade (see [`crate::closed_loop`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Polls done while `Paying` (highest attempt seen).
    pub polls: u32,
    /// Queries done to resolve an unknown or refused trade.
    pub queries: u32,
    /// Cancels sent.
    pub cancels: u32,
    /// The latest step (highest number) and what came of it.
    pub last_step: Option<StepRecord>,
}

/// A step of the closed loop that was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub outcome: StepOutcome,
    pub at: Timestamp,
}

/// What a step learned, as far as planning the next one is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Alipay answered (found, not found, or cancel done).
    Answered,
    /// Nothing learned: the call failed.
    Unknown,
    /// Cancel asked to be retried (`retry_flag = Y`).
    Retry,
    /// Cancel was refused.
    Refused,
}

impl Progress {
    fn record(&mut self, step: Step, outcome: StepOutcome, at: Timestamp) {
        let counter = match step.kind {
            StepKind::Poll => &mut self.polls,
            StepKind::Query => &mut self.queries,
            StepKind::Cancel => &mut self.cancels,
        };
        *counter = (*counter).max(step.attempt);
        let newer = self
            .last_step
            .is_none_or(|last| step.number > last.step.number);
        if newer {
            self.last_step = Some(StepRecord { step, outcome, at });
        }
    }
}

/// What a channel asked for, before it has a row number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeIntent {
    pub kind: TradeKind,
    pub channel: AppId,
    pub merchant: MerchantId,
    pub smid: Smid,
    pub store: StoreCode,
    pub terminal: TerminalId,
    pub channel_order_no: ChannelOrderNo,
    pub subject: String,
    pub total_amount: Fen,
    pub notify_url: Option<String>,
    /// `timeout_express` as given, already parsed.
    pub timeout: Option<SignedDuration>,
    pub created_at: Timestamp,
}

/// Why an intent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error(transparent)]
    Amount(#[from] jianlian_alipay::MoneyError),
    #[error("subject must be 1 to 256 characters without '/', '=' or '&'")]
    Subject,
}

/// Longest `subject` Alipay accepts.
pub const SUBJECT_CHARS_MAX: usize = 256;

impl TradeIntent {
    /// Checks what Alipay would refuse anyway, before anything is written.
    pub fn check(&self) -> Result<(), IntentError> {
        self.total_amount.check_trade_amount()?;
        let chars = self.subject.chars().count();
        if chars == 0 || chars > SUBJECT_CHARS_MAX || self.subject.contains(['/', '=', '&']) {
            return Err(IntentError::Subject);
        }
        Ok(())
    }

    /// Whether an existing trade is this same request (a retry), rather than a
    /// different order reusing the channel's order number.
    pub fn matches(&self, trade: &Trade) -> bool {
        self.kind == trade.kind
            && self.channel == trade.channel
            && self.merchant == trade.merchant
            && self.store == trade.store
            && self.terminal == trade.terminal
            && self.channel_order_no == trade.channel_order_no
            && self.total_amount == trade.total_amount
            && self.subject == trade.subject
    }
}

/// A trade as the gateway keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub id: TradeId,
    pub kind: TradeKind,
    pub channel: AppId,
    pub merchant: MerchantId,
    pub smid: Smid,
    pub store: StoreCode,
    pub terminal: TerminalId,
    pub channel_order_no: ChannelOrderNo,
    pub upstream_order_no: UpstreamOrderNo,
    pub subject: String,
    pub total_amount: Fen,
    pub notify_url: Option<String>,
    pub created_at: Timestamp,
    /// When the buyer can no longer pay (see [`LoopPolicy::expires_at`]).
    pub expires_at: Timestamp,
    /// Always `flags.state()`, kept beside the flags for matching and
    /// queries; the store refuses a row where the two disagree.
    pub state: TradeState,
    /// When the trade entered its current state.
    pub state_since: Timestamp,
    pub flags: Flags,
    pub facts: Facts,
    pub progress: Progress,
    /// The fee booked when the trade was paid.
    pub fee: Option<PaymentFee>,
    /// Bumped by every change; the store compares-and-sets on it.
    pub version: i64,
}

impl Trade {
    /// The trade for a committed intent, numbered `id`.
    pub fn from_intent(id: TradeId, intent: TradeIntent, policy: &LoopPolicy) -> Trade {
        let expires_at = policy.expires_at(intent.kind, intent.created_at, intent.timeout);
        Trade {
            id,
            kind: intent.kind,
            upstream_order_no: UpstreamOrderNo::derive(intent.created_at, id),
            channel: intent.channel,
            merchant: intent.merchant,
            smid: intent.smid,
            store: intent.store,
            terminal: intent.terminal,
            channel_order_no: intent.channel_order_no,
            subject: intent.subject,
            total_amount: intent.total_amount,
            notify_url: intent.notify_url,
            created_at: intent.created_at,
            expires_at,
            state: TradeState::Created,
            state_since: intent.created_at,
            flags: Flags::empty(),
            facts: Facts::default(),
            progress: Progress::default(),
            fee: None,
            version: 1,
        }
    }

    /// Refunds may be requested: paid, not refunded in full, not finished.
    pub fn is_refundable(&self) -> bool {
        self.state == TradeState::Paid
    }
}

/// A change to notify the channel of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub status: TradeStatus,
}

/// The result of applying an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing new: the same or an older observation.
    NoOp,
    /// The trade changed; persist it with its journals and notice atomically.
    Changed(Box<Change>),
}

/// A trade change with everything that must be written with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The trade after the change, `version` bumped.
    pub trade: Trade,
    /// Journals to book (payment, reversal), in order.
    pub journals: Vec<Journal>,
    /// A notification to queue for the channel.
    pub notice: Option<Notice>,
}

fn wrong_step(trade: &Trade, step: Step) -> TransitionError {
    TransitionError::WrongStep {
        trade: trade.id,
        kind: step.kind,
        number: step.number,
    }
}

fn check_snapshot(trade: &Trade, s: &TradeSnapshot) -> Result<(), TransitionError> {
    if let Some(reported) = s.total_amount
        && reported != trade.total_amount
    {
        return Err(TransitionError::AmountMismatch {
            trade: trade.id,
            expected: trade.total_amount,
            reported,
        });
    }
    check_trade_no(trade, s.trade_no.as_deref())
}

fn check_trade_no(trade: &Trade, reported: Option<&str>) -> Result<(), TransitionError> {
    if let (Some(known), Some(reported)) = (trade.facts.trade_no.as_deref(), reported)
        && known != reported
    {
        return Err(TransitionError::TradeNoMismatch {
            trade: trade.id,
            known: known.to_owned(),
            reported: reported.to_owned(),
        });
    }
    Ok(())
}

/// **The single transition function.** Applies `observation` to `trade` at
/// `now`; `fees` is the merchant's fee policy, used when the trade becomes paid.
pub fn apply_observation(
    trade: &Trade,
    observation: &Observation,
    now: Timestamp,
    fees: FeePolicy,
) -> Result<Applied, TransitionError> {
    let mut next = trade.clone();
    let mut flags = Flags::empty();
    match observation {
        Observation::Answered(answer) => match answer {
            SyncAnswer::Paid(s) => {
                check_snapshot(trade, s)?;
                flags = s.flags().union(Flags::PAID);
                next.facts.absorb(s);
            }
            SyncAnswer::AwaitingBuyer { trade_no } => {
                check_trade_no(trade, trade_no.as_deref())?;
                flags = Flags::EXISTS;
                fill(&mut next.facts.trade_no, trade_no);
            }
            SyncAnswer::Failed(reason) => {
                flags = Flags::FAILED;
                fill(&mut next.facts.failure, &Some(reason.clone()));
            }
            SyncAnswer::Unknown { reason } => {
                flags = Flags::UNKNOWN;
                fill(&mut next.facts.unknown_reason, &Some(reason.clone()));
            }
        },
        Observation::Queried { step, answer } => {
            if !matches!(step.kind, StepKind::Poll | StepKind::Query) || step.number == 0 {
                return Err(wrong_step(trade, *step));
            }
            let outcome = match answer {
                QueryAnswer::Found(s) => {
                    check_snapshot(trade, s)?;
                    flags = s.flags();
                    next.facts.absorb(s);
                    StepOutcome::Answered
                }
                QueryAnswer::NotFound => StepOutcome::Answered,
                QueryAnswer::Unknown { .. } => StepOutcome::Unknown,
            };
            next.progress.record(*step, outcome, now);
        }
        Observation::Refreshed(s) | Observation::Notified(s) | Observation::Reconciled(s) => {
            check_snapshot(trade, s)?;
            flags = s.flags();
            next.facts.absorb(s);
        }
        Observation::CancelAnswered { step, answer } => {
            if step.kind != StepKind::Cancel || step.number == 0 {
                return Err(wrong_step(trade, *step));
            }
            let outcome = match answer {
                CancelAnswer::Done { action } => {
                    flags = match action {
                        None => Flags::CANCELLED_NONE,
                        Some(CancelAction::Close) => {
                            if trade.flags.contains(Flags::PAID) {
                                return Err(TransitionError::CloseOfPaidTrade { trade: trade.id });
                            }
                            Flags::CANCELLED_CLOSE.union(Flags::EXISTS)
                        }
                        Some(CancelAction::Refund) => Flags::CANCELLED_REFUND
                            .union(Flags::PAID)
                            .union(Flags::EXISTS),
                    };
                    StepOutcome::Answered
                }
                CancelAnswer::Retry => StepOutcome::Retry,
                CancelAnswer::Refused(_) => StepOutcome::Refused,
                CancelAnswer::Unknown { .. } => StepOutcome::Unknown,
            };
            next.progress.record(*step, outcome, now);
        }
        Observation::ClosedOnRequest => {
            flags = Flags::CLOSED.union(Flags::EXISTS);
        }
        Observation::FullyRefunded => {
            if !trade.flags.contains(Flags::PAID) {
                return Err(TransitionError::NotPaid { trade: trade.id });
            }
            flags = Flags::CLOSED;
        }
    }

    next.flags = trade.flags.union(flags);
    next.state = next.flags.state();
    if next.state != trade.state {
        next.state_since = now;
    }

    let mut journals = Vec::new();
    let became_paid = next.flags.contains(Flags::PAID) && !trade.flags.contains(Flags::PAID);
    if became_paid {
        let receipt = next.facts.receipt_amount.unwrap_or(trade.total_amount);
        let fee = payment_fee(fees, receipt, &next.facts.fund_bills);
        journals.extend(payment_journal(trade.id, trade.merchant, &fee, now)?);
        next.fee = Some(fee);
    }
    let became_reversed = next.flags.contains(Flags::CANCELLED_REFUND)
        && !trade.flags.contains(Flags::CANCELLED_REFUND);
    if became_reversed && let Some(fee) = next.fee {
        journals.extend(reversal_journal(trade.id, trade.merchant, &fee, now)?);
    }

    let notice = match (trade.state.channel_status(), next.state.channel_status()) {
        (before, Some(after))
            if before != Some(after)
                && after != TradeStatus::WaitBuyerPay
                && trade.notify_url.is_some() =>
        {
            Some(Notice { status: after })
        }
        _ => None,
    };

    if next == *trade {
        return Ok(Applied::NoOp);
    }
    next.version = trade.version.saturating_add(1);
    Ok(Applied::Changed(Box::new(Change {
        trade: next,
        journals,
        notice,
    })))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::closed_loop::LoopPolicy;
    use jianlian_alipay::Rate;

    pub(crate) fn sample_trade(kind: TradeKind) -> Trade {
        let intent = TradeIntent {
            kind,
            channel: AppId::parse("2021000000000001").unwrap(),
            merchant: MerchantId::new(3).unwrap(),
            smid: Smid::parse("2088000000000003").unwrap(),
            store: StoreCode::parse("SHKFC001").unwrap(),
            terminal: TerminalId::parse("T01").unwrap(),
            channel_order_no: ChannelOrderNo::parse("ORDER1").unwrap(),
            subject: "coffee".into(),
            total_amount: Fen::new(10_000),
            notify_url: Some("https://channel.example/notify".into()),
            timeout: None,
            created_at: Timestamp::UNIX_EPOCH,
        };
        Trade::from_intent(TradeId::new(7).unwrap(), intent, &LoopPolicy::default())
    }

    fn fees() -> FeePolicy {
        FeePolicy::flat(Rate::parse("0.006").unwrap())
    }

    fn snapshot(status: TradeStatus) -> TradeSnapshot {
        TradeSnapshot {
            status,
            trade_no: Some("2026030222001400000000000001".into()),
            total_amount: Some(Fen::new(10_000)),
            receipt_amount: status.is_paid().then_some(Fen::new(10_000)),
            buyer_pay_amount: None,
            buyer_user_id: None,
            buyer_logon_id: None,
            paid_at: None,
            fund_bills: vec![],
            refund_fee: None,
        }
    }

    fn changed(applied: Applied) -> Change {
        match applied {
            Applied::Changed(c) => *c,
            Applied::NoOp => panic!("expected a change"),
        }
    }

    #[test]
    fn paid_answer_books_the_payment_once() {
        let t = sample_trade(TradeKind::BarcodePay);
        let obs = Observation::Answered(SyncAnswer::Paid(snapshot(TradeStatus::TradeSuccess)));
        let c = changed(apply_observation(&t, &obs, Timestamp::UNIX_EPOCH, fees()).unwrap());
        assert_eq!(c.trade.state, TradeState::Paid);
        assert_eq!(c.journals.len(), 1);
        assert_eq!(c.trade.fee.unwrap().fee, Fen::new(60));
        assert_eq!(
            c.notice,
            Some(Notice {
                status: TradeStatus::TradeSuccess
            })
        );
        assert_eq!(c.trade.version, 2);
        let again = apply_observation(&c.trade, &obs, Timestamp::UNIX_EPOCH, fees()).unwrap();
        assert_eq!(again, Applied::NoOp);
        let notified = Observation::Notified(snapshot(TradeStatus::TradeSuccess));
        assert_eq!(
            apply_observation(&c.trade, &notified, Timestamp::UNIX_EPOCH, fees()).unwrap(),
            Applied::NoOp,
            "a duplicate success notification is harmless"
        );
    }

    #[test]
    fn zeroed_amounts_of_a_waiting_trade_do_not_stick() {
        let t = sample_trade(TradeKind::BarcodePay);
        let mut waiting = snapshot(TradeStatus::WaitBuyerPay);
        waiting.receipt_amount = Some(Fen::ZERO);
        waiting.buyer_pay_amount = Some(Fen::ZERO);
        let t = changed(
            apply_observation(
                &t,
                &Observation::Refreshed(waiting),
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        )
        .trade;
        assert_eq!(t.facts.receipt_amount, None);
        let paid = changed(
            apply_observation(
                &t,
                &Observation::Refreshed(snapshot(TradeStatus::TradeSuccess)),
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        );
        assert_eq!(paid.trade.facts.receipt_amount, Some(Fen::new(10_000)));
        assert_eq!(
            paid.trade.fee.unwrap().fee,
            Fen::new(60),
            "booked on the real receipt"
        );
    }

    #[test]
    fn older_observations_do_not_move_a_paid_trade_back() {
        let t = sample_trade(TradeKind::Precreate);
        let paid = Observation::Notified(snapshot(TradeStatus::TradeSuccess));
        let t = changed(apply_observation(&t, &paid, Timestamp::UNIX_EPOCH, fees()).unwrap()).trade;
        let waiting = Observation::Notified(snapshot(TradeStatus::WaitBuyerPay));
        assert_eq!(
            apply_observation(&t, &waiting, Timestamp::UNIX_EPOCH, fees()).unwrap(),
            Applied::NoOp
        );
        let failed = Observation::Answered(SyncAnswer::Failed(FailureReason {
            code: "40004".into(),
            msg: "Business Failed".into(),
            sub_code: Some("ACQ.PAYMENT_FAIL".into()),
            sub_msg: None,
        }));
        let after = apply_observation(&t, &failed, Timestamp::UNIX_EPOCH, fees()).unwrap();
        if let Applied::Changed(c) = after {
            assert_eq!(
                c.trade.state,
                TradeState::Paid,
                "a late failure cannot unpay"
            );
        }
    }

    #[test]
    fn contradictions_are_rejected() {
        let t = sample_trade(TradeKind::BarcodePay);
        let mut wrong = snapshot(TradeStatus::TradeSuccess);
        wrong.total_amount = Some(Fen::new(1));
        let err = apply_observation(
            &t,
            &Observation::Notified(wrong),
            Timestamp::UNIX_EPOCH,
            fees(),
        );
        assert!(matches!(err, Err(TransitionError::AmountMismatch { .. })));
        let err = apply_observation(
            &t,
            &Observation::FullyRefunded,
            Timestamp::UNIX_EPOCH,
            fees(),
        );
        assert!(matches!(err, Err(TransitionError::NotPaid { .. })));
        let paid = changed(
            apply_observation(
                &t,
                &Observation::Notified(snapshot(TradeStatus::TradeSuccess)),
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        )
        .trade;
        let mut other = snapshot(TradeStatus::TradeSuccess);
        other.trade_no = Some("2026030222001400000000000999".into());
        let err = apply_observation(
            &paid,
            &Observation::Notified(other),
            Timestamp::UNIX_EPOCH,
            fees(),
        );
        assert!(matches!(err, Err(TransitionError::TradeNoMismatch { .. })));
    }

    #[test]
    fn closed_after_payment_is_refunded_and_cancel_refund_reverses() {
        let t = sample_trade(TradeKind::BarcodePay);
        let paid = changed(
            apply_observation(
                &t,
                &Observation::Answered(SyncAnswer::Paid(snapshot(TradeStatus::TradeSuccess))),
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        )
        .trade;
        let closed = changed(
            apply_observation(
                &paid,
                &Observation::Notified(snapshot(TradeStatus::TradeClosed)),
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        );
        assert_eq!(closed.trade.state, TradeState::Refunded);
        assert!(
            closed.journals.is_empty(),
            "refunds are booked by refund records"
        );

        let step = Step {
            number: 1,
            kind: StepKind::Cancel,
            attempt: 1,
        };
        let waiting = changed(
            apply_observation(
                &t,
                &Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None }),
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        )
        .trade;
        let reversed = changed(
            apply_observation(
                &waiting,
                &Observation::CancelAnswered {
                    step,
                    answer: CancelAnswer::Done {
                        action: Some(CancelAction::Refund),
                    },
                },
                Timestamp::UNIX_EPOCH,
                fees(),
            )
            .unwrap(),
        );
        assert_eq!(
            reversed.trade.state,
            TradeState::Cancelled {
                action: Some(CancelAction::Refund)
            }
        );
        let kinds: Vec<_> = reversed.journals.iter().map(|j| j.kind()).collect();
        assert_eq!(
            kinds,
            vec![
                crate::ledger::JournalKind::Payment,
                crate::ledger::JournalKind::Reversal
            ]
        );
    }
}
