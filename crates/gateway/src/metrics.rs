//! Prometheus metrics at `/metrics`. Counters and latency summaries are
//! recorded where things happen (`metrics` macros: channel requests by method
//! and code, upstream latency by method and outcome, notifications delivered
//! and failed, notification lag, jobs run); gauges that describe the books
//! (trades by state, trades in unknown state, jobs due, pending and dead
//! notifications, the oldest pending notification's age) are read from the
//! database at scrape time, so every gateway process reports the same truth.

use std::fmt::Write as _;
use std::sync::OnceLock;

use jianlian_core::notify::OutboxStatus;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::service::Service;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; `None` when another recorder was
/// installed first (then only the database gauges are reported).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .as_ref()
}

/// Most pending notifications read to measure the backlog.
const PENDING_SCAN_MAX: u32 = 1_000;

/// The text exposition: recorded metrics, then the database gauges.
pub async fn render(svc: &Service) -> Result<String, jianlian_store::StoreError> {
    let mut out = handle().map(PrometheusHandle::render).unwrap_or_default();
    let now = svc.now();
    let counts = svc.store.trade_counts().await?;
    let _ = writeln!(out, "# HELP jianlian_trades Trades by state.");
    let _ = writeln!(out, "# TYPE jianlian_trades gauge");
    let mut unknown = 0;
    for state in [
        "created",
        "unknown",
        "paying",
        "paid",
        "failed",
        "closed",
        "cancelled",
        "refunded",
        "finished",
    ] {
        let n = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        if state == "unknown" {
            unknown = n;
        }
        let _ = writeln!(out, "jianlian_trades{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP jianlian_trades_unknown Trades whose outcome is not known yet."
    );
    let _ = writeln!(out, "# TYPE jianlian_trades_unknown gauge");
    let _ = writeln!(out, "jianlian_trades_unknown {unknown}");
    let due = svc.store.jobs_due(now).await?;
    let _ = writeln!(out, "# HELP jianlian_jobs_due Queued jobs due now.");
    let _ = writeln!(out, "# TYPE jianlian_jobs_due gauge");
    let _ = writeln!(out, "jianlian_jobs_due {due}");
    let pending = svc
        .store
        .outbox_in_status(OutboxStatus::Pending, PENDING_SCAN_MAX)
        .await?;
    let oldest = pending
        .iter()
        .map(|m| now.duration_since(m.created_at).as_secs_f64().max(0.0))
        .fold(0.0_f64, f64::max);
    let dead = svc
        .store
        .outbox_in_status(OutboxStatus::Dead, PENDING_SCAN_MAX)
        .await?
        .len();
    let _ = writeln!(
        out,
        "# HELP jianlian_notifications_pending Channel notifications not yet delivered."
    );
    let _ = writeln!(out, "# TYPE jianlian_notifications_pending gauge");
    let _ = writeln!(out, "jianlian_notifications_pending {}", pending.len());
    let _ = writeln!(
        out,
        "# HELP jianlian_notification_oldest_pending_seconds Age of the oldest undelivered notification."
    );
    let _ = writeln!(
        out,
        "# TYPE jianlian_notification_oldest_pending_seconds gauge"
    );
    let _ = writeln!(out, "jianlian_notification_oldest_pending_seconds {oldest}");
    let _ = writeln!(
        out,
        "# HELP jianlian_notifications_dead Dead letters waiting for an operator."
    );
    let _ = writeln!(out, "# TYPE jianlian_notifications_dead gauge");
    let _ = writeln!(out, "jianlian_notifications_dead {dead}");
    Ok(out)
}
