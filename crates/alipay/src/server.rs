//! The server side of `gateway.do`: reading and authenticating a request, and
//! writing the signed response. Used by the sandbox (playing Alipay) and by the
//! gateway (accepting Alipay-style requests from channels).
//!
//! Reading follows protocol.md §3.3 and §11: query string and form body are
//! merged, decoded once in the request's charset; a repeated parameter makes the
//! request invalid; checks run in Alipay's order (app → signature → the rest),
//! and every refusal is an [`ErrorReply`] with Alipay's code and `sub_code`.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::aes::AesKey;
use crate::codes::Code;
use crate::form::{self, Charset, SignScope};
use crate::keys::{PrivateKey, PublicKey, SignType};

/// Largest request body accepted, in bytes (Alipay documents no limit for
/// `biz_content`; one megabyte is far above any face-to-face API).
pub const REQUEST_BODY_MAX_BYTES: usize = 1024 * 1024;

/// An error answer: code, `sub_code`, `sub_msg`, and any business fields to
/// write beside them (e.g. `out_trade_no` and zero amounts on a failed pay).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    pub code: Code,
    pub sub_code: String,
    pub sub_msg: String,
    pub fields: Map<String, Value>,
}

impl ErrorReply {
    pub fn new(code: Code, sub_code: impl Into<String>, sub_msg: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code,
            sub_code: sub_code.into(),
            sub_msg: sub_msg.into(),
            fields: Map::new(),
        }
    }

    /// A 40004 business failure.
    pub fn business(sub_code: impl Into<String>, sub_msg: impl Into<String>) -> ErrorReply {
        ErrorReply::new(Code::BusinessFailed, sub_code, sub_msg)
    }

    /// 20000: the service could not tell what happened.
    pub fn unknown() -> ErrorReply {
        ErrorReply::new(
            Code::ServiceUnavailable,
            "isp.unknow-error",
            "服务暂不可用（业务系统不可用）",
        )
    }

    /// 40002 `isv.invalid-parameter` naming what is wrong.
    pub fn invalid_parameter(detail: impl Into<String>) -> ErrorReply {
        ErrorReply::new(Code::InvalidArguments, "isv.invalid-parameter", detail)
    }

    /// 40001 for a missing required parameter.
    pub fn missing(sub_code: &str, sub_msg: &str) -> ErrorReply {
        ErrorReply::new(Code::MissingArguments, sub_code, sub_msg)
    }

    /// Adds a business field written beside the code.
    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> ErrorReply {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// The response node: `code`, `msg`, `sub_code`, `sub_msg`, then the fields.
    pub fn to_node(&self) -> Map<String, Value> {
        let mut node = Map::new();
        node.insert("code".into(), self.code.as_str().into());
        node.insert("msg".into(), self.code.msg().into());
        node.insert("sub_code".into(), self.sub_code.clone().into());
        node.insert("sub_msg".into(), self.sub_msg.clone().into());
        for (k, v) in &self.fields {
            node.insert(k.clone(), v.clone());
        }
        node
    }

    pub fn to_node_json(&self) -> String {
        serde_json::to_string(&Value::Object(self.to_node())).unwrap_or_default()
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.sub_code, self.sub_msg)
    }
}

impl std::error::Error for ErrorReply {}

/// A `gateway.do` request, decoded, not yet authenticated.
#[derive(Debug, Clone)]
pub struct IncomingRequest {
    params: Vec<(String, String)>,
    charset: Charset,
}

/// The request line and body as the HTTP server saw them.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// `GET` or `POST`.
    pub http_method: &'a str,
    /// Origin-form (`/gateway.do?…`) or absolute-form (`http://host/gateway.do?…`).
    pub target: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

