//! Typed requests and responses, one struct per API, behind one trait.
//!
//! Adding an API is a request struct, a response struct and one line of
//! [`biz_api!`](crate::biz_api). Every struct keeps fields it does not model in
//! `extra`, so a request forwarded upstream loses nothing and a newer response
//! field is kept.
//! Amounts are [`Fen`](crate::Fen) (yuan strings at the wire), times
//! [`BeijingTime`](crate::BeijingTime).

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod bill;
pub mod heartbeat;
pub mod merchant;
pub mod oauth;
pub mod preauth;
pub mod trade;

/// The parameters an API contributes to a request: usually `biz_content`,
/// sometimes top-level parameters (`alipay.system.oauth.token`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiParams {
    pub biz_content: Option<String>,
    pub extra: Vec<(String, String)>,
}

/// One Alipay API: its method name, its success body, and how it becomes
/// request parameters.
pub trait AlipayApi {
    const METHOD: &'static str;
    type Response: DeserializeOwned + Serialize + std::fmt::Debug + Clone;

    /// Whether Alipay answers success without a `code` member. Only a few APIs
    /// do (`alipay.system.oauth.token`); for every other API a verified node
    /// without `code` is a body nobody can read, so its outcome is unknown,
    /// never success (see [`classify_for`](crate::response::classify_for)).
    const SUCCESS_WITHOUT_CODE: bool = false;

    fn params(&self) -> Result<ApiParams, serde_json::Error>;
}

/// Implements [`AlipayApi`] for a request whose fields travel in `biz_content`.
#[macro_export]
macro_rules! biz_api {
    ($request:ty, $method:literal, $response:ty) => {
        impl $crate::api::AlipayApi for $request {
            const METHOD: &'static str = $method;
            type Response = $response;
            fn params(&self) -> Result<$crate::api::ApiParams, serde_json::Error> {
                Ok($crate::api::ApiParams {
                    biz_content: Some(serde_json::to_string(self)?),
                    extra: Vec::new(),
                })
            }
        }
    };
}

/// Fields a struct does not model, kept in order of appearance.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Parses a `biz_content` JSON into a request type, naming the field that is
/// wrong (`total_amount: amount "1.234" is not a yuan amount…`).
pub fn parse_biz<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("biz_content: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("biz_content: {e}"))?;
    Ok(parsed)
}

pub(crate) fn is_empty_extra(extra: &Extra) -> bool {
    extra.is_empty()
}

/// Stands in for a secret in `Debug` output (tokens), as keys print `(..)`.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(..)")
    }
}

/// A payment code as `Debug` may show it: its last four digits
/// ([`auth_code::mask`](crate::auth_code::mask)).
pub(crate) fn masked_code(code: &Option<String>) -> Option<String> {
    code.as_deref().map(crate::auth_code::mask)
}

/// A token as `Debug` may show it: whether there is one, never its text.
pub(crate) fn redacted(token: &Option<String>) -> Option<Redacted> {
    token.as_ref().map(|_| Redacted)
}
