//! R10 refunds through the channel API, R9.3/R9.4 fees and the ledger: an
//! idempotent `out_request_no`, partial and full refunds with fee returns
//! (the last refund returns the rest), refusal for the merchant's balance,
//! unconfirmed outcomes confirmed by refund query (and resent when Alipay
//! did not get them), concurrent refunds never above the paid amount, and
//! books that balance and agree with Alipay's.

use std::sync::Arc;

use jianlian_alipay::api::trade::{TradeRef, TradeRefund, TradeRefundQuery, YesNo};
use jianlian_alipay::{Fen, Outcome};
use jianlian_core::ledger::Account;
use jianlian_core::refund::RefundState;
use jianlian_core::trade::TradeState;
use jianlian_sandbox::model::LedgerKind;

use crate::common::*;
use crate::e2e;

fn refund(otn: &str, amount: &str, request: &str) -> TradeRefund {
    TradeRefund {
        trade: TradeRef::out_trade_no(otn),
        refund_amount: yuan(amount),
        out_request_no: Some(request.into()),
        ..Default::default()
    }
}

fn refund_query(otn: &str, request: &str) -> TradeRefundQuery {
    TradeRefundQuery {
        trade: TradeRef::out_trade_no(otn),
        out_request_no: request.into(),
        ..Default::default()
    }
}

/// The acquirer's clearing balance at Alipay per the gateway's books equals
/// the money Alipay moved for it (charges less refunds).
pub async fn books_agree_with_alipay(w: &World) {
    let store = &w.gateway.service().store;
    let balance = store.ledger_check().await.expect("every journal balances");
    let mut alipay = Fen::ZERO;
    for e in w.sandbox.ledger(None).await {
        if e.app_id != w.acquirer.app_id {
            continue;
        }
        alipay = match e.kind {
            LedgerKind::Charge => alipay.checked_add(e.amount).unwrap(),
            LedgerKind::Refund => alipay.checked_sub(e.amount).unwrap(),
            _ => alipay,
        };
    }
    assert_eq!(
        balance.balance(&Account::AlipayClearing),
        alipay,
        "gateway books vs Alipay's ledger"
    );
}

async fn partial_then_full_refund_returns_the_fee(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    assert!(w.pay(&w.channel, &smid, "P1", "100.00").await.is_success());
    let t = w.trade(&w.channel, "P1").await;
    assert_eq!(t.fee.unwrap().fee, yuan("0.60"), "R9.3: 100.00 × 0.6 %");
    let first = w
        .channel
        .call(&refund("P1", "30.00", "R1"))
        .await
        .success()
        .unwrap();
    assert_eq!(first.fund_change, Some(YesNo::Y));
    assert_eq!(first.refund_fee, Some(yuan("30.00")));
    assert_eq!(first.out_trade_no.as_deref(), Some("P1"));
    // The same request again: Alipay's idempotent answer, nothing booked.
    let rows = w.rows().await;
    let again = w
        .channel
        .call(&refund("P1", "30.00", "R1"))
        .await
        .success()
        .unwrap();
    assert_eq!(again.fund_change, Some(YesNo::N));
    assert_eq!(again.refund_fee, Some(yuan("30.00")));
    assert_eq!(w.rows().await, rows);
    let conflict = w.channel.call(&refund("P1", "31.00", "R1")).await;
    assert_eq!(sub_code(&conflict), "ACQ.DISCORDANT_REPEAT_REQUEST");
    let too_much = w.channel.call(&refund("P1", "70.01", "R2")).await;
    assert_eq!(sub_code(&too_much), "ACQ.REASON_TRADE_REFUND_FEE_ERR");
    assert!(
        failure_msg(&too_much).contains("70.00"),
        "{}",
        failure_msg(&too_much)
    );
    let last = w
        .channel
        .call(&refund("P1", "70.00", "R2"))
        .await
        .success()
        .unwrap();
    assert_eq!(last.refund_fee, Some(yuan("100.00")));
    w.settle().await;
    let store = &w.gateway.service().store;
    let refunds = store.refunds_of_trade(t.id).await.unwrap();
    let returns: Vec<Fen> = refunds
        .iter()
        .map(|r| r.share.unwrap().fee_return)
        .collect();
    assert_eq!(
        returns,
        vec![yuan("0.18"), yuan("0.42")],
        "R9.4: the last refund returns the rest"
    );
    let t = w.trade(&w.channel, "P1").await;
    assert_eq!(t.state, TradeState::Refunded);
    let balance = store.ledger_check().await.unwrap();
    assert_eq!(balance.owed_to(t.merchant), Fen::ZERO);
    assert_eq!(balance.balance(&Account::FeeIncome), Fen::ZERO);
    let q = w
        .channel
        .call(&refund_query("P1", "R2"))
        .await
        .success()
        .unwrap();
    assert_eq!(q.refund_status.as_deref(), Some("REFUND_SUCCESS"));
    assert_eq!(q.refund_amount, Some(yuan("70.00")));
    let none = w
        .channel
        .call(&refund_query("P1", "NOPE"))
        .await
        .success()
        .unwrap();
    assert_eq!(none.refund_status, None, "never received: no status");
    let mut statuses: Vec<String> = w
        .receiver
        .all()
        .iter()
        .map(|n| n.get("trade_status").unwrap_or_default().to_owned())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec!["TRADE_CLOSED", "TRADE_SUCCESS", "TRADE_SUCCESS"],
        "the channel hears of the payment, the partial refund and the full refund (in any order, as from Alipay)"
    );
    books_agree_with_alipay(&w).await;
}
e2e!(partial_then_full_refund_returns_the_fee);

