//! Trade APIs (apis.md §2): pay, precreate, create, query, cancel, close,
//! refund, refund query; and the trade state machine's status values (§3).

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra};
use crate::biz_api;
use crate::money::Fen;
use crate::time::BeijingTime;

/// `trade_status` (apis.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    /// Created, waiting for the buyer.
    WaitBuyerPay,
    /// Unpaid and closed (timeout, close, cancel), or fully refunded.
    TradeClosed,
    /// Paid; refundable.
    TradeSuccess,
    /// Paid; no longer refundable.
    TradeFinished,
}

impl TradeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
        }
    }

    pub fn parse(text: &str) -> Option<TradeStatus> {
        [
            TradeStatus::WaitBuyerPay,
            TradeStatus::TradeClosed,
            TradeStatus::TradeSuccess,
            TradeStatus::TradeFinished,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the buyer has paid (`TRADE_SUCCESS` or `TRADE_FINISHED`).
    pub fn is_paid(self) -> bool {
        matches!(self, TradeStatus::TradeSuccess | TradeStatus::TradeFinished)
    }
}

/// `sub_merchant`: the indirect merchant's smid (R3.1).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubMerchant {
    pub merchant_id: String,
    /// Only `alipay`; may be omitted.
    pub merchant_type: Option<String>,
}

/// One line of `goods_detail`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoodsDetail {
    pub goods_id: String,
    pub goods_name: String,
    pub quantity: serde_json::Value,
    pub price: Fen,
    pub alipay_goods_id: Option<String>,
    pub goods_category: Option<String>,
    pub categories_tree: Option<String>,
    pub body: Option<String>,
    pub show_url: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// One funding source of a payment or refund (`fund_bill_list`,
/// `refund_detail_item_list`). Notifications write it in camelCase
/// ([`NotifyFundBill`]).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeFundBill {
    pub fund_channel: String,
    pub amount: Fen,
    pub real_amount: Option<Fen>,
    pub bank_code: Option<String>,
    /// `DEBIT_CARD`, `CREDIT_CARD` or `MIXED_CARD` when `fund_channel=BANKCARD`.
    pub fund_type: Option<String>,
}

/// `fund_bill_list` as notifications write it: camelCase (R7.6).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyFundBill {
    pub amount: Fen,
    pub fund_channel: String,
    pub fund_type: Option<String>,
    pub real_amount: Option<Fen>,
}

impl From<&TradeFundBill> for NotifyFundBill {
    fn from(b: &TradeFundBill) -> Self {
        NotifyFundBill {
            amount: b.amount,
            fund_channel: b.fund_channel.clone(),
            fund_type: b.fund_type.clone(),
            real_amount: b.real_amount,
        }
    }
}

impl From<&NotifyFundBill> for TradeFundBill {
    fn from(b: &NotifyFundBill) -> Self {
        TradeFundBill {
            fund_channel: b.fund_channel.clone(),
            amount: b.amount,
            real_amount: b.real_amount,
            bank_code: None,
            fund_type: b.fund_type.clone(),
        }
    }
}

/// A voucher used in a payment (`voucher_detail_list`).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherDetail {
    pub id: String,
    pub name: String,
    /// `ALIPAY_FIX_VOUCHER`, `ALIPAY_DISCOUNT_VOUCHER`, `ALIPAY_ITEM_VOUCHER`, …
    #[serde(rename = "type")]
    pub voucher_type: String,
    pub amount: Fen,
    pub merchant_contribute: Option<Fen>,
    pub other_contribute: Option<Fen>,
    pub memo: Option<String>,
    pub template_id: Option<String>,
}

/// Fields shared by pay, precreate and create (R5.3: "essentially the same
/// parameters").
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeOrder {
    pub out_trade_no: String,
    pub total_amount: Fen,
    pub subject: String,
    pub product_code: Option<String>,
    pub seller_id: Option<String>,
    pub discountable_amount: Option<Fen>,
    pub undiscountable_amount: Option<Fen>,
    pub body: Option<String>,
    pub goods_detail: Option<Vec<GoodsDetail>>,
    pub operator_id: Option<String>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
    pub alipay_store_id: Option<String>,
    pub extend_params: Option<serde_json::Value>,
    pub timeout_express: Option<String>,
    pub time_expire: Option<String>,
    pub sub_merchant: Option<SubMerchant>,
    pub request_org_pid: Option<String>,
    pub disable_pay_channels: Option<String>,
    pub enable_pay_channels: Option<String>,
    pub ext_user_info: Option<serde_json::Value>,
    pub query_options: Option<Vec<String>>,
    pub merchant_order_no: Option<String>,
    pub passback_params: Option<String>,
    pub business_params: Option<serde_json::Value>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// `alipay.trade.pay`: the cashier scanned the buyer's payment code.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradePay {
    /// `bar_code` (default) or `security_code` (face).
    pub scene: Option<String>,
    pub auth_code: Option<String>,
    pub auth_no: Option<String>,
    pub auth_confirm_mode: Option<String>,
    pub buyer_id: Option<String>,
    #[serde(flatten)]
    pub order: TradeOrder,
}

/// The body of `alipay.trade.pay`'s answer (also on 10003).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradePayResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub buyer_user_id: Option<String>,
    pub buyer_open_id: Option<String>,
    pub total_amount: Option<Fen>,
    pub receipt_amount: Option<Fen>,
    pub buyer_pay_amount: Option<Fen>,
    pub point_amount: Option<Fen>,
    pub invoice_amount: Option<Fen>,
    pub gmt_payment: Option<BeijingTime>,
    pub fund_bill_list: Option<Vec<TradeFundBill>>,
    pub voucher_detail_list: Option<Vec<VoucherDetail>>,
    pub store_name: Option<String>,
    pub discount_amount: Option<Fen>,
    pub mdiscount_amount: Option<Fen>,
    pub settlement_id: Option<String>,
    pub charge_amount: Option<Fen>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(TradePay, "alipay.trade.pay", TradePayResponse);