impl IncomingRequest {
    /// Decodes the query string and (for form POSTs) the body.
    pub fn parse(raw: RawRequest<'_>) -> Result<IncomingRequest, ErrorReply> {
        if !raw.http_method.eq_ignore_ascii_case("GET")
            && !raw.http_method.eq_ignore_ascii_case("POST")
        {
            return Err(ErrorReply::invalid_parameter(format!(
                "HTTP method {} is not supported; use POST or GET",
                raw.http_method
            )));
        }
        if raw.body.len() > REQUEST_BODY_MAX_BYTES {
            return Err(ErrorReply::invalid_parameter(
                "request body is larger than 1 MiB",
            ));
        }
        let query = query_of(raw.target);
        let mut pairs = form::decode_pairs(query.as_bytes());
        let is_form = raw.content_type.is_none_or(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if raw.http_method.eq_ignore_ascii_case("POST") && !raw.body.is_empty() {
            if !is_form {
                return Err(ErrorReply::invalid_parameter(
                    "the body must be application/x-www-form-urlencoded",
                ));
            }
            pairs.extend(form::decode_pairs(raw.body));
        }
        IncomingRequest::from_byte_pairs(pairs)
    }

    /// Builds a request from decoded byte pairs: finds the charset, decodes,
    /// refuses repeated keys.
    pub fn from_byte_pairs(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<IncomingRequest, ErrorReply> {
        let charset = match pairs.iter().find(|(k, _)| k == b"charset") {
            None => Charset::Utf8,
            Some((_, v)) => {
                let text = String::from_utf8_lossy(v);
                Charset::parse(&text).ok_or_else(|| unknown_charset(&text))?
            }
        };
        let mut params: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = charset.decode(&k).ok_or_else(|| bad_charset(charset))?;
            let value = charset.decode(&v).ok_or_else(|| bad_charset(charset))?;
            params.push((key, value));
        }
        IncomingRequest::from_decoded(params, charset)
    }

    /// Builds a request from already decoded parameters (tests, in-process
    /// calls): the text is taken as is, `charset` only says which bytes the
    /// signature covers.
    pub fn from_params<K: Into<String>, V: Into<String>>(
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<IncomingRequest, ErrorReply> {
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let charset = match params.iter().find(|(k, _)| k == "charset") {
            None => Charset::Utf8,
            Some((_, text)) => Charset::parse(text).ok_or_else(|| unknown_charset(text))?,
        };
        IncomingRequest::from_decoded(params, charset)
    }

    fn from_decoded(
        params: Vec<(String, String)>,
        charset: Charset,
    ) -> Result<IncomingRequest, ErrorReply> {
        // A set, not a scan: a 1 MiB body can carry a few hundred thousand keys.
        let mut seen = HashSet::with_capacity(params.len());
        if let Some((key, _)) = params.iter().find(|(key, _)| !seen.insert(key.as_str())) {
            return Err(ErrorReply::invalid_parameter(format!(
                "parameter {key} is given more than once"
            )));
        }
        Ok(IncomingRequest { params, charset })
    }

    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// A parameter's value; blank values count as absent, as at Alipay.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !form::is_blank(v))
    }

    /// The API method name, if given.
    pub fn method(&self) -> Option<&str> {
        self.get("method")
    }

    /// The response key errors are written under: `<method>_response`, or
    /// `error_response` when the method is missing.
    pub fn response_key(&self) -> String {
        self.method()
            .map_or_else(|| "error_response".to_owned(), response_key)
    }

    /// The sign type to answer with: the request's, or RSA2 when it is missing
    /// or invalid.
    pub fn reply_sign_type(&self) -> SignType {
        self.get("sign_type")
            .and_then(SignType::parse)
            .unwrap_or_default()
    }

    /// The string the signature must cover (protocol.md §3.1).
    pub fn sign_content(&self, keep_blank: bool) -> String {
        form::sign_content(
            self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignScope::Request,
            keep_blank,
        )
    }

    /// Authenticates the request in Alipay's order: `app_id` present and known
    /// (`app_key` looks it up), signature present, sign type valid, signature
    /// verifies, then the other common parameters.
    ///
    /// A request carrying empty values is accepted when the signature covers the
    /// content with them dropped (the documented rule) or kept (what the
    /// official Node SDK signs).
    pub fn authenticate<F>(&self, app_key: F) -> Result<Authenticated, ErrorReply>
    where
        F: FnOnce(&str) -> Option<PublicKey>,
    {
        let app_id = self
            .get("app_id")
            .ok_or_else(|| ErrorReply::missing("isv.missing-app-id", "缺少AppID参数"))?;
        let key = app_key(app_id).ok_or_else(|| {
            ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-app-id",
                "无效的AppID参数",
            )
        })?;
        let sign = self
            .get("sign")
            .ok_or_else(|| ErrorReply::missing("isv.missing-signature", "缺少签名参数"))?;
        let sign_type_text = self
            .get("sign_type")
            .ok_or_else(|| ErrorReply::missing("isv.missing-signature-type", "缺少签名类型"))?;
        let sign_type = SignType::parse(sign_type_text).ok_or_else(|| {
            ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-signature-type",
                format!("无效的签名类型: {sign_type_text}"),
            )
        })?;
        let content = self.sign_content(false);
        let bytes = self.charset.encode(&content).map_err(|e| {
            ErrorReply::new(Code::InvalidArguments, "isv.invalid-charset", e.to_string())
        })?;
        let mut verified = key.verify(sign_type, &bytes, sign).is_ok();
        if !verified && self.params.iter().any(|(_, v)| form::is_blank(v)) {
            let with_blank = self.sign_content(true);
            if let Ok(bytes) = self.charset.encode(&with_blank) {
                verified = key.verify(sign_type, &bytes, sign).is_ok();
            }
        }
        // The Node SDK and python-alipay-sdk sign UTF-8 bytes whatever `charset`
        // says; the same text in another encoding proves the same thing.
        if !verified && self.charset != Charset::Utf8 {
            verified = key.verify(sign_type, content.as_bytes(), sign).is_ok();
        }
        if !verified {
            return Err(invalid_signature(&content));
        }
        self.check_common_params()?;
        Ok(Authenticated {
            app_id: app_id.to_owned(),
            sign_type,
        })
    }

    fn check_common_params(&self) -> Result<(), ErrorReply> {
        let method = self
            .get("method")
            .ok_or_else(|| ErrorReply::missing("isv.missing-method", "缺少方法名参数"))?;
        if !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            || method.len() > 128
        {
            return Err(ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-method",
                "不存在的方法名",
            ));
        }
        let timestamp = self
            .get("timestamp")
            .ok_or_else(|| ErrorReply::missing("isv.missing-timestamp", "缺少时间戳参数"))?;
        crate::time::parse_beijing(timestamp).map_err(|_| {
            ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-timestamp",
                format!("非法的时间戳参数: {timestamp:?} is not yyyy-MM-dd HH:mm:ss"),
            )
        })?;
        let version = self
            .get("version")
            .ok_or_else(|| ErrorReply::missing("isv.missing-version", "缺少版本参数"))?;
        if version != "1.0" {
            return Err(ErrorReply::invalid_parameter(format!(
                "version {version:?} is not 1.0"
            )));
        }
        if let Some(format) = self.get("format")
            && !format.eq_ignore_ascii_case("json")
        {
            return Err(ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-format",
                "无效的数据格式",
            ));
        }
        Ok(())
    }

    /// The business content: `biz_content`, decrypted when `encrypt_type=AES`.
    /// `None` when the request has none (APIs with top-level parameters).
    pub fn biz_content(&self, aes: Option<&AesKey>) -> Result<Option<String>, ErrorReply> {
        let Some(content) = self.get("biz_content") else {
            return Ok(None);
        };
        match self.get("encrypt_type") {
            None => Ok(Some(content.to_owned())),
            Some("AES") => {
                let key = aes.ok_or_else(|| {
                    ErrorReply::new(
                        Code::InvalidArguments,
                        "isv.decryption-error-not-valid-encrypt-key",
                        "解密出错, 未配置加密密钥或加密密钥格式错误",
                    )
                })?;
                key.decrypt(content).map(Some).map_err(|_| {
                    ErrorReply::new(
                        Code::InsufficientConditions,
                        "isv.decryption-error-unknown",
                        "解密出错, 未知错误",
                    )
                })
            }
            Some(other) => Err(ErrorReply::new(
                Code::InvalidArguments,
                "isv.decryption-error-not-valid-encrypt-type",
                format!("解密出错，不支持的加密算法: {other}"),
            )),
        }
    }

    /// Whether the request was AES-encrypted (so the answer must be too).
    pub fn is_encrypted(&self) -> bool {
        self.get("encrypt_type") == Some("AES")
    }

    /// Whether the caller uses certificate mode (so the answer carries `alipay_cert_sn`).
    pub fn is_cert_mode(&self) -> bool {
        self.get("app_cert_sn").is_some()
    }
}

