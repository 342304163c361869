//! The store contract, proven on SQLite and on PostgreSQL alike: registries
//! with identity uniqueness, idempotent trade intents under 64 concurrent
//! identical requests, the single write path (state, books, outbox and next
//! step together), refunds that never exceed the paid amount under
//! concurrency, notifications with retries and dead letters, leased jobs
//! that two racing nodes claim disjointly and run once, and migrations that
//! keep the data of an existing database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use harness::Db;
use jianlian_alipay::api::merchant::{ContactInfo, MerchantProfile};
use jianlian_alipay::api::trade::{CancelAction, TradeStatus};
use jianlian_alipay::{Fen, Rate};
use jianlian_core::channel::{Channel, ChannelStatus};
use jianlian_core::closed_loop::{NextAction, StepKind, next_action, plan};
use jianlian_core::fees::{FeePolicy, FundBill};
use jianlian_core::ids::{
    AppId, ChannelOrderNo, MerchantId, Pid, RefundRequestNo, Smid, StoreCode, TerminalId, TradeId,
};
use jianlian_core::ledger::Account;
use jianlian_core::merchant::{Merchant, NewMerchant, OnboardingEvent, OnboardingState};
use jianlian_core::notify::{OutboxStatus, RetrySchedule};
use jianlian_core::refund::{
    RefundAnswer, RefundError, RefundObservation, RefundRequest, RefundState,
};
use jianlian_core::trade::{
    CancelAnswer, Observation, QueryAnswer, SyncAnswer, Trade, TradeIntent, TradeKind,
    TradeSnapshot, TradeState,
};
use jianlian_store::{
    Backend, Inserted, JobFate, JobState, MerchantFilter, NOTIFY_JOB, NewJob, REFUND_CONFIRM_JOB,
    Reservation, Store, StoreError, TRADE_STEP_JOB,
};
use jiff::{SignedDuration, Timestamp};
use sqlx::{AnyConnection, Connection as _};

contract!(
    channels_form_a_tree,
    merchant_identity_is_unique_and_source_is_audited,
    identical_concurrent_intents_create_one_trade,
    an_intent_for_a_remembered_channel_needs_it_unchanged,
    one_write_path_keeps_state_books_outbox_and_jobs_together,
    concurrent_observations_converge,
    concurrent_answers_without_notice_book_once,
    an_answer_to_a_held_trade_is_written_only_while_it_holds,
    refunds_never_exceed_the_paid_amount_under_concurrency,
    refunds_book_fees_and_a_full_refund_closes_the_trade,
    jobs_are_leased_fenced_retried_and_dead_lettered,
    two_nodes_claim_disjoint_jobs_and_each_runs_once,
    notifications_retry_on_schedule_then_dead_letter_and_replay,
    the_sweeper_finds_and_redrives_overdue_trades,
    reconnecting_migrates_once_and_keeps_everything,
    the_closed_loop_runs_from_jobs_alone,
    outbox_notice_key_migration_keeps_every_row,
);

fn t0() -> Timestamp {
    jianlian_alipay::time::parse_beijing("2026-03-02 10:00:00").unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs)).unwrap()
}

fn app(s: &str) -> AppId {
    AppId::parse(s).unwrap()
}

fn pid(s: &str) -> Pid {
    Pid::parse(s).unwrap()
}

fn channel(app_id: &str, pid_text: &str, parent: Option<&str>) -> Channel {
    Channel {
        app_id: app(app_id),
        name: format!("channel {app_id}"),
        pid: pid(pid_text),
        parent: parent.map(app),
        public_key: "MIIBIjANBgkq".into(),
        notify_hosts: vec![],
        status: ChannelStatus::Active,
        created_at: t0(),
    }
}

fn profile(external_id: &str, licence: Option<&str>) -> MerchantProfile {
    MerchantProfile {
        external_id: Some(external_id.into()),
        name: Some(format!("商户 {external_id}")),
        alias_name: Some("小店".into()),
        service_phone: Some("021-12345678".into()),
        category_id: Some("2015050700000000".into()),
        contact_info: Some(vec![ContactInfo {
            name: "张三".into(),
            ..ContactInfo::default()
        }]),
        business_license: licence.map(Into::into),
        ..MerchantProfile::default()
    }
}

fn fees() -> FeePolicy {
    FeePolicy::flat(Rate::parse("0.006").unwrap())
}

/// A channel, an onboarded merchant with store S1 and terminal T1.
async fn onboarded_merchant(store: &Store, smid: &str) -> Merchant {
    if store
        .channel(&app("2021000000000001"))
        .await
        .unwrap()
        .is_none()
    {
        store
            .insert_channel(&channel("2021000000000001", "2088000000000001", None))
            .await
            .unwrap();
    }
    let new = NewMerchant::parse(
        app("2021000000000001"),
        &pid("2088000000000001"),
        profile(&format!("EXT{smid}"), None),
        fees(),
    )
    .unwrap();
    let merchant = store.insert_merchant(&new, t0()).await.unwrap();
    store
        .apply_onboarding(merchant.id, &OnboardingEvent::Submit, t0())
        .await
        .unwrap();
    let merchant = store
        .apply_onboarding(
            merchant.id,
            &OnboardingEvent::Onboarded(Smid::parse(smid).unwrap()),
            t0(),
        )
        .await
        .unwrap();
    store
        .insert_store(
            merchant.id,
            &StoreCode::parse("S1").unwrap(),
            "store one",
            &[TerminalId::parse("T1").unwrap()],
            t0(),
        )
        .await
        .unwrap();
    merchant
}

async fn queued_jobs(store: &Store) -> usize {
    store
        .jobs_in_state(JobState::Queued, 100)
        .await
        .unwrap()
        .len()
}

fn intent(merchant: &Merchant, order: &str, total: i64, kind: TradeKind) -> TradeIntent {
    TradeIntent {
        kind,
        channel: merchant.channel.clone(),
        merchant: merchant.id,
        smid: merchant.smid.clone().unwrap(),
        store: StoreCode::parse("S1").unwrap(),
        terminal: TerminalId::parse("T1").unwrap(),
        channel_order_no: ChannelOrderNo::parse(order).unwrap(),
        subject: "coffee".into(),
        total_amount: Fen::new(total),
        notify_url: Some("https://channel.example/notify".into()),
        timeout: None,
        created_at: t0(),
    }
}

fn success(trade: &Trade, bills: Vec<FundBill>) -> TradeSnapshot {
    TradeSnapshot {
        status: TradeStatus::TradeSuccess,
        trade_no: Some("2026030222001400000000000001".into()),
        total_amount: Some(trade.total_amount),
        receipt_amount: Some(trade.total_amount),
        buyer_pay_amount: Some(trade.total_amount),
        buyer_user_id: Some("2088102177846880".into()),
        buyer_logon_id: Some("159****5620".into()),
        paid_at: Some(at(3)),
        fund_bills: bills,
        refund_fee: None,
    }
}

async fn paid_trade(store: &Store, merchant: &Merchant, order: &str, total: i64) -> Trade {
    let trade = store
        .insert_trade_intent(&intent(merchant, order, total, TradeKind::BarcodePay))
        .await
        .unwrap()
        .into_inner();
    let snapshot = success(&trade, vec![]);
    let (trade, changed) = store
        .apply_observation(
            trade.id,
            &Observation::Answered(SyncAnswer::Paid(snapshot)),
            at(1),
        )
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(trade.state, TradeState::Paid);
    trade
}

