//! The wire (protocol.md §11): signed errors under the method key,
//! `isv.invalid-signature` echoing the sign content, unknown apps and methods,
//! RSA (SHA1) and RSA2, GET requests, absolute-form targets, AES and
//! certificate mode.

use std::sync::Arc;

use jianlian_alipay::api::trade::{TradeQuery, TradeRef};
use jianlian_alipay::cert::Certificate;
use jianlian_alipay::client::AlipayClient;
use jianlian_alipay::request::{AppCredentials, CallOptions, CertSns, build_request};
use jianlian_alipay::response::{ResponseCheck, verify_response};
use jianlian_alipay::{AesKey, Code, Outcome, PrivateKey, PublicKey, SignType};
use jianlian_sandbox::{AppSpec, BuyerSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

fn query(otn: &str) -> TradeQuery {
    TradeQuery {
        trade: TradeRef::out_trade_no(otn),
        ..Default::default()
    }
}

fn client_with(
    t: &TestApp,
    edit: impl FnOnce(&mut jianlian_alipay::client::ClientConfig),
) -> AlipayClient {
    let mut config = t.client.config().clone();
    edit(&mut config);
    AlipayClient::new(config, Arc::new(t.clock.clone())).unwrap()
}

#[tokio::test]
async fn bad_signatures_unknown_apps_and_methods() {
    let t = TestApp::new().await;
    let stranger = client_with(&t, |c| {
        c.app.private_key = PrivateKey::generate_2048().unwrap()
    });
    let out = stranger
        .execute(&query("X"), &CallOptions::default())
        .await
        .unwrap();
    let Outcome::Failed(f) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (f.code, f.sub_code.as_deref()),
        (Code::InvalidArguments, Some("isv.invalid-signature"))
    );
    let msg = f.sub_msg.unwrap();
    assert!(
        msg.contains(&format!("app_id={}&amp;biz_content=", t.app.app_id)),
        "{msg}"
    );
    assert!(msg.contains("sign_type=RSA2"));
    let nobody = client_with(&t, |c| c.app.app_id = "2021000000000000".into());
    let out = nobody
        .execute(&query("X"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "isv.invalid-app-id");
    let out: Outcome<serde_json::Value> = t
        .client
        .execute_raw(
            "alipay.trade.teleport",
            Default::default(),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "isv.invalid-method");
}

#[tokio::test]
async fn legacy_rsa_sign_type() {
    let t = TestApp::new().await;
    let rsa = client_with(&t, |c| c.app.sign_type = SignType::Rsa);
    let buyer = t.buyer(BuyerSpec::default()).await;
    let out = rsa
        .execute(
            &t.pay_req("RSA1", "1.00", &t.code(&buyer).await),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
}

/// Sends a raw HTTP/1.1 request over TCP and returns the body.
async fn raw_http(addr: std::net::SocketAddr, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[tokio::test]
async fn get_and_absolute_form_requests() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    assert!(
        t.call(&t.pay_req("G1", "1.00", &t.code(&buyer).await))
            .await
            .is_success()
    );
    let app = AppCredentials::new(t.app.app_id.clone(), t.key.clone());
    let signed =
        build_request(&app, &query("G1"), &CallOptions::default(), t.sandbox.now()).unwrap();
    let all = jianlian_alipay::form::encode_pairs(
        signed.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        jianlian_alipay::Charset::Utf8,
    )
    .unwrap();
    let check = ResponseCheck {
        alipay_public_key: &t.alipay_key,
        sign_type: SignType::Rsa2,
        aes: None,
        alipay_cert_sn: None,
        charset: jianlian_alipay::Charset::Utf8,
    };
    // Everything in the query string of a GET (python-alipay-sdk's way).
    let addr = t.sandbox.addr();
    let body = raw_http(
        addr,
        format!("GET /gateway.do?{all} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let node = verify_response(&body, "alipay.trade.query", check).unwrap();
    assert!(
        node.node_json.contains("TRADE_SUCCESS"),
        "{}",
        node.node_json
    );
    // Absolute-form target with the body split off (the official Python SDK's way).
    let query_part = signed.query_string().unwrap();
    let form = signed.body().unwrap();
    let body = raw_http(
        addr,
        format!(
            "POST http://{addr}/gateway.do?{query_part} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
    .await;
    assert!(
        verify_response(&body, "alipay.trade.query", check)
            .unwrap()
            .node_json
            .contains("G1")
    );
}

#[tokio::test]
async fn aes_encrypted_requests_and_answers() {
    let aes = "aa4BtZ4tspm2wnXLb1ThQA==";
    let t = TestApp::with_spec(AppSpec {
        aes_key: Some(aes.into()),
        ..Default::default()
    })
    .await;
    let encrypted = client_with(&t, |c| {
        c.app.aes_key = Some(AesKey::from_base64(aes).unwrap())
    });
    let buyer = t.buyer(BuyerSpec::default()).await;
    let out = encrypted
        .execute(
            &t.pay_req("A1", "2.00", &t.code(&buyer).await),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    // The answer really was encrypted: a client without the key cannot read it.
    let out = t
        .client
        .execute(&query("A1"), &CallOptions::default())
        .await
        .unwrap();
    assert!(out.is_success(), "plain requests get plain answers");
    let (out, exchange) = encrypted
        .execute_logged(&query("A1"), &CallOptions::default())
        .await
        .unwrap();
    assert!(out.is_success());
    assert!(
        exchange
            .body
            .unwrap()
            .starts_with("{\"alipay_trade_query_response\":\"")
    );
}

#[tokio::test]
async fn certificate_mode() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate_2048().unwrap();
    let key_path = dir.path().join("app.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem()).unwrap();
    let cert_path = dir.path().join("app.crt");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "365",
            "-subj",
            "/C=CN/O=Sandbox Test/CN=app",
            "-key",
        ])
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path)
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(status.success());
    let cert_pem = std::fs::read_to_string(&cert_path).unwrap();
    let cert = Certificate::from_text(&cert_pem).unwrap();
    let clock = jianlian_alipay::ManualClock::at_beijing(START).unwrap();
    let sandbox = sandbox(&clock).await;
    let app = sandbox
        .create_app(AppSpec {
            app_cert: Some(cert_pem),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut client = client_for(&sandbox, &app, &key, &clock);
    let plain = client
        .execute(&query("C1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&plain), "isv.missing-app-cert-sn");
    let mut config = client.config().clone();
    config.app.cert_sns = Some(CertSns {
        app_cert_sn: cert.sn().to_owned(),
        alipay_root_cert_sn: app.alipay_root_cert_sn.clone().unwrap(),
    });
    config.alipay_cert_sn = app.alipay_cert_sn.clone();
    client = AlipayClient::new(config.clone(), Arc::new(clock.clone())).unwrap();
    let (out, exchange) = client
        .execute_logged(&query("C1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "ACQ.TRADE_NOT_EXIST");
    assert!(exchange.body.unwrap().contains(&format!(
        "\"alipay_cert_sn\":\"{}\"",
        app.alipay_cert_sn.as_deref().unwrap()
    )));
    // A wrong app_cert_sn is refused.
    config.app.cert_sns = Some(CertSns {
        app_cert_sn: "0".repeat(32),
        alipay_root_cert_sn: app.alipay_root_cert_sn.unwrap(),
    });
    let wrong = AlipayClient::new(config, Arc::new(clock)).unwrap();
    assert_eq!(
        sub_code(
            &wrong
                .execute(&query("C1"), &CallOptions::default())
                .await
                .unwrap()
        ),
        "isv.app-cert-not-exist"
    );
    let _ = PublicKey::from_text(&app.alipay_public_key).unwrap();
}