/// Who called, once the signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub app_id: String,
    pub sign_type: SignType,
}

fn unknown_charset(text: &str) -> ErrorReply {
    ErrorReply::new(
        Code::InvalidArguments,
        "isv.invalid-charset",
        format!("字符集错误: charset {text:?} is not utf-8 or gbk"),
    )
}

fn bad_charset(charset: Charset) -> ErrorReply {
    ErrorReply::new(
        Code::InvalidArguments,
        "isv.invalid-charset",
        format!("字符集错误: the request is not valid {}", charset.as_str()),
    )
}

/// `isv.invalid-signature`, echoing the sign content with `&` as `&amp;` as the
/// real gateway does, so integrators can compare strings.
pub fn invalid_signature(sign_content: &str) -> ErrorReply {
    ErrorReply::new(
        Code::InvalidArguments,
        "isv.invalid-signature",
        format!(
            "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{}",
            sign_content.replace('&', "&amp;")
        ),
    )
}

fn query_of(target: &str) -> &str {
    let without_fragment = target.split('#').next().unwrap_or_default();
    without_fragment.split_once('?').map_or("", |(_, q)| q)
}

/// `alipay.trade.pay` → `alipay_trade_pay_response`.
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// How a response is signed and wrapped.
#[derive(Debug, Clone, Copy)]
pub struct ResponseSigning<'a> {
    pub key: &'a PrivateKey,
    pub sign_type: SignType,
    /// `alipay_cert_sn`, for certificate-mode callers.
    pub cert_sn: Option<&'a str>,
    /// Encrypts the node (the caller sent `encrypt_type=AES`).
    pub aes: Option<&'a AesKey>,
}

