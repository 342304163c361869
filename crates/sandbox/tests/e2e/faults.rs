//! Fault injection: unknown results, system errors, dropped connections
//! before and after applying, wrong signatures, forced waits, payments after
//! a cancel, missing trades, delays.

use std::time::Duration;

use jianlian_alipay::api::trade::{TradeCancel, TradeQuery, TradeRef, TradeStatus};
use jianlian_alipay::response::{ResponseError, UnknownReason};
use jianlian_alipay::{Fen, Outcome};
use jianlian_sandbox::model::LedgerKind;
use jianlian_sandbox::{BuyerSpec, FaultAction, FaultRule};

use crate::common::*;

fn rule(action: FaultAction, otn: &str) -> FaultRule {
    FaultRule {
        id: 0,
        method: None,
        out_trade_no: Some(otn.into()),
        amount: None,
        action,
        times: Some(1),
    }
}

fn query(otn: &str) -> TradeQuery {
    TradeQuery {
        trade: TradeRef::out_trade_no(otn),
        ..Default::default()
    }
}

async fn exists(t: &TestApp, otn: &str) -> bool {
    t.sandbox
        .trade_by_out_trade_no(&t.app.pid, otn)
        .await
        .is_some()
}

#[tokio::test]
async fn unknown_results_with_and_without_effect() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    t.sandbox
        .add_fault(rule(FaultAction::Unknown { apply: false }, "U1"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("U1", "1.00", &t.code(&buyer).await))
        .await;
    assert!(
        matches!(out, Outcome::Unknown(UnknownReason::Gateway { .. })),
        "{out:?}"
    );
    assert!(!exists(&t, "U1").await);
    t.sandbox
        .add_fault(rule(FaultAction::SystemError { apply: true }, "U2"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("U2", "1.00", &t.code(&buyer).await))
        .await;
    let Outcome::Unknown(UnknownReason::Gateway { sub_code, .. }) = out else {
        panic!("{out:?}")
    };
    assert_eq!(sub_code.as_deref(), Some("ACQ.SYSTEM_ERROR"));
    // R4.3: the query tells the truth.
    assert_eq!(
        t.call(&query("U2")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeSuccess)
    );
    // The rule was used up.
    assert!(t.sandbox.faults().await.is_empty());
}

#[tokio::test]
async fn dropped_connections_before_and_after() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    t.sandbox
        .add_fault(rule(FaultAction::DropBefore, "D1"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("D1", "1.00", &t.code(&buyer).await))
        .await;
    assert!(
        matches!(out, Outcome::Unknown(UnknownReason::Transport(_))),
        "{out:?}"
    );
    assert!(!exists(&t, "D1").await);
    t.sandbox
        .add_fault(rule(FaultAction::DropAfter, "D2"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("D2", "1.00", &t.code(&buyer).await))
        .await;
    assert!(
        matches!(out, Outcome::Unknown(UnknownReason::Transport(_))),
        "{out:?}"
    );
    assert!(exists(&t, "D2").await, "applied, then dropped");
}

#[tokio::test]
async fn wrong_key_is_an_unknown_outcome() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    t.sandbox
        .add_fault(rule(FaultAction::WrongKey, "K1"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("K1", "1.00", &t.code(&buyer).await))
        .await;
    assert!(
        matches!(
            out,
            Outcome::Unknown(UnknownReason::Response(ResponseError::BadSignature))
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn forced_wait_pays_after_queries() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    t.sandbox
        .add_fault(rule(
            FaultAction::ForceWait {
                pay_after_queries: Some(2),
            },
            "FW",
        ))
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("FW", "1.00", &t.code(&buyer).await))
            .await,
        Outcome::InProgress(_)
    ));
    assert_eq!(
        t.call(&query("FW")).await.success().unwrap().trade_status,
        Some(TradeStatus::WaitBuyerPay)
    );
    assert_eq!(
        t.call(&query("FW")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeSuccess)
    );
    // Never: the client cancels after its polls (R4.2).
    t.sandbox
        .add_fault(rule(
            FaultAction::ForceWait {
                pay_after_queries: None,
            },
            "FN",
        ))
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("FN", "1.00", &t.code(&buyer).await))
            .await,
        Outcome::InProgress(_)
    ));
    for _ in 0..12 {
        assert_eq!(
            t.call(&query("FN")).await.success().unwrap().trade_status,
            Some(TradeStatus::WaitBuyerPay)
        );
    }
    assert!(
        t.call(&TradeCancel {
            trade: TradeRef::out_trade_no("FN"),
            ..Default::default()
        })
        .await
        .is_success()
    );
}

#[tokio::test]
async fn payment_after_cancel_is_refunded_automatically() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    t.sandbox
        .add_fault(rule(FaultAction::PayAfterCancel, "PC"))
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("PC", "7.00", &t.code(&buyer).await))
            .await,
        Outcome::InProgress(_)
    ));
    assert!(
        t.call(&TradeCancel {
            trade: TradeRef::out_trade_no("PC"),
            ..Default::default()
        })
        .await
        .is_success()
    );
    assert_eq!(
        t.call(&query("PC")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeClosed)
    );
    let ledger = t.sandbox.ledger(None).await;
    let of = |k: LedgerKind| {
        Fen::sum(
            ledger
                .iter()
                .filter(|e| e.kind == k && e.out_trade_no.as_deref() == Some("PC"))
                .map(|e| e.amount),
        )
        .unwrap()
    };
    assert_eq!(of(LedgerKind::Charge), yuan("7.00"));
    assert_eq!(of(LedgerKind::AutoRefund), yuan("7.00"));
    assert_eq!(
        t.sandbox.buyer(&buyer).await.unwrap().balance,
        yuan("500.00")
    );
}

#[tokio::test]
async fn query_says_not_exist_for_a_while() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("NE", "1.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let mut r = rule(FaultAction::TradeNotExist, "NE");
    r.times = Some(2);
    t.sandbox.add_fault(r).await.unwrap();
    assert_eq!(sub_code(&t.call(&query("NE")).await), "ACQ.TRADE_NOT_EXIST");
    assert_eq!(sub_code(&t.call(&query("NE")).await), "ACQ.TRADE_NOT_EXIST");
    assert!(t.call(&query("NE")).await.is_success());
}

#[tokio::test]
async fn delay_makes_a_patient_client_wait_and_an_impatient_one_time_out() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let mut config = t.client.config().clone();
    config.read_timeout = Duration::from_millis(100);
    let impatient =
        jianlian_alipay::client::AlipayClient::new(config, std::sync::Arc::new(t.clock.clone()))
            .unwrap();
    let mut r = rule(FaultAction::Delay { ms: 1_500 }, "DL");
    r.method = Some("alipay.trade.pay".into());
    t.sandbox.add_fault(r).await.unwrap();
    let out = impatient
        .execute(
            &t.pay_req("DL", "1.00", &t.code(&buyer).await),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Unknown(UnknownReason::Timeout)),
        "{out:?}"
    );
    // Bounded: a rule cannot ask for more than a minute.
    let bad = FaultRule {
        id: 0,
        method: None,
        out_trade_no: None,
        amount: None,
        action: FaultAction::Delay { ms: 3_600_000 },
        times: None,
    };
    assert!(t.sandbox.add_fault(bad).await.is_err());
    assert_eq!(t.sandbox.clear_faults().await.unwrap(), 0);
}
