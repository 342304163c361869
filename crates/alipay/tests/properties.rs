//! Property tests of the protocol's invariants: signed requests and
//! notifications verify after the wire round trip, any single change to a
//! signed field (changed value, removed key, repeated key) fails verification,
//! the sign content does not depend on input order, yuan text and fen round
//! trip exactly and nothing but `digits[.d[d]]` parses, and the fee returns of
//! refunds that complete a trade add up to the trade fee to the fen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jianlian_alipay::form::{self, SignScope};
use jianlian_alipay::money::refund_fee_return;
use jianlian_alipay::notify::{Notification, build_notification};
use jianlian_alipay::request::SignedRequest;
use jianlian_alipay::server::{Authenticated, ErrorReply, IncomingRequest, RawRequest};
use jianlian_alipay::{Charset, Fen, PrivateKey, Rate, SignType};
use proptest::prelude::*;
use proptest::sample::Index;

/// RSA in a debug build: few cases, one key per test binary.
const RSA_CASES: u32 = 48;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_2048().unwrap())
}

/// Parameters every authenticated request needs; generated ones never reuse them.
const COMMON: [&str; 9] = [
    "app_id",
    "method",
    "charset",
    "sign_type",
    "timestamp",
    "version",
    "sign",
    "format",
    "biz_content",
];

/// Arbitrary parameter names: mixed case, digits and `_` exercise the byte sort.
fn param_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,10}"
        .prop_filter("not a common parameter", |k| !COMMON.contains(&k.as_str()))
}

/// Values a charset can carry: anything in UTF-8; for GBK, text GBK can write.
fn param_value(charset: Charset) -> BoxedStrategy<String> {
    match charset {
        Charset::Utf8 => any::<String>().boxed(),
        Charset::Gbk => "[ a-zA-Z0-9&=+%/?#.,:;'\"{}\\[\\]测试商品中文退款￥]{0,16}".boxed(),
    }
}

fn charset() -> impl Strategy<Value = Charset> {
    prop_oneof![Just(Charset::Utf8), Just(Charset::Gbk)]
}

fn sign_type() -> impl Strategy<Value = SignType> {
    prop_oneof![Just(SignType::Rsa2), Just(SignType::Rsa)]
}

/// A request's own parameters (besides the common ones), blank values included:
/// the client must drop those.
fn request_parts() -> impl Strategy<Value = (Charset, SignType, BTreeMap<String, String>, String)> {
    (charset(), sign_type()).prop_flat_map(|(charset, sign_type)| {
        (
            Just(charset),
            Just(sign_type),
            prop::collection::btree_map(param_name(), param_value(charset), 0..6),
            param_value(charset),
        )
    })
}

fn sign_request(
    charset: Charset,
    sign_type: SignType,
    extra: &BTreeMap<String, String>,
    subject: &str,
) -> SignedRequest {
    let biz = serde_json::json!({"out_trade_no": "T1", "subject": subject}).to_string();
    let mut params: Vec<(String, String)> = [
        ("app_id", "2021000000000001"),
        ("method", "alipay.trade.query"),
        ("charset", charset.as_str()),
        ("sign_type", sign_type.as_str()),
        ("timestamp", "2025-01-06 09:15:02"),
        ("version", "1.0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    params.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    params.push(("biz_content".into(), biz));
    SignedRequest::sign("alipay.trade.query", params, key(), sign_type, charset).unwrap()
}

/// Sends parameters the way fzlee does (all in a GET query) and authenticates.
fn authenticate_get(
    params: &[(String, String)],
    charset: Charset,
) -> Result<Authenticated, ErrorReply> {
    let query = form::encode_pairs(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        charset,
    )
    .unwrap();
    let target = format!("/gateway.do?{query}");
    authenticate(&target, b"")
}

fn authenticate(target: &str, body: &[u8]) -> Result<Authenticated, ErrorReply> {
    let raw = RawRequest {
        http_method: if body.is_empty() { "GET" } else { "POST" },
        target,
        content_type: Some("application/x-www-form-urlencoded"),
        body,
    };
    IncomingRequest::parse(raw)?.authenticate(|_| Some(key().public_key().clone()))
}

/// One change to a list of signed fields.
#[derive(Debug, Clone)]
enum Mutation {
    Change(Index, String),
    Remove(Index),
    Duplicate(Index, bool),
}

fn mutation(charset: Charset) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), param_value(charset)).prop_map(|(i, v)| Mutation::Change(i, v)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), any::<bool>()).prop_map(|(i, same)| Mutation::Duplicate(i, same)),
    ]
}

