//! The trade methods of the channel API (R3–R5, R10): each checks what the
//! acquirer must check before Alipay sees anything (R3.1 the merchant is this
//! channel's, R3.2 store and terminal are registered, R3.7 the payment code),
//! commits the trade intent, calls Alipay under the gateway's own
//! `out_trade_no` (the channel's number travels as `merchant_order_no`, R3.3),
//! feeds the answer to the single write path and answers the channel in its
//! own terms (its `out_trade_no`, never the gateway's).
//!
//! **Never a second upstream pay**: the intent insert is idempotent by
//! `(channel, out_trade_no)`; only the request that created the row calls
//! `alipay.trade.pay`, every other one is answered from the record.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jianlian_alipay::api::parse_biz;
use jianlian_alipay::api::trade::{
    TradeCancel, TradeClose, TradeCreate, TradeOrder, TradePay, TradePrecreate, TradeQuery,
    TradeRef, TradeRefund, TradeRefundQuery,
};
use jianlian_alipay::auth_code::mask;
use jianlian_alipay::response::Failure;
use jianlian_alipay::server::ErrorReply;
use jianlian_alipay::time::format_beijing;
use jianlian_alipay::{Code, Fen, Outcome};
use jianlian_core::closed_loop::{Step, StepKind, parse_timeout_express};
use jianlian_core::ids::{ChannelOrderNo, RefundRequestNo, Smid, StoreCode, TerminalId};
use jianlian_core::merchant::{Merchant, OnboardingState};
use jianlian_core::notify::check_notify_url;
use jianlian_core::refund::{Refund, RefundError, RefundObservation, RefundRequest, RefundState};
use jianlian_core::trade::{
    Observation, SyncAnswer, Trade, TradeIntent, TradeKind, TradeSnapshot, TradeState,
};
use jianlian_store::{Inserted, Reservation, StoreError};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Answer, Caller, MethodResult, acq, internal};
use crate::service::Service;
use crate::upstream::{
    cancel_answer, failure_reason, query_answer, refund_answer, refund_query_answer,
};

fn invalid(detail: impl Into<String>) -> ErrorReply {
    ErrorReply::invalid_parameter(detail)
}

fn parse<T: serde::de::DeserializeOwned>(biz: &str) -> Result<T, ErrorReply> {
    parse_biz(biz).map_err(invalid)
}

/// The trade's fields as a channel sees them.
fn fields<T: Serialize>(body: &T, channel_no: &ChannelOrderNo) -> Map<String, Value> {
    let mut map = match serde_json::to_value(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.remove("code");
    map.remove("msg");
    map.insert("out_trade_no".into(), channel_no.as_str().into());
    map
}

/// Alipay's refusal passed through, in the channel's terms.
fn pass_failure(f: &Failure, channel_no: Option<&ChannelOrderNo>) -> ErrorReply {
    let mut reply = ErrorReply::new(
        f.code,
        f.sub_code.clone().unwrap_or_default(),
        f.sub_msg.clone().unwrap_or_default(),
    );
    for (k, v) in &f.node {
        if !matches!(k.as_str(), "code" | "msg" | "sub_code" | "sub_msg") {
            reply.fields.insert(k.clone(), v.clone());
        }
    }
    if let Some(no) = channel_no {
        reply
            .fields
            .insert("out_trade_no".into(), no.as_str().into());
    }
    reply
}

fn fund_bills_json(trade: &Trade) -> Option<Value> {
    if trade.facts.fund_bills.is_empty() {
        return None;
    }
    Some(Value::Array(
        trade
            .facts
            .fund_bills
            .iter()
            .map(|b| {
                let mut m = Map::new();
                m.insert("fund_channel".into(), b.fund_channel.clone().into());
                m.insert("amount".into(), b.amount.to_yuan().into());
                if let Some(t) = &b.fund_type {
                    m.insert("fund_type".into(), t.clone().into());
                }
                Value::Object(m)
            })
            .collect(),
    ))
}

/// The record's facts as answer fields; `paid_field` names the payment time
/// (`gmt_payment` for pay, `send_pay_date` for query).
fn record_fields(trade: &Trade, paid_field: &str) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    let f = &trade.facts;
    put("trade_no", f.trade_no.clone().map(Value::from));
    put("out_trade_no", Some(trade.channel_order_no.as_str().into()));
    put("buyer_logon_id", f.buyer_logon_id.clone().map(Value::from));
    put("buyer_user_id", f.buyer_user_id.clone().map(Value::from));
    put("total_amount", Some(trade.total_amount.to_yuan().into()));
    put(
        "receipt_amount",
        f.receipt_amount.map(|a| a.to_yuan().into()),
    );
    put(
        "buyer_pay_amount",
        f.buyer_pay_amount.map(|a| a.to_yuan().into()),
    );
    put(paid_field, f.paid_at.map(|t| format_beijing(t).into()));
    put("fund_bill_list", fund_bills_json(trade));
    m
}