/// Writes the golden serialization (protocol.md §4.3):
/// `{"<key>":<node>[,"alipay_cert_sn":"…"],"sign":"…"}` with the signature over
/// the exact node text (for an encrypted node, the quoted base64 string).
/// Without `signing` the body is unsigned (reproducing real unsigned errors).
pub fn write_response(
    response_key: &str,
    node_json: &str,
    signing: Option<ResponseSigning<'_>>,
) -> String {
    // UTF-8 can write any text, so there is no error to report.
    write_envelope(Charset::Utf8, response_key, node_json, signing).unwrap_or_default()
}

/// As [`write_response`], for a caller whose request named `charset`: the body
/// is written in `charset` and the signature covers the node's bytes in it,
/// which is what the Java and Python SDKs verify for such a caller. Send it
/// with `Content-Type: text/html;charset=<charset>`.
pub fn write_response_in(
    charset: Charset,
    response_key: &str,
    node_json: &str,
    signing: Option<ResponseSigning<'_>>,
) -> Result<Vec<u8>, form::EncodeError> {
    let text = write_envelope(charset, response_key, node_json, signing)?;
    Ok(charset.encode(&text)?.into_owned())
}

fn write_envelope(
    charset: Charset,
    response_key: &str,
    node_json: &str,
    signing: Option<ResponseSigning<'_>>,
) -> Result<String, form::EncodeError> {
    let node_text = match signing.and_then(|s| s.aes) {
        Some(aes) => match aes.encrypt(node_json) {
            Ok(cipher) => format!("\"{cipher}\""),
            Err(_) => node_json.to_owned(),
        },
        None => node_json.to_owned(),
    };
    let node_bytes = charset.encode(&node_text)?;
    let key_json = serde_json::to_string(response_key).unwrap_or_default();
    let mut out = String::with_capacity(node_text.len() + 400);
    out.push('{');
    out.push_str(&key_json);
    out.push(':');
    out.push_str(&node_text);
    if let Some(s) = signing {
        if let Some(sn) = s.cert_sn {
            out.push_str(",\"alipay_cert_sn\":");
            out.push_str(&serde_json::to_string(sn).unwrap_or_default());
        }
        if let Ok(sign) = s.key.sign(s.sign_type, &node_bytes) {
            out.push_str(",\"sign\":\"");
            out.push_str(&sign);
            out.push('"');
        }
    }
    out.push('}');
    Ok(out)
}

