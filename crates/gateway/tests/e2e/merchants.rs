//! R2 onboarding through the channel API: every field reaches Alipay under
//! the gateway's own `external_id`, `source` defaults to the channel's PID
//! and can be set and corrected with an audit trail, one real merchant is
//! onboarded once, and a channel sees only its own and its sub-channels'
//! merchants.

use jianlian_alipay::Outcome;
use jianlian_alipay::api::merchant::{
    IndirectCreate, IndirectModify, IndirectQuery, MerchantProfile,
};
use jianlian_core::ids::{Pid, Smid};
use jianlian_core::merchant::{NewMerchant, OnboardingEvent, OnboardingState};
use jianlian_gateway::ops::{SourceOutcome, set_source, source_correction_complete};
use serde_json::json;

use crate::common::*;
use crate::e2e;

async fn merchant(w: &World, smid: &str) -> jianlian_core::merchant::Merchant {
    w.gateway
        .service()
        .store
        .merchant_by_smid(&Smid::parse(smid).unwrap())
        .await
        .unwrap()
        .unwrap()
}

async fn onboarding_reaches_alipay_with_every_field(db: Db) {
    let w = World::new(db).await;
    let mut p = profile("EXT1", "91310000000000001A");
    p.memo = Some("##220000##branch".into());
    p.service_codes = Some(vec!["F2F".into()]);
    p.logon_id = Some(vec!["bank@example.com".into()]);
    let out = w.channel.call(&IndirectCreate { profile: p }).await;
    let smid = match out {
        Outcome::Success(r) => r.body.sub_merchant_id.unwrap(),
        other => panic!("{other:?}"),
    };
    let m = merchant(&w, &smid).await;
    assert_eq!(m.state, OnboardingState::Onboarded);
    assert_eq!(
        m.source.as_str(),
        "2088000000000101",
        "R2.3: the channel's PID by default"
    );
    let upstream = w.sandbox.merchant(&smid).await.unwrap();
    let sent = serde_json::to_value(&upstream).unwrap();
    assert_eq!(
        sent["profile"]["external_id"],
        json!(m.upstream_external_id())
    );
    assert_eq!(sent["profile"]["source"], json!("2088000000000101"));
    assert_eq!(sent["profile"]["memo"], json!("##220000##branch"));
    assert_eq!(sent["profile"]["logon_id"], json!(["bank@example.com"]));
    // The channel reads its own number back, not the gateway's.
    let q = w
        .channel
        .call(&IndirectQuery {
            external_id: Some("EXT1".into()),
            ..Default::default()
        })
        .await
        .success()
        .unwrap();
    assert_eq!(q.sub_merchant_id.as_deref(), Some(smid.as_str()));
    assert_eq!(q.profile.external_id.as_deref(), Some("EXT1"));
    assert!(q.indirect_level.is_some(), "Alipay's level is passed on");
    // A retry of the same onboarding is the same merchant.
    let again = w
        .channel
        .call(&IndirectCreate {
            profile: profile("EXT1", "91310000000000001A"),
        })
        .await
        .success()
        .unwrap();
    assert_eq!(again.sub_merchant_id.as_deref(), Some(smid.as_str()));
}
e2e!(onboarding_reaches_alipay_with_every_field);

async fn explicit_source_and_audited_corrections(db: Db) {
    let w = World::new(db).await;
    let mut p = profile("EXT2", "91310000000000002B");
    p.source = Some("2088000000000999".into());
    let smid = w
        .channel
        .call(&IndirectCreate { profile: p })
        .await
        .success()
        .unwrap()
        .sub_merchant_id
        .unwrap();
    assert_eq!(
        merchant(&w, &smid).await.source.as_str(),
        "2088000000000999"
    );
    // The channel corrects it with modify: recorded with the channel as actor.
    let out = w
        .channel
        .call(&IndirectModify {
            sub_merchant_id: smid.clone(),
            profile: MerchantProfile {
                source: Some("2088000000000101".into()),
                alias_name: Some("新简称".into()),
                ..Default::default()
            },
        })
        .await;
    assert!(out.is_success(), "{out:?}");
    let m = merchant(&w, &smid).await;
    assert_eq!(m.source.as_str(), "2088000000000101");
    assert_eq!(m.profile.alias_name.as_deref(), Some("新简称"));
    let upstream = serde_json::to_value(w.sandbox.merchant(&smid).await.unwrap()).unwrap();
    assert_eq!(upstream["profile"]["alias_name"], json!("新简称"));
    // Bulk correction by an operator, all audited.
    let other = w.onboard(&w.channel, "EXT3", "91310000000000003C").await;
    let store = &w.gateway.service().store;
    let results = set_source(
        w.gateway.service(),
        &[smid.clone(), other.clone()],
        &Pid::parse("2088000000000777").unwrap(),
        "ops:alice",
        "rebate correction 2026-03",
    )
    .await
    .unwrap();
    assert!(source_correction_complete(&results));
    assert!(
        results
            .iter()
            .all(|r| matches!(r.outcome, SourceOutcome::Changed(_))),
        "{results:?}"
    );
    let trail = store
        .source_changes(merchant(&w, &smid).await.id)
        .await
        .unwrap();
    let actors: Vec<_> = trail.iter().map(|c| c.actor.as_str()).collect();
    assert_eq!(actors, vec![w.channel.app_id.as_str(), "ops:alice"]);
    assert_eq!(trail[1].to.as_str(), "2088000000000777");
}
e2e!(explicit_source_and_audited_corrections);