/// The trade's order number check and the merchant, store, terminal and
/// notify-URL checks, giving the intent to commit.
async fn intent_for(
    svc: &Service,
    caller: &Caller,
    kind: TradeKind,
    order: &TradeOrder,
) -> Result<TradeIntent, ErrorReply> {
    let channel_order_no =
        ChannelOrderNo::parse(&order.out_trade_no).map_err(|e| invalid(e.to_string()))?;
    order
        .total_amount
        .check_trade_amount()
        .map_err(|e| invalid(format!("total_amount: {e}")))?;
    let merchant = merchant_of(svc, caller, order).await?;
    let smid = merchant
        .smid
        .clone()
        .ok_or_else(|| acq("ACQ.INVALID_PARAMETER", "the merchant is not onboarded"))?;
    let store = required_code(order.store_id.as_deref(), "store_id", StoreCode::parse)?;
    let terminal = required_code(
        order.terminal_id.as_deref(),
        "terminal_id",
        TerminalId::parse,
    )?;
    let notify_url = match &caller.notify_url {
        None => None,
        Some(url) => Some(
            check_notify_url(
                url,
                &caller.channel.notify_hosts,
                svc.settings.address_policy,
            )
            .map_err(|e| invalid(e.to_string()))?
            .url,
        ),
    };
    let now = svc.now();
    let timeout = order
        .timeout_express
        .as_deref()
        .map(|t| parse_timeout_express(t, now))
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let intent = TradeIntent {
        kind,
        channel: caller.channel.app_id.clone(),
        merchant: merchant.id,
        smid,
        store,
        terminal,
        channel_order_no,
        subject: order.subject.clone(),
        total_amount: order.total_amount,
        notify_url,
        timeout,
        created_at: now,
    };
    intent.check().map_err(|e| invalid(e.to_string()))?;
    Ok(intent)
}

fn required_code<T, E: std::fmt::Display>(
    value: Option<&str>,
    field: &str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, ErrorReply> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Err(invalid(format!(
            "{field} is required for indirect trades (R3.2): name the real store and terminal"
        ))),
        Some(v) => parse(v).map_err(|e| invalid(e.to_string())),
    }
}

/// R3.1, R2.2: `sub_merchant.merchant_id` names an onboarded merchant that
/// this channel (or one below it) brought. A merchant of another channel is
/// answered exactly like an unknown one.
async fn merchant_of(
    svc: &Service,
    caller: &Caller,
    order: &TradeOrder,
) -> Result<Merchant, ErrorReply> {
    let text = order
        .sub_merchant
        .as_ref()
        .map(|s| s.merchant_id.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            acq(
                "ACQ.INVALID_PARAMETER",
                "sub_merchant.merchant_id (the smid) is required for indirect trades (R3.1)",
            )
        })?;
    let not_ours = || {
        acq(
            "ACQ.INVALID_PARAMETER",
            format!("sub_merchant.merchant_id {text} is not an onboarded merchant of this channel"),
        )
    };
    let smid = Smid::parse(text).map_err(|_| not_ours())?;
    let merchant = svc
        .onboarded_merchant(&smid)
        .await
        .map_err(|e| internal("merchant lookup", e))?
        .ok_or_else(not_ours)?;
    let visible = svc
        .sees_merchant(&caller.channel.app_id, &merchant)
        .await
        .map_err(|e| internal("channel tree", e))?;
    if !visible || merchant.state != OnboardingState::Onboarded {
        return Err(not_ours());
    }
    Ok(merchant)
}

