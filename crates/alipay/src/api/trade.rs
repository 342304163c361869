//! Trade APIs (apis.md §2): pay, precreate, create, query, cancel, close,
//! refund, refund query, order settle; and the trade state machine's status
//! values (§3).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra, masked_code};
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
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

impl SubMerchant {
    /// The `sub_merchant` of a trade for the merchant with this smid.
    pub fn new(merchant_id: impl Into<String>) -> SubMerchant {
        SubMerchant {
            merchant_id: merchant_id.into(),
            merchant_type: None,
            extra: Extra::new(),
        }
    }
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
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
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
    /// Unmodelled fields, with their names as the notification wrote them.
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

// The conversions carry the modelled fields only: an unknown field's name is
// in the other form's case convention, and guessing its other spelling would
// invent a field Alipay never sent.
impl From<&TradeFundBill> for NotifyFundBill {
    fn from(b: &TradeFundBill) -> Self {
        NotifyFundBill {
            amount: b.amount,
            fund_channel: b.fund_channel.clone(),
            fund_type: b.fund_type.clone(),
            real_amount: b.real_amount,
            extra: Extra::new(),
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
            extra: Extra::new(),
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
    /// `purchase_*_contribute`, `other_contribute_detail` and newer fields.
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
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
///
/// `Debug` shows the payment code's last four digits only: for its 60 seconds
/// the full code spends the buyer's money.
#[skip_serializing_none]
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
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

impl fmt::Debug for TradePay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so a new field cannot be left out (or leak) unnoticed.
        let TradePay {
            scene,
            auth_code,
            auth_no,
            auth_confirm_mode,
            buyer_id,
            order,
        } = self;
        f.debug_struct("TradePay")
            .field("scene", scene)
            .field("auth_code", &masked_code(auth_code))
            .field("auth_no", auth_no)
            .field("auth_confirm_mode", auth_confirm_mode)
            .field("buyer_id", buyer_id)
            .field("order", order)
            .finish()
    }
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

/// One split of `royalty_parameters` (`OpenApiRoyaltyDetailInfoPojo`).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoyaltyDetail {
    /// `transfer` (default) or `replenish`.
    pub royalty_type: Option<String>,
    pub trans_out: Option<String>,
    /// `userId` or `loginName`.
    pub trans_out_type: Option<String>,
    pub trans_in: Option<String>,
    /// `userId`, `cardAliasNo`, `loginName` (or `openId`).
    pub trans_in_type: Option<String>,
    pub amount: Option<Fen>,
    /// Whole percent, 1 to 100; a JSON number at the wire.
    pub amount_percentage: Option<u32>,
    pub desc: Option<String>,
    pub royalty_scene: Option<String>,
    /// When given, Alipay checks it against the `trans_in` account's name.
    pub trans_in_name: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// `extend_params` of a settle (`SettleExtendParams`).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SettleExtendParams {
    /// `"true"`: this settle finishes the trade's splitting.
    pub royalty_finish: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// `alipay.trade.order.settle` (apis.md §2.9): splits a paid trade's money
/// (royalty). Plain bank-indirect face-to-face payment does not use it.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeOrderSettle {
    /// Unique per settle request; a retry reuses it.
    pub out_request_no: String,
    pub trade_no: String,
    /// Required, except in a call that only finishes splitting
    /// (`extend_params.royalty_finish`); an empty list is not sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub royalty_parameters: Vec<RoyaltyDetail>,
    pub operator_id: Option<String>,
    /// `sync` (default) or `async`.
    pub royalty_mode: Option<String>,
    pub extend_params: Option<SettleExtendParams>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TradeOrderSettleResponse {
    pub trade_no: Option<String>,
    /// Alipay's number of this settle, to query its result.
    pub settle_no: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    TradeOrderSettle,
    "alipay.trade.order.settle",
    TradeOrderSettleResponse
);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::api::{AlipayApi, parse_biz};
    use crate::response::{NodeKind, Outcome, VerifiedNode, classify_for};

    #[test]
    fn unknown_response_fields_are_kept_at_every_level() {
        let node = json!({
            "code": "10000",
            "msg": "Success",
            "trade_no": "2024051322001446881000041395",
            "trade_status": "TRADE_SUCCESS",
            "total_amount": "88.88",
            "hb_fq_pay_info": {"user_install_num": "3"},
            "fund_bill_list": [{
                "fund_channel": "BANKCARD",
                "amount": "88.88",
                "fund_type": "DEBIT_CARD",
                "bank_code": "CMB",
                "card_holder_tail": "1234"
            }],
            "voucher_detail_list": [{
                "id": "2015102600073002039000002D5O",
                "name": "5元代金券",
                "type": "ALIPAY_FIX_VOUCHER",
                "amount": "5.00",
                "purchase_buyer_contribute": "2.01",
                "other_contribute_detail": [{"contribute_type": "BRAND", "contribute_amount": "1.00"}]
            }]
        });
        let text = node.to_string();
        let Outcome::Success(reply) = classify_for::<TradeQuery>(Ok(VerifiedNode {
            kind: NodeKind::Method,
            node_json: text,
        })) else {
            panic!("a success")
        };
        let body = reply.body;
        assert_eq!(
            body.extra["hb_fq_pay_info"],
            json!({"user_install_num": "3"})
        );
        let bill = &body.fund_bill_list.as_deref().unwrap_or_default()[0];
        assert_eq!(bill.extra["card_holder_tail"], "1234");
        let voucher = &body.voucher_detail_list.as_deref().unwrap_or_default()[0];
        assert_eq!(voucher.extra["purchase_buyer_contribute"], "2.01");
        assert_eq!(
            voucher.extra["other_contribute_detail"][0]["contribute_type"],
            "BRAND"
        );
        // Written back, nothing is lost or added (`code`/`msg` live in `extra`).
        assert_eq!(serde_json::to_value(&body).ok(), Some(node));

        let refund = json!({
            "fund_change": "Y",
            "refund_fee": "1.00",
            "refund_detail_item_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": "1.00", "new_field": true}]
        });
        let parsed: TradeRefundResponse = serde_json::from_value(refund.clone()).unwrap();
        let item = &parsed
            .refund_detail_item_list
            .as_deref()
            .unwrap_or_default()[0];
        assert_eq!(item.extra["new_field"], true);
        assert_eq!(serde_json::to_value(&parsed).ok(), Some(refund));
    }