/// R10.1: the merchant's income of the day must cover the refund.
async fn refund_refused_for_balance(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    assert!(w.pay(&w.channel, &smid, "B1", "80.00").await.is_success());
    w.advance(24 * 3600).await;
    let out = w.channel.call(&refund("B1", "50.00", "R1")).await;
    assert_eq!(sub_code(&out), "ACQ.SELLER_BALANCE_NOT_ENOUGH");
    let t = w.trade(&w.channel, "B1").await;
    let refunds = w
        .gateway
        .service()
        .store
        .refunds_of_trade(t.id)
        .await
        .unwrap();
    assert_eq!(
        refunds[0].state,
        RefundState::Failed,
        "the hold is released"
    );
    // Today's income covers it once the merchant sells again.
    assert!(w.pay(&w.channel, &smid, "B2", "60.00").await.is_success());
    let ok = w.channel.call(&refund("B1", "50.00", "R2")).await;
    assert!(ok.is_success(), "{ok:?}");
    books_agree_with_alipay(&w).await;
}
e2e!(refund_refused_for_balance);

/// apis.md §2.7: without `fund_change = Y` the outcome is confirmed with a
/// refund query; a refund Alipay never received is sent again.
async fn unconfirmed_refunds_are_confirmed(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    assert!(w.pay(&w.channel, &smid, "C1", "90.00").await.is_success());
    let fault = |apply| jianlian_sandbox::FaultRule {
        id: 0,
        method: Some("alipay.trade.refund".into()),
        out_trade_no: None,
        amount: None,
        action: jianlian_sandbox::FaultAction::Unknown { apply },
        times: Some(1),
    };
    w.sandbox.add_fault(fault(true)).await.unwrap();
    let out = w.channel.call(&refund("C1", "10.00", "R1")).await;
    assert!(
        matches!(out, Outcome::Unknown(_)),
        "20000 is passed on as unknown: {out:?}"
    );
    w.sandbox.add_fault(fault(false)).await.unwrap();
    let out = w.channel.call(&refund("C1", "20.00", "R2")).await;
    assert!(matches!(out, Outcome::Unknown(_)), "{out:?}");
    let t = w.trade(&w.channel, "C1").await;
    let store = &w.gateway.service().store;
    let states =
        |rs: Vec<jianlian_core::refund::Refund>| rs.iter().map(|r| r.state).collect::<Vec<_>>();
    assert_eq!(
        states(store.refunds_of_trade(t.id).await.unwrap()),
        vec![RefundState::Unknown, RefundState::Unknown]
    );
    w.advance(10).await;
    assert_eq!(
        states(store.refunds_of_trade(t.id).await.unwrap()),
        vec![RefundState::Succeeded, RefundState::Succeeded]
    );
    let upstream = w.upstream_trade(&t).await.unwrap();
    assert_eq!(upstream.refunds.len(), 2, "each refunded exactly once");
    books_agree_with_alipay(&w).await;
}
e2e!(unconfirmed_refunds_are_confirmed);

/// Issue item 8: concurrent refunds never exceed what was paid.
async fn concurrent_refunds_never_exceed_the_paid_amount(db: Db) {
    let w = Arc::new(World::new(db).await);
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    assert!(w.pay(&w.channel, &smid, "CC1", "100.00").await.is_success());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.channel
                .call(&refund("CC1", "10.00", &format!("R{i}")))
                .await
        }));
    }
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Outcome::Success(_) => succeeded += 1,
            // Over the amount left, or the trade is already refunded in full.
            Outcome::Failed(f) => assert!(
                matches!(
                    f.sub_code.as_deref(),
                    Some("ACQ.REASON_TRADE_REFUND_FEE_ERR" | "ACQ.TRADE_STATUS_ERROR")
                ),
                "{f:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(succeeded, 10, "exactly the paid amount is refunded");
    let t = w.trade(&w.channel, "CC1").await;
    let upstream = w.upstream_trade(&t).await.unwrap();
    let refunded = Fen::sum(upstream.refunds.iter().map(|r| r.amount)).unwrap();
    assert_eq!(refunded, yuan("100.00"));
    w.settle().await;
    assert_eq!(w.trade(&w.channel, "CC1").await.state, TradeState::Refunded);
    books_agree_with_alipay(&w).await;
}
e2e!(concurrent_refunds_never_exceed_the_paid_amount, pg);