/// R2.2: one real merchant, one onboarding; a smid never serves two.
async fn a_merchant_is_onboarded_once(db: Db) {
    let w = World::new(db).await;
    let other = w.new_channel("渠道乙", "2088000000000202", None).await;
    w.onboard(&w.channel, "EXT1", "91310000000000001A").await;
    let rows = w.rows().await;
    let dup = other
        .call(&IndirectCreate {
            profile: profile("OTHER1", "91310000000000001A"),
        })
        .await;
    assert_eq!(sub_code(&dup), "JL.MERCHANT_DUPLICATE");
    assert!(
        failure_msg(&dup).contains("business licence"),
        "{}",
        failure_msg(&dup)
    );
    assert_eq!(w.rows().await, rows, "nothing was written");
    // The same external_id in the same channel with another identity is refused.
    let clash = w
        .channel
        .call(&IndirectCreate {
            profile: profile("EXT1", "91310000000000005E"),
        })
        .await;
    assert_eq!(sub_code(&clash), "JL.MERCHANT_DUPLICATE");
    assert!(
        failure_msg(&clash).contains("EXT1"),
        "{}",
        failure_msg(&clash)
    );
    assert_eq!(w.rows().await, rows, "nothing was written");
    // Another channel may reuse an external_id for another merchant.
    let smid = w.onboard(&other, "EXT1", "91310000000000009Z").await;
    assert!(!smid.is_empty());
    // Missing required fields are named.
    let mut p = profile("EXT9", "91310000000000008Y");
    p.name = None;
    let out = w.channel.call(&IndirectCreate { profile: p }).await;
    assert!(failure_msg(&out).contains("name"), "{out:?}");
}
e2e!(a_merchant_is_onboarded_once);

/// A channel sees its own and its sub-channels' merchants, never others'.
async fn channels_see_only_their_own_merchants(db: Db) {
    let w = World::new(db).await;
    let sub = w
        .new_channel("子渠道", "2088000000000303", Some(&w.channel.app_id))
        .await;
    let stranger = w.new_channel("渠道丙", "2088000000000404", None).await;
    let smid = w.onboard(&sub, "SUB1", "91310000000000004D").await;
    let by_smid = IndirectQuery {
        sub_merchant_id: Some(smid.clone()),
        ..Default::default()
    };
    assert!(
        w.channel.call(&by_smid).await.is_success(),
        "the parent sees it"
    );
    let rows = w.rows().await;
    assert_eq!(
        sub_code(&stranger.call(&by_smid).await),
        "JL.MERCHANT_NOT_FOUND"
    );
    let modify = stranger
        .call(&IndirectModify {
            sub_merchant_id: smid.clone(),
            profile: MerchantProfile {
                source: Some("2088000000000404".into()),
                ..Default::default()
            },
        })
        .await;
    assert_eq!(sub_code(&modify), "JL.MERCHANT_NOT_FOUND");
    let store = stranger
        .raw(
            "jianlian.merchant.store.create",
            json!({"sub_merchant_id": smid, "store_id": "X1", "name": "x", "terminal_ids": ["X"]}),
        )
        .await;
    assert_eq!(sub_code(&store), "JL.MERCHANT_NOT_FOUND");
    let pay = stranger
        .call(&w.pay_req(&smid, "S1", "1.00", &w.code().await))
        .await;
    assert_eq!(sub_code(&pay), "ACQ.INVALID_PARAMETER");
    let unknown = stranger
        .call(&w.pay_req("2088999999999999", "S1", "1.00", &w.code().await))
        .await;
    assert_eq!(
        failure_msg(&pay).replace(&smid, "X"),
        failure_msg(&unknown).replace("2088999999999999", "X"),
        "another channel's merchant looks unknown"
    );
    assert_eq!(w.rows().await, rows, "refusals wrote nothing");
    // The registry lists and searches what Alipay cannot.
    let found = w
        .gateway
        .service()
        .store
        .search_merchants(
            &jianlian_gateway::app::merchant_filter(
                Some("SUB1".into()),
                Some("onboarded".into()),
                None,
                None,
                None,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].smid.as_ref().map(|s| s.to_string()), Some(smid));
}
e2e!(channels_see_only_their_own_merchants);

