//! Proves that every gateway `code` and every `sub_code` of apis.md §1 and §2
//! is known to `codes::SUB_CODES`, and that a signed response carrying it
//! classifies as issue 2 demands: 10000 success, 10003 in progress, a definite
//! failure with its `sub_code`, `sub_msg` and recommended action (apis.md
//! §2.1.d legend), and 20000, `*.SYSTEM_ERROR` or an already paid trade
//! (`ACQ.TRADE_HAS_SUCCESS`) as unknown, never failure. So are missing or bad
//! signatures, unparsable bodies, and nodes without `code` from APIs that
//! always write one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use jianlian_alipay::api::oauth::OauthToken;
use jianlian_alipay::api::trade::TradePay;
use jianlian_alipay::codes::{self, SUB_CODES};
use jianlian_alipay::response::{
    ResponseCheck, ResponseError, classify, classify_for, verify_response,
};
use jianlian_alipay::server::{ErrorReply, ResponseSigning, success_node, write_response};
use jianlian_alipay::{Action, Code, Outcome, PrivateKey, SignType, UnknownReason};
use serde_json::{Map, Value, json};

/// What a response with a code and `sub_code` must classify as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The call had no effect; act as the action says.
    Failed(Action),
    /// Nobody knows what happened: query.
    Unknown,
}

use Action::*;
use Code::*;
use Expect::*;

