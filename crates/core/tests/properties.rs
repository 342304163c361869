//! Proves with random inputs that the trade state machine converges whatever
//! the order of observations (and ignores duplicates), and that the books
//! never create or lose a fen: every journal balances, the trial balance is
//! zero, refunds never exceed the paid amount, and fee returns add up to the
//! fee when a trade is refunded in full.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jianlian_alipay::api::trade::{CancelAction, TradeStatus};
use jianlian_alipay::{Fen, Rate};
use jianlian_core::closed_loop::{LoopPolicy, Step, StepKind};
use jianlian_core::fees::{FeePolicy, FundBill, RefundedSoFar};
use jianlian_core::ids::{
    AppId, ChannelOrderNo, MerchantId, RefundId, RefundRequestNo, Smid, StoreCode, TerminalId,
    TradeId,
};
use jianlian_core::ledger::{Account, Journal, check};
use jianlian_core::refund::{
    Refund, RefundAnswer, RefundApplied, RefundObservation, RefundRequest,
    apply_refund_observation, check_refund,
};
use jianlian_core::trade::{
    Applied, CancelAnswer, Observation, QueryAnswer, SyncAnswer, Trade, TradeIntent, TradeKind,
    TradeSnapshot, TradeState, apply_observation,
};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const TRADE_NO: &str = "2026030222001400000000000001";

fn intent(id: i64, merchant: i64, total: i64) -> (TradeId, TradeIntent) {
    (
        TradeId::new(id).unwrap(),
        TradeIntent {
            kind: TradeKind::BarcodePay,
            channel: AppId::parse("2021000000000001").unwrap(),
            merchant: MerchantId::new(merchant).unwrap(),
            smid: Smid::parse("2088000000000003").unwrap(),
            store: StoreCode::parse("S1").unwrap(),
            terminal: TerminalId::parse("T1").unwrap(),
            channel_order_no: ChannelOrderNo::parse(&format!("O{id}")).unwrap(),
            subject: "goods".into(),
            total_amount: Fen::new(total),
            notify_url: Some("https://channel.example/n".into()),
            timeout: None,
            created_at: Timestamp::UNIX_EPOCH,
        },
    )
}

fn new_trade(id: i64, merchant: i64, total: i64) -> Trade {
    let (id, intent) = intent(id, merchant, total);
    Trade::from_intent(id, intent, &LoopPolicy::default())
}

fn snapshot(status: TradeStatus, total: i64, paid: bool, bills: &[FundBill]) -> TradeSnapshot {
    TradeSnapshot {
        status,
        trade_no: Some(TRADE_NO.into()),
        total_amount: Some(Fen::new(total)),
        receipt_amount: paid.then_some(Fen::new(total)),
        buyer_pay_amount: paid.then_some(Fen::new(total)),
        buyer_user_id: Some("2088102177846880".into()),
        buyer_logon_id: Some("159****5620".into()),
        paid_at: paid.then(|| Timestamp::from_second(1_000).unwrap()),
        fund_bills: if paid { bills.to_vec() } else { vec![] },
        refund_fee: None,
    }
}

fn step(number: u32, kind: StepKind, attempt: u32) -> Step {
    Step {
        number,
        kind,
        attempt,
    }
}

/// What really happened to a trade at Alipay; each yields the observations a
/// gateway could make of it, all consistent with that one history.
#[derive(Debug, Clone, Copy)]
enum Truth {
    PaidAtOnce { refunded_in_full: bool },
    PaidAfterPassword { polls: u32 },
    NeverPaidThenCancelled { polls: u32 },
    UnknownThenNotFound,
    Refused,
    PaidJustBeforeCancel { polls: u32 },
}

