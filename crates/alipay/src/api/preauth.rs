//! Pre-authorisation (apis.md §7): freeze funds with the buyer's code, pay from
//! the freeze with `alipay.trade.pay` (`auth_no`), unfreeze the rest.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra};
use crate::auth_code::mask;
use crate::biz_api;
use crate::money::Fen;
use crate::time::BeijingTime;

/// `alipay.fund.auth.order.freeze`. `Debug` shows the payment code's last
/// four digits only, as for [`TradePay`](super::trade::TradePay).
#[skip_serializing_none]
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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

impl fmt::Debug for FundAuthFreeze {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so a new field cannot be left out (or leak) unnoticed.
        let FundAuthFreeze {
            out_order_no,
            out_request_no,
            order_title,
            amount,
            auth_code,
            auth_code_type,
            product_code,
            payee_user_id,
            payee_logon_id,
            pay_timeout,
            extra_param,
            enable_pay_channels,
            disable_pay_channels,
            scene_code,
            extra,
        } = self;
        f.debug_struct("FundAuthFreeze")
            .field("out_order_no", out_order_no)
            .field("out_request_no", out_request_no)
            .field("order_title", order_title)
            .field("amount", amount)
            .field("auth_code", &mask(auth_code))
            .field("auth_code_type", auth_code_type)
            .field("product_code", product_code)
            .field("payee_user_id", payee_user_id)
            .field("payee_logon_id", payee_logon_id)
            .field("pay_timeout", pay_timeout)
            .field("extra_param", extra_param)
            .field("enable_pay_channels", enable_pay_channels)
            .field("disable_pay_channels", disable_pay_channels)
            .field("scene_code", scene_code)
            .field("extra", extra)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_last_four_digits_of_the_payment_code() {
        let freeze = FundAuthFreeze {
            out_order_no: "F1".into(),
            auth_code: "28763443825664394".into(),
            ..FundAuthFreeze::default()
        };
        let debug = format!("{freeze:?}");
        assert!(!debug.contains("2876344382566"), "{debug}");
        assert!(
            debug.contains(r#"auth_code: "*************4394""#),
            "{debug}"
        );
        assert!(debug.contains(r#"out_order_no: "F1""#), "{debug}");
    }
}
