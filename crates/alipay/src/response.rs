//! The client side of a response: find the signed node, verify it over its exact
//! bytes, decrypt it, and classify the result (protocol.md §4).
//!
//! The node is located the way the Java SDK does it (§4.2): the value of the
//! `<method>_response` member, else of `error_response`, cut from the body text
//! with a string-aware scanner, so the signature is checked over the very bytes
//! Alipay signed. The scanner here also tracks strings while *locating* the key,
//! so a key name inside a string value cannot fool it.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::aes::AesKey;
use crate::api::AlipayApi;
use crate::codes::{self, Action, Code};
use crate::form::Charset;
use crate::keys::{PublicKey, SignType};
use crate::server::response_key;

/// Which member held the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `<method>_response`.
    Method,
    /// The older `error_response` container.
    ErrorResponse,
}

/// The node's exact text in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractedNode<'a> {
    pub kind: NodeKind,
    /// From `{` to its matching `}`, or a string literal with both quotes.
    pub text: &'a str,
}

impl ExtractedNode<'_> {
    pub fn is_string(&self) -> bool {
        self.text.starts_with('"')
    }
}

/// Why a response could not be trusted. Every variant means the outcome of the
/// call is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the body is not a JSON object: {0}")]
    Unparsable(String),
    #[error("the body has no {0} node and no error_response")]
    NodeMissing(String),
    #[error("the body repeats the member {0:?}")]
    DuplicateMember(String),
    #[error("the response is not signed")]
    Unsigned {
        /// The unsigned node, for logs (it may name the problem, e.g. an unknown app_id).
        node_json: String,
    },
    #[error("the response signature does not verify with the Alipay public key")]
    BadSignature,
    #[error("alipay_cert_sn {found} is not the configured Alipay certificate {expected}")]
    CertSnMismatch { expected: String, found: String },
    #[error("the encrypted response cannot be decrypted: {0}")]
    Decrypt(String),
}

/// Finds the node for `method` (or `error_response`) in `body`.
pub fn extract_node<'a>(body: &'a str, method: &str) -> Result<ExtractedNode<'a>, ResponseError> {
    find_node(&top_level_members(body)?, method)
}

/// The `<method>_response` member, else `error_response`; a repeated one is refused
/// (the Java SDK throws when the node name occurs again after the node).
fn find_node<'a>(
    members: &[(&'a str, &'a str)],
    method: &str,
) -> Result<ExtractedNode<'a>, ResponseError> {
    let key = response_key(method);
    let find = |name: &str| -> Result<Option<&'a str>, ResponseError> {
        let mut hits = members.iter().filter(|(k, _)| *k == name);
        let first = hits.next().map(|(_, v)| *v);
        if hits.next().is_some() {
            return Err(ResponseError::DuplicateMember(name.to_owned()));
        }
        Ok(first)
    };
    if let Some(text) = find(&key)? {
        return node_value(text, NodeKind::Method);
    }
    if let Some(text) = find("error_response")? {
        return node_value(text, NodeKind::ErrorResponse);
    }
    Err(ResponseError::NodeMissing(key))
}

fn node_value(text: &str, kind: NodeKind) -> Result<ExtractedNode<'_>, ResponseError> {
    if text.starts_with('{') || text.starts_with('"') {
        Ok(ExtractedNode { kind, text })
    } else {
        Err(ResponseError::Unparsable(
            "the response node is neither an object nor a string".into(),
        ))
    }
}

/// The members of the root object as `(key, exact value text)`, in order.
/// Keys are compared as written (Alipay never escapes characters in keys).
fn top_level_members(body: &str) -> Result<Vec<(&str, &str)>, ResponseError> {
    let bytes = body.as_bytes();
    let mut scan = Scanner { bytes, pos: 0 };
    scan.skip_bom_and_ws();
    if !scan.eat(b'{') {
        return Err(ResponseError::Unparsable(
            "expected '{' at the start".into(),
        ));
    }
    let mut members = Vec::new();
    scan.skip_ws();
    if scan.eat(b'}') {
        return Ok(members);
    }
    loop {
        scan.skip_ws();
        let key_start = scan.pos;
        scan.string()?;
        let key = &body[key_start + 1..scan.pos - 1];
        scan.skip_ws();
        if !scan.eat(b':') {
            return Err(ResponseError::Unparsable(format!(
                "expected ':' after {key:?}"
            )));
        }
        scan.skip_ws();
        let value_start = scan.pos;
        scan.value(0)?;
        members.push((key, &body[value_start..scan.pos]));
        scan.skip_ws();
        if scan.eat(b',') {
            continue;
        }
        if scan.eat(b'}') {
            break;
        }
        return Err(ResponseError::Unparsable(format!(
            "expected ',' or '}}' at byte {}",
            scan.pos
        )));
    }
    scan.skip_ws();
    if scan.pos != bytes.len() {
        return Err(ResponseError::Unparsable(
            "text after the root object".into(),
        ));
    }
    Ok(members)
}

