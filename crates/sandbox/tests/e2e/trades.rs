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
    assert_eq!(t.balance(&buyer).await, yuan("411.12"));
    // Repeating the paid out_trade_no: the order is paid, so the client never
    // reads this as a failed payment; it is unknown until a query says whose.
    let code2 = t.code(&buyer).await;
    assert_eq!(
        query_sub_code(&t.call(&t.pay_req("T1", "88.88", &code2)).await),
        "ACQ.TRADE_HAS_SUCCESS"
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
    assert_eq!(t.status("TO1").await, Some(TradeStatus::WaitBuyerPay));
    t.advance(60).await;
    assert_eq!(t.status("TO1").await, Some(TradeStatus::TradeClosed));
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
    assert_eq!(t.status("P1").await, Some(TradeStatus::WaitBuyerPay));
    t.sandbox.confirm(&trade.trade_no).await.unwrap();
    assert_eq!(t.status("P1").await, Some(TradeStatus::TradeSuccess));
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
    assert_eq!(t.status("C1").await, Some(TradeStatus::TradeClosed));
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
    assert_eq!(t.status("X1").await, Some(TradeStatus::TradeClosed));
    assert_eq!(t.balance(&buyer).await, yuan("500.00"));
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

#[tokio::test]
async fn face_payment_with_a_security_code() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let token = t.sandbox.security_code(&buyer, None).await.unwrap();
    assert!(token.starts_with("fp") && token.len() == 35, "{token}");
    let face = |otn: &str, token: &str| {
        let mut req = t.pay_req(otn, "12.00", token);
        req.scene = Some("security_code".into());
        req
    };
    // A token is not a payment code, and a payment code is not a token.
    assert_eq!(
        sub_code(&t.call(&t.pay_req("FP0", "12.00", &token)).await),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
    assert_eq!(
        sub_code(&t.call(&face("FP0", &t.code(&buyer).await)).await),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
    // Served like bar_code: paid at once, the buyer's funds drawn.
    let body = t.call(&face("FP1", &token)).await.success().unwrap();
    assert_eq!(body.buyer_user_id.as_deref(), Some(buyer.as_str()));
    assert_eq!(body.receipt_amount, Some(yuan("12.00")));
    assert_eq!(t.status("FP1").await, Some(TradeStatus::TradeSuccess));
    assert_eq!(t.balance(&buyer).await, yuan("488.00"));
    // Single use, 60 s of virtual time, paying with the instrument asked for.
    assert_eq!(
        sub_code(&t.call(&face("FP2", &token)).await),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
    let late = t.sandbox.security_code(&buyer, None).await.unwrap();
    t.advance(61).await;
    assert_eq!(
        sub_code(&t.call(&face("FP3", &late)).await),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
    let huabei = t
        .buyer(BuyerSpec {
            huabei_limit: Some(yuan("50.00")),
            ..Default::default()
        })
        .await;
    let token = t
        .sandbox
        .security_code(&huabei, Some("huabei"))
        .await
        .unwrap();
    let body = t.call(&face("FP4", &token)).await.success().unwrap();
    assert_eq!(body.fund_bill_list.unwrap()[0].fund_channel, "PCREDIT");
    // And through the control API.
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/buyers/{buyer}/security-codes",
            t.sandbox.control_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let json: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    let token = json["auth_code"].as_str().unwrap();
    assert!(t.call(&face("FP5", token)).await.is_success());
}

#[tokio::test]
async fn another_buyers_code_does_not_match_the_trade() {
    let t = TestApp::new().await;
    let slow = t
        .buyer(BuyerSpec {
            requires_password: Some(true),
            ..Default::default()
        })
        .await;
    let other = t.buyer(BuyerSpec::default()).await;
    assert!(matches!(
        t.call(&t.pay_req("BM", "5.00", &t.code(&slow).await)).await,
        Outcome::InProgress(_)
    ));
    // The cashier scans someone else's code for the waiting trade.
    let stranger = t.code(&other).await;
    assert_eq!(
        sub_code(&t.call(&t.pay_req("BM", "5.00", &stranger)).await),
        "ACQ.TRADE_BUYER_NOT_MATCH"
    );
    // The stranger's code was not used up, and the right buyer still waits.
    assert!(
        t.call(&t.pay_req("BN", "1.00", &stranger))
            .await
            .is_success()
    );
    assert!(matches!(
        t.call(&t.pay_req("BM", "5.00", &t.code(&slow).await)).await,
        Outcome::InProgress(_)
    ));
    // Paid: the same buyer is told it has succeeded, another is told no match.
    assert!(
        t.call(&t.pay_req("BO", "2.00", &t.code(&other).await))
            .await
            .is_success()
    );
    assert_eq!(
        sub_code(&t.call(&t.pay_req("BO", "2.00", &t.code(&slow).await)).await),
        "ACQ.TRADE_BUYER_NOT_MATCH"
    );
    assert_eq!(
        query_sub_code(
            &t.call(&t.pay_req("BO", "2.00", &t.code(&other).await))
                .await
        ),
        "ACQ.TRADE_HAS_SUCCESS"
    );
    // alipay.trade.create for another buyer under an existing out_trade_no.
    let create = |buyer: &str| TradeCreate {
        buyer_id: Some(buyer.to_owned()),
        order: t.order("BC", "3.00"),
        ..Default::default()
    };
    assert!(t.call(&create(&slow)).await.is_success());
    assert_eq!(
        sub_code(&t.call(&create(&other)).await),
        "ACQ.TRADE_BUYER_NOT_MATCH"
    );
}

#[tokio::test]
async fn balance_payments_switched_off_by_the_buyer() {
    let t = TestApp::new().await;
    let buyer = t
        .buyer(BuyerSpec {
            balance_payment_disabled: Some(true),
            points: Some(100),
            bank_cards: vec![CardSpec {
                card_type: "DEBIT_CARD".into(),
                balance: Some(yuan("50.00")),
                limit: None,
                bank_code: None,
            }],
            ..Default::default()
        })
        .await;
    // Only the balance would pay the rest: refused.
    assert_eq!(
        sub_code(
            &t.call(&t.pay_req("BD1", "5.00", &t.code(&buyer).await))
                .await
        ),
        "ACQ.ERROR_BALANCE_PAYMENT_DISABLE"
    );
    // Points alone pay it; a bank card pays the rest.
    assert!(
        t.call(&t.pay_req("BD2", "1.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let card = t
        .sandbox
        .payment_code(&buyer, Some("bank_card:0"))
        .await
        .unwrap();
    assert!(t.call(&t.pay_req("BD3", "5.00", &card)).await.is_success());
    assert_eq!(t.balance(&buyer).await, yuan("500.00"));
}

#[tokio::test]
async fn amounts_above_the_limit_exceed_the_total_fee() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // apis.md §2: total_amount ≤ 100000000.00.
    assert_eq!(
        sub_code(
            &t.call(&t.pay_req("TF1", "100000000.01", &t.code(&buyer).await))
                .await
        ),
        "ACQ.TOTAL_FEE_EXCEED"
    );
    let pre = TradePrecreate {
        order: t.order("TF2", "100000000.01"),
        ..Default::default()
    };
    assert_eq!(sub_code(&t.call(&pre).await), "ACQ.TOTAL_FEE_EXCEED");
    // Zero is malformed, not too much.
    let out = t
        .call(&t.pay_req("TF3", "0.00", &t.code(&buyer).await))
        .await;
    let Outcome::Failed(f) = out else {
        panic!("{out:?}")
    };
    assert_eq!(f.sub_code.as_deref(), Some("isv.invalid-parameter"));
}

#[tokio::test]
async fn a_paid_trade_cannot_be_closed() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("CP", "5.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    // apis.md §2.6: only WAIT_BUYER_PAY may be closed.
    let out = t
        .call(&TradeClose {
            trade: TradeRef::out_trade_no("CP"),
            ..Default::default()
        })
        .await;
    assert_eq!(sub_code(&out), "ACQ.TRADE_STATUS_ERROR");
    assert_eq!(t.status("CP").await, Some(TradeStatus::TradeSuccess));
}

#[tokio::test]
async fn big_merchant_terminals_and_only_admitted_trades_count() {
    let spec = AppSpec {
        risk: Some(jianlian_sandbox::model::RiskRule {
            stores_per_day_max: None,
            terminals_per_day_max: Some(2),
        }),
        ..Default::default()
    };
    let t = TestApp::with_spec(spec).await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let poor = t
        .buyer(BuyerSpec {
            balance: Some(yuan("0.50")),
            ..Default::default()
        })
        .await;
    let at = |otn: &str, terminal: &str, code: &str| {
        let mut req = t.pay_req(otn, "1.00", code);
        req.order.terminal_id = Some(terminal.into());
        req
    };
    // Refused requests from other terminals are not counted: a bad code, a
    // buyer who cannot pay.
    assert_eq!(
        sub_code(&t.call(&at("R1", "T9", "1234")).await),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
    assert_eq!(
        sub_code(&t.call(&at("R2", "T8", &t.code(&poor).await)).await),
        "ACQ.BUYER_BALANCE_NOT_ENOUGH"
    );
    for (otn, terminal) in [("R3", "T1"), ("R4", "T2"), ("R5", "T1")] {
        let out = t.call(&at(otn, terminal, &t.code(&buyer).await)).await;
        assert!(out.is_success(), "{otn}: {out:?}");
    }
    let m = t.sandbox.merchant(&t.smid).await.unwrap();
    assert_eq!(
        m.seen_terminals.iter().collect::<Vec<_>>(),
        vec!["T1", "T2"]
    );
    // R2.2: a third terminal in one day blocks the smid, then all its trades.
    assert_eq!(
        sub_code(&t.call(&at("R6", "T3", &t.code(&buyer).await)).await),
        "ALI40793"
    );
    assert_eq!(
        sub_code(&t.call(&at("R7", "T1", &t.code(&buyer).await)).await),
        "ALI40793"
    );
    assert!(
        t.sandbox
            .merchant(&t.smid)
            .await
            .unwrap()
            .risk_blocked
            .unwrap()
            .contains("3 distinct terminals")
    );
    // The next day counts afresh once unblocked.
    t.sandbox.set_merchant_risk(&t.smid, false).await.unwrap();
    t.advance(24 * 3600).await;
    for (otn, terminal) in [("R8", "T4"), ("R9", "T5")] {
        let out = t.call(&at(otn, terminal, &t.code(&buyer).await)).await;
        assert!(out.is_success(), "{otn}: {out:?}");
    }
}

#[tokio::test]
async fn settlement_ids_and_the_cancel_mark() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    // apis.md §2.1, §2.4: institution-indirect trades carry a settlement_id.
    let paid = t
        .call(&t.pay_req("SI", "6.00", &t.code(&buyer).await))
        .await
        .success()
        .unwrap();
    let id = paid.settlement_id.clone().expect("settlement_id on pay");
    assert_eq!(id.len(), 32);
    let q = t.call(&query("SI")).await.success().unwrap();
    assert_eq!(q.settlement_id.as_deref(), Some(id.as_str()));
    assert_eq!(q.ext_infos, None);
    // §2.5: a cancel that refunds carries refund_settlement_id; the trade's
    // query then says it was cancelled, as in apis.md's ext_infos example.
    let c = t.call(&cancel("SI")).await.success().unwrap();
    let refund_id = c.refund_settlement_id.expect("refund_settlement_id");
    assert_ne!(refund_id, id);
    let q = t.call(&query("SI")).await.success().unwrap();
    assert_eq!(q.ext_infos.as_deref(), Some(r#"{"action":"cancel"}"#));
    assert_eq!(q.settlement_id.as_deref(), Some(id.as_str()));
    // An unpaid trade has none; cancelled, it is marked the same way.
    let slow = t
        .buyer(BuyerSpec {
            requires_password: Some(true),
            ..Default::default()
        })
        .await;
    let waiting = match t.call(&t.pay_req("SW", "6.00", &t.code(&slow).await)).await {
        Outcome::InProgress(r) => r.body,
        other => panic!("{other:?}"),
    };
    assert_eq!(waiting.settlement_id, None);
    let c = t.call(&cancel("SW")).await.success().unwrap();
    assert_eq!(c.action, Some(CancelAction::Close));
    assert_eq!(c.refund_settlement_id, None);
    let q = t.call(&query("SW")).await.success().unwrap();
    assert_eq!(q.ext_infos.as_deref(), Some(r#"{"action":"cancel"}"#));
}
