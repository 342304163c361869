//! The gateway's one way to Alipay: the protocol crate's client bound to the
//! acquirer's app, with its `app_auth_token`, and the translation of each
//! [`Outcome`] into the observation the core understands. Every call is timed
//! into the `jianlian_upstream_seconds` histogram.

use std::sync::Arc;
use std::time::Instant;

use jianlian_alipay::api::AlipayApi;
use jianlian_alipay::api::trade::{
    RetryFlag, TradeCancelResponse, TradeQueryResponse, TradeRefundQueryResponse,
    TradeRefundResponse, YesNo,
};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions};
use jianlian_alipay::response::Failure;
use jianlian_alipay::{Clock, Outcome};
use jianlian_core::refund::{RefundAnswer, RefundQueryAnswer};
use jianlian_core::trade::{CancelAnswer, FailureReason, QueryAnswer, TradeSnapshot};

use crate::config::UpstreamSettings;

/// The acquirer's client towards Alipay. Its `Debug` hides `app_auth_token`.
#[derive(Clone)]
pub struct Upstream {
    client: AlipayClient,
    app_auth_token: Option<String>,
    notify_url: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("client", &self.client)
            .field(
                "app_auth_token",
                &self.app_auth_token.as_ref().map(|_| "(..)"),
            )
            .field("notify_url", &self.notify_url)
            .finish()
    }
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("upstream client: {0}")]
pub struct UpstreamBuildError(String);

impl Upstream {
    pub fn new(
        settings: &UpstreamSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Upstream, UpstreamBuildError> {
        let mut app = AppCredentials::new(settings.app_id.clone(), settings.private_key.clone());
        app.sign_type = settings.sign_type;
        app.cert_sns = settings.cert_sns.clone();
        let config = ClientConfig {
            gateway_url: settings.gateway_url.clone(),
            app,
            alipay_public_key: settings.alipay_public_key.clone(),
            alipay_cert_sn: settings.alipay_cert_sn.clone(),
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
        };
        let client =
            AlipayClient::new(config, clock).map_err(|e| UpstreamBuildError(e.to_string()))?;
        Ok(Upstream {
            client,
            app_auth_token: settings.app_auth_token.clone(),
            notify_url: settings.notify_url.clone(),
        })
    }

    /// Calls `api`; `with_notify` adds the gateway's `/notify/alipay` as
    /// `notify_url` (trades that Alipay notifies about).
    pub async fn call<A: AlipayApi>(&self, api: &A, with_notify: bool) -> Outcome<A::Response> {
        let options = CallOptions {
            notify_url: with_notify.then(|| self.notify_url.clone()),
            app_auth_token: self.app_auth_token.clone(),
            ..CallOptions::default()
        };
        let started = Instant::now();
        let outcome = match self.client.execute(api, &options).await {
            Ok(outcome) => outcome,
            // Nothing was sent: the request could not be built. No effect upstream.
            Err(e) => Outcome::Failed(Failure {
                code: jianlian_alipay::Code::InvalidArguments,
                msg: "Invalid Arguments".into(),
                sub_code: Some("isv.invalid-parameter".into()),
                sub_msg: Some(format!("the gateway could not build the request: {e}")),
                action: jianlian_alipay::Action::Fix,
                node: serde_json::Map::new(),
            }),
        };
        let label = match &outcome {
            Outcome::Success(_) => "success",
            Outcome::InProgress(_) => "in_progress",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "unknown",
        };
        metrics::histogram!("jianlian_upstream_seconds", "method" => A::METHOD, "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        outcome
    }
}

/// A 40004 (or other definite refusal) as the core keeps it.
pub fn failure_reason(f: &Failure) -> FailureReason {
    FailureReason {
        code: f.code.as_str().to_owned(),
        msg: f.msg.clone(),
        sub_code: f.sub_code.clone(),
        sub_msg: f.sub_msg.clone(),
    }
}

/// A query's outcome as the closed loop sees it.
pub fn query_answer(outcome: &Outcome<TradeQueryResponse>) -> QueryAnswer {
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => match TradeSnapshot::from_query(&r.body) {
            Some(s) => QueryAnswer::Found(s),
            None => QueryAnswer::Unknown {
                reason: "the query answer has no trade_status".into(),
            },
        },
        Outcome::Failed(f) if f.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST") => {
            QueryAnswer::NotFound
        }
        Outcome::Failed(f) => QueryAnswer::Unknown {
            reason: format!(
                "query refused: {} {}",
                f.sub_code.as_deref().unwrap_or(f.code.as_str()),
                f.sub_msg.as_deref().unwrap_or_default()
            ),
        },
        Outcome::Unknown(reason) => QueryAnswer::Unknown {
            reason: reason.to_string(),
        },
    }
}

/// A cancel's outcome: `retry_flag = Y` means cancel again, and the `action`
/// (close or refund) is what Alipay did (R4.2, R4.3).
pub fn cancel_answer(outcome: &Outcome<TradeCancelResponse>) -> CancelAnswer {
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => match r.body.retry_flag {
            Some(RetryFlag::Y) => CancelAnswer::Retry,
            Some(RetryFlag::N) | None => CancelAnswer::Done {
                action: r.body.action,
            },
        },
        Outcome::Failed(f) => CancelAnswer::Refused(failure_reason(f)),
        Outcome::Unknown(reason) => CancelAnswer::Unknown {
            reason: reason.to_string(),
        },
    }
}

/// A refund's outcome: only `fund_change = Y` proves the money moved.
pub fn refund_answer(outcome: &Outcome<TradeRefundResponse>) -> RefundAnswer {
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => match r.body.fund_change {
            Some(YesNo::Y) => RefundAnswer::Refunded {
                at: r.body.gmt_refund_pay.map(|t| t.timestamp()),
            },
            _ => RefundAnswer::Accepted,
        },
        Outcome::Failed(f) => RefundAnswer::Failed(failure_reason(f)),
        Outcome::Unknown(reason) => RefundAnswer::Unknown {
            reason: reason.to_string(),
        },
    }
}

/// A refund query's outcome: `REFUND_SUCCESS` or nothing.
pub fn refund_query_answer(outcome: &Outcome<TradeRefundQueryResponse>) -> RefundQueryAnswer {
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            if r.body.refund_status.as_deref() == Some("REFUND_SUCCESS") {
                RefundQueryAnswer::Succeeded {
                    at: r.body.gmt_refund_pay.map(|t| t.timestamp()),
                }
            } else {
                RefundQueryAnswer::NotRefunded
            }
        }
        Outcome::Failed(f) => RefundQueryAnswer::Unknown {
            reason: format!(
                "refund query refused: {} {}",
                f.sub_code.as_deref().unwrap_or(f.code.as_str()),
                f.sub_msg.as_deref().unwrap_or_default()
            ),
        },
        Outcome::Unknown(reason) => RefundQueryAnswer::Unknown {
            reason: reason.to_string(),
        },
    }
}
