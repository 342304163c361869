//! The official Node SDK (npm `alipay-sdk` 4.14.0, `validateSign: true`)
//! fetches a day's bill: `alipay.data.dataservice.bill.downloadurl.query`
//! answers a URL it accepts, the URL downloads the zip the sandbox wrote, and
//! today's bill and a day without one are refused as Alipay refuses them.

use std::path::PathBuf;
use std::time::Duration;

use jianlian_sandbox::BuyerSpec;
use serde_json::{Value, json};

use crate::bill_support::*;
use crate::common::*;

fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_sdk_downloads_the_bill() {
    assert!(
        interop().join("node_modules/alipay-sdk").is_dir(),
        "npm alipay-sdk is missing: run scripts/setup-interop"
    );
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    for (otn, amount) in [("N1", "18.00"), ("N2", "2.50")] {
        let code = t.code(&buyer).await;
        assert!(t.call(&t.pay_req(otn, amount, &code)).await.is_success());
    }
    advance_to(&t, "2026-03-04 09:00:00").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bill.zip");
    let cfg = json!({
        "gateway": t.sandbox.gateway_url(),
        "app_id": t.app.app_id,
        "private_key": t.key.to_pkcs8_pem(),
        "alipay_public_key": t.app.alipay_public_key,
        "bill_date": "2026-03-02",
        "today": "2026-03-04",
        "missing": "2026-03-03",
        "out": out,
    });
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(interop().join("bill_node.mjs"))
        .arg(cfg.to_string())
        .current_dir(interop())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("bill_node.mjs finished within 120 s")
        .expect("node runs");
    assert!(
        output.status.success(),
        "bill_node.mjs failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let v: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(v["query"]["code"], "10000", "{v}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["content_type"], "application/zip");
    let name = format!("{}0156_20260302.csv.zip", t.app.pid);
    let served = t
        .sandbox
        .bill_file(&t.app.pid, "2026-03-02".parse().unwrap(), &name)
        .await
        .unwrap();
    let downloaded = std::fs::read(&out).unwrap();
    assert_eq!(downloaded, served.to_vec());
    assert_eq!(v["size"], served.len());
    let bill = read(&downloaded);
    assert_eq!(rows_of(&bill.detail, "交易").len(), 2);
    assert_eq!(v["today"]["code"], "40004");
    assert_eq!(v["today"]["sub_code"], "isv.invalid_arguments");
    assert_eq!(v["missing"]["sub_code"], "isp.bill_not_exist");
}
