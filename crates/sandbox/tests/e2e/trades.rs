//! Barcode pay (R4), precreate and create (R5), query, close and cancel, the
//! indirect rules (R3) and the trade state machine (apis.md §3).

use jianlian_alipay::api::trade::{
    CancelAction, RetryFlag, TradeCancel, TradeClose, TradeCreate, TradePrecreate, TradeQuery,
    TradeRef, TradeStatus,
};
use jianlian_alipay::{Code, Outcome};
use jianlian_sandbox::{AppSpec, BuyerSpec, CardSpec, VoucherSpec};

use crate::common::*;

fn query(otn: &str) -> TradeQuery {
    TradeQuery {
        trade: TradeRef::out_trade_no(otn),
        ..Default::default()
    }
}

fn cancel(otn: &str) -> TradeCancel {
    TradeCancel {
        trade: TradeRef::out_trade_no(otn),
        ..Default::default()
    }
}

#[tokio::test]
async fn barcode_pay_then_query() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let code = t.code(&buyer).await;
    let paid = t.call(&t.pay_req("T1", "88.88", &code)).await;
    let body = paid.success().unwrap();
    let trade_no = body.trade_no.clone().unwrap();
    assert_eq!(trade_no.len(), 28);
    assert!(trade_no.starts_with("2026030222"));
    assert_eq!(body.total_amount, Some(yuan("88.88")));
    assert_eq!(body.receipt_amount, Some(yuan("88.88")));
    assert_eq!(body.buyer_user_id.as_deref(), Some(buyer.as_str()));
    assert_eq!(
        body.charge_amount,
        Some(yuan("0.34")),
        "0.0038 × 88.88 = 0.3377 → 0.34"
    );
    assert_eq!(
        body.fund_bill_list.unwrap()[0].fund_channel,
        "ALIPAYACCOUNT"
    );
    let q = t.call(&query("T1")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(q.trade_no.as_deref(), Some(trade_no.as_str()));
    assert_eq!(q.alipay_sub_merchant_id.as_deref(), Some(t.smid.as_str()));
    assert_eq!(q.store_id.as_deref(), Some("SHKFC001"));
    // R3.7: single use.
    let again = t.call(&t.pay_req("T2", "1.00", &code)).await;
    assert_eq!(sub_code(&again), "ACQ.PAYMENT_AUTH_CODE_INVALID");
    assert_eq!(
        t.sandbox.buyer(&buyer).await.unwrap().balance,
        yuan("411.12")
    );
    // Repeating the paid out_trade_no: the order is paid, so the client never
    // reads this as a failed payment; it is unknown until a query says whose.
    let code2 = t.code(&buyer).await;
    let again = t.call(&t.pay_req("T1", "88.88", &code2)).await;
    assert!(
        matches!(
            &again,
            Outcome::Unknown(jianlian_alipay::UnknownReason::Gateway { sub_code: Some(s), .. })
                if s == "ACQ.TRADE_HAS_SUCCESS"
        ),
        "{again:?}"
    );
    assert_eq!(
        sub_code(&t.call(&t.pay_req("T1", "88.00", &code2)).await),
        "ACQ.CONTEXT_INCONSISTENT"
    );
    // R4.4: barcode pay sends no notification, even with a notify_url.
    assert!(t.sandbox.notifications(None).await.is_empty());
}

#[tokio::test]
async fn payment_code_expires_after_60_seconds() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let code = t.code(&buyer).await;
    t.advance(61).await;
    let failed = t.call(&t.pay_req("T1", "1.00", &code)).await;
    assert_eq!(sub_code(&failed), "ACQ.PAYMENT_AUTH_CODE_INVALID");
    let Outcome::Failed(f) = failed else {
        unreachable!()
    };
    assert_eq!(f.node["out_trade_no"], "T1");
    assert_eq!(f.node["receipt_amount"], "0.00");
    // A malformed code is refused the same way.
    assert_eq!(
        sub_code(&t.call(&t.pay_req("T2", "1.00", "1234")).await),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
}