fn observations(truth: Truth, total: i64, bills: &[FundBill]) -> Vec<Observation> {
    let waiting = || snapshot(TradeStatus::WaitBuyerPay, total, false, bills);
    let success = || snapshot(TradeStatus::TradeSuccess, total, true, bills);
    let polls = |n: u32| {
        (1..=n)
            .map(|i| Observation::Queried {
                step: step(i, StepKind::Poll, i),
                answer: QueryAnswer::Found(waiting()),
            })
            .collect::<Vec<_>>()
    };
    match truth {
        Truth::PaidAtOnce { refunded_in_full } => {
            let mut obs = vec![
                Observation::Answered(SyncAnswer::Paid(success())),
                Observation::Notified(success()),
            ];
            if refunded_in_full {
                obs.push(Observation::Notified(snapshot(
                    TradeStatus::TradeClosed,
                    total,
                    true,
                    bills,
                )));
            }
            obs
        }
        Truth::PaidAfterPassword { polls: n } => {
            let mut obs = vec![Observation::Answered(SyncAnswer::AwaitingBuyer {
                trade_no: Some(TRADE_NO.into()),
            })];
            obs.extend(polls(n));
            obs.push(Observation::Queried {
                step: step(n + 1, StepKind::Poll, n + 1),
                answer: QueryAnswer::Found(success()),
            });
            obs.push(Observation::Refreshed(success()));
            obs
        }
        Truth::NeverPaidThenCancelled { polls: n } => {
            let mut obs = vec![Observation::Answered(SyncAnswer::AwaitingBuyer {
                trade_no: Some(TRADE_NO.into()),
            })];
            obs.extend(polls(n));
            obs.push(Observation::CancelAnswered {
                step: step(n + 1, StepKind::Cancel, 1),
                answer: CancelAnswer::Retry,
            });
            obs.push(Observation::CancelAnswered {
                step: step(n + 2, StepKind::Cancel, 2),
                answer: CancelAnswer::Done {
                    action: Some(CancelAction::Close),
                },
            });
            obs.push(Observation::Refreshed(snapshot(
                TradeStatus::TradeClosed,
                total,
                false,
                bills,
            )));
            obs
        }
        Truth::UnknownThenNotFound => vec![
            Observation::Answered(SyncAnswer::Unknown {
                reason: "timeout".into(),
            }),
            Observation::Queried {
                step: step(1, StepKind::Query, 1),
                answer: QueryAnswer::Unknown {
                    reason: "timeout".into(),
                },
            },
            Observation::Queried {
                step: step(2, StepKind::Query, 2),
                answer: QueryAnswer::NotFound,
            },
            Observation::CancelAnswered {
                step: step(3, StepKind::Cancel, 1),
                answer: CancelAnswer::Done { action: None },
            },
        ],
        Truth::Refused => vec![Observation::Answered(SyncAnswer::Failed(
            jianlian_core::trade::FailureReason {
                code: "40004".into(),
                msg: "Business Failed".into(),
                sub_code: Some("ACQ.BUYER_BALANCE_NOT_ENOUGH".into()),
                sub_msg: Some("买家余额不足".into()),
            },
        ))],
        Truth::PaidJustBeforeCancel { polls: n } => {
            let mut obs = vec![Observation::Answered(SyncAnswer::AwaitingBuyer {
                trade_no: Some(TRADE_NO.into()),
            })];
            obs.extend(polls(n));
            obs.push(Observation::CancelAnswered {
                step: step(n + 1, StepKind::Cancel, 1),
                answer: CancelAnswer::Done {
                    action: Some(CancelAction::Refund),
                },
            });
            obs.push(Observation::Notified(success()));
            obs.push(Observation::Refreshed(snapshot(
                TradeStatus::TradeClosed,
                total,
                true,
                bills,
            )));
            obs
        }
    }
}

fn truth() -> impl Strategy<Value = Truth> {
    prop_oneof![
        any::<bool>().prop_map(|r| Truth::PaidAtOnce {
            refunded_in_full: r
        }),
        (0u32..12).prop_map(|polls| Truth::PaidAfterPassword { polls }),
        (0u32..12).prop_map(|polls| Truth::NeverPaidThenCancelled { polls }),
        Just(Truth::UnknownThenNotFound),
        Just(Truth::Refused),
        (0u32..12).prop_map(|polls| Truth::PaidJustBeforeCancel { polls }),
    ]
}

fn expected_state(truth: Truth) -> TradeState {
    match truth {
        Truth::PaidAtOnce {
            refunded_in_full: true,
        } => TradeState::Refunded,
        Truth::PaidAtOnce { .. } | Truth::PaidAfterPassword { .. } => TradeState::Paid,
        Truth::NeverPaidThenCancelled { .. } => TradeState::Cancelled {
            action: Some(CancelAction::Close),
        },
        Truth::UnknownThenNotFound => TradeState::Cancelled { action: None },
        Truth::Refused => TradeState::Failed,
        Truth::PaidJustBeforeCancel { .. } => TradeState::Cancelled {
            action: Some(CancelAction::Refund),
        },
    }
}

/// The parts of a trade that must not depend on the order of observations
/// (times of application are the caller's clock, so they may). A trade whose
/// payment is first learned from a cancel that refunded it is booked with
/// what was known then and reversed at once, so only its net books (zero)
/// are order-independent, not its fee details.
fn essence(t: &Trade) -> impl PartialEq + std::fmt::Debug {
    let last = t
        .progress
        .last_step
        .map(|s| (s.step.number, s.step.kind, s.outcome));
    (
        t.state,
        t.flags,
        t.facts.clone(),
        (
            t.progress.polls,
            t.progress.queries,
            t.progress.cancels,
            last,
        ),
        t.fee.filter(|_| {
            t.state
                != TradeState::Cancelled {
                    action: Some(CancelAction::Refund),
                }
        }),
    )
}

