//! Issue items 6 and 12: 64 identical concurrent pay requests make exactly one
//! upstream trade; a gateway dropped with polls and cancels pending is
//! restarted on the same database and closes every trade; the sweeper revives
//! a trade whose closed loop was lost.

use std::sync::Arc;

use jianlian_alipay::Outcome;
use jianlian_core::trade::TradeState;

use crate::common::*;
use crate::e2e;

/// "Never a second upstream pay for the same out_trade_no."
async fn identical_concurrent_pays_make_one_upstream_trade(db: Db) {
    let w = Arc::new(World::new(db).await);
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let code = w.code().await;
    let req = Arc::new(w.pay_req(&smid, "SAME", "42.00", &code));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let w = w.clone();
        let req = req.clone();
        tasks.push(tokio::spawn(async move { w.channel.call(&*req).await }));
    }
    let mut paid = 0;
    let mut waiting = 0;
    for t in tasks {
        match t.await.unwrap() {
            Outcome::Success(r) => {
                assert_eq!(r.body.out_trade_no.as_deref(), Some("SAME"));
                paid += 1;
            }
            // Repeats arriving while the first is in flight are told to wait.
            Outcome::InProgress(_) => waiting += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(paid + waiting, 64);
    assert!(paid >= 1);
    w.settle().await;
    let t = w.trade(&w.channel, "SAME").await;
    assert_eq!(t.state, TradeState::Paid);
    // Alipay's truth: one trade for the merchant, one charge.
    let trades: Vec<_> = w.sandbox.shared().read(|c| {
        c.st.trades
            .values()
            .filter(|x| x.smid == smid)
            .cloned()
            .collect()
    });
    assert_eq!(trades.len(), 1, "exactly one upstream trade");
    assert_eq!(trades[0].out_trade_no, t.upstream_order_no.as_str());
    let charges = w
        .sandbox
        .ledger(None)
        .await
        .into_iter()
        .filter(|e| e.kind == jianlian_sandbox::model::LedgerKind::Charge)
        .count();
    assert_eq!(charges, 1);
    assert_eq!(w.gateway.service().store.journals().await.unwrap().len(), 1);
}
e2e!(identical_concurrent_pays_make_one_upstream_trade, pg);

/// The gateway dies with polls and cancels pending; a new process on the same
/// database finishes every closed loop.
async fn restart_with_pending_polls_and_cancels_closes_every_trade(db: Db) {
    let mut w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    // W3 reaches its cancel, which Alipay fails three times.
    assert!(matches!(
        w.pay(&w.channel, &smid, "W3", "1000.00").await,
        Outcome::InProgress(_)
    ));
    w.sandbox
        .add_fault(jianlian_sandbox::FaultRule {
            id: 0,
            method: Some("alipay.trade.cancel".into()),
            out_trade_no: None,
            amount: None,
            action: jianlian_sandbox::FaultAction::SystemError { apply: false },
            times: Some(3),
        })
        .await
        .unwrap();
    for _ in 0..12 {
        w.advance(5).await;
    }
    // W1 and W2 wait for their buyers (polls pending).
    for otn in ["W1", "W2"] {
        let out = w.pay(&w.channel, &smid, otn, "1000.00").await;
        assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    }
    for _ in 0..4 {
        w.advance(5).await;
    }
    let w3 = w.trade(&w.channel, "W3").await;
    assert_eq!(
        (w3.progress.cancels, w3.state),
        (3, TradeState::Paying),
        "a cancel is pending"
    );
    // W1's buyer pays while the gateway is down.
    let w1 = w.trade(&w.channel, "W1").await;
    w.sandbox
        .confirm(w1.facts.trade_no.as_deref().unwrap())
        .await
        .unwrap();
    // An unknown pay whose answer is lost with the process.
    w.sandbox
        .add_fault(jianlian_sandbox::FaultRule {
            id: 0,
            method: Some("alipay.trade.pay".into()),
            out_trade_no: None,
            amount: Some(yuan("3.00")),
            action: jianlian_sandbox::FaultAction::Unknown { apply: true },
            times: Some(1),
        })
        .await
        .unwrap();
    assert!(matches!(
        w.pay(&w.channel, &smid, "U1", "3.00").await,
        Outcome::InProgress(_)
    ));
    w.restart().await;
    // Time passes while the new process runs its due work.
    for _ in 0..16 {
        w.advance(5).await;
    }
    let state = |otn: &'static str| {
        let w = &w;
        async move { w.trade(&w.channel, otn).await.state }
    };
    assert_eq!(state("W1").await, TradeState::Paid);
    assert_eq!(state("U1").await, TradeState::Paid);
    for otn in ["W2", "W3"] {
        let t = w.trade(&w.channel, otn).await;
        assert!(
            matches!(t.state, TradeState::Cancelled { .. }),
            "{otn}: {:?}",
            t.state
        );
        assert_eq!(
            t.progress.polls, 12,
            "{otn}: polls continued after the restart"
        );
        assert!(t.progress.cancels >= 1);
    }
    let open = w
        .gateway
        .service()
        .store
        .unresolved_trades(100)
        .await
        .unwrap();
    assert!(open.is_empty(), "every trade is closed: {open:?}");
    crate::refunds::books_agree_with_alipay(&w).await;
}
e2e!(
    restart_with_pending_polls_and_cancels_closes_every_trade,
    pg
);

