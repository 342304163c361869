//! A sandbox with `--state DIR` keeps everything across a restart: apps and
//! keys, merchants, buyers and balances, trades, refunds, the ledger,
//! notifications and faults; ids continue without repeating.

use jianlian_alipay::api::trade::{TradeQuery, TradeRef, TradeRefund, TradeStatus};
use jianlian_alipay::{ManualClock, PrivateKey};
use jianlian_sandbox::{AppSpec, BuyerSpec, FaultAction, FaultRule, Sandbox, SandboxConfig};

use crate::common::*;

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_beijing(START).unwrap();
    let config = SandboxConfig {
        state_dir: Some(dir.path().to_owned()),
        ..SandboxConfig::for_tests(clock.clone())
    };
    let key = PrivateKey::generate_2048().unwrap();
    let first = Sandbox::start(config.clone()).await.unwrap();
    let app = first
        .create_app(AppSpec {
            app_public_key: Some(key.public_key().to_base64()),
            ..Default::default()
        })
        .await
        .unwrap();
    let alipay_key = first.alipay_public_key();
    let mut t = TestApp {
        client: client_for(&first, &app, &key, &clock),
        sandbox: first,
        clock: clock.clone(),
        app: app.clone(),
        key: key.clone(),
        alipay_key,
        smid: String::new(),
    };
    t.smid = t.onboard("P1").await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let paid = t
        .call(&t.pay_req("S1", "40.00", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    let refund = TradeRefund {
        trade: TradeRef::out_trade_no("S1"),
        refund_amount: yuan("15.00"),
        out_request_no: Some("r".into()),
        ..Default::default()
    };
    assert!(t.call(&refund).await.is_success());
    t.sandbox
        .add_fault(FaultRule {
            id: 0,
            method: Some("alipay.trade.close".into()),
            out_trade_no: None,
            amount: None,
            action: FaultAction::Unknown { apply: false },
            times: None,
        })
        .await
        .unwrap();
    let ledger_before = t.sandbox.ledger(None).await.len();
    t.sandbox.shutdown().await;

    let second = Sandbox::start(config).await.unwrap();
    assert_eq!(
        second.alipay_public_key(),
        t.alipay_key,
        "Alipay's key is kept"
    );
    t.client = client_for(&second, &app, &key, &clock);
    t.sandbox = second;
    let q = t
        .call(&TradeQuery {
            trade: TradeRef::out_trade_no("S1"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(q.trade_no, paid.trade_no);
    assert_eq!(t.balance(&buyer).await, yuan("475.00"));
    assert_eq!(t.sandbox.ledger(None).await.len(), ledger_before);
    assert_eq!(t.sandbox.faults().await.len(), 1);
    // Repeating the refund is still idempotent; new ids do not repeat.
    assert!(t.call(&refund).await.is_success());
    assert_eq!(t.onboard("P1").await, t.smid);
    let again = t
        .call(&t.pay_req("S2", "1.00", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    assert_ne!(again.trade_no, paid.trade_no);
}
