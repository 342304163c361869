//! R3 common trade rules, checked by the gateway before Alipay sees anything:
//! `sub_merchant.merchant_id` of this channel (R3.1), a registered store and
//! terminal (R3.2), the gateway's own `out_trade_no` upstream with the
//! channel's as `merchant_order_no` (R3.3), the payment-code rule (R3.7), the
//! notify-URL policy; every refusal writes nothing.

use jianlian_alipay::Outcome;
use jianlian_alipay::api::trade::{TradeQuery, TradeRef};
use jianlian_core::trade::TradeState;

use crate::common::*;
use crate::e2e;

async fn refused_before_alipay(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let rows = w.rows().await;
    let code = w.code().await;
    let check = |out: Outcome<_>, sub: &str, words: &str| {
        let msg = failure_msg(&out);
        assert_eq!(sub_code(&out), sub, "{msg}");
        assert!(msg.contains(words), "{msg:?} should name {words:?}");
    };
    let mut no_smid = w.pay_req(&smid, "O1", "1.00", &code);
    no_smid.order.sub_merchant = None;
    check(
        w.channel.call(&no_smid).await,
        "ACQ.INVALID_PARAMETER",
        "sub_merchant.merchant_id",
    );
    let never = w.pay_req("2088123412341234", "O1", "1.00", &code);
    check(
        w.channel.call(&never).await,
        "ACQ.INVALID_PARAMETER",
        "2088123412341234",
    );
    let mut no_store = w.pay_req(&smid, "O1", "1.00", &code);
    no_store.order.store_id = None;
    check(
        w.channel.call(&no_store).await,
        "isv.invalid-parameter",
        "store_id",
    );
    let mut no_terminal = w.pay_req(&smid, "O1", "1.00", &code);
    no_terminal.order.terminal_id = Some(" ".into());
    check(
        w.channel.call(&no_terminal).await,
        "isv.invalid-parameter",
        "terminal_id",
    );
    let mut unknown_store = w.pay_req(&smid, "O1", "1.00", &code);
    unknown_store.order.store_id = Some("SHKFC999".into());
    check(
        w.channel.call(&unknown_store).await,
        "ACQ.INVALID_STORE_ID",
        "SHKFC999",
    );
    let mut unknown_terminal = w.pay_req(&smid, "O1", "1.00", &code);
    unknown_terminal.order.terminal_id = Some("T9".into());
    check(
        w.channel.call(&unknown_terminal).await,
        "ACQ.INVALID_PARAMETER",
        "T9",
    );
    for (bad, words) in [
        ("1234567890123456", "start with 25 to 30"),
        ("28123", "digits"),
        ("28abcdefghijklmnop", "digits only"),
        ("2812345678901234567890123", "digits"),
    ] {
        let req = w.pay_req(&smid, "O1", "1.00", bad);
        check(
            w.channel.call(&req).await,
            "ACQ.PAYMENT_AUTH_CODE_INVALID",
            words,
        );
    }
    let req = w.pay_req(&smid, "O1", "1.00", &code);
    let private = w.channel.call_notify(&req, "http://10.1.2.3/notify").await;
    check(private, "isv.invalid-parameter", "10.1.2.3");
    let link_local = w
        .channel
        .call_notify(&req, "http://169.254.169.254/latest")
        .await;
    check(link_local, "isv.invalid-parameter", "169.254.169.254");
    assert_eq!(w.rows().await, rows, "no refusal wrote anything");
    // The code was never used: it still pays.
    assert!(w.channel.call(&req).await.is_success());
}
e2e!(refused_before_alipay);

/// R3.3: two channels may use the same order number: two trades, two
/// upstream numbers, each channel sees only its own.
async fn same_order_number_in_two_channels_is_two_trades(db: Db) {
    let w = World::new(db).await;
    let other = w.new_channel("渠道乙", "2088000000000202", None).await;
    let a = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let b = w.onboard(&other, "M2", "91310000000000002B").await;
    assert!(w.pay(&w.channel, &a, "SAME1", "10.00").await.is_success());
    assert!(w.pay(&other, &b, "SAME1", "20.00").await.is_success());
    let ta = w.trade(&w.channel, "SAME1").await;
    let tb = w.trade(&other, "SAME1").await;
    assert_ne!(ta.upstream_order_no, tb.upstream_order_no);
    assert_eq!(w.upstream_trade(&ta).await.unwrap().total, yuan("10.00"));
    assert_eq!(w.upstream_trade(&tb).await.unwrap().total, yuan("20.00"));
    let q = |no: &str| TradeQuery {
        trade: TradeRef::out_trade_no(no),
        ..Default::default()
    };
    let seen = other.call(&q("SAME1")).await.success().unwrap();
    assert_eq!(seen.total_amount, Some(yuan("20.00")));
    // By Alipay's trade_no, a channel finds only its own trade.
    let by_no = TradeQuery {
        trade: TradeRef {
            trade_no: ta.facts.trade_no.clone(),
            out_trade_no: None,
        },
        ..Default::default()
    };
    assert!(w.channel.call(&by_no).await.is_success());
    assert_eq!(sub_code(&other.call(&by_no).await), "ACQ.TRADE_NOT_EXIST");
    // The same number with other parameters is a different order: refused.
    let code = w.code().await;
    let changed = w.pay_req(&a, "SAME1", "11.00", &code);
    assert_eq!(
        sub_code(&w.channel.call(&changed).await),
        "ACQ.CONTEXT_INCONSISTENT"
    );
    assert_eq!(w.trade(&w.channel, "SAME1").await.state, TradeState::Paid);
}
e2e!(same_order_number_in_two_channels_is_two_trades);

/// R3.7: the payment-code rule is configuration, not a constant.
async fn payment_code_rule_is_configurable(db: Db) {
    let w = World::with(db, Default::default(), |s| {
        s.payment_code.length_max = 16;
    })
    .await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let code = w.code().await;
    assert!(code.len() > 16, "sandbox codes are longer than 16: {code}");
    let out = w.channel.call(&w.pay_req(&smid, "C1", "1.00", &code)).await;
    assert_eq!(sub_code(&out), "ACQ.PAYMENT_AUTH_CODE_INVALID");
    assert!(
        failure_msg(&out).contains("16 to 16"),
        "{}",
        failure_msg(&out)
    );
}
e2e!(payment_code_rule_is_configurable);
