//! Channel requests that are forged (wrong key, unknown app), tampered with in
//! transit, replayed outside the timestamp window, or sent by a suspended
//! channel are refused with Alipay's error codes, signed by the gateway, and
//! write nothing. The admin API needs its token.

use std::sync::Arc;
use std::time::Duration;

use jianlian_alipay::api::AlipayApi;
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions, build_raw};
use jianlian_alipay::{ManualClock, Outcome, PrivateKey};
use jianlian_core::channel::ChannelStatus;
use jianlian_core::ids::AppId;

use crate::common::*;
use crate::e2e;

fn client(w: &World, app_id: &str, key: &PrivateKey, clock: ManualClock) -> AlipayClient {
    let config = ClientConfig {
        gateway_url: format!("{}/gateway.do", w.gateway.base_url()),
        app: AppCredentials::new(app_id.to_owned(), key.clone()),
        alipay_public_key: w.gateway_key.public_key().clone(),
        alipay_cert_sn: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
    };
    AlipayClient::new(config, Arc::new(clock)).unwrap()
}

async fn bad_channel_requests_write_nothing(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    let code = w.code().await;
    let req = w.pay_req(&smid, "SEC1", "10.00", &code);
    let rows = w.rows().await;
    let options = CallOptions::default();

    let forger = PrivateKey::generate_2048().unwrap();
    let forged = client(&w, &w.channel.app_id, &forger, w.clock.clone());
    let out = forged.execute(&req, &options).await.unwrap();
    assert_eq!(
        sub_code(&out),
        "isv.invalid-signature",
        "answers are signed, so the client could read it"
    );

    let stranger = client(&w, "2021000000009999", &w.channel.key, w.clock.clone());
    assert_eq!(
        sub_code(&stranger.execute(&req, &options).await.unwrap()),
        "isv.invalid-app-id"
    );

    let stale_clock = ManualClock::new(
        w.clock_now()
            .checked_sub(jiff::SignedDuration::from_mins(16))
            .unwrap(),
    );
    let replay = client(&w, &w.channel.app_id, &w.channel.key, stale_clock);
    let out = replay.execute(&req, &options).await.unwrap();
    assert_eq!(sub_code(&out), "isv.invalid-timestamp");
    assert!(failure_msg(&out).contains("900 s"), "{}", failure_msg(&out));

    // Tampered in transit: the signed body with another amount.
    let app = AppCredentials::new(w.channel.app_id.clone(), w.channel.key.clone());
    let signed = build_raw(
        &app,
        "alipay.trade.pay",
        req.params().unwrap(),
        &options,
        w.clock_now(),
    )
    .unwrap();
    let body = signed.body().unwrap().replace("10.00", "0.01");
    let url = format!(
        "{}/gateway.do?{}",
        w.gateway.base_url(),
        signed.query_string().unwrap()
    );
    let text = reqwest::Client::new()
        .post(url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("isv.invalid-signature"), "{text}");
    assert!(
        text.contains("\"sign\":"),
        "refusals are signed too: {text}"
    );

    // A suspended channel is refused at the door.
    let store = &w.gateway.service().store;
    let app_id = AppId::parse(&w.channel.app_id).unwrap();
    store
        .set_channel_status(&app_id, ChannelStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(sub_code(&w.channel.call(&req).await), "isv.invalid-app-id");
    store
        .set_channel_status(&app_id, ChannelStatus::Active)
        .await
        .unwrap();

    let unknown_method = w
        .channel
        .raw("alipay.trade.page.pay", serde_json::json!({}))
        .await;
    assert_eq!(sub_code(&unknown_method), "isv.invalid-method");
    assert_eq!(w.rows().await, rows, "no refused request wrote anything");

    // The genuine request goes through, and its exact replay is answered
    // from the record without a second payment.
    assert!(w.channel.call(&req).await.is_success());
    let paid_rows = w.rows().await;
    let again = w.channel.call(&req).await;
    assert!(again.is_success(), "{again:?}");
    assert_eq!(w.rows().await, paid_rows);
    let _ = Outcome::<()>::Unknown(jianlian_alipay::UnknownReason::Timeout);
}
e2e!(bad_channel_requests_write_nothing);

/// A rotated key takes effect on the next request; the old one is refused,
/// also by the trade starts, which authenticate with the channel as the
/// gateway last read it (the intent is written only for the stored key).
async fn rotated_channel_key(db: Db) {
    let w = World::new(db).await;
    let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
    // A pay, so the gateway remembers the channel with its first key.
    assert!(w.pay(&w.channel, &smid, "ROT1", "1.00").await.is_success());
    let store = &w.gateway.service().store;
    let new_key = PrivateKey::generate_2048().unwrap();
    let app_id = AppId::parse(&w.channel.app_id).unwrap();
    jianlian_gateway::ops::rotate_channel_key(store, &app_id, &new_key.public_key().to_pem())
        .await
        .unwrap();
    // First after the rotation: the remembered key still verifies the old
    // signature, and the store refuses the intent for the changed key.
    let rows = w.rows().await;
    let old = w.pay(&w.channel, &smid, "ROT2", "1.00").await;
    assert_eq!(sub_code(&old), "isv.invalid-signature");
    // A repeat of a recorded pay with the old key is refused as well.
    let repeat = w.pay(&w.channel, &smid, "ROT1", "1.00").await;
    assert_eq!(sub_code(&repeat), "isv.invalid-signature");
    assert_eq!(w.rows().await, rows, "the old key wrote nothing");
    let q = jianlian_alipay::api::merchant::IndirectQuery {
        external_id: Some("NONE".into()),
        ..Default::default()
    };
    assert_eq!(sub_code(&w.channel.call(&q).await), "isv.invalid-signature");

    let fresh = w.client_for(&w.channel.app_id, &w.channel.pid, new_key);
    assert_eq!(sub_code(&fresh.call(&q).await), "JL.MERCHANT_NOT_FOUND");
    let code = w.code().await;
    let paid = fresh.call(&w.pay_req(&smid, "ROT3", "1.00", &code)).await;
    assert!(paid.is_success(), "{paid:?}");
}
e2e!(rotated_channel_key);