/// Applies observations in order, checking each step; returns the trade and
/// every journal booked.
fn run(mut trade: Trade, order: &[Observation], fees: FeePolicy) -> (Trade, Vec<Journal>) {
    let mut journals = Vec::new();
    let mut now = Timestamp::UNIX_EPOCH;
    for obs in order {
        now = now.checked_add(SignedDuration::from_secs(1)).unwrap();
        let was_paid = trade.state.is_paid();
        match apply_observation(&trade, obs, now, fees).unwrap() {
            Applied::NoOp => {}
            Applied::Changed(change) => {
                assert_eq!(change.trade.version, trade.version + 1);
                journals.extend(change.journals.iter().cloned());
                trade = change.trade;
            }
        }
        assert!(
            !was_paid || trade.state.is_paid(),
            "a paid trade became unpaid after {obs:?}"
        );
        // Applying the same observation again is always a no-op.
        assert_eq!(
            apply_observation(&trade, obs, now, fees).unwrap(),
            Applied::NoOp,
            "{obs:?} applied twice changed the trade"
        );
    }
    (trade, journals)
}

fn bills_strategy() -> impl Strategy<Value = (i64, Vec<FundBill>)> {
    (1i64..5_000_000, 0u8..4).prop_map(|(total, shape)| {
        let half = total / 2;
        let bill = |ch: &str, ft: Option<&str>, amount: i64| FundBill {
            fund_channel: ch.into(),
            fund_type: ft.map(Into::into),
            amount: Fen::new(amount),
        };
        let bills = match shape {
            0 => vec![bill("ALIPAYACCOUNT", None, total)],
            1 => vec![bill("PCREDIT", None, total)],
            2 => vec![
                bill("BANKCARD", Some("CREDIT_CARD"), half),
                bill("ALIPAYACCOUNT", None, total - half),
            ],
            _ => vec![bill("BANKCARD", Some("DEBIT_CARD"), total)],
        };
        (total, bills)
    })
}

