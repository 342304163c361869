//! Buyer authorisation for the H5/JSAPI flow (apis.md §8): exchange the
//! `auth_code` from the authorize redirect for the buyer's id, optionally read
//! their profile.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{AlipayApi, ApiParams, Extra, is_empty_extra};

/// `alipay.system.oauth.token`. Its parameters are top-level request
/// parameters, not `biz_content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OauthToken {
    /// `grant_type=authorization_code`.
    AuthorizationCode(String),
    /// `grant_type=refresh_token`.
    RefreshToken(String),
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

impl AlipayApi for OauthToken {
    const METHOD: &'static str = "alipay.system.oauth.token";
    type Response = OauthTokenResponse;
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
