//! Property: whatever the timing of payments, partial refunds and cancels over
//! consecutive days (midnight boundaries included), every paid trade appears
//! in exactly one bill, the one of its payment day, and every refund in
//! exactly one, the one of its refund day; nothing is missing or counted
//! twice; each day's bill adds up to that day's ledger and each day's payout
//! equals the bill's 实收净额 total.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use jianlian_alipay::api::trade::{CancelAction, TradeCancel, TradeRef, TradeRefund, YesNo};
use jianlian_alipay::time::{beijing_date, beijing_midnight};
use jianlian_alipay::{Fen, ManualClock, PrivateKey};
use jianlian_sandbox::bills::format::Flavor;
use jianlian_sandbox::model::RefundPosition;
use jianlian_sandbox::{AppSpec, BuyerSpec, PayoutFilter, PayoutStatus, Sandbox, SandboxConfig};
use jiff::SignedDuration;
use proptest::prelude::*;

use crate::bill_support::*;
use crate::common::*;

#[derive(Debug, Clone)]
enum Op {
    /// Let this many seconds pass.
    Wait(i64),
    /// Jump to the next Beijing midnight, or one second before it.
    Midnight {
        one_second_before: bool,
    },
    Pay(i64),
    /// Refund this share (per mille) of what is left of the n-th trade.
    Refund {
        trade: usize,
        per_mille: i64,
    },
    Cancel {
        trade: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1i64..30_000).prop_map(Op::Wait),
        1 => any::<bool>().prop_map(|b| Op::Midnight { one_second_before: b }),
        4 => (1i64..50_000).prop_map(Op::Pay),
        2 => (0usize..20, 1i64..=1000).prop_map(|(trade, per_mille)| Op::Refund { trade, per_mille }),
        1 => (0usize..20).prop_map(|trade| Op::Cancel { trade }),
    ]
}