/// Stores and terminals through the gateway's own method, safe to repeat.
async fn stores_and_terminals_are_registered(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "EXT1", "91310000000000001A").await;
    let out = w
        .channel
        .raw(
            "jianlian.merchant.store.create",
            json!({"sub_merchant_id": smid, "store_id": "S1", "name": "一号店", "terminal_ids": ["T2", "T3"]}),
        )
        .await;
    let body = out.success().unwrap();
    assert_eq!(body["terminal_ids"], json!(["T1", "T2", "T3"]));
    let bad = w
        .channel
        .raw(
            "jianlian.merchant.store.create",
            json!({"sub_merchant_id": smid, "store_id": "S2", "name": "二号店", "terminal_ids": ["T1"]}),
        )
        .await;
    assert!(failure_msg(&bad).contains("T1"), "{bad:?}");
    let unknown_field = w
        .channel
        .raw(
            "jianlian.merchant.store.create",
            json!({"sub_merchant_id": smid, "store_id": "S2", "name": "二号店", "terminals": ["T9"]}),
        )
        .await;
    assert!(
        failure_msg(&unknown_field).contains("terminals"),
        "{unknown_field:?}"
    );
}
e2e!(stores_and_terminals_are_registered);

/// The `source` Alipay holds for a merchant, read with
/// `ant.merchant.expand.indirect.query` (the acquirer's own call).
async fn alipay_profile(w: &World, smid: &str) -> MerchantProfile {
    let q = IndirectQuery {
        sub_merchant_id: Some(smid.to_owned()),
        ..Default::default()
    };
    match w.gateway.service().upstream.call(&q, false).await {
        Outcome::Success(r) => r.body.profile,
        other => panic!("Alipay's query failed: {other:?}"),
    }
}