proptest! {
    // No regression files: a failure prints its minimal input instead.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_observations_converges(
        truth in truth(),
        (total, bills) in bills_strategy(),
        seeds in proptest::collection::vec(any::<u64>(), 3),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let fees = FeePolicy::flat(Rate::parse("0.006").unwrap());
        let obs = observations(truth, total, &bills);
        let (reference, reference_journals) = run(new_trade(1, 9, total), &obs, fees);
        prop_assert_eq!(reference.state, expected_state(truth));
        let keys = |js: &[Journal]| {
            let mut k: Vec<String> = js.iter().map(|j| j.key().as_str().to_owned()).collect();
            k.sort();
            k
        };
        for seed in seeds {
            let mut shuffled = obs.clone();
            for d in &duplicates {
                shuffled.push(obs[d.index(obs.len())].clone());
            }
            // A deterministic shuffle driven by the seed (Fisher–Yates).
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = usize::try_from(state % u64::try_from(i + 1).unwrap()).unwrap();
                shuffled.swap(i, j);
            }
            let (trade, journals) = run(new_trade(1, 9, total), &shuffled, fees);
            prop_assert_eq!(essence(&trade), essence(&reference));
            prop_assert_eq!(keys(&journals), keys(&reference_journals));
            prop_assert_eq!(
                check(&journals).unwrap().balances,
                check(&reference_journals).unwrap().balances,
                "the net books do not depend on the order"
            );
        }
    }

    #[test]
    fn payments_and_refunds_never_create_or_lose_a_fen(
        trades in proptest::collection::vec(
            (bills_strategy(), proptest::collection::vec(1i64..3_000_000, 0..6), 1i64..4),
            1..6,
        ),
        rate_ppm in 0u32..20_000,
        credit_ppm in proptest::option::of(0u32..30_000),
    ) {
        let fees = FeePolicy {
            rate: Rate::from_ppm(rate_ppm).unwrap(),
            credit_rate: credit_ppm.map(|p| Rate::from_ppm(p).unwrap()),
        };
        let mut journals = Vec::new();
        let mut receipts = 0i64;
        let mut refunded_out = 0i64;
        let mut next_refund = 1i64;
        for (i, ((total, bills), refund_amounts, merchant)) in trades.into_iter().enumerate() {
            let id = i64::try_from(i).unwrap() + 1;
            let trade = new_trade(id, merchant, total);
            let paid = Observation::Answered(SyncAnswer::Paid(snapshot(
                TradeStatus::TradeSuccess, total, true, &bills,
            )));
            let Applied::Changed(change) =
                apply_observation(&trade, &paid, Timestamp::UNIX_EPOCH, fees).unwrap()
            else {
                panic!("payment did nothing");
            };
            journals.extend(change.journals.iter().cloned());
            let mut trade = change.trade;
            let payment = trade.fee.unwrap();
            prop_assert!(payment.fee <= payment.receipt);
            receipts += payment.receipt.get();

            let mut held = Fen::ZERO;
            let mut before = RefundedSoFar::default();
            for amount in refund_amounts {
                let amount = Fen::new(amount);
                if check_refund(&trade, held, amount).is_err() {
                    prop_assert!(held.get() + amount.get() > total || !trade.is_refundable());
                    continue;
                }
                held = held.checked_add(amount).unwrap();
                prop_assert!(held.get() <= total, "refunds exceed the paid amount");
                let refund = Refund::from_request(
                    RefundId::new(next_refund).unwrap(),
                    RefundRequest {
                        trade: trade.id,
                        out_request_no: RefundRequestNo::parse(&format!("R{next_refund}")).unwrap(),
                        amount,
                        reason: None,
                        requested_at: Timestamp::UNIX_EPOCH,
                    },
                );
                next_refund += 1;
                let done = RefundObservation::Answered(RefundAnswer::Refunded { at: None });
                let RefundApplied::Changed(change) =
                    apply_refund_observation(&refund, &trade, before, &done, Timestamp::UNIX_EPOCH).unwrap()
                else {
                    panic!("refund did nothing");
                };
                let share = change.refund.share.unwrap();
                journals.extend(change.journal.clone());
                refunded_out += share.merchant_part.get();
                before.amount = before.amount.checked_add(amount).unwrap();
                before.merchant_part = before.merchant_part.checked_add(share.merchant_part).unwrap();
                before.fee_returned = before.fee_returned.checked_add(share.fee_return).unwrap();
                prop_assert!(before.fee_returned <= payment.fee);
                if change.fully_refunded {
                    let Applied::Changed(c) = apply_observation(
                        &trade, &Observation::FullyRefunded, Timestamp::UNIX_EPOCH, fees,
                    ).unwrap() else { panic!("full refund did nothing") };
                    trade = c.trade;
                    prop_assert_eq!(trade.state, TradeState::Refunded);
                }
            }
            if before.merchant_part == payment.receipt {
                prop_assert_eq!(before.fee_returned, payment.fee, "fee fully returned");
            }
        }
        let balances = check(&journals).unwrap();
        let clearing = balances.balance(&Account::AlipayClearing).get();
        prop_assert_eq!(clearing, receipts - refunded_out);
        let owed: i64 = balances
            .balances
            .iter()
            .filter(|(a, _)| matches!(a, Account::MerchantPayable(_)))
            .map(|(_, b)| -b.get())
            .sum();
        let fee_income = -balances.balance(&Account::FeeIncome).get();
        prop_assert_eq!(clearing, owed + fee_income, "every fen is owed to someone");
        prop_assert!(fee_income >= 0);
    }

    #[test]
    fn full_refunds_in_any_split_return_the_whole_fee(
        (total, bills) in bills_strategy(),
        cuts in proptest::collection::vec(1i64..1_000_000, 0..8),
        rate_ppm in 0u32..1_000_000,
        credit_ppm in 0u32..1_000_000,
    ) {
        let policy = FeePolicy {
            rate: Rate::from_ppm(rate_ppm).unwrap(),
            credit_rate: Some(Rate::from_ppm(credit_ppm).unwrap()),
        };
        let payment = jianlian_core::fees::payment_fee(policy, Fen::new(total), &bills);
        let mut before = RefundedSoFar::default();
        let mut left = total;
        for cut in cuts.into_iter().chain(std::iter::once(i64::MAX)) {
            let amount = cut.min(left);
            if amount == 0 {
                break;
            }
            let share = jianlian_core::fees::refund_share(&payment, before, Fen::new(amount));
            prop_assert!(share.fee_return <= share.merchant_part || share.is_last);
            before.amount = before.amount.checked_add(Fen::new(amount)).unwrap();
            before.merchant_part = before.merchant_part.checked_add(share.merchant_part).unwrap();
            before.fee_returned = before.fee_returned.checked_add(share.fee_return).unwrap();
            left -= amount;
            prop_assert_eq!(share.is_last, left == 0);
        }
        prop_assert_eq!(before.fee_returned, payment.fee);
    }
}