/// Nesting deeper than this is refused (a hostile body cannot exhaust the stack).
const NESTING_MAX: usize = 128;

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn skip_bom_and_ws(&mut self) {
        if self.bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.pos = 3;
        }
        self.skip_ws();
    }

    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn err(&self, what: &str) -> ResponseError {
        ResponseError::Unparsable(format!("{what} at byte {}", self.pos))
    }

    /// A string literal, quotes included; escapes are skipped, not decoded.
    fn string(&mut self) -> Result<(), ResponseError> {
        if !self.eat(b'"') {
            return Err(self.err("expected a string"));
        }
        while let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => return Ok(()),
                _ => {}
            }
        }
        Err(self.err("unterminated string"))
    }

    /// Any JSON value, matched structurally (strings are skipped whole, so
    /// braces inside them do not count).
    fn value(&mut self, depth: usize) -> Result<(), ResponseError> {
        if depth > NESTING_MAX {
            return Err(self.err("nesting too deep"));
        }
        match self.bytes.get(self.pos) {
            Some(b'"') => self.string(),
            Some(b'{') | Some(b'[') => {
                let close = if self.bytes[self.pos] == b'{' {
                    b'}'
                } else {
                    b']'
                };
                let is_object = close == b'}';
                self.pos += 1;
                self.skip_ws();
                if self.eat(close) {
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if is_object {
                        self.string()?;
                        self.skip_ws();
                        if !self.eat(b':') {
                            return Err(self.err("expected ':'"));
                        }
                        self.skip_ws();
                    }
                    self.value(depth + 1)?;
                    self.skip_ws();
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(close) {
                        return Ok(());
                    }
                    return Err(self.err("expected ',' or a closing bracket"));
                }
            }
            Some(_) => {
                let start = self.pos;
                while let Some(b) = self.bytes.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                let literal = &self.bytes[start..self.pos];
                let ok = matches!(literal, b"true" | b"false" | b"null")
                    || (!literal.is_empty()
                        && literal.iter().all(|b| {
                            b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                        }));
                if ok {
                    Ok(())
                } else {
                    Err(self.err("invalid literal"))
                }
            }
            None => Err(self.err("unexpected end")),
        }
    }
}

/// What verification of a response proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNode {
    pub kind: NodeKind,
    /// The node as JSON text (decrypted when the node was encrypted).
    pub node_json: String,
}

/// How a client checks responses.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCheck<'a> {
    pub alipay_public_key: &'a PublicKey,
    pub sign_type: SignType,
    /// The request's charset: the node text is verified as bytes in it, as the
    /// Java and Python SDKs do (UTF-8 in practice).
    pub charset: Charset,
    pub aes: Option<&'a AesKey>,
    /// In certificate mode, the SN of the configured Alipay certificate.
    pub alipay_cert_sn: Option<&'a str>,
}