/// R2.3: a bulk `source` correction reaches Alipay (which pays rebates by
/// it) before the registry records it; a merchant Alipay refuses or does not
/// answer for keeps its old `source` in both places, without an audit entry.
async fn bulk_source_correction_reaches_alipay_first(db: Db) {
    let w = World::new(db).await;
    let svc = w.gateway.service();
    let a = w.onboard(&w.channel, "EXTA", "91310000000000011A").await;
    let b = w.onboard(&w.channel, "EXTB", "91310000000000012B").await;
    let mut on_target = profile("EXTD", "91310000000000014D");
    on_target.source = Some("2088000000000777".into());
    let d = w
        .channel
        .call(&IndirectCreate { profile: on_target })
        .await
        .success()
        .unwrap()
        .sub_merchant_id
        .unwrap();
    // A merchant whose smid Alipay does not know (registered here only).
    let channel = svc
        .store
        .channel(&jianlian_core::ids::AppId::parse(&w.channel.app_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let lost = svc
        .store
        .insert_merchant(
            &NewMerchant::parse(
                channel.app_id.clone(),
                &channel.pid,
                profile("EXTC", "91310000000000013C"),
                w.settings().default_fees,
            )
            .unwrap(),
            w.clock_now(),
        )
        .await
        .unwrap();
    svc.store
        .apply_onboarding(
            lost.id,
            &OnboardingEvent::Onboarded(Smid::parse("2088999999990001").unwrap()),
            w.clock_now(),
        )
        .await
        .unwrap();
    let to = Pid::parse("2088000000000777").unwrap();
    let old = "2088000000000101";

    // A name that is no merchant stops the whole correction before any call.
    let typo = set_source(
        svc,
        &[a.clone(), "2088000000009999".into()],
        &to,
        "ops:alice",
        "rebates",
    )
    .await
    .unwrap_err();
    assert!(typo.to_string().contains("2088000000009999"), "{typo}");
    assert_eq!(alipay_profile(&w, &a).await.source.as_deref(), Some(old));

    let keys = vec![a.clone(), b.clone(), "2088999999990001".into(), d.clone()];
    let results = set_source(svc, &keys, &to, "ops:alice", "rebate correction")
        .await
        .unwrap();
    let outcomes: Vec<&str> = results.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["changed", "changed", "refused", "unchanged"]);
    assert!(!source_correction_complete(&results));
    match &results[2].outcome {
        SourceOutcome::Refused(why) => assert!(why.contains("SUB_MERCHANT_NOT_EXIST"), "{why}"),
        other => panic!("{other:?}"),
    }
    for smid in [&a, &b, &d] {
        assert_eq!(
            alipay_profile(&w, smid).await.source.as_deref(),
            Some(to.as_str()),
            "Alipay holds the new source of {smid}"
        );
        assert_eq!(merchant(&w, smid).await.source, to);
    }
    let refused = svc.store.merchant(lost.id).await.unwrap().unwrap();
    assert_eq!(refused.source.as_str(), old, "refused: not recorded");
    assert!(svc.store.source_changes(lost.id).await.unwrap().is_empty());
    let trail = svc
        .store
        .source_changes(merchant(&w, &a).await.id)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (trail[0].from.as_str(), trail[0].actor.as_str()),
        (old, "ops:alice")
    );
    let report = jianlian_gateway::ops::source_report_json(&results);
    assert_eq!(
        (report["changed"].clone(), report["refused"].clone()),
        (json!(2), json!(1))
    );

    // Alipay does not answer: nothing is recorded, and running it again later works.
    w.fault(
        "ant.merchant.expand.indirect.modify",
        None,
        jianlian_sandbox::FaultAction::SystemError { apply: false },
        None,
    )
    .await;
    let back = Pid::parse(old).unwrap();
    let rows = w.rows().await;
    let results = set_source(svc, &[a.clone(), b.clone()], &back, "ops:bob", "undo")
        .await
        .unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r.outcome, SourceOutcome::Unknown(_))),
        "{results:?}"
    );
    assert_eq!(w.rows().await, rows, "nothing recorded");
    assert_eq!(merchant(&w, &a).await.source, to);
    w.sandbox.clear_faults().await.unwrap();
    let results = set_source(svc, &[a.clone(), b.clone()], &back, "ops:bob", "undo")
        .await
        .unwrap();
    assert!(source_correction_complete(&results), "{results:?}");
    assert_eq!(alipay_profile(&w, &b).await.source.as_deref(), Some(old));
    assert_eq!(merchant(&w, &b).await.source, back);
}
e2e!(bulk_source_correction_reaches_alipay_first, pg);

/// R2.2 with modify: a business licence that belongs to another merchant is
/// refused before Alipay is called, so Alipay and the registry never disagree.
async fn modify_to_another_merchants_licence_is_refused_before_alipay(db: Db) {
    let w = World::new(db).await;
    let _first = w.onboard(&w.channel, "EXT1", "91310000000000001A").await;
    let second = w.onboard(&w.channel, "EXT2", "91310000000000002B").await;
    let rows = w.rows().await;
    let out = w
        .channel
        .call(&IndirectModify {
            sub_merchant_id: second.clone(),
            profile: MerchantProfile {
                business_license: Some("91310000000000001A".into()),
                alias_name: Some("改名".into()),
                ..Default::default()
            },
        })
        .await;
    assert_eq!(sub_code(&out), "JL.MERCHANT_DUPLICATE");
    assert!(failure_msg(&out).contains("91310000000000001A"), "{out:?}");
    assert_eq!(w.rows().await, rows, "the registry is unchanged");
    let at_alipay = alipay_profile(&w, &second).await;
    assert_eq!(
        (
            at_alipay.business_license.as_deref(),
            at_alipay.alias_name.as_deref()
        ),
        (Some("91310000000000002B"), Some("EXT2餐厅")),
        "Alipay was not told"
    );
    // Its own licence, repeated, is no conflict.
    let same = w
        .channel
        .call(&IndirectModify {
            sub_merchant_id: second.clone(),
            profile: MerchantProfile {
                business_license: Some("91310000000000002B".into()),
                alias_name: Some("改名".into()),
                ..Default::default()
            },
        })
        .await;
    assert!(same.is_success(), "{same:?}");
    assert_eq!(
        alipay_profile(&w, &second).await.alias_name.as_deref(),
        Some("改名")
    );
}
e2e!(modify_to_another_merchants_licence_is_refused_before_alipay);
