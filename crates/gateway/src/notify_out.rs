//! Notifications to channels (R7): one outbox row, delivered to the channel's
//! `notify_url` as Alipay would deliver it (a form POST of `trade_status_sync`
//! fields, signed with the gateway's key, `notify_time` and `charset` added at
//! send time), accepted only when the body is exactly `success`. A failure
//! waits for the next gap of the configured schedule; after the last one the
//! row is a dead letter, listable and replayable.
//!
//! The notify-URL policy is checked again at every delivery, after resolving
//! the host (a public name may resolve to a private address), and the
//! connection goes to the address that was checked.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use jianlian_alipay::notify::{ACK_BODY, build_notification};
use jianlian_alipay::time::format_beijing;
use jianlian_alipay::{Charset, SignType};
use jianlian_core::notify::{
    NotifyTarget, OutboxMessage, OutboxStatus, check_ip, check_notify_url,
};
use jianlian_store::{Job, StoreError};
use jiff::Timestamp;

use crate::service::Service;

/// Most bytes of a channel's answer read (it should be 7: `success`).
const ANSWER_BYTES_MAX: usize = 1_024;

/// Delivers the outbox row `job` names.
pub(crate) async fn deliver(
    svc: &Service,
    job: &Job,
    now: Timestamp,
) -> Result<crate::worker::Done, String> {
    let id = job
        .payload
        .get("outbox")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| format!("job {} has no outbox id", job.id))?;
    let message = svc
        .store
        .outbox_message(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("outbox row {id} is missing"))?;
    if message.status != OutboxStatus::Pending {
        svc.store.complete(job, now).await.or_else(lease_lost)?;
        return Ok(crate::worker::Done::Quiet);
    }
    let result = send(svc, &message, now).await;
    match result {
        Ok(()) => {
            svc.store
                .notification_delivered(job, now)
                .await
                .or_else(lease_lost)?;
            let lag = now
                .duration_since(message.created_at)
                .as_secs_f64()
                .max(0.0);
            metrics::histogram!("jianlian_notification_lag_seconds").record(lag);
            metrics::counter!("jianlian_notifications_total", "result" => "delivered").increment(1);
            tracing::info!(outbox = id, trade = %message.trade, "notification delivered");
        }
        Err(error) => {
            metrics::counter!("jianlian_notifications_total", "result" => "failed").increment(1);
            let status = match svc
                .store
                .notification_failed(job, &error, now, &svc.settings.retry_schedule)
                .await
            {
                Ok(status) => status,
                Err(StoreError::LeaseLost { .. }) => return Ok(crate::worker::Done::Quiet),
                Err(e) => return Err(e.to_string()),
            };
            if status == OutboxStatus::Dead {
                metrics::counter!("jianlian_notifications_dead_total").increment(1);
                tracing::warn!(outbox = id, trade = %message.trade, %error, "notification is a dead letter");
            } else {
                tracing::info!(outbox = id, %error, "notification failed; will retry");
            }
        }
    }
    Ok(crate::worker::Done::Acted)
}

fn lease_lost(e: StoreError) -> Result<(), String> {
    match e {
        StoreError::LeaseLost { .. } => Ok(()),
        other => Err(other.to_string()),
    }
}

/// The signed form body of a message sent at `now`.
pub fn body_of(svc: &Service, message: &OutboxMessage, now: Timestamp) -> Result<String, String> {
    let notify_time = format_beijing(now);
    let mut fields: Vec<(&str, &str)> = message
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.push(("notify_time", &notify_time));
    build_notification(
        fields,
        &svc.settings.gateway_key,
        SignType::Rsa2,
        Charset::Utf8,
    )
    .map_err(|e| format!("signing the notification: {e}"))
}

async fn send(svc: &Service, message: &OutboxMessage, now: Timestamp) -> Result<(), String> {
    let channel = svc
        .store
        .channel(&message.channel)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("channel {} is missing", message.channel))?;
    let policy = svc.settings.address_policy;
    let target = check_notify_url(&message.notify_url, &channel.notify_hosts, policy)
        .map_err(|e| e.to_string())?;
    let body = body_of(svc, message, now)?;
    let client = client_for(svc, &target).await?;
    let response = client
        .post(&target.url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", target.url))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let answer = &bytes[..bytes.len().min(ANSWER_BYTES_MAX)];
    if answer == ACK_BODY.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "the channel answered HTTP {status} {:?}, not \"success\"",
            String::from_utf8_lossy(answer)
        ))
    }
}

/// The shared client for an IP literal; for a host name, one pinned to the
/// addresses that passed the policy (so DNS cannot switch them afterwards).
async fn client_for(svc: &Service, target: &NotifyTarget) -> Result<reqwest::Client, String> {
    if target.ip.is_some() {
        return Ok(svc.http.clone());
    }
    let port = port_of(&target.url);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), port))
        .await
        .map_err(|e| format!("resolving {}: {e}", target.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{} resolves to no address", target.host));
    }
    for addr in &addrs {
        let ip: IpAddr = addr.ip();
        check_ip(ip, svc.settings.address_policy).map_err(|e| format!("{}: {e}", target.host))?;
    }
    let timeout: Duration = svc.settings.notify_timeout;
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&target.host, &addrs)
        .build()
        .map_err(|e| e.to_string())
}

fn port_of(url: &str) -> u16 {
    let https = url.starts_with("https://");
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let explicit = if authority.starts_with('[') {
        authority.rsplit_once("]:").map(|(_, p)| p)
    } else {
        authority.rsplit_once(':').map(|(_, p)| p)
    };
    explicit
        .and_then(|p| p.parse().ok())
        .unwrap_or(if https { 443 } else { 80 })
}