#[tokio::test]
async fn password_and_large_amounts_wait_for_the_buyer() {
    let t = TestApp::new().await;
    // R4.1: a buyer who needs a password → 10003, then confirm.
    let buyer = t
        .buyer(BuyerSpec {
            requires_password: Some(true),
            ..Default::default()
        })
        .await;
    let code = t.code(&buyer).await;
    let Outcome::InProgress(reply) = t.call(&t.pay_req("W1", "10.00", &code)).await else {
        panic!("expected 10003");
    };
    let trade_no = reply.body.trade_no.unwrap();
    let q = t.call(&query("W1")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::WaitBuyerPay));
    t.sandbox.confirm(&trade_no).await.unwrap();
    let q = t.call(&query("W1")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeSuccess));
    assert_eq!(q.receipt_amount, Some(yuan("10.00")));

    // Amounts from 1000.00 wait too; the buyer abandons.
    let rich = t
        .buyer(BuyerSpec {
            balance: Some(yuan("5000.00")),
            ..Default::default()
        })
        .await;
    let code = t.code(&rich).await;
    let out = t.call(&t.pay_req("W2", "1000.00", &code)).await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    let small = t.code(&rich).await;
    assert!(
        t.call(&t.pay_req("W3", "999.99", &small))
            .await
            .is_success()
    );
    let w2 = t
        .sandbox
        .trade_by_out_trade_no(&t.app.pid, "W2")
        .await
        .unwrap();
    t.sandbox.abandon(&w2.trade_no).await.unwrap();
    let q = t.call(&query("W2")).await.success().unwrap();
    assert_eq!(q.trade_status, Some(TradeStatus::TradeClosed));

    // R4.2: a waiting trade the client gives up on is cancelled: closed.
    let code = t.code(&buyer).await;
    assert!(matches!(
        t.call(&t.pay_req("W4", "5.00", &code)).await,
        Outcome::InProgress(_)
    ));
    let c = t.call(&cancel("W4")).await.success().unwrap();
    assert_eq!(c.action, Some(CancelAction::Close));
    assert_eq!(c.retry_flag, Some(RetryFlag::N));
    let w4 = t
        .sandbox
        .trade_by_out_trade_no(&t.app.pid, "W4")
        .await
        .unwrap();
    assert!(
        t.sandbox.confirm(&w4.trade_no).await.is_err(),
        "a cancelled trade cannot be paid"
    );
}

#[tokio::test]
async fn waiting_trades_time_out_on_the_virtual_clock() {
    let t = TestApp::new().await;
    let buyer = t
        .buyer(BuyerSpec {
            requires_password: Some(true),
            ..Default::default()
        })
        .await;
    let code = t.code(&buyer).await;
    let mut req = t.pay_req("TO1", "3.00", &code);
    req.order.timeout_express = Some("5m".into());
    assert!(matches!(t.call(&req).await, Outcome::InProgress(_)));
    t.advance(4 * 60).await;
    assert_eq!(
        t.call(&query("TO1")).await.success().unwrap().trade_status,
        Some(TradeStatus::WaitBuyerPay)
    );
    t.advance(60).await;
    assert_eq!(
        t.call(&query("TO1")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeClosed)
    );
    let trade = t
        .sandbox
        .trade_by_out_trade_no(&t.app.pid, "TO1")
        .await
        .unwrap();
    assert_eq!(trade.closed_at, Some(trade.expires_at));
}

