//! What the protocol crate's fuzz targets check on one input: no panic, and
//! the invariants each parser promises. The fuzz targets call these functions;
//! `crates/alipay/tests/fuzz_corpus.rs` includes this file and replays every
//! committed corpus file through them, so a finding stays fixed.
//!
//! This file may use only `jianlian_alipay`, `serde_json` and `std`: it is
//! compiled both in the fuzz crate and in the alipay crate's tests.

use std::collections::HashSet;
use std::sync::OnceLock;

use jianlian_alipay::form;
use jianlian_alipay::money::{TRADE_AMOUNT_MAX, TRADE_AMOUNT_MIN};
use jianlian_alipay::notify::{NOTIFY_BODY_MAX_BYTES, Notification};
use jianlian_alipay::response::{NodeKind, ResponseCheck, classify, extract_node, verify_response};
use jianlian_alipay::server::response_key;
use jianlian_alipay::{Action, Charset, Fen, Outcome, PublicKey, Rate, SignType};
use serde_json::{Map, Value};

/// The public key of the conformance vectors: corpus seeds taken from them
/// carry valid signatures, so the accepting paths are explored too.
fn alipay_public_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = include_str!("../../crates/alipay/tests/conformance/keys/alipay_public.pem");
        match PublicKey::from_text(pem) {
            Ok(key) => key,
            Err(e) => panic!("the conformance public key does not load: {e}"),
        }
    })
}

/// Input: `<method>\n<response body>` (without a newline, the whole input is
/// the body of an `alipay.trade.query` answer).
pub fn response_extractor(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, body) = text
        .split_once('\n')
        .unwrap_or(("alipay.trade.query", text));
    let extracted = extract_node(body, method);
    if let Ok(node) = &extracted {
        // The node is the exact text of the body, never a copy or a re-serialization.
        let start = node.text.as_ptr().addr() - body.as_ptr().addr();
        assert_eq!(body.get(start..start + node.text.len()), Some(node.text));
        let closes = match node.text.as_bytes().first() {
            Some(b'{') => node.text.ends_with('}'),
            Some(b'"') => node.text.len() >= 2 && node.text.ends_with('"'),
            _ => false,
        };
        assert!(
            closes,
            "node text is not one object or string: {:?}",
            node.text
        );
        let member = match node.kind {
            NodeKind::Method => response_key(method),
            NodeKind::ErrorResponse => "error_response".to_owned(),
        };
        assert!(body.contains(&format!("\"{member}\"")));
        // A complete value inside valid JSON is valid JSON.
        if serde_json::from_str::<Value>(body).is_ok() {
            assert!(serde_json::from_str::<Value>(node.text).is_ok());
        }
    }
    let check = ResponseCheck::new(alipay_public_key(), SignType::Rsa2);
    let verified = verify_response(body, method, check);
    if verified.is_ok() {
        assert!(
            extracted.is_ok(),
            "verified a body whose node cannot be found"
        );
        assert!(body.contains("\"sign\""), "verified a body without a sign");
    }
    // A failure proves nothing happened; it never tells the caller to query.
    if let Outcome::Failed(failure) = classify::<Map<String, Value>>(verified) {
        assert_ne!(failure.action, Action::Query);
    }
}

/// Input: a notification's form body.
pub fn notification_parser(data: &[u8]) {
    let Ok(notification) = Notification::parse(data) else {
        return;
    };
    let mut names = HashSet::new();
    for (key, _) in notification.fields() {
        assert!(
            names.insert(key.as_str()),
            "repeated field {key:?} was accepted"
        );
    }
    let content = notification.sign_content();
    for (key, value) in notification.fields() {
        if key == "sign" || key == "sign_type" || form::is_blank(key) || form::is_blank(value) {
            continue;
        }
        assert!(
            content.contains(&format!("{key}={value}")),
            "{key} is not signed"
        );
    }
    // Decoding is exact: the decoded fields, encoded again, decode to themselves.
    let charset = notification
        .get("charset")
        .and_then(Charset::parse)
        .unwrap_or_default();
    let fields = notification
        .fields()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    if let Ok(body) = form::encode_pairs(fields, charset)
        && body.len() <= NOTIFY_BODY_MAX_BYTES
    {
        match Notification::parse(body.as_bytes()) {
            Ok(again) => assert_eq!(again.fields(), notification.fields()),
            Err(e) => panic!("re-encoded notification does not parse: {e}"),
        }
    }
    let _ = notification.verify(alipay_public_key(), None);
}

/// The yuan grammar, independent of `Fen::parse_yuan`: 1 to 15 integer digits
/// without a leading zero (`0` itself is fine), then optionally `.` and one or
/// two digits.
fn is_yuan_text(text: &str) -> bool {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (text, None),
    };
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = int.len() > 1 && int.starts_with('0');
    digits(int, 15) && !leading_zero && frac.is_none_or(|f| digits(f, 2))
}

/// Input: a yuan amount (or anything else).
pub fn yuan_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Fen::parse_yuan(text);
    assert_eq!(parsed.is_ok(), is_yuan_text(text), "{text:?}");
    if let Ok(fen) = parsed {
        assert!(!fen.is_negative());
        let printed = fen.to_yuan();
        assert_eq!(printed.split_once('.').map(|(_, d)| d.len()), Some(2));
        assert_eq!(Fen::parse_yuan(&printed), Ok(fen));
    }
    let signed = Fen::parse_signed_yuan(text);
    let expected = match text.strip_prefix('-') {
        Some(rest) => Fen::parse_yuan(rest).ok().and_then(Fen::checked_neg),
        None => parsed.clone().ok(),
    };
    assert_eq!(signed.clone().ok(), expected, "{text:?}");
    if let Ok(fen) = signed {
        assert_eq!(Fen::parse_signed_yuan(&fen.to_yuan()), Ok(fen));
    }
    // At the wire a yuan string deserializes exactly as it parses.
    if let Ok(json) = serde_json::to_string(text) {
        assert_eq!(serde_json::from_str::<Fen>(&json).ok(), signed.clone().ok());
    }
    // A JSON number is never an amount, however it is written.
    if let Ok(Value::Number(_)) = serde_json::from_str::<Value>(text) {
        assert!(serde_json::from_str::<Fen>(text).is_err(), "{text:?}");
    }
    if let Ok(fen) = Fen::parse_trade_amount(text) {
        assert!((TRADE_AMOUNT_MIN..=TRADE_AMOUNT_MAX).contains(&fen));
    }
    if let Ok(rate) = Rate::parse(text) {
        assert!(rate.ppm() <= 1_000_000);
        assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
    }
}