impl<'a> ResponseCheck<'a> {
    /// A check for UTF-8, unencrypted, public-key-mode responses.
    pub fn new(alipay_public_key: &'a PublicKey, sign_type: SignType) -> ResponseCheck<'a> {
        ResponseCheck {
            alipay_public_key,
            sign_type,
            charset: Charset::Utf8,
            aes: None,
            alipay_cert_sn: None,
        }
    }
}

/// Verifies a response body for `method`: the node's exact text must carry a
/// valid root `sign` (retrying once with `\/` unescaped, as the Java SDK does).
///
/// In certificate mode a body naming another `alipay_cert_sn` is refused before
/// its signature is checked, so a rotated Alipay certificate is reported as
/// such; a body without `alipay_cert_sn` is still verified with the configured
/// key, which is what proves it came from Alipay.
pub fn verify_response(
    body: &str,
    method: &str,
    check: ResponseCheck<'_>,
) -> Result<VerifiedNode, ResponseError> {
    let members = top_level_members(body)?;
    let node = find_node(&members, method)?;
    let root = root_strings(&members)?;
    let root_value = |name: &str| {
        root.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(sign) = root_value("sign").filter(|s| !s.is_empty()) else {
        return Err(ResponseError::Unsigned {
            node_json: node.text.to_owned(),
        });
    };
    if let (Some(expected), Some(found)) = (check.alipay_cert_sn, root_value("alipay_cert_sn"))
        && expected != found
    {
        return Err(ResponseError::CertSnMismatch {
            expected: expected.to_owned(),
            found: found.to_owned(),
        });
    }
    if !node_signature_verifies(&check, node.text, sign) {
        return Err(ResponseError::BadSignature);
    }
    let node_json = if node.is_string() {
        decrypt_node(node.text, check.aes)?
    } else {
        node.text.to_owned()
    };
    Ok(VerifiedNode {
        kind: node.kind,
        node_json,
    })
}

/// The signature covers the node text as sent; the Java SDK also accepts it
/// over the text with `\/` written as `/` (seen in real 2017 responses).
fn node_signature_verifies(check: &ResponseCheck<'_>, text: &str, sign: &str) -> bool {
    let verifies = |text: &str| {
        check.charset.encode(text).is_ok_and(|bytes| {
            check
                .alipay_public_key
                .verify(check.sign_type, &bytes, sign)
                .is_ok()
        })
    };
    verifies(text) || (text.contains("\\/") && verifies(&text.replace("\\/", "/")))
}

/// An encrypted node is a JSON string holding base64 AES ciphertext.
fn decrypt_node(string_literal: &str, aes: Option<&AesKey>) -> Result<String, ResponseError> {
    let cipher: String = serde_json::from_str(string_literal)
        .map_err(|e| ResponseError::Unparsable(e.to_string()))?;
    let aes = aes.ok_or_else(|| ResponseError::Decrypt("no AES key is configured".into()))?;
    aes.decrypt(&cipher)
        .map_err(|e| ResponseError::Decrypt(e.to_string()))
}

/// The root's string members (`sign`, `alipay_cert_sn`), decoded.
fn root_strings(members: &[(&str, &str)]) -> Result<Vec<(String, String)>, ResponseError> {
    let mut out = Vec::new();
    for &(key, text) in members {
        if text.starts_with('"') && (key == "sign" || key == "alipay_cert_sn") {
            if out.iter().any(|(k, _): &(String, String)| k == key) {
                return Err(ResponseError::DuplicateMember(key.to_owned()));
            }
            let value: String =
                serde_json::from_str(text).map_err(|e| ResponseError::Unparsable(e.to_string()))?;
            out.push((key.to_owned(), value));
        }
    }
    Ok(out)
}

/// A successful (or in-progress) answer: the typed body and the node text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    pub body: T,
    /// The verified node JSON, kept for audit and pass-through.
    pub node_json: String,
}

/// A definite failure: Alipay refused this call and it had no effect, so a
/// payment call that failed paid nothing. `ACQ.TRADE_HAS_SUCCESS` refuses the
/// call too, but says the order is already paid: it is [`Outcome::Unknown`],
/// so that no caller records a paid order as a failed payment, and a query
/// tells whether the paid trade is this order.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: Code,
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    pub action: Action,
    /// Every field of the node (failed pays still carry `out_trade_no` etc.).
    pub node: Map<String, Value>,
}

/// Why the outcome of a call is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum UnknownReason {
    /// 20000, or a `sub_code` whose action is to query: `*.SYSTEM_ERROR`, or
    /// `ACQ.TRADE_HAS_SUCCESS` (the trade under this `out_trade_no` is already
    /// paid; only a query tells whether it is this order).
    Gateway {
        code: Code,
        sub_code: Option<String>,
        sub_msg: Option<String>,
    },
    /// No response: connect error, reset, or the connection closed early.
    Transport(String),
    Timeout,
    /// An HTTP status other than 200.
    HttpStatus(u16),
    /// The response could not be trusted or read.
    Response(ResponseError),
    /// A signed node whose fields do not fit the API's response type.
    BadBody(String),
}

impl std::fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnknownReason::Gateway {
                code,
                sub_code,
                sub_msg,
            } => write!(
                f,
                "Alipay answered {code} {} {}",
                sub_code.as_deref().unwrap_or(""),
                sub_msg.as_deref().unwrap_or("")
            ),
            UnknownReason::Transport(e) => write!(f, "transport error: {e}"),
            UnknownReason::Timeout => f.write_str("timed out"),
            UnknownReason::HttpStatus(s) => write!(f, "HTTP status {s}"),
            UnknownReason::Response(e) => write!(f, "{e}"),
            UnknownReason::BadBody(e) => write!(f, "response body: {e}"),
        }
    }
}

