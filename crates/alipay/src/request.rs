//! The client side of a request: common parameters, `biz_content`, optional AES
//! encryption, the signature, and how the parameters are split between the
//! query string and the form body (protocol.md §2, §3.1, §10).

use jiff::Timestamp;

use crate::aes::{AesError, AesKey};
use crate::api::{AlipayApi, ApiParams, redacted};
use crate::form::{self, Charset, EncodeError, SignScope};
use crate::keys::{PrivateKey, SignError, SignType};
use crate::time::format_beijing;

/// Who is calling and how requests are signed.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub app_id: String,
    pub private_key: PrivateKey,
    pub sign_type: SignType,
    pub charset: Charset,
    /// Certificate mode: the two serial numbers sent with every request.
    pub cert_sns: Option<CertSns>,
    /// Content encryption of `biz_content`.
    pub aes_key: Option<AesKey>,
}

impl AppCredentials {
    pub fn new(app_id: impl Into<String>, private_key: PrivateKey) -> AppCredentials {
        AppCredentials {
            app_id: app_id.into(),
            private_key,
            sign_type: SignType::Rsa2,
            charset: Charset::Utf8,
            cert_sns: None,
            aes_key: None,
        }
    }
}

/// `app_cert_sn` and `alipay_root_cert_sn` (protocol.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSns {
    pub app_cert_sn: String,
    pub alipay_root_cert_sn: String,
}

/// Optional common parameters of one call. `Debug` shows whether each token
/// is there, never its text: `app_auth_token` acts for the merchant and
/// `auth_token` for the buyer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub app_auth_token: Option<String>,
    pub auth_token: Option<String>,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so a new field cannot be left out (or leak) unnoticed.
        let CallOptions {
            notify_url,
            return_url,
            app_auth_token,
            auth_token,
        } = self;
        f.debug_struct("CallOptions")
            .field("notify_url", notify_url)
            .field("return_url", return_url)
            .field("app_auth_token", &redacted(app_auth_token))
            .field("auth_token", &redacted(auth_token))
            .finish()
    }
}

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("biz_content: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("AES: {0}")]
    Aes(#[from] AesError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Parameters that travel in the URL (the official Node SDK's allow-list);
/// everything else goes in the form body.
const QUERY_PARAMS: &[&str] = &[
    "app_id",
    "method",
    "format",
    "charset",
    "sign_type",
    "sign",
    "timestamp",
    "version",
    "notify_url",
    "return_url",
    "auth_token",
    "app_auth_token",
    "app_cert_sn",
    "alipay_root_cert_sn",
    "ws_service_url",
];

/// A signed request, ready to send. Its `Debug` hides tokens and shows a
/// payment code in `biz_content` only by its last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub method: String,
    /// Every parameter, `sign` last, in the order built.
    pub params: Vec<(String, String)>,
    /// The exact text that was signed.
    pub sign_content: String,
    pub charset: Charset,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let SignedRequest {
            method,
            params,
            sign_content,
            charset,
        } = self;
        let shown: Vec<(&str, String)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), shown_param(k, v)))
            .collect();
        f.debug_struct("SignedRequest")
            .field("method", method)
            .field("params", &shown)
            .field("sign_content_len", &sign_content.len())
            .field("charset", charset)
            .finish()
    }
}

/// A parameter's value as `Debug` may show it.
fn shown_param(key: &str, value: &str) -> String {
    match key {
        "app_auth_token" | "auth_token" => "(..)".to_owned(),
        "biz_content" => mask_payment_codes(value),
        _ => value.to_owned(),
    }
}

/// `biz_content` with every `auth_code` (a payment code) masked to its last
/// four digits; text that is not a JSON object is hidden whole.
fn mask_payment_codes(biz_content: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(biz_content) else {
        return "(unreadable biz_content hidden)".to_owned();
    };
    if let Some(serde_json::Value::String(code)) = map.get_mut("auth_code") {
        *code = crate::auth_code::mask(code);
    }
    serde_json::Value::Object(map).to_string()
}

