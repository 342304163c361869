//! R4 barcode payment through the gateway: instant success, the password
//! case (10003) polled every 5 s twelve times then cancelled, unknown answers
//! resolved by query and cancel, failures passed through, and the terminal
//! reading the outcome with query.

use jianlian_alipay::api::trade::{TradeQuery, TradeRef, TradeStatus};
use jianlian_alipay::{Code, Outcome};
use jianlian_core::trade::TradeState;

use crate::common::*;
use crate::e2e;

fn query(otn: &str) -> TradeQuery {
    TradeQuery {
        trade: TradeRef::out_trade_no(otn),
        ..Default::default()
    }
}

async fn instant_payment_then_query(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let paid = w.pay(&w.channel, &smid, "ORDER1", "88.88").await;
    let body = match paid {
        Outcome::Success(r) => r.body,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        body.out_trade_no.as_deref(),
        Some("ORDER1"),
        "the channel sees its own number"
    );
    assert_eq!(body.total_amount, Some(yuan("88.88")));
    let trade = w.trade(&w.channel, "ORDER1").await;
    assert_eq!(trade.state, TradeState::Paid);
    let upstream = w.upstream_trade(&trade).await.unwrap();
    assert_eq!(
        upstream.merchant_order_no.as_deref(),
        Some("ORDER1"),
        "R3.3"
    );
    assert_eq!(upstream.smid, smid, "R3.1");
    assert_eq!(upstream.store_id.as_deref(), Some("S1"));
    assert_eq!(upstream.terminal_id.as_deref(), Some("T1"));
    let q = w.channel.call(&query("ORDER1")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(q.out_trade_no.as_deref(), Some("ORDER1"));
    assert_eq!(q.trade_no, body.trade_no);
    let _ = Code::Success;
}
e2e!(instant_payment_then_query);

fn fault(
    method: &str,
    amount: &str,
    action: jianlian_sandbox::FaultAction,
) -> jianlian_sandbox::FaultRule {
    jianlian_sandbox::FaultRule {
        id: 0,
        method: Some(method.into()),
        out_trade_no: None,
        amount: Some(yuan(amount)),
        action,
        times: Some(1),
    }
}

fn statuses(w: &World) -> Vec<String> {
    w.receiver
        .all()
        .iter()
        .map(|n| n.get("trade_status").unwrap_or_default().to_owned())
        .collect()
}

/// R4.2, R12.3: 10003 → a poll every 5 s, 12 polls, then an immediate cancel.
async fn password_case_is_polled_twelve_times_then_cancelled(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let out = w.pay(&w.channel, &smid, "BIG1", "1200.00").await;
    let Outcome::InProgress(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.body.out_trade_no.as_deref(), Some("BIG1"));
    let trade = w.trade(&w.channel, "BIG1").await;
    assert_eq!(trade.state, TradeState::Paying);
    for n in 1..=11 {
        w.advance(5).await;
        let t = w.trade(&w.channel, "BIG1").await;
        assert_eq!(t.progress.polls, n, "poll {n} after {} s", 5 * n);
        assert_eq!(t.state, TradeState::Paying);
        // The terminal, told 10003, reads WAIT_BUYER_PAY meanwhile.
        if n == 3 {
            let q = w.channel.call(&query("BIG1")).await.success().unwrap();
            assert_eq!(q.trade_status, Some(TradeStatus::WaitBuyerPay));
        }
    }
    w.advance(5).await;
    let t = w.trade(&w.channel, "BIG1").await;
    assert_eq!(t.progress.polls, 12);
    assert_eq!(t.progress.cancels, 1, "cancelled right after the 12th poll");
    assert_eq!(
        t.state,
        TradeState::Cancelled {
            action: Some(jianlian_alipay::api::trade::CancelAction::Close)
        }
    );
    let upstream = w.upstream_trade(&t).await.unwrap();
    assert_eq!(upstream.status, TradeStatus::TradeClosed);
    let q = w.channel.call(&query("BIG1")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeClosed));
    assert_eq!(statuses(&w), vec!["TRADE_CLOSED"]);
    // Nothing more is planned.
    w.advance(3600).await;
    assert_eq!(w.trade(&w.channel, "BIG1").await.progress.cancels, 1);
}
e2e!(password_case_is_polled_twelve_times_then_cancelled);

