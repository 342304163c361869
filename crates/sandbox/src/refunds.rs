//! Refunds (R10): `alipay.trade.refund` and `alipay.trade.fastpay.refund.query`.
//! Idempotent `out_request_no`, the funding-source order, the same-day
//! merchant income check (or the acquirer-level position), the refund window,
//! cumulative `refund_fee`, fee returns and full refund → `TRADE_CLOSED`.

use jiff::Timestamp;

use jianlian_alipay::api::trade::{
    TradeRefund, TradeRefundQuery, TradeRefundQueryResponse, TradeRefundResponse, TradeStatus,
    YesNo,
};
use jianlian_alipay::time::beijing_date;
use jianlian_alipay::{BeijingTime, Code, ErrorReply, Fen};

use crate::api::{Answer, Call, acq, parse_biz, reply};
use crate::faults::{FaultAction, Target};
use crate::fees;
use crate::funding;
use crate::model::{App, LedgerKind, Refund, RefundPosition, Trade};
use crate::state::Core;
use crate::trades::fund_bills;

impl Core {
    /// What can cover a refund (R10.1): the merchant's income of the same
    /// Beijing day, or with `refund_position: acquirer` the acquirer's funds at
    /// Alipay.
    fn refund_capacity(&self, trade: &Trade, app: &App, now: Timestamp) -> Fen {
        match app.refund_position {
            RefundPosition::MerchantDay => self.merchant_income_of_day(trade, now),
            RefundPosition::Acquirer => self.acquirer_position(&trade.pid),
        }
    }

    /// The smid's receipts today less what today's refunds cost it.
    fn merchant_income_of_day(&self, trade: &Trade, now: Timestamp) -> Fen {
        let today = beijing_date(now);
        let mut income: i64 = 0;
        for t in self
            .st
            .trades
            .values()
            .filter(|t| t.smid == trade.smid && t.pid == trade.pid)
        {
            if t.paid_at.is_some_and(|paid| beijing_date(paid) == today) {
                income = income.saturating_add(t.receipt_amount().get());
            }
            for r in t.refunds.iter().filter(|r| beijing_date(r.at) == today) {
                income = income.saturating_sub(r.merchant_cost.get());
            }
        }
        Fen::new(income.max(0))
    }

    /// The acquirer's funds at Alipay (R9.1, R9.2, R10.1): every payment's
    /// receipt less its fee, less every refund's cost to the merchant plus the
    /// fee it returned, less every payout already made to the acquirer's bank
    /// account. What was paid out is no longer at Alipay to refund from.
    pub fn acquirer_position(&self, pid: &str) -> Fen {
        let mut position: i64 = 0;
        for t in self.st.trades.values().filter(|t| t.pid == pid) {
            if t.paid_at.is_some() {
                position = position
                    .saturating_add(t.receipt_amount().get())
                    .saturating_sub(t.fee.get());
            }
            for r in &t.refunds {
                position = position
                    .saturating_sub(r.merchant_cost.get())
                    .saturating_add(r.fee_return.get());
            }
        }
        for e in self
            .st
            .ledger
            .iter()
            .filter(|e| e.kind == LedgerKind::Payout && e.pid == pid)
        {
            position = position.saturating_sub(e.amount.get());
        }
        Fen::new(position.max(0))
    }