async fn channels_form_a_tree(db: Db) {
    let store = db.store().await;
    store
        .insert_channel(&channel("2021000000000001", "2088000000000001", None))
        .await
        .unwrap();
    store
        .insert_channel(&channel(
            "2021000000000002",
            "2088000000000002",
            Some("2021000000000001"),
        ))
        .await
        .unwrap();
    let dup = store
        .insert_channel(&channel("2021000000000002", "2088000000000002", None))
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
    let orphan = store
        .insert_channel(&channel(
            "2021000000000003",
            "2088000000000003",
            Some("9999"),
        ))
        .await;
    assert!(matches!(orphan, Err(StoreError::Channel(_))), "{orphan:?}");
    let tree = store.channel_tree().await.unwrap();
    assert!(tree.sees(&app("2021000000000001"), &app("2021000000000002")));
    assert!(!tree.sees(&app("2021000000000002"), &app("2021000000000001")));
    let loaded = store
        .channel(&app("2021000000000002"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded,
        channel(
            "2021000000000002",
            "2088000000000002",
            Some("2021000000000001")
        )
    );
    store
        .set_channel_public_key(&app("2021000000000002"), "NEWKEY")
        .await
        .unwrap();
    assert_eq!(
        store
            .channel(&app("2021000000000002"))
            .await
            .unwrap()
            .unwrap()
            .public_key,
        "NEWKEY"
    );
    assert!(
        store
            .set_channel_public_key(&app("404"), "k")
            .await
            .is_err()
    );
    assert_eq!(store.channels().await.unwrap().len(), 2);
}

async fn merchant_identity_is_unique_and_source_is_audited(db: Db) {
    let store = db.store().await;
    store
        .insert_channel(&channel("2021000000000001", "2088000000000001", None))
        .await
        .unwrap();
    store
        .insert_channel(&channel("2021000000000002", "2088000000000002", None))
        .await
        .unwrap();
    let new = |channel: &str, channel_pid: &str, ext: &str, licence: Option<&str>| {
        NewMerchant::parse(
            app(channel),
            &pid(channel_pid),
            profile(ext, licence),
            fees(),
        )
        .unwrap()
    };
    let a = store
        .insert_merchant(
            &new(
                "2021000000000001",
                "2088000000000001",
                "A",
                Some("91310000MA1FL00001"),
            ),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(a.state, OnboardingState::Draft);
    assert_eq!(
        a.source,
        pid("2088000000000001"),
        "source defaults to the channel's PID"
    );

    let same_licence = store
        .insert_merchant(
            &new(
                "2021000000000002",
                "2088000000000002",
                "B",
                Some("91310000MA1FL00001"),
            ),
            t0(),
        )
        .await;
    match same_licence {
        Err(StoreError::Duplicate(m)) => assert!(m.contains("business licence"), "{m}"),
        other => panic!("expected a duplicate licence, got {other:?}"),
    }
    let same_external = store
        .insert_merchant(
            &new("2021000000000001", "2088000000000001", "A", None),
            t0(),
        )
        .await;
    match same_external {
        Err(StoreError::Duplicate(m)) => assert!(m.contains("external_id"), "{m}"),
        other => panic!("expected a duplicate external_id, got {other:?}"),
    }
    // Another channel may use the same external_id for its own merchant.
    let b = store
        .insert_merchant(
            &new("2021000000000002", "2088000000000002", "A", None),
            t0(),
        )
        .await
        .unwrap();

    // One smid serves one merchant (R2.2).
    let smid = Smid::parse("2088000000000777").unwrap();
    store
        .apply_onboarding(a.id, &OnboardingEvent::Submit, t0())
        .await
        .unwrap();
    let a = store
        .apply_onboarding(a.id, &OnboardingEvent::Onboarded(smid.clone()), t0())
        .await
        .unwrap();
    assert_eq!(a.state, OnboardingState::Onboarded);
    store
        .apply_onboarding(b.id, &OnboardingEvent::Submit, t0())
        .await
        .unwrap();
    let stolen = store
        .apply_onboarding(b.id, &OnboardingEvent::Onboarded(smid.clone()), t0())
        .await;
    assert!(
        matches!(stolen, Err(StoreError::Duplicate(_))),
        "{stolen:?}"
    );
    assert_eq!(
        store.merchant_by_smid(&smid).await.unwrap().unwrap().id,
        a.id
    );

    // Registry search (Alipay has none).
    let filter = MerchantFilter {
        channels: Some(vec![app("2021000000000002")]),
        limit: 10,
        ..MerchantFilter::default()
    };
    let found = store.search_merchants(&filter).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), vec![b.id]);
    let by_text = store
        .search_merchants(&MerchantFilter {
            text: Some("商户 A".into()),
            limit: 10,
            ..MerchantFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_text.len(), 2);

    // Bulk source correction, all recorded; merchants already right are untouched.
    let bank = pid("2088999999999999");
    let changes = store
        .set_source(
            &[a.id, b.id],
            &bank,
            "ops:li",
            "wrong source at onboarding",
            at(60),
        )
        .await
        .unwrap();
    assert_eq!(changes.len(), 2);
    let again = store
        .set_source(&[a.id, b.id], &bank, "ops:li", "again", at(61))
        .await
        .unwrap();
    assert!(again.is_empty());
    let a = store.merchant(a.id).await.unwrap().unwrap();
    assert_eq!(a.source, bank);
    assert_eq!(a.profile.source.as_deref(), Some("2088999999999999"));
    let trail = store.source_changes(a.id).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].from, pid("2088000000000001"));
    assert_eq!(trail[0].actor, "ops:li");
    let missing = store
        .set_source(
            &[a.id, MerchantId::new(999).unwrap()],
            &pid("2088000000000001"),
            "x",
            "y",
            at(62),
        )
        .await;
    assert!(missing.is_err());
    assert_eq!(
        store.merchant(a.id).await.unwrap().unwrap().source,
        bank,
        "a failed bulk correction changes nothing"
    );

    // A modify merges fields, may change source (audited), keeps identity unique.
    let modified = store
        .modify_merchant(
            b.id,
            &MerchantProfile {
                alias_name: Some("新名字".into()),
                source: Some("2088000000000002".into()),
                ..MerchantProfile::default()
            },
            "2021000000000002",
            at(70),
        )
        .await
        .unwrap();
    assert_eq!(modified.profile.alias_name.as_deref(), Some("新名字"));
    assert_eq!(
        modified.profile.name.as_deref(),
        Some("商户 A"),
        "untouched fields stay"
    );
    assert_eq!(modified.source, pid("2088000000000002"));
    let trail = store.source_changes(b.id).await.unwrap();
    assert_eq!(trail.last().unwrap().actor, "2021000000000002");
    assert_eq!(store.merchant(b.id).await.unwrap().unwrap(), modified);
    let licence_taken = store
        .modify_merchant(
            b.id,
            &MerchantProfile {
                business_license: Some("91310000MA1FL00001".into()),
                ..MerchantProfile::default()
            },
            "2021000000000002",
            at(71),
        )
        .await;
    assert!(
        matches!(licence_taken, Err(StoreError::Duplicate(_))),
        "{licence_taken:?}"
    );
    let renamed = store
        .modify_merchant(
            b.id,
            &MerchantProfile {
                external_id: Some("OTHER".into()),
                ..MerchantProfile::default()
            },
            "2021000000000002",
            at(72),
        )
        .await;
    assert!(matches!(renamed, Err(StoreError::Invalid(_))));

    // Stores and terminals (R3.2).
    let s1 = StoreCode::parse("S1").unwrap();
    store
        .insert_store(
            a.id,
            &s1,
            "一号店",
            &[TerminalId::parse("T1").unwrap()],
            t0(),
        )
        .await
        .unwrap();
    assert!(
        store
            .check_store_terminal(a.id, &s1, &TerminalId::parse("T1").unwrap())
            .await
            .is_ok()
    );
    let unknown_terminal = store
        .check_store_terminal(a.id, &s1, &TerminalId::parse("T9").unwrap())
        .await;
    assert!(matches!(
        unknown_terminal,
        Err(StoreError::NotFound {
            what: "terminal_id",
            ..
        })
    ));
    let unknown_store = store
        .check_store_terminal(
            a.id,
            &StoreCode::parse("S9").unwrap(),
            &TerminalId::parse("T1").unwrap(),
        )
        .await;
    assert!(matches!(
        unknown_store,
        Err(StoreError::NotFound {
            what: "store_id",
            ..
        })
    ));
    let other_merchant = store
        .check_store_terminal(b.id, &s1, &TerminalId::parse("T1").unwrap())
        .await;
    assert!(
        other_merchant.is_err(),
        "a store belongs to its merchant only"
    );
    let terminal_without_store = store
        .insert_terminal(
            a.id,
            &StoreCode::parse("S9").unwrap(),
            &TerminalId::parse("T2").unwrap(),
            t0(),
        )
        .await;
    assert!(terminal_without_store.is_err());
    assert_eq!(store.stores(a.id).await.unwrap().len(), 1);
    assert_eq!(store.terminals(a.id).await.unwrap().len(), 1);
}