struct Keys {
    alipay: PrivateKey,
    app: PrivateKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        alipay: PrivateKey::generate_2048().unwrap(),
        app: PrivateKey::generate_2048().unwrap(),
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

async fn world() -> TestApp {
    let clock = ManualClock::at_beijing(START).unwrap();
    let config = SandboxConfig {
        alipay_private_key: Some(keys().alipay.clone()),
        ..SandboxConfig::for_tests(clock.clone())
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let key = keys().app.clone();
    let app = sandbox
        .create_app(AppSpec {
            app_public_key: Some(key.public_key().to_pem()),
            refund_position: Some(RefundPosition::Acquirer),
            ..Default::default()
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
    t.smid = t.onboard("PROP").await;
    t
}

async fn scenario(ops: Vec<Op>) {
    let t = world().await;
    let buyer = t
        .buyer(BuyerSpec {
            balance: Some(Fen::new(100_000_000)),
            ..Default::default()
        })
        .await;
    let mut otns: Vec<String> = Vec::new();
    let mut requests = 0;
    // Where each payment and refund belongs, from the test's own reading of
    // the clock when it made the call (the clock stands still during a call).
    let mut want_trades: BTreeMap<String, jiff::civil::Date> = BTreeMap::new();
    let mut want_refunds: BTreeMap<(String, String), jiff::civil::Date> = BTreeMap::new();
    let mut cancel_refunds: BTreeMap<String, jiff::civil::Date> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Wait(s) => t.advance(s).await,
            Op::Midnight { one_second_before } => {
                let now = t.sandbox.now();
                let next = beijing_midnight(beijing_date(now).tomorrow().unwrap());
                let target = if one_second_before {
                    next.checked_sub(SignedDuration::from_secs(1)).unwrap()
                } else {
                    next
                };
                t.advance(target.duration_since(now).as_secs().max(0)).await;
            }
            Op::Pay(fen) => {
                let otn = format!("T{}", otns.len());
                let code = t.code(&buyer).await;
                let mut req = t.pay_req(&otn, "0.01", &code);
                req.order.total_amount = Fen::new(fen);
                let day = beijing_date(t.sandbox.now());
                assert!(t.call(&req).await.is_success(), "{otn}");
                want_trades.insert(otn.clone(), day);
                otns.push(otn);
            }
            Op::Refund { trade, per_mille } => {
                let Some(otn) = otns.get(trade % otns.len().max(1)) else {
                    continue;
                };
                let tr = t
                    .sandbox
                    .trade_by_out_trade_no(&t.app.pid, otn)
                    .await
                    .unwrap();
                let left = tr.total.get() - tr.refunded().get();
                let amount = (left * per_mille / 1000).max(1);
                if left <= 0 {
                    continue;
                }
                requests += 1;
                let day = beijing_date(t.sandbox.now());
                let out_request_no = format!("R{requests}");
                // Refused refunds (finished or closed trades) are fine here.
                let answer = t
                    .call(&TradeRefund {
                        trade: TradeRef::out_trade_no(otn),
                        refund_amount: Fen::new(amount.min(left)),
                        out_request_no: Some(out_request_no.clone()),
                        ..Default::default()
                    })
                    .await;
                if answer.success().and_then(|r| r.fund_change) == Some(YesNo::Y) {
                    want_refunds.insert((otn.clone(), out_request_no), day);
                }
            }
            Op::Cancel { trade } => {
                if let Some(otn) = otns.get(trade % otns.len().max(1)) {
                    let day = beijing_date(t.sandbox.now());
                    let answer = t
                        .call(&TradeCancel {
                            trade: TradeRef::out_trade_no(otn),
                            ..Default::default()
                        })
                        .await;
                    if answer.success().and_then(|r| r.action) == Some(CancelAction::Refund) {
                        // A repeated cancel answers from the first one.
                        cancel_refunds.entry(otn.clone()).or_insert(day);
                    }
                }
            }
        }
    }
    // Every day so far gets its bill (and payout) by 09:00 two days on.
    let last = beijing_date(t.sandbox.now());
    advance_to(
        &t,
        &format!("{} 09:30:00", last.tomorrow().unwrap().tomorrow().unwrap()),
    )
    .await;

    let pid = t.app.pid.clone();
    // The sandbox's records agree with what the test saw; a cancel's refund
    // takes the key the sandbox gave it.
    for otn in &otns {
        let tr = t.sandbox.trade_by_out_trade_no(&pid, otn).await.unwrap();
        let paid = tr.paid_at.expect("every Pay op paid");
        assert_eq!(
            Some(&beijing_date(paid)),
            want_trades.get(otn),
            "{otn} paid"
        );
        for r in &tr.refunds {
            let key = (otn.clone(), r.out_request_no.clone());
            let day = match want_refunds.get(&key) {
                Some(day) => *day,
                None => {
                    let day = *cancel_refunds
                        .get(otn)
                        .unwrap_or_else(|| panic!("{key:?}: a refund the test never asked for"));
                    want_refunds.insert(key.clone(), day);
                    day
                }
            };
            assert_eq!(beijing_date(r.at), day, "{key:?} refunded");
        }
        let recorded = tr.refunds.len();
        let asked = want_refunds.keys().filter(|(o, _)| o == otn).count();
        assert_eq!(
            recorded, asked,
            "{otn}: refunds recorded and accepted differ"
        );
    }
    let mut got_trades: BTreeMap<String, jiff::civil::Date> = BTreeMap::new();
    let mut got_refunds: BTreeMap<(String, String), jiff::civil::Date> = BTreeMap::new();
    let bills = t.sandbox.bills(Some(&pid), None).await;
    let days: BTreeSet<_> = want_trades
        .values()
        .chain(want_refunds.values())
        .copied()
        .collect();
    assert_eq!(
        bills.iter().map(|b| b.date).collect::<BTreeSet<_>>(),
        days,
        "a bill for each day with rows, none for the others"
    );
    for record in &bills {
        let name = &record.file(Flavor::Trade).unwrap().name;
        let bytes = t.sandbox.bill_file(&pid, record.date, name).await.unwrap();
        let bill = read(&bytes);
        let d = &bill.detail;
        for r in rows_of(d, "交易") {
            let otn = d.get(r, "商户订单号").unwrap().to_owned();
            assert!(
                got_trades.insert(otn.clone(), record.date).is_none(),
                "{otn} billed twice"
            );
        }
        for r in rows_of(d, "退款") {
            let key = (
                d.get(r, "商户订单号").unwrap().to_owned(),
                d.get(r, "退款批次号/请求号").unwrap().to_owned(),
            );
            assert!(
                got_refunds.insert(key.clone(), record.date).is_none(),
                "{key:?} billed twice"
            );
        }
        let ledger = t.sandbox.ledger(Some(&record.date.to_string())).await;
        assert_matches_ledger(d, &ledger, &pid);
        assert_summary_adds_up(&bill);
        // One app: the day's payout is the bill's net.
        let payouts = t
            .sandbox
            .settlements(PayoutFilter {
                business_date: Some(record.date.to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(payouts.len(), 1);
        assert_eq!(payouts[0].net, record.net);
        assert!(matches!(
            payouts[0].status,
            PayoutStatus::Paid | PayoutStatus::NothingToPay
        ));
    }
    assert_eq!(
        got_trades, want_trades,
        "every payment in the bill of its day"
    );
    assert_eq!(
        got_refunds, want_refunds,
        "every refund in the bill of its day"
    );
    t.sandbox.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_trade_is_missing_or_counted_twice_across_days(
        ops in prop::collection::vec(op(), 1..24)
    ) {
        // A day's first op is a payment, so there is something to bill.
        let mut ops = ops;
        ops.insert(0, Op::Pay(1234));
        runtime().block_on(scenario(ops));
    }
}
