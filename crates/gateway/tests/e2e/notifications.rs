//! R7 notifications in and out: Alipay's notification is verified, checked
//! against the record and applied once however often and in whatever order
//! it comes; the channel is notified in Alipay's format signed with the
//! gateway's key, retried at 4m, 10m, 10m, 1h, 2h, 6h, 15h, then kept as a
//! dead letter that an operator can replay. Forged, tampered and replayed
//! notifications write nothing.

use jianlian_alipay::api::trade::{SubMerchant, TradeOrder, TradePrecreate};
use jianlian_alipay::notify::build_notification;
use jianlian_alipay::{Charset, Outcome, SignType};
use jianlian_core::notify::OutboxStatus;
use jianlian_core::trade::TradeState;

use crate::common::*;
use crate::e2e;

fn precreate(smid: &str, otn: &str, amount: &str) -> TradePrecreate {
    TradePrecreate {
        order: TradeOrder {
            out_trade_no: otn.into(),
            total_amount: yuan(amount),
            subject: "扫码点餐".into(),
            store_id: Some("S1".into()),
            terminal_id: Some("T1".into()),
            sub_merchant: Some(SubMerchant::new(smid)),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Precreates, lets the buyer scan and pay; returns the QR code.
async fn precreate_and_pay(w: &World, smid: &str, otn: &str, amount: &str) -> String {
    let out = w
        .channel
        .call_notify(&precreate(smid, otn, amount), &w.receiver.url)
        .await;
    let body = match out {
        Outcome::Success(r) => r.body,
        other => panic!("{other:?}"),
    };
    assert_eq!(body.out_trade_no.as_deref(), Some(otn));
    let qr = body.qr_code.unwrap();
    w.sandbox.scan_qr(&qr, &w.buyer, true).await.unwrap();
    w.settle().await;
    qr
}

async fn precreate_is_completed_by_notification(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    precreate_and_pay(&w, &smid, "QR1", "36.50").await;
    let t = w.trade(&w.channel, "QR1").await;
    assert_eq!(
        t.state,
        TradeState::Paid,
        "learned from Alipay's notification"
    );
    assert_eq!(t.progress.polls, 0, "no poll was needed");
    let got = w.receiver.all();
    assert_eq!(got.len(), 1);
    let n = &got[0];
    n.verify(w.gateway_key.public_key(), Some(SignType::Rsa2))
        .expect("signed with the gateway's key");
    assert_eq!(n.get("out_trade_no"), Some("QR1"), "the channel's number");
    assert_eq!(n.get("app_id"), Some(w.channel.app_id.as_str()));
    assert_eq!(n.get("trade_status"), Some("TRADE_SUCCESS"));
    assert_eq!(n.get("total_amount"), Some("36.50"));
    assert_eq!(n.get("notify_type"), Some("trade_status_sync"));
    assert!(n.get("notify_time").is_some());
    assert!(n.get("gmt_payment").is_some());
    assert!(
        n.get("fund_bill_list").unwrap().contains("fundChannel"),
        "R7.6 camelCase"
    );
    let outbox = w
        .gateway
        .service()
        .store
        .outbox_of_trade(t.id)
        .await
        .unwrap();
    assert_eq!(outbox[0].status, OutboxStatus::Delivered);
}
e2e!(precreate_is_completed_by_notification);

/// R7.5: duplicated notifications are applied once.
async fn duplicates_are_harmless(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.sandbox
        .add_fault(jianlian_sandbox::FaultRule {
            id: 0,
            method: None,
            out_trade_no: None,
            amount: Some(yuan("12.00")),
            action: jianlian_sandbox::FaultAction::NotifyDuplicate,
            times: None,
        })
        .await
        .unwrap();
    precreate_and_pay(&w, &smid, "QR2", "12.00").await;
    w.advance(600).await;
    let store = &w.gateway.service().store;
    let t = w.trade(&w.channel, "QR2").await;
    assert_eq!(t.state, TradeState::Paid);
    let journals = store.journals().await.unwrap();
    assert_eq!(
        journals.iter().filter(|j| j.trade() == t.id).count(),
        1,
        "booked once"
    );
    assert_eq!(w.receiver.all().len(), 1, "the channel hears it once");
}
e2e!(duplicates_are_harmless);

/// R7.4: the channel's failures are retried on Alipay's schedule; the
/// ninth failure would have no slot: the message is a dead letter, replayable.
async fn channel_retries_then_dead_letter_then_replay(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.receiver.answer_next(&[Answer::Fail; 8]);
    precreate_and_pay(&w, &smid, "QR3", "5.00").await;
    assert_eq!(w.receiver.all().len(), 1);
    let mut expected = 1;
    for gap in [240, 600, 600, 3600, 7200, 21600, 54000] {
        w.advance(gap - 1).await;
        assert_eq!(
            w.receiver.all().len(),
            expected,
            "nothing before the gap ends"
        );
        w.advance(1).await;
        expected += 1;
        assert_eq!(
            w.receiver.all().len(),
            expected,
            "attempt {expected} after {gap} s"
        );
    }
    let store = &w.gateway.service().store;
    let dead = jianlian_gateway::ops::dead_letters(store, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 8);
    w.advance(86_400).await;
    assert_eq!(w.receiver.all().len(), 8, "a dead letter is not retried");
    w.receiver.answer_next(&[Answer::Success]);
    jianlian_gateway::ops::replay_dead_letter(store, dead[0].id, w.clock_now())
        .await
        .unwrap();
    w.settle().await;
    assert_eq!(w.receiver.all().len(), 9);
    assert!(
        jianlian_gateway::ops::dead_letters(store, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .outbox_message(dead[0].id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OutboxStatus::Delivered
    );
}
e2e!(channel_retries_then_dead_letter_then_replay);

/// Notifications Alipay did not send (or not like this) are refused with
/// `fail` and write nothing; a replayed genuine one changes nothing.
async fn forged_tampered_and_replayed_notifications(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let out = w
        .channel
        .call_notify(&precreate(&smid, "QR4", "20.00"), &w.receiver.url)
        .await;
    assert!(out.is_success());
    let t = w.trade(&w.channel, "QR4").await;
    let url = format!("{}/notify/alipay", w.gateway.base_url());
    let fields = |amount: &str, app_id: &str, seller: &str| -> Vec<(String, String)> {
        vec![
            ("notify_type".into(), "trade_status_sync".into()),
            (
                "notify_id".into(),
                "2026030200222100000000000000000001".into(),
            ),
            ("notify_time".into(), "2026-03-02 10:00:05".into()),
            ("app_id".into(), app_id.into()),
            ("seller_id".into(), seller.into()),
            ("out_trade_no".into(), t.upstream_order_no.to_string()),
            ("trade_no".into(), "2026030222001400000000000042".into()),
            ("trade_status".into(), "TRADE_SUCCESS".into()),
            ("total_amount".into(), amount.into()),
            ("receipt_amount".into(), amount.into()),
            ("gmt_payment".into(), "2026-03-02 10:00:04".into()),
            ("version".into(), "1.0".into()),
        ]
    };
    let sign = |fields: &[(String, String)], key: &jianlian_alipay::PrivateKey| {
        build_notification(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            key,
            SignType::Rsa2,
            Charset::Utf8,
        )
        .unwrap()
    };
    let http = reqwest::Client::new();
    let post = |body: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            r.text().await.unwrap()
        }
    };
    let app = w.acquirer.app_id.clone();
    let pid = w.acquirer.pid.clone();
    let rows = w.rows().await;
    let forger = jianlian_alipay::PrivateKey::generate_2048().unwrap();
    assert_eq!(
        post(sign(&fields("20.00", &app, &pid), &forger)).await,
        "fail",
        "forged"
    );
    let genuine = sign(&fields("20.00", &app, &pid), &w.alipay_key);
    assert_eq!(
        post(genuine.replace("total_amount=20.00", "total_amount=0.01")).await,
        "fail",
        "tampered"
    );
    assert_eq!(
        post(sign(&fields("0.01", &app, &pid), &w.alipay_key)).await,
        "fail",
        "wrong amount"
    );
    assert_eq!(
        post(sign(
            &fields("20.00", "2021999999999999", &pid),
            &w.alipay_key
        ))
        .await,
        "fail",
        "other app"
    );
    assert_eq!(
        post(sign(
            &fields("20.00", &app, "2088999999999999"),
            &w.alipay_key
        ))
        .await,
        "fail",
        "other seller"
    );
    // Alipay always names the seller: a notification without one is not Alipay's.
    let sellerless: Vec<(String, String)> = fields("20.00", &app, &pid)
        .into_iter()
        .filter(|(k, _)| k != "seller_id")
        .collect();
    assert_eq!(
        post(sign(&sellerless, &w.alipay_key)).await,
        "fail",
        "no seller"
    );
    let mut unknown = fields("20.00", &app, &pid);
    unknown[5].1 = "JL20260302999999999999".into();
    assert_eq!(
        post(sign(&unknown, &w.alipay_key)).await,
        "fail",
        "unknown trade"
    );
    assert_eq!(w.rows().await, rows, "refusals wrote nothing");
    assert_eq!(post(genuine.clone()).await, "success");
    let after_first = w.rows().await;
    assert_eq!(w.trade(&w.channel, "QR4").await.state, TradeState::Paid);
    assert_eq!(
        post(genuine).await,
        "success",
        "a duplicate is acknowledged"
    );
    assert_eq!(w.rows().await, after_first, "and changes nothing");
}
e2e!(forged_tampered_and_replayed_notifications);

fn create(
    smid: &str,
    otn: &str,
    amount: &str,
    buyer: &str,
) -> jianlian_alipay::api::trade::TradeCreate {
    jianlian_alipay::api::trade::TradeCreate {
        buyer_id: Some(buyer.into()),
        order: precreate(smid, otn, amount).order,
        ..Default::default()
    }
}

/// R5.2, R6: a trade for a known buyer; the buyer pays in the cashier and
/// Alipay's notification completes it. An unpaid one is closed on request.
async fn create_paid_by_notification_and_close(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let out = w
        .channel
        .call_notify(&create(&smid, "CR1", "15.00", &w.buyer), &w.receiver.url)
        .await;
    let trade_no = match out {
        Outcome::Success(r) => r.body.trade_no.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(w.trade(&w.channel, "CR1").await.state, TradeState::Paying);
    w.sandbox.confirm(&trade_no).await.unwrap();
    w.settle().await;
    assert_eq!(w.trade(&w.channel, "CR1").await.state, TradeState::Paid);
    let out = w
        .channel
        .call_notify(&create(&smid, "CR2", "16.00", &w.buyer), &w.receiver.url)
        .await;
    assert!(out.is_success(), "{out:?}");
    let close = jianlian_alipay::api::trade::TradeClose {
        trade: jianlian_alipay::api::trade::TradeRef::out_trade_no("CR2"),
        ..Default::default()
    };
    let closed = w.channel.call(&close).await.success().unwrap();
    assert_eq!(closed.out_trade_no.as_deref(), Some("CR2"));
    w.settle().await;
    assert_eq!(w.trade(&w.channel, "CR2").await.state, TradeState::Closed);
    let mut statuses: Vec<String> = w
        .receiver
        .all()
        .iter()
        .map(|n| {
            format!(
                "{}:{}",
                n.get("out_trade_no").unwrap(),
                n.get("trade_status").unwrap()
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec!["CR1:TRADE_SUCCESS", "CR2:TRADE_CLOSED"]);
}
e2e!(create_paid_by_notification_and_close);

/// R3.5, R5.1: a QR nobody scans is polled once at its expiry, then
/// cancelled; the channel hears it closed.
async fn unscanned_qr_is_closed_at_expiry(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let mut req = precreate(&smid, "QR9", "9.00");
    req.order.timeout_express = Some("30m".into());
    assert!(
        w.channel
            .call_notify(&req, &w.receiver.url)
            .await
            .is_success()
    );
    w.advance(29 * 60).await;
    let t = w.trade(&w.channel, "QR9").await;
    assert_eq!((t.state, t.progress.polls), (TradeState::Paying, 0));
    w.advance(60).await;
    let t = w.trade(&w.channel, "QR9").await;
    assert_eq!(t.progress.polls, 1, "one last poll at expiry");
    assert!(
        matches!(t.state, TradeState::Cancelled { .. }),
        "{:?}",
        t.state
    );
    let got = w.receiver.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].get("trade_status"), Some("TRADE_CLOSED"));
}
e2e!(unscanned_qr_is_closed_at_expiry);