/// The result of committing an intent.
enum Started {
    /// This request created the trade: call Alipay.
    New(Trade),
    /// The same request was seen before: answer from the record.
    Existing(Trade),
}

async fn start(
    svc: &Service,
    caller: &Caller,
    intent: &TradeIntent,
) -> Result<Started, ErrorReply> {
    let seen = caller.remembered.then_some(&caller.channel);
    match svc.store.insert_trade_intent_as(intent, seen).await {
        Ok(Inserted::Created(t)) => Ok(Started::New(t)),
        Ok(Inserted::Existing(t)) if intent.matches(&t) => Ok(Started::Existing(t)),
        Ok(Inserted::Existing(_)) => Err(acq(
            "ACQ.CONTEXT_INCONSISTENT",
            format!(
                "out_trade_no {} already names a trade with other parameters; use a new out_trade_no",
                intent.channel_order_no
            ),
        )),
        Err(StoreError::Invalid(m)) => {
            // The merchant is no longer what memory says (R2.2).
            svc.forget_merchant(&intent.smid);
            Err(acq("ACQ.INVALID_PARAMETER", m))
        }
        // R3.2: the store checks routing where it writes the intent (one
        // round trip for the common case); a refusal is explained here.
        Err(StoreError::NotFound { .. }) => Err(unregistered(svc, intent).await),
        Err(StoreError::ChannelChanged(_)) => {
            caller.changed.store(true, Ordering::Release);
            Err(ErrorReply::unknown())
        }
        Err(e) => Err(internal("trade intent", e)),
    }
}

/// Which of the store and the terminal is not registered, in words.
async fn unregistered(svc: &Service, intent: &TradeIntent) -> ErrorReply {
    match svc
        .store
        .check_store_terminal(intent.merchant, &intent.store, &intent.terminal)
        .await
    {
        Err(StoreError::NotFound { what, key }) => {
            let sub = if what == "store_id" {
                "ACQ.INVALID_STORE_ID"
            } else {
                "ACQ.INVALID_PARAMETER"
            };
            acq(
                sub,
                format!(
                    "{what} {key} is not registered (register it with jianlian.merchant.store.create)"
                ),
            )
        }
        Ok(()) => acq(
            "ACQ.INVALID_PARAMETER",
            "sub_merchant.merchant_id is not an onboarded merchant of this channel",
        ),
        Err(e) => internal("store check", e),
    }
}

/// Records the synchronous answer; a failure to record is logged and left to
/// the closed loop (the intent is committed, so the trade still resolves).
async fn record_answer(svc: &Service, trade: &Trade, answer: SyncAnswer) {
    let observation = Observation::Answered(answer);
    let now = svc.now();
    // The request that created the trade holds it as stored, and the
    // merchant's rates are remembered: one write, which stands only if
    // neither went stale meanwhile (a notification, a rate change).
    if let Ok(Some(merchant)) = svc.onboarded_merchant(&trade.smid).await {
        match svc
            .store
            .apply_observation_to(trade, merchant.fees, &observation, now)
            .await
        {
            Ok(Some(_)) => return,
            Ok(None) => svc.forget_merchant(&trade.smid),
            Err(e) => {
                tracing::warn!(trade = %trade.id, error = %e, "recording the upstream answer in one write failed; trying the locked way");
            }
        }
    }
    if let Err(e) = svc
        .store
        .apply_observation(trade.id, &observation, now)
        .await
    {
        tracing::error!(trade = %trade.id, error = %e, "recording the upstream answer failed; the closed loop will query");
    }
}

/// The answer to a repeated start request, from the record.
fn answer_from_record(trade: &Trade) -> MethodResult {
    match trade.state {
        TradeState::Paid | TradeState::Finished => {
            Ok(Answer::success(record_fields(trade, "gmt_payment")))
        }
        TradeState::Created | TradeState::Unknown | TradeState::Paying => Ok(in_progress(trade)),
        TradeState::Failed => {
            let f = trade.facts.failure.clone();
            let code = f
                .as_ref()
                .and_then(|f| Code::parse(&f.code))
                .unwrap_or(Code::BusinessFailed);
            let mut reply = ErrorReply::new(
                code,
                f.as_ref()
                    .and_then(|f| f.sub_code.clone())
                    .unwrap_or_default(),
                f.as_ref()
                    .and_then(|f| f.sub_msg.clone())
                    .unwrap_or_default(),
            );
            reply.fields.insert(
                "out_trade_no".into(),
                trade.channel_order_no.as_str().into(),
            );
            Err(reply)
        }
        TradeState::Closed | TradeState::Cancelled { .. } | TradeState::Refunded => Err(acq(
            "ACQ.TRADE_HAS_CLOSE",
            "交易已经关闭: the trade is closed; use a new out_trade_no",
        )),
    }
}

