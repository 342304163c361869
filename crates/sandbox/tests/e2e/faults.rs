//! Fault injection: unknown results and system errors with and without
//! effect, selection by method, out_trade_no and amount, dropped connections
//! before and after applying, wrong signatures, forced waits, payments after
//! a cancel, close or timeout (charged and refunded), missing trades for a
//! count or a span of virtual time, refunds answered `fund_change=N`, delays,
//! and rules refused for unknown fields.

use std::time::{Duration, Instant};

use jianlian_alipay::api::trade::{
    TradeCancel, TradeClose, TradeQuery, TradeRef, TradeRefund, TradeRefundQuery, TradeStatus,
    YesNo,
};
use jianlian_alipay::response::{ResponseError, UnknownReason};
use jianlian_alipay::{Code, Fen, Outcome};
use jianlian_sandbox::model::{CloseReason, LedgerKind};
use jianlian_sandbox::{BuyerSpec, FaultAction, FaultRule, VoucherSpec};

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
    assert_eq!(t.status("U2").await, Some(TradeStatus::TradeSuccess));
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
    assert_eq!(t.status("FW").await, Some(TradeStatus::WaitBuyerPay));
    assert_eq!(t.status("FW").await, Some(TradeStatus::TradeSuccess));
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
        assert_eq!(t.status("FN").await, Some(TradeStatus::WaitBuyerPay));
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

/// The ledger total of one kind of movement for one `out_trade_no`.
async fn ledger_sum(t: &TestApp, otn: &str, kind: LedgerKind) -> Fen {
    let ledger = t.sandbox.ledger(None).await;
    Fen::sum(
        ledger
            .iter()
            .filter(|e| e.kind == kind && e.out_trade_no.as_deref() == Some(otn))
            .map(|e| e.amount),
    )
    .unwrap()
}

/// Each channel's ledger total of one kind for one `out_trade_no`.
async fn ledger_by_channel(t: &TestApp, otn: &str, kind: LedgerKind) -> Vec<(String, Fen)> {
    let mut out: Vec<(String, Fen)> = Vec::new();
    for e in t
        .sandbox
        .ledger(None)
        .await
        .iter()
        .filter(|e| e.kind == kind && e.out_trade_no.as_deref() == Some(otn))
    {
        out.push((e.channel.clone().unwrap(), e.amount));
    }
    out
}

#[tokio::test]
async fn unknown_applied_and_system_error_not_applied() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // 20000 after the call ran: the trade exists and is paid.
    t.sandbox
        .add_fault(rule(FaultAction::Unknown { apply: true }, "UA"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("UA", "3.00", &t.code(&buyer).await))
        .await;
    let Outcome::Unknown(UnknownReason::Gateway { code, .. }) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(*code, Code::ServiceUnavailable);
    assert!(exists(&t, "UA").await);
    assert_eq!(t.status("UA").await, Some(TradeStatus::TradeSuccess));
    assert_eq!(t.balance(&buyer).await, yuan("497.00"));
    // ACQ.SYSTEM_ERROR before the call ran: nothing happened.
    t.sandbox
        .add_fault(rule(FaultAction::SystemError { apply: false }, "SN"))
        .await
        .unwrap();
    let out = t
        .call(&t.pay_req("SN", "4.00", &t.code(&buyer).await))
        .await;
    let Outcome::Unknown(UnknownReason::Gateway { sub_code, .. }) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(sub_code.as_deref(), Some("ACQ.SYSTEM_ERROR"));
    assert!(!exists(&t, "SN").await);
    assert_eq!(sub_code_of_query(&t, "SN").await, "ACQ.TRADE_NOT_EXIST");
    assert_eq!(t.balance(&buyer).await, yuan("497.00"));
    assert_eq!(ledger_sum(&t, "SN", LedgerKind::Charge).await, Fen::ZERO);
}

async fn sub_code_of_query(t: &TestApp, otn: &str) -> String {
    sub_code(&t.call(&query(otn)).await)
}

