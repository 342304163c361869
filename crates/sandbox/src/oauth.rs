//! Buyer authorisation for H5/JSAPI (apis.md §8): the authorize page that
//! redirects with an `auth_code`, `alipay.system.oauth.token` (codes and
//! single-use refresh tokens) and `alipay.user.info.share`, for user-id and
//! OpenID apps.

use jiff::{SignedDuration, Timestamp};

use jianlian_alipay::api::oauth::{OauthTokenResponse, UserInfoShareResponse};
use jianlian_alipay::{Code, ErrorReply};

use crate::api::{Answer, Call, reply};
use crate::model::{IdMode, OauthGrant};
use crate::state::Core;
use crate::trades::ActionError;

/// An authorisation code is valid this long.
pub const CODE_LIFETIME: SignedDuration = SignedDuration::from_mins(5);
/// Access tokens (seconds, as `expires_in`).
pub const ACCESS_LIFETIME_SECS: i64 = 1_209_600;
/// Refresh tokens.
pub const REFRESH_LIFETIME_SECS: i64 = 2_592_000;

fn code_invalid(detail: &str) -> ErrorReply {
    ErrorReply::new(
        Code::InvalidArguments,
        "isv.code-invalid",
        format!("授权码code无效: {detail}"),
    )
}

impl Core {
    /// The buyer authorises the app: a single-use code for the redirect.
    pub fn authorize(
        &mut self,
        app_id: &str,
        buyer_id: &str,
        scope: &str,
        now: Timestamp,
    ) -> Result<String, ActionError> {
        if !self.st.apps.contains_key(app_id) {
            return Err(ActionError::NotFound(format!(
                "app {app_id} does not exist"
            )));
        }
        if !self.st.buyers.contains_key(buyer_id) {
            return Err(ActionError::NotFound(format!(
                "buyer {buyer_id} does not exist"
            )));
        }
        for s in scope.split(',') {
            if !matches!(s, "auth_base" | "auth_user") {
                return Err(ActionError::Invalid(format!(
                    "scope {s:?} is not auth_base or auth_user"
                )));
            }
        }
        let code = self.ids().token("");
        self.put_grant(OauthGrant {
            app_id: app_id.to_owned(),
            buyer_id: buyer_id.to_owned(),
            scope: scope.to_owned(),
            code: code.clone(),
            code_expires_at: now.checked_add(CODE_LIFETIME).unwrap_or(now),
            code_used: false,
            access_token: None,
            access_expires_at: None,
            refresh_token: None,
            refresh_expires_at: None,
        });
        Ok(code)
    }

