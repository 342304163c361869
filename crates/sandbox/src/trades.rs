//! The trade engine (R3–R5, apis.md §2–§3): pay, precreate, create, query,
//! cancel and close, the indirect-merchant rules, the buyer-side actions
//! (confirm, abandon, scan) and the trade state machine's timed transitions.

use jiff::{SignedDuration, Timestamp, ToSpan};

use jianlian_alipay::api::trade::{
    CancelAction, RetryFlag, TradeCancel, TradeCancelResponse, TradeClose, TradeCloseResponse,
    TradeCreate, TradeCreateResponse, TradeFundBill, TradeOrder, TradePay, TradePayResponse,
    TradePrecreate, TradePrecreateResponse, TradeQuery, TradeQueryResponse, TradeRef, TradeStatus,
    VoucherDetail,
};
use jianlian_alipay::auth_code::{self, PaymentCodeRule};
use jianlian_alipay::money::TRADE_AMOUNT_MAX;
use jianlian_alipay::time::{beijing, beijing_date, beijing_midnight};
use jianlian_alipay::{BeijingTime, Code, ErrorReply, Fen};

use crate::api::{Answer, Call, acq, parse_biz, reply};
use crate::faults::{FaultAction, Target};
use crate::fees;
use crate::funding::{self, Disabled, FundingError};
use crate::model::{
    App, Buyer, CloseReason, CodeKind, FundChannel, FundPart, IdMode, Instrument, LatePayment,
    LedgerEntry, LedgerKind, Merchant, Origin, QrOrder, Refund, Trade,
};
use crate::state::{Core, OrderRef};

/// Amount from which a barcode payment needs the buyer's password (R4.1).
pub const PASSWORD_AMOUNT_MIN: Fen = Fen::new(100_000);
/// An unscanned QR lives this long by default (R3.5).
pub const QR_LIFETIME_DEFAULT: SignedDuration = SignedDuration::from_hours(2);
/// A trade with no timeout given lives about a week (R3.5).
pub const TRADE_LIFETIME_DEFAULT: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Cancel is allowed within 24 hours (apis.md §2.5).
pub const CANCEL_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// Payment codes expire after 60 seconds (R3.7); face-payment tokens too (a
/// sandbox choice: Alipay does not document their lifetime).
pub const CODE_LIFETIME: SignedDuration = SignedDuration::from_secs(60);
/// Longest `auth_code` accepted (apis.md §2.1: 64 characters).
pub const AUTH_CODE_LEN_MAX: usize = 64;

/// Whether `code` has the shape of a face-payment token (`security_code`
/// scene): `fp`, then letters and digits (apis.md §2.1).
pub fn is_security_code(code: &str) -> bool {
    code.strip_prefix("fp")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
        && code.len() <= AUTH_CODE_LEN_MAX
}

/// Why a buyer-side action (control API) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

fn zero_amount_fields(e: ErrorReply, out_trade_no: &str) -> ErrorReply {
    e.with_field("out_trade_no", out_trade_no)
        .with_field("buyer_pay_amount", "0.00")
        .with_field("point_amount", "0.00")
        .with_field("invoice_amount", "0.00")
        .with_field("receipt_amount", "0.00")
}

fn invalid(detail: impl Into<String>) -> ErrorReply {
    ErrorReply::invalid_parameter(detail)
}

fn check_len(name: &str, value: Option<&str>, max: usize) -> Result<(), ErrorReply> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(invalid(format!("{name} is longer than {max} characters")))
        }
        _ => Ok(()),
    }
}

/// Parses `timeout_express`: an integer and `m`, `h` or `d` (1m–15d), or `1c`
/// (until Beijing midnight).
pub fn parse_timeout(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let bad = || format!("timeout_express {text:?} is not like 90m, 2h, 1d or 1c (1m to 15d)");
    if text == "1c" {
        let tomorrow = beijing_date(now).tomorrow().map_err(|_| bad())?;
        return Ok(beijing_midnight(tomorrow));
    }
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 5 {
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
    now.checked_add(SignedDuration::from_mins(minutes))
        .map_err(|_| bad())
}

/// When an unpaid trade created now expires.
fn expiry(order: &TradeOrder, now: Timestamp) -> Result<Timestamp, ErrorReply> {
    if let Some(text) = order.time_expire.as_deref() {
        let at = jianlian_alipay::time::parse_beijing(text)
            .map_err(|_| invalid(format!("time_expire {text:?} is not yyyy-MM-dd HH:mm:ss")))?;
        if at <= now {
            return Err(acq(
                "ACQ.NOW_TIME_AFTER_EXPIRE_TIME_ERROR",
                "time_expire has passed",
            ));
        }
        return Ok(at);
    }
    match order.timeout_express.as_deref() {
        Some(text) => parse_timeout(text, now).map_err(invalid),
        None => Ok(now.checked_add(TRADE_LIFETIME_DEFAULT).unwrap_or(now)),
    }
}

/// Field checks shared by pay, precreate and create.
pub fn validate_order(order: &TradeOrder) -> Result<(), ErrorReply> {
    let otn = &order.out_trade_no;
    if otn.is_empty() {
        return Err(invalid("out_trade_no is required"));
    }
    if otn.len() > 64 || !otn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid(format!(
            "out_trade_no {otn:?} must be 1 to 64 letters, digits or underscores"
        )));
    }
    if order.subject.trim().is_empty() {
        return Err(invalid("subject is required"));
    }
    check_len("subject", Some(&order.subject), 256)?;
    check_len("body", order.body.as_deref(), 128)?;
    check_len("store_id", order.store_id.as_deref(), 32)?;
    check_len("terminal_id", order.terminal_id.as_deref(), 32)?;
    check_len("operator_id", order.operator_id.as_deref(), 28)?;
    check_len("merchant_order_no", order.merchant_order_no.as_deref(), 32)?;
    check_len("passback_params", order.passback_params.as_deref(), 512)?;
    check_len(
        "disable_pay_channels",
        order.disable_pay_channels.as_deref(),
        128,
    )?;
    if order.total_amount > TRADE_AMOUNT_MAX {
        return Err(acq(
            "ACQ.TOTAL_FEE_EXCEED",
            &format!(
                "total_amount {} is above the limit {}",
                order.total_amount, TRADE_AMOUNT_MAX
            ),
        ));
    }
    order
        .total_amount
        .check_trade_amount()
        .map_err(|e| invalid(format!("total_amount: {e}")))?;
    if let (Some(d), Some(u)) = (order.discountable_amount, order.undiscountable_amount)
        && d.checked_add(u) != Some(order.total_amount)
    {
        return Err(invalid(
            "discountable_amount + undiscountable_amount must equal total_amount",
        ));
    }
    if let Some(u) = order.undiscountable_amount
        && u > order.total_amount
    {
        return Err(invalid("undiscountable_amount is larger than total_amount"));
    }
    if order.disable_pay_channels.is_some() && order.enable_pay_channels.is_some() {
        return Err(invalid(
            "disable_pay_channels and enable_pay_channels are mutually exclusive",
        ));
    }
    Ok(())
}