async fn identical_concurrent_intents_create_one_trade(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000101").await;
    let request = Arc::new(intent(
        &merchant,
        "SAME_ORDER",
        8_888,
        TradeKind::BarcodePay,
    ));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            let request = Arc::clone(&request);
            tokio::spawn(async move { store.insert_trade_intent(&request).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let inserted = task.await.unwrap();
        if inserted.is_created() {
            created += 1;
        }
        let trade = inserted.into_inner();
        assert!(request.matches(&trade));
        ids.insert(trade.id);
    }
    assert_eq!(created, 1, "exactly one request created the intent");
    assert_eq!(ids.len(), 1, "every request sees the same trade");
    let trade = store
        .trade(*ids.iter().next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trade.state, TradeState::Created);
    assert!(trade.upstream_order_no.as_str().starts_with("JL20260302"));
    let by_upstream = store
        .trade_by_upstream_order(&trade.upstream_order_no)
        .await
        .unwrap();
    assert_eq!(by_upstream.map(|t| t.id), Some(trade.id));
    // One closed-loop job guards the intent (a query if no answer is recorded).
    let job = store
        .job_by_key(&format!("{TRADE_STEP_JOB}:{}:1", trade.id))
        .await
        .unwrap()
        .expect("the intent's first step job");
    assert_eq!(job.run_at, at(30));
    // Written by SQL in the intent's own statement: the same job the store
    // writes for every later step (kind, payload, attempts).
    assert_eq!(job.kind, TRADE_STEP_JOB);
    assert_eq!(
        job.payload,
        serde_json::json!({"trade": trade.id.get(), "version": 1})
    );
    assert_eq!(
        (job.state, job.attempts, job.max_attempts),
        (JobState::Queued, 0, 20)
    );
    assert_eq!(job.locked_until, None);
    assert_eq!(queued_jobs(&store).await, 1);
    // Another channel may reuse the order number: a different trade upstream.
    store
        .insert_channel(&channel("2021000000000009", "2088000000000009", None))
        .await
        .unwrap();
    let mut other = (*request).clone();
    other.channel = app("2021000000000009");
    let other = store.insert_trade_intent(&other).await.unwrap();
    assert!(other.is_created());
    assert_ne!(
        other.into_inner().upstream_order_no,
        trade.upstream_order_no
    );
    // R2.2, R3.2: another merchant's smid, or an unregistered terminal, is refused.
    let mut foreign_smid = (*request).clone();
    foreign_smid.channel_order_no = ChannelOrderNo::parse("FOREIGN_SMID").unwrap();
    foreign_smid.smid = Smid::parse("2088000000000999").unwrap();
    assert!(matches!(
        store.insert_trade_intent(&foreign_smid).await,
        Err(StoreError::Invalid(_))
    ));
    let mut stray_terminal = (*request).clone();
    stray_terminal.channel_order_no = ChannelOrderNo::parse("STRAY_TERMINAL").unwrap();
    stray_terminal.terminal = TerminalId::parse("T9").unwrap();
    assert!(matches!(
        store.insert_trade_intent(&stray_terminal).await,
        Err(StoreError::NotFound { .. })
    ));
    // A bad intent writes nothing.
    let mut bad = (*request).clone();
    bad.channel_order_no = ChannelOrderNo::parse("BAD_AMOUNT").unwrap();
    bad.total_amount = Fen::new(0);
    assert!(store.insert_trade_intent(&bad).await.is_err());
    assert!(
        store
            .trade_by_channel_order(&bad.channel, &bad.channel_order_no)
            .await
            .unwrap()
            .is_none()
    );
}

/// The gateway may authenticate a trade start with a channel it read
/// earlier; the intent is then written only while the stored channel is
/// still active with the same key and notify hosts.
async fn an_intent_for_a_remembered_channel_needs_it_unchanged(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000111").await;
    let seen = store.channel(&merchant.channel).await.unwrap().unwrap();
    let first = intent(&merchant, "SEEN_1", 100, TradeKind::BarcodePay);
    let created = store
        .insert_trade_intent_as(&first, Some(&seen))
        .await
        .unwrap();
    assert!(created.is_created());
    // The same request again, as seen: answered from the record.
    let again = store
        .insert_trade_intent_as(&first, Some(&seen))
        .await
        .unwrap();
    assert!(!again.is_created());

    let refused = |order: &'static str| {
        let store = store.clone();
        let intent = intent(&merchant, order, 100, TradeKind::BarcodePay);
        let seen = seen.clone();
        async move {
            let result = store.insert_trade_intent_as(&intent, Some(&seen)).await;
            assert!(
                matches!(result, Err(StoreError::ChannelChanged(_))),
                "{order}: {result:?}"
            );
            let written = store
                .trade_by_channel_order(&intent.channel, &intent.channel_order_no)
                .await
                .unwrap();
            assert!(written.is_none(), "{order}: nothing is written");
        }
    };
    let jobs = queued_jobs(&store).await;
    // Each of key, notify hosts and status changed: refused, nothing written.
    store
        .set_channel_public_key(&seen.app_id, "MIIBIjANBgkqROTATED")
        .await
        .unwrap();
    refused("ROTATED").await;
    // Even a repeat of a recorded request is refused for a stale channel.
    let repeat = store.insert_trade_intent_as(&first, Some(&seen)).await;
    assert!(
        matches!(repeat, Err(StoreError::ChannelChanged(_))),
        "{repeat:?}"
    );
    store
        .set_channel_public_key(&seen.app_id, &seen.public_key)
        .await
        .unwrap();
    store
        .set_channel_notify_hosts(&seen.app_id, &["pos.example.com".to_owned()])
        .await
        .unwrap();
    refused("HOSTS").await;
    store
        .set_channel_notify_hosts(&seen.app_id, &seen.notify_hosts)
        .await
        .unwrap();
    store
        .set_channel_status(&seen.app_id, ChannelStatus::Suspended)
        .await
        .unwrap();
    refused("SUSPENDED").await;
    assert_eq!(
        queued_jobs(&store).await,
        jobs,
        "no step job for a refused intent"
    );
    // Without a remembered channel the caller has just read it: no check.
    let fresh = intent(&merchant, "FRESH", 100, TradeKind::BarcodePay);
    assert!(
        store
            .insert_trade_intent(&fresh)
            .await
            .unwrap()
            .is_created()
    );
    // Back as it was: the remembered copy is good again.
    store
        .set_channel_status(&seen.app_id, ChannelStatus::Active)
        .await
        .unwrap();
    let last = intent(&merchant, "SEEN_2", 100, TradeKind::BarcodePay);
    let last = store
        .insert_trade_intent_as(&last, Some(&seen))
        .await
        .unwrap();
    assert!(last.is_created());
}

