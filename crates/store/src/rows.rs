//! Row types as the database returns them (integers and text only, identical
//! on both backends) and their conversion to and from the core's types. A row
//! that does not convert is reported as corrupt, never patched up.

use jianlian_alipay::api::trade::CancelAction;
use jianlian_alipay::{Fen, Rate};
use jianlian_core::channel::{Channel, ChannelStatus};
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{
    AppId, ChannelOrderNo, ExternalId, MerchantId, Pid, RefundId, RefundRequestNo, Smid, StoreCode,
    TerminalId, TradeId, UpstreamOrderNo,
};
use jianlian_core::merchant::{Merchant, OnboardingState, SourceChange};
use jianlian_core::refund::{Refund, RefundState};
use jianlian_core::trade::{Flags, Trade, TradeKind, TradeState};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// An instant as stored: epoch milliseconds.
pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::corrupt(format!("time {ms}: {e}")))
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    ms.map(ts).transpose()
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(format!("encoding JSON: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("{what}: {e}")))
}

fn parsed<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(StoreError::corrupt)
}

fn rate(ppm: i64) -> Result<Rate, StoreError> {
    u32::try_from(ppm)
        .ok()
        .and_then(|p| Rate::from_ppm(p).ok())
        .ok_or_else(|| StoreError::corrupt(format!("fee rate {ppm} ppm")))
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChannelRow {
    pub app_id: String,
    pub name: String,
    pub pid: String,
    pub parent_app_id: Option<String>,
    pub public_key: String,
    pub notify_hosts: String,
    pub status: String,
    pub created_at: i64,
}

macro_rules! channel_columns {
    () => {
        "app_id, name, pid, parent_app_id, public_key, notify_hosts, status, created_at"
    };
}
pub(crate) use channel_columns;

impl TryFrom<ChannelRow> for Channel {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> Result<Channel, StoreError> {
        Ok(Channel {
            app_id: parsed(AppId::parse(&r.app_id))?,
            name: r.name,
            pid: parsed(Pid::parse(&r.pid))?,
            parent: r
                .parent_app_id
                .as_deref()
                .map(AppId::parse)
                .transpose()
                .map_err(StoreError::corrupt)?,
            public_key: r.public_key,
            notify_hosts: from_json("channels.notify_hosts", &r.notify_hosts)?,
            status: ChannelStatus::parse(&r.status)
                .ok_or_else(|| StoreError::corrupt(format!("channel status {:?}", r.status)))?,
            created_at: ts(r.created_at)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MerchantRow {
    pub id: i64,
    pub channel_app_id: String,
    pub external_id: String,
    pub business_license: Option<String>,
    pub profile: String,
    pub source: String,
    pub smid: Option<String>,
    pub state: String,
    pub rejection: Option<String>,
    pub fee_rate_ppm: i64,
    pub credit_fee_rate_ppm: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

macro_rules! merchant_columns {
    () => {
        "id, channel_app_id, external_id, business_license, profile, source, smid, state, \
         rejection, fee_rate_ppm, credit_fee_rate_ppm, created_at, updated_at, version"
    };
}
pub(crate) use merchant_columns;

impl TryFrom<MerchantRow> for Merchant {
    type Error = StoreError;
    fn try_from(r: MerchantRow) -> Result<Merchant, StoreError> {
        Ok(Merchant {
            id: parsed(MerchantId::new(r.id))?,
            channel: parsed(AppId::parse(&r.channel_app_id))?,
            external_id: parsed(ExternalId::parse(&r.external_id))?,
            business_license: r.business_license,
            profile: from_json("merchants.profile", &r.profile)?,
            source: parsed(Pid::parse(&r.source))?,
            smid: r
                .smid
                .as_deref()
                .map(Smid::parse)
                .transpose()
                .map_err(StoreError::corrupt)?,
            state: OnboardingState::parse(&r.state)
                .ok_or_else(|| StoreError::corrupt(format!("onboarding state {:?}", r.state)))?,
            rejection: r.rejection,
            fees: FeePolicy {
                rate: rate(r.fee_rate_ppm)?,
                credit_rate: r.credit_fee_rate_ppm.map(rate).transpose()?,
            },
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
            version: r.version,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SourceChangeRow {
    pub merchant_id: i64,
    pub from_source: String,
    pub to_source: String,
    pub actor: String,
    pub reason: String,
    pub at: i64,
}

impl TryFrom<SourceChangeRow> for SourceChange {
    type Error = StoreError;
    fn try_from(r: SourceChangeRow) -> Result<SourceChange, StoreError> {
        Ok(SourceChange {
            merchant: parsed(MerchantId::new(r.merchant_id))?,
            from: parsed(Pid::parse(&r.from_source))?,
            to: parsed(Pid::parse(&r.to_source))?,
            actor: r.actor,
            reason: r.reason,
            at: ts(r.at)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TradeRow {
    pub id: i64,
    pub kind: String,
    pub channel_app_id: String,
    pub merchant_id: i64,
    pub smid: String,
    pub store_code: String,
    pub terminal_id: String,
    pub channel_out_trade_no: String,
    pub upstream_out_trade_no: Option<String>,
    pub subject: String,
    pub total_amount: i64,
    pub notify_url: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: String,
    pub cancel_action: Option<String>,
    pub state_since: i64,
    pub flags: i64,
    pub trade_no: Option<String>,
    pub buyer_user_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub receipt_amount: Option<i64>,
    pub buyer_pay_amount: Option<i64>,
    pub paid_at: Option<i64>,
    pub fund_bills: String,
    pub failure: Option<String>,
    pub unknown_reason: Option<String>,
    pub progress: String,
    pub fee: Option<String>,
    pub version: i64,
}

macro_rules! trade_columns {
    () => {
        "id, kind, channel_app_id, merchant_id, smid, store_code, terminal_id, \
         channel_out_trade_no, upstream_out_trade_no, subject, total_amount, notify_url, \
         created_at, expires_at, state, cancel_action, state_since, flags, trade_no, \
         buyer_user_id, buyer_logon_id, receipt_amount, buyer_pay_amount, paid_at, fund_bills, \
         failure, unknown_reason, progress, fee, version"
    };
}
pub(crate) use trade_columns;

pub(crate) fn cancel_action_str(state: TradeState) -> Option<&'static str> {
    match state {
        TradeState::Cancelled {
            action: Some(CancelAction::Close),
        } => Some("close"),
        TradeState::Cancelled {
            action: Some(CancelAction::Refund),
        } => Some("refund"),
        _ => None,
    }
}

impl TryFrom<TradeRow> for Trade {
    type Error = StoreError;
    fn try_from(r: TradeRow) -> Result<Trade, StoreError> {
        let flags = u32::try_from(r.flags)
            .ok()
            .and_then(Flags::from_bits)
            .ok_or_else(|| StoreError::corrupt(format!("trade {} flags {}", r.id, r.flags)))?;
        let state = flags.state();
        // The state column is derived from the flags; a disagreement means the
        // row was edited by hand or written by a different version.
        if state.as_str() != r.state || cancel_action_str(state) != r.cancel_action.as_deref() {
            return Err(StoreError::corrupt(format!(
                "trade {}: state {:?}/{:?} does not match its flags",
                r.id, r.state, r.cancel_action
            )));
        }
        let id = parsed(TradeId::new(r.id))?;
        let upstream = r.upstream_out_trade_no.ok_or_else(|| {
            StoreError::corrupt(format!("trade {id} has no upstream out_trade_no"))
        })?;
        Ok(Trade {
            id,
            kind: TradeKind::parse(&r.kind)
                .ok_or_else(|| StoreError::corrupt(format!("trade kind {:?}", r.kind)))?,
            channel: parsed(AppId::parse(&r.channel_app_id))?,
            merchant: parsed(MerchantId::new(r.merchant_id))?,
            smid: parsed(Smid::parse(&r.smid))?,
            store: parsed(StoreCode::parse(&r.store_code))?,
            terminal: parsed(TerminalId::parse(&r.terminal_id))?,
            channel_order_no: parsed(ChannelOrderNo::parse(&r.channel_out_trade_no))?,
            upstream_order_no: parsed(UpstreamOrderNo::parse(&upstream))?,
            subject: r.subject,
            total_amount: Fen::new(r.total_amount),
            notify_url: r.notify_url,
            created_at: ts(r.created_at)?,
            expires_at: ts(r.expires_at)?,
            state,
            state_since: ts(r.state_since)?,
            flags,
            facts: jianlian_core::trade::Facts {
                trade_no: r.trade_no,
                buyer_user_id: r.buyer_user_id,
                buyer_logon_id: r.buyer_logon_id,
                receipt_amount: r.receipt_amount.map(Fen::new),
                buyer_pay_amount: r.buyer_pay_amount.map(Fen::new),
                paid_at: opt_ts(r.paid_at)?,
                fund_bills: from_json("trades.fund_bills", &r.fund_bills)?,
                failure: r
                    .failure
                    .as_deref()
                    .map(|f| from_json("trades.failure", f))
                    .transpose()?,
                unknown_reason: r.unknown_reason,
            },
            progress: from_json("trades.progress", &r.progress)?,
            fee: r
                .fee
                .as_deref()
                .map(|f| from_json("trades.fee", f))
                .transpose()?,
            version: r.version,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RefundRow {
    pub id: i64,
    pub trade_id: i64,
    pub out_request_no: String,
    pub amount: i64,
    pub reason: Option<String>,
    pub state: String,
    pub requested_at: i64,
    pub state_since: i64,
    pub failure: Option<String>,
    pub share: Option<String>,
    pub refunded_at: Option<i64>,
    pub version: i64,
}

macro_rules! refund_columns {
    () => {
        "id, trade_id, out_request_no, amount, reason, state, requested_at, state_since, \
         failure, share, refunded_at, version"
    };
}
pub(crate) use refund_columns;

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;
    fn try_from(r: RefundRow) -> Result<Refund, StoreError> {
        Ok(Refund {
            id: parsed(RefundId::new(r.id))?,
            trade: parsed(TradeId::new(r.trade_id))?,
            out_request_no: parsed(RefundRequestNo::parse(&r.out_request_no))?,
            amount: Fen::new(r.amount),
            reason: r.reason,
            state: RefundState::parse(&r.state)
                .ok_or_else(|| StoreError::corrupt(format!("refund state {:?}", r.state)))?,
            requested_at: ts(r.requested_at)?,
            state_since: ts(r.state_since)?,
            failure: r
                .failure
                .as_deref()
                .map(|f| from_json("refunds.failure", f))
                .transpose()?,
            share: r
                .share
                .as_deref()
                .map(|s| from_json("refunds.share", s))
                .transpose()?,
            refunded_at: opt_ts(r.refunded_at)?,
            version: r.version,
        })
    }
}

/// A rate as stored: parts per million.
pub(crate) fn rate_ppm(rate: Rate) -> i64 {
    i64::from(rate.ppm())
}

/// A store or terminal code column.
pub(crate) fn store_code(text: &str) -> Result<StoreCode, StoreError> {
    parsed(StoreCode::parse(text))
}

pub(crate) fn terminal_id(text: &str) -> Result<TerminalId, StoreError> {
    parsed(TerminalId::parse(text))
}

pub(crate) fn merchant_id(id: i64) -> Result<MerchantId, StoreError> {
    parsed(MerchantId::new(id))
}

pub(crate) fn trade_id(id: i64) -> Result<TradeId, StoreError> {
    parsed(TradeId::new(id))
}

pub(crate) fn app_id(text: &str) -> Result<AppId, StoreError> {
    parsed(AppId::parse(text))
}