impl SignedRequest {
    /// Signs the given parameters (everything but `sign`): drops blank keys and
    /// values (never sent, never signed), signs, appends `sign`.
    pub fn sign(
        method: &str,
        params: Vec<(String, String)>,
        key: &PrivateKey,
        sign_type: SignType,
        charset: Charset,
    ) -> Result<SignedRequest, BuildError> {
        let params: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, v)| k != "sign" && !form::is_blank(k) && !form::is_blank(v))
            .collect();
        let sign_content = form::sign_content(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignScope::Request,
            false,
        );
        let sign = key.sign(sign_type, &charset.encode(&sign_content)?)?;
        let mut params = params;
        params.push(("sign".into(), sign));
        Ok(SignedRequest {
            method: method.to_owned(),
            params,
            sign_content,
            charset,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The URL query string (common parameters and `sign`).
    pub fn query_string(&self) -> Result<String, EncodeError> {
        form::encode_pairs(
            self.params
                .iter()
                .filter(|(k, _)| QUERY_PARAMS.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str(), v.as_str())),
            self.charset,
        )
    }

    /// The form body (`biz_content` and any other parameter).
    pub fn body(&self) -> Result<String, EncodeError> {
        form::encode_pairs(
            self.params
                .iter()
                .filter(|(k, _)| !QUERY_PARAMS.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str(), v.as_str())),
            self.charset,
        )
    }

    /// `Content-Type` of the body.
    pub fn content_type(&self) -> String {
        format!(
            "application/x-www-form-urlencoded;charset={}",
            self.charset.as_str()
        )
    }
}

/// Builds and signs a request for `api` at instant `now`.
pub fn build_request<A: AlipayApi>(
    app: &AppCredentials,
    api: &A,
    options: &CallOptions,
    now: Timestamp,
) -> Result<SignedRequest, BuildError> {
    build_raw(app, A::METHOD, api.params()?, options, now)
}

/// Builds and signs a request from raw API parameters (for forwarding requests
/// whose method is only known at run time).
pub fn build_raw(
    app: &AppCredentials,
    method: &str,
    api_params: ApiParams,
    options: &CallOptions,
    now: Timestamp,
) -> Result<SignedRequest, BuildError> {
    let mut params: Vec<(String, String)> = vec![
        ("app_id".into(), app.app_id.clone()),
        ("method".into(), method.to_owned()),
        ("format".into(), "JSON".into()),
        ("charset".into(), app.charset.as_str().into()),
        ("sign_type".into(), app.sign_type.as_str().into()),
        ("timestamp".into(), format_beijing(now)),
        ("version".into(), "1.0".into()),
    ];
    let mut push = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            params.push((k.to_owned(), v.clone()));
        }
    };
    push("notify_url", &options.notify_url);
    push("return_url", &options.return_url);
    push("app_auth_token", &options.app_auth_token);
    push("auth_token", &options.auth_token);
    if let Some(sns) = &app.cert_sns {
        params.push(("app_cert_sn".into(), sns.app_cert_sn.clone()));
        params.push((
            "alipay_root_cert_sn".into(),
            sns.alipay_root_cert_sn.clone(),
        ));
    }
    params.extend(api_params.extra);
    if let Some(biz) = api_params.biz_content {
        match &app.aes_key {
            Some(aes) => {
                params.push(("encrypt_type".into(), "AES".into()));
                params.push(("biz_content".into(), aes.encrypt(&biz)?));
            }
            None => params.push(("biz_content".into(), biz)),
        }
    }
    SignedRequest::sign(method, params, &app.private_key, app.sign_type, app.charset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_options_debug_hides_tokens() {
        let options = CallOptions {
            notify_url: Some("https://bank.example.com/notify/alipay".into()),
            return_url: None,
            app_auth_token: Some("202405BB8a1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e".into()),
            auth_token: Some("authusrB7e1c1a9bd5f74b9c8f0d4a1e2c3b4d5X".into()),
        };
        let debug = format!("{options:?}");
        assert!(!debug.contains("202405BB"), "{debug}");
        assert!(!debug.contains("authusrB"), "{debug}");
        assert!(debug.contains("app_auth_token: Some((..))"), "{debug}");
        assert!(debug.contains("auth_token: Some((..))"), "{debug}");
        assert!(
            debug.contains(r#"notify_url: Some("https://bank.example.com/notify/alipay")"#),
            "{debug}"
        );
        assert!(debug.contains("return_url: None"), "{debug}");
    }

    #[test]
    fn signed_request_debug_masks_payment_codes_and_tokens() {
        let key = crate::PrivateKey::generate_2048().expect("key");
        let app = AppCredentials::new("2021000000000001", key);
        let options = CallOptions {
            app_auth_token: Some("202405BB8a1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e".into()),
            ..CallOptions::default()
        };
        let params = ApiParams {
            biz_content: Some(
                r#"{"out_trade_no":"T1","auth_code":"28763443825664394","total_amount":"1.00"}"#
                    .into(),
            ),
            extra: Vec::new(),
        };
        let now = jiff::Timestamp::from_second(1_715_593_760).expect("time");
        let request = build_raw(&app, "alipay.trade.pay", params, &options, now).expect("build");
        let debug = format!("{request:?}");
        assert!(!debug.contains("28763443825664394"), "{debug}");
        assert!(debug.contains("*************4394"), "{debug}");
        assert!(!debug.contains("202405BB"), "{debug}");
        assert!(debug.contains("T1"), "{debug}");
    }
}
