//! Refunds and fees (R9.3, R9.4, R10): funding-source order with the seed's
//! two worked examples, idempotent out_request_no, cumulative refund_fee,
//! full refund → TRADE_CLOSED, same-day income or acquirer position, refund
//! window, fee returns and the ledger.

use jianlian_alipay::api::trade::{
    TradeCancel, TradeQuery, TradeRef, TradeRefund, TradeRefundQuery, TradeStatus, YesNo,
};
use jianlian_alipay::{Fen, Outcome};
use jianlian_sandbox::model::{LedgerKind, RefundPosition};
use jianlian_sandbox::{AppSpec, BuyerSpec, VoucherSpec};

use crate::common::*;

fn refund(otn: &str, amount: &str, request: Option<&str>) -> TradeRefund {
    TradeRefund {
        trade: TradeRef::out_trade_no(otn),
        refund_amount: yuan(amount),
        out_request_no: request.map(str::to_owned),
        ..Default::default()
    }
}

fn split(list: &[jianlian_alipay::api::trade::TradeFundBill]) -> Vec<(String, Fen)> {
    list.iter()
        .map(|b| (b.fund_channel.clone(), b.amount))
        .collect()
}

/// The seed's order: 100 = 70 paid by the buyer + 20 merchant voucher + 10 points.
async fn seed_trade(t: &TestApp, otn: &str) {
    let buyer = t
        .buyer(BuyerSpec {
            vouchers: vec![VoucherSpec {
                channel: "MDISCOUNT".into(),
                amount: yuan("20.00"),
                name: None,
            }],
            points: Some(1000),
            ..Default::default()
        })
        .await;
    let body = t
        .call(&t.pay_req(otn, "100.00", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    assert_eq!(body.buyer_pay_amount, Some(yuan("70.00")));
}

#[tokio::test]
async fn seed_example_refund_75() {
    let t = TestApp::new().await;
    seed_trade(&t, "R75").await;
    let r = t
        .call(&refund("R75", "75.00", Some("r1")))
        .await
        .success()
        .unwrap();
    assert_eq!(
        split(&r.refund_detail_item_list.unwrap()),
        vec![
            ("ALIPAYACCOUNT".into(), yuan("70.00")),
            ("POINT".into(), yuan("5.00"))
        ]
    );
}

#[tokio::test]
async fn seed_example_refund_85() {
    let t = TestApp::new().await;
    seed_trade(&t, "R85").await;
    let r = t
        .call(&refund("R85", "85.00", Some("r1")))
        .await
        .success()
        .unwrap();
    assert_eq!(
        split(&r.refund_detail_item_list.unwrap()),
        vec![
            ("ALIPAYACCOUNT".into(), yuan("70.00")),
            ("POINT".into(), yuan("10.00")),
            ("MDISCOUNT".into(), yuan("5.00"))
        ]
    );
}

#[tokio::test]
async fn partial_refunds_are_idempotent_and_cumulative() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("R1", "100.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    // A partial refund needs out_request_no.
    assert_eq!(
        sub_code(&t.call(&refund("R1", "10.00", None)).await),
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    );
    let first = t
        .call(&refund("R1", "30.00", Some("a")))
        .await
        .success()
        .unwrap();
    assert_eq!(first.fund_change, Some(YesNo::Y));
    assert_eq!(first.refund_fee, Some(yuan("30.00")));
    assert_eq!(
        first.refund_charge_amount,
        Some(yuan("0.11")),
        "0.0038 × 30 = 0.114"
    );
    let repeat = t
        .call(&refund("R1", "30.00", Some("a")))
        .await
        .success()
        .unwrap();
    assert_eq!(repeat.fund_change, Some(YesNo::N));
    assert_eq!(repeat.refund_fee, Some(yuan("30.00")));
    assert_eq!(
        sub_code(&t.call(&refund("R1", "31.00", Some("a"))).await),
        "ACQ.DISCORDANT_REPEAT_REQUEST"
    );
    let q = t
        .call(&TradeQuery {
            trade: TradeRef::out_trade_no("R1"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(
        q.trade_status,
        Some(TradeStatus::TradeSuccess),
        "partial refund keeps TRADE_SUCCESS"
    );
    assert_eq!(
        sub_code(&t.call(&refund("R1", "70.01", Some("b"))).await),
        "ACQ.REASON_TRADE_REFUND_FEE_ERR"
    );
    let last = t
        .call(&refund("R1", "70.00", Some("b")))
        .await
        .success()
        .unwrap();
    assert_eq!(last.refund_fee, Some(yuan("100.00")));
    // The last refund returns the rest of the fee: 0.38 − 0.11.
    assert_eq!(last.refund_charge_amount, Some(yuan("0.27")));
    let q = t
        .call(&TradeQuery {
            trade: TradeRef::out_trade_no("R1"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeClosed));
    assert_eq!(t.balance(&buyer).await, yuan("500.00"));
    // Refund query.
    let rq = TradeRefundQuery {
        trade: TradeRef::out_trade_no("R1"),
        out_request_no: "a".into(),
        ..Default::default()
    };
    let found = t.call(&rq).await.success().unwrap();
    assert_eq!(
        (found.refund_status.as_deref(), found.refund_amount),
        (Some("REFUND_SUCCESS"), Some(yuan("30.00")))
    );
    let rq = TradeRefundQuery {
        trade: TradeRef::out_trade_no("R1"),
        out_request_no: "zzz".into(),
        ..Default::default()
    };
    assert_eq!(t.call(&rq).await.success().unwrap().refund_status, None);
    // The ledger: fee and fee returns balance out; every fen of the charge came back.
    let ledger = t.sandbox.ledger(Some("2026-03-02")).await;
    let sum =
        |k: LedgerKind| Fen::sum(ledger.iter().filter(|e| e.kind == k).map(|e| e.amount)).unwrap();
    assert_eq!(sum(LedgerKind::Charge), yuan("100.00"));
    assert_eq!(sum(LedgerKind::Refund), yuan("100.00"));
    assert_eq!(sum(LedgerKind::Fee), sum(LedgerKind::FeeReturn));
}

#[tokio::test]
async fn refunds_need_same_day_income_or_the_acquirer_position() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("D1", "20.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    t.advance(24 * 3600).await;
    // R10.1: the merchant has no income today.
    assert_eq!(
        sub_code(&t.call(&refund("D1", "5.00", Some("x"))).await),
        "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    );
    // Income today covers it.
    assert!(
        t.call(&t.pay_req("D2", "10.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    assert!(t.call(&refund("D1", "5.00", Some("x"))).await.is_success());
    assert_eq!(
        sub_code(&t.call(&refund("D1", "6.00", Some("y"))).await),
        "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    );
    // Another merchant of the acquirer earns today: not this merchant's income…
    let other = t.onboard("M0002").await;
    let mut other_pay = t.pay_req("D3", "30.00", &t.code(&buyer).await);
    other_pay.order.sub_merchant.as_mut().unwrap().merchant_id = other;
    assert!(t.call(&other_pay).await.is_success());
    assert_eq!(
        sub_code(&t.call(&refund("D1", "6.00", Some("y"))).await),
        "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    );
    // …but part of the acquirer-level position.
    t.sandbox
        .update_app(
            &t.app.app_id,
            AppSpec {
                refund_position: Some(RefundPosition::Acquirer),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(t.call(&refund("D1", "6.00", Some("y"))).await.is_success());
}

#[tokio::test]
async fn refund_window_finishes_the_trade() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("F1", "9.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    t.advance(89 * 24 * 3600).await;
    let q = t
        .call(&TradeQuery {
            trade: TradeRef::out_trade_no("F1"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    // R10.4: three months after 2026-03-02 is 2026-06-02.
    t.advance(3 * 24 * 3600).await;
    let q = t
        .call(&TradeQuery {
            trade: TradeRef::out_trade_no("F1"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeFinished));
    assert_eq!(
        sub_code(&t.call(&refund("F1", "1.00", Some("late"))).await),
        "ACQ.TRADE_HAS_FINISHED"
    );
}

#[tokio::test]
async fn tiny_payments_pay_no_fee() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // R9.3: 1.31 × 0.0038 = 0.4978 fen → no fee; 1.32 → 0.5016 → 1 fen.
    let small = t
        .call(&t.pay_req("S1", "1.31", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    assert_eq!(small.charge_amount, Some(Fen::ZERO));
    let one = t
        .call(&t.pay_req("S2", "1.32", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    assert_eq!(one.charge_amount, Some(Fen::new(1)));
}

#[tokio::test]
async fn the_acquirer_position_is_what_was_not_paid_out() {
    let t = TestApp::with_spec(AppSpec {
        refund_position: Some(RefundPosition::Acquirer),
        ..Default::default()
    })
    .await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // 100.00 received, fee 0.38: 99.62 at Alipay (R9.1).
    assert!(
        t.call(&t.pay_req("AP1", "100.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    // At 07:00 the next day it is all paid out to the bank (R9.2, same bank).
    t.advance(24 * 3600).await;
    let payouts: Vec<Fen> = t
        .sandbox
        .ledger(None)
        .await
        .iter()
        .filter(|e| e.kind == LedgerKind::Payout)
        .map(|e| e.amount)
        .collect();
    assert_eq!(payouts, vec![yuan("99.62")]);
    // R10.1: nothing is left at Alipay to refund from.
    let refused = t.call(&refund("AP1", "1.00", Some("a"))).await;
    assert_eq!(sub_code(&refused), "ACQ.SELLER_BALANCE_NOT_ENOUGH");
    let Outcome::Failed(f) = refused else {
        unreachable!()
    };
    assert!(
        f.sub_msg.as_deref().unwrap_or_default().contains("(0.00)"),
        "{f:?}"
    );
    // Today's income (20.00 less a 0.08 fee) covers refunds up to 19.92; each
    // refund's fee return (R9.4) comes back into the position.
    assert!(
        t.call(&t.pay_req("AP2", "20.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    assert!(
        t.call(&refund("AP1", "10.00", Some("b")))
            .await
            .is_success()
    );
    assert_eq!(
        sub_code(&t.call(&refund("AP1", "9.97", Some("c"))).await),
        "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    );
    assert!(t.call(&refund("AP1", "9.96", Some("c"))).await.is_success());
}

#[tokio::test]
async fn a_contract_without_refunds() {
    let t = TestApp::with_spec(AppSpec {
        refund_window_months: Some(0),
        ..Default::default()
    })
    .await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("NR", "8.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    // apis.md §3, transition 6: finished as soon as paid.
    assert_eq!(t.status("NR").await, Some(TradeStatus::TradeFinished));
    assert_eq!(
        sub_code(&t.call(&refund("NR", "1.00", Some("x"))).await),
        "ACQ.TRADE_NOT_ALLOW_REFUND"
    );
    assert_eq!(
        sub_code(
            &t.call(&TradeCancel {
                trade: TradeRef::out_trade_no("NR"),
                ..Default::default()
            })
            .await
        ),
        "ACQ.TRADE_HAS_FINISHED"
    );
    assert_eq!(t.balance(&buyer).await, yuan("492.00"));
    // A window of more than 24 months is refused.
    assert!(
        t.sandbox
            .update_app(
                &t.app.app_id,
                AppSpec {
                    refund_window_months: Some(25),
                    ..Default::default()
                },
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn refunds_carry_their_settlement_id() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("RS", "9.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    // apis.md §2.7, §2.8: institution-indirect refunds name their clearing id,
    // the same in the refund, its repeat and the refund query.
    let r = t
        .call(&refund("RS", "1.00", Some("s1")))
        .await
        .success()
        .unwrap();
    let id = r.refund_settlement_id.expect("refund_settlement_id");
    let again = t
        .call(&refund("RS", "1.00", Some("s1")))
        .await
        .success()
        .unwrap();
    assert_eq!(again.refund_settlement_id.as_deref(), Some(id.as_str()));
    let q = t
        .call(&TradeRefundQuery {
            trade: TradeRef::out_trade_no("RS"),
            out_request_no: "s1".into(),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.refund_settlement_id.as_deref(), Some(id.as_str()));
    let second = t
        .call(&refund("RS", "1.00", Some("s2")))
        .await
        .success()
        .unwrap();
    assert_ne!(second.refund_settlement_id, Some(id));
}
