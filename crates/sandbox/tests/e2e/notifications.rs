//! Notifications (R7): signed form POSTs for precreate/create trades and
//! refunds, retried on the virtual clock at 4m, 10m, 10m, 1h, 2h, 6h, 15h
//! until the answer is exactly `success`, with a stable notify_id; and the
//! notification faults.

use jianlian_alipay::api::trade::{TradeCreate, TradePrecreate, TradeRef, TradeRefund};
use jianlian_sandbox::model::NoticeState;
use jianlian_sandbox::{BuyerSpec, FaultAction, FaultRule};

use crate::common::*;

fn statuses(r: &Receiver, t: &TestApp) -> Vec<String> {
    r.received(&t.alipay_key)
        .iter()
        .map(|n| n.get("trade_status").unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn precreate_notifies_created_and_paid() {
    let t = TestApp::new().await;
    let rx = Receiver::start().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let pre = TradePrecreate {
        order: t.order("N1", "12.34"),
        ..Default::default()
    };
    let qr = t
        .call_notify(&pre, &rx.url)
        .await
        .success()
        .unwrap()
        .qr_code
        .unwrap();
    t.sandbox.scan_qr(&qr, &buyer, true).await.unwrap();
    t.sandbox.run_due().await.unwrap();
    assert_eq!(statuses(&rx, &t), vec!["WAIT_BUYER_PAY", "TRADE_SUCCESS"]);
    let paid = &rx.received(&t.alipay_key)[1];
    assert_eq!(paid.get("total_amount"), Some("12.34"));
    assert_eq!(paid.get("out_trade_no"), Some("N1"));
    assert_eq!(paid.get("seller_id"), Some(t.app.pid.as_str()));
    // R7.6: camelCase in notifications.
    assert!(
        paid.get("fund_bill_list")
            .unwrap()
            .contains("\"fundChannel\":\"ALIPAYACCOUNT\"")
    );
    assert_eq!(paid.get("notify_id").unwrap().len(), 34);
    // A refund notifies too, with refund_fee and out_biz_no.
    let r = TradeRefund {
        trade: TradeRef::out_trade_no("N1"),
        refund_amount: yuan("2.00"),
        out_request_no: Some("rf1".into()),
        ..Default::default()
    };
    assert!(t.call(&r).await.is_success());
    t.sandbox.run_due().await.unwrap();
    let all = rx.received(&t.alipay_key);
    let refund = all.last().unwrap();
    assert_eq!(refund.get("refund_fee"), Some("2.00"));
    assert_eq!(refund.get("out_biz_no"), Some("rf1"));
    assert_eq!(refund.get("trade_status"), Some("TRADE_SUCCESS"));
}

#[tokio::test]
async fn retries_follow_the_schedule_until_success() {
    let t = TestApp::new().await;
    let rx = Receiver::start().await;
    rx.answer(&["fail", "", "SUCCESS", "success "]);
    let buyer = t.buyer(BuyerSpec::default()).await;
    let create = TradeCreate {
        buyer_id: Some(buyer),
        order: t.order("N2", "1.00"),
        ..Default::default()
    };
    assert!(t.call_notify(&create, &rx.url).await.is_success());
    t.sandbox.run_due().await.unwrap();
    assert_eq!(rx.bodies.lock().unwrap().len(), 1);
    t.advance(3 * 60 + 59).await;
    assert_eq!(rx.bodies.lock().unwrap().len(), 1, "not before 4 minutes");
    t.advance(1).await;
    assert_eq!(rx.bodies.lock().unwrap().len(), 2);
    t.advance(20 * 60).await; // +10m and +10m
    assert_eq!(rx.bodies.lock().unwrap().len(), 4);
    t.advance(3600).await; // the fifth attempt gets `success`
    assert_eq!(rx.bodies.lock().unwrap().len(), 5);
    t.advance(24 * 3600).await;
    assert_eq!(rx.bodies.lock().unwrap().len(), 5, "no retry after success");
    let ids: Vec<String> = rx
        .received(&t.alipay_key)
        .iter()
        .map(|n| n.get("notify_id").unwrap().to_owned())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "notify_id is stable");
    let times: Vec<String> = rx
        .received(&t.alipay_key)
        .iter()
        .map(|n| n.get("notify_time").unwrap().to_owned())
        .collect();
    assert_eq!(
        times,
        vec![
            "2026-03-02 10:00:00",
            "2026-03-02 10:04:00",
            "2026-03-02 10:14:00",
            "2026-03-02 10:24:00",
            "2026-03-02 11:24:00"
        ]
    );
    let notice = &t.sandbox.notifications(Some("N2")).await[0];
    assert_eq!(notice.state, NoticeState::Delivered);
    assert_eq!(notice.attempts.len(), 5);
    assert!(notice.attempts[0].outcome.contains("fail"));
}

#[tokio::test]
async fn eight_attempts_then_give_up() {
    let t = TestApp::new().await;
    let rx = Receiver::start().await;
    rx.answer(&["no"; 20]);
    let buyer = t.buyer(BuyerSpec::default()).await;
    let create = TradeCreate {
        buyer_id: Some(buyer),
        order: t.order("N3", "1.00"),
        ..Default::default()
    };
    assert!(t.call_notify(&create, &rx.url).await.is_success());
    t.advance(2 * 24 * 3600).await;
    assert_eq!(
        rx.bodies.lock().unwrap().len(),
        8,
        "8 deliveries within 25 hours"
    );
    let notice = &t.sandbox.notifications(Some("N3")).await[0];
    assert_eq!(notice.state, NoticeState::GaveUp);
    assert_eq!(notice.next_due, None);
    // R7.4: the first attempt at once, then 4m, 10m, 10m, 1h, 2h, 6h, 15h
    // after the one before, each at its own virtual time (25 h 24 m in all).
    let expected = [
        "2026-03-02 10:00:00",
        "2026-03-02 10:04:00",
        "2026-03-02 10:14:00",
        "2026-03-02 10:24:00",
        "2026-03-02 11:24:00",
        "2026-03-02 13:24:00",
        "2026-03-02 19:24:00",
        "2026-03-03 10:24:00",
    ];
    let attempts: Vec<String> = notice
        .attempts
        .iter()
        .map(|a| jianlian_alipay::time::format_beijing(a.at))
        .collect();
    assert_eq!(attempts, expected);
    assert_eq!(
        notice.attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u32>>()
    );
    assert!(notice.attempts.iter().all(|a| !a.acknowledged));
    // What the receiver saw: the same eight times as notify_time, one notify_id.
    let received = rx.received(&t.alipay_key);
    let times: Vec<&str> = received
        .iter()
        .map(|n| n.get("notify_time").unwrap())
        .collect();
    assert_eq!(times, expected);
    assert!(
        received
            .iter()
            .all(|n| n.get("notify_id") == received[0].get("notify_id"))
    );
}

#[tokio::test]
async fn notification_faults() {
    let t = TestApp::new().await;
    let rx = Receiver::start().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // Failures injected before the receiver is reached.
    t.sandbox
        .add_fault(FaultRule {
            id: 0,
            method: None,
            out_trade_no: Some("NF".into()),
            amount: None,
            action: FaultAction::NotifyFail,
            times: Some(1),
        })
        .await
        .unwrap();
    let create = TradeCreate {
        buyer_id: Some(buyer.clone()),
        order: t.order("NF", "1.00"),
        ..Default::default()
    };
    assert!(t.call_notify(&create, &rx.url).await.is_success());
    t.sandbox.run_due().await.unwrap();
    assert_eq!(rx.bodies.lock().unwrap().len(), 0);
    t.advance(4 * 60).await;
    assert_eq!(rx.bodies.lock().unwrap().len(), 1);
    assert_eq!(
        t.sandbox.notifications(Some("NF")).await[0].attempts[0].outcome,
        "injected failure"
    );
    // Duplicates (R7.5: "success" can arrive twice).
    t.sandbox
        .add_fault(FaultRule {
            id: 0,
            method: None,
            out_trade_no: Some("ND".into()),
            amount: None,
            action: FaultAction::NotifyDuplicate,
            times: None,
        })
        .await
        .unwrap();
    let pre = TradePrecreate {
        order: t.order("ND", "2.00"),
        ..Default::default()
    };
    let qr = t
        .call_notify(&pre, &rx.url)
        .await
        .success()
        .unwrap()
        .qr_code
        .unwrap();
    rx.bodies.lock().unwrap().clear();
    t.sandbox.scan_qr(&qr, &buyer, true).await.unwrap();
    t.sandbox.run_due().await.unwrap();
    assert_eq!(
        statuses(&rx, &t),
        vec![
            "WAIT_BUYER_PAY",
            "WAIT_BUYER_PAY",
            "TRADE_SUCCESS",
            "TRADE_SUCCESS"
        ]
    );
    // Shuffled: held, then newest first (R7.5: "created" after "success").
    t.sandbox
        .add_fault(FaultRule {
            id: 0,
            method: None,
            out_trade_no: Some("NS".into()),
            amount: None,
            action: FaultAction::NotifyShuffle { hold_seconds: 30 },
            times: None,
        })
        .await
        .unwrap();
    let pre = TradePrecreate {
        order: t.order("NS", "3.00"),
        ..Default::default()
    };
    let qr = t
        .call_notify(&pre, &rx.url)
        .await
        .success()
        .unwrap()
        .qr_code
        .unwrap();
    rx.bodies.lock().unwrap().clear();
    t.sandbox.scan_qr(&qr, &buyer, true).await.unwrap();
    t.sandbox.run_due().await.unwrap();
    assert!(rx.bodies.lock().unwrap().is_empty(), "held");
    t.advance(30).await;
    assert_eq!(statuses(&rx, &t), vec!["TRADE_SUCCESS", "WAIT_BUYER_PAY"]);
}