    /// `alipay.system.oauth.token` (top-level `grant_type`, `code`, `refresh_token`).
    pub fn oauth_token(&mut self, call: &Call) -> Answer {
        let grant_type = call
            .request
            .get("grant_type")
            .ok_or_else(|| ErrorReply::invalid_parameter("grant_type is required"))?;
        let mut grant = match grant_type {
            "authorization_code" => {
                let code = call
                    .request
                    .get("code")
                    .ok_or_else(|| ErrorReply::invalid_parameter("code is required"))?;
                let g = self
                    .st
                    .grants
                    .get(code)
                    .filter(|g| g.app_id == call.app.app_id)
                    .cloned()
                    .ok_or_else(|| code_invalid("unknown code or another app's code"))?;
                if g.code_used || g.code_expires_at <= call.now {
                    return Err(code_invalid("the code was used or has expired"));
                }
                g
            }
            "refresh_token" => {
                let token = call
                    .request
                    .get("refresh_token")
                    .ok_or_else(|| ErrorReply::invalid_parameter("refresh_token is required"))?;
                let g = self
                    .idx
                    .tokens
                    .get(token)
                    .and_then(|c| self.st.grants.get(c))
                    .filter(|g| g.app_id == call.app.app_id)
                    .cloned();
                let Some(g) = g else {
                    return Err(ErrorReply::new(
                        Code::InvalidArguments,
                        "isv.refresh-token-invalid",
                        "刷新令牌refresh_token无效",
                    ));
                };
                if g.refresh_token.as_deref() != Some(token)
                    || g.refresh_expires_at.is_none_or(|t| t <= call.now)
                {
                    return Err(ErrorReply::new(
                        Code::InvalidArguments,
                        "isv.refreshed-token-invalid",
                        "刷新令牌已使用，请使用最新的刷新令牌",
                    ));
                }
                g
            }
            other => {
                return Err(ErrorReply::invalid_parameter(format!(
                    "grant_type {other:?} is not authorization_code or refresh_token"
                )));
            }
        };
        grant.code_used = true;
        let access = self.ids().token("authusrB");
        let refresh = self.ids().token("authusrB");
        grant.access_token = Some(access.clone());
        grant.access_expires_at = call
            .now
            .checked_add(SignedDuration::from_secs(ACCESS_LIFETIME_SECS))
            .ok();
        grant.refresh_token = Some(refresh.clone());
        grant.refresh_expires_at = call
            .now
            .checked_add(SignedDuration::from_secs(REFRESH_LIFETIME_SECS))
            .ok();
        let (user_id, open_id) = self.buyer_ids(&grant.buyer_id, &call.app);
        self.put_grant(grant);
        reply(
            Code::Success,
            &OauthTokenResponse {
                user_id,
                open_id,
                union_id: None,
                access_token: Some(access),
                expires_in: Some(ACCESS_LIFETIME_SECS.into()),
                refresh_token: Some(refresh),
                re_expires_in: Some(REFRESH_LIFETIME_SECS.into()),
                auth_start: Some(jianlian_alipay::time::format_beijing(call.now)),
                extra: Default::default(),
            },
        )
    }

    /// `alipay.user.info.share` (common parameter `auth_token`).
    pub fn user_info_share(&mut self, call: &Call) -> Answer {
        let token = call.request.get("auth_token").ok_or_else(|| {
            ErrorReply::new(
                Code::InsufficientTokenPermissions,
                "aop.invalid-auth-token",
                "无效的访问令牌: auth_token is required",
            )
        })?;
        let grant = self
            .idx
            .tokens
            .get(token)
            .and_then(|c| self.st.grants.get(c))
            .filter(|g| g.app_id == call.app.app_id && g.access_token.as_deref() == Some(token))
            .cloned()
            .ok_or_else(|| {
                ErrorReply::new(
                    Code::InsufficientTokenPermissions,
                    "aop.invalid-auth-token",
                    "无效的访问令牌",
                )
            })?;
        if grant.access_expires_at.is_none_or(|t| t <= call.now) {
            return Err(ErrorReply::new(
                Code::InsufficientTokenPermissions,
                "aop.auth-token-time-out",
                "访问令牌已过期",
            ));
        }
        if !grant.scope.split(',').any(|s| s == "auth_user") {
            return Err(ErrorReply::new(
                Code::InsufficientPermissions,
                "isv.insufficient-user-permissions",
                "用户权限不足: the buyer authorised auth_base only",
            ));
        }
        let (user_id, open_id) = self.buyer_ids(&grant.buyer_id, &call.app);
        let buyer = self
            .st
            .buyers
            .get(&grant.buyer_id)
            .cloned()
            .ok_or_else(ErrorReply::unknown)?;
        reply(
            Code::Success,
            &UserInfoShareResponse {
                user_id: if call.app.id_mode == IdMode::UserId {
                    user_id
                } else {
                    None
                },
                open_id,
                avatar: None,
                nick_name: buyer
                    .name
                    .clone()
                    .or_else(|| Some(crate::ids::mask_logon_id(&buyer.logon_id))),
                province: None,
                city: None,
                gender: None,
                user_type: Some("2".into()),
                user_status: Some("T".into()),
                is_certified: Some(if buyer.cert_no.is_some() { "T" } else { "F" }.into()),
                extra: Default::default(),
            },
        )
    }
}