    #[test]
    fn notification_fund_bills_keep_unknown_fields_in_camel_case() {
        let list =
            r#"[{"amount":"88.88","fundChannel":"PCREDIT","fundType":"CREDIT","hbFqNum":"3"}]"#;
        let bills: Vec<NotifyFundBill> = serde_json::from_str(list).unwrap();
        assert_eq!(bills[0].fund_channel, "PCREDIT");
        assert_eq!(bills[0].extra["hbFqNum"], "3");
        assert_eq!(serde_json::to_string(&bills).unwrap(), list);
    }

    #[test]
    fn forwarded_requests_keep_unknown_nested_fields() {
        let biz = r#"{"out_trade_no":"T1","total_amount":"1.00","subject":"s","sub_merchant":{"merchant_id":"2088000000000001","merchant_name":"新字段"},"scene":"bar_code","auth_code":"28763443825664394"}"#;
        let pay: TradePay = parse_biz(biz).unwrap();
        let sub = pay.order.sub_merchant.as_ref().unwrap();
        assert_eq!(sub.extra["merchant_name"], "新字段");
        let again: Value =
            serde_json::from_str(&pay.params().unwrap().biz_content.unwrap()).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(biz).unwrap());
    }

    #[test]
    fn order_settle_is_a_typed_api() {
        assert_eq!(TradeOrderSettle::METHOD, "alipay.trade.order.settle");
        let settle = TradeOrderSettle {
            out_request_no: "S20240513000001".into(),
            trade_no: "2024051322001446881000041395".into(),
            royalty_parameters: vec![RoyaltyDetail {
                royalty_type: Some("transfer".into()),
                trans_out: Some("2088101126765726".into()),
                trans_out_type: Some("userId".into()),
                trans_in: Some("2088101126708402".into()),
                trans_in_type: Some("userId".into()),
                amount: Some(Fen::new(10)),
                amount_percentage: Some(20),
                desc: Some("分账给2088101126708402".into()),
                ..RoyaltyDetail::default()
            }],
            ..TradeOrderSettle::default()
        };
        let params = settle.params().unwrap();
        assert_eq!(
            params.biz_content.as_deref(),
            Some(
                r#"{"out_request_no":"S20240513000001","trade_no":"2024051322001446881000041395","royalty_parameters":[{"royalty_type":"transfer","trans_out":"2088101126765726","trans_out_type":"userId","trans_in":"2088101126708402","trans_in_type":"userId","amount":"0.10","amount_percentage":20,"desc":"分账给2088101126708402"}]}"#
            )
        );
        // Finishing the splitting alone sends no empty list.
        let finish = TradeOrderSettle {
            out_request_no: "S2".into(),
            trade_no: "2024051322001446881000041395".into(),
            extend_params: Some(SettleExtendParams {
                royalty_finish: Some("true".into()),
                ..SettleExtendParams::default()
            }),
            ..TradeOrderSettle::default()
        };
        assert_eq!(
            finish.params().unwrap().biz_content.as_deref(),
            Some(
                r#"{"out_request_no":"S2","trade_no":"2024051322001446881000041395","extend_params":{"royalty_finish":"true"}}"#
            )
        );
        let parsed: TradeOrderSettle = parse_biz(&params.biz_content.unwrap()).unwrap();
        assert_eq!(parsed, settle);

        let node = r#"{"code":"10000","msg":"Success","trade_no":"2024051322001446881000041395","settle_no":"20240513002530020000530000123456"}"#;
        let Outcome::Success(reply) = classify_for::<TradeOrderSettle>(Ok(VerifiedNode {
            kind: NodeKind::Method,
            node_json: node.to_owned(),
        })) else {
            panic!("a success")
        };
        assert_eq!(
            reply.body.settle_no.as_deref(),
            Some("20240513002530020000530000123456")
        );
    }

    #[test]
    fn debug_shows_only_the_last_four_digits_of_the_payment_code() {
        let pay = TradePay {
            scene: Some("bar_code".into()),
            auth_code: Some("28763443825664394".into()),
            ..TradePay::default()
        };
        let debug = format!("{pay:?}");
        assert!(!debug.contains("28763443825664394"), "{debug}");
        assert!(!debug.contains("2876344382566"), "{debug}");
        assert!(
            debug.contains(r#"auth_code: Some("*************4394")"#),
            "{debug}"
        );
        assert!(debug.contains(r#"scene: Some("bar_code")"#), "{debug}");
        let alternate = format!("{pay:#?}");
        assert!(!alternate.contains("28763443825664394"), "{alternate}");
    }
}