/// Every `sub_code` of apis.md §1 (with its gateway code) and §2 (trade APIs,
/// code 40004), with the action apis.md recommends. Written from apis.md, not
/// from `codes.rs`, so that a wrong table entry fails here.
const APIS_MD_SUB_CODES: &[(Code, &str, Expect)] = &[
    // §1, 20000: the result is unknown.
    (ServiceUnavailable, "isp.unknow-error", Unknown),
    (ServiceUnavailable, "aop.unknow-error", Unknown),
    // protocol.md §4.4 saw 20000 paired with this one in real bodies.
    (ServiceUnavailable, "aop.ACQ.SYSTEM_ERROR", Unknown),
    // §1, 20001: re-authorise.
    (
        InsufficientTokenPermissions,
        "aop.invalid-auth-token",
        Failed(Reauthorize),
    ),
    (
        InsufficientTokenPermissions,
        "aop.auth-token-time-out",
        Failed(Reauthorize),
    ),
    (
        InsufficientTokenPermissions,
        "aop.invalid-app-auth-token",
        Failed(Reauthorize),
    ),
    (
        InsufficientTokenPermissions,
        "aop.invalid-app-auth-token-no-api",
        Failed(Reauthorize),
    ),
    (
        InsufficientTokenPermissions,
        "aop.app-auth-token-time-out",
        Failed(Reauthorize),
    ),
    // Filed under 20001, but it means no product is signed: authorising again
    // cannot fix that, the contract must (as for 40006).
    (
        InsufficientTokenPermissions,
        "aop.no-product-reg-by-partner",
        Failed(Fix),
    ),
    // §1, 40001: fix the request.
    (MissingArguments, "isv.missing-method", Failed(Fix)),
    (MissingArguments, "isv.missing-signature", Failed(Fix)),
    (MissingArguments, "isv.missing-signature-type", Failed(Fix)),
    (MissingArguments, "isv.missing-signature-key", Failed(Fix)),
    (MissingArguments, "isv.missing-app-id", Failed(Fix)),
    (MissingArguments, "isv.missing-timestamp", Failed(Fix)),
    (MissingArguments, "isv.missing-version", Failed(Fix)),
    (
        MissingArguments,
        "isv.decryption-error-missing-encrypt-type",
        Failed(Fix),
    ),
    // §1, 40002: fix the request.
    (InvalidArguments, "isv.invalid-parameter", Failed(Fix)),
    (InvalidArguments, "isv.invalid-method", Failed(Fix)),
    (InvalidArguments, "isv.invalid-format", Failed(Fix)),
    (InvalidArguments, "isv.invalid-signature-type", Failed(Fix)),
    (InvalidArguments, "isv.invalid-signature", Failed(Fix)),
    (InvalidArguments, "isv.invalid-encrypt-type", Failed(Fix)),
    (InvalidArguments, "isv.invalid-encrypt", Failed(Fix)),
    (InvalidArguments, "isv.invalid-app-id", Failed(Fix)),
    (InvalidArguments, "isv.invalid-timestamp", Failed(Fix)),
    (InvalidArguments, "isv.invalid-charset", Failed(Fix)),
    (InvalidArguments, "isv.invalid-digest", Failed(Fix)),
    (
        InvalidArguments,
        "isv.missing-signature-config",
        Failed(Fix),
    ),
    (InvalidArguments, "isv.not-support-app-auth", Failed(Fix)),
    (InvalidArguments, "isv.suspected-attack", Failed(Fix)),
    (InvalidArguments, "isv.forbidden-api", Failed(Fix)),
    // The OAuth ones are filed under 40002 "fix request", but the fix is a new
    // authorisation by the buyer, not a changed request.
    (InvalidArguments, "isv.code-invalid", Failed(Reauthorize)),
    (
        InvalidArguments,
        "isv.refresh-token-invalid",
        Failed(Reauthorize),
    ),
    (
        InvalidArguments,
        "isv.refreshed-token-invalid",
        Failed(Reauthorize),
    ),
    // §1, 40005: back off and retry.
    (CallLimited, "isv.app-call-limited", Failed(RetryLater)),
    (CallLimited, "isv.method-call-limited", Failed(RetryLater)),
    // §1, 40006: contract or product not signed.
    (
        InsufficientPermissions,
        "isv.insufficient-isv-permissions",
        Failed(Fix),
    ),
    (
        InsufficientPermissions,
        "isv.insufficient-user-permissions",
        Failed(Fix),
    ),
    // §2.1.d alipay.trade.pay, with the legend's actions.
    (BusinessFailed, "ACQ.SYSTEM_ERROR", Unknown),
    (BusinessFailed, "ACQ.INVALID_PARAMETER", Failed(Fix)),
    (BusinessFailed, "ACQ.ACCESS_FORBIDDEN", Failed(Fix)),
    (BusinessFailed, "ACQ.EXIST_FORBIDDEN_WORD", Failed(Fix)),
    (BusinessFailed, "ACQ.PARTNER_ERROR", Failed(Fix)),
    (BusinessFailed, "ACQ.TOTAL_FEE_EXCEED", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        Failed(NewCode),
    ),
    (BusinessFailed, "ACQ.CONTEXT_INCONSISTENT", Failed(Fix)),
    // STATE in apis.md, with "treat as success if same buyer/order (confirm
    // via query)": the out_trade_no is already paid, so the outcome of this
    // order is for a query to tell; it is never a failed payment.
    (BusinessFailed, "ACQ.TRADE_HAS_SUCCESS", Unknown),
    (BusinessFailed, "ACQ.TRADE_HAS_CLOSE", Failed(State)),
    (
        BusinessFailed,
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
        Failed(Buyer),
    ),
    (BusinessFailed, "ACQ.BUYER_SELLER_EQUAL", Failed(Buyer)),
    (BusinessFailed, "ACQ.TRADE_BUYER_NOT_MATCH", Failed(State)),
    (
        BusinessFailed,
        "ACQ.BUYER_ENABLE_STATUS_FORBID",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.PULL_MOBILE_CASHIER_FAIL",
        Failed(NewCode),
    ),
    (
        BusinessFailed,
        "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
        Failed(Buyer),
    ),
    (BusinessFailed, "ACQ.PAYMENT_FAIL", Failed(NewCode)),
    (
        BusinessFailed,
        "ACQ.PAYMENT_REQUEST_HAS_RISK",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
        Failed(Buyer),
    ),
    (BusinessFailed, "ACQ.BEYOND_PAY_RESTRICTION", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.SELLER_BEEN_BLOCKED", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
        Failed(Buyer),
    ),
    (
        BusinessFailed,
        "ACQ.ERROR_SELLER_CERTIFY_LEVEL_LIMIT",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.INVALID_STORE_ID", Failed(Fix)),
    (BusinessFailed, "ACQ.SUB_MERCHANT_CREATE_FAIL", Failed(Fix)),
    (BusinessFailed, "ACQ.SUB_MERCHANT_TYPE_INVALID", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.SECONDARY_MERCHANT_STATUS_ERROR",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.AGREEMENT_NOT_EXIST", Failed(Fix)),
    (BusinessFailed, "ACQ.AGREEMENT_INVALID", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.AGREEMENT_STATUS_NOT_NORMAL",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.MERCHANT_AGREEMENT_NOT_EXIST",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.MERCHANT_AGREEMENT_INVALID",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.MERCHANT_STATUS_NOT_NORMAL",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.AMOUNT_OR_CURRENCY_ERROR", Failed(Fix)),
    (BusinessFailed, "ACQ.CURRENCY_NOT_SUPPORT", Failed(Fix)),
    (BusinessFailed, "ACQ.CARD_USER_NOT_MATCH", Failed(Fix)),
    (BusinessFailed, "ACQ.CARD_TYPE_ERROR", Failed(Fix)),
    (BusinessFailed, "ACQ.CERT_EXPIRED", Failed(Fix)),
    (BusinessFailed, "ACQ.AUTH_AMOUNT_NOT_ENOUGH", Failed(Fix)),
    // §2.3 alipay.trade.create: all FIX but SYSTEM_ERROR.
    (BusinessFailed, "ACQ.BUYER_NOT_EXIST", Failed(Fix)),
    (BusinessFailed, "ACQ.PAYER_UNMATCHED", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.SECONDARY_MERCHANT_NOT_MATCH",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.SECONDARY_MERCHANT_ID_BLANK",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.SECONDARY_MERCHANT_ID_INVALID",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.SECONDARY_MERCHANT_ALIPAY_ACCOUNT_INVALID",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.SECONDARY_MERCHANT_ISV_PUNISH_INDIRECT",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.PLATFORM_BUSINESS_ACQUIRE_MODE_MUST_MERCHANT_ID",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.INVALID_RECEIVE_ACCOUNT", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.BEYOND_PER_RECEIPT_SINGLE_RESTRICTION",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.NOW_TIME_AFTER_EXPIRE_TIME_ERROR",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.SELLER_NOT_EXIST", Failed(Fix)),
    (BusinessFailed, "ACQ.STORE_INFO_INVALID", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.MERCHANT_PERM_RECEIPT_SUSPEND_LIMIT",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.MERCHANT_PERM_RECEIPT_SINGLE_LIMIT",
        Failed(Fix),
    ),
    (
        BusinessFailed,
        "ACQ.MERCHANT_PERM_RECEIPT_DAY_LIMIT",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.SUB_GOODS_SIZE_MAX_COUNT", Failed(Fix)),
    (BusinessFailed, "ACQ.TRADE_SETTLE_ERROR", Failed(Fix)),
    (BusinessFailed, "ACQ.USER_LOGONID_DUP", Failed(Fix)),
    (BusinessFailed, "ACQ.CUSTOMER_VALIDATE_ERROR", Failed(Fix)),
    (BusinessFailed, "ACQ.ILLEGAL_ARGUMENT", Failed(Fix)),
    // §2.4 query, §2.6 close, §2.7 refund: the trade ids are wrong.
    (BusinessFailed, "ACQ.TRADE_NOT_EXIST", Failed(Fix)),
    // §2.5 alipay.trade.cancel.
    (BusinessFailed, "ACQ.CANCEL_NOT_ALLOWED", Failed(Fix)),
    (BusinessFailed, "ACQ.REASON_TRADE_BEEN_FREEZEN", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
        Failed(Fix),
    ),
    // "Top up, retry the same request".
    (
        BusinessFailed,
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        Failed(RetryLater),
    ),
    (BusinessFailed, "ACQ.TRADE_CANCEL_TIME_OUT", Failed(Fix)),
    (BusinessFailed, "ACQ.TRADE_HAS_FINISHED", Failed(State)),
    // The typo prefix is real; retry with the same parameters.
    (BusinessFailed, "AQC.SYSTEM_ERROR", Unknown),
    // §2.6 alipay.trade.close: the trade is not in a closable state.
    (BusinessFailed, "ACQ.REASON_ILLEGAL_STATUS", Failed(State)),
    (
        BusinessFailed,
        "ACQ.REASON_TRADE_STATUS_INVALID",
        Failed(State),
    ),
    (BusinessFailed, "ACQ.TRADE_STATUS_ERROR", Failed(State)),
    // §2.7 alipay.trade.refund.
    (
        BusinessFailed,
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        Failed(Fix),
    ),
    (BusinessFailed, "ACQ.REFUND_FEE_ERROR", Failed(Fix)),
    (BusinessFailed, "ACQ.TRADE_NOT_ALLOW_REFUND", Failed(Fix)),
    (BusinessFailed, "ACQ.DISCORDANT_REPEAT_REQUEST", Failed(Fix)),
];

/// apis.md §2.1.d also names families (`ACQ.CYCLE_PAY_*`,
/// `ACQ.*_UNSUPPORT_ADVANCE`, FIX). They are not in the table; a member the
/// table does not know still classifies by its gateway code.
const FAMILY_MEMBERS: &[(Code, &str, Expect)] = &[
    (BusinessFailed, "ACQ.CYCLE_PAY_DATE_NOT_MATCH", Failed(Fix)),
    (
        BusinessFailed,
        "ACQ.PRE_AUTH_UNSUPPORT_ADVANCE",
        Failed(Fix),
    ),
    // A SYSTEM_ERROR under any prefix is unknown.
    (BusinessFailed, "ACQ.NEWPREFIX.SYSTEM_ERROR", Unknown),
    (InvalidArguments, "isv.some-new-problem", Failed(Fix)),
    (CallLimited, "isv.some-new-limit", Failed(RetryLater)),
];

const METHOD: &str = "alipay.trade.pay";

fn alipay_key() -> PrivateKey {
    common::private_key("keys/alipay_private_pkcs8.pem")
}

fn signed(key: &PrivateKey, node_json: &str) -> String {
    signed_as(key, "alipay_trade_pay_response", node_json)
}

fn signed_as(key: &PrivateKey, response_key: &str, node_json: &str) -> String {
    write_response(
        response_key,
        node_json,
        Some(ResponseSigning {
            key,
            sign_type: SignType::Rsa2,
            cert_sn: None,
            aes: None,
        }),
    )
}

fn classify_body(key: &PrivateKey, body: &str) -> Outcome<Map<String, Value>> {
    let check = ResponseCheck::new(key.public_key(), SignType::Rsa2);
    classify(verify_response(body, METHOD, check))
}

fn assert_classifies(key: &PrivateKey, code: Code, sub_code: &str, expect: Expect) {
    let sub_msg = codes::sub_code(sub_code).map_or("未知的错误", |s| s.sub_msg);
    let reply = ErrorReply::new(code, sub_code, sub_msg)
        .with_field("out_trade_no", "T1")
        .with_field("receipt_amount", "0.00");
    let outcome = classify_body(key, &signed(key, &reply.to_node_json()));
    match (expect, outcome) {
        (Failed(action), Outcome::Failed(failure)) => {
            assert_eq!(failure.code, code, "{sub_code}");
            assert_eq!(failure.msg, code.msg(), "{sub_code}");
            assert_eq!(failure.sub_code.as_deref(), Some(sub_code));
            assert_eq!(failure.sub_msg.as_deref(), Some(sub_msg), "{sub_code}");
            assert_eq!(failure.action, action, "{sub_code}");
            assert_eq!(failure.node["out_trade_no"], "T1", "{sub_code}");
        }
        (
            Unknown,
            Outcome::Unknown(UnknownReason::Gateway {
                code: got,
                sub_code: got_sub,
                sub_msg: got_msg,
            }),
        ) => {
            assert_eq!(got, code, "{sub_code}");
            assert_eq!(got_sub.as_deref(), Some(sub_code));
            assert_eq!(got_msg.as_deref(), Some(sub_msg), "{sub_code}");
        }
        (expect, outcome) => panic!("{code} {sub_code}: expected {expect:?}, got {outcome:?}"),
    }
}

#[test]
fn every_sub_code_of_apis_md_is_in_the_table_with_its_code_and_action() {
    for &(code, sub_code, expect) in APIS_MD_SUB_CODES {
        let known =
            codes::sub_code(sub_code).unwrap_or_else(|| panic!("SUB_CODES lacks {sub_code}"));
        assert_eq!(known.code, code, "{sub_code}");
        let table_expect = if codes::is_definite(known.code, Some(sub_code)) {
            Failed(known.action)
        } else {
            Unknown
        };
        assert_eq!(table_expect, expect, "{sub_code}");
        assert!(!known.sub_msg.is_empty(), "{sub_code}");
    }
}

#[test]
fn every_sub_code_classifies_from_a_signed_response() {
    let key = alipay_key();
    for &(code, sub_code, expect) in APIS_MD_SUB_CODES.iter().chain(FAMILY_MEMBERS) {
        assert_classifies(&key, code, sub_code, expect);
    }
}

#[test]
fn every_table_entry_classifies_as_its_action_says() {
    // Entries beyond apis.md §1–§2 (bills, risk control, cert mode) too: a
    // failure never carries the QUERY action, which means "unknown".
    let key = alipay_key();
    for entry in SUB_CODES {
        let expect = if entry.action == Query || entry.code == ServiceUnavailable {
            Unknown
        } else {
            Failed(entry.action)
        };
        assert_classifies(&key, entry.code, entry.sub_code, expect);
    }
}

#[test]
fn every_gateway_code_classifies() {
    let key = alipay_key();
    let pay = json!({"out_trade_no": "T1", "trade_no": "2025010622001446881000012345", "total_amount": "88.88"});
    let success = classify_body(&key, &signed(&key, &success_node(Success, &pay).unwrap()));
    let Outcome::Success(reply) = success else {
        panic!("{success:?}")
    };
    assert_eq!(reply.body["total_amount"], "88.88");
    let waiting = classify_body(
        &key,
        &signed(&key, &success_node(InProgress, &pay).unwrap()),
    );
    assert!(matches!(waiting, Outcome::InProgress(_)), "{waiting:?}");
    for code in Code::ALL {
        let node = json!({"code": code.as_str(), "msg": code.msg()}).to_string();
        let outcome = classify_body(&key, &signed(&key, &node));
        match code {
            Success => assert!(matches!(outcome, Outcome::Success(_))),
            InProgress => assert!(matches!(outcome, Outcome::InProgress(_))),
            ServiceUnavailable => assert!(
                matches!(outcome, Outcome::Unknown(UnknownReason::Gateway { .. })),
                "{outcome:?}"
            ),
            // Without a sub_code a failure takes the code's action.
            _ => {
                let Outcome::Failed(failure) = outcome else {
                    panic!("{code}: {outcome:?}")
                };
                assert_eq!(failure.action, codes::action_for(code, None), "{code}");
                assert_ne!(failure.action, Query, "{code}");
            }
        }
    }
    let unknown_code = json!({"code": "99999", "msg": "?"}).to_string();
    assert!(matches!(
        classify_body(&key, &signed(&key, &unknown_code)),
        Outcome::Unknown(UnknownReason::BadBody(_))
    ));
}

#[test]
fn untrusted_or_unreadable_responses_are_unknown() {
    let key = alipay_key();
    let failure = ErrorReply::business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭").to_node_json();
    let unsigned = write_response("alipay_trade_pay_response", &failure, None);
    let other_key = common::private_key("keys/app_private_pkcs8.pem");
    let cases: Vec<(&str, String)> = vec![
        ("missing signature", unsigned),
        ("signed by another key", signed(&other_key, &failure)),
        (
            "signature of other text",
            signed(&key, &failure).replace("CLOSE", "CLOSED"),
        ),
        ("not JSON", "<html>502 Bad Gateway</html>".to_owned()),
        ("empty body", String::new()),
        ("truncated", signed(&key, &failure)[..40].to_owned()),
        ("no node", "{\"sign\":\"x\"}".to_owned()),
        (
            "other method's node",
            signed(&key, &failure).replace("trade_pay", "trade_query"),
        ),
        (
            "node is a number",
            "{\"alipay_trade_pay_response\":40004,\"sign\":\"x\"}".to_owned(),
        ),
    ];
    for (what, body) in cases {
        let outcome = classify_body(&key, &body);
        assert!(
            matches!(outcome, Outcome::Unknown(UnknownReason::Response(_))),
            "{what}: {outcome:?}"
        );
    }
    // Verified, but the fields do not fit the API's type: still unknown.
    let node = json!({"code": "10000", "msg": "Success", "total_amount": "eighty"}).to_string();
    let typed = classify::<jianlian_alipay::api::trade::TradePayResponse>(verify_response(
        &signed(&key, &node),
        METHOD,
        ResponseCheck::new(key.public_key(), SignType::Rsa2),
    ));
    assert!(
        matches!(typed, Outcome::Unknown(UnknownReason::BadBody(_))),
        "{typed:?}"
    );
    assert!(matches!(
        verify_response(
            "{}",
            METHOD,
            ResponseCheck::new(key.public_key(), SignType::Rsa2)
        ),
        Err(ResponseError::NodeMissing(_))
    ));
}

#[test]
fn a_node_without_code_is_success_only_where_the_api_answers_so() {
    let key = alipay_key();
    let check = ResponseCheck::new(key.public_key(), SignType::Rsa2);
    // alipay.system.oauth.token answers success without `code`.
    let token =
        json!({"user_id": "2088102177846880", "access_token": "authusrB1", "expires_in": 1296000})
            .to_string();
    let body = signed_as(&key, "alipay_system_oauth_token_response", &token);
    let outcome =
        classify_for::<OauthToken>(verify_response(&body, "alipay.system.oauth.token", check));
    let Outcome::Success(reply) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reply.body.user_id.as_deref(), Some("2088102177846880"));
    // alipay.trade.pay always writes `code`: a signed node without it proves
    // nothing about the payment.
    let pay =
        json!({"msg": "Success", "out_trade_no": "T1", "trade_no": "2025010622001446881000012345"})
            .to_string();
    let outcome = classify_for::<TradePay>(verify_response(&signed(&key, &pay), METHOD, check));
    assert!(
        matches!(outcome, Outcome::Unknown(UnknownReason::BadBody(_))),
        "{outcome:?}"
    );
}