/// A trade whose step job died is found by the sweeper and resolved.
async fn sweeper_revives_a_lost_loop(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let out = w.pay(&w.channel, &smid, "L1", "1000.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    // Lose every queued job (as if the jobs table were damaged).
    let store = &w.gateway.service().store;
    let mut tx = store.begin().await.unwrap();
    sqlx::query("UPDATE jobs SET state = 'dead'")
        .execute(tx.connection())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    w.advance(3600).await;
    let t = w.trade(&w.channel, "L1").await;
    assert!(t.state.is_resolved(), "{:?}", t.state);
}
e2e!(sweeper_revives_a_lost_loop);

/// Several gateway processes on one database: each closed-loop step runs
/// once (jobs are leased), so Alipay sees exactly 12 polls and one cancel.
async fn two_gateways_run_each_step_once(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let mut settings = w.settings();
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let second = jianlian_gateway::Application::build(settings, Arc::new(w.clock.clone()))
        .await
        .unwrap()
        .spawn(false);
    // The buyer would pay only at the 1000th query: the sandbox counts them.
    w.sandbox
        .add_fault(jianlian_sandbox::FaultRule {
            id: 0,
            method: Some("alipay.trade.pay".into()),
            out_trade_no: None,
            amount: Some(yuan("1000.00")),
            action: jianlian_sandbox::FaultAction::ForceWait {
                pay_after_queries: Some(1_000),
            },
            times: Some(1),
        })
        .await
        .unwrap();
    let out = w.pay(&w.channel, &smid, "TWO1", "1000.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    for _ in 0..13 {
        w.sandbox.advance(5).await.unwrap();
        let (a, b) = tokio::join!(w.gateway.run_due(), second.run_due());
        a.unwrap();
        b.unwrap();
    }
    let t = w.trade(&w.channel, "TWO1").await;
    assert_eq!((t.progress.polls, t.progress.cancels), (12, 1));
    assert!(
        matches!(t.state, TradeState::Cancelled { .. }),
        "{:?}",
        t.state
    );
    let upstream = w.upstream_trade(&t).await.unwrap();
    assert_eq!(upstream.queries, 12, "Alipay was polled exactly 12 times");
}
e2e!(two_gateways_run_each_step_once, pg);

/// The sweeper fixes gaps without churn: a trade past its deadline whose
/// cancel is backing off while Alipay is down keeps its step job as
/// scheduled (no re-queue, no claim, nothing counted at each tick); once
/// that job is lost, the next sweep revives it, and then leaves it be.
async fn sweeper_leaves_a_backing_off_loop_alone(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    w.fault(
        "alipay.trade.cancel",
        None,
        jianlian_sandbox::FaultAction::SystemError { apply: false },
        None,
    )
    .await;
    let out = w.pay(&w.channel, &smid, "B1", "1000.00").await;
    assert!(matches!(out, Outcome::InProgress(_)), "{out:?}");
    let store = &w.gateway.service().store;
    let policy = *store.policy();
    // Polls, then cancels that Alipay does not answer, until past the deadline.
    let t = w.trade(&w.channel, "B1").await;
    let deadline = jianlian_core::closed_loop::deadline(&t, &policy);
    while w.clock_now() <= deadline {
        w.advance(5).await;
    }
    let t = w.trade(&w.channel, "B1").await;
    assert_eq!(t.state, TradeState::Paying);
    assert!(t.progress.cancels >= 7, "{:?}", t.progress);
    let planned = jianlian_core::closed_loop::plan(&t, &policy).unwrap();
    assert!(planned.due_at > w.clock_now(), "the next cancel waits");
    let key = format!("{}:{}:{}", jianlian_store::TRADE_STEP_JOB, t.id, t.version);
    let job = store.job_by_key(&key).await.unwrap().unwrap();
    assert_eq!(job.run_at, planned.due_at);
    for _ in 0..20 {
        w.sandbox.advance(1).await.unwrap();
        let report = w.gateway.run_due().await.unwrap();
        assert_eq!(
            (report.swept, report.claimed),
            (0, 0),
            "an overdue trade on schedule is not re-queued"
        );
    }
    let after = store.job_by_key(&key).await.unwrap().unwrap();
    assert_eq!((after.run_at, after.attempts), (job.run_at, job.attempts));
    assert_eq!(w.trade(&w.channel, "B1").await.version, t.version);

    // The job is lost: the next sweep revives it, once.
    let mut tx = store.begin().await.unwrap();
    sqlx::query("UPDATE jobs SET state = 'dead' WHERE dedupe_key = $1")
        .bind(key.clone())
        .execute(tx.connection())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    w.sandbox.advance(1).await.unwrap();
    let report = w.gateway.run_due().await.unwrap();
    assert_eq!(report.swept, 1, "{report:?}");
    let revived = store.job_by_key(&key).await.unwrap().unwrap();
    assert_eq!(revived.state, jianlian_store::JobState::Queued);
    assert_eq!(revived.run_at, planned.due_at, "back on its schedule");
    w.sandbox.advance(1).await.unwrap();
    assert_eq!(w.gateway.run_due().await.unwrap().swept, 0);

    // Alipay is back: the cancel at its time closes the trade.
    w.sandbox.clear_faults().await.unwrap();
    w.advance(600).await;
    let t = w.trade(&w.channel, "B1").await;
    assert!(
        matches!(t.state, TradeState::Cancelled { .. }),
        "{:?}",
        t.state
    );
}
e2e!(sweeper_leaves_a_backing_off_loop_alone, pg);