/// `10003`: the trade exists (or may) and waits; the terminal queries.
fn in_progress(trade: &Trade) -> Answer {
    let mut m = Map::new();
    if let Some(no) = &trade.facts.trade_no {
        m.insert("trade_no".into(), no.clone().into());
    }
    m.insert(
        "out_trade_no".into(),
        trade.channel_order_no.as_str().into(),
    );
    m.insert("total_amount".into(), trade.total_amount.to_yuan().into());
    Answer {
        code: Code::InProgress,
        fields: m,
    }
}

/// `alipay.trade.pay` (R4): barcode payment with the closed loop behind it.
pub async fn pay(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let mut req: TradePay = parse(biz)?;
    let scene = req.scene.as_deref().unwrap_or("bar_code");
    let code = req
        .auth_code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("auth_code is required"))?;
    match scene {
        "bar_code" => svc.settings.payment_code.check(code).map_err(|e| {
            acq(
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                format!("支付授权码无效: {e}; ask the buyer to refresh the payment code"),
            )
        })?,
        "security_code" => {}
        other => {
            return Err(invalid(format!(
                "scene {other:?} is not bar_code or security_code"
            )));
        }
    }
    if req.auth_no.is_some() {
        return Err(invalid(
            "pre-authorization payments (auth_no) are not offered by this gateway",
        ));
    }
    let intent = intent_for(svc, caller, TradeKind::BarcodePay, &req.order).await?;
    tracing::info!(
        channel = %caller.channel.app_id,
        out_trade_no = %intent.channel_order_no,
        auth_code = %mask(code),
        total_amount = %intent.total_amount.to_yuan(),
        "barcode pay"
    );
    let trade = match start(svc, caller, &intent).await? {
        Started::Existing(t) => return answer_from_record(&t),
        Started::New(t) => t,
    };
    prepare_upstream(&mut req.order, &trade);
    let outcome = svc.upstream.call(&req, true).await;
    let channel_no = &trade.channel_order_no;
    match outcome {
        Outcome::Success(r) => {
            record_answer(
                svc,
                &trade,
                SyncAnswer::Paid(TradeSnapshot::from_pay(&r.body)),
            )
            .await;
            Ok(Answer::success(fields(&r.body, channel_no)))
        }
        Outcome::InProgress(r) => {
            record_answer(
                svc,
                &trade,
                SyncAnswer::AwaitingBuyer {
                    trade_no: r.body.trade_no.clone(),
                },
            )
            .await;
            Ok(Answer {
                code: Code::InProgress,
                fields: fields(&r.body, channel_no),
            })
        }
        Outcome::Failed(f) => {
            record_answer(svc, &trade, SyncAnswer::Failed(failure_reason(&f))).await;
            Err(pass_failure(&f, Some(channel_no)))
        }
        Outcome::Unknown(reason) => {
            tracing::warn!(trade = %trade.id, %reason, "pay outcome unknown; the closed loop queries");
            record_answer(
                svc,
                &trade,
                SyncAnswer::Unknown {
                    reason: reason.to_string(),
                },
            )
            .await;
            Ok(in_progress(&trade))
        }
    }
}

/// The order as Alipay must see it: the gateway's `out_trade_no`, the
/// channel's number as `merchant_order_no` (R3.3).
fn prepare_upstream(order: &mut TradeOrder, trade: &Trade) {
    order.out_trade_no = trade.upstream_order_no.to_string();
    if order.merchant_order_no.as_deref().is_none_or(str::is_empty) {
        order.merchant_order_no = Some(trade.channel_order_no.to_string());
    }
}

