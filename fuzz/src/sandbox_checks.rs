//! What the sandbox's gateway fuzz target checks on one input: the request
//! parsing path of `gateway.do` and the engine behind it never panic, every
//! refusal is a well-formed Alipay error, and no operation creates money.
//!
//! Input: the request line (`POST /gateway.do?…`) on the first line, the form
//! body after it. The parsed parameters are re-signed with a fixed app key so
//! that inputs get past authentication into the trade engine, which runs on a
//! fresh in-memory state holding that app, a merchant (`SMID`), a buyer and a
//! payment code (`CODE`). `crates/sandbox/tests/e2e` includes this file and
//! replays `corpus/sandbox_gateway/`.
//!
//! This file may use only `jianlian_sandbox`, `jianlian_alipay`, `serde_json`
//! and `std`.

use std::sync::OnceLock;

use jianlian_alipay::server::{RawRequest, ResponseSigning, write_response};
use jianlian_alipay::{ErrorReply, Fen, IncomingRequest, PrivateKey, SignType};
use jianlian_sandbox::api::{Call, dispatch};
use jianlian_sandbox::state::Core;
use serde_json::Value;

pub const APP_ID: &str = "2021000000000001";
pub const PID: &str = "2088000000000001";
pub const SMID: &str = "2088000000000002";
pub const BUYER: &str = "2088000000000003";
pub const CODE: &str = "281234567890123456";
const BALANCE: Fen = Fen::new(100_000);

fn key(pem: &str) -> PrivateKey {
    match PrivateKey::from_text(pem) {
        Ok(k) => k,
        Err(e) => panic!("a conformance key does not load: {e}"),
    }
}

fn app_key() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| {
        key(include_str!(
            "../../crates/alipay/tests/conformance/keys/app_private_pkcs8.pem"
        ))
    })
}

fn alipay_key() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| {
        key(include_str!(
            "../../crates/alipay/tests/conformance/keys/alipay_private_pkcs8.pem"
        ))
    })
}