#[tokio::test]
async fn indirect_rules_are_enforced() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // R3.1: sub_merchant missing, blank, or not this acquirer's.
    let mut req = t.pay_req("I1", "1.00", &t.code(&buyer).await);
    req.order.sub_merchant = None;
    assert_eq!(
        sub_code(&t.call(&req).await),
        "ACQ.PLATFORM_BUSINESS_ACQUIRE_MODE_MUST_MERCHANT_ID"
    );
    req.order.sub_merchant = Some(jianlian_alipay::api::trade::SubMerchant::new(" "));
    assert_eq!(
        sub_code(&t.call(&req).await),
        "ACQ.SECONDARY_MERCHANT_ID_BLANK"
    );
    let other = t.other_acquirer().await;
    let other_smid = other
        .execute(
            &jianlian_alipay::api::merchant::IndirectCreate {
                profile: profile("OTHER"),
            },
            &Default::default(),
        )
        .await
        .unwrap()
        .success()
        .unwrap()
        .sub_merchant_id
        .unwrap();
    req.order.sub_merchant = Some(jianlian_alipay::api::trade::SubMerchant::new(other_smid));
    assert_eq!(
        sub_code(&t.call(&req).await),
        "ACQ.SECONDARY_MERCHANT_ID_INVALID"
    );
    // R3.2: store_id and terminal_id.
    let mut req = t.pay_req("I2", "1.00", &t.code(&buyer).await);
    req.order.store_id = None;
    assert_eq!(sub_code(&t.call(&req).await), "ACQ.INVALID_STORE_ID");
    req.order.store_id = Some("S1".into());
    req.order.terminal_id = None;
    assert_eq!(sub_code(&t.call(&req).await), "ACQ.INVALID_PARAMETER");
    // The switch turns the requirement off.
    t.sandbox
        .update_app(
            &t.app.app_id,
            AppSpec {
                require_store_terminal: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(t.call(&req).await.is_success());
    // R3.8: without "general finance", trades fail.
    t.sandbox
        .update_app(
            &t.app.app_id,
            AppSpec {
                general_finance: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let req = t.pay_req("I3", "1.00", &t.code(&buyer).await);
    assert_eq!(
        sub_code(&t.call(&req).await),
        "ACQ.ERROR_SELLER_CERTIFY_LEVEL_LIMIT"
    );
    // Schema errors name the field.
    let mut bad = t.pay_req("I4", "1.00", "x");
    bad.order.out_trade_no = "has space".into();
    let Outcome::Failed(f) = t.call(&bad).await else {
        panic!()
    };
    assert_eq!(f.code, Code::InvalidArguments);
    assert!(f.sub_msg.unwrap().contains("out_trade_no"));
}

#[tokio::test]
async fn funding_sources_and_buyer_limits() {
    let t = TestApp::new().await;
    let poor = t
        .buyer(BuyerSpec {
            balance: Some(yuan("1.00")),
            ..Default::default()
        })
        .await;
    assert_eq!(
        sub_code(&t.call(&t.pay_req("F1", "2.00", &t.code(&poor).await)).await),
        "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    );
    // A failed pay creates no trade.
    assert!(matches!(t.call(&query("F1")).await, Outcome::Failed(_)));
    // R8.1: bank cards carry fund_type.
    let carded = t
        .buyer(BuyerSpec {
            bank_cards: vec![CardSpec {
                card_type: "CREDIT_CARD".into(),
                balance: None,
                limit: Some(yuan("100.00")),
                bank_code: Some("CMB".into()),
            }],
            pay_with: Some("bank_card:0".into()),
            ..Default::default()
        })
        .await;
    let body = t
        .call(&t.pay_req("F2", "30.00", &t.code(&carded).await))
        .await
        .success()
        .unwrap();
    let bill = &body.fund_bill_list.unwrap()[0];
    assert_eq!(
        (bill.fund_channel.as_str(), bill.fund_type.as_deref()),
        ("BANKCARD", Some("CREDIT_CARD"))
    );
    assert_eq!(
        sub_code(
            &t.call(&t.pay_req("F3", "80.00", &t.code(&carded).await))
                .await
        ),
        "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH"
    );
    // Vouchers, then points, then the instrument; amounts split as Alipay reports them.
    let rich = t
        .buyer(BuyerSpec {
            vouchers: vec![
                VoucherSpec {
                    channel: "MDISCOUNT".into(),
                    amount: yuan("20.00"),
                    name: None,
                },
                VoucherSpec {
                    channel: "COUPON".into(),
                    amount: yuan("5.00"),
                    name: None,
                },
            ],
            points: Some(1000),
            ..Default::default()
        })
        .await;
    let body = t
        .call(&t.pay_req("F4", "100.00", &t.code(&rich).await))
        .await
        .success()
        .unwrap();
    assert_eq!(
        body.receipt_amount,
        Some(yuan("80.00")),
        "merchant voucher not received"
    );
    assert_eq!(body.buyer_pay_amount, Some(yuan("65.00")));
    assert_eq!(body.point_amount, Some(yuan("10.00")));
    assert_eq!(body.voucher_detail_list.unwrap().len(), 2);
    // Daily limit.
    let limited = t
        .buyer(BuyerSpec {
            daily_limit: Some(yuan("10.00")),
            ..Default::default()
        })
        .await;
    assert!(
        t.call(&t.pay_req("F5", "6.00", &t.code(&limited).await))
            .await
            .is_success()
    );
    assert_eq!(
        sub_code(
            &t.call(&t.pay_req("F6", "6.00", &t.code(&limited).await))
                .await
        ),
        "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR"
    );
    // Risky buyer (R13.1).
    let risky = t
        .buyer(BuyerSpec {
            risky: Some(true),
            ..Default::default()
        })
        .await;
    assert_eq!(
        sub_code(
            &t.call(&t.pay_req("F7", "1.00", &t.code(&risky).await))
                .await
        ),
        "ACQ.PAYMENT_REQUEST_HAS_RISK"
    );
}

#[tokio::test]
async fn precreate_scan_and_create() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let pre = TradePrecreate {
        order: t.order("P1", "12.00"),
        ..Default::default()
    };
    let qr = t.call(&pre).await.success().unwrap().qr_code.unwrap();
    assert!(qr.starts_with("https://qr.alipay.com/"));
    // R3.5: no trade until the scan.
    assert_eq!(sub_code(&t.call(&query("P1")).await), "ACQ.TRADE_NOT_EXIST");
    assert_eq!(
        sub_code(
            &t.call(&TradeClose {
                trade: TradeRef::out_trade_no("P1"),
                ..Default::default()
            })
            .await
        ),
        "ACQ.TRADE_NOT_EXIST"
    );
    let trade = t.sandbox.scan_qr(&qr, &buyer, false).await.unwrap();
    assert_eq!(
        t.call(&query("P1")).await.success().unwrap().trade_status,
        Some(TradeStatus::WaitBuyerPay)
    );
    t.sandbox.confirm(&trade.trade_no).await.unwrap();
    assert_eq!(
        t.call(&query("P1")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeSuccess)
    );
    // An unscanned QR expires after 2 hours.
    let qr2 = t
        .call(&TradePrecreate {
            order: t.order("P2", "1.00"),
            ..Default::default()
        })
        .await
        .success()
        .unwrap()
        .qr_code
        .unwrap();
    t.advance(2 * 3600).await;
    assert!(t.sandbox.scan_qr(&qr2, &buyer, true).await.is_err());
    // create: a waiting trade for a known buyer; close it.
    let create = TradeCreate {
        buyer_id: Some(buyer.clone()),
        order: t.order("C1", "8.00"),
        ..Default::default()
    };
    let created = t.call(&create).await.success().unwrap();
    assert_eq!(created.trade_no.as_ref().unwrap().len(), 28);
    let closed = t
        .call(&TradeClose {
            trade: TradeRef::out_trade_no("C1"),
            ..Default::default()
        })
        .await;
    assert!(closed.is_success());
    assert_eq!(
        t.call(&query("C1")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeClosed)
    );
    assert_eq!(
        sub_code(
            &t.call(&TradeClose {
                trade: TradeRef::out_trade_no("C1"),
                ..Default::default()
            })
            .await
        ),
        "ACQ.TRADE_STATUS_ERROR"
    );
    let unknown_buyer = TradeCreate {
        buyer_id: Some("2088999999999999".into()),
        order: t.order("C2", "8.00"),
        ..Default::default()
    };
    assert_eq!(
        sub_code(&t.call(&unknown_buyer).await),
        "ACQ.BUYER_NOT_EXIST"
    );
}

#[tokio::test]
async fn cancel_refunds_paid_trades_within_24_hours() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("X1", "50.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let c = t.call(&cancel("X1")).await.success().unwrap();
    assert_eq!(c.action, Some(CancelAction::Refund));
    assert!(c.gmt_refund_pay.is_some());
    assert_eq!(
        t.call(&query("X1")).await.success().unwrap().trade_status,
        Some(TradeStatus::TradeClosed)
    );
    assert_eq!(
        t.sandbox.buyer(&buyer).await.unwrap().balance,
        yuan("500.00")
    );
    // Cancelling again is harmless.
    assert_eq!(
        t.call(&cancel("X1")).await.success().unwrap().action,
        Some(CancelAction::Refund)
    );
    // A pay that never landed: success, nothing to do.
    let none = t.call(&cancel("NEVER")).await.success().unwrap();
    assert_eq!((none.retry_flag, none.action), (Some(RetryFlag::N), None));
    // After 24 hours: refund instead.
    assert!(
        t.call(&t.pay_req("X2", "5.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    t.advance(24 * 3600 + 1).await;
    assert_eq!(
        sub_code(&t.call(&cancel("X2")).await),
        "ACQ.TRADE_CANCEL_TIME_OUT"
    );
}

#[tokio::test]
async fn big_merchant_mode_is_intercepted() {
    let spec = AppSpec {
        risk: Some(jianlian_sandbox::model::RiskRule {
            stores_per_day_max: Some(2),
            terminals_per_day_max: None,
        }),
        ..Default::default()
    };
    let t = TestApp::with_spec(spec).await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    for (i, store) in ["S1", "S2"].iter().enumerate() {
        let mut req = t.pay_req(&format!("B{i}"), "1.00", &t.code(&buyer).await);
        req.order.store_id = Some((*store).into());
        assert!(t.call(&req).await.is_success());
    }
    // R2.2: a third store in one day: the smid is blocked, all its trades intercepted.
    let mut req = t.pay_req("B3", "1.00", &t.code(&buyer).await);
    req.order.store_id = Some("S3".into());
    assert_eq!(sub_code(&t.call(&req).await), "ALI40793");
    let req = t.pay_req("B4", "1.00", &t.code(&buyer).await);
    assert_eq!(sub_code(&t.call(&req).await), "ALI40793");
    assert!(
        t.sandbox
            .merchant(&t.smid)
            .await
            .unwrap()
            .risk_blocked
            .is_some()
    );
    t.sandbox.set_merchant_risk(&t.smid, false).await.unwrap();
    let req = t.pay_req("B5", "1.00", &t.code(&buyer).await);
    assert!(t.call(&req).await.is_success());
}

#[tokio::test]
async fn the_named_payer_must_pay() {
    let t = TestApp::new().await;
    let buyer = t
        .buyer(BuyerSpec {
            name: Some("张三".into()),
            cert_no: Some("110105194912310021".into()),
            ..Default::default()
        })
        .await;
    // R3.6: ext_user_info names the required payer.
    let mut req = t.pay_req("E1", "1.00", &t.code(&buyer).await);
    req.order.ext_user_info = Some(serde_json::json!({"name": "李四", "fix_buyer": "T"}));
    assert_eq!(sub_code(&t.call(&req).await), "ACQ.PAYER_UNMATCHED");
    let mut req = t.pay_req("E2", "1.00", &t.code(&buyer).await);
    req.order.ext_user_info =
        Some(serde_json::json!({"name": "张三", "cert_no": "110105194912310021"}));
    assert!(t.call(&req).await.is_success());
}