/// A success node: `{"code":"10000","msg":"Success", …body}` (or 10003).
pub fn success_node<T: Serialize>(code: Code, body: &T) -> Result<String, serde_json::Error> {
    let mut node = Map::new();
    node.insert("code".into(), code.as_str().into());
    node.insert("msg".into(), code.msg().into());
    match serde_json::to_value(body)? {
        Value::Object(fields) => {
            for (k, v) in fields {
                if !v.is_null() {
                    node.insert(k, v);
                }
            }
        }
        Value::Null => {}
        other => {
            node.insert("result".into(), other);
        }
    }
    serde_json::to_string(&Value::Object(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_query_and_body_and_refuses_repeats() {
        let raw = RawRequest {
            http_method: "POST",
            target: "http://127.0.0.1/gateway.do?app_id=1&method=alipay.trade.query&sign=a%2Bb",
            content_type: Some("application/x-www-form-urlencoded;charset=utf-8"),
            body: b"biz_content=%7B%22a%22%3A%22x+y%22%7D",
        };
        let req = IncomingRequest::parse(raw).unwrap();
        assert_eq!(req.get("sign"), Some("a+b"));
        assert_eq!(req.get("biz_content"), Some(r#"{"a":"x y"}"#));
        let repeated = RawRequest {
            body: b"app_id=2",
            ..raw
        };
        let err = IncomingRequest::parse(repeated).unwrap_err();
        assert_eq!(err.sub_code, "isv.invalid-parameter");
    }

    #[test]
    fn a_gbk_response_is_signed_over_its_gbk_bytes() {
        let key = PrivateKey::generate_2048().unwrap();
        let node = r#"{"code":"10000","msg":"Success","store_name":"测试门店"}"#;
        let signing = ResponseSigning {
            key: &key,
            sign_type: SignType::Rsa2,
            cert_sn: None,
            aes: None,
        };
        let bytes = write_response_in(Charset::Gbk, "a_response", node, Some(signing)).unwrap();
        let text = Charset::Gbk.decode(&bytes).unwrap();
        let check = crate::response::ResponseCheck {
            charset: Charset::Gbk,
            ..crate::response::ResponseCheck::new(key.public_key(), SignType::Rsa2)
        };
        let verified = crate::response::verify_response(&text, "a", check).unwrap();
        assert_eq!(verified.node_json, node);
        let utf8 = crate::response::ResponseCheck::new(key.public_key(), SignType::Rsa2);
        assert!(crate::response::verify_response(&text, "a", utf8).is_err());
        assert!(
            write_response_in(Charset::Gbk, "a_response", "{\"x\":\"😀\"}", Some(signing)).is_err()
        );
    }

    #[test]
    fn response_is_signed_over_the_node_text() {
        let key = PrivateKey::generate_2048().unwrap();
        let node = r#"{"code":"10000","msg":"Success"}"#;
        let body = write_response(
            "alipay_trade_query_response",
            node,
            Some(ResponseSigning {
                key: &key,
                sign_type: SignType::Rsa2,
                cert_sn: None,
                aes: None,
            }),
        );
        assert!(body.starts_with(
            r#"{"alipay_trade_query_response":{"code":"10000","msg":"Success"},"sign":""#
        ));
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let sign = parsed["sign"].as_str().unwrap();
        key.public_key()
            .verify(SignType::Rsa2, node.as_bytes(), sign)
            .unwrap();
    }
}