async fn one_write_path_keeps_state_books_outbox_and_jobs_together(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000102").await;
    let trade = store
        .insert_trade_intent(&intent(
            &merchant,
            "PWD_ORDER",
            200_000,
            TradeKind::BarcodePay,
        ))
        .await
        .unwrap()
        .into_inner();
    // 10003: the buyer must enter the password; the first poll is due in 5 s.
    let (trade, changed) = store
        .apply_observation(
            trade.id,
            &Observation::Answered(SyncAnswer::AwaitingBuyer {
                trade_no: Some("2026030222001400000000000001".into()),
            }),
            at(1),
        )
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(trade.state, TradeState::Paying);
    let poll_job = store
        .job_by_key(&format!("{TRADE_STEP_JOB}:{}:{}", trade.id, trade.version))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(poll_job.run_at, at(6));
    let next = plan(&trade, store.policy()).unwrap();
    assert_eq!(next.step.kind, StepKind::Poll);

    // The poll finds it paid (a credit card): state, journal and outbox together.
    let bills = vec![FundBill {
        fund_channel: "BANKCARD".into(),
        fund_type: Some("CREDIT_CARD".into()),
        amount: Fen::new(200_000),
    }];
    store
        .set_merchant_fees(
            merchant.id,
            FeePolicy {
                rate: Rate::parse("0.0038").unwrap(),
                credit_rate: Some(Rate::parse("0.006").unwrap()),
            },
            at(2),
        )
        .await
        .unwrap();
    let poll = Observation::Queried {
        step: next.step,
        answer: QueryAnswer::Found(success(&trade, bills)),
    };
    let (paid, changed) = store
        .apply_observation(trade.id, &poll, at(6))
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(paid.state, TradeState::Paid);
    assert_eq!(
        paid.fee.unwrap().fee,
        Fen::new(1_200),
        "credit rate on card credit"
    );
    let ledger = store.ledger_check().await.unwrap();
    assert_eq!(ledger.journals, 1);
    assert_eq!(ledger.balance(&Account::AlipayClearing), Fen::new(200_000));
    assert_eq!(ledger.owed_to(merchant.id), Fen::new(198_800));
    let outbox = store.outbox_of_trade(trade.id).await.unwrap();
    assert_eq!(outbox.len(), 1);
    let message = &outbox[0];
    assert_eq!(message.status, OutboxStatus::Pending);
    let field = |k: &str| {
        message
            .fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("trade_status"), Some("TRADE_SUCCESS"));
    assert_eq!(
        field("out_trade_no"),
        Some("PWD_ORDER"),
        "the channel's own number"
    );
    assert_eq!(field("app_id"), Some("2021000000000001"));
    assert_eq!(field("total_amount"), Some("2000.00"));
    assert!(
        store
            .job_by_key(&format!("{NOTIFY_JOB}:{}:0", message.id))
            .await
            .unwrap()
            .is_some()
    );
    // Resolved: no further step job for the new version.
    assert!(
        store
            .job_by_key(&format!("{TRADE_STEP_JOB}:{}:{}", paid.id, paid.version))
            .await
            .unwrap()
            .is_none()
    );

    // Duplicates and older news change nothing: no second journal or notification.
    let (same, changed) = store
        .apply_observation(trade.id, &poll, at(7))
        .await
        .unwrap();
    assert!(!changed);
    assert_eq!(same.version, paid.version);
    let notified = Observation::Notified(success(&trade, vec![]));
    assert!(
        !store
            .apply_observation(trade.id, &notified, at(8))
            .await
            .unwrap()
            .1
    );
    let waiting = Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None });
    assert!(
        !store
            .apply_observation(trade.id, &waiting, at(9))
            .await
            .unwrap()
            .1
    );
    assert_eq!(store.ledger_check().await.unwrap().journals, 1);
    assert_eq!(store.outbox_of_trade(trade.id).await.unwrap().len(), 1);

    // A contradicting observation is refused and writes nothing.
    let mut forged = success(&trade, vec![]);
    forged.total_amount = Some(Fen::new(1));
    let refused = store
        .apply_observation(trade.id, &Observation::Notified(forged), at(10))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Transition(_))),
        "{refused:?}"
    );
    assert_eq!(store.trade(trade.id).await.unwrap().unwrap(), paid);
}

/// Applies `n` observations to trade `id` at once, cycling through
/// `observations`; the i-th at `at(first + i)`.
fn race(
    store: &Store,
    id: TradeId,
    observations: Vec<Observation>,
    n: usize,
    first: i64,
) -> Vec<tokio::task::JoinHandle<Result<(Trade, bool), StoreError>>> {
    observations
        .into_iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, obs)| {
            let store = store.clone();
            let when = at(first + i64::try_from(i).unwrap());
            tokio::spawn(async move { store.apply_observation(id, &obs, when).await })
        })
        .collect()
}

async fn concurrent_observations_converge(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000103").await;
    let trade = store
        .insert_trade_intent(&intent(&merchant, "RACE", 5_000, TradeKind::Precreate))
        .await
        .unwrap()
        .into_inner();
    let paid = success(&trade, vec![]);
    let observations = vec![
        Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None }),
        Observation::Notified(paid.clone()),
        Observation::Notified(paid.clone()),
        Observation::Refreshed(paid.clone()),
        Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None }),
        Observation::Notified(TradeSnapshot {
            status: TradeStatus::WaitBuyerPay,
            receipt_amount: None,
            paid_at: None,
            ..paid.clone()
        }),
    ];
    for task in race(&store, trade.id, observations, 24, 0) {
        task.await.unwrap().unwrap();
    }
    let end = store.trade(trade.id).await.unwrap().unwrap();
    assert_eq!(end.state, TradeState::Paid);
    assert_eq!(
        store.ledger_check().await.unwrap().journals,
        1,
        "paid once, booked once"
    );
    let statuses: Vec<_> = store
        .outbox_of_trade(trade.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            m.fields
                .iter()
                .find(|(k, _)| k == "trade_status")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert_eq!(statuses, vec!["TRADE_SUCCESS".to_owned()]);
}

/// A trade without a notify URL: its changes queue no outbox row, so they
/// take the short write (on PostgreSQL one statement hanging on the row's
/// compare-and-set, with no lock). Racing writers still book the payment
/// once and leave the trade paid, with the step job of its final version.
async fn concurrent_answers_without_notice_book_once(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000104").await;
    let trade = store
        .insert_trade_intent(&TradeIntent {
            notify_url: None,
            ..intent(&merchant, "QUIET", 7_300, TradeKind::BarcodePay)
        })
        .await
        .unwrap()
        .into_inner();
    let paid = success(&trade, vec![]);
    let observations = vec![
        Observation::Answered(SyncAnswer::Unknown {
            reason: "timeout".into(),
        }),
        Observation::Answered(SyncAnswer::Paid(paid.clone())),
        Observation::Refreshed(paid.clone()),
        Observation::Notified(paid.clone()),
    ];
    let mut changes = 0;
    for task in race(&store, trade.id, observations, 32, 1) {
        // A late "unknown" after the payment is refused by the core, which
        // writes nothing; every other answer converges.
        if let Ok((_, changed)) = task.await.unwrap() {
            changes += usize::from(changed);
        }
    }
    let end = store.trade(trade.id).await.unwrap().unwrap();
    assert_eq!(end.state, TradeState::Paid);
    assert!(changes >= 1);
    assert_eq!(
        end.version,
        1 + i64::try_from(changes).unwrap(),
        "one version per change"
    );
    let check = store.ledger_check().await.unwrap();
    assert_eq!(check.journals, 1, "paid once, booked once");
    assert!(store.outbox_of_trade(trade.id).await.unwrap().is_empty());
}