fn now() -> jiff::Timestamp {
    jianlian_alipay::time::parse_beijing("2026-03-02 10:00:00")
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// A fresh world: the app, its merchant, a buyer and one payment code.
fn world() -> Core {
    let state: jianlian_sandbox::model::State = serde_json::from_value(serde_json::json!({
        "meta": {
            "ids": {"state": 7, "seq": 0},
            "clock_offset_secs": 0,
            "alipay_key_pkcs8": alipay_key().to_pkcs8_base64(),
            "alipay_cert_sn": "0".repeat(32),
            "alipay_root_cert_sn": "1".repeat(32),
            "fault_seq": 0
        },
        "apps": {APP_ID: {
            "app_id": APP_ID, "pid": PID, "name": "fuzz",
            "public_key": app_key().public_key().to_base64(), "app_cert_sn": null,
            "settlement": "same_bank", "fee_rate": "0.0038", "refund_position": "merchant_day",
            "general_finance": true, "require_store_terminal": false, "refund_window_months": 3,
            "id_mode": "user_id", "aes_key": null,
            "risk": {"stores_per_day_max": 3, "terminals_per_day_max": 3},
            "created_at": "2026-03-02T00:00:00Z"
        }},
        "merchants": {SMID: {
            "smid": SMID, "pid": PID, "profile": {"external_id": "F1", "name": "n"},
            "indirect_level": "INDIRECT_LEVEL_M0",
            "created_at": "2026-03-02T00:00:00Z", "modified_at": "2026-03-02T00:00:00Z",
            "seen_date": "", "seen_stores": [], "seen_terminals": [], "risk_blocked": null
        }},
        "buyers": {BUYER: {
            "buyer_id": BUYER, "logon_id": "13800000000", "name": null, "cert_no": null,
            "balance": BALANCE, "bank_cards": [], "huabei_available": "0.00",
            "mcard_balance": "0.00", "pcard_balance": "0.00", "points": 0,
            "vouchers": [], "requires_password": false, "daily_limit": null,
            "spent_date": "", "spent": "0.00", "instrument": {"kind": "balance"}, "risky": false,
            "open_ids": {}, "created_at": "2026-03-02T00:00:00Z"
        }},
        "codes": {CODE: {
            "code": CODE, "buyer_id": BUYER, "expires_at": "2026-03-02T02:01:00Z",
            "used": false, "instrument": null
        }},
        "qrs": {}, "trades": {}, "notices": {}, "grants": {}, "ledger": [], "faults": []
    }))
    .unwrap_or_else(|e| panic!("the fuzz world does not load: {e}"));
    Core::new(state, None).unwrap_or_else(|e| panic!("{e}"))
}

fn check_error(e: &ErrorReply) {
    let node: Value = serde_json::from_str(&e.to_node_json()).unwrap_or_default();
    let code = node.get("code").and_then(Value::as_str).unwrap_or_default();
    assert!(
        code.starts_with('2') || code.starts_with('4'),
        "error with code {code:?}"
    );
    assert!(!e.sub_code.is_empty(), "an error without sub_code");
    check_written("error_response", &e.to_node_json());
}

fn check_written(key: &str, node: &str) {
    let body = write_response(
        key,
        node,
        Some(ResponseSigning {
            key: alipay_key(),
            sign_type: SignType::Rsa2,
            cert_sn: None,
            aes: None,
        }),
    );
    assert!(
        serde_json::from_str::<Value>(&body).is_ok(),
        "unparsable answer {body}"
    );
}

/// One input through the gateway's parsing path and the engine.
pub fn sandbox_gateway(data: &[u8]) {
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let line = String::from_utf8_lossy(line);
    let (http_method, target) = line.split_once(' ').unwrap_or(("POST", &line));
    let raw = RawRequest {
        http_method,
        target,
        content_type: Some("application/x-www-form-urlencoded"),
        body,
    };
    let request = match IncomingRequest::parse(raw) {
        Ok(r) => r,
        Err(e) => return check_error(&e),
    };
    // Re-sign as the known app, so the input reaches the engine.
    let mut params: Vec<(String, String)> = request
        .params()
        .iter()
        .filter(|(k, _)| k != "sign" && k != "app_id" && k != "sign_type")
        .cloned()
        .collect();
    params.push(("app_id".into(), APP_ID.into()));
    params.push(("sign_type".into(), "RSA2".into()));
    let Ok(signed) = jianlian_alipay::request::SignedRequest::sign(
        "fuzz",
        params,
        app_key(),
        SignType::Rsa2,
        request.charset(),
    ) else {
        return;
    };
    let request = match IncomingRequest::from_params(signed.params) {
        Ok(r) => r,
        Err(e) => return check_error(&e),
    };
    let auth = match request.authenticate(|_| Some(app_key().public_key().clone())) {
        Ok(a) => a,
        Err(e) => return check_error(&e),
    };
    let biz = match request.biz_content(None) {
        Ok(b) => b,
        Err(e) => return check_error(&e),
    };
    let mut core = world();
    let Some(app) = core.st.apps.get(APP_ID).cloned() else {
        return;
    };
    let call = Call {
        app,
        method: request.method().unwrap_or_default().to_owned(),
        biz,
        request: request.clone(),
        notify_url: request.get("notify_url").map(str::to_owned),
        sign_type: auth.sign_type,
        charset: request.charset(),
        now: now(),
    };
    match dispatch(&mut core, &call) {
        Ok(reply) => {
            let node: Value = serde_json::from_str(&reply.node_json).unwrap_or_default();
            let code = node.get("code").and_then(Value::as_str).unwrap_or_default();
            assert!(
                code == "10000" || code == "10003",
                "success with code {code:?}"
            );
            check_written(&request.response_key(), &reply.node_json);
        }
        Err(e) => check_error(&e),
    }
    // No money is created: the buyer never holds more than at the start, and
    // every paid trade was charged exactly its total.
    let balance = core.st.buyers.get(BUYER).map_or(Fen::ZERO, |b| b.balance);
    assert!(
        !balance.is_negative() && balance <= BALANCE,
        "buyer balance {balance}"
    );
    for t in core.st.trades.values().filter(|t| !t.funding.is_empty()) {
        let funded = Fen::sum(t.funding.iter().map(|p| p.amount)).unwrap_or(Fen::ZERO);
        assert_eq!(
            funded, t.total,
            "trade {} funded {funded} for {}",
            t.trade_no, t.total
        );
    }
}