    /// Plans a refund: allocation, merchant cost, balance check, fee return.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn make_refund(
        &self,
        trade: &Trade,
        app: &App,
        amount: Fen,
        out_request_no: String,
        reason: Option<String>,
        place: Option<(Option<String>, Option<String>, Option<String>)>,
        by_cancel: bool,
        now: Timestamp,
    ) -> Result<Refund, ErrorReply> {
        let earlier: Vec<_> = trade.refunds.iter().flat_map(|r| r.parts.clone()).collect();
        let parts = funding::allocate_refund(&trade.funding, &earlier, amount).map_err(|_| {
            acq(
                "ACQ.REASON_TRADE_REFUND_FEE_ERR",
                "the refund amount is more than what is left to refund",
            )
        })?;
        let merchant_vouchers = Fen::sum(
            parts
                .iter()
                .filter(|p| p.channel.is_merchant_funded())
                .map(|p| p.amount),
        )
        .unwrap_or(Fen::ZERO);
        let merchant_cost = amount.checked_sub(merchant_vouchers).unwrap_or(Fen::ZERO);
        let capacity = self.refund_capacity(trade, app, now);
        if capacity < merchant_cost {
            let whose = match app.refund_position {
                RefundPosition::MerchantDay => "the merchant's income of today",
                RefundPosition::Acquirer => "the acquirer's position at Alipay",
            };
            return Err(acq(
                "ACQ.SELLER_BALANCE_NOT_ENOUGH",
                &format!(
                    "{whose} ({capacity}) does not cover the refund ({merchant_cost}) (R10.1)"
                ),
            ));
        }
        let completes = trade.refunded().checked_add(amount) == Some(trade.total);
        let fee_return = fees::fee_return(
            trade.fee_rate,
            trade.fee,
            trade.fee_returned,
            merchant_cost,
            completes,
        );
        let (store_id, terminal_id, operator_id) = place.unwrap_or_default();
        Ok(Refund {
            out_request_no,
            amount,
            reason,
            parts,
            merchant_cost,
            fee_return,
            at: now,
            store_id,
            terminal_id,
            operator_id,
            by_cancel,
            settlement_id: None,
        })
    }

    fn refund_body(
        &mut self,
        trade: &Trade,
        app: &App,
        refund: &Refund,
        changed: bool,
    ) -> TradeRefundResponse {
        let (user_id, open_id) = self.buyer_ids(&trade.buyer_id, app);
        let mut extra = jianlian_alipay::api::Extra::new();
        if let Some(open) = open_id {
            extra.insert("buyer_open_id".into(), open.into());
        }
        TradeRefundResponse {
            trade_no: Some(trade.trade_no.clone()),
            out_trade_no: Some(trade.out_trade_no.clone()),
            buyer_logon_id: self
                .st
                .buyers
                .get(&trade.buyer_id)
                .map(|b| crate::ids::mask_logon_id(&b.logon_id)),
            buyer_user_id: user_id,
            fund_change: Some(if changed { YesNo::Y } else { YesNo::N }),
            refund_fee: Some(trade.refunded()),
            gmt_refund_pay: Some(BeijingTime(refund.at)),
            refund_detail_item_list: Some(fund_bills(&refund.parts)),
            store_name: None,
            send_back_fee: Some(refund.amount),
            refund_charge_amount: Some(refund.fee_return),
            refund_settlement_id: refund.settlement_id.clone(),
            extra,
        }
    }

    /// `alipay.trade.refund`.
    pub fn trade_refund(&mut self, call: &Call) -> Answer {
        let req: TradeRefund = parse_biz(call)?;
        if req.refund_amount.get() <= 0 {
            return Err(ErrorReply::invalid_parameter(
                "refund_amount must be at least 0.01",
            ));
        }
        if let Some(org) = req.org_pid.as_deref()
            && org != call.app.pid
        {
            return Err(acq(
                "ACQ.INVALID_PARAMETER",
                "org_pid is not this acquirer's PID",
            ));
        }
        if req.out_request_no.as_deref().is_some_and(|n| n.len() > 64) {
            return Err(ErrorReply::invalid_parameter(
                "out_request_no is longer than 64 characters",
            ));
        }
        let Some(no) = self.find_trade(&call.app, &req.trade)? else {
            return Err(acq("ACQ.TRADE_NOT_EXIST", "check out_trade_no / trade_no"));
        };
        self.refresh_trade(&no, call.now);
        let mut trade = self
            .st
            .trades
            .get(&no)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        let request_no = req
            .out_request_no
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| trade.out_trade_no.clone());
        // A repeat of an earlier request: no second refund.
        if let Some(previous) = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no == request_no)
            .cloned()
        {
            if previous.amount != req.refund_amount {
                return Err(acq(
                    "ACQ.DISCORDANT_REPEAT_REQUEST",
                    "this out_request_no was used with another amount",
                ));
            }
            let body = self.refund_body(&trade, &call.app, &previous, false);
            return reply(Code::Success, &body);
        }
        match trade.status {
            TradeStatus::TradeSuccess => {}
            TradeStatus::TradeFinished if trade.no_refund => {
                return Err(acq(
                    "ACQ.TRADE_NOT_ALLOW_REFUND",
                    "the acquirer's contract allows no refunds (refund_window_months 0)",
                ));
            }
            TradeStatus::TradeFinished => {
                return Err(acq(
                    "ACQ.TRADE_HAS_FINISHED",
                    "the refund window has passed (R10.4)",
                ));
            }
            TradeStatus::WaitBuyerPay => {
                return Err(acq("ACQ.TRADE_STATUS_ERROR", "the trade is not paid"));
            }
            TradeStatus::TradeClosed => {
                return Err(acq("ACQ.TRADE_STATUS_ERROR", "the trade is closed"));
            }
        }
        if req.out_request_no.is_none() && req.refund_amount != trade.total {
            return Err(acq(
                "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                "a partial refund needs out_request_no",
            ));
        }
        let refund = self.make_refund(
            &trade,
            &call.app,
            req.refund_amount,
            request_no,
            req.refund_reason.clone(),
            Some((
                req.store_id.clone(),
                req.terminal_id.clone(),
                req.operator_id.clone(),
            )),
            false,
            call.now,
        )?;
        let refund =
            self.apply_refund_with_url(&mut trade, refund, call.now, call.notify_url.as_deref());
        // The fault: the refund happened, but the answer says it is still being
        // processed, so the caller must confirm it with the refund query.
        let target = Target {
            method: Some("alipay.trade.refund"),
            out_trade_no: Some(&trade.out_trade_no),
            amount: Some(req.refund_amount),
        };
        let pending = self
            .fire_fault(&target, |a| matches!(a, FaultAction::FundChangeN))
            .is_some();
        let body = self.refund_body(&trade, &call.app, &refund, !pending);
        self.put_trade(trade);
        reply(Code::Success, &body)
    }

    fn apply_refund_with_url(
        &mut self,
        trade: &mut Trade,
        refund: Refund,
        now: Timestamp,
        url: Option<&str>,
    ) -> Refund {
        // Barcode trades have no notify_url; a refund call may bring one.
        let original = trade.notify_url.clone();
        if original.is_none() {
            trade.notify_url = url.map(str::to_owned);
        }
        let refund = self.apply_refund(trade, refund, now);
        trade.notify_url = original;
        refund
    }

    /// `alipay.trade.fastpay.refund.query`.
    pub fn refund_query(&mut self, call: &Call) -> Answer {
        let req: TradeRefundQuery = parse_biz(call)?;
        if req.out_request_no.trim().is_empty() {
            return Err(ErrorReply::invalid_parameter("out_request_no is required"));
        }
        let Some(no) = self.find_trade(&call.app, &req.trade)? else {
            return Err(acq("ACQ.TRADE_NOT_EXIST", "check out_trade_no / trade_no"));
        };
        let trade = self
            .st
            .trades
            .get(&no)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        let found = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no == req.out_request_no);
        let body = match found {
            Some(r) => TradeRefundQueryResponse {
                trade_no: Some(trade.trade_no.clone()),
                out_trade_no: Some(trade.out_trade_no.clone()),
                out_request_no: Some(r.out_request_no.clone()),
                refund_reason: r.reason.clone(),
                total_amount: Some(trade.total),
                refund_amount: Some(r.amount),
                refund_status: Some("REFUND_SUCCESS".into()),
                gmt_refund_pay: Some(BeijingTime(r.at)),
                refund_detail_item_list: Some(fund_bills(&r.parts)),
                send_back_fee: Some(r.amount),
                refund_settlement_id: r.settlement_id.clone(),
                refund_charge_amount: Some(r.fee_return),
                extra: Default::default(),
            },
            // Alipay answers 10000 without refund_status: not received.
            None => TradeRefundQueryResponse {
                trade_no: Some(trade.trade_no.clone()),
                out_trade_no: Some(trade.out_trade_no.clone()),
                out_request_no: Some(req.out_request_no.clone()),
                total_amount: Some(trade.total),
                ..Default::default()
            },
        };
        reply(Code::Success, &body)
    }
}
