//! Alipay's gateway codes and business `sub_code`s, with what a client should do
//! about each (apis.md §1, §2.1.d and the per-API tables).
//!
//! The one rule that matters most: a code either proves the call had **no
//! effect** (a failure a client may act on) or leaves the outcome **unknown**
//! (20000, `*.SYSTEM_ERROR`, `ACQ.TRADE_HAS_SUCCESS`), which must lead to a
//! query, never to a failure.

use std::fmt;

/// The gateway-level `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 10000: the call succeeded (for refunds check `fund_change`).
    Success,
    /// 10003: `alipay.trade.pay` created the trade and waits for the buyer.
    InProgress,
    /// 20000: service unavailable, outcome unknown.
    ServiceUnavailable,
    /// 20001: token problems.
    InsufficientTokenPermissions,
    /// 40001: a required argument is missing.
    MissingArguments,
    /// 40002: an argument is invalid.
    InvalidArguments,
    /// 40003: conditions not met (e.g. decryption).
    InsufficientConditions,
    /// 40004: business failure; see `sub_code`.
    BusinessFailed,
    /// 40005: call frequency limited.
    CallLimited,
    /// 40006: the app lacks the permission.
    InsufficientPermissions,
}

impl Code {
    pub const ALL: [Code; 10] = [
        Code::Success,
        Code::InProgress,
        Code::ServiceUnavailable,
        Code::InsufficientTokenPermissions,
        Code::MissingArguments,
        Code::InvalidArguments,
        Code::InsufficientConditions,
        Code::BusinessFailed,
        Code::CallLimited,
        Code::InsufficientPermissions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Success => "10000",
            Code::InProgress => "10003",
            Code::ServiceUnavailable => "20000",
            Code::InsufficientTokenPermissions => "20001",
            Code::MissingArguments => "40001",
            Code::InvalidArguments => "40002",
            Code::InsufficientConditions => "40003",
            Code::BusinessFailed => "40004",
            Code::CallLimited => "40005",
            Code::InsufficientPermissions => "40006",
        }
    }

    /// The `msg` Alipay writes with the code (10003's leading space is real).
    pub fn msg(self) -> &'static str {
        match self {
            Code::Success => "Success",
            Code::InProgress => " order success pay inprocess",
            Code::ServiceUnavailable => "Service Currently Unavailable",
            Code::InsufficientTokenPermissions => "Insufficient Token Permissions",
            Code::MissingArguments => "Missing Required Arguments",
            Code::InvalidArguments => "Invalid Arguments",
            Code::InsufficientConditions => "Insufficient Conditions",
            Code::BusinessFailed => "Business Failed",
            Code::CallLimited => "Call Limited",
            Code::InsufficientPermissions => "Insufficient Permissions",
        }
    }

    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client should do after a failure or an unknown result (the legend of
/// apis.md §2.1.d, extended to the gateway codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Outcome unknown, or money may have moved: query, then cancel (pay) or
    /// retry with the same parameters (idempotent calls). Never a failure.
    Query,
    /// The buyer refreshes the payment code; retry with a new code.
    NewCode,
    /// The buyer must fix the account or pay another way; do not retry.
    Buyer,
    /// A request or configuration error; do not retry unchanged.
    Fix,
    /// The trade already exists in a state that refuses this call (closed,
    /// finished, another buyer's); act on its state. A trade that is already
    /// paid is not this: `ACQ.TRADE_HAS_SUCCESS` calls for [`Action::Query`].
    State,
    /// Retry the same request later (frequency limits, seller balance).
    RetryLater,
    /// Re-authorise (expired or invalid tokens).
    Reauthorize,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Query => "QUERY",
            Action::NewCode => "NEW-CODE",
            Action::Buyer => "BUYER",
            Action::Fix => "FIX",
            Action::State => "STATE",
            Action::RetryLater => "RETRY-LATER",
            Action::Reauthorize => "REAUTHORIZE",
        }
    }
}

/// One known `sub_code`: its gateway code, a Chinese message (what Alipay shows
/// in `sub_msg`) and the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubCode {
    pub code: Code,
    pub sub_code: &'static str,
    pub sub_msg: &'static str,
    pub action: Action,
}

