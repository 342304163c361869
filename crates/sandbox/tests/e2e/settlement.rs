//! Settlement payouts (R9.1, R9.2): same-bank money arrives at 07:00 on the
//! next natural day (Friday's on Saturday), other-bank money at 09:30 on the
//! next working day of the Chinese calendar (Friday's and Saturday's on
//! Monday, the eve of National Day's after the holiday, a make-up Saturday
//! counts); each payout is the day's bill net, in the ledger and in
//! `GET /sandbox/settlements`; a deficit carries forward; a payout in a year
//! without calendar data is an explicit error until a calendar file adds it.

use std::path::Path;

use jianlian_alipay::api::trade::{TradeRef, TradeRefund};
use jianlian_alipay::time::format_beijing;
use jianlian_alipay::{Fen, ManualClock, PrivateKey};
use jianlian_sandbox::model::{LedgerEntry, LedgerKind, RefundPosition, Settlement};
use jianlian_sandbox::{
    AppSpec, BillingOptions, BuyerSpec, Calendar, Payout, PayoutFilter, PayoutStatus, Sandbox,
    SandboxConfig,
};

use crate::bill_support::*;
use crate::common::*;

/// A TestApp whose clock starts at `start` (Beijing).
async fn world_at(
    start: &str,
    spec: AppSpec,
    state: Option<&Path>,
    alipay: Option<PrivateKey>,
) -> TestApp {
    let clock = ManualClock::at_beijing(start).unwrap();
    let config = SandboxConfig {
        state_dir: state.map(Path::to_owned),
        alipay_private_key: alipay,
        ..SandboxConfig::for_tests(clock.clone())
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let key = app_key();
    let app = sandbox
        .create_app(AppSpec {
            app_public_key: Some(key.public_key().to_pem()),
            ..spec
        })
        .await
        .unwrap();
    let client = client_for(&sandbox, &app, &key, &clock);
    let alipay_key = sandbox.alipay_public_key();
    let mut t = TestApp {
        sandbox,
        clock,
        app,
        key,
        alipay_key,
        client,
        smid: String::new(),
    };
    t.smid = t.onboard("M0001").await;
    t
}

fn cross_bank() -> AppSpec {
    AppSpec {
        settlement: Some(Settlement::CrossBank),
        ..Default::default()
    }
}

async fn pay(t: &TestApp, otn: &str, amount: &str) {
    let buyer = t
        .buyer(BuyerSpec {
            balance: Some(yuan("10000.00")),
            ..Default::default()
        })
        .await;
    let code = t.code(&buyer).await;
    assert!(t.call(&t.pay_req(otn, amount, &code)).await.is_success());
}

async fn payouts(t: &TestApp) -> Vec<Payout> {
    t.sandbox
        .settlements(PayoutFilter::default())
        .await
        .unwrap()
}

fn ledger_payouts(ledger: &[LedgerEntry]) -> Vec<(String, String, Fen)> {
    ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::Payout)
        .map(|e| (e.date.clone(), format_beijing(e.at), e.amount))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_bank_money_arrives_at_seven_the_next_natural_day() {
    let t = TestApp::new().await;
    // Friday 2026-03-06 and Saturday 03-07.
    advance_to(&t, "2026-03-06 10:00:00").await;
    pay(&t, "F1", "100.00").await;
    advance_to(&t, "2026-03-07 06:59:59").await;
    assert!(ledger_payouts(&t.sandbox.ledger(None).await).is_empty());
    let planned = payouts(&t).await;
    assert_eq!(planned.len(), 1, "only days with trades settle");
    assert_eq!(planned[0].status, PayoutStatus::Scheduled);
    assert_eq!(
        format_beijing(planned[0].due_at.unwrap()),
        "2026-03-07 07:00:00"
    );
    advance_to(&t, "2026-03-07 10:00:00").await;
    pay(&t, "S1", "50.00").await;
    advance_to(&t, "2026-03-08 07:00:00").await;
    assert_eq!(
        ledger_payouts(&t.sandbox.ledger(None).await),
        [
            (
                "2026-03-07".to_owned(),
                "2026-03-07 07:00:00".to_owned(),
                yuan("99.62")
            ),
            (
                "2026-03-08".to_owned(),
                "2026-03-08 07:00:00".to_owned(),
                yuan("49.81")
            ),
        ]
    );
    // The payout is the bill's net (bills come at 09:00).
    advance_to(&t, "2026-03-08 09:00:00").await;
    for (day, amount) in [("2026-03-06", "99.62"), ("2026-03-07", "49.81")] {
        let bills = t
            .sandbox
            .bills(Some(&t.app.pid), Some(day.parse().unwrap()))
            .await;
        assert_eq!(bills[0].net, yuan(amount));
    }
    // Over HTTP, by arrival date and by business date.
    let base = t.sandbox.base_url();
    let by_arrival: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("{base}/sandbox/settlements?date=2026-03-07"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let list = by_arrival["settlements"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["business_date"], "2026-03-06");
    assert_eq!(list[0]["amount"], "99.62");
    assert_eq!(list[0]["status"], "paid");
    assert_eq!(list[0]["settlement"], "same_bank");
    let bad = reqwest::get(format!("{base}/sandbox/settlements?date=07-03-2026"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_bank_money_waits_for_the_next_working_day() {
    let t = TestApp::with_spec(cross_bank()).await;
    for (at, otn, amount) in [
        ("2026-03-06 10:00:00", "FRI", "100.00"),
        ("2026-03-07 10:00:00", "SAT", "50.00"),
        ("2026-03-08 10:00:00", "SUN", "10.00"),
    ] {
        advance_to(&t, at).await;
        pay(&t, otn, amount).await;
    }
    advance_to(&t, "2026-03-09 09:29:59").await;
    assert!(ledger_payouts(&t.sandbox.ledger(None).await).is_empty());
    advance_to(&t, "2026-03-09 09:30:00").await;
    let monday = |amount: &str| {
        (
            "2026-03-09".to_owned(),
            "2026-03-09 09:30:00".to_owned(),
            yuan(amount),
        )
    };
    assert_eq!(
        ledger_payouts(&t.sandbox.ledger(None).await),
        [monday("99.62"), monday("49.81"), monday("9.96")]
    );
    let list = payouts(&t).await;
    assert_eq!(
        list.iter()
            .map(|p| p.business_date.to_string())
            .collect::<Vec<_>>(),
        ["2026-03-06", "2026-03-07", "2026-03-08"]
    );
    assert!(list.iter().all(|p| p.status == PayoutStatus::Paid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_day_pushes_cross_bank_money_past_the_holiday() {
    let t = world_at("2026-09-30 15:00:00", cross_bank(), None, None).await;
    // A same-bank app of the same acquirer settles on its own terms.
    let key = app_key();
    let same = t
        .sandbox
        .create_app(AppSpec {
            app_public_key: Some(key.public_key().to_pem()),
            pid: Some(t.app.pid.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let same_client = client_for(&t.sandbox, &same, &key, &t.clock);
    pay(&t, "EVE", "100.00").await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    let code = t.code(&buyer).await;
    assert!(
        same_client
            .execute(&t.pay_req("EVE2", "20.00", &code), &Default::default())
            .await
            .unwrap()
            .is_success()
    );
    // Friday 10-09 → Saturday 10-10, a make-up working day.
    advance_to(&t, "2026-10-09 11:00:00").await;
    pay(&t, "FRI", "30.00").await;
    advance_to(&t, "2026-10-10 10:00:00").await;
    let mut paid: Vec<(String, String)> = payouts(&t)
        .await
        .iter()
        .map(|p| {
            (
                format!("{} {}", p.business_date, p.app_id == same.app_id),
                format_beijing(p.paid_at.unwrap()),
            )
        })
        .collect();
    paid.sort();
    assert_eq!(
        paid,
        [
            (
                "2026-09-30 false".to_owned(),
                "2026-10-08 09:30:00".to_owned()
            ),
            (
                "2026-09-30 true".to_owned(),
                "2026-10-01 07:00:00".to_owned()
            ),
            (
                "2026-10-09 false".to_owned(),
                "2026-10-10 09:30:00".to_owned()
            ),
        ]
    );
    // One bill for the acquirer covers both apps; the payouts split it.
    let bill = &t
        .sandbox
        .bills(Some(&t.app.pid), Some("2026-09-30".parse().unwrap()))
        .await[0];
    let nets = Fen::sum(
        payouts(&t)
            .await
            .iter()
            .filter(|p| p.business_date.to_string() == "2026-09-30")
            .map(|p| p.net),
    )
    .unwrap();
    assert_eq!(bill.net, nets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_without_calendar_data_is_an_error_until_a_file_adds_it() {
    let dir = tempfile::tempdir().unwrap();
    let alipay = PrivateKey::generate_2048().unwrap();
    let t = world_at(
        "2026-12-31 10:00:00",
        cross_bank(),
        Some(dir.path()),
        Some(alipay.clone()),
    )
    .await;
    pay(&t, "NYE", "100.00").await;
    advance_to(&t, "2027-01-10 12:00:00").await;
    let list = payouts(&t).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, PayoutStatus::CalendarMissing);
    assert_eq!(list[0].due_at, None);
    let error = list[0].error.clone().unwrap();
    assert!(
        error.contains("2027") && error.contains("--calendar"),
        "{error}"
    );
    assert!(ledger_payouts(&t.sandbox.ledger(None).await).is_empty());
    let day = reqwest::get(format!(
        "{}/sandbox/calendar?date=2027-01-04",
        t.sandbox.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(day.status(), 400);
    assert!(day.text().await.unwrap().contains("2027"));
    let TestApp { sandbox, .. } = t;
    sandbox.shutdown().await;

    // Restarted with 2027 loaded from a file: planned and paid.
    let file = dir.path().join("cn_2027.csv");
    std::fs::write(&file, "date,kind,name\n2027-01-01,off,New Year's Day\n").unwrap();
    let clock = ManualClock::at_beijing("2027-01-10 12:00:00").unwrap();
    let config = SandboxConfig {
        state_dir: Some(dir.path().to_owned()),
        alipay_private_key: Some(alipay),
        ..SandboxConfig::for_tests(clock)
    };
    let again = Sandbox::start_with(
        config,
        BillingOptions {
            calendar: Some(Calendar::builtin_with_file(&file).unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    again.run_due().await.unwrap();
    let list = again.settlements(PayoutFilter::default()).await.unwrap();
    assert_eq!(list[0].status, PayoutStatus::Paid);
    // 2027-01-01 (Friday) off, then the weekend: Monday the 4th.
    assert_eq!(
        format_beijing(list[0].paid_at.unwrap()),
        "2027-01-04 09:30:00"
    );
    assert_eq!(
        ledger_payouts(&again.ledger(None).await),
        [(
            "2027-01-04".to_owned(),
            "2027-01-04 09:30:00".to_owned(),
            yuan("99.62")
        )]
    );
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deficit_carries_into_the_next_payout() {
    let t = TestApp::with_spec(AppSpec {
        refund_position: Some(RefundPosition::Acquirer),
        ..Default::default()
    })
    .await;
    pay(&t, "D1", "100.00").await;
    pay(&t, "D2", "50.00").await;
    // Refunded the next morning, before the 07:00 payout of the first day's
    // net: the acquirer's position at Alipay (149.43) covers it, and the
    // payout then leaves the acquirer short at Alipay.
    advance_to(&t, "2026-03-03 06:00:00").await;
    let full = TradeRefund {
        trade: TradeRef::out_trade_no("D1"),
        refund_amount: yuan("100.00"),
        out_request_no: Some("R1".into()),
        ..Default::default()
    };
    assert!(t.call(&full).await.is_success());
    advance_to(&t, "2026-03-04 10:00:00").await;
    pay(&t, "D3", "200.00").await;
    advance_to(&t, "2026-03-05 07:00:00").await;
    let list = payouts(&t).await;
    let summary: Vec<(String, Fen, Fen, Fen, PayoutStatus)> = list
        .iter()
        .map(|p| {
            (
                p.business_date.to_string(),
                p.net,
                p.carried_in,
                p.amount,
                p.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "2026-03-02".into(),
                yuan("149.43"),
                Fen::ZERO,
                yuan("149.43"),
                PayoutStatus::Paid
            ),
            (
                "2026-03-03".into(),
                Fen::new(-9962),
                Fen::ZERO,
                Fen::ZERO,
                PayoutStatus::NothingToPay
            ),
            (
                "2026-03-04".into(),
                yuan("199.24"),
                Fen::new(-9962),
                yuan("99.62"),
                PayoutStatus::Paid
            ),
        ]
    );
    assert_eq!(list[1].carried_out, Fen::new(-9962));
    let total = Fen::sum(
        ledger_payouts(&t.sandbox.ledger(None).await)
            .iter()
            .map(|p| p.2),
    )
    .unwrap();
    // Everything paid out equals everything earned net.
    assert_eq!(total, yuan("249.05"));
}