fn apply(mutation: &Mutation, fields: &mut Vec<(String, String)>) {
    match mutation {
        Mutation::Change(i, value) => {
            let at = i.index(fields.len());
            let field = &mut fields[at];
            field.1 = if *value == field.1 {
                format!("{value}x")
            } else {
                value.clone()
            };
        }
        Mutation::Remove(i) => {
            fields.remove(i.index(fields.len()));
        }
        Mutation::Duplicate(i, same_value) => {
            let (key, value) = fields[i.index(fields.len())].clone();
            let value = if *same_value {
                value
            } else {
                format!("{value}1")
            };
            fields.push((key, value));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(RSA_CASES))]

    #[test]
    fn a_signed_request_authenticates_after_the_wire_round_trip(
        (charset, sign_type, extra, subject) in request_parts(),
    ) {
        let signed = sign_request(charset, sign_type, &extra, &subject);
        prop_assert!(signed.params.iter().all(|(k, v)| !form::is_blank(k) && !form::is_blank(v)));
        // The client's split: common parameters in the query, the rest in the body.
        let target = format!("/gateway.do?{}", signed.query_string().unwrap());
        let body = signed.body().unwrap();
        let authenticated = authenticate(&target, body.as_bytes()).unwrap();
        prop_assert_eq!(authenticated.sign_type, sign_type);
        let raw = RawRequest { http_method: "POST", target: &target, content_type: None, body: body.as_bytes() };
        let incoming = IncomingRequest::parse(raw).unwrap();
        let sent: BTreeMap<_, _> = signed.params.iter().cloned().collect();
        let received: BTreeMap<_, _> = incoming.params().iter().cloned().collect();
        prop_assert_eq!(received, sent);
        prop_assert_eq!(incoming.sign_content(false), signed.sign_content);
    }

    #[test]
    fn any_single_change_to_a_signed_request_fails(
        ((charset, sign_type, extra, subject), mutation) in request_parts()
            .prop_flat_map(|parts| { let charset = parts.0; (Just(parts), mutation(charset)) }),
    ) {
        let signed = sign_request(charset, sign_type, &extra, &subject);
        prop_assert!(authenticate_get(&signed.params, charset).is_ok());
        let mut params = signed.params.clone();
        apply(&mutation, &mut params);
        let refused = authenticate_get(&params, charset);
        prop_assert!(refused.is_err(), "{:?} was accepted", mutation);
    }

    #[test]
    fn order_of_parameters_does_not_matter(
        ((charset, sign_type, extra, subject), seed) in (request_parts(), any::<u64>()),
    ) {
        let signed = sign_request(charset, sign_type, &extra, &subject);
        let mut shuffled = signed.params.clone();
        shuffle(&mut shuffled, seed);
        let content = form::sign_content(shuffled.iter().map(|(k, v)| (k.as_str(), v.as_str())), SignScope::Request, false);
        prop_assert_eq!(&content, &signed.sign_content);
        // Signing the shuffled input gives the same signature (PKCS#1 v1.5 is
        // deterministic), and the shuffled wire form authenticates.
        let unsigned: Vec<_> = shuffled.iter().filter(|(k, _)| k != "sign").cloned().collect();
        let again = SignedRequest::sign("alipay.trade.query", unsigned, key(), sign_type, charset).unwrap();
        prop_assert_eq!(again.get("sign"), signed.get("sign"));
        prop_assert!(authenticate_get(&shuffled, charset).is_ok());
    }

    #[test]
    fn a_signed_notification_verifies_and_any_single_change_fails(
        (charset, sign_type, fields, mutation) in (charset(), sign_type()).prop_flat_map(|(charset, sign_type)| (
            Just(charset),
            Just(sign_type),
            prop::collection::btree_map(
                "[a-z][a-z0-9_]{0,10}".prop_filter("not sign or charset", |k| !["sign", "sign_type", "charset"].contains(&k.as_str())),
                param_value(charset),
                1..8,
            ),
            mutation(charset),
        )),
    ) {
        let pairs = fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let body = build_notification(pairs, key(), sign_type, charset).unwrap();
        let notification = Notification::parse(body.as_bytes()).unwrap();
        prop_assert_eq!(notification.verify(key().public_key(), Some(sign_type)), Ok(sign_type));
        for (k, v) in fields.iter().filter(|(_, v)| !form::is_blank(v)) {
            prop_assert_eq!(notification.get(k), Some(v.as_str()));
        }

        let mut changed = notification.fields().to_vec();
        apply(&mutation, &mut changed);
        let body = form::encode_pairs(changed.iter().map(|(k, v)| (k.as_str(), v.as_str())), charset).unwrap();
        let verdict = Notification::parse(body.as_bytes())
            .and_then(|n| n.verify(key().public_key(), None));
        prop_assert!(verdict.is_err(), "{:?} was accepted", mutation);
    }
}

/// A deterministic Fisher–Yates shuffle driven by a seed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from((seed >> 33) % (u64::try_from(i).unwrap() + 1)).unwrap();
        items.swap(i, j);
    }
}

/// The yuan grammar, written independently of `Fen::parse_yuan`: 1–15 integer
/// digits without a leading zero (but `0` itself), optionally a dot and one or
/// two digits. Returns the fen value.
fn reference_yuan(text: &str) -> Option<i64> {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || int.len() > 15 || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    let fen = match frac {
        None => 0,
        Some(f) if digits(f) && f.len() <= 2 => {
            let n: i64 = f.parse().unwrap();
            if f.len() == 1 { n * 10 } else { n }
        }
        Some(_) => return None,
    };
    Some(int.parse::<i64>().unwrap() * 100 + fen)
}