/// The result of one call, as a payment system must see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// 10000.
    Success(Reply<T>),
    /// 10003: the trade exists and waits for the buyer.
    InProgress(Reply<T>),
    /// Alipay refused; the call had no effect (see [`Failure`]).
    Failed(Failure),
    /// Nobody can tell what happened: query before doing anything else.
    Unknown(UnknownReason),
}

impl<T> Outcome<T> {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }

    pub fn success(self) -> Option<T> {
        match self {
            Outcome::Success(r) => Some(r.body),
            _ => None,
        }
    }
}

/// Classifies a verified (or failed) response of API `A`: as [`classify`],
/// except that a node without `code` is a success for the few APIs that
/// answer so ([`AlipayApi::SUCCESS_WITHOUT_CODE`]).
pub fn classify_for<A: AlipayApi>(
    verified: Result<VerifiedNode, ResponseError>,
) -> Outcome<A::Response> {
    classify_with(verified, A::SUCCESS_WITHOUT_CODE)
}

/// Classifies a verified (or failed) response for an API whose success body is
/// `T`. Every node must carry `code`: one without it is
/// [`UnknownReason::BadBody`] (use [`classify_for`] for the APIs whose success
/// has no `code`).
pub fn classify<T: DeserializeOwned>(verified: Result<VerifiedNode, ResponseError>) -> Outcome<T> {
    classify_with(verified, false)
}

fn classify_with<T: DeserializeOwned>(
    verified: Result<VerifiedNode, ResponseError>,
    success_without_code: bool,
) -> Outcome<T> {
    let node = match verified {
        Ok(node) => node,
        Err(e) => return Outcome::Unknown(UnknownReason::Response(e)),
    };
    // Fast path for the common answer (a clean 10000 or 10003 whose body fits
    // `T`): read the code alone, then `T` straight from the text, without the
    // intermediate map. Anything else takes the general path below, which gives
    // the same outcome for these nodes too; the fast path only skips work.
    if let Some(code) = plain_success_code(&node.node_json)
        && let Ok(body) = serde_json::from_str::<T>(&node.node_json)
    {
        return reply(code, body, node.node_json);
    }
    classify_node(node, success_without_code)
}

/// `Success` or `InProgress` when the node says so plainly: one `code` member,
/// a string naming one of them. (A node without `code` takes the general path.)
fn plain_success_code(node_json: &str) -> Option<Code> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        code: std::borrow::Cow<'a, str>,
    }
    let head: Head<'_> = serde_json::from_str(node_json).ok()?;
    Code::parse(&head.code).filter(|code| matches!(code, Code::Success | Code::InProgress))
}

fn reply<T>(code: Code, body: T, node_json: String) -> Outcome<T> {
    let reply = Reply { body, node_json };
    if code == Code::Success {
        Outcome::Success(reply)
    } else {
        Outcome::InProgress(reply)
    }
}

