//! Certificate mode (protocol.md §8) with the sandbox's own certificates: the
//! control API issues an app certificate, the Alipay certificate and the root
//! bundle, which the protocol crate reads with the SNs the API states and
//! which chain to the root bundle; the gateway refuses a wrong app or root SN,
//! names its certificate in answers and serves
//! `alipay.open.app.alipaycert.download`; the certificates survive a restart;
//! and the official Node SDK, configured with the three files, works.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jianlian_alipay::api::trade::{TradeQuery, TradeRef};
use jianlian_alipay::cert::{Certificate, root_cert_sn};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions, CertSns};
use jianlian_alipay::{ApiParams, ManualClock, Outcome, PrivateKey, PublicKey};
use jianlian_sandbox::{BuyerSpec, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

use crate::common::*;
use crate::sdk::{interop, run_driver};

/// Alipay's production root bundle (a copy of the Node SDK's test fixture).
const PRODUCTION_ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../alipay/tests/conformance/worked-examples/certs/alipayRootCert.crt"
);
const PRODUCTION_ROOT_SN: &str =
    "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6";

async fn control(sandbox: &SandboxHandle, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", sandbox.base_url());
    let http = reqwest::Client::new();
    let request = match (method, body) {
        ("GET", _) => http.get(&url),
        (m, body) => http
            .request(m.parse().unwrap(), &url)
            .header("content-type", "application/json")
            .body(body.unwrap_or_default().to_string()),
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Registers an app in certificate mode through the control API.
async fn cert_app(sandbox: &SandboxHandle, key: &PrivateKey) -> Value {
    let body = json!({"app_public_key": key.public_key().to_pem(), "certificate_mode": true});
    control(sandbox, "POST", "/sandbox/apps", Some(body)).await
}

/// `GET /sandbox/apps/{app_id}`.
async fn stored_app(sandbox: &SandboxHandle, app: &Value) -> Value {
    let path = format!("/sandbox/apps/{}", text(app, "app_id"));
    control(sandbox, "GET", &path, None).await
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

/// A client in certificate mode with the SNs the control API stated.
fn cert_client(
    sandbox: &SandboxHandle,
    app: &Value,
    key: &PrivateKey,
    clock: &ManualClock,
) -> AlipayClient {
    let mut credentials = AppCredentials::new(text(app, "app_id"), key.clone());
    credentials.cert_sns = Some(CertSns {
        app_cert_sn: text(app, "app_cert_sn").to_owned(),
        alipay_root_cert_sn: text(app, "alipay_root_cert_sn").to_owned(),
    });
    let config = ClientConfig {
        gateway_url: sandbox.gateway_url(),
        app: credentials,
        alipay_public_key: Certificate::from_text(text(app, "alipay_cert"))
            .unwrap()
            .public_key()
            .clone(),
        alipay_cert_sn: Some(text(app, "alipay_cert_sn").to_owned()),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    };
    AlipayClient::new(config, Arc::new(clock.clone())).unwrap()
}

fn with_sns(client: &AlipayClient, clock: &ManualClock, sns: Option<CertSns>) -> AlipayClient {
    let mut config = client.config().clone();
    config.app.cert_sns = sns;
    AlipayClient::new(config, Arc::new(clock.clone())).unwrap()
}

fn query(otn: &str) -> TradeQuery {
    TradeQuery {
        trade: TradeRef::out_trade_no(otn),
        ..Default::default()
    }
}

/// The PEM blocks of a file, in order.
fn pem_blocks(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .filter(|b| b.contains("-----BEGIN"))
        .map(|b| format!("{}\n", b.trim()))
        .collect()
}

/// `openssl verify`: the file's first certificate chains through the others
/// to the root bundle, as the Java SDK checks a downloaded Alipay certificate.
fn chains_to(dir: &Path, file: &str, root_bundle: &str) {
    let blocks = pem_blocks(file);
    assert_eq!(blocks.len(), 2, "a certificate then its CA's: {file}");
    std::fs::write(dir.join("leaf.pem"), &blocks[0]).unwrap();
    std::fs::write(dir.join("ca.pem"), &blocks[1]).unwrap();
    std::fs::write(dir.join("root.pem"), root_bundle).unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args([
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ca.pem",
            "leaf.pem",
        ])
        .output()
        .expect("openssl is needed to check certificate chains");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn issued_certificates_parse_with_the_stated_sns_and_chain_to_the_root() {
    let clock = ManualClock::at_beijing(START).unwrap();
    let sandbox = sandbox(&clock).await;
    let key = app_key();
    let app = cert_app(&sandbox, &key).await;

    let app_cert = Certificate::from_text(text(&app, "app_cert")).unwrap();
    assert_eq!(app_cert.sn(), text(&app, "app_cert_sn"));
    assert_eq!(app_cert.public_key(), key.public_key());
    let alipay_cert = Certificate::from_text(text(&app, "alipay_cert")).unwrap();
    assert_eq!(alipay_cert.sn(), text(&app, "alipay_cert_sn"));
    assert_eq!(alipay_cert.public_key(), &sandbox.alipay_public_key());
    assert_eq!(
        &PublicKey::from_text(text(&app, "alipay_public_key")).unwrap(),
        alipay_cert.public_key()
    );
    let root = text(&app, "alipay_root_cert");
    assert_eq!(
        root_cert_sn(root).unwrap(),
        text(&app, "alipay_root_cert_sn")
    );
    // Like Alipay's bundle: a root the SN skips (ECDSA) first, two RSA SNs.
    assert_eq!(pem_blocks(root).len(), 3);
    assert_eq!(text(&app, "alipay_root_cert_sn").split('_').count(), 2);

    let dir = tempfile::tempdir().unwrap();
    chains_to(dir.path(), text(&app, "app_cert"), root);
    chains_to(dir.path(), text(&app, "alipay_cert"), root);

    // The same files again, from GET /sandbox/certs and GET /sandbox/apps/{id}.
    let certs = control(&sandbox, "GET", "/sandbox/certs", None).await;
    for field in [
        "alipay_cert",
        "alipay_cert_sn",
        "alipay_root_cert",
        "alipay_root_cert_sn",
        "alipay_public_key",
    ] {
        assert_eq!(certs[field], app[field], "{field}");
    }
    assert_eq!(certs, json!(sandbox.certs().await.unwrap()));
    let stored = stored_app(&sandbox, &app).await;
    assert_eq!(stored["app_cert"], app["app_cert"]);
    assert_eq!(stored["app_cert_sn"], app["app_cert_sn"]);

    // Another app: its own certificate under the same hierarchy.
    let other = cert_app(&sandbox, &app_key()).await;
    assert_ne!(other["app_cert_sn"], app["app_cert_sn"]);
    assert_eq!(other["alipay_cert_sn"], app["alipay_cert_sn"]);
    assert_eq!(other["alipay_root_cert_sn"], app["alipay_root_cert_sn"]);
    // An app in public-key mode is told nothing about certificates.
    let plain = control(
        &sandbox,
        "POST",
        "/sandbox/apps",
        Some(json!({"app_public_key": app_key().public_key().to_base64()})),
    )
    .await;
    assert!(plain.get("alipay_cert_sn").is_none() && plain.get("app_cert").is_none());
}

#[tokio::test]
async fn the_gateway_checks_both_sns_and_names_its_certificate() {
    let clock = ManualClock::at_beijing(START).unwrap();
    let sandbox = sandbox(&clock).await;
    let key = app_key();
    let app = cert_app(&sandbox, &key).await;
    let client = cert_client(&sandbox, &app, &key, &clock);
    let (out, exchange) = client
        .execute_logged(&query("C1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "ACQ.TRADE_NOT_EXIST");
    let body: Value = serde_json::from_str(&exchange.body.unwrap()).unwrap();
    assert_eq!(body["alipay_cert_sn"], app["alipay_cert_sn"]);

    let sns = |app_sn: &str, root_sn: &str| {
        Some(CertSns {
            app_cert_sn: app_sn.to_owned(),
            alipay_root_cert_sn: root_sn.to_owned(),
        })
    };
    let app_sn = text(&app, "app_cert_sn");
    let root_sn = text(&app, "alipay_root_cert_sn");
    let refused = async |sns: Option<CertSns>| {
        let c = with_sns(&client, &clock, sns);
        sub_code(
            &c.execute(&query("C1"), &CallOptions::default())
                .await
                .unwrap(),
        )
    };
    // Alipay's own root bundle is not the sandbox's.
    assert_eq!(
        root_cert_sn(&std::fs::read_to_string(PRODUCTION_ROOT).unwrap()).unwrap(),
        PRODUCTION_ROOT_SN
    );
    assert_eq!(
        refused(sns(app_sn, PRODUCTION_ROOT_SN)).await,
        "isv.invalid-alipay-root-cert-sn"
    );
    // Only one of the two root SNs.
    let first_root = root_sn.split('_').next().unwrap();
    assert_eq!(
        refused(sns(app_sn, first_root)).await,
        "isv.invalid-alipay-root-cert-sn"
    );
    assert_eq!(
        refused(sns(&"0".repeat(32), root_sn)).await,
        "isv.app-cert-not-exist"
    );
    assert_eq!(refused(None).await, "isv.missing-app-cert-sn");

    // The Java SDK's download of an unknown alipay_cert_sn.
    let download = |sn: &str| ApiParams {
        biz_content: Some(json!({"alipay_cert_sn": sn}).to_string()),
        extra: Vec::new(),
    };
    let got: Outcome<Value> = client
        .execute_raw(
            "alipay.open.app.alipaycert.download",
            download(text(&app, "alipay_cert_sn")),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    let content = got.success().unwrap()["alipay_cert_content"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(content)
        .unwrap();
    assert_eq!(String::from_utf8(pem).unwrap(), text(&app, "alipay_cert"));
    let unknown: Outcome<Value> = client
        .execute_raw(
            "alipay.open.app.alipaycert.download",
            download(&"f".repeat(32)),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(sub_code(&unknown), "isv.alipay-cert-not-exist");

    // Back to public-key mode: certificate parameters are now refused.
    let patched = control(
        &sandbox,
        "PATCH",
        &format!("/sandbox/apps/{}", text(&app, "app_id")),
        Some(json!({"certificate_mode": false})),
    )
    .await;
    assert!(patched.get("app_cert_sn").is_none());
    assert_eq!(
        refused(sns(app_sn, root_sn)).await,
        "isv.app-cert-not-exist"
    );
    let plain = with_sns(&client, &clock, None);
    let out = plain
        .execute(&query("C1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "ACQ.TRADE_NOT_EXIST");
}

#[tokio::test]
async fn certificates_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_beijing(START).unwrap();
    let config = SandboxConfig {
        state_dir: Some(dir.path().to_owned()),
        ..SandboxConfig::for_tests(clock.clone())
    };
    let key = app_key();
    let first = Sandbox::start(config.clone()).await.unwrap();
    let app = cert_app(&first, &key).await;
    let certs = control(&first, "GET", "/sandbox/certs", None).await;
    first.shutdown().await;

    let second = Sandbox::start(config.clone()).await.unwrap();
    assert_eq!(control(&second, "GET", "/sandbox/certs", None).await, certs);
    let stored = stored_app(&second, &app).await;
    assert_eq!(stored["app_cert"], app["app_cert"]);
    // The files issued before the restart still work, and the Class 1 CA
    // still issues under the same root.
    let client = cert_client(&second, &app, &key, &clock);
    let out = client
        .execute(&query("R1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "ACQ.TRADE_NOT_EXIST");
    let later = cert_app(&second, &app_key()).await;
    assert_eq!(later["alipay_root_cert_sn"], app["alipay_root_cert_sn"]);
    chains_to(
        dir.path(),
        text(&later, "app_cert"),
        text(&app, "alipay_root_cert"),
    );
    second.shutdown().await;

    // A state saved before the sandbox issued certificates (no `certs`
    // record) gets a hierarchy at start for its certificate-mode apps.
    let snapshot = dir.path().join("snapshot.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    assert!(state["certs"].is_object());
    state.as_object_mut().unwrap().remove("certs");
    std::fs::write(&snapshot, state.to_string()).unwrap();
    let journal = dir.path().join("journal.jsonl");
    let kept: String = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("{\"k\":\"certs\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&journal, kept).unwrap();
    let third = Sandbox::start(config).await.unwrap();
    let made = control(&third, "GET", "/sandbox/certs", None).await;
    assert_ne!(made["alipay_root_cert_sn"], certs["alipay_root_cert_sn"]);
    let mut upgraded = app.clone();
    for field in ["alipay_cert", "alipay_cert_sn", "alipay_root_cert_sn"] {
        upgraded[field] = made[field].clone();
    }
    let client = cert_client(&third, &upgraded, &key, &clock);
    let out = client
        .execute(&query("R1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sub_code(&out), "ACQ.TRADE_NOT_EXIST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_sdk_in_certificate_mode() {
    assert!(
        interop().join("node_modules/alipay-sdk").is_dir(),
        "npm alipay-sdk is missing: run scripts/setup-interop"
    );
    let clock = ManualClock::at_beijing(START).unwrap();
    let sandbox = sandbox(&clock).await;
    let key = app_key();
    let app = cert_app(&sandbox, &key).await;
    let buyer = sandbox.create_buyer(BuyerSpec::default()).await.unwrap();
    // The files under the names Alipay's console gives them.
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, field: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text(&app, field)).unwrap();
        path.display().to_string()
    };
    let cfg = json!({
        "gateway": sandbox.gateway_url(),
        "base": sandbox.base_url(),
        "app_id": app["app_id"],
        "pid": app["pid"],
        "private_key": key.to_pkcs8_pem(),
        "buyer_id": buyer.buyer_id,
        "app_cert_path": file(&format!("appCertPublicKey_{}.crt", text(&app, "app_id")), "app_cert"),
        "alipay_cert_path": file("alipayCertPublicKey_RSA2.crt", "alipay_cert"),
        "alipay_root_cert_path": file("alipayRootCert.crt", "alipay_root_cert"),
        "production_root_cert_path": PRODUCTION_ROOT,
    });
    let out = run_driver("node".into(), "sandbox_node_cert.mjs", &cfg).await;

    // The SDK computes the SNs the control API stated, from paths and contents.
    for how in ["by_path", "by_content"] {
        for sn in ["app_cert_sn", "alipay_cert_sn", "alipay_root_cert_sn"] {
            assert_eq!(out[how][sn], app[sn], "{how} {sn}");
        }
    }
    assert_eq!(out["onboard"]["code"], "10000", "{out}");
    assert_eq!(out["pay"]["code"], "10000", "{out}");
    assert_eq!(out["pay"]["total_amount"], "66.60");
    assert_eq!(out["query"]["trade_status"], "TRADE_SUCCESS");
    assert_eq!(out["refund"]["refund_fee"], "6.60");
    assert_eq!(out["missing"]["sub_code"], "ACQ.TRADE_NOT_EXIST");
    for answer in ["onboard", "pay", "query", "refund", "missing"] {
        assert_eq!(
            out[answer]["raw_alipay_cert_sn"], app["alipay_cert_sn"],
            "{answer}"
        );
    }
    assert_eq!(
        out["production_root"]["sub_code"], "isv.invalid-alipay-root-cert-sn",
        "{out}"
    );
}
