//! The official SDKs as real clients: npm `alipay-sdk` 4.14.0 (validateSign)
//! and PyPI `alipay-sdk-python` 3.7.1411 drive onboarding → pay → query →
//! refund → refund query → cancel against the sandbox and accept every answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jianlian_alipay::{ManualClock, PrivateKey};
use jianlian_sandbox::{AppSpec, BuyerSpec, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

use crate::common::START;

pub(crate) fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// A sandbox with an app and a buyer; the driver's configuration.
async fn world(listen: SocketAddr) -> (SandboxHandle, Value) {
    let clock = ManualClock::at_beijing(START).unwrap();
    let config = SandboxConfig {
        listen,
        ..SandboxConfig::for_tests(clock)
    };
    let sandbox = Sandbox::start(config).await.unwrap_or_else(|e| {
        panic!("cannot start the sandbox on {listen} (port 80 needs root): {e}")
    });
    let key = PrivateKey::generate_2048().unwrap();
    let app = sandbox
        .create_app(AppSpec {
            app_public_key: Some(key.public_key().to_base64()),
            ..Default::default()
        })
        .await
        .unwrap();
    let buyer = sandbox.create_buyer(BuyerSpec::default()).await.unwrap();
    let cfg = json!({
        "gateway": sandbox.gateway_url(),
        "base": sandbox.base_url(),
        "app_id": app.app_id,
        "pid": app.pid,
        "private_key": key.to_pkcs8_pem(),
        "alipay_public_key": app.alipay_public_key,
        "buyer_id": buyer.buyer_id,
    });
    (sandbox, cfg)
}

pub(crate) async fn run_driver(program: PathBuf, script: &str, cfg: &Value) -> Value {
    let mut cmd = tokio::process::Command::new(&program);
    cmd.arg(interop().join(script))
        .arg(cfg.to_string())
        .current_dir(interop())
        .kill_on_drop(true);
    let child = cmd.output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check(out: &Value, paid: &str, refunded: &str) {
    assert_eq!(out["onboard"]["code"], "10000", "{out}");
    assert!(
        out["onboard"]["sub_merchant_id"]
            .as_str()
            .unwrap()
            .starts_with("2088")
    );
    assert_eq!(out["pay"]["code"], "10000");
    assert_eq!(out["pay"]["total_amount"], paid);
    assert_eq!(out["query"]["trade_status"], "TRADE_SUCCESS");
    assert_eq!(out["refund"]["fund_change"], "Y");
    assert_eq!(out["refund"]["refund_fee"], refunded);
    assert_eq!(out["refund_query"]["refund_status"], "REFUND_SUCCESS");
    assert_eq!(out["pay2"]["code"], "10000");
    assert_eq!(out["cancel"]["action"], "refund");
    assert_eq!(out["cancel"]["retry_flag"], "N");
    assert_eq!(out["missing"]["sub_code"], "ACQ.TRADE_NOT_EXIST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_sdk() {
    let sdk = interop().join("node_modules/alipay-sdk");
    assert!(
        sdk.is_dir(),
        "npm alipay-sdk is missing: run scripts/setup-interop"
    );
    let (_sandbox, cfg) = world(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let out = run_driver(PathBuf::from("node"), "sandbox_node.mjs", &cfg).await;
    check(&out, "88.88", "8.88");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk() {
    let python = interop().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "PyPI alipay-sdk-python is missing: run scripts/setup-interop"
    );
    // The SDK cannot target a port: port 80 of an otherwise unused loopback address.
    let (_sandbox, cfg) = world(SocketAddr::from(([127, 31, 41, 59], 80))).await;
    assert_eq!(cfg["gateway"], "http://127.31.41.59/gateway.do");
    let out = run_driver(python, "sandbox_python.py", &cfg).await;
    check(&out, "66.66", "6.66");
}
