//! Issue item 4, the admin API: a bank operator onboards a channel, a
//! merchant (through Alipay), its store and terminals, sets its fees and
//! corrects its `source` (at Alipay first) over HTTP with the admin token, and
//! the channel then pays at that terminal. Without the token, or with a
//! malformed request, nothing is written.

use jianlian_alipay::api::merchant::IndirectQuery;
use jianlian_alipay::{Outcome, PrivateKey};
use serde_json::{Value, json};

use crate::common::*;
use crate::e2e;

const TOKEN: &str = "test-admin-token-0123456789";

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    fn new(w: &World) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: format!("{}/admin", w.gateway.base_url()),
        }
    }

    /// Sends `body` (when given) with the token; returns the status and JSON.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            req = with_json(req, &body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

fn with_json(req: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    req.header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

fn profile_json(external_id: &str, licence: &str) -> Value {
    serde_json::to_value(profile(external_id, licence)).unwrap()
}

async fn an_operator_onboards_over_the_admin_api(db: Db) {
    let w = World::new(db).await;
    let admin = Admin::new(&w);
    let rows = w.rows().await;

    // No token, a wrong token, a malformed body: refused, nothing written.
    let anonymous = with_json(
        admin.http.post(format!("{}/merchants", admin.base)),
        &json!({"channel": w.channel.app_id, "profile": profile_json("A1", "91310000000000021A")}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = with_json(
        admin
            .http
            .post(format!("{}/merchants/set-source", admin.base))
            .bearer_auth("not-the-admin-token-000"),
        &json!({"to": "2088000000000777", "actor": "x", "reason": "y", "merchants": ["1"]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, body) = admin
        .post(
            "/merchants",
            json!({"channel": w.channel.app_id, "profil": {}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("profil"),
        "{body}"
    );
    assert_eq!(w.rows().await, rows, "refusals wrote nothing");

    // A channel, as `jianlian channel create` makes it.
    let key = PrivateKey::generate_2048().unwrap();
    let (status, created) = admin
        .post(
            "/channels",
            json!({"name": "银行直连渠道", "pid": "2088000000000505", "public_key": key.public_key().to_pem()}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["gateway_public_key"],
        json!(w.gateway_key.public_key().to_base64())
    );
    let app_id = created["app_id"].as_str().unwrap().to_owned();
    let channel = w.client_for(&app_id, "2088000000000505", key);

    // A merchant, onboarded at Alipay by the bank for that channel.
    let (status, merchant) = admin
        .post(
            "/merchants",
            json!({"channel": app_id, "profile": profile_json("A1", "91310000000000021A"), "fee_rate": "0.005"}),
        )
        .await;
    assert_eq!(status, 201, "{merchant}");
    assert_eq!(merchant["state"], json!("onboarded"));
    assert_eq!(merchant["source"], json!("2088000000000505"));
    assert_eq!(merchant["fee_rate"], json!("0.005"));
    let smid = merchant["smid"].as_str().unwrap().to_owned();
    assert!(w.sandbox.merchant(&smid).await.is_some(), "Alipay has it");
    let (status, dup) = admin
        .post(
            "/merchants",
            json!({"channel": app_id, "profile": profile_json("A2", "91310000000000021A")}),
        )
        .await;
    assert_eq!(status, 409, "the same licence twice: {dup}");

    // Its store and terminals; the channel pays there.
    let (status, store) = admin
        .post(
            &format!("/merchants/{smid}/stores"),
            json!({"store_id": "S1", "name": "一号店", "terminal_ids": ["T1", "T2"]}),
        )
        .await;
    assert_eq!(status, 201, "{store}");
    assert_eq!(store["terminal_ids"], json!(["T1", "T2"]));
    let (status, bad) = admin
        .post(
            &format!("/merchants/{smid}/stores"),
            json!({"store_id": "S2", "name": "二号店", "terminal_ids": ["T1"]}),
        )
        .await;
    assert_eq!(status, 400, "T1 belongs to S1: {bad}");
    let code = w.code().await;
    let paid = channel
        .call(&w.pay_req(&smid, "ADMIN1", "20.00", &code))
        .await;
    assert!(paid.is_success(), "{paid:?}");

    // Fees for later payments.
    let (status, fees) = admin
        .send(
            reqwest::Method::PUT,
            &format!("/merchants/{smid}/fees"),
            Some(json!({"rate": "0.006", "credit_rate": "0.008"})),
        )
        .await;
    assert_eq!(status, 200, "{fees}");
    assert_eq!(
        (fees["fee_rate"].clone(), fees["credit_fee_rate"].clone()),
        (json!("0.006"), json!("0.008"))
    );
    // The gateway remembered the merchant at 0.005 from the first payment;
    // the next one is booked at the new rate all the same.
    let code = w.code().await;
    let paid = channel
        .call(&w.pay_req(&smid, "ADMIN2", "20.00", &code))
        .await;
    assert!(paid.is_success(), "{paid:?}");
    let fee = |t: jianlian_core::trade::Trade| t.fee.map(|f| f.fee.get());
    assert_eq!(fee(w.trade(&channel, "ADMIN1").await), Some(10));
    assert_eq!(fee(w.trade(&channel, "ADMIN2").await), Some(12));

    // A source correction reaches Alipay and is audited.
    let (status, report) = admin
        .post(
            "/merchants/set-source",
            json!({"to": "2088000000000777", "actor": "ops:wang", "reason": "rebate fix", "merchants": [smid]}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["changed"], json!(1), "{report}");
    assert_eq!(report["results"][0]["from"], json!("2088000000000505"));
    let q = IndirectQuery {
        sub_merchant_id: Some(smid.clone()),
        ..Default::default()
    };
    match w.gateway.service().upstream.call(&q, false).await {
        Outcome::Success(r) => {
            assert_eq!(r.body.profile.source.as_deref(), Some("2088000000000777"))
        }
        other => panic!("{other:?}"),
    }
    let (status, empty_actor) = admin
        .post(
            "/merchants/set-source",
            json!({"to": "2088000000000505", "actor": " ", "reason": "r", "merchants": [smid]}),
        )
        .await;
    assert_eq!(status, 400, "{empty_actor}");

    // The merchant as the registry keeps it.
    let (status, shown) = admin
        .send(reqwest::Method::GET, &format!("/merchants/{smid}"), None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["source"], json!("2088000000000777"));
    assert_eq!(shown["stores"][0]["terminal_ids"], json!(["T1", "T2"]));
    assert_eq!(shown["source_history"][0]["actor"], json!("ops:wang"));
    let (status, _) = admin
        .send(reqwest::Method::GET, "/merchants/2088000000009999", None)
        .await;
    assert_eq!(status, 404);
}
e2e!(an_operator_onboards_over_the_admin_api, pg);