/// The general path: every code, every shape of node.
fn classify_node<T: DeserializeOwned>(
    node: VerifiedNode,
    success_without_code: bool,
) -> Outcome<T> {
    let fields: Map<String, Value> = match serde_json::from_str(&node.node_json) {
        Ok(map) => map,
        Err(e) => return Outcome::Unknown(UnknownReason::BadBody(e.to_string())),
    };
    let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_owned);
    let sub_code = text("sub_code");
    let code = match fields.get("code") {
        // `alipay.system.oauth.token` answers success without `code` (the Java
        // SDK calls any node without `sub_code` a success). For other APIs a
        // node without `code` says nothing trustworthy about the call.
        None if sub_code.is_none() && success_without_code => Code::Success,
        None => {
            return Outcome::Unknown(UnknownReason::BadBody("the node has no code".to_owned()));
        }
        code => match text("code").as_deref().and_then(Code::parse) {
            Some(code) => code,
            None => {
                return Outcome::Unknown(UnknownReason::BadBody(format!(
                    "unrecognised code {code:?}"
                )));
            }
        },
    };
    match code {
        Code::Success | Code::InProgress => {
            match serde_path_to_error::deserialize(&Value::Object(fields)) {
                Ok(body) => reply(code, body, node.node_json),
                Err(e) => Outcome::Unknown(UnknownReason::BadBody(e.to_string())),
            }
        }
        _ if !codes::is_definite(code, sub_code.as_deref()) => {
            Outcome::Unknown(UnknownReason::Gateway {
                code,
                sub_code,
                sub_msg: text("sub_msg"),
            })
        }
        _ => Outcome::Failed(Failure {
            code,
            msg: text("msg").unwrap_or_default(),
            action: codes::action_for(code, sub_code.as_deref()),
            sub_code,
            sub_msg: text("sub_msg"),
            node: fields,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_fast_path_agrees_with_the_general_path() {
        use crate::api::trade::TradePayResponse;
        let nodes = [
            r#"{"code":"10000","msg":"Success","trade_no":"1","total_amount":"1.00","x":{"y":[1,2.5]}}"#,
            r#"{"code":"10003","msg":" order success pay inprocess","out_trade_no":"T1"}"#,
            r#"{"code":"1000\u0030","msg":"Success"}"#,
            r#"{"code":"10000","code":"40004","sub_code":"ACQ.TRADE_HAS_SUCCESS"}"#,
            r#"{"code":null,"msg":"Success"}"#,
            r#"{"code":10000,"msg":"Success"}"#,
            r#"{"msg":"Success","trade_no":"1"}"#,
            r#"{"sub_code":"isv.x"}"#,
            r#"{"code":"10000","total_amount":"1.234"}"#,
            r#"{"code":"10000","total_amount":"1.00","total_amount":"2.00"}"#,
            r#"{"code":"10000","extra":1,"extra":2}"#,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}"#,
            r#"{"code":"20000","sub_code":"isp.unknow-error"}"#,
            r#"not json"#,
        ];
        for node in nodes {
            let verified = || VerifiedNode {
                kind: NodeKind::Method,
                node_json: node.to_owned(),
            };
            for success_without_code in [false, true] {
                assert_eq!(
                    classify_with::<TradePayResponse>(Ok(verified()), success_without_code),
                    classify_node::<TradePayResponse>(verified(), success_without_code),
                    "{node}"
                );
            }
        }
    }

    #[test]
    fn a_node_without_code_is_success_only_for_apis_that_answer_so() {
        use crate::api::oauth::OauthToken;
        use crate::api::trade::TradePay;
        let verified = |node: &str| {
            Ok(VerifiedNode {
                kind: NodeKind::Method,
                node_json: node.to_owned(),
            })
        };
        let token =
            r#"{"user_id":"2088102177846880","access_token":"authusrB1","expires_in":1296000}"#;
        let Outcome::Success(reply) = classify_for::<OauthToken>(verified(token)) else {
            panic!("the oauth token answer is a success")
        };
        assert_eq!(reply.body.user_id.as_deref(), Some("2088102177846880"));
        // The same shape for an API that always writes `code`: unreadable.
        let pay = r#"{"msg":"Success","trade_no":"2024051322001446881000041395"}"#;
        assert!(matches!(
            classify_for::<TradePay>(verified(pay)),
            Outcome::Unknown(UnknownReason::BadBody(_))
        ));
        assert!(matches!(
            classify::<Map<String, Value>>(verified(token)),
            Outcome::Unknown(UnknownReason::BadBody(_))
        ));
        // A `sub_code` without `code` is never a success, whatever the API.
        assert!(matches!(
            classify_for::<OauthToken>(verified(r#"{"sub_code":"isv.code-invalid"}"#)),
            Outcome::Unknown(UnknownReason::BadBody(_))
        ));
    }

    #[test]
    fn locates_node_string_aware() {
        let body = r#"{"x":"alipay_trade_query_response\"}{","alipay_trade_query_response":{"a":"}{\"","b":[1,{"c":null}]},"sign":"s"}"#;
        let node = extract_node(body, "alipay.trade.query").unwrap();
        assert_eq!(node.text, r#"{"a":"}{\"","b":[1,{"c":null}]}"#);
        assert_eq!(node.kind, NodeKind::Method);
    }

    #[test]
    fn falls_back_to_error_response_and_refuses_duplicates() {
        let body = r#"{"error_response":{"code":"40002"}}"#;
        assert_eq!(
            extract_node(body, "alipay.trade.pay").unwrap().kind,
            NodeKind::ErrorResponse
        );
        let dup = r#"{"alipay_trade_pay_response":{},"alipay_trade_pay_response":{}}"#;
        assert!(matches!(
            extract_node(dup, "alipay.trade.pay"),
            Err(ResponseError::DuplicateMember(_))
        ));
    }

    #[test]
    fn keeps_pretty_whitespace_inside_the_node() {
        let body = "{\n  \"a_response\" : { \"code\" : \"10000\" } ,\n \"sign\":\"x\"\n}";
        assert_eq!(
            extract_node(body, "a").unwrap().text,
            "{ \"code\" : \"10000\" }"
        );
    }
}