#[tokio::test]
async fn rules_select_by_amount() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let by_amount = FaultRule {
        id: 0,
        method: None,
        out_trade_no: None,
        amount: Some(yuan("3.21")),
        action: FaultAction::SystemError { apply: false },
        times: None,
    };
    t.sandbox.add_fault(by_amount).await.unwrap();
    // Another amount is untouched, whatever its out_trade_no.
    assert!(
        t.call(&t.pay_req("A1", "3.20", &t.code(&buyer).await))
            .await
            .is_success()
    );
    for otn in ["A2", "A3"] {
        let out = t.call(&t.pay_req(otn, "3.21", &t.code(&buyer).await)).await;
        assert!(
            matches!(out, Outcome::Unknown(UnknownReason::Gateway { .. })),
            "{out:?}"
        );
        assert!(!exists(&t, otn).await);
    }
    // A refund is selected by its refund_amount.
    assert!(
        t.call(&t.pay_req("A5", "9.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let refund = |amount: &str, no: &str| TradeRefund {
        trade: TradeRef::out_trade_no("A5"),
        refund_amount: yuan(amount),
        out_request_no: Some(no.into()),
        ..Default::default()
    };
    let out = t.call(&refund("3.21", "r1")).await;
    let Outcome::Unknown(UnknownReason::Gateway { sub_code, .. }) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(sub_code.as_deref(), Some("ACQ.SYSTEM_ERROR"));
    assert!(t.call(&refund("3.22", "r2")).await.is_success());
    t.sandbox.clear_faults().await.unwrap();
    let out = t
        .call(&t.pay_req("A4", "3.21", &t.code(&buyer).await))
        .await;
    assert!(out.is_success(), "{out:?}");
}

#[tokio::test]
async fn payment_after_cancel_is_charged_then_refunded() {
    let t = TestApp::new().await;
    let buyer = t
        .buyer(BuyerSpec {
            points: Some(100),
            vouchers: vec![VoucherSpec {
                channel: "COUPON".into(),
                amount: yuan("1.00"),
                name: Some("红包".into()),
            }],
            ..Default::default()
        })
        .await;
    let before = t.sandbox.buyer(&buyer).await.unwrap();
    t.sandbox
        .add_fault(rule(
            FaultAction::PayAfterCancel {
                after: vec![CloseReason::Cancel],
            },
            "PC",
        ))
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("PC", "7.00", &t.code(&buyer).await))
            .await,
        Outcome::InProgress(_)
    ));
    // Waiting: nothing charged yet.
    assert_eq!(ledger_sum(&t, "PC", LedgerKind::Charge).await, Fen::ZERO);
    assert!(
        t.call(&TradeCancel {
            trade: TradeRef::out_trade_no("PC"),
            ..Default::default()
        })
        .await
        .is_success()
    );
    let q = t.call(&query("PC")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeClosed));
    assert_eq!(q.receipt_amount, Some(Fen::ZERO));
    // The payment that arrived after the cancel, as the trade records it:
    // the voucher, the points and the balance, each charged and refunded.
    let trade = t
        .sandbox
        .trade_by_out_trade_no(&t.app.pid, "PC")
        .await
        .unwrap();
    assert!(trade.funding.is_empty() && trade.paid_at.is_none());
    let late = trade.late_payment.expect("the late payment is recorded");
    assert_eq!(late.after, CloseReason::Cancel);
    let parts: Vec<(&str, Fen)> = late
        .parts
        .iter()
        .map(|p| (p.channel.as_str(), p.amount))
        .collect();
    assert_eq!(
        parts,
        vec![
            ("COUPON", yuan("1.00")),
            ("POINT", yuan("1.00")),
            ("ALIPAYACCOUNT", yuan("5.00"))
        ]
    );
    // The ledger adds up: every channel charged is refunded the same amount.
    let charged = ledger_by_channel(&t, "PC", LedgerKind::Charge).await;
    let refunded = ledger_by_channel(&t, "PC", LedgerKind::AutoRefund).await;
    assert_eq!(charged, refunded);
    assert_eq!(ledger_sum(&t, "PC", LedgerKind::Charge).await, yuan("7.00"));
    assert_eq!(
        ledger_sum(&t, "PC", LedgerKind::AutoRefund).await,
        yuan("7.00")
    );
    // No fee and no refund of the trade: the merchant never had the money.
    assert_eq!(ledger_sum(&t, "PC", LedgerKind::Fee).await, Fen::ZERO);
    assert_eq!(ledger_sum(&t, "PC", LedgerKind::Refund).await, Fen::ZERO);
    // The buyer is whole again, voucher included, and can spend it.
    let after = t.sandbox.buyer(&buyer).await.unwrap();
    assert_eq!(after.balance, before.balance);
    assert_eq!(after.points, before.points);
    assert_eq!(after.vouchers, before.vouchers);
    let again = t
        .call(&t.pay_req("PD", "7.00", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    assert_eq!(again.buyer_pay_amount, Some(yuan("5.00")));
}

#[tokio::test]
async fn payment_after_close_or_timeout_when_the_rule_says_so() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let after_close_or_timeout = |otn: &str| {
        let mut r = rule(
            FaultAction::PayAfterCancel {
                after: vec![CloseReason::Close, CloseReason::Timeout],
            },
            otn,
        );
        r.method = Some("alipay.trade.pay".into());
        r
    };
    for otn in ["LC", "LT", "LX"] {
        t.sandbox
            .add_fault(after_close_or_timeout(otn))
            .await
            .unwrap();
        let mut req = t.pay_req(otn, "2.00", &t.code(&buyer).await);
        req.order.timeout_express = Some("5m".into());
        assert!(matches!(t.call(&req).await, Outcome::InProgress(_)));
    }
    // Closed by alipay.trade.close: the payment arrives and goes back.
    assert!(
        t.call(&TradeClose {
            trade: TradeRef::out_trade_no("LC"),
            ..Default::default()
        })
        .await
        .is_success()
    );
    // Cancelled: not what this rule selected, so no payment arrives.
    assert!(
        t.call(&TradeCancel {
            trade: TradeRef::out_trade_no("LX"),
            ..Default::default()
        })
        .await
        .is_success()
    );
    // Timed out on the virtual clock.
    t.advance(5 * 60).await;
    assert_eq!(t.status("LT").await, Some(TradeStatus::TradeClosed));
    for (otn, after) in [("LC", CloseReason::Close), ("LT", CloseReason::Timeout)] {
        let trade = t
            .sandbox
            .trade_by_out_trade_no(&t.app.pid, otn)
            .await
            .unwrap();
        assert_eq!(trade.late_payment.unwrap().after, after, "{otn}");
        assert_eq!(ledger_sum(&t, otn, LedgerKind::Charge).await, yuan("2.00"));
        assert_eq!(
            ledger_sum(&t, otn, LedgerKind::AutoRefund).await,
            yuan("2.00")
        );
    }
    let cancelled = t
        .sandbox
        .trade_by_out_trade_no(&t.app.pid, "LX")
        .await
        .unwrap();
    assert!(cancelled.late_payment.is_none());
    assert_eq!(ledger_sum(&t, "LX", LedgerKind::Charge).await, Fen::ZERO);
    assert_eq!(t.balance(&buyer).await, yuan("500.00"));
}