/// The request that created a trade records Alipay's answer on its own copy
/// with the merchant's rates as it knows them, in one write that stands only
/// while the row is at the copy's version and the rates are those.
async fn an_answer_to_a_held_trade_is_written_only_while_it_holds(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000105").await;
    let start = |order: &'static str| {
        let store = store.clone();
        let intent = TradeIntent {
            notify_url: None,
            ..intent(&merchant, order, 10_000, TradeKind::BarcodePay)
        };
        async move {
            store
                .insert_trade_intent(&intent)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let paid = |trade: &Trade| Observation::Answered(SyncAnswer::Paid(success(trade, vec![])));

    // Held and current: written, fee booked at the merchant's rate.
    let held = start("HELD").await;
    let (trade, changed) = store
        .apply_observation_to(&held, merchant.fees, &paid(&held), at(1))
        .await
        .unwrap()
        .expect("written");
    assert!(changed);
    let stored = store.trade(held.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.version), (TradeState::Paid, 2));
    assert_eq!(stored.fee.map(|f| f.fee), Some(Fen::new(60)));
    assert_eq!(trade.version, 2);
    assert_eq!(store.ledger_check().await.unwrap().journals, 1);

    // The row moved on since the copy (an earlier answer): nothing written.
    let raced = start("RACED").await;
    let unknown = Observation::Answered(SyncAnswer::Unknown {
        reason: "timeout".into(),
    });
    store
        .apply_observation(raced.id, &unknown, at(1))
        .await
        .unwrap();
    let jobs = queued_jobs(&store).await;
    let stale = store
        .apply_observation_to(&raced, merchant.fees, &paid(&raced), at(2))
        .await
        .unwrap();
    assert!(stale.is_none(), "{stale:?}");
    let stored = store.trade(raced.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.version), (TradeState::Unknown, 2));
    assert_eq!(store.ledger_check().await.unwrap().journals, 1);
    assert_eq!(
        queued_jobs(&store).await,
        jobs,
        "no step job from a refused write"
    );

    // The rates changed since the caller learnt them: nothing written; the
    // locked way books the new rate.
    let repriced = start("REPRICED").await;
    let new_fees = FeePolicy::flat(Rate::parse("0.003").unwrap());
    store
        .set_merchant_fees(merchant.id, new_fees, at(1))
        .await
        .unwrap();
    let nobody = MerchantId::new(999_999).unwrap();
    assert!(matches!(
        store.set_merchant_fees(nobody, new_fees, at(1)).await,
        Err(StoreError::NotFound {
            what: "merchant",
            ..
        })
    ));
    let stale = store
        .apply_observation_to(&repriced, merchant.fees, &paid(&repriced), at(2))
        .await
        .unwrap();
    assert!(stale.is_none(), "{stale:?}");
    assert_eq!(store.trade(repriced.id).await.unwrap().unwrap().version, 1);
    let (trade, _) = store
        .apply_observation(repriced.id, &paid(&repriced), at(2))
        .await
        .unwrap();
    assert_eq!(trade.fee.map(|f| f.fee), Some(Fen::new(30)));
    // With the rates it now knows, a held copy is written again.
    let again = start("AGAIN").await;
    let written = store
        .apply_observation_to(&again, new_fees, &paid(&again), at(3))
        .await
        .unwrap();
    assert!(written.is_some());
    let check = store.ledger_check().await.unwrap();
    assert_eq!(check.journals, 3);
}

async fn refunds_never_exceed_the_paid_amount_under_concurrency(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000104").await;
    let trade = paid_trade(&store, &merchant, "REFUND_RACE", 10_000).await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let request = RefundRequest {
                trade: trade.id,
                out_request_no: RefundRequestNo::parse(&format!("R{i}")).unwrap(),
                amount: Fen::new(700),
                reason: None,
                requested_at: at(10),
            };
            tokio::spawn(async move { store.reserve_refund(&request).await })
        })
        .collect();
    let mut reserved = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Reservation::Reserved(_)) => reserved += 1,
            Err(StoreError::Refund(RefundError::Exceeds { .. })) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reserved, 14, "14 × 7.00 fit in 100.00, a 15th does not");
    assert_eq!(refused, 26);
    let held: i64 = store
        .refunds_of_trade(trade.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.amount.get())
        .sum();
    assert!(held <= 10_000);

    // Idempotent request numbers; the same number with another amount is refused.
    let existing = store.refunds_of_trade(trade.id).await.unwrap()[0].clone();
    let retry = RefundRequest {
        trade: trade.id,
        out_request_no: existing.out_request_no.clone(),
        amount: existing.amount,
        reason: None,
        requested_at: at(11),
    };
    assert_eq!(
        store.reserve_refund(&retry).await.unwrap(),
        Reservation::Existing(existing.clone())
    );
    let conflicting = RefundRequest {
        amount: Fen::new(1),
        ..retry.clone()
    };
    assert!(matches!(
        store.reserve_refund(&conflicting).await,
        Err(StoreError::Refund(RefundError::Conflict { .. }))
    ));
    // A failed refund releases what it held.
    let (failed, _) = store
        .apply_refund_observation(
            existing.id,
            &RefundObservation::Answered(RefundAnswer::Failed(
                jianlian_core::trade::FailureReason {
                    code: "40004".into(),
                    msg: "Business Failed".into(),
                    sub_code: Some("ACQ.SELLER_BALANCE_NOT_ENOUGH".into()),
                    sub_msg: None,
                },
            )),
            at(12),
        )
        .await
        .unwrap();
    assert_eq!(failed.state, RefundState::Failed);
    let fits = RefundRequest {
        out_request_no: RefundRequestNo::parse("R_AFTER_FAIL").unwrap(),
        amount: Fen::new(700),
        ..retry
    };
    assert!(matches!(
        store.reserve_refund(&fits).await,
        Ok(Reservation::Reserved(_))
    ));
}