impl Core {
    /// The indirect rules (R3.1, R3.2, R3.8) and an existing big-merchant
    /// block (R2.2); returns the smid. The request's store and terminal are
    /// counted later, by [`Core::risk_admit`], once the request has passed
    /// every other check.
    pub(crate) fn indirect_checks(
        &mut self,
        app: &App,
        order: &TradeOrder,
    ) -> Result<String, ErrorReply> {
        if !app.general_finance {
            return Err(acq(
                "ACQ.ERROR_SELLER_CERTIFY_LEVEL_LIMIT",
                "the acquirer account lacks the general finance configuration (R3.8)",
            ));
        }
        if let Some(seller) = order.seller_id.as_deref()
            && seller != app.pid
        {
            return Err(acq(
                "ACQ.INVALID_PARAMETER",
                "seller_id must be omitted or equal the acquirer's PID in indirect mode",
            ));
        }
        let sub = order.sub_merchant.as_ref().ok_or_else(|| {
            acq(
                "ACQ.PLATFORM_BUSINESS_ACQUIRE_MODE_MUST_MERCHANT_ID",
                "sub_merchant.merchant_id (the smid) is required for indirect trades (R3.1)",
            )
        })?;
        if sub.merchant_id.trim().is_empty() {
            return Err(acq(
                "ACQ.SECONDARY_MERCHANT_ID_BLANK",
                "sub_merchant.merchant_id is empty",
            ));
        }
        if let Some(t) = sub.merchant_type.as_deref()
            && t != "alipay"
        {
            return Err(acq(
                "ACQ.SUB_MERCHANT_TYPE_INVALID",
                "sub_merchant.merchant_type may only be alipay",
            ));
        }
        let smid = sub.merchant_id.clone();
        let Some(merchant) = self.st.merchants.get(&smid).filter(|m| m.pid == app.pid) else {
            return Err(acq(
                "ACQ.SECONDARY_MERCHANT_ID_INVALID",
                &format!("smid {smid} was not onboarded by this acquirer"),
            ));
        };
        if app.require_store_terminal {
            if order
                .store_id
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                return Err(acq(
                    "ACQ.INVALID_STORE_ID",
                    "store_id is required for indirect trades (R3.2)",
                ));
            }
            if order
                .terminal_id
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
            {
                return Err(acq(
                    "ACQ.INVALID_PARAMETER",
                    "terminal_id is required for indirect trades (R3.2)",
                ));
            }
        }
        if let Some(reason) = &merchant.risk_blocked {
            return Err(risk_error(reason));
        }
        Ok(smid)
    }

    /// The big-merchant rule (R2.2): counts the trade's store and terminal
    /// among those the smid was seen from today, and blocks the smid when a
    /// limit is passed (this trade is then intercepted too, and the block is
    /// saved at once). Called once the request has passed every other check;
    /// the counts are returned, to be saved by the caller only when the trade
    /// (or QR) is really created, so that a refused request never counts.
    pub(crate) fn risk_admit(
        &mut self,
        app: &App,
        order: &TradeOrder,
        smid: &str,
        now: Timestamp,
    ) -> Result<Option<Merchant>, ErrorReply> {
        let Some(mut merchant) = self.st.merchants.get(smid).cloned() else {
            return Err(ErrorReply::unknown());
        };
        let today = beijing_date(now).to_string();
        let mut changed = false;
        if merchant.seen_date != today {
            merchant.seen_date = today;
            merchant.seen_stores.clear();
            merchant.seen_terminals.clear();
            changed = true;
        }
        if let Some(s) = order.store_id.as_deref().filter(|s| !s.is_empty()) {
            changed |= merchant.seen_stores.insert(s.to_owned());
        }
        if let Some(t) = order.terminal_id.as_deref().filter(|s| !s.is_empty()) {
            changed |= merchant.seen_terminals.insert(t.to_owned());
        }
        let over = |count: usize, max: Option<u32>| {
            max.is_some_and(|m| count > usize::try_from(m).unwrap_or(usize::MAX))
        };
        let blocked = if over(merchant.seen_stores.len(), app.risk.stores_per_day_max) {
            Some(format!(
                "smid seen from {} distinct stores today (big-merchant mode, R2.2)",
                merchant.seen_stores.len()
            ))
        } else if over(
            merchant.seen_terminals.len(),
            app.risk.terminals_per_day_max,
        ) {
            Some(format!(
                "smid seen from {} distinct terminals today (big-merchant mode, R2.2)",
                merchant.seen_terminals.len()
            ))
        } else {
            None
        };
        if let Some(reason) = blocked {
            let e = risk_error(&reason);
            merchant.risk_blocked = Some(reason);
            self.put_merchant(merchant);
            return Err(e);
        }
        Ok(changed.then_some(merchant))
    }

    /// The buyer's OpenID for an app, made on first use.
    pub(crate) fn open_id_for(&mut self, buyer_id: &str, app_id: &str) -> Option<String> {
        let buyer = self.st.buyers.get(buyer_id)?;
        if let Some(id) = buyer.open_ids.get(app_id) {
            return Some(id.clone());
        }
        let mut buyer = buyer.clone();
        let id = self.ids().open_id();
        buyer.open_ids.insert(app_id.to_owned(), id.clone());
        self.put_buyer(buyer);
        Some(id)
    }

    /// (`buyer_user_id`, `buyer_open_id`) as the app sees the buyer.
    pub(crate) fn buyer_ids(
        &mut self,
        buyer_id: &str,
        app: &App,
    ) -> (Option<String>, Option<String>) {
        match app.id_mode {
            IdMode::UserId => (Some(buyer_id.to_owned()), None),
            IdMode::OpenId => (None, self.open_id_for(buyer_id, &app.app_id)),
        }
    }

    fn buyer_logon(&self, buyer_id: &str) -> Option<String> {
        self.st
            .buyers
            .get(buyer_id)
            .map(|b| crate::ids::mask_logon_id(&b.logon_id))
    }

    // The trade's facts come from four places (call, order, merchant, buyer);
    // a struct bundling them would only rename the arguments.
    #[allow(clippy::too_many_arguments)]
    fn new_trade(
        &mut self,
        call: &Call,
        order: &TradeOrder,
        smid: String,
        origin: Origin,
        buyer_id: String,
        instrument: Instrument,
        expires_at: Timestamp,
    ) -> Trade {
        let trade_no = self.ids().trade_no(call.now);
        Trade {
            trade_no,
            out_trade_no: order.out_trade_no.clone(),
            app_id: call.app.app_id.clone(),
            pid: call.app.pid.clone(),
            smid,
            origin,
            status: TradeStatus::WaitBuyerPay,
            total: order.total_amount,
            subject: order.subject.clone(),
            body: order.body.clone(),
            store_id: order.store_id.clone(),
            terminal_id: order.terminal_id.clone(),
            operator_id: order.operator_id.clone(),
            passback_params: order.passback_params.clone(),
            merchant_order_no: order.merchant_order_no.clone(),
            disable_pay_channels: order.disable_pay_channels.clone(),
            ext_user_info: order.ext_user_info.clone(),
            buyer_id,
            instrument,
            funding: Vec::new(),
            fee_rate: call.app.fee_rate,
            fee: Fen::ZERO,
            fee_returned: Fen::ZERO,
            refunds: Vec::new(),
            created_at: call.now,
            paid_at: None,
            closed_at: None,
            expires_at,
            finish_at: None,
            close_reason: None,
            notify_url: match origin {
                Origin::Pay => None,
                Origin::Precreate | Origin::Create => call.notify_url.clone(),
            },
            sign_type: call.sign_type.as_str().to_owned(),
            charset: call.charset.as_str().to_owned(),
            pay_after_queries: None,
            queries: 0,
            late_pay_after: Vec::new(),
            late_payment: None,
            settlement_id: None,
            no_refund: false,
            auth_code_masked: None,
        }
    }

    /// Buyer-level checks before money moves: risk, payer identity, daily limit.
    fn buyer_checks(
        &self,
        buyer: &Buyer,
        trade_total: Fen,
        ext: Option<&serde_json::Value>,
        now: Timestamp,
    ) -> Result<(), ErrorReply> {
        if buyer.risky {
            return Err(acq(
                "ACQ.PAYMENT_REQUEST_HAS_RISK",
                "risk control refused this buyer's payment (R13.1: single risky trade, another method may be used)",
            ));
        }
        if let Some(ext) = ext {
            let field = |k: &str| ext.get(k).and_then(|v| v.as_str());
            let mismatch = |k: &str, have: &Option<String>| {
                field(k).is_some_and(|want| have.as_deref().is_some_and(|h| h != want))
            };
            if mismatch("name", &buyer.name) || mismatch("cert_no", &buyer.cert_no) {
                return Err(acq(
                    "ACQ.PAYER_UNMATCHED",
                    "the paying user is not the one named in ext_user_info (R3.6)",
                ));
            }
        }
        if let Some(limit) = buyer.daily_limit {
            let today = beijing_date(now).to_string();
            let spent = if buyer.spent_date == today {
                buyer.spent
            } else {
                Fen::ZERO
            };
            if spent.checked_add(trade_total).is_none_or(|s| s > limit) {
                return Err(acq(
                    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
                    "the buyer's daily payment limit would be exceeded",
                ));
            }
        }
        Ok(())
    }

    /// Moves the money of a waiting trade: funding, fee, ledger. Leaves the
    /// trade untouched on failure.
    pub(crate) fn settle_payment(
        &mut self,
        trade: &mut Trade,
        now: Timestamp,
    ) -> Result<(), FundingError> {
        let Some(buyer) = self.st.buyers.get(&trade.buyer_id) else {
            return Err(FundingError::NoInstrument);
        };
        let mut buyer = buyer.clone();
        let parts = funding::allocate_payment(
            &buyer,
            trade.total,
            trade.instrument,
            &Disabled::parse(trade.disable_pay_channels.as_deref()),
        )?;
        funding::move_funds(&mut buyer, &parts, false);
        let today = beijing_date(now).to_string();
        if buyer.spent_date != today {
            buyer.spent_date = today;
            buyer.spent = Fen::ZERO;
        }
        buyer.spent = buyer.spent.checked_add(trade.total).unwrap_or(buyer.spent);
        self.put_buyer(buyer);
        trade.funding = parts;
        trade.paid_at = Some(now);
        trade.settlement_id = Some(self.ids().settlement_id(now));
        trade.fee = fees::payment_fee(trade.fee_rate, trade.receipt_amount());
        let months = self
            .st
            .apps
            .get(&trade.app_id)
            .map_or(3, |a| a.refund_window_months);
        if months == 0 {
            // A contract without refunds: finished at once (apis.md §3, 6).
            trade.status = TradeStatus::TradeFinished;
            trade.no_refund = true;
            trade.finish_at = None;
        } else {
            trade.status = TradeStatus::TradeSuccess;
            trade.finish_at = add_months(now, months);
        }
        for part in trade.funding.clone() {
            self.ledger(
                trade,
                LedgerKind::Charge,
                now,
                part.amount,
                Some(part.channel.as_str()),
                None,
            );
        }
        if !trade.fee.is_zero() {
            self.ledger(trade, LedgerKind::Fee, now, trade.fee, None, None);
        }
        Ok(())
    }

    pub(crate) fn ledger(
        &mut self,
        trade: &Trade,
        kind: LedgerKind,
        now: Timestamp,
        amount: Fen,
        channel: Option<&str>,
        out_request_no: Option<&str>,
    ) {
        self.push_ledger(LedgerEntry {
            seq: 0,
            at: now,
            date: beijing_date(now).to_string(),
            kind,
            app_id: trade.app_id.clone(),
            pid: trade.pid.clone(),
            smid: Some(trade.smid.clone()),
            trade_no: Some(trade.trade_no.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            out_request_no: out_request_no.map(str::to_owned),
            buyer_id: Some(trade.buyer_id.clone()),
            channel: channel.map(str::to_owned),
            amount,
        });
    }

    /// Applies timed transitions to one trade (timeout, refund window) so a
    /// caller never sees a stale state even if nobody ran the due work.
    pub(crate) fn refresh_trade(&mut self, trade_no: &str, now: Timestamp) {
        let Some(trade) = self.st.trades.get(trade_no) else {
            return;
        };
        let due_close = trade.status == TradeStatus::WaitBuyerPay && trade.expires_at <= now;
        let due_finish =
            trade.status == TradeStatus::TradeSuccess && trade.finish_at.is_some_and(|f| f <= now);
        if !due_close && !due_finish {
            return;
        }
        let mut trade = trade.clone();
        if due_close {
            let at = trade.expires_at;
            close_trade(&mut trade, CloseReason::Timeout, at);
            self.late_payment_refunded(&mut trade, CloseReason::Timeout, now);
        } else {
            trade.status = TradeStatus::TradeFinished;
        }
        self.queue_trade_notice(&trade, now, None, None);
        self.put_trade(trade);
    }

    fn pay_body(&mut self, trade: &Trade, app: &App) -> TradePayResponse {
        let (user_id, open_id) = self.buyer_ids(&trade.buyer_id, app);
        let paid = trade.status.is_paid() || !trade.funding.is_empty();
        let zero = Some(Fen::ZERO);
        TradePayResponse {
            trade_no: Some(trade.trade_no.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            buyer_logon_id: self.buyer_logon(&trade.buyer_id),
            buyer_user_id: user_id,
            buyer_open_id: open_id,
            total_amount: Some(trade.total),
            receipt_amount: if paid {
                Some(trade.receipt_amount())
            } else {
                zero
            },
            buyer_pay_amount: if paid {
                Some(trade.buyer_pay_amount())
            } else {
                zero
            },
            point_amount: if paid {
                Some(trade.point_amount())
            } else {
                zero
            },
            invoice_amount: if paid {
                Some(trade.buyer_pay_amount())
            } else {
                zero
            },
            gmt_payment: trade.paid_at.map(BeijingTime),
            fund_bill_list: paid.then(|| fund_bills(&trade.funding)),
            voucher_detail_list: vouchers(&trade.funding),
            store_name: self.store_name(trade),
            discount_amount: paid.then(|| trade.platform_discount()),
            mdiscount_amount: paid.then(|| trade.merchant_discount()),
            settlement_id: trade.settlement_id.clone(),
            charge_amount: paid.then_some(trade.fee),
            extra: Default::default(),
        }
    }

    fn store_name(&self, trade: &Trade) -> Option<String> {
        self.st.merchants.get(&trade.smid).and_then(|m| {
            m.profile
                .alias_name
                .clone()
                .or_else(|| m.profile.name.clone())
        })
    }

    fn query_body(&mut self, trade: &Trade, app: &App) -> TradeQueryResponse {
        let (user_id, open_id) = self.buyer_ids(&trade.buyer_id, app);
        let paid = !trade.funding.is_empty();
        let zero = Some(Fen::ZERO);
        let cancel = trade.close_reason == Some(CloseReason::Cancel);
        TradeQueryResponse {
            trade_no: Some(trade.trade_no.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            buyer_logon_id: self.buyer_logon(&trade.buyer_id),
            trade_status: Some(trade.status),
            total_amount: Some(trade.total),
            buyer_pay_amount: if paid {
                Some(trade.buyer_pay_amount())
            } else {
                zero
            },
            point_amount: if paid {
                Some(trade.point_amount())
            } else {
                zero
            },
            invoice_amount: if paid {
                Some(trade.buyer_pay_amount())
            } else {
                zero
            },
            receipt_amount: if paid {
                Some(trade.receipt_amount())
            } else {
                zero
            },
            send_pay_date: trade.paid_at.map(BeijingTime),
            store_id: trade.store_id.clone(),
            terminal_id: trade.terminal_id.clone(),
            store_name: self.store_name(trade),
            buyer_user_id: user_id,
            buyer_open_id: open_id,
            fund_bill_list: paid.then(|| fund_bills(&trade.funding)),
            voucher_detail_list: vouchers(&trade.funding),
            subject: Some(trade.subject.clone()),
            body: trade.body.clone(),
            alipay_sub_merchant_id: Some(trade.smid.clone()),
            // apis.md §2.4's example: a trade ended by alipay.trade.cancel
            // (closed or refunded; the cancel answer's `action` says which).
            ext_infos: cancel.then(|| "{\"action\":\"cancel\"}".to_owned()),
            passback_params: trade.passback_params.clone(),
            settlement_id: trade.settlement_id.clone(),
            charge_amount: paid.then_some(trade.fee),
            extra: Default::default(),
        }
    }

    /// Finds a trade of the calling acquirer by `trade_no` (wins) or `out_trade_no`.
    pub(crate) fn find_trade(&self, app: &App, r: &TradeRef) -> Result<Option<String>, ErrorReply> {
        if let Some(no) = r.trade_no.as_deref().filter(|s| !s.is_empty()) {
            return Ok(self
                .st
                .trades
                .get(no)
                .filter(|t| t.pid == app.pid)
                .map(|t| t.trade_no.clone()));
        }
        let Some(otn) = r.out_trade_no.as_deref().filter(|s| !s.is_empty()) else {
            return Err(invalid("out_trade_no or trade_no is required"));
        };
        Ok(match self.order(&app.pid, otn) {
            Some(OrderRef::Trade(no)) => Some(no.clone()),
            _ => None,
        })
    }

    /// `alipay.trade.pay` (R4): scene `bar_code` with the buyer's payment code,
    /// or `security_code` with the token of a face-payment device.
    pub fn trade_pay(&mut self, call: &Call) -> Answer {
        let req: TradePay = parse_biz(call)?;
        let order = &req.order;
        validate_order(order)?;
        let otn = order.out_trade_no.clone();
        let scene = match req.scene.as_deref().unwrap_or("bar_code") {
            "bar_code" => CodeKind::BarCode,
            "security_code" => CodeKind::SecurityCode,
            other => {
                return Err(invalid(format!(
                    "scene {other:?} is neither bar_code nor security_code"
                )));
            }
        };
        if req.auth_no.is_some() {
            return Err(invalid(
                "auth_no (pre-authorisation pay) is not served by the sandbox",
            ));
        }
        if let Some(pc) = order.product_code.as_deref()
            && pc != "FACE_TO_FACE_PAYMENT"
        {
            return Err(invalid(format!(
                "product_code {pc:?}: only FACE_TO_FACE_PAYMENT is served"
            )));
        }
        let code = req
            .auth_code
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| invalid("auth_code is required for a face-to-face payment"))?;
        check_len("auth_code", Some(&code), AUTH_CODE_LEN_MAX)?;
        let zero = |e: ErrorReply| zero_amount_fields(e, &otn);
        let smid = self.indirect_checks(&call.app, order).map_err(zero)?;
        // An existing trade under this out_trade_no.
        if let Some(OrderRef::Trade(no)) = self.order(&call.app.pid, &otn).cloned() {
            return self
                .repeat_pay(call, order, &no, &smid, &code)
                .map_err(zero);
        }
        if self.order(&call.app.pid, &otn).is_some() {
            return Err(zero(acq(
                "ACQ.CONTEXT_INCONSISTENT",
                "out_trade_no is used by a precreate QR",
            )));
        }
        let shape_ok = match scene {
            CodeKind::BarCode => PaymentCodeRule::default().check(&code).is_ok(),
            CodeKind::SecurityCode => is_security_code(&code),
        };
        if !shape_ok {
            let what = match scene {
                CodeKind::BarCode => "a payment code (scene bar_code)",
                CodeKind::SecurityCode => "a face-payment token (scene security_code)",
            };
            return Err(zero(acq(
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                &format!("auth_code is not {what}"),
            )));
        }
        let Some(pc) = self.st.codes.get(&code).cloned() else {
            return Err(zero(acq(
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                "unknown payment code; refresh it",
            )));
        };
        if pc.used || pc.expires_at <= call.now || pc.kind != scene {
            return Err(zero(acq(
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                "the payment code was used or has expired; refresh it",
            )));
        }
        let mut used = pc.clone();
        used.used = true;
        self.put_code(used);
        let buyer = self
            .st
            .buyers
            .get(&pc.buyer_id)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        self.buyer_checks(
            &buyer,
            order.total_amount,
            order.ext_user_info.as_ref(),
            call.now,
        )
        .map_err(zero)?;
        let instrument = pc.instrument.unwrap_or(buyer.instrument);
        let expires_at = expiry(order, call.now).map_err(zero)?;
        let seen = self
            .risk_admit(&call.app, order, &smid, call.now)
            .map_err(zero)?;
        let mut trade = self.new_trade(
            call,
            order,
            smid,
            Origin::Pay,
            buyer.buyer_id.clone(),
            instrument,
            expires_at,
        );
        trade.auth_code_masked = Some(auth_code::mask(&code));
        let target = Target {
            method: Some("alipay.trade.pay"),
            out_trade_no: Some(&otn),
            amount: Some(order.total_amount),
        };
        let forced = self.fire_fault(&target, |a| {
            matches!(
                a,
                FaultAction::ForceWait { .. } | FaultAction::PayAfterCancel { .. }
            )
        });
        let wait = forced.is_some()
            || buyer.requires_password
            || order.total_amount >= PASSWORD_AMOUNT_MIN;
        match forced {
            Some(FaultAction::ForceWait { pay_after_queries }) => {
                trade.pay_after_queries = pay_after_queries
            }
            Some(FaultAction::PayAfterCancel { after }) => trade.late_pay_after = after,
            _ => {}
        }
        let code = if wait {
            Code::InProgress
        } else {
            self.settle_payment(&mut trade, call.now)
                .map_err(|e| zero(funding_error(e)))?;
            Code::Success
        };
        if let Some(m) = seen {
            self.put_merchant(m);
        }
        let body = self.pay_body(&trade, &call.app);
        self.put_trade(trade);
        reply(code, &body)
    }

    /// A pay repeating an `out_trade_no` that already names a trade: the same
    /// order again is answered from the trade; other parameters, or another
    /// buyer's code, are refused (apis.md §2.1.d).
    fn repeat_pay(
        &mut self,
        call: &Call,
        order: &TradeOrder,
        trade_no: &str,
        smid: &str,
        code: &str,
    ) -> Answer {
        self.refresh_trade(trade_no, call.now);
        let trade = self
            .st
            .trades
            .get(trade_no)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        if trade.total != order.total_amount || trade.smid != smid {
            return Err(acq(
                "ACQ.CONTEXT_INCONSISTENT",
                "out_trade_no exists with other parameters",
            ));
        }
        if trade.status == TradeStatus::TradeClosed {
            return Err(acq("ACQ.TRADE_HAS_CLOSE", "use a new out_trade_no"));
        }
        if self
            .st
            .codes
            .get(code)
            .is_some_and(|c| c.buyer_id != trade.buyer_id)
        {
            return Err(acq(
                "ACQ.TRADE_BUYER_NOT_MATCH",
                "out_trade_no names another buyer's trade; use a new out_trade_no",
            ));
        }
        match trade.status {
            TradeStatus::WaitBuyerPay => {
                let body = self.pay_body(&trade, &call.app);
                reply(Code::InProgress, &body)
            }
            _ => Err(acq(
                "ACQ.TRADE_HAS_SUCCESS",
                "query the trade to confirm it",
            )),
        }
    }

    /// `alipay.trade.precreate` (R5.1): a QR; the trade exists from the scan.
    pub fn trade_precreate(&mut self, call: &Call) -> Answer {
        let req: TradePrecreate = parse_biz(call)?;
        let order = &req.order;
        validate_order(order)?;
        let smid = self.indirect_checks(&call.app, order)?;
        let otn = order.out_trade_no.clone();
        match self.order(&call.app.pid, &otn).cloned() {
            Some(OrderRef::Qr(qr)) => {
                let q = self
                    .st
                    .qrs
                    .get(&qr)
                    .cloned()
                    .ok_or_else(ErrorReply::unknown)?;
                if q.order.total_amount != order.total_amount || q.closed {
                    return Err(acq(
                        "ACQ.CONTEXT_INCONSISTENT",
                        "out_trade_no exists with other parameters",
                    ));
                }
                return reply(
                    Code::Success,
                    &TradePrecreateResponse {
                        out_trade_no: Some(otn),
                        qr_code: Some(q.qr_code),
                        extra: Default::default(),
                    },
                );
            }
            Some(OrderRef::Trade(no)) => {
                let status = self.st.trades.get(&no).map(|t| t.status);
                return Err(match status {
                    Some(s) if s.is_paid() => acq("ACQ.TRADE_HAS_SUCCESS", ""),
                    Some(TradeStatus::TradeClosed) => acq("ACQ.TRADE_HAS_CLOSE", ""),
                    _ => acq(
                        "ACQ.CONTEXT_INCONSISTENT",
                        "out_trade_no is used by another trade",
                    ),
                });
            }
            None => {}
        }
        let expires_at = match req.qr_code_timeout_express.as_deref() {
            Some(t) => parse_timeout(t, call.now).map_err(invalid)?,
            None => call
                .now
                .checked_add(QR_LIFETIME_DEFAULT)
                .unwrap_or(call.now),
        };
        // The trade's own timeout is checked now so a bad value fails early.
        expiry(order, call.now)?;
        if let Some(m) = self.risk_admit(&call.app, order, &smid, call.now)? {
            self.put_merchant(m);
        }
        let qr_code = self.ids().qr_code();
        self.put_qr(QrOrder {
            qr_code: qr_code.clone(),
            app_id: call.app.app_id.clone(),
            pid: call.app.pid.clone(),
            smid,
            order: order.clone(),
            expires_at,
            trade_no: None,
            closed: false,
            notify_url: call.notify_url.clone(),
            sign_type: call.sign_type.as_str().to_owned(),
            charset: call.charset.as_str().to_owned(),
            created_at: call.now,
        });
        reply(
            Code::Success,
            &TradePrecreateResponse {
                out_trade_no: Some(otn),
                qr_code: Some(qr_code),
                extra: Default::default(),
            },
        )
    }

    /// `alipay.trade.create` (R5.2): a waiting trade for a known buyer.
    pub fn trade_create(&mut self, call: &Call) -> Answer {
        let req: TradeCreate = parse_biz(call)?;
        let order = &req.order;
        validate_order(order)?;
        let buyer_id = match (req.buyer_id.as_deref(), req.buyer_open_id.as_deref()) {
            (Some(id), _) if !id.is_empty() => self.st.buyers.get(id).map(|b| b.buyer_id.clone()),
            (_, Some(open)) if !open.is_empty() => self
                .idx
                .open_ids
                .get(&(call.app.app_id.clone(), open.to_owned()))
                .cloned(),
            _ => {
                return Err(invalid(
                    "buyer_id or buyer_open_id is required for alipay.trade.create",
                ));
            }
        };
        let Some(buyer_id) = buyer_id else {
            return Err(acq("ACQ.BUYER_NOT_EXIST", "no such buyer for this app"));
        };
        let smid = self.indirect_checks(&call.app, order)?;
        let otn = order.out_trade_no.clone();
        if let Some(existing) = self.order(&call.app.pid, &otn).cloned() {
            let OrderRef::Trade(no) = existing else {
                return Err(acq(
                    "ACQ.CONTEXT_INCONSISTENT",
                    "out_trade_no is used by a precreate QR",
                ));
            };
            self.refresh_trade(&no, call.now);
            let t = self
                .st
                .trades
                .get(&no)
                .cloned()
                .ok_or_else(ErrorReply::unknown)?;
            if t.total != order.total_amount || t.smid != smid {
                return Err(acq(
                    "ACQ.CONTEXT_INCONSISTENT",
                    "out_trade_no exists with other parameters",
                ));
            }
            if t.buyer_id != buyer_id {
                return Err(acq(
                    "ACQ.TRADE_BUYER_NOT_MATCH",
                    "out_trade_no names another buyer's trade; use a new out_trade_no",
                ));
            }
            return match t.status {
                TradeStatus::WaitBuyerPay => reply(
                    Code::Success,
                    &TradeCreateResponse {
                        out_trade_no: Some(otn),
                        trade_no: Some(no),
                        extra: Default::default(),
                    },
                ),
                s if s.is_paid() => Err(acq("ACQ.TRADE_HAS_SUCCESS", "")),
                _ => Err(acq("ACQ.TRADE_HAS_CLOSE", "")),
            };
        }
        let buyer = self
            .st
            .buyers
            .get(&buyer_id)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        self.buyer_checks(
            &buyer,
            order.total_amount,
            order.ext_user_info.as_ref(),
            call.now,
        )?;
        let expires_at = expiry(order, call.now)?;
        if let Some(m) = self.risk_admit(&call.app, order, &smid, call.now)? {
            self.put_merchant(m);
        }
        let trade = self.new_trade(
            call,
            order,
            smid,
            Origin::Create,
            buyer_id,
            buyer.instrument,
            expires_at,
        );
        let body = TradeCreateResponse {
            out_trade_no: Some(otn),
            trade_no: Some(trade.trade_no.clone()),
            extra: Default::default(),
        };
        self.queue_trade_notice(&trade, call.now, None, None);
        self.put_trade(trade);
        reply(Code::Success, &body)
    }

    /// `alipay.trade.query`.
    pub fn trade_query(&mut self, call: &Call) -> Answer {
        let req: TradeQuery = parse_biz(call)?;
        if let Some(org) = req.org_pid.as_deref()
            && org != call.app.pid
        {
            return Err(acq(
                "ACQ.INVALID_PARAMETER",
                "org_pid is not this acquirer's PID",
            ));
        }
        let no = self.find_trade(&call.app, &req.trade)?;
        let target = Target {
            method: Some("alipay.trade.query"),
            out_trade_no: req.trade.out_trade_no.as_deref().or_else(|| {
                no.as_deref()
                    .and_then(|n| self.st.trades.get(n))
                    .map(|t| t.out_trade_no.as_str())
            }),
            amount: no
                .as_deref()
                .and_then(|n| self.st.trades.get(n))
                .map(|t| t.total),
        };
        let target_owned = (target.out_trade_no.map(str::to_owned), target.amount);
        let target = Target {
            method: Some("alipay.trade.query"),
            out_trade_no: target_owned.0.as_deref(),
            amount: target_owned.1,
        };
        // How long the trade has existed, for rules limited by `for_seconds`.
        let age_secs = no
            .as_deref()
            .and_then(|n| self.st.trades.get(n))
            .map_or(0, |t| call.now.duration_since(t.created_at).as_secs());
        let lagging = |a: &FaultAction| match a {
            FaultAction::TradeNotExist { for_seconds } => {
                for_seconds.is_none_or(|s| age_secs < i64::try_from(s).unwrap_or(i64::MAX))
            }
            _ => false,
        };
        if self.fire_fault(&target, lagging).is_some() {
            return Err(acq("ACQ.TRADE_NOT_EXIST", "the trade does not exist (yet)"));
        }
        let Some(no) = no else {
            return Err(acq(
                "ACQ.TRADE_NOT_EXIST",
                "no trade with this number (an unscanned QR has none)",
            ));
        };
        self.refresh_trade(&no, call.now);
        let mut trade = self
            .st
            .trades
            .get(&no)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        if trade.status == TradeStatus::WaitBuyerPay
            && let Some(after) = trade.pay_after_queries
        {
            trade.queries += 1;
            if trade.queries >= after {
                // The buyer finished paying; if their funds fail, the trade waits on.
                let mut paid = trade.clone();
                if self.settle_payment(&mut paid, call.now).is_ok() {
                    trade = paid;
                    self.queue_trade_notice(&trade, call.now, None, None);
                }
            }
            self.put_trade(trade.clone());
        }
        let body = self.query_body(&trade, &call.app);
        reply(Code::Success, &body)
    }

    /// `alipay.trade.close`: closes a waiting trade.
    pub fn trade_close(&mut self, call: &Call) -> Answer {
        let req: TradeClose = parse_biz(call)?;
        let Some(no) = self.find_trade(&call.app, &req.trade)? else {
            return Err(acq(
                "ACQ.TRADE_NOT_EXIST",
                "no trade to close (an unscanned QR has none)",
            ));
        };
        self.refresh_trade(&no, call.now);
        let mut trade = self
            .st
            .trades
            .get(&no)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        if trade.status != TradeStatus::WaitBuyerPay {
            return Err(acq(
                "ACQ.TRADE_STATUS_ERROR",
                &format!(
                    "only WAIT_BUYER_PAY trades can be closed; this one is {}",
                    trade.status.as_str()
                ),
            ));
        }
        close_trade(&mut trade, CloseReason::Close, call.now);
        self.late_payment_refunded(&mut trade, CloseReason::Close, call.now);
        self.queue_trade_notice(&trade, call.now, call.notify_url.as_deref(), None);
        let body = TradeCloseResponse {
            trade_no: Some(trade.trade_no.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            extra: Default::default(),
        };
        self.put_trade(trade);
        reply(Code::Success, &body)
    }

    /// `alipay.trade.cancel`: closes an unpaid trade or refunds a paid one,
    /// within 24 hours (R4.2, R10).
    pub fn trade_cancel(&mut self, call: &Call) -> Answer {
        let req: TradeCancel = parse_biz(call)?;
        let otn_given = req.trade.out_trade_no.clone();
        let no = self.find_trade(&call.app, &req.trade)?;
        let Some(no) = no else {
            // Nothing was created: a pay that never landed, or an unscanned QR.
            if let Some(otn) = otn_given.as_deref()
                && let Some(OrderRef::Qr(qr)) = self.order(&call.app.pid, otn).cloned()
                && let Some(mut q) = self.st.qrs.get(&qr).cloned()
            {
                q.closed = true;
                self.put_qr(q);
            }
            return reply(
                Code::Success,
                &TradeCancelResponse {
                    out_trade_no: otn_given,
                    retry_flag: Some(RetryFlag::N),
                    ..Default::default()
                },
            );
        };
        self.refresh_trade(&no, call.now);
        let mut trade = self
            .st
            .trades
            .get(&no)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        let since = trade.paid_at.unwrap_or(trade.created_at);
        let base = TradeCancelResponse {
            trade_no: Some(trade.trade_no.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            ..Default::default()
        };
        let already = |action| TradeCancelResponse {
            retry_flag: Some(RetryFlag::N),
            action: Some(action),
            ..base.clone()
        };
        match trade.status {
            TradeStatus::TradeClosed => {
                let action = if trade.refunds.iter().any(|r| r.by_cancel) {
                    CancelAction::Refund
                } else {
                    CancelAction::Close
                };
                return reply(Code::Success, &already(action));
            }
            TradeStatus::TradeFinished => {
                return Err(acq("ACQ.TRADE_HAS_FINISHED", "use refund instead"));
            }
            _ => {}
        }
        if call.now.duration_since(since) > CANCEL_WINDOW {
            return Err(acq(
                "ACQ.TRADE_CANCEL_TIME_OUT",
                "more than 24 hours have passed; use refund",
            )
            .with_field("retry_flag", "N"));
        }
        if trade.status == TradeStatus::WaitBuyerPay {
            close_trade(&mut trade, CloseReason::Cancel, call.now);
            self.ledger(
                &trade,
                LedgerKind::Cancellation,
                call.now,
                Fen::ZERO,
                None,
                None,
            );
            self.late_payment_refunded(&mut trade, CloseReason::Cancel, call.now);
            self.queue_trade_notice(&trade, call.now, None, None);
            self.put_trade(trade);
            return reply(Code::Success, &already(CancelAction::Close));
        }
        // Paid: a full refund, unless refunds already happened.
        if !trade.refunds.is_empty() {
            return Err(acq(
                "ACQ.REASON_TRADE_REFUND_FEE_ERR",
                "the trade was already (partly) refunded; use refund",
            )
            .with_field("retry_flag", "N"));
        }
        let refund = self
            .make_refund(
                &trade,
                &call.app,
                trade.total,
                trade.out_trade_no.clone(),
                None,
                None,
                true,
                call.now,
            )
            .map_err(|e| e.with_field("retry_flag", "Y"))?;
        let gmt = refund.at;
        let refund = self.apply_refund(&mut trade, refund, call.now);
        trade.close_reason = Some(CloseReason::Cancel);
        self.ledger(
            &trade,
            LedgerKind::Cancellation,
            call.now,
            trade.total,
            None,
            None,
        );
        self.put_trade(trade);
        reply(
            Code::Success,
            &TradeCancelResponse {
                gmt_refund_pay: Some(BeijingTime(gmt)),
                refund_settlement_id: refund.settlement_id,
                ..already(CancelAction::Refund)
            },
        )
    }

    /// The `pay_after_cancel` fault: when a trade marked by it closes in one
    /// of the ways the rule named, the buyer's payment arrives anyway. The
    /// buyer is charged from their funding as for a payment, then refunded
    /// the same parts at once (R4.6: the Alipay trade failed, the money goes
    /// back); vouchers used by the payment are given back to the buyer. The
    /// trade stays closed and records both in `late_payment`; the merchant
    /// never had the money, so no fee, no bill row and no payout. A buyer who
    /// cannot pay any more makes no late payment.
    fn late_payment_refunded(&mut self, trade: &mut Trade, closed_by: CloseReason, now: Timestamp) {
        if !trade.late_pay_after.contains(&closed_by) || trade.late_payment.is_some() {
            return;
        }
        let Some(buyer) = self.st.buyers.get(&trade.buyer_id) else {
            return;
        };
        let mut buyer = buyer.clone();
        let Ok(parts) = funding::allocate_payment(
            &buyer,
            trade.total,
            trade.instrument,
            &Disabled::parse(trade.disable_pay_channels.as_deref()),
        ) else {
            return;
        };
        funding::move_funds(&mut buyer, &parts, false);
        for p in &parts {
            self.ledger(
                trade,
                LedgerKind::Charge,
                now,
                p.amount,
                Some(p.channel.as_str()),
                None,
            );
        }
        funding::move_funds(&mut buyer, &parts, true);
        funding::restore_vouchers(&mut buyer, &parts);
        for p in &parts {
            self.ledger(
                trade,
                LedgerKind::AutoRefund,
                now,
                p.amount,
                Some(p.channel.as_str()),
                None,
            );
        }
        self.put_buyer(buyer);
        trade.late_payment = Some(LatePayment {
            after: closed_by,
            parts,
            charged_at: now,
            refunded_at: now,
        });
    }

    // ---- buyer-side actions (control API) ----

    /// The buyer enters the password / pays in the cashier.
    pub fn confirm_trade(&mut self, trade_no: &str, now: Timestamp) -> Result<Trade, ActionError> {
        self.refresh_trade(trade_no, now);
        let mut trade = self
            .st
            .trades
            .get(trade_no)
            .cloned()
            .ok_or_else(|| ActionError::NotFound(format!("trade {trade_no} does not exist")))?;
        if trade.status != TradeStatus::WaitBuyerPay {
            return Err(ActionError::Conflict(format!(
                "trade {trade_no} is {}, not WAIT_BUYER_PAY",
                trade.status.as_str()
            )));
        }
        if let Some(b) = self.st.buyers.get(&trade.buyer_id) {
            self.buyer_checks(b, Fen::ZERO, trade.ext_user_info.as_ref(), now)
                .map_err(|e| ActionError::Conflict(e.sub_msg))?;
        }
        self.settle_payment(&mut trade, now)
            .map_err(|e| ActionError::Conflict(format!("the buyer cannot pay: {e}")))?;
        self.queue_trade_notice(&trade, now, None, None);
        self.put_trade(trade.clone());
        Ok(trade)
    }

    /// The buyer declines a waiting trade: it closes.
    pub fn abandon_trade(&mut self, trade_no: &str, now: Timestamp) -> Result<Trade, ActionError> {
        self.refresh_trade(trade_no, now);
        let mut trade = self
            .st
            .trades
            .get(trade_no)
            .cloned()
            .ok_or_else(|| ActionError::NotFound(format!("trade {trade_no} does not exist")))?;
        if trade.status != TradeStatus::WaitBuyerPay {
            return Err(ActionError::Conflict(format!(
                "trade {trade_no} is {}, not WAIT_BUYER_PAY",
                trade.status.as_str()
            )));
        }
        close_trade(&mut trade, CloseReason::Abandon, now);
        self.queue_trade_notice(&trade, now, None, None);
        self.put_trade(trade.clone());
        Ok(trade)
    }

    /// The buyer scans a precreate QR: the trade is created (R3.5) and, with
    /// `confirm`, paid at once.
    pub fn scan_qr(
        &mut self,
        qr_code: &str,
        buyer_id: &str,
        confirm: bool,
        now: Timestamp,
    ) -> Result<Trade, ActionError> {
        let q = self
            .st
            .qrs
            .get(qr_code)
            .cloned()
            .ok_or_else(|| ActionError::NotFound("no such QR code".into()))?;
        if !self.st.buyers.contains_key(buyer_id) {
            return Err(ActionError::NotFound(format!(
                "buyer {buyer_id} does not exist"
            )));
        }
        if let Some(no) = &q.trade_no {
            let t = self
                .st
                .trades
                .get(no)
                .cloned()
                .ok_or_else(|| ActionError::NotFound(no.clone()))?;
            if t.buyer_id != buyer_id {
                return Err(ActionError::Conflict(
                    "the QR was already scanned by another buyer".into(),
                ));
            }
            return if confirm && t.status == TradeStatus::WaitBuyerPay {
                self.confirm_trade(no, now)
            } else {
                Ok(t)
            };
        }
        if q.closed || q.expires_at <= now {
            return Err(ActionError::Conflict(
                "the QR code has expired or was cancelled".into(),
            ));
        }
        let app = self
            .st
            .apps
            .get(&q.app_id)
            .cloned()
            .ok_or_else(|| ActionError::NotFound("the QR's app is gone".into()))?;
        let buyer = self
            .st
            .buyers
            .get(buyer_id)
            .cloned()
            .ok_or_else(|| ActionError::NotFound(buyer_id.to_owned()))?;
        self.buyer_checks(
            &buyer,
            q.order.total_amount,
            q.order.ext_user_info.as_ref(),
            now,
        )
        .map_err(|e| ActionError::Conflict(e.sub_msg))?;
        let expires_at = expiry(&q.order, now).map_err(|e| ActionError::Invalid(e.sub_msg))?;
        let call = Call {
            app,
            method: "alipay.trade.precreate".into(),
            biz: None,
            request: jianlian_alipay::IncomingRequest::from_params(Vec::<(String, String)>::new())
                .map_err(|e| ActionError::Invalid(e.sub_msg))?,
            notify_url: q.notify_url.clone(),
            sign_type: jianlian_alipay::SignType::parse(&q.sign_type).unwrap_or_default(),
            charset: jianlian_alipay::Charset::parse(&q.charset).unwrap_or_default(),
            now,
        };
        let trade = self.new_trade(
            &call,
            &q.order,
            q.smid.clone(),
            Origin::Precreate,
            buyer_id.to_owned(),
            buyer.instrument,
            expires_at,
        );
        let mut q = q;
        q.trade_no = Some(trade.trade_no.clone());
        self.put_qr(q);
        self.queue_trade_notice(&trade, now, None, None);
        self.put_trade(trade.clone());
        if confirm {
            return self.confirm_trade(&trade.trade_no, now);
        }
        Ok(trade)
    }

    /// A new payment code for a buyer (R3.7), or a face-payment token
    /// (`CodeKind::SecurityCode`): what a face-payment device obtains once it
    /// has recognised the buyer.
    pub fn issue_payment_code(
        &mut self,
        buyer_id: &str,
        instrument: Option<Instrument>,
        kind: CodeKind,
        now: Timestamp,
    ) -> Result<String, ActionError> {
        let buyer = self
            .st
            .buyers
            .get(buyer_id)
            .ok_or_else(|| ActionError::NotFound(format!("buyer {buyer_id} does not exist")))?;
        if let Some(Instrument::BankCard(i)) = instrument
            && i >= buyer.bank_cards.len()
        {
            return Err(ActionError::Invalid(format!(
                "the buyer has no bank card {i}"
            )));
        }
        let code = loop {
            let c = match kind {
                CodeKind::BarCode => self.ids().payment_code(),
                CodeKind::SecurityCode => self.ids().security_code(),
            };
            if !self.st.codes.contains_key(&c) {
                break c;
            }
        };
        self.put_code(crate::model::PaymentCode {
            code: code.clone(),
            buyer_id: buyer_id.to_owned(),
            expires_at: now.checked_add(CODE_LIFETIME).unwrap_or(now),
            used: false,
            instrument,
            kind,
        });
        Ok(code)
    }

    /// Timed work for trades and QR codes: timeouts, refund windows, expired
    /// codes. Returns how many records changed.
    pub fn run_trade_timers(&mut self, now: Timestamp) -> usize {
        let due: Vec<String> = self
            .st
            .trades
            .values()
            .filter(|t| {
                (t.status == TradeStatus::WaitBuyerPay && t.expires_at <= now)
                    || (t.status == TradeStatus::TradeSuccess
                        && t.finish_at.is_some_and(|f| f <= now))
            })
            .map(|t| t.trade_no.clone())
            .collect();
        for no in &due {
            self.refresh_trade(no, now);
        }
        let expired_qrs: Vec<QrOrder> = self
            .st
            .qrs
            .values()
            .filter(|q| q.trade_no.is_none() && !q.closed && q.expires_at <= now)
            .cloned()
            .collect();
        let qr_count = expired_qrs.len();
        for mut q in expired_qrs {
            q.closed = true;
            self.put_qr(q);
        }
        // Codes are kept a day after expiry (to answer "expired" rather than "unknown").
        let stale: Vec<String> = self
            .st
            .codes
            .values()
            .filter(|c| {
                c.expires_at
                    .checked_add(SignedDuration::from_hours(24))
                    .is_ok_and(|t| t <= now)
            })
            .map(|c| c.code.clone())
            .collect();
        for c in &stale {
            self.remove_code(c);
        }
        due.len() + qr_count + stale.len()
    }

    /// The earliest instant at which trade timers have work.
    pub fn next_trade_timer(&self) -> Option<Timestamp> {
        let trades = self.st.trades.values().filter_map(|t| match t.status {
            TradeStatus::WaitBuyerPay => Some(t.expires_at),
            TradeStatus::TradeSuccess => t.finish_at,
            _ => None,
        });
        let qrs = self
            .st
            .qrs
            .values()
            .filter(|q| q.trade_no.is_none() && !q.closed)
            .map(|q| q.expires_at);
        trades.chain(qrs).min()
    }

    /// Applies a refund to a trade: clearing id, money back, fee returned,
    /// ledger, status, notification. Returns the refund as recorded.
    pub(crate) fn apply_refund(
        &mut self,
        trade: &mut Trade,
        mut refund: Refund,
        now: Timestamp,
    ) -> Refund {
        refund.settlement_id = Some(self.ids().settlement_id(now));
        if let Some(buyer) = self.st.buyers.get(&trade.buyer_id) {
            let mut buyer = buyer.clone();
            funding::move_funds(&mut buyer, &refund.parts, true);
            self.put_buyer(buyer);
        }
        for p in &refund.parts {
            self.ledger(
                trade,
                LedgerKind::Refund,
                now,
                p.amount,
                Some(p.channel.as_str()),
                Some(&refund.out_request_no),
            );
        }
        if !refund.fee_return.is_zero() {
            self.ledger(
                trade,
                LedgerKind::FeeReturn,
                now,
                refund.fee_return,
                None,
                Some(&refund.out_request_no),
            );
        }
        trade.fee_returned = trade
            .fee_returned
            .checked_add(refund.fee_return)
            .unwrap_or(trade.fee_returned);
        let by_cancel = refund.by_cancel;
        trade.refunds.push(refund.clone());
        if trade.refunded() >= trade.total {
            close_trade(
                trade,
                if by_cancel {
                    CloseReason::Cancel
                } else {
                    CloseReason::Refunded
                },
                now,
            );
        }
        self.queue_trade_notice(trade, now, None, Some(&refund));
        refund
    }
}

fn risk_error(reason: &str) -> ErrorReply {
    ErrorReply::business(
        "ALI40793",
        format!(
            "商户收款异常 (merchant collection abnormal): {reason}; appeal through the onboarding bank"
        ),
    )
}

pub(crate) fn close_trade(trade: &mut Trade, reason: CloseReason, at: Timestamp) {
    trade.status = TradeStatus::TradeClosed;
    trade.close_reason = Some(reason);
    trade.closed_at = Some(at);
}

pub(crate) fn funding_error(e: FundingError) -> ErrorReply {
    match e {
        FundingError::BalanceNotEnough => acq("ACQ.BUYER_BALANCE_NOT_ENOUGH", ""),
        FundingError::BalancePaymentDisabled => acq(
            "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
            "the buyer switched off balance payments; pay with another method",
        ),
        FundingError::BankcardNotEnough => acq("ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH", ""),
        FundingError::CreditNotEnough | FundingError::NoInstrument => {
            acq("ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE", &e.to_string())
        }
    }
}

/// `paid_at` plus whole calendar months in Beijing time.
fn add_months(at: Timestamp, months: u32) -> Option<Timestamp> {
    let zoned = at.to_zoned(beijing());
    zoned
        .checked_add(i64::from(months).months())
        .ok()
        .map(|z| z.timestamp())
}

/// `fund_bill_list` (snake_case, sync responses).
pub fn fund_bills(parts: &[FundPart]) -> Vec<TradeFundBill> {
    parts
        .iter()
        .map(|p| TradeFundBill {
            fund_channel: p.channel.as_str().to_owned(),
            amount: p.amount,
            real_amount: Some(p.amount),
            bank_code: p.bank_code.clone(),
            fund_type: p.fund_type.clone(),
            extra: Default::default(),
        })
        .collect()
}

/// `voucher_detail_list`, when vouchers were used.
pub fn vouchers(parts: &[FundPart]) -> Option<Vec<VoucherDetail>> {
    let list: Vec<VoucherDetail> = parts
        .iter()
        .filter(|p| p.channel.is_voucher())
        .map(|p| {
            let merchant = p.channel.is_merchant_funded();
            VoucherDetail {
                id: p.voucher_id.clone().unwrap_or_default(),
                name: p.voucher_name.clone().unwrap_or_default(),
                voucher_type: match p.channel {
                    FundChannel::Discount | FundChannel::Mdiscount => "ALIPAY_DISCOUNT_VOUCHER",
                    _ => "ALIPAY_FIX_VOUCHER",
                }
                .to_owned(),
                amount: p.amount,
                merchant_contribute: Some(if merchant { p.amount } else { Fen::ZERO }),
                other_contribute: Some(if merchant { Fen::ZERO } else { p.amount }),
                memo: None,
                template_id: None,
                extra: Default::default(),
            }
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_express_forms() {
        let now = jianlian_alipay::time::parse_beijing("2026-03-02 10:00:00").unwrap();
        let plus = |t: &str| parse_timeout(t, now).map(|at| at.duration_since(now).as_mins());
        assert_eq!(plus("90m"), Ok(90));
        assert_eq!(plus("2h"), Ok(120));
        assert_eq!(plus("15d"), Ok(15 * 24 * 60));
        assert_eq!(plus("1c"), Ok(14 * 60));
        for bad in ["0m", "16d", "1.5h", "h", "", "10s", "-1m"] {
            assert!(parse_timeout(bad, now).is_err(), "{bad}");
        }
    }
}