macro_rules! sub_codes {
    ($($code:ident $sub:literal $msg:literal $action:ident;)*) => {
        /// Every `sub_code` of apis.md §1 and §2 with its action.
        pub const SUB_CODES: &[SubCode] = &[
            $(SubCode { code: Code::$code, sub_code: $sub, sub_msg: $msg, action: Action::$action },)*
        ];
    };
}

sub_codes! {
    // 20000: unknown.
    ServiceUnavailable "isp.unknow-error" "服务暂不可用（业务系统不可用）" Query;
    ServiceUnavailable "aop.unknow-error" "服务暂不可用（网关自身的未知错误）" Query;
    ServiceUnavailable "aop.ACQ.SYSTEM_ERROR" "系统异常" Query;
    // 20001: tokens.
    InsufficientTokenPermissions "aop.invalid-auth-token" "无效的访问令牌" Reauthorize;
    InsufficientTokenPermissions "aop.auth-token-time-out" "访问令牌已过期" Reauthorize;
    InsufficientTokenPermissions "aop.invalid-app-auth-token" "无效的应用授权令牌" Reauthorize;
    InsufficientTokenPermissions "aop.invalid-app-auth-token-no-api" "商户未授权当前接口" Reauthorize;
    InsufficientTokenPermissions "aop.app-auth-token-time-out" "应用授权令牌已过期" Reauthorize;
    InsufficientTokenPermissions "aop.no-product-reg-by-partner" "商户未签约任何产品" Fix;
    // 40001: missing arguments.
    MissingArguments "isv.missing-method" "缺少方法名参数" Fix;
    MissingArguments "isv.missing-signature" "缺少签名参数" Fix;
    MissingArguments "isv.missing-signature-type" "缺少签名类型" Fix;
    MissingArguments "isv.missing-signature-key" "缺少签名配置" Fix;
    MissingArguments "isv.missing-app-id" "缺少AppID参数" Fix;
    MissingArguments "isv.missing-timestamp" "缺少时间戳参数" Fix;
    MissingArguments "isv.missing-version" "缺少版本参数" Fix;
    MissingArguments "isv.decryption-error-missing-encrypt-type" "解密出错, 未指定加密算法" Fix;
    // 40002: invalid arguments.
    InvalidArguments "isv.invalid-parameter" "参数无效" Fix;
    InvalidArguments "isv.upload-fail" "文件上传失败" Fix;
    InvalidArguments "isv.invalid-file-extension" "文件扩展名无效" Fix;
    InvalidArguments "isv.invalid-file-size" "文件大小无效" Fix;
    InvalidArguments "isv.invalid-method" "不存在的方法名" Fix;
    InvalidArguments "isv.invalid-format" "无效的数据格式" Fix;
    InvalidArguments "isv.invalid-signature-type" "无效的签名类型" Fix;
    InvalidArguments "isv.invalid-signature" "无效签名" Fix;
    InvalidArguments "isv.invalid-encrypt-type" "无效的加密类型" Fix;
    InvalidArguments "isv.invalid-encrypt" "解密异常" Fix;
    InvalidArguments "isv.invalid-app-id" "无效的AppID参数" Fix;
    InvalidArguments "isv.invalid-timestamp" "非法的时间戳参数" Fix;
    InvalidArguments "isv.invalid-charset" "字符集错误" Fix;
    InvalidArguments "isv.invalid-digest" "摘要错误" Fix;
    InvalidArguments "isv.decryption-error-not-valid-encrypt-type" "解密出错，不支持的加密算法" Fix;
    InvalidArguments "isv.decryption-error-not-valid-encrypt-key" "解密出错, 未配置加密密钥或加密密钥格式错误" Fix;
    InvalidArguments "isv.decryption-error-unknown" "解密出错，未知异常" Fix;
    InvalidArguments "isv.missing-signature-config" "验签出错, 未配置对应签名算法的公钥或者证书" Fix;
    InvalidArguments "isv.not-support-app-auth" "本接口不支持第三方代理调用" Fix;
    InvalidArguments "isv.suspected-attack" "可疑的攻击请求" Fix;
    InvalidArguments "isv.forbidden-api" "接口禁止调用" Fix;
    InvalidArguments "isv.missing-app-cert-sn" "缺少应用公钥证书序列号" Fix;
    InvalidArguments "isv.missing-alipay-root-cert-sn" "缺少支付宝根证书序列号" Fix;
    InvalidArguments "isv.code-invalid" "授权码code无效" Reauthorize;
    InvalidArguments "isv.refresh-token-invalid" "刷新令牌refresh_token无效" Reauthorize;
    InvalidArguments "isv.refreshed-token-invalid" "刷新令牌已使用，请使用最新的刷新令牌" Reauthorize;
    // 40005 and 40006.
    CallLimited "isv.app-call-limited" "应用调用次数超限" RetryLater;
    CallLimited "isv.method-call-limited" "接口调用次数超限" RetryLater;
    InsufficientPermissions "isv.insufficient-isv-permissions" "ISV权限不足" Fix;
    InsufficientPermissions "isv.insufficient-user-permissions" "用户权限不足" Fix;
    InsufficientPermissions "isv.app-api-punished" "应用接口被处罚" Fix;
    // 40004: trade business codes (alipay.trade.*).
    BusinessFailed "ACQ.SYSTEM_ERROR" "系统错误" Query;
    BusinessFailed "AQC.SYSTEM_ERROR" "系统错误" Query;
    BusinessFailed "ACQ.INVALID_PARAMETER" "参数无效" Fix;
    BusinessFailed "ACQ.ACCESS_FORBIDDEN" "无权限使用接口" Fix;
    BusinessFailed "ACQ.EXIST_FORBIDDEN_WORD" "订单信息中包含违禁词" Fix;
    BusinessFailed "ACQ.PARTNER_ERROR" "应用APP_ID填写错误" Fix;
    BusinessFailed "ACQ.TOTAL_FEE_EXCEED" "订单总金额超过限额" Fix;
    BusinessFailed "ACQ.PAYMENT_AUTH_CODE_INVALID" "支付授权码无效" NewCode;
    BusinessFailed "ACQ.CONTEXT_INCONSISTENT" "交易信息被篡改" Fix;
    // apis.md's STATE row says "treat as success if same buyer/order (confirm
    // via query)": the out_trade_no is paid, so this must never read as a
    // failed payment. Only a query can tell whether the payment is this order.
    BusinessFailed "ACQ.TRADE_HAS_SUCCESS" "交易已被支付" Query;
    BusinessFailed "ACQ.TRADE_HAS_CLOSE" "交易已经关闭" State;
    BusinessFailed "ACQ.BUYER_BALANCE_NOT_ENOUGH" "买家余额不足" Buyer;
    BusinessFailed "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH" "用户银行卡余额不足" Buyer;
    BusinessFailed "ACQ.ERROR_BALANCE_PAYMENT_DISABLE" "余额支付功能关闭" Buyer;
    BusinessFailed "ACQ.BUYER_SELLER_EQUAL" "买卖家不能相同" Buyer;
    BusinessFailed "ACQ.TRADE_BUYER_NOT_MATCH" "交易买家不匹配" State;
    BusinessFailed "ACQ.BUYER_ENABLE_STATUS_FORBID" "买家状态非法" Buyer;
    BusinessFailed "ACQ.PULL_MOBILE_CASHIER_FAIL" "唤起移动收银台失败" NewCode;
    BusinessFailed "ACQ.MOBILE_PAYMENT_SWITCH_OFF" "用户的无线支付开关关闭" Buyer;
    BusinessFailed "ACQ.PAYMENT_FAIL" "支付失败" NewCode;
    BusinessFailed "ACQ.PAYMENT_REQUEST_HAS_RISK" "支付有风险" Buyer;
    BusinessFailed "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE" "没用可用的支付工具" Buyer;
    BusinessFailed "ACQ.USER_FACE_PAYMENT_SWITCH_OFF" "用户当面付付款开关关闭" Buyer;
    BusinessFailed "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR" "买家付款日限额超限" Buyer;
    BusinessFailed "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR" "买家付款月额度超限" Buyer;
    BusinessFailed "ACQ.BEYOND_PAY_RESTRICTION" "商户收款额度超限" Fix;
    BusinessFailed "ACQ.BEYOND_PER_RECEIPT_RESTRICTION" "商户收款金额超过月限额" Fix;
    BusinessFailed "ACQ.SELLER_BEEN_BLOCKED" "商家账号被冻结" Fix;
    BusinessFailed "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT" "买家未通过人行认证" Buyer;
    BusinessFailed "ACQ.ERROR_SELLER_CERTIFY_LEVEL_LIMIT" "账号认证等级受限" Fix;
    BusinessFailed "ACQ.INVALID_STORE_ID" "商户门店编号无效" Fix;
    BusinessFailed "ACQ.SUB_MERCHANT_CREATE_FAIL" "二级商户创建失败" Fix;
    BusinessFailed "ACQ.SUB_MERCHANT_TYPE_INVALID" "二级商户类型非法" Fix;
    BusinessFailed "ACQ.SECONDARY_MERCHANT_STATUS_ERROR" "商户状态异常" Fix;
    BusinessFailed "ACQ.AGREEMENT_NOT_EXIST" "用户协议不存在" Fix;
    BusinessFailed "ACQ.AGREEMENT_INVALID" "用户协议失效" Fix;
    BusinessFailed "ACQ.AGREEMENT_STATUS_NOT_NORMAL" "用户协议状态非NORMAL" Fix;
    BusinessFailed "ACQ.MERCHANT_AGREEMENT_NOT_EXIST" "商户协议不存在" Fix;
    BusinessFailed "ACQ.MERCHANT_AGREEMENT_INVALID" "商户协议已失效" Fix;
    BusinessFailed "ACQ.MERCHANT_STATUS_NOT_NORMAL" "商户协议状态非正常状态" Fix;
    BusinessFailed "ACQ.AMOUNT_OR_CURRENCY_ERROR" "订单金额或币种信息错误" Fix;
    BusinessFailed "ACQ.CURRENCY_NOT_SUPPORT" "订单币种不支持" Fix;
    BusinessFailed "ACQ.CARD_USER_NOT_MATCH" "脱机记录用户信息不匹配" Fix;
    BusinessFailed "ACQ.CARD_TYPE_ERROR" "卡类型错误" Fix;
    BusinessFailed "ACQ.CERT_EXPIRED" "凭证过期" Fix;
    BusinessFailed "ACQ.AUTH_AMOUNT_NOT_ENOUGH" "授权金额不足" Fix;
    BusinessFailed "ACQ.TRADE_NOT_EXIST" "交易不存在" Fix;
    BusinessFailed "ACQ.TRADE_HAS_FINISHED" "交易已完结" State;
    BusinessFailed "ACQ.TRADE_STATUS_ERROR" "交易状态不合法" State;
    BusinessFailed "ACQ.SELLER_BALANCE_NOT_ENOUGH" "卖家余额不足" RetryLater;
    BusinessFailed "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" "退款金额超限" Fix;
    BusinessFailed "ACQ.REASON_TRADE_REFUND_FEE_ERR" "退款金额无效" Fix;
    BusinessFailed "ACQ.REFUND_FEE_ERROR" "交易退款金额有误" Fix;
    BusinessFailed "ACQ.REASON_TRADE_BEEN_FREEZEN" "请求退款的交易被冻结" Fix;
    BusinessFailed "ACQ.DISCORDANT_REPEAT_REQUEST" "不一致的请求" Fix;
    BusinessFailed "ACQ.TRADE_NOT_ALLOW_REFUND" "当前交易不允许退款" Fix;
    BusinessFailed "ACQ.CANCEL_NOT_ALLOWED" "交易不允许撤销" Fix;
    BusinessFailed "ACQ.TRADE_CANCEL_TIME_OUT" "超过撤销时间范围" Fix;
    BusinessFailed "ACQ.REASON_ILLEGAL_STATUS" "交易状态异常" State;
    BusinessFailed "ACQ.REASON_TRADE_STATUS_INVALID" "交易状态异常" State;
    BusinessFailed "ACQ.BUYER_NOT_EXIST" "买家不存在" Fix;
    BusinessFailed "ACQ.PAYER_UNMATCHED" "付款人不匹配" Fix;
    BusinessFailed "ACQ.SECONDARY_MERCHANT_NOT_MATCH" "二级商户信息不匹配" Fix;
    BusinessFailed "ACQ.SECONDARY_MERCHANT_ID_BLANK" "二级商户编号为空" Fix;
    BusinessFailed "ACQ.SECONDARY_MERCHANT_ID_INVALID" "二级商户不存在" Fix;
    BusinessFailed "ACQ.SECONDARY_MERCHANT_ALIPAY_ACCOUNT_INVALID" "二级商户账户无效" Fix;
    BusinessFailed "ACQ.SECONDARY_MERCHANT_ISV_PUNISH_INDIRECT" "商户被处罚" Fix;
    BusinessFailed "ACQ.PLATFORM_BUSINESS_ACQUIRE_MODE_MUST_MERCHANT_ID" "二级商户编码为空" Fix;
    BusinessFailed "ACQ.INVALID_RECEIVE_ACCOUNT" "收款账户不支持" Fix;
    BusinessFailed "ACQ.BEYOND_PER_RECEIPT_SINGLE_RESTRICTION" "订单金额超过单笔限额" Fix;
    BusinessFailed "ACQ.NOW_TIME_AFTER_EXPIRE_TIME_ERROR" "当前时间已超过允许支付的时间" Fix;
    BusinessFailed "ACQ.SELLER_NOT_EXIST" "卖家不存在" Fix;
    BusinessFailed "ACQ.STORE_INFO_INVALID" "门店信息无效" Fix;
    BusinessFailed "ACQ.MERCHANT_PERM_RECEIPT_SUSPEND_LIMIT" "商户暂停收款" Fix;
    BusinessFailed "ACQ.MERCHANT_PERM_RECEIPT_SINGLE_LIMIT" "超过单笔收款限额" Fix;
    BusinessFailed "ACQ.MERCHANT_PERM_RECEIPT_DAY_LIMIT" "超过单日累计收款额度" Fix;
    BusinessFailed "ACQ.SUB_GOODS_SIZE_MAX_COUNT" "子商品明细超长" Fix;
    BusinessFailed "ACQ.TRADE_SETTLE_ERROR" "交易结算异常" Fix;
    BusinessFailed "ACQ.USER_LOGONID_DUP" "用户账号重复" Fix;
    BusinessFailed "ACQ.CUSTOMER_VALIDATE_ERROR" "账户校验失败" Fix;
    BusinessFailed "ACQ.ILLEGAL_ARGUMENT" "参数错误" Fix;
    // Bills.
    BusinessFailed "isp.bill_not_exist" "账单不存在" RetryLater;
    BusinessFailed "isv.invalid_arguments" "参数无效" Fix;
    // Risk control (R13).
    BusinessFailed "ALI40793" "商户收款异常" Buyer;
}