async fn refunds_book_fees_and_a_full_refund_closes_the_trade(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000105").await;
    let trade = paid_trade(&store, &merchant, "FULL_REFUND", 10_000).await;
    assert_eq!(trade.fee.unwrap().fee, Fen::new(60));
    let reserve = |no: &str, amount: i64| {
        let store = store.clone();
        let request = RefundRequest {
            trade: trade.id,
            out_request_no: RefundRequestNo::parse(no).unwrap(),
            amount: Fen::new(amount),
            reason: Some("customer".into()),
            requested_at: at(20),
        };
        async move {
            match store.reserve_refund(&request).await.unwrap() {
                Reservation::Reserved(r) => r,
                Reservation::Existing(r) => panic!("{r:?} existed"),
            }
        }
    };
    let first = reserve("R1", 3_333).await;
    // fund_change=N: not confirmed yet, the refund query settles it.
    let (first_state, _) = store
        .apply_refund_observation(
            first.id,
            &RefundObservation::Answered(RefundAnswer::Accepted),
            at(21),
        )
        .await
        .unwrap();
    assert_eq!(first_state.state, RefundState::Unknown);
    assert!(first_state.state.needs_confirmation());
    let confirm = store
        .job_by_key(&format!(
            "{REFUND_CONFIRM_JOB}:{}:{}",
            first.id, first_state.version
        ))
        .await
        .unwrap()
        .expect("a job confirms the refund with a refund query");
    assert_eq!(confirm.run_at, at(31), "10 s after the answer");
    assert_eq!(store.unconfirmed_refunds(10).await.unwrap().len(), 1);
    let (first_done, _) = store
        .apply_refund_observation(
            first.id,
            &RefundObservation::Queried(jianlian_core::refund::RefundQueryAnswer::Succeeded {
                at: Some(at(30)),
            }),
            at(31),
        )
        .await
        .unwrap();
    assert_eq!(first_done.state, RefundState::Succeeded);
    assert_eq!(first_done.share.unwrap().fee_return, Fen::new(20));
    // The answer again changes nothing (no second journal).
    let (_, changed) = store
        .apply_refund_observation(
            first.id,
            &RefundObservation::Answered(RefundAnswer::Refunded { at: None }),
            at(32),
        )
        .await
        .unwrap();
    assert!(!changed);

    let last = reserve("R2", 6_667).await;
    let (last_done, _) = store
        .apply_refund_observation(
            last.id,
            &RefundObservation::Answered(RefundAnswer::Refunded { at: None }),
            at(40),
        )
        .await
        .unwrap();
    assert_eq!(
        last_done.share.unwrap().fee_return,
        Fen::new(40),
        "the last refund returns the rest"
    );
    let closed = store.trade(trade.id).await.unwrap().unwrap();
    assert_eq!(closed.state, TradeState::Refunded);
    // The channel hears of the payment, then of each refund: the first
    // leaves the trade TRADE_SUCCESS, the last closes it (one message).
    let messages: Vec<Vec<Option<String>>> = store
        .outbox_of_trade(trade.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            ["trade_status", "refund_fee", "out_biz_no", "gmt_refund"]
                .iter()
                .map(|name| {
                    m.fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                })
                .collect()
        })
        .collect();
    let some = |v: &str| Some(v.to_owned());
    assert_eq!(
        messages,
        vec![
            vec![some("TRADE_SUCCESS"), None, None, None],
            vec![
                some("TRADE_SUCCESS"),
                some("33.33"),
                some("R1"),
                some("2026-03-02 10:00:30.000")
            ],
            vec![
                some("TRADE_CLOSED"),
                some("100.00"),
                some("R2"),
                some("2026-03-02 10:00:40.000")
            ],
        ]
    );
    let ledger = store.ledger_check().await.unwrap();
    assert_eq!(ledger.journals, 3);
    assert!(
        ledger.balances.values().all(|b| b.is_zero()),
        "{:?}",
        ledger.balances
    );
    // Nothing is left to refund.
    let more = RefundRequest {
        trade: trade.id,
        out_request_no: RefundRequestNo::parse("R3").unwrap(),
        amount: Fen::new(1),
        reason: None,
        requested_at: at(50),
    };
    assert!(matches!(
        store.reserve_refund(&more).await,
        Err(StoreError::Refund(RefundError::NotRefundable { .. }))
    ));

    // A cancel that refunded a paid trade reverses its books.
    let reversed = store
        .insert_trade_intent(&intent(&merchant, "REVERSED", 2_000, TradeKind::BarcodePay))
        .await
        .unwrap()
        .into_inner();
    store
        .apply_observation(
            reversed.id,
            &Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None }),
            at(60),
        )
        .await
        .unwrap();
    let (reversed, _) = store
        .apply_observation(
            reversed.id,
            &Observation::CancelAnswered {
                step: jianlian_core::closed_loop::Step {
                    number: 1,
                    kind: StepKind::Cancel,
                    attempt: 1,
                },
                answer: CancelAnswer::Done {
                    action: Some(CancelAction::Refund),
                },
            },
            at(61),
        )
        .await
        .unwrap();
    assert_eq!(
        reversed.state,
        TradeState::Cancelled {
            action: Some(CancelAction::Refund)
        }
    );
    let ledger = store.ledger_check().await.unwrap();
    assert_eq!(ledger.journals, 5);
    assert!(ledger.balances.values().all(|b| b.is_zero()));

    // `ledger check` catches books edited behind the store's back.
    let mut tx = store.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO journal_entries (journal_id, account, side, amount) \
         SELECT MIN(id), 'fee_income', 'credit', 1 FROM journals",
    )
    .execute(tx.connection())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let broken = store.ledger_check().await;
    assert!(
        matches!(
            broken,
            Err(StoreError::Ledger(
                jianlian_core::ledger::LedgerError::Unbalanced { .. }
            ))
        ),
        "{broken:?}"
    );
}