/// The buyer enters the password during the polls: the next poll sees it paid.
async fn password_entered_during_polls_pays(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let out = w.pay(&w.channel, &smid, "BIG2", "1500.00").await;
    let Outcome::InProgress(r) = out else {
        panic!("{out:?}")
    };
    w.advance(10).await;
    w.sandbox
        .confirm(r.body.trade_no.as_deref().unwrap())
        .await
        .unwrap();
    w.advance(5).await;
    let t = w.trade(&w.channel, "BIG2").await;
    assert_eq!(t.state, TradeState::Paid);
    assert_eq!(t.progress.polls, 3);
    assert_eq!(t.progress.cancels, 0);
    let q = w.channel.call(&query("BIG2")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(statuses(&w), vec!["TRADE_SUCCESS"]);
    w.advance(120).await;
    assert_eq!(
        w.trade(&w.channel, "BIG2").await.progress.polls,
        3,
        "no poll after the outcome"
    );
}
e2e!(password_entered_during_polls_pays);

/// R4.3: 20000 after the pay was applied → unknown → the query finds it paid.
async fn unknown_answer_is_resolved_by_query(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.sandbox
        .add_fault(fault(
            "alipay.trade.pay",
            "12.34",
            jianlian_sandbox::FaultAction::Unknown { apply: true },
        ))
        .await
        .unwrap();
    let out = w.pay(&w.channel, &smid, "U1", "12.34").await;
    assert!(
        matches!(out, Outcome::InProgress(_)),
        "the terminal is told to wait: {out:?}"
    );
    assert_eq!(w.trade(&w.channel, "U1").await.state, TradeState::Unknown);
    w.settle().await;
    let t = w.trade(&w.channel, "U1").await;
    assert_eq!(t.state, TradeState::Paid);
    assert_eq!(t.progress.queries, 1);
    assert!(t.fee.is_some(), "the payment is booked");
}
e2e!(unknown_answer_is_resolved_by_query, pg);

/// A lost connection after the pay was applied is unknown, never a failure.
async fn connection_lost_is_unknown_not_failure(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.sandbox
        .add_fault(fault(
            "alipay.trade.pay",
            "7.00",
            jianlian_sandbox::FaultAction::DropAfter,
        ))
        .await
        .unwrap();
    let out = w.pay(&w.channel, &smid, "D1", "7.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    w.settle().await;
    assert_eq!(w.trade(&w.channel, "D1").await.state, TradeState::Paid);
}
e2e!(connection_lost_is_unknown_not_failure);

/// A response signed with the wrong key is unknown: the query decides.
async fn bad_response_signature_is_unknown(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.sandbox
        .add_fault(fault(
            "alipay.trade.pay",
            "8.00",
            jianlian_sandbox::FaultAction::WrongKey,
        ))
        .await
        .unwrap();
    let out = w.pay(&w.channel, &smid, "K1", "8.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    let t = w.trade(&w.channel, "K1").await;
    assert_eq!(t.state, TradeState::Unknown);
    assert!(t.facts.unknown_reason.unwrap().contains("signature"));
    w.settle().await;
    assert_eq!(w.trade(&w.channel, "K1").await.state, TradeState::Paid);
}
e2e!(bad_response_signature_is_unknown);

/// R4.3: the pay never landed: query, retry the query once 5 s later, then
/// cancel; the cancel's (absent) action is recorded.
async fn unknown_that_never_landed_is_queried_twice_then_cancelled(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.sandbox
        .add_fault(fault(
            "alipay.trade.pay",
            "9.00",
            jianlian_sandbox::FaultAction::Unknown { apply: false },
        ))
        .await
        .unwrap();
    let out = w.pay(&w.channel, &smid, "N1", "9.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    w.settle().await;
    let t = w.trade(&w.channel, "N1").await;
    assert_eq!((t.progress.queries, t.state), (1, TradeState::Unknown));
    w.advance(5).await;
    let t = w.trade(&w.channel, "N1").await;
    assert_eq!(t.progress.queries, 2);
    assert_eq!(
        t.progress.cancels, 1,
        "cancelled right after the second query"
    );
    assert_eq!(t.state, TradeState::Cancelled { action: None });
    assert!(w.upstream_trade(&t).await.is_none(), "Alipay never had it");
}
e2e!(unknown_that_never_landed_is_queried_twice_then_cancelled);

/// `retry_flag = Y` / an unknown cancel answer: the loop cancels again.
async fn cancel_is_retried_until_done(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let out = w.pay(&w.channel, &smid, "R1", "1000.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    w.sandbox
        .add_fault(jianlian_sandbox::FaultRule {
            id: 0,
            method: Some("alipay.trade.cancel".into()),
            out_trade_no: None,
            amount: None,
            action: jianlian_sandbox::FaultAction::SystemError { apply: false },
            times: Some(1),
        })
        .await
        .unwrap();
    for _ in 0..12 {
        w.advance(5).await;
    }
    let t = w.trade(&w.channel, "R1").await;
    assert_eq!((t.progress.cancels, t.state), (1, TradeState::Paying));
    w.advance(5).await;
    let t = w.trade(&w.channel, "R1").await;
    assert_eq!(t.progress.cancels, 2);
    assert!(t.state.is_resolved(), "{:?}", t.state);
}
e2e!(cancel_is_retried_until_done);

/// R4.1: 40004 passes through with sub_code and sub_msg; the repeat is
/// answered from the record, never paid twice upstream.
async fn failure_passes_through_and_is_not_retried_upstream(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let poor = w
        .sandbox
        .create_buyer(jianlian_sandbox::BuyerSpec {
            balance: Some(yuan("1.00")),
            ..Default::default()
        })
        .await
        .unwrap()
        .buyer_id;
    let code = w.code_for(&poor).await;
    let req = w.pay_req(&smid, "F1", "50.00", &code);
    let out = w.channel.call(&req).await;
    assert_eq!(sub_code(&out), "ACQ.BUYER_BALANCE_NOT_ENOUGH");
    assert!(!failure_msg(&out).is_empty());
    if let Outcome::Failed(f) = &out {
        assert_eq!(
            f.node.get("out_trade_no").and_then(|v| v.as_str()),
            Some("F1")
        );
    }
    let t = w.trade(&w.channel, "F1").await;
    assert_eq!(t.state, TradeState::Failed);
    let rows = w.rows().await;
    let again = w.channel.call(&req).await;
    assert_eq!(sub_code(&again), "ACQ.BUYER_BALANCE_NOT_ENOUGH");
    assert_eq!(w.rows().await, rows, "the repeat wrote nothing");
    let q = w.channel.call(&query("F1")).await;
    assert_eq!(sub_code(&q), "ACQ.TRADE_NOT_EXIST");
}
e2e!(failure_passes_through_and_is_not_retried_upstream);