#[tokio::test]
async fn a_buyer_who_cannot_pay_makes_no_late_payment() {
    let t = TestApp::new().await;
    let buyer = t
        .buyer(BuyerSpec {
            balance: Some(yuan("10.00")),
            ..Default::default()
        })
        .await;
    t.sandbox
        .add_fault(rule(
            FaultAction::PayAfterCancel {
                after: vec![CloseReason::Cancel],
            },
            "PN",
        ))
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("PN", "8.00", &t.code(&buyer).await))
            .await,
        Outcome::InProgress(_)
    ));
    // Meanwhile the buyer spends the money elsewhere.
    assert!(
        t.call(&t.pay_req("PO", "5.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    assert!(
        t.call(&TradeCancel {
            trade: TradeRef::out_trade_no("PN"),
            ..Default::default()
        })
        .await
        .is_success()
    );
    let trade = t
        .sandbox
        .trade_by_out_trade_no(&t.app.pid, "PN")
        .await
        .unwrap();
    assert!(trade.late_payment.is_none());
    assert_eq!(ledger_sum(&t, "PN", LedgerKind::Charge).await, Fen::ZERO);
    assert_eq!(t.balance(&buyer).await, yuan("5.00"));
}

#[tokio::test]
async fn query_says_not_exist_for_a_number_of_queries() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("NE", "1.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let mut r = rule(FaultAction::TradeNotExist { for_seconds: None }, "NE");
    r.times = Some(2);
    t.sandbox.add_fault(r).await.unwrap();
    assert_eq!(sub_code(&t.call(&query("NE")).await), "ACQ.TRADE_NOT_EXIST");
    assert_eq!(sub_code(&t.call(&query("NE")).await), "ACQ.TRADE_NOT_EXIST");
    assert!(t.call(&query("NE")).await.is_success());
}

#[tokio::test]
async fn query_says_not_exist_while_the_trade_is_young() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // Every query, however many, for the first 30 s of each trade's life.
    let lagging = FaultRule {
        id: 0,
        method: None,
        out_trade_no: None,
        amount: None,
        action: FaultAction::TradeNotExist {
            for_seconds: Some(30),
        },
        times: None,
    };
    t.sandbox.add_fault(lagging).await.unwrap();
    t.sandbox
        .add_fault(rule(FaultAction::Unknown { apply: true }, "NY"))
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("NY", "1.00", &t.code(&buyer).await))
            .await,
        Outcome::Unknown(_)
    ));
    for _ in 0..5 {
        assert_eq!(sub_code(&t.call(&query("NY")).await), "ACQ.TRADE_NOT_EXIST");
    }
    t.advance(29).await;
    assert_eq!(sub_code(&t.call(&query("NY")).await), "ACQ.TRADE_NOT_EXIST");
    t.advance(1).await;
    assert_eq!(t.status("NY").await, Some(TradeStatus::TradeSuccess));
    // The rule is still there for the next trade, young again.
    assert!(
        t.call(&t.pay_req("NZ", "1.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    assert_eq!(sub_code(&t.call(&query("NZ")).await), "ACQ.TRADE_NOT_EXIST");
    assert!(t.call(&query("NY")).await.is_success());
    assert_eq!(t.sandbox.faults().await.len(), 1);
}

#[tokio::test]
async fn refund_answered_fund_change_n_is_confirmed_by_the_refund_query() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("FC", "9.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let mut r = rule(FaultAction::FundChangeN, "FC");
    r.method = Some("alipay.trade.refund".into());
    t.sandbox.add_fault(r).await.unwrap();
    let refund = |no: &str| TradeRefund {
        trade: TradeRef::out_trade_no("FC"),
        refund_amount: yuan("2.00"),
        out_request_no: Some(no.into()),
        ..Default::default()
    };
    let first = t.call(&refund("r1")).await.success().unwrap();
    assert_eq!(first.fund_change, Some(YesNo::N));
    // The refund query confirms it: the money went back.
    let confirmed = t
        .call(&TradeRefundQuery {
            trade: TradeRef::out_trade_no("FC"),
            out_request_no: "r1".into(),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(confirmed.refund_status.as_deref(), Some("REFUND_SUCCESS"));
    assert_eq!(confirmed.refund_amount, Some(yuan("2.00")));
    assert_eq!(t.balance(&buyer).await, yuan("493.00"));
    // Sending it again changes nothing; a new refund answers Y as usual.
    let again = t.call(&refund("r1")).await.success().unwrap();
    assert_eq!(again.fund_change, Some(YesNo::N));
    assert_eq!(again.refund_fee, Some(yuan("2.00")));
    let next = t.call(&refund("r2")).await.success().unwrap();
    assert_eq!(next.fund_change, Some(YesNo::Y));
    assert_eq!(next.refund_fee, Some(yuan("4.00")));
}

#[tokio::test]
async fn delay_makes_a_patient_client_wait_and_an_impatient_one_time_out() {
    const DELAY_MS: u64 = 300;
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let mut config = t.client.config().clone();
    config.read_timeout = Duration::from_millis(100);
    let impatient =
        jianlian_alipay::client::AlipayClient::new(config, std::sync::Arc::new(t.clock.clone()))
            .unwrap();
    let delayed = |otn: &str| {
        let mut r = rule(FaultAction::Delay { ms: DELAY_MS }, otn);
        r.method = Some("alipay.trade.pay".into());
        r
    };
    t.sandbox.add_fault(delayed("DL")).await.unwrap();
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
    // The patient client (10 s read timeout) gets the answer, after the delay
    // on the wall clock: a delay is real time, not virtual.
    t.sandbox.add_fault(delayed("DP")).await.unwrap();
    let code = t.code(&buyer).await;
    let started = Instant::now();
    let out = t.call(&t.pay_req("DP", "1.00", &code)).await;
    let waited = started.elapsed();
    assert!(out.is_success(), "{out:?}");
    assert!(
        waited >= Duration::from_millis(DELAY_MS),
        "answered after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
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

#[tokio::test]
async fn rules_with_unknown_fields_are_refused_by_name() {
    let t = TestApp::new().await;
    let http = reqwest::Client::new();
    let post = |body: &'static str| {
        http.post(format!("{}/faults", t.sandbox.control_url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let answer = post(r#"{"action":"force_wait","out_trade_no":"T1","pay_after_querys":3}"#)
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap();
    assert!(text.contains("pay_after_querys"), "{text}");
    let answer = post(r#"{"action":"system_error","ms":10}"#).await.unwrap();
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap();
    assert!(
        text.contains("ms is not a parameter of action system_error"),
        "{text}"
    );
    assert!(t.sandbox.faults().await.is_empty(), "nothing was added");
    let answer = post(r#"{"action":"force_wait","out_trade_no":"T1","pay_after_queries":3}"#)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        t.sandbox.faults().await[0].action,
        FaultAction::ForceWait {
            pay_after_queries: Some(3)
        }
    );
}