/// `alipay.trade.precreate` (R5.1): a QR for the buyer; the result comes by
/// notification (R7).
pub async fn precreate(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let mut req: TradePrecreate = parse(biz)?;
    let intent = intent_for(svc, caller, TradeKind::Precreate, &req.order).await?;
    let trade = match start(svc, caller, &intent).await? {
        Started::New(t) => t,
        // A retry of a live QR asks Alipay again for the same upstream order
        // (precreate is idempotent there and moves no money); a finished one
        // is answered from the record.
        Started::Existing(t) if !t.state.is_resolved() => t,
        Started::Existing(t) => return answer_resolved(&t),
    };
    prepare_upstream(&mut req.order, &trade);
    let outcome = svc.upstream.call(&req, true).await;
    let channel_no = &trade.channel_order_no;
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            record_answer(svc, &trade, SyncAnswer::AwaitingBuyer { trade_no: None }).await;
            Ok(Answer::success(fields(&r.body, channel_no)))
        }
        Outcome::Failed(f) => {
            record_answer(svc, &trade, SyncAnswer::Failed(failure_reason(&f))).await;
            Err(pass_failure(&f, Some(channel_no)))
        }
        Outcome::Unknown(reason) => {
            record_answer(
                svc,
                &trade,
                SyncAnswer::Unknown {
                    reason: reason.to_string(),
                },
            )
            .await;
            Err(ErrorReply::unknown())
        }
    }
}

fn answer_resolved(trade: &Trade) -> MethodResult {
    match trade.state {
        TradeState::Paid | TradeState::Finished => {
            Err(acq("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
        }
        _ => answer_from_record(trade),
    }
}

/// `alipay.trade.create` (R5.2, R6): a trade for a known buyer.
pub async fn create(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let mut req: TradeCreate = parse(biz)?;
    if req.buyer_id.as_deref().is_none_or(str::is_empty)
        && req.buyer_open_id.as_deref().is_none_or(str::is_empty)
    {
        return Err(invalid("buyer_id or buyer_open_id is required"));
    }
    let intent = intent_for(svc, caller, TradeKind::Create, &req.order).await?;
    let trade = match start(svc, caller, &intent).await? {
        Started::New(t) => t,
        Started::Existing(t) => {
            return match t.state {
                TradeState::Paying | TradeState::Created | TradeState::Unknown
                    if t.facts.trade_no.is_some() =>
                {
                    Ok(Answer::success(record_fields(&t, "gmt_payment")))
                }
                _ => answer_resolved(&t),
            };
        }
    };
    prepare_upstream(&mut req.order, &trade);
    let outcome = svc.upstream.call(&req, true).await;
    let channel_no = &trade.channel_order_no;
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            record_answer(
                svc,
                &trade,
                SyncAnswer::AwaitingBuyer {
                    trade_no: r.body.trade_no.clone(),
                },
            )
            .await;
            Ok(Answer::success(fields(&r.body, channel_no)))
        }
        Outcome::Failed(f) => {
            record_answer(svc, &trade, SyncAnswer::Failed(failure_reason(&f))).await;
            Err(pass_failure(&f, Some(channel_no)))
        }
        Outcome::Unknown(reason) => {
            record_answer(
                svc,
                &trade,
                SyncAnswer::Unknown {
                    reason: reason.to_string(),
                },
            )
            .await;
            Err(ErrorReply::unknown())
        }
    }
}

/// Finds the caller's trade by its `out_trade_no` or by Alipay's `trade_no`.
async fn own_trade(svc: &Service, caller: &Caller, r: &TradeRef) -> Result<Trade, ErrorReply> {
    let missing = || {
        acq(
            "ACQ.TRADE_NOT_EXIST",
            "交易不存在: no such trade of this channel",
        )
    };
    let found = match (
        r.trade_no.as_deref().filter(|t| !t.is_empty()),
        r.out_trade_no.as_deref(),
    ) {
        (Some(trade_no), _) => svc
            .store
            .trade_by_trade_no(&caller.channel.app_id, trade_no)
            .await
            .map_err(|e| internal("trade lookup", e))?,
        (None, Some(no)) if !no.is_empty() => {
            let no = ChannelOrderNo::parse(no).map_err(|_| missing())?;
            svc.store
                .trade_by_channel_order(&caller.channel.app_id, &no)
                .await
                .map_err(|e| internal("trade lookup", e))?
        }
        _ => return Err(invalid("out_trade_no or trade_no is required")),
    };
    found.ok_or_else(missing)
}