/// Strings near the grammar (digits, dots, signs, spaces, exponents) and any string at all.
fn yuan_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,17}(\\.[0-9]{0,3})?",
        "[-+ 0-9.,eE]{0,20}",
        "[0-9０-９٠-٩.]{1,6}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn yuan_text_and_fen_round_trip(fen in 0i64..100_000_000_000_000_000) {
        let text = Fen::new(fen).to_yuan();
        let (_, decimals) = text.split_once('.').unwrap();
        prop_assert_eq!(decimals.len(), 2);
        prop_assert_eq!(Fen::parse_yuan(&text), Ok(Fen::new(fen)));
        prop_assert_eq!(Fen::parse_signed_yuan(&Fen::new(-fen).to_yuan()), Ok(Fen::new(-fen)));
    }

    #[test]
    fn only_digits_with_up_to_two_decimals_parse(text in yuan_like()) {
        let parsed = Fen::parse_yuan(&text);
        prop_assert_eq!(parsed.as_ref().ok().map(|f| f.get()), reference_yuan(&text), "{:?}", text);
        if let Ok(fen) = parsed {
            // What parsed prints back to the same amount.
            prop_assert_eq!(Fen::parse_yuan(&fen.to_yuan()), Ok(fen));
        }
        // A signed amount is a `-` and a yuan amount, nothing else.
        let negative = format!("-{text}");
        prop_assert_eq!(Fen::parse_signed_yuan(&negative).ok(), parsed.ok().map(|f| Fen::new(-f.get())));
    }

    #[test]
    fn yuan_with_leading_zeros_is_refused(zeros in "0{1,3}", int in "[0-9]{1,10}", frac in "(\\.[0-9]{1,2})?") {
        let text = format!("{zeros}{int}{frac}");
        prop_assert!(Fen::parse_yuan(&text).is_err(), "{:?}", text);
        prop_assert!(Fen::parse_signed_yuan(&format!("-{text}")).is_err(), "{:?}", text);
        let json = format!("\"{text}\"");
        prop_assert!(serde_json::from_str::<Fen>(&json).is_err(), "{:?}", text);
    }

    #[test]
    fn trade_amounts_are_the_yuan_amounts_from_one_fen_to_a_hundred_million(text in yuan_like()) {
        let expected = reference_yuan(&text).filter(|fen| (1..=10_000_000_000).contains(fen));
        prop_assert_eq!(Fen::parse_trade_amount(&text).ok().map(Fen::get), expected, "{:?}", text);
    }

    #[test]
    fn json_numbers_are_never_amounts(int in any::<i64>(), cents in 0u8..100) {
        let fraction = format!("{int}.{cents:02}");
        prop_assert!(serde_json::from_str::<Fen>(&int.to_string()).is_err());
        prop_assert!(serde_json::from_str::<Fen>(&fraction).is_err(), "{}", fraction);
    }

    #[test]
    fn fee_is_half_up_and_never_more_than_the_amount(ppm in 0u32..=1_000_000, amount in 0i64..=10_000_000_000) {
        let rate = Rate::from_ppm(ppm).unwrap();
        let fee = rate.fee_on(Fen::new(amount)).get();
        // Half-up of amount × ppm / 10^6, computed as floor((2·a·ppm + 10^6) / (2·10^6)).
        let exact = (2 * i128::from(amount) * i128::from(ppm) + 1_000_000) / 2_000_000;
        prop_assert_eq!(i128::from(fee), exact);
        prop_assert!(0 <= fee && fee <= amount);
        prop_assert!(rate.fee_on(Fen::new(amount + 1)).get() >= fee);
    }

    #[test]
    fn refund_fee_returns_sum_to_the_trade_fee(
        ppm in 0u32..=100_000,
        (amount, cuts) in (1i64..=10_000_000_000).prop_flat_map(|amount| {
            (Just(amount), prop::collection::btree_set(1..amount.max(2), 0..8))
        }),
    ) {
        let rate = Rate::from_ppm(ppm).unwrap();
        let trade_fee = rate.fee_on(Fen::new(amount));
        // Cut the trade amount into refunds at the chosen points.
        let mut bounds: Vec<i64> = cuts.into_iter().filter(|c| *c < amount).collect();
        bounds.push(amount);
        let mut returned = Fen::ZERO;
        let mut start = 0;
        for (i, end) in bounds.iter().enumerate() {
            let refund = Fen::new(end - start);
            start = *end;
            let is_last = i + 1 == bounds.len();
            let left = trade_fee.checked_sub(returned).unwrap();
            let back = refund_fee_return(rate, trade_fee, returned, refund, is_last);
            prop_assert!(!back.is_negative(), "negative return {:?}", back);
            prop_assert!(back <= left, "{:?} returned with only {:?} left", back, left);
            if !is_last {
                prop_assert_eq!(back, rate.fee_on(refund).min(left));
            }
            returned = returned.checked_add(back).unwrap();
        }
        prop_assert_eq!(returned, trade_fee);
    }
}