/// `alipay.trade.precreate`: a dynamic QR for the buyer to scan.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradePrecreate {
    pub qr_code_timeout_express: Option<String>,
    #[serde(flatten)]
    pub order: TradeOrder,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradePrecreateResponse {
    pub out_trade_no: Option<String>,
    pub qr_code: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    TradePrecreate,
    "alipay.trade.precreate",
    TradePrecreateResponse
);

/// `alipay.trade.create`: a trade for a known buyer (H5/JSAPI, store fixed QR).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeCreate {
    pub buyer_id: Option<String>,
    pub buyer_open_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub op_app_id: Option<String>,
    #[serde(flatten)]
    pub order: TradeOrder,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeCreateResponse {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(TradeCreate, "alipay.trade.create", TradeCreateResponse);

/// Names a trade by Alipay's `trade_no` or the merchant's `out_trade_no`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TradeRef {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
}

impl TradeRef {
    pub fn out_trade_no(no: impl Into<String>) -> TradeRef {
        TradeRef {
            out_trade_no: Some(no.into()),
            trade_no: None,
        }
    }
}

/// `alipay.trade.query`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeQuery {
    #[serde(flatten)]
    pub trade: TradeRef,
    /// Bank-indirect "双联": the acquirer's PID owning the trade.
    pub org_pid: Option<String>,
    pub query_options: Option<Vec<String>>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeQueryResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub trade_status: Option<TradeStatus>,
    pub total_amount: Option<Fen>,
    pub buyer_pay_amount: Option<Fen>,
    pub point_amount: Option<Fen>,
    pub invoice_amount: Option<Fen>,
    pub receipt_amount: Option<Fen>,
    pub send_pay_date: Option<BeijingTime>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
    pub store_name: Option<String>,
    pub buyer_user_id: Option<String>,
    pub buyer_open_id: Option<String>,
    pub fund_bill_list: Option<Vec<TradeFundBill>>,
    pub voucher_detail_list: Option<Vec<VoucherDetail>>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub alipay_sub_merchant_id: Option<String>,
    pub ext_infos: Option<String>,
    pub passback_params: Option<String>,
    pub settlement_id: Option<String>,
    pub charge_amount: Option<Fen>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(TradeQuery, "alipay.trade.query", TradeQueryResponse);

/// `alipay.trade.cancel`: closes an unpaid trade or refunds a paid one (24 h).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeCancel {
    #[serde(flatten)]
    pub trade: TradeRef,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// `retry_flag` of a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetryFlag {
    /// Retry the cancel.
    Y,
    /// Stop.
    N,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelAction {
    /// The unpaid trade was closed.
    Close,
    /// The paid trade was refunded.
    Refund,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeCancelResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub retry_flag: Option<RetryFlag>,
    pub action: Option<CancelAction>,
    pub gmt_refund_pay: Option<BeijingTime>,
    pub refund_settlement_id: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(TradeCancel, "alipay.trade.cancel", TradeCancelResponse);

/// `alipay.trade.close`: closes a `WAIT_BUYER_PAY` trade.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeClose {
    #[serde(flatten)]
    pub trade: TradeRef,
    pub operator_id: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeCloseResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(TradeClose, "alipay.trade.close", TradeCloseResponse);

/// `alipay.trade.refund`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeRefund {
    #[serde(flatten)]
    pub trade: TradeRef,
    pub refund_amount: Fen,
    /// Required for partial refunds; retries reuse it.
    pub out_request_no: Option<String>,
    pub refund_reason: Option<String>,
    pub operator_id: Option<String>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
    pub org_pid: Option<String>,
    pub goods_detail: Option<Vec<GoodsDetail>>,
    pub query_options: Option<Vec<String>>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// `Y`/`N` flags (`fund_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum YesNo {
    Y,
    N,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeRefundResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub buyer_user_id: Option<String>,
    /// `Y`: money moved now; otherwise confirm with refund query.
    pub fund_change: Option<YesNo>,
    /// Cumulative refunded amount of the trade.
    pub refund_fee: Option<Fen>,
    pub gmt_refund_pay: Option<BeijingTime>,
    pub refund_detail_item_list: Option<Vec<TradeFundBill>>,
    pub store_name: Option<String>,
    pub send_back_fee: Option<Fen>,
    pub refund_charge_amount: Option<Fen>,
    pub refund_settlement_id: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(TradeRefund, "alipay.trade.refund", TradeRefundResponse);

/// `alipay.trade.fastpay.refund.query`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeRefundQuery {
    #[serde(flatten)]
    pub trade: TradeRef,
    pub out_request_no: String,
    pub query_options: Option<Vec<String>>,
    pub org_pid: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeRefundQueryResponse {
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub out_request_no: Option<String>,
    pub refund_reason: Option<String>,
    pub total_amount: Option<Fen>,
    pub refund_amount: Option<Fen>,
    /// `REFUND_SUCCESS`; absent = not received or failed.
    pub refund_status: Option<String>,
    pub gmt_refund_pay: Option<BeijingTime>,
    pub refund_detail_item_list: Option<Vec<TradeFundBill>>,
    pub send_back_fee: Option<Fen>,
    pub refund_settlement_id: Option<String>,
    pub refund_charge_amount: Option<Fen>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    TradeRefundQuery,
    "alipay.trade.fastpay.refund.query",
    TradeRefundQueryResponse
);