/// `alipay.trade.query`: answered from the record, refreshed upstream first
/// when the trade is not final (R4.2: the terminal's way to the outcome).
pub async fn query(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: TradeQuery = parse(biz)?;
    let mut trade = own_trade(svc, caller, &req.trade).await?;
    if !trade.state.is_resolved() && trade.state != TradeState::Created {
        trade = refresh(svc, &trade).await;
    }
    match trade.state.channel_status() {
        None => Err(acq(
            "ACQ.TRADE_NOT_EXIST",
            format!(
                "交易不存在: the payment failed ({})",
                trade
                    .facts
                    .failure
                    .as_ref()
                    .and_then(|f| f.sub_code.clone())
                    .unwrap_or_default()
            ),
        )),
        Some(status) => {
            let mut m = record_fields(&trade, "send_pay_date");
            m.insert("trade_status".into(), status.as_str().into());
            m.insert("store_id".into(), trade.store.as_str().into());
            m.insert("terminal_id".into(), trade.terminal.as_str().into());
            m.insert("subject".into(), trade.subject.clone().into());
            Ok(Answer::success(m))
        }
    }
}

/// Asks Alipay about a trade outside the loop and records what it says.
pub(crate) async fn refresh(svc: &Service, trade: &Trade) -> Trade {
    let q = TradeQuery {
        trade: TradeRef::out_trade_no(trade.upstream_order_no.as_str()),
        ..TradeQuery::default()
    };
    let outcome = svc.upstream.call(&q, false).await;
    if let jianlian_core::trade::QueryAnswer::Found(s) = query_answer(&outcome) {
        match svc
            .store
            .apply_observation(trade.id, &Observation::Refreshed(s), svc.now())
            .await
        {
            Ok((t, _)) => return t,
            Err(e) => tracing::error!(trade = %trade.id, error = %e, "recording a refresh failed"),
        }
    }
    trade.clone()
}

/// `alipay.trade.cancel`: the channel asks to cancel; it becomes the closed
/// loop's next step, so a `retry_flag = Y` is retried by the loop too.
pub async fn cancel(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: TradeCancel = parse(biz)?;
    let trade = own_trade(svc, caller, &req.trade).await?;
    let c = TradeCancel {
        trade: TradeRef::out_trade_no(trade.upstream_order_no.as_str()),
        ..TradeCancel::default()
    };
    let outcome = svc.upstream.call(&c, false).await;
    let step = Step {
        number: trade
            .progress
            .last_step
            .map_or(1, |s| s.step.number.saturating_add(1)),
        kind: StepKind::Cancel,
        attempt: trade.progress.cancels.saturating_add(1),
    };
    let observation = Observation::CancelAnswered {
        step,
        answer: cancel_answer(&outcome),
    };
    if let Err(e) = svc
        .store
        .apply_observation(trade.id, &observation, svc.now())
        .await
    {
        tracing::error!(trade = %trade.id, error = %e, "recording a channel cancel failed");
    }
    let channel_no = &trade.channel_order_no;
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            Ok(Answer::success(fields(&r.body, channel_no)))
        }
        Outcome::Failed(f) => Err(pass_failure(&f, Some(channel_no))),
        Outcome::Unknown(_) => Err(ErrorReply::unknown()),
    }
}

/// `alipay.trade.close`: closes an unpaid trade.
pub async fn close(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: TradeClose = parse(biz)?;
    let trade = own_trade(svc, caller, &req.trade).await?;
    let c = TradeClose {
        trade: TradeRef::out_trade_no(trade.upstream_order_no.as_str()),
        operator_id: req.operator_id.clone(),
        ..TradeClose::default()
    };
    let channel_no = &trade.channel_order_no;
    match svc.upstream.call(&c, false).await {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            if let Err(e) = svc
                .store
                .apply_observation(trade.id, &Observation::ClosedOnRequest, svc.now())
                .await
            {
                tracing::error!(trade = %trade.id, error = %e, "recording a close failed");
            }
            Ok(Answer::success(fields(&r.body, channel_no)))
        }
        Outcome::Failed(f) => Err(pass_failure(&f, Some(channel_no))),
        Outcome::Unknown(_) => Err(ErrorReply::unknown()),
    }
}

