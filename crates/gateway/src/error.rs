//! The one error type of the gateway's operations and of its JSON surfaces
//! (admin API, health): stable kinds, a message that names what is wrong,
//! and for internal failures a body that reveals nothing (the cause is
//! logged once). The channel API answers in Alipay's format instead
//! (`channel_api`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jianlian_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule or the current state refuses it.
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// Upstream refused or could not be reached (the message is Alipay's).
    #[error("upstream: {0}")]
    Upstream(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NotFound { what, key } => {
                Error::NotFound(format!("{what} {key} does not exist"))
            }
            StoreError::Duplicate(m) => Error::Conflict(m),
            StoreError::Invalid(m) => Error::Invalid(m),
            StoreError::Id(e) => Error::Invalid(e.to_string()),
            StoreError::Refund(e) => Error::Conflict(e.to_string()),
            StoreError::Merchant(e) => Error::Conflict(e.to_string()),
            StoreError::Channel(e) => Error::Invalid(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unauthorized => "unauthorized",
            Error::Upstream(_) => "upstream",
            Error::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let message = match &self {
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = json!({ "error": self.kind(), "message": message });
        (self.status(), Json(body)).into_response()
    }
}
