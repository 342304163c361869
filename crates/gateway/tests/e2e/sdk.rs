//! The official Node SDK (npm `alipay-sdk` 4.14.0, `validateSign: true`) as a
//! channel: pointed at the gateway with only the URL, app_id and keys
//! changed, it onboards a merchant, registers a store, pays, queries and
//! refunds, and accepts every answer's signature.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::e2e;

fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// Runs an interop driver with its configuration; fails loudly when the SDK
/// is not installed.
pub async fn run_node_driver(script: &str, cfg: &Value) -> Value {
    let sdk = interop().join("node_modules/alipay-sdk");
    assert!(
        sdk.is_dir(),
        "npm alipay-sdk is missing: run scripts/setup-interop"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(interop().join(script))
        .arg(cfg.to_string())
        .current_dir(interop())
        // The SDK stamps requests with the host's local time; the gateway reads Beijing time.
        .env("TZ", "Asia/Shanghai")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Checks the driver's answers.
pub fn check_driver_output(out: &Value) {
    assert_eq!(out["onboard"]["code"], "10000", "{out}");
    assert!(
        out["onboard"]["sub_merchant_id"].as_str().is_some(),
        "{out}"
    );
    assert_eq!(out["store"]["code"], "10000", "{out}");
    assert_eq!(out["store"]["terminal_ids"], json!(["NODE_T1"]));
    assert_eq!(out["pay"]["code"], "10000", "{out}");
    assert_eq!(out["pay"]["total_amount"], "88.88");
    assert!(
        out["pay"]["out_trade_no"]
            .as_str()
            .unwrap()
            .starts_with("NODE_ORDER")
    );
    assert_eq!(out["query"]["trade_status"], "TRADE_SUCCESS");
    assert_eq!(out["refund"]["fund_change"], "Y");
    assert_eq!(out["refund"]["refund_fee"], "8.88");
    assert_eq!(out["refund_query"]["refund_status"], "REFUND_SUCCESS");
    assert_eq!(out["missing"]["sub_code"], "ACQ.TRADE_NOT_EXIST");
}

async fn official_node_sdk_as_a_channel(db: Db) {
    // The SDK's timestamps are the machine's real time; this world's manual
    // clock starts at 2026-03-02, so the window check is off here (it is
    // tested in `security`).
    let w = World::with(db, Default::default(), |s| s.timestamp_skew_max = None).await;
    let cfg = json!({
        "gateway": format!("{}/gateway.do", w.gateway.base_url()),
        "app_id": w.channel.app_id,
        "private_key": w.channel.key.to_pkcs8_pem(),
        "gateway_public_key": w.gateway_key.public_key().to_base64(),
        "sandbox": w.sandbox.base_url(),
        "buyer_id": w.buyer,
    });
    let out = run_node_driver("gateway_node.mjs", &cfg).await;
    check_driver_output(&out);
    let t = w.trade(&w.channel, "NODE_ORDER").await;
    assert_eq!(t.state, jianlian_core::trade::TradeState::Paid);
}
e2e!(official_node_sdk_as_a_channel);