/// `alipay.trade.refund` (R10): reserved against the paid amount first (so
/// concurrent refunds never exceed it), then sent with the same
/// `out_request_no` however often the channel retries.
pub async fn refund(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: TradeRefund = parse(biz)?;
    let trade = own_trade(svc, caller, &req.trade).await?;
    let request_no = match req.out_request_no.as_deref().filter(|s| !s.is_empty()) {
        Some(no) => no.to_owned(),
        None => trade.channel_order_no.to_string(),
    };
    let out_request_no = RefundRequestNo::parse(&request_no).map_err(|e| invalid(e.to_string()))?;
    let request = RefundRequest {
        trade: trade.id,
        out_request_no,
        amount: req.refund_amount,
        reason: req.refund_reason.clone(),
        requested_at: svc.now(),
    };
    let refund = match svc.store.reserve_refund(&request).await {
        Ok(Reservation::Reserved(r)) => r,
        Ok(Reservation::Existing(r)) => match r.state {
            RefundState::Succeeded => return refund_from_record(svc, &trade, &r).await,
            RefundState::Failed => return Err(stored_refund_failure(&r)),
            RefundState::Requested | RefundState::Unknown => r,
        },
        Err(StoreError::Refund(e)) => return Err(refund_refusal(e)),
        Err(e) => return Err(internal("refund reservation", e)),
    };
    let (outcome, _) = send_refund(svc, &trade, &refund, Some(&req)).await;
    let channel_no = &trade.channel_order_no;
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            Ok(Answer::success(fields(&r.body, channel_no)))
        }
        Outcome::Failed(f) => Err(pass_failure(&f, Some(channel_no))),
        Outcome::Unknown(_) => Err(ErrorReply::unknown()),
    }
}

/// Sends a reserved refund upstream (the channel's request, or a resend of
/// the same one) and records the answer; returns the outcome and the refund
/// as recorded (with whether it changed), when the record was written.
pub(crate) async fn send_refund(
    svc: &Service,
    trade: &Trade,
    refund: &Refund,
    original: Option<&TradeRefund>,
) -> (
    Outcome<jianlian_alipay::api::trade::TradeRefundResponse>,
    Option<(Refund, bool)>,
) {
    let mut r = original.cloned().unwrap_or_default();
    r.trade = TradeRef::out_trade_no(trade.upstream_order_no.as_str());
    r.refund_amount = refund.amount;
    r.out_request_no = Some(refund.out_request_no.to_string());
    if r.refund_reason.is_none() {
        r.refund_reason.clone_from(&refund.reason);
    }
    let outcome = svc.upstream.call(&r, false).await;
    let observation = RefundObservation::Answered(refund_answer(&outcome));
    let recorded = match svc
        .store
        .apply_refund_observation(refund.id, &observation, svc.now())
        .await
    {
        Ok(done) => Some(done),
        Err(e) => {
            tracing::error!(refund = %refund.id, error = %e, "recording a refund answer failed; the confirmation job will query");
            None
        }
    };
    (outcome, recorded)
}

fn refund_refusal(e: RefundError) -> ErrorReply {
    match e {
        RefundError::NotPositive => invalid("refund_amount must be at least 0.01"),
        RefundError::NotRefundable { state, .. } => acq(
            "ACQ.TRADE_STATUS_ERROR",
            format!("交易状态不合法: the trade is {state} and cannot be refunded"),
        ),
        RefundError::Exceeds { refundable, .. } => acq(
            "ACQ.REASON_TRADE_REFUND_FEE_ERR",
            format!(
                "退款金额超限: at most {} can still be refunded",
                refundable.to_yuan()
            ),
        ),
        RefundError::Conflict { existing, .. } => acq(
            "ACQ.DISCORDANT_REPEAT_REQUEST",
            format!(
                "out_request_no was already used for a refund of {}; resend it identically or use a new out_request_no",
                existing.to_yuan()
            ),
        ),
        other => internal("refund", other),
    }
}

fn stored_refund_failure(r: &Refund) -> ErrorReply {
    match &r.failure {
        Some(f) => ErrorReply::new(
            Code::parse(&f.code).unwrap_or(Code::BusinessFailed),
            f.sub_code.clone().unwrap_or_default(),
            f.sub_msg.clone().unwrap_or_default(),
        ),
        None => acq("ACQ.REFUND_FEE_ERROR", "the refund failed"),
    }
}