/// Looks up a `sub_code`.
pub fn sub_code(sub_code: &str) -> Option<&'static SubCode> {
    SUB_CODES.iter().find(|s| s.sub_code == sub_code)
}

/// Whether a response with this code and `sub_code` proves nothing happened
/// (`false`: the outcome is unknown and must be queried). A failure is never
/// definite when its action is [`Action::Query`], so a [`Failure`] never
/// carries that action.
///
/// [`Failure`]: crate::response::Failure
pub fn is_definite(code: Code, sub_code: Option<&str>) -> bool {
    match code {
        Code::Success | Code::InProgress => true,
        Code::ServiceUnavailable => false,
        _ => action_for(code, sub_code) != Action::Query,
    }
}

/// The action for a failure: the sub_code's when known, else the code's default.
pub fn action_for(code: Code, sub_code: Option<&str>) -> Action {
    if let Some(known) = sub_code.and_then(self::sub_code) {
        return known.action;
    }
    // `ACQ.SYSTEM_ERROR`, its `AQC.` typo and whatever prefix comes next.
    if sub_code.is_some_and(|s| s.ends_with("SYSTEM_ERROR")) {
        return Action::Query;
    }
    match code {
        Code::Success | Code::InProgress | Code::ServiceUnavailable => Action::Query,
        Code::InsufficientTokenPermissions => Action::Reauthorize,
        Code::CallLimited => Action::RetryLater,
        Code::MissingArguments
        | Code::InvalidArguments
        | Code::InsufficientConditions
        | Code::BusinessFailed
        | Code::InsufficientPermissions => Action::Fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in SUB_CODES {
            assert!(seen.insert(s.sub_code), "{} listed twice", s.sub_code);
        }
    }
}