async fn jobs_are_leased_fenced_retried_and_dead_lettered(db: Db) {
    let store = db.store().await;
    let job = |key: &str, run_at: Timestamp, max_attempts: u32| NewJob {
        kind: "test.job".into(),
        dedupe_key: key.into(),
        payload: serde_json::json!({ "key": key }),
        run_at,
        max_attempts,
    };
    assert!(store.enqueue(&job("a", t0(), 2)).await.unwrap().is_some());
    assert!(
        store.enqueue(&job("a", t0(), 2)).await.unwrap().is_none(),
        "dedupe"
    );
    store.enqueue(&job("later", at(100), 2)).await.unwrap();
    // Enqueued in a transaction that does not commit: it never exists.
    let mut tx = store.begin().await.unwrap();
    tx.enqueue(&job("rolled_back", t0(), 1)).await.unwrap();
    drop(tx);
    assert!(store.job_by_key("rolled_back").await.unwrap().is_none());

    let lease = SignedDuration::from_secs(30);
    let claimed = store.claim("w1", t0(), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "only due jobs");
    let a = claimed[0].clone();
    assert_eq!((a.attempts, a.locked_by.as_deref()), (1, Some("w1")));
    assert!(
        store
            .claim("w2", at(10), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // w1 dies; after the lease w2 takes the job over, and w1 can no longer complete it.
    let taken = store.claim("w2", at(31), lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 2);
    assert!(matches!(
        store.complete(&a, at(32)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    // Out of attempts: dead.
    assert_eq!(
        store
            .fail(&taken[0], "upstream down", at(33), at(40))
            .await
            .unwrap(),
        JobFate::Dead
    );
    assert_eq!(
        store.job(a.id).await.unwrap().unwrap().state,
        JobState::Dead
    );

    // Failure with attempts left: retried at the given time; a reschedule is no attempt.
    store.enqueue(&job("b", t0(), 3)).await.unwrap();
    let b = store
        .claim("w1", at(50), lease, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store.fail(&b, "boom", at(50), at(60)).await.unwrap(),
        JobFate::RetryAt(at(60))
    );
    assert!(
        store
            .claim("w1", at(59), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let b = store
        .claim("w1", at(60), lease, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(b.attempts, 2);
    assert_eq!(b.last_error.as_deref(), Some("boom"));
    store.reschedule(&b, at(70), at(60)).await.unwrap();
    assert_eq!(store.job(b.id).await.unwrap().unwrap().attempts, 1);
    let jobs = store.claim("w1", at(100), lease, 10).await.unwrap();
    let keys: BTreeSet<_> = jobs.iter().map(|j| j.dedupe_key.as_str()).collect();
    assert_eq!(keys, BTreeSet::from(["b", "later"]));
    for j in &jobs {
        store.complete(j, at(101)).await.unwrap();
    }
    assert_eq!(store.jobs_due(at(1_000)).await.unwrap(), 0);
    // A leased job whose lease expired on its last attempt is dead, not stuck.
    store.enqueue(&job("c", at(200), 1)).await.unwrap();
    let c = store
        .claim("w1", at(200), lease, 10)
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .claim("w2", at(300), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.job(c.id).await.unwrap().unwrap().state,
        JobState::Dead
    );
}

async fn two_nodes_claim_disjoint_jobs_and_each_runs_once(db: Db) {
    const JOBS: usize = 120;
    let node_a = db.store().await;
    let node_b = db.store().await;
    for i in 0..JOBS {
        node_a
            .enqueue(&NewJob {
                kind: "test.race".into(),
                dedupe_key: format!("race-{i}"),
                payload: serde_json::json!({ "i": i }),
                run_at: t0(),
                max_attempts: 3,
            })
            .await
            .unwrap();
    }
    let run = |store: Store, worker: &'static str| {
        tokio::spawn(async move {
            let mut ran = Vec::new();
            // Bounded: each round claims at least one job until none are left.
            for _ in 0..JOBS {
                let jobs = store
                    .claim(worker, at(1), SignedDuration::from_secs(60), 4)
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    break;
                }
                for job in jobs {
                    store.complete(&job, at(2)).await.unwrap();
                    ran.push(job.dedupe_key);
                }
            }
            ran
        })
    };
    let (a, b) = tokio::join!(run(node_a.clone(), "node-a"), run(node_b.clone(), "node-b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<_> = a.iter().chain(b.iter()).cloned().collect();
    assert_eq!(a.len() + b.len(), JOBS, "every job ran exactly once");
    assert_eq!(all.len(), JOBS);
    assert!(
        a.iter().all(|k| !b.contains(k)),
        "the nodes' claims are disjoint"
    );
    for job in node_a.jobs_in_state(JobState::Done, 1_000).await.unwrap() {
        assert_eq!(job.attempts, 1, "{} was claimed twice", job.dedupe_key);
    }
}

async fn notifications_retry_on_schedule_then_dead_letter_and_replay(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000106").await;
    let trade = paid_trade(&store, &merchant, "NOTIFY", 1_000).await;
    let schedule = RetrySchedule::default();
    let lease = SignedDuration::from_secs(60);
    let claim_notify = |now: Timestamp| {
        let store = store.clone();
        async move {
            store
                .claim("notifier", now, lease, 10)
                .await
                .unwrap()
                .into_iter()
                .filter(|j| j.kind == NOTIFY_JOB)
                .collect::<Vec<_>>()
        }
    };
    let mut now = at(1);
    let gaps = [4 * 60, 10 * 60, 10 * 60, 3_600, 7_200, 21_600, 54_000];
    for (failure, gap) in gaps.iter().enumerate() {
        let jobs = claim_notify(now).await;
        assert_eq!(jobs.len(), 1, "delivery {} is due", failure + 1);
        let status = store
            .notification_failed(&jobs[0], "connection refused", now, &schedule)
            .await
            .unwrap();
        assert_eq!(status, OutboxStatus::Pending);
        let next = now.checked_add(SignedDuration::from_secs(*gap)).unwrap();
        let early = next.checked_sub(SignedDuration::from_secs(1)).unwrap();
        assert!(claim_notify(early).await.is_empty(), "not before the gap");
        now = next;
    }
    let jobs = claim_notify(now).await;
    let status = store
        .notification_failed(&jobs[0], "connection refused", now, &schedule)
        .await
        .unwrap();
    assert_eq!(
        status,
        OutboxStatus::Dead,
        "8 deliveries, then a dead letter"
    );
    let dead = store
        .outbox_in_status(OutboxStatus::Dead, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 8);
    assert_eq!(dead[0].trade, trade.id);
    assert!(claim_notify(at(999_999)).await.is_empty());

    store
        .replay_dead_letter(dead[0].id, at(200_000))
        .await
        .unwrap();
    let jobs = claim_notify(at(200_000)).await;
    assert_eq!(jobs.len(), 1);
    store
        .notification_delivered(&jobs[0], at(200_001))
        .await
        .unwrap();
    let message = store.outbox_message(dead[0].id).await.unwrap().unwrap();
    assert_eq!(message.status, OutboxStatus::Delivered);
    assert_eq!(message.delivered_at, Some(at(200_001)));
    assert!(
        store
            .replay_dead_letter(dead[0].id, at(200_002))
            .await
            .is_err()
    );
}

async fn the_sweeper_finds_and_redrives_overdue_trades(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000107").await;
    let lost = store
        .insert_trade_intent(&intent(
            &merchant,
            "LOST_ANSWER",
            1_000,
            TradeKind::BarcodePay,
        ))
        .await
        .unwrap();
    let Inserted::Created(lost) = lost else {
        panic!("created");
    };
    assert!(store.overdue_trades(at(60), 100).await.unwrap().is_empty());
    let overdue = store.overdue_trades(at(3_600), 100).await.unwrap();
    assert_eq!(
        overdue.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![lost.id]
    );
    // The step job died (say the upstream was down for hours): the sweeper revives it.
    let job = store
        .claim("w", at(30), SignedDuration::from_secs(10), 10)
        .await
        .unwrap()
        .remove(0);
    store.fail(&job, "down", at(30), at(40)).await.unwrap();
    let key = format!("{TRADE_STEP_JOB}:{}:1", lost.id);
    for n in 0..30 {
        let jobs = store
            .claim("w", at(40 + n * 100), SignedDuration::from_secs(10), 10)
            .await
            .unwrap();
        for j in jobs {
            store
                .fail(&j, "down", at(40 + n * 100), at(41 + n * 100))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        store.job_by_key(&key).await.unwrap().unwrap().state,
        JobState::Dead
    );
    assert!(store.requeue_trade_step(lost.id, at(3_600)).await.unwrap());
    let revived = store.job_by_key(&key).await.unwrap().unwrap();
    assert_eq!((revived.state, revived.attempts), (JobState::Queued, 0));
    let jobs = store
        .claim("w", at(3_600), SignedDuration::from_secs(10), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    // A step job alive and on schedule is left alone: running, or queued to
    // retry shortly. One queued far behind the plan is pulled forward.
    assert!(
        !store.requeue_trade_step(lost.id, at(3_601)).await.unwrap(),
        "running"
    );
    store
        .fail(&jobs[0], "down", at(3_601), at(3_610))
        .await
        .unwrap();
    assert!(
        !store.requeue_trade_step(lost.id, at(3_602)).await.unwrap(),
        "retrying soon"
    );
    let job = store
        .claim("w", at(3_610), SignedDuration::from_secs(10), 10)
        .await
        .unwrap()
        .remove(0);
    store
        .fail(&job, "down", at(3_610), at(9_000))
        .await
        .unwrap();
    assert!(
        store.requeue_trade_step(lost.id, at(3_611)).await.unwrap(),
        "far behind its plan"
    );
    assert!(store.job_by_key(&key).await.unwrap().unwrap().run_at <= at(3_611));
    // A resolved trade is not overdue and needs no step.
    let (failed, _) = store
        .apply_observation(
            lost.id,
            &Observation::Answered(SyncAnswer::Failed(jianlian_core::trade::FailureReason {
                code: "40004".into(),
                msg: "Business Failed".into(),
                sub_code: Some("ACQ.PAYMENT_AUTH_CODE_INVALID".into()),
                sub_msg: Some("支付授权码无效".into()),
            })),
            at(3_601),
        )
        .await
        .unwrap();
    assert_eq!(failed.state, TradeState::Failed);
    assert!(
        store
            .overdue_trades(at(7_200), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.requeue_trade_step(lost.id, at(7_200)).await.unwrap());
}

async fn reconnecting_migrates_once_and_keeps_everything(db: Db) {
    let first = db.store().await;
    let merchant = onboarded_merchant(&first, "2088000000000108").await;
    let trade = paid_trade(&first, &merchant, "KEEP", 1_234).await;
    first.close().await;
    let second = db.store().await;
    assert_eq!(second.trade(trade.id).await.unwrap().unwrap(), trade);
    assert_eq!(
        second.merchant(merchant.id).await.unwrap().unwrap().smid,
        merchant.smid
    );
    assert_eq!(second.ledger_check().await.unwrap().journals, 1);
    let expected = if db.url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(second.backend(), expected);
    second.ping().await.unwrap();
    assert!(matches!(
        Store::connect("mysql://localhost/x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
    assert!(matches!(
        Store::connect("sqlite::memory:").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
    // A SQLite file in a directory that does not exist yet is created.
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/jianlian.db");
    let fresh = Store::connect(&format!("sqlite://{}", nested.display()))
        .await
        .unwrap();
    assert!(fresh.channels().await.unwrap().is_empty());
    assert!(nested.exists());
}

/// A minimal worker, as the gateway's will be: claim due jobs; a trade step
/// whose version is stale is completed untouched; otherwise ask the plan and
/// feed back what "Alipay" answers.
async fn the_closed_loop_runs_from_jobs_alone(db: Db) {
    let store = db.store().await;
    let merchant = onboarded_merchant(&store, "2088000000000109").await;
    let trade = store
        .insert_trade_intent(&intent(&merchant, "LOOP", 150_000, TradeKind::BarcodePay))
        .await
        .unwrap()
        .into_inner();
    store
        .apply_observation(
            trade.id,
            &Observation::Answered(SyncAnswer::AwaitingBuyer { trade_no: None }),
            at(1),
        )
        .await
        .unwrap();
    let waiting = TradeSnapshot {
        status: TradeStatus::WaitBuyerPay,
        receipt_amount: None,
        buyer_pay_amount: None,
        paid_at: None,
        ..success(&trade, vec![])
    };
    let mut calls = Vec::new();
    let mut stale = 0;
    let mut notified = 0;
    let mut now = at(1);
    // Bounded: one second at a time for ten virtual minutes; within a second,
    // jobs made due by the jobs just run run too.
    for new_second in (0..600).flat_map(|_| [true, false, false]) {
        if new_second {
            now = now.checked_add(SignedDuration::from_secs(1)).unwrap();
        }
        for job in store
            .claim("worker", now, SignedDuration::from_secs(30), 10)
            .await
            .unwrap()
        {
            if job.kind == NOTIFY_JOB {
                notified += 1;
                store.notification_delivered(&job, now).await.unwrap();
                continue;
            }
            assert_eq!(job.kind, TRADE_STEP_JOB);
            let version = job.payload["version"].as_i64().unwrap();
            let current = store.trade(trade.id).await.unwrap().unwrap();
            if current.version != version {
                stale += 1;
                store.complete(&job, now).await.unwrap();
                continue;
            }
            let observation = match next_action(&current, store.policy(), now) {
                NextAction::Run(step) if step.kind == StepKind::Cancel => {
                    Observation::CancelAnswered {
                        step,
                        answer: CancelAnswer::Done {
                            action: Some(CancelAction::Close),
                        },
                    }
                }
                NextAction::Run(step) => Observation::Queried {
                    step,
                    answer: QueryAnswer::Found(waiting.clone()),
                },
                other => panic!("a due job with nothing to run: {other:?}"),
            };
            if let Observation::Queried { step, .. } | Observation::CancelAnswered { step, .. } =
                &observation
            {
                calls.push((step.kind, now));
            }
            store
                .apply_observation(trade.id, &observation, now)
                .await
                .unwrap();
            store.complete(&job, now).await.unwrap();
        }
    }
    let polls: Vec<_> = calls.iter().filter(|(k, _)| *k == StepKind::Poll).collect();
    assert_eq!(polls.len(), 12, "R4.2: 12 polls");
    for (n, (_, when)) in polls.iter().enumerate() {
        let n = i64::try_from(n).unwrap() + 1;
        assert_eq!(*when, at(1 + 5 * n), "poll {n} 5 s after the previous one");
    }
    assert_eq!(
        calls.last().unwrap(),
        &(StepKind::Cancel, at(61)),
        "cancel right after the last poll"
    );
    assert_eq!(calls.len(), 13);
    assert_eq!(stale, 1, "the intent's guard job was superseded");
    let end = store.trade(trade.id).await.unwrap().unwrap();
    assert_eq!(
        end.state,
        TradeState::Cancelled {
            action: Some(CancelAction::Close)
        }
    );
    assert_eq!(notified, 1, "the channel is told the trade closed");
    assert_eq!(
        store.jobs_due(at(100_000)).await.unwrap(),
        0,
        "nothing left to do"
    );
}

// Migrations on a database that already has data: `0002` (one outbox row per
// change, for refund notifications) keeps every outbox row with its id
// (delivery jobs name rows by id), keys it by its status, and from then on
// refuses a second row for the same change while accepting a second one with
// the same status.

async fn raw_connect(db: &Db) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = if db.url.starts_with("sqlite:") {
        format!("{}?mode=rwc", db.url)
    } else {
        db.url.clone()
    };
    AnyConnection::connect(&url).await.unwrap()
}

async fn run_sql(conn: &mut AnyConnection, sql: &'static str) {
    sqlx::raw_sql(sql).execute(&mut *conn).await.unwrap();
}

async fn outbox_notice_key_migration_keeps_every_row(db: Db) {
    let sqlite = db.url.starts_with("sqlite:");
    let mut conn = raw_connect(&db).await;
    let (initial, notice_key) = if sqlite {
        (
            include_str!("../migrations/sqlite/0001_initial.sql"),
            include_str!("../migrations/sqlite/0002_outbox_notice_key.sql"),
        )
    } else {
        (
            include_str!("../migrations/postgres/0001_initial.sql"),
            include_str!("../migrations/postgres/0002_outbox_notice_key.sql"),
        )
    };
    run_sql(&mut conn, initial).await;
    run_sql(
        &mut conn,
        "INSERT INTO channels (app_id, name, pid, parent_app_id, public_key, notify_hosts, \
         status, created_at) VALUES ('2021000000000001', 'c', '2088000000000001', NULL, 'k', \
         '[]', 'active', 0); \
         INSERT INTO merchants (channel_app_id, external_id, business_license, name, profile, \
         source, smid, state, rejection, fee_rate_ppm, credit_fee_rate_ppm, created_at, \
         updated_at, version) VALUES ('2021000000000001', 'E1', NULL, 'm', '{}', \
         '2088000000000001', '2088000000000002', 'onboarded', NULL, 3800, NULL, 0, 0, 1); \
         INSERT INTO trades (kind, channel_app_id, merchant_id, smid, store_code, terminal_id, \
         channel_out_trade_no, upstream_out_trade_no, subject, total_amount, notify_url, \
         created_at, expires_at, state, cancel_action, state_since, flags, fund_bills, \
         progress, version) VALUES ('barcode_pay', '2021000000000001', 1, '2088000000000002', \
         'S1', 'T1', 'O1', 'JL1', 's', 100, 'http://x/n', 0, 0, 'paid', NULL, 0, 0, '[]', '{}', \
         2); \
         INSERT INTO outbox (id, trade_id, channel_app_id, trade_status, notify_url, fields, \
         status, attempts, next_attempt_at, last_error, created_at, delivered_at, generation) \
         VALUES (7, 1, '2021000000000001', 'TRADE_SUCCESS', 'http://x/n', '[]', 'delivered', \
         1, NULL, NULL, 0, 1, 0), \
         (9, 1, '2021000000000001', 'TRADE_CLOSED', 'http://x/n', '[]', 'pending', 0, 5, \
         NULL, 2, NULL, 0);",
    )
    .await;
    run_sql(&mut conn, notice_key).await;

    let rows: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT id, trade_status, notice_key, status FROM outbox ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let row = |id: i64, s: &str, st: &str| (id, s.to_owned(), s.to_owned(), st.to_owned());
    assert_eq!(
        rows,
        vec![
            row(7, "TRADE_SUCCESS", "delivered"),
            row(9, "TRADE_CLOSED", "pending")
        ]
    );
    let insert = |key: &'static str| {
        format!(
            "INSERT INTO outbox (trade_id, channel_app_id, trade_status, notice_key, notify_url, \
             fields, status, attempts, next_attempt_at, last_error, created_at, delivered_at, \
             generation) VALUES (1, '2021000000000001', 'TRADE_SUCCESS', '{key}', 'http://x/n', \
             '[]', 'pending', 0, 3, NULL, 3, NULL, 0) RETURNING id"
        )
    };
    let refund: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(insert("refund:1")))
        .fetch_one(&mut conn)
        .await
        .expect("a second TRADE_SUCCESS row for a refund");
    if sqlite {
        // The rebuilt table goes on from the highest id (PostgreSQL keeps its
        // table and identity; the rows above were given ids by hand).
        assert!(refund > 9, "ids keep counting up: {refund}");
    }
    let again = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(insert("refund:1")))
        .fetch_one(&mut conn)
        .await;
    assert!(
        matches!(&again, Err(sqlx::Error::Database(e)) if e.is_unique_violation()),
        "one row per change: {again:?}"
    );
    let status_again = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(insert("TRADE_SUCCESS")))
        .fetch_one(&mut conn)
        .await;
    assert!(
        matches!(&status_again, Err(sqlx::Error::Database(e)) if e.is_unique_violation()),
        "one row per status: {status_again:?}"
    );
    conn.close().await.unwrap();
}