async fn refunded_total(svc: &Service, trade: &Trade) -> Result<Fen, ErrorReply> {
    let refunds = svc
        .store
        .refunds_of_trade(trade.id)
        .await
        .map_err(|e| internal("refund lookup", e))?;
    Fen::sum(
        refunds
            .iter()
            .filter(|r| r.state == RefundState::Succeeded)
            .map(|r| r.amount),
    )
    .map_err(|e| internal("refund sum", e))
}

/// A repeated refund that already succeeded: Alipay answers success with
/// `fund_change = N` (nothing moved this time).
async fn refund_from_record(svc: &Service, trade: &Trade, r: &Refund) -> MethodResult {
    let total = refunded_total(svc, trade).await?;
    let mut m = record_fields(trade, "gmt_payment");
    m.retain(|k, _| {
        matches!(
            k.as_str(),
            "trade_no" | "out_trade_no" | "buyer_logon_id" | "buyer_user_id"
        )
    });
    m.insert("fund_change".into(), "N".into());
    m.insert("refund_fee".into(), total.to_yuan().into());
    if let Some(at) = r.refunded_at {
        m.insert("gmt_refund_pay".into(), format_beijing(at).into());
    }
    Ok(Answer::success(m))
}

/// `alipay.trade.fastpay.refund.query`: from the record, confirmed upstream
/// first when the refund's outcome is not known.
pub async fn refund_query(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: TradeRefundQuery = parse(biz)?;
    let trade = own_trade(svc, caller, &req.trade).await?;
    let request_no =
        RefundRequestNo::parse(&req.out_request_no).map_err(|e| invalid(e.to_string()))?;
    let mut m = Map::new();
    if let Some(no) = &trade.facts.trade_no {
        m.insert("trade_no".into(), no.clone().into());
    }
    m.insert(
        "out_trade_no".into(),
        trade.channel_order_no.as_str().into(),
    );
    m.insert("out_request_no".into(), request_no.as_str().into());
    let found = svc
        .store
        .refund_by_request(trade.id, &request_no)
        .await
        .map_err(|e| internal("refund lookup", e))?;
    let Some(mut refund) = found else {
        // Alipay's answer for a refund it never received: success, no status.
        return Ok(Answer::success(m));
    };
    if refund.state.needs_confirmation() {
        let q = TradeRefundQuery {
            trade: TradeRef::out_trade_no(trade.upstream_order_no.as_str()),
            out_request_no: refund.out_request_no.to_string(),
            ..TradeRefundQuery::default()
        };
        let outcome = svc.upstream.call(&q, false).await;
        let observation = RefundObservation::Queried(refund_query_answer(&outcome));
        match svc
            .store
            .apply_refund_observation(refund.id, &observation, svc.now())
            .await
        {
            Ok((r, _)) => refund = r,
            Err(e) => {
                tracing::error!(refund = %refund.id, error = %e, "recording a refund query failed")
            }
        }
    }
    m.insert("total_amount".into(), trade.total_amount.to_yuan().into());
    m.insert("refund_amount".into(), refund.amount.to_yuan().into());
    if let Some(reason) = &refund.reason {
        m.insert("refund_reason".into(), reason.clone().into());
    }
    if refund.state == RefundState::Succeeded {
        m.insert("refund_status".into(), "REFUND_SUCCESS".into());
        if let Some(at) = refund.refunded_at {
            m.insert("gmt_refund_pay".into(), format_beijing(at).into());
        }
    }
    Ok(Answer::success(m))
}

/// A JSON object for tests and admin views of a trade.
pub fn trade_view(trade: &Trade) -> Value {
    json!({
        "id": trade.id.get(),
        "channel": trade.channel.as_str(),
        "out_trade_no": trade.channel_order_no.as_str(),
        "upstream_out_trade_no": trade.upstream_order_no.as_str(),
        "state": trade.state.as_str(),
        "total_amount": trade.total_amount.to_yuan(),
        "trade_no": trade.facts.trade_no,
        "fee": trade.fee.map(|f| f.fee.to_yuan()),
    })
}
