//! `POST /notify/alipay`: Alipay's notifications (R7.3). The signature is
//! verified with Alipay's key, then `app_id`, `out_trade_no`,
//! `total_amount` and the seller (`seller_id`, required: Alipay always sends
//! it) are checked against the gateway's record;
//! only then does the change go through the single write path (monotonic
//! and idempotent, so duplicates and any order are harmless, R7.5). The
//! answer is `success` only once the change is committed; anything refused
//! is answered `fail` and writes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jianlian_alipay::notify::{ACK_BODY, Notification};
use jianlian_core::ids::UpstreamOrderNo;
use jianlian_core::trade::{Observation, TradeSnapshot};
use jianlian_store::StoreError;

use crate::service::Service;

/// Why a notification was refused (logged; the sender only sees `fail`).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("unknown trade {0}")]
    UnknownTrade(String),
    #[error("recording failed: {0}")]
    Store(#[from] StoreError),
}

/// The handler.
pub async fn handle(State(svc): State<Arc<Service>>, body: Bytes) -> Response {
    match receive(&svc, &body).await {
        Ok(changed) => {
            metrics::counter!("jianlian_upstream_notifications_total", "result" => if changed { "applied" } else { "duplicate" }).increment(1);
            (StatusCode::OK, ACK_BODY).into_response()
        }
        Err(e) => {
            let status = match &e {
                Refused::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            metrics::counter!("jianlian_upstream_notifications_total", "result" => "refused")
                .increment(1);
            tracing::warn!(error = %e, "notification refused");
            (status, "fail").into_response()
        }
    }
}

/// Verifies, checks and applies one notification; `Ok(changed)`.
pub async fn receive(svc: &Service, body: &[u8]) -> Result<bool, Refused> {
    let n = Notification::parse(body).map_err(|e| Refused::Unreadable(e.to_string()))?;
    let upstream = &svc.settings.upstream;
    n.verify(&upstream.alipay_public_key, Some(upstream.sign_type))
        .map_err(|e| Refused::Signature(e.to_string()))?;
    if n.get("app_id") != Some(upstream.app_id.as_str()) {
        return Err(Refused::Mismatch(format!(
            "app_id {:?} is not the acquirer's app",
            n.get("app_id")
        )));
    }
    // Alipay names the seller in every trade notification (the sandbox does
    // too): one without it did not come from Alipay about our trade.
    match n.get("seller_id") {
        Some(seller) if seller == upstream.pid.as_str() => {}
        Some(seller) => {
            return Err(Refused::Mismatch(format!(
                "seller_id {seller} is not the acquirer's PID"
            )));
        }
        None => {
            return Err(Refused::Mismatch(
                "seller_id is missing (Alipay always sends it)".into(),
            ));
        }
    }
    let out_trade_no = n
        .get("out_trade_no")
        .ok_or_else(|| Refused::Unreadable("out_trade_no is missing".into()))?;
    let no = UpstreamOrderNo::parse(out_trade_no)
        .map_err(|_| Refused::UnknownTrade(out_trade_no.to_owned()))?;
    let trade = svc
        .store
        .trade_by_upstream_order(&no)
        .await?
        .ok_or_else(|| Refused::UnknownTrade(out_trade_no.to_owned()))?;
    let snapshot = TradeSnapshot::from_notification(|k| n.get(k))
        .map_err(|e| Refused::Unreadable(e.to_string()))?;
    match snapshot.total_amount {
        Some(amount) if amount == trade.total_amount => {}
        other => {
            return Err(Refused::Mismatch(format!(
                "total_amount {:?} is not the trade's {}",
                other.map(|a| a.to_yuan()),
                trade.total_amount.to_yuan()
            )));
        }
    }
    let (_, changed) = svc
        .store
        .apply_observation(trade.id, &Observation::Notified(snapshot), svc.now())
        .await
        .map_err(|e| match e {
            StoreError::Transition(t) => Refused::Mismatch(t.to_string()),
            other => Refused::Store(other),
        })?;
    Ok(changed)
}
