//! Pre-authorisation (apis.md §7): freeze funds with the buyer's code, pay from
//! the freeze with `alipay.trade.pay` (`auth_no`), unfreeze the rest.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra};
use crate::biz_api;
use crate::money::Fen;
use crate::time::BeijingTime;

/// `alipay.fund.auth.order.freeze`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FundAuthFreeze {
    pub out_order_no: String,
    pub out_request_no: String,
    pub order_title: String,
    pub amount: Fen,
    pub auth_code: String,
    /// `bar_code` or `security_code`.
    pub auth_code_type: String,
    /// `PRE_AUTH`.
    pub product_code: String,
    pub payee_user_id: Option<String>,
    pub payee_logon_id: Option<String>,
    pub pay_timeout: Option<String>,
    pub extra_param: Option<String>,
    pub enable_pay_channels: Option<String>,
    pub disable_pay_channels: Option<String>,
    pub scene_code: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FundAuthFreezeResponse {
    pub auth_no: Option<String>,
    pub operation_id: Option<String>,
    pub out_order_no: Option<String>,
    pub out_request_no: Option<String>,
    pub amount: Option<Fen>,
    pub credit_amount: Option<Fen>,
    pub fund_amount: Option<Fen>,
    pub gmt_trans: Option<BeijingTime>,
    /// `INIT`, `SUCCESS`, `CLOSED`.
    pub status: Option<String>,
    pub payer_user_id: Option<String>,
    pub payer_logon_id: Option<String>,
    pub pre_auth_type: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    FundAuthFreeze,
    "alipay.fund.auth.order.freeze",
    FundAuthFreezeResponse
);

/// `alipay.fund.auth.order.unfreeze`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FundAuthUnfreeze {
    pub auth_no: String,
    pub out_request_no: String,
    pub amount: Fen,
    pub remark: String,
    pub extra_param: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FundAuthUnfreezeResponse {
    pub auth_no: Option<String>,
    pub out_order_no: Option<String>,
    pub operation_id: Option<String>,
    pub out_request_no: Option<String>,
    pub amount: Option<Fen>,
    pub status: Option<String>,
    pub gmt_trans: Option<BeijingTime>,
    pub credit_amount: Option<Fen>,
    pub fund_amount: Option<Fen>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    FundAuthUnfreeze,
    "alipay.fund.auth.order.unfreeze",
    FundAuthUnfreezeResponse
);
