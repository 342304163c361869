//! Issue item 11: `/healthz`, Prometheus `/metrics` (requests, upstream
//! latency, trades by state, trades in unknown state, notification lag and
//! failures, jobs due), and the admin API behind its token.

use serde_json::Value;

use crate::common::*;
use crate::e2e;

async fn health_metrics_and_admin(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    assert!(w.pay(&w.channel, &smid, "O1", "10.00").await.is_success());
    assert!(matches!(
        w.pay(&w.channel, &smid, "O2", "1000.00").await,
        jianlian_alipay::Outcome::InProgress(_)
    ));
    w.receiver.answer_next(&[Answer::Fail]);
    w.settle().await;
    let http = reqwest::Client::new();
    let base = w.gateway.base_url();
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "jianlian_channel_requests_total{method=\"alipay.trade.pay\",code=\"10000\"}",
        "jianlian_upstream_seconds",
        "jianlian_trades{state=\"paid\"} 1",
        "jianlian_trades{state=\"paying\"} 1",
        "jianlian_trades_unknown 0",
        "jianlian_jobs_due ",
        "jianlian_notifications_pending ",
        "jianlian_notification_oldest_pending_seconds ",
        "jianlian_notifications_total{result=\"failed\"}",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }
    w.advance(240).await;
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("jianlian_notification_lag_seconds"), "{text}");

    let admin = format!("{base}/admin/merchants?q=M1");
    assert_eq!(http.get(&admin).send().await.unwrap().status(), 401);
    let wrong = http.get(&admin).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok: Value = serde_json::from_str(
        &http
            .get(&admin)
            .bearer_auth("test-admin-token-0123456789")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ok[0]["smid"], Value::from(smid));
    let ledger: Value = serde_json::from_str(
        &http
            .get(format!("{base}/admin/ledger/check"))
            .bearer_auth("test-admin-token-0123456789")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ledger["balanced"], Value::from(true));
    let replay = http
        .post(format!("{base}/admin/dead-letters/999/replay"))
        .bearer_auth("test-admin-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 404, "no such dead letter");
    assert_eq!(ledger["accounts"]["alipay_clearing"], Value::from("10.00"));
}
e2e!(health_metrics_and_admin);