/// R8, R9.3: credit funding takes the merchant's credit rate.
async fn credit_funding_takes_the_credit_rate(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let store = &w.gateway.service().store;
    jianlian_gateway::ops::set_fees(store, &smid, "0.0038", Some("0.006"), w.clock_now())
        .await
        .unwrap();
    let huabei = w
        .sandbox
        .create_buyer(jianlian_sandbox::BuyerSpec {
            huabei_limit: Some(yuan("5000.00")),
            pay_with: Some("huabei".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .buyer_id;
    let code = w.code_for(&huabei).await;
    let paid = w
        .channel
        .call(&w.pay_req(&smid, "H1", "100.00", &code))
        .await
        .success()
        .unwrap();
    assert_eq!(paid.fund_bill_list.unwrap()[0].fund_channel, "PCREDIT");
    assert_eq!(
        w.trade(&w.channel, "H1").await.fee.unwrap().fee,
        yuan("0.60")
    );
    assert!(w.pay(&w.channel, &smid, "D1", "100.00").await.is_success());
    assert_eq!(
        w.trade(&w.channel, "D1").await.fee.unwrap().fee,
        yuan("0.38")
    );
    let balance = store.ledger_check().await.unwrap();
    assert_eq!(
        balance.balance(&Account::FeeIncome),
        Fen::new(-98),
        "credits are negative"
    );
    books_agree_with_alipay(&w).await;
}
e2e!(credit_funding_takes_the_credit_rate);

/// R7 with R10: the channel hears of every refund as the acquirer hears of
/// it from Alipay: a partial refund notifies `TRADE_SUCCESS` again, the last
/// one `TRADE_CLOSED` (once), each carrying `refund_fee` (refunded so far),
/// `gmt_refund` and `out_biz_no`; a refund confirmed later by refund query
/// is notified then. Repeating a refund notifies nothing more.
async fn every_refund_is_notified_to_the_channel(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    assert!(w.pay(&w.channel, &smid, "N1", "100.00").await.is_success());
    w.settle().await;
    for (amount, request) in [("30.00", "N1-R1"), ("20.00", "N1-R2"), ("50.00", "N1-R3")] {
        let out = w.channel.call(&refund("N1", amount, request)).await;
        assert!(out.is_success(), "{out:?}");
        w.settle().await;
    }
    assert!(
        w.channel
            .call(&refund("N1", "20.00", "N1-R2"))
            .await
            .is_success()
    );
    w.settle().await;
    let got = w.receiver.all();
    let seen: Vec<(Option<&str>, Option<&str>, Option<&str>)> = got
        .iter()
        .map(|n| {
            (
                n.get("trade_status"),
                n.get("refund_fee"),
                n.get("out_biz_no"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("TRADE_SUCCESS"), None, None),
            (Some("TRADE_SUCCESS"), Some("30.00"), Some("N1-R1")),
            (Some("TRADE_SUCCESS"), Some("50.00"), Some("N1-R2")),
            (Some("TRADE_CLOSED"), Some("100.00"), Some("N1-R3")),
        ]
    );
    for n in &got[1..] {
        n.verify(
            w.gateway_key.public_key(),
            Some(jianlian_alipay::SignType::Rsa2),
        )
        .expect("signed with the gateway's key");
        assert_eq!(n.get("out_trade_no"), Some("N1"), "the channel's number");
        assert_eq!(n.get("total_amount"), Some("100.00"));
        let gmt = n.get("gmt_refund").unwrap();
        assert!(gmt.starts_with("2026-03-02 10:"), "{gmt}");
    }
    let ids: std::collections::BTreeSet<_> = got.iter().map(|n| n.get("notify_id")).collect();
    assert_eq!(ids.len(), got.len(), "one notify_id per message");

    // Alipay's answer is lost; the refund query confirms it, and the
    // channel is told then.
    assert!(w.pay(&w.channel, &smid, "N2", "50.00").await.is_success());
    w.fault(
        "alipay.trade.refund",
        Some("10.00"),
        jianlian_sandbox::FaultAction::Unknown { apply: true },
        Some(1),
    )
    .await;
    let lost = w.channel.call(&refund("N2", "10.00", "N2-R1")).await;
    assert!(!lost.is_success(), "{lost:?}");
    w.settle().await;
    let before = w.receiver.all().len();
    w.advance(30).await;
    let t = w.trade(&w.channel, "N2").await;
    let store = &w.gateway.service().store;
    assert_eq!(
        store.refunds_of_trade(t.id).await.unwrap()[0].state,
        RefundState::Succeeded
    );
    let got = w.receiver.all();
    assert_eq!(got.len(), before + 1, "{got:?}");
    let n = got.last().unwrap();
    assert_eq!(
        (
            n.get("out_trade_no"),
            n.get("trade_status"),
            n.get("refund_fee"),
            n.get("out_biz_no")
        ),
        (
            Some("N2"),
            Some("TRADE_SUCCESS"),
            Some("10.00"),
            Some("N2-R1")
        )
    );
}
e2e!(every_refund_is_notified_to_the_channel, pg);
