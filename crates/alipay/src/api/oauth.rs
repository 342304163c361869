//! Buyer authorisation for the H5/JSAPI flow (apis.md §8): exchange the
//! `auth_code` from the authorize redirect for the buyer's id, optionally read
//! their profile.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{AlipayApi, ApiParams, Extra, Redacted, is_empty_extra, redacted};

/// `alipay.system.oauth.token`. Its parameters are top-level request
/// parameters, not `biz_content`. `Debug` hides the code and the token: either
/// one gets the buyer's access token.
#[derive(Clone, PartialEq, Eq)]
pub enum OauthToken {
    /// `grant_type=authorization_code`.
    AuthorizationCode(String),
    /// `grant_type=refresh_token`.
    RefreshToken(String),
}

impl fmt::Debug for OauthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OauthToken::AuthorizationCode(_) => "AuthorizationCode",
            OauthToken::RefreshToken(_) => "RefreshToken",
        };
        f.debug_tuple(name).field(&Redacted).finish()
    }
}

/// The buyer's tokens. `Debug` shows whether each token is there, never its
/// text (they act as the buyer towards Alipay).
#[skip_serializing_none]
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OauthTokenResponse {
    pub user_id: Option<String>,
    pub open_id: Option<String>,
    pub union_id: Option<String>,
    pub access_token: Option<String>,
    /// Seconds; a JSON number at the wire.
    pub expires_in: Option<serde_json::Value>,
    pub refresh_token: Option<String>,
    pub re_expires_in: Option<serde_json::Value>,
    pub auth_start: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

impl fmt::Debug for OauthTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so a new field cannot be left out (or leak) unnoticed.
        let OauthTokenResponse {
            user_id,
            open_id,
            union_id,
            access_token,
            expires_in,
            refresh_token,
            re_expires_in,
            auth_start,
            extra,
        } = self;
        f.debug_struct("OauthTokenResponse")
            .field("user_id", user_id)
            .field("open_id", open_id)
            .field("union_id", union_id)
            .field("access_token", &redacted(access_token))
            .field("expires_in", expires_in)
            .field("refresh_token", &redacted(refresh_token))
            .field("re_expires_in", re_expires_in)
            .field("auth_start", auth_start)
            // Unmodelled fields may hold more tokens (`alipay_user_id` is
            // harmless, but a newer token field would not be): keys only.
            .field("extra", &extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AlipayApi for OauthToken {
    const METHOD: &'static str = "alipay.system.oauth.token";
    type Response = OauthTokenResponse;
    // Alipay answers this API's success without `code` (the Java SDK calls
    // any node without `sub_code` a success).
    const SUCCESS_WITHOUT_CODE: bool = true;
    fn params(&self) -> Result<ApiParams, serde_json::Error> {
        let extra = match self {
            OauthToken::AuthorizationCode(code) => {
                vec![
                    ("grant_type".into(), "authorization_code".into()),
                    ("code".into(), code.clone()),
                ]
            }
            OauthToken::RefreshToken(token) => {
                vec![
                    ("grant_type".into(), "refresh_token".into()),
                    ("refresh_token".into(), token.clone()),
                ]
            }
        };
        Ok(ApiParams {
            biz_content: None,
            extra,
        })
    }
}

/// `alipay.user.info.share`: no parameters; the call carries `auth_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserInfoShare;

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserInfoShareResponse {
    pub user_id: Option<String>,
    pub open_id: Option<String>,
    pub avatar: Option<String>,
    pub nick_name: Option<String>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub gender: Option<String>,
    pub user_type: Option<String>,
    pub user_status: Option<String>,
    pub is_certified: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

impl AlipayApi for UserInfoShare {
    const METHOD: &'static str = "alipay.user.info.share";
    type Response = UserInfoShareResponse;
    fn params(&self) -> Result<ApiParams, serde_json::Error> {
        Ok(ApiParams::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_codes_and_tokens() {
        let answer = OauthTokenResponse {
            user_id: Some("2088102177846880".into()),
            access_token: Some("authusrB7e1c1a9bd5f74b9c8f0d4a1e2c3b4d5X".into()),
            refresh_token: Some("authusrB0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5Y".into()),
            expires_in: Some(1_296_000.into()),
            extra: [("future_token".to_owned(), "authusrBZZZ".into())]
                .into_iter()
                .collect(),
            ..OauthTokenResponse::default()
        };
        let debug = format!("{answer:?}");
        for secret in ["authusrB7e1c", "authusrB0f9e", "authusrBZZZ"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("access_token: Some((..))"), "{debug}");
        assert!(debug.contains("refresh_token: Some((..))"), "{debug}");
        assert!(
            debug.contains(r#"user_id: Some("2088102177846880")"#),
            "{debug}"
        );
        assert!(debug.contains("future_token"), "{debug}");

        for call in [
            OauthToken::AuthorizationCode("4b203fe6c11548bcabd8da5bb087a83b".into()),
            OauthToken::RefreshToken("authusrB0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5Y".into()),
        ] {
            let debug = format!("{call:?}");
            assert!(
                !debug.contains("4b203fe6") && !debug.contains("authusrB"),
                "{debug}"
            );
            assert!(debug.ends_with("((..))"), "{debug}");
        }
    }
}
