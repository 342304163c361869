//! Proves the gateway's commands: `jianlian demo` runs its business day from
//! any directory, exits 0 and leaves nothing behind; `jianlian serve` with no
//! upstream embeds the sandbox, provisions a demo channel, and the official
//! Node SDK pointed at it onboards, registers a store, pays, queries and
//! refunds; the admin commands share its database (`merchant set-source`
//! corrects Alipay first); bad configuration stops the start with a message
//! naming the key; a `serve` process SIGKILLed with polls, cancels and a pay
//! in flight is restarted and closes every trade with one upstream pay each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jianlian_alipay::PrivateKey;
use serde_json::{Value, json};

mod support;
use support::BIN;

fn jianlian(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("JIANLIAN_CONFIG")
        .output()
        .unwrap()
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn demo_exits_zero_from_any_directory_and_leaves_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("demo")
        .current_dir(cwd.path())
        .env_remove("JIANLIAN_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "10003 in progress",
        "ACQ.BUYER_BALANCE_NOT_ENOUGH",
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        "Alice scanned and paid QR001",
        "[ok] every journal balances",
        "[ok] no trade left non-terminal",
        "[ok] the gateway's books agree with Alipay's ledger",
        "[ok] every notification to the channel was delivered",
    ] {
        assert!(
            text.contains(needle),
            "the demo output lacks {needle:?}:\n{text}"
        );
    }
    assert!(!text.contains("[FAIL]"), "{text}");
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing written to the working directory"
    );
}

#[test]
fn demo_keeps_its_database_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    let out = Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(&kept)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(kept.join("demo.db").is_file());
    let again = Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(&kept)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty database"));
    // The kept books still check out.
    let ledger = Command::new(BIN)
        .args(["ledger", "check", "--database-url"])
        .arg(format!("sqlite://{}", kept.join("demo.db").display()))
        .output()
        .unwrap();
    let v = json_of(&ledger);
    assert_eq!(v["balanced"], json!(true));
    assert_eq!(v["accounts"]["alipay_clearing"], json!("1479.00"));
}

#[test]
fn channel_commands_share_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = PrivateKey::generate_2048().unwrap();
    let key_file = dir.path().join("channel.pem");
    std::fs::write(&key_file, key.public_key().to_pem()).unwrap();
    let key_arg = key_file.to_str().unwrap();
    let created = json_of(&jianlian(
        &[
            "channel",
            "create",
            "--name",
            "渠道甲",
            "--pid",
            "2088000000000101",
            "--public-key",
            key_arg,
        ],
        &data,
    ));
    let app_id = created["app_id"].as_str().unwrap().to_owned();
    assert!(app_id.starts_with("2021") && app_id.len() == 16, "{app_id}");
    let gateway_pub = created["gateway_public_key"].as_str().unwrap();
    assert!(jianlian_alipay::PublicKey::from_text(gateway_pub).is_ok());
    let sub = json_of(&jianlian(
        &[
            "channel",
            "create",
            "--name",
            "子渠道",
            "--pid",
            "2088000000000102",
            "--public-key",
            key_arg,
            "--parent",
            &app_id,
        ],
        &data,
    ));
    assert_eq!(
        sub["gateway_public_key"], created["gateway_public_key"],
        "one gateway key"
    );
    let list = json_of(&jianlian(&["channel", "list"], &data));
    assert_eq!(list.as_array().unwrap().len(), 2);
    let shown = json_of(&jianlian(
        &["channel", "show", sub["app_id"].as_str().unwrap()],
        &data,
    ));
    assert_eq!(shown["parent"], json!(app_id));
    let other = PrivateKey::generate_2048().unwrap();
    std::fs::write(&key_file, other.public_key().to_pem()).unwrap();
    let rotated = json_of(&jianlian(
        &["channel", "rotate-key", &app_id, "--public-key", key_arg],
        &data,
    ));
    assert_eq!(
        jianlian_alipay::PublicKey::from_text(rotated["public_key"].as_str().unwrap()).unwrap(),
        *other.public_key()
    );
    let bad = jianlian(
        &[
            "channel",
            "create",
            "--name",
            "x",
            "--pid",
            "12345",
            "--public-key",
            key_arg,
        ],
        &data,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--pid"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let ledger = json_of(&jianlian(&["ledger", "check"], &data));
    assert_eq!(ledger["balanced"], json!(true));
    assert_eq!(
        json_of(&jianlian(&["notify", "dead-letters"], &data)),
        json!([])
    );
    assert_eq!(json_of(&jianlian(&["merchant", "list"], &data)), json!([]));
}

#[test]
fn invalid_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jianlian.toml");
    std::fs::write(&config, "[closed_loop]\npoll_interval_ms = 0\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--sandbox-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("closed_loop.poll_interval_ms"), "{err}");
    let typo = Command::new(BIN)
        .args(["ledger", "check"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("JIANLIAN_WORKER_TICKMS", "5")
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("JIANLIAN_WORKER_TICKMS"));
    // A lease that an upstream call can outlast: serve and the admin
    // commands refuse it alike, naming the keys.
    std::fs::write(
        &config,
        "[upstream]\nread_timeout_ms = 20000\n[worker]\nlease_ms = 15000\n",
    )
    .unwrap();
    for args in [&["ledger", "check"][..], &["merchant", "list"], &["serve"]] {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("worker.lease_ms") && err.contains("upstream.read_timeout_ms"),
            "{args:?}: {err}"
        );
    }
}

struct Serving {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    fn value(&self, prefix: &str) -> String {
        let line = self
            .lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("serve printed no {prefix:?}: {:#?}", self.lines));
        line.trim().to_owned()
    }
}

fn serve(data: &Path) -> Serving {
    serve_with(&["--sandbox-listen", "127.0.0.1:0"], data)
}

/// `jianlian serve --listen 127.0.0.1:0 EXTRA… --data-dir DATA`, once it has
/// printed everything.
fn serve_with(extra: &[&str], data: &Path) -> Serving {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env_remove("JIANLIAN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = support::read_banner(&mut child, |line| line.contains("Ctrl-C stops"));
    Serving { child, lines }
}

fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

#[test]
fn official_sdk_against_serve_with_the_embedded_sandbox() {
    assert!(
        interop().join("node_modules/alipay-sdk").is_dir(),
        "npm alipay-sdk is missing: run scripts/setup-interop"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = serve(&data);
    let api = s.value("channel API:");
    let gateway = api.clone();
    let channel = s.value("demo channel:  app_id");
    let key_file = s.value("its key:");
    let key_file = key_file.split(" (public").next().unwrap();
    let control = s.value("control API:");
    let buyer = s.value("demo buyer:");
    let buyer = buyer.split_whitespace().next().unwrap();
    let cfg = json!({
        "gateway": gateway,
        "app_id": channel,
        "private_key": std::fs::read_to_string(key_file).unwrap(),
        "gateway_public_key": std::fs::read_to_string(data.join("gateway_public_key.pem")).unwrap(),
        "sandbox": control.strip_suffix("/sandbox").unwrap(),
        "buyer_id": buyer,
    });
    let out = Command::new("node")
        .arg(interop().join("gateway_node.mjs"))
        .arg(cfg.to_string())
        .current_dir(interop())
        .env("TZ", "Asia/Shanghai")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "driver failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["onboard"]["code"], "10000", "{v}");
    assert_eq!(v["store"]["terminal_ids"], json!(["NODE_T1"]), "{v}");
    assert_eq!(v["pay"]["code"], "10000", "{v}");
    assert_eq!(v["query"]["trade_status"], "TRADE_SUCCESS", "{v}");
    assert_eq!(v["refund"]["fund_change"], "Y", "{v}");
    assert_eq!(v["refund_query"]["refund_status"], "REFUND_SUCCESS", "{v}");
    // The admin commands see what the running gateway wrote.
    let merchants = json_of(&jianlian(&["merchant", "list", "--q", "NODE"], &data));
    assert_eq!(merchants.as_array().unwrap().len(), 1, "{merchants}");
    assert_eq!(merchants[0]["smid"], v["onboard"]["sub_merchant_id"]);
    let smid = merchants[0]["smid"].as_str().unwrap().to_owned();
    let store = json_of(&jianlian(
        &[
            "store",
            "create",
            "--merchant",
            &smid,
            "--store-id",
            "CLI1",
            "--name",
            "命令行店",
            "--terminal",
            "CT1",
        ],
        &data,
    ));
    assert_eq!(store["terminal_ids"], json!(["CT1"]));
    let shown = json_of(&jianlian(&["merchant", "show", &smid], &data));
    assert_eq!(shown["stores"].as_array().unwrap().len(), 2);
    let ledger = json_of(&jianlian(&["ledger", "check"], &data));
    assert_eq!(
        ledger["accounts"]["alipay_clearing"],
        json!("80.00"),
        "88.88 paid, 8.88 refunded"
    );
    drop(s);
    // A second start reuses the provisioned channel and keys.
    let again = serve(&data);
    assert_eq!(again.value("demo channel:  app_id"), channel);
}

/// One HTTP request from a synchronous test: `(status, JSON body)`.
fn http(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

/// `jianlian channel create` with a fresh key: `(app_id, its private key)`.
/// `extra` goes before the data directory (e.g. `--config FILE`).
fn new_channel(dir: &Path, data: &Path, extra: &[&str], pid: &str) -> (String, PrivateKey) {
    let key = PrivateKey::generate_2048().unwrap();
    let key_file = dir.join(format!("channel-{pid}.pem"));
    std::fs::write(&key_file, key.public_key().to_pem()).unwrap();
    let mut args = vec![
        "channel",
        "create",
        "--name",
        "渠道甲",
        "--pid",
        pid,
        "--public-key",
    ];
    args.push(key_file.to_str().unwrap());
    args.extend_from_slice(extra);
    let created = json_of(&jianlian(&args, data));
    (created["app_id"].as_str().unwrap().to_owned(), key)
}

/// `jianlian merchant create` (onboarded at Alipay) for a channel.
fn new_merchant(
    dir: &Path,
    data: &Path,
    extra: &[&str],
    app_id: &str,
    external_id: &str,
    licence: &str,
) -> Value {
    let profile_file = dir.join(format!("profile-{external_id}.json"));
    std::fs::write(
        &profile_file,
        json!({
            "external_id": external_id, "name": format!("上海{external_id}餐饮有限公司"),
            "alias_name": "命令行餐厅", "service_phone": "021-12345678",
            "category_id": "2015050700000000", "business_license": licence,
            "contact_info": [{"name": "张三", "type": "LEGAL_PERSON", "mobile": "13800138000"}],
        })
        .to_string(),
    )
    .unwrap();
    let mut args = vec!["merchant", "create", "--channel", app_id, "--profile"];
    args.push(profile_file.to_str().unwrap());
    args.extend_from_slice(extra);
    json_of(&jianlian(&args, data))
}

/// R2.3 through the command line: `jianlian merchant set-source` sends the
/// new `source` to Alipay (here the embedded sandbox of `serve`) and records
/// it with its audit entry; when Alipay does not answer it records nothing
/// and exits 1 with the report.
#[test]
fn merchant_set_source_corrects_alipay_then_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = serve(&data);
    let control = s.value("control API:");
    let (app_id, _) = new_channel(dir.path(), &data, &[], "2088000000000101");
    let merchant = new_merchant(
        dir.path(),
        &data,
        &[],
        &app_id,
        "CLI-SRC-1",
        "91310000000000031A",
    );
    let smid = merchant["smid"].as_str().unwrap().to_owned();
    assert_eq!(merchant["source"], json!("2088000000000101"));
    let alipay_source = || {
        let (status, m) = http("GET", &format!("{control}/merchants/{smid}"), None);
        assert_eq!(status, 200, "{m}");
        m["profile"]["source"].clone()
    };
    assert_eq!(alipay_source(), json!("2088000000000101"));

    let set = |to: &str| {
        jianlian(
            &[
                "merchant",
                "set-source",
                "--to",
                to,
                "--actor",
                "ops:li",
                "--reason",
                "rebate correction",
                &smid,
            ],
            &data,
        )
    };
    let report = json_of(&set("2088000000000777"));
    assert_eq!(report["changed"], json!(1), "{report}");
    assert_eq!(report["results"][0]["result"], json!("changed"));
    assert_eq!(alipay_source(), json!("2088000000000777"), "Alipay has it");
    let shown = json_of(&jianlian(&["merchant", "show", &smid], &data));
    assert_eq!(shown["source"], json!("2088000000000777"));
    assert_eq!(shown["source_history"][0]["actor"], json!("ops:li"));

    // Alipay does not answer: nothing recorded, exit 1, the report says so.
    let (status, fault) = http(
        "POST",
        &format!("{control}/faults"),
        Some(json!({"action": "system_error", "method": "ant.merchant.expand.indirect.modify"})),
    );
    assert!(status < 300, "{fault}");
    let out = set("2088000000000101");
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unknown"], json!(1), "{report}");
    assert_eq!(alipay_source(), json!("2088000000000777"));
    let shown = json_of(&jianlian(&["merchant", "show", &smid], &data));
    assert_eq!(shown["source"], json!("2088000000000777"));
    assert_eq!(shown["source_history"].as_array().unwrap().len(), 1);

    // An unknown merchant changes nothing and is named.
    let typo = jianlian(
        &[
            "merchant",
            "set-source",
            "--to",
            "2088000000000101",
            "--actor",
            "ops:li",
            "--reason",
            "r",
            "2088000000009999",
        ],
        &data,
    );
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("2088000000009999"),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );
}

/// A recording proxy in front of the sandbox: it logs every call the gateway
/// makes upstream (method, `out_trade_no`) and can hold the pay of one amount
/// until released, so a test can kill the gateway while that call is in
/// flight.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    hold_amount: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    held: std::sync::Arc<tokio::sync::Notify>,
    release: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Proxy {
    async fn start(upstream: String) -> (Proxy, String) {
        let proxy = Proxy {
            upstream,
            calls: Default::default(),
            hold_amount: Default::default(),
            held: Default::default(),
            release: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/gateway.do", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/gateway.do", axum::routing::any(proxy_call))
            .with_state(proxy.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (proxy, url)
    }

    /// How many times `method` was called for the upstream `out_trade_no`.
    fn count(&self, method: &str, out_trade_no: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, o)| m == method && o == out_trade_no)
            .count()
    }
}

async fn proxy_call(
    axum::extract::State(p): axum::extract::State<Proxy>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let target = uri.path_and_query().map_or("/", |q| q.as_str()).to_owned();
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request =
        jianlian_alipay::server::IncomingRequest::parse(jianlian_alipay::server::RawRequest {
            http_method: method.as_str(),
            target: &target,
            content_type: content_type.as_deref(),
            body: &body,
        })
        .unwrap();
    let api = request.method().unwrap_or_default().to_owned();
    let biz: Value = request
        .biz_content(None)
        .unwrap()
        .map(|b| serde_json::from_str(&b).unwrap())
        .unwrap_or_default();
    let out_trade_no = biz["out_trade_no"].as_str().unwrap_or_default().to_owned();
    p.calls.lock().unwrap().push((api.clone(), out_trade_no));
    let hold = api == "alipay.trade.pay"
        && p.hold_amount.lock().unwrap().as_deref() == biz["total_amount"].as_str();
    // A task of its own: the call reaches Alipay even when the gateway that
    // sent it is killed meanwhile (its answer is what gets lost).
    let forward = tokio::spawn(async move {
        if hold {
            p.held.notify_one();
            p.release.acquire().await.unwrap().forget();
        }
        let mut req = reqwest::Client::new()
            .post(format!(
                "{}{}",
                p.upstream,
                target.trim_start_matches("/gateway.do")
            ))
            .body(body.to_vec());
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let resp = req.send().await.unwrap();
        let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let bytes = resp.bytes().await.unwrap();
        (ct, bytes)
    });
    let (ct, bytes) = forward.await.unwrap();
    let mut response = bytes.to_vec().into_response();
    if let Some(ct) = ct.and_then(|v| axum::http::HeaderValue::from_bytes(v.as_bytes()).ok()) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, ct);
    }
    response
}

/// Runs blocking work (a child process, its output) off the async workers.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Issue item 12 with a real process: `jianlian serve` (upstream: a sandbox
/// behind a recording proxy) is SIGKILLed with polls, cancels and a pay
/// call in flight, restarted on the same database, and every trade still
/// reaches a terminal state, each with exactly one upstream pay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_killed_mid_flight_and_restarted_closes_every_trade() {
    use jianlian_alipay::api::trade::{SubMerchant, TradeOrder, TradePay};
    use jianlian_alipay::client::{AlipayClient, ClientConfig};
    use jianlian_alipay::request::{AppCredentials, CallOptions};
    use jianlian_alipay::{Fen, Outcome, PublicKey, SystemClock};
    use jianlian_core::ids::{AppId, ChannelOrderNo};
    use jianlian_core::trade::TradeState;
    use jianlian_sandbox::{
        AppSpec, BuyerSpec, FaultAction, FaultRule, Sandbox, SandboxClock, SandboxConfig,
    };

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sandbox = Sandbox::start(SandboxConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        state_dir: None,
        clock: SandboxClock::real_time(),
        seed: 20_880_001,
        alipay_private_key: None,
    })
    .await
    .unwrap();
    let (proxy, proxy_url) = Proxy::start(sandbox.gateway_url()).await;
    let acquirer_key = PrivateKey::generate_2048().unwrap();
    let acquirer = sandbox
        .create_app(AppSpec {
            app_public_key: Some(acquirer_key.public_key().to_pem()),
            ..AppSpec::default()
        })
        .await
        .unwrap();
    let key_file = dir.path().join("acquirer.pem");
    std::fs::write(&key_file, acquirer_key.to_pkcs8_pem()).unwrap();
    let alipay_file = dir.path().join("alipay.pem");
    std::fs::write(&alipay_file, &acquirer.alipay_public_key).unwrap();
    // Short timings (each within what the configuration check allows), so
    // the closed loop runs its course in seconds of real time.
    let config = dir.path().join("jianlian.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\ngateway_url = {proxy_url:?}\napp_id = {:?}\npid = {:?}\n\
             private_key_file = {key_file:?}\nalipay_public_key_file = {alipay_file:?}\n\
             connect_timeout_ms = 1000\nread_timeout_ms = 2000\n\
             [closed_loop]\npoll_interval_ms = 300\npoll_count_max = 3\n\
             intent_stale_after_ms = 4000\nquery_retry_interval_ms = 300\n\
             cancel_retry_interval_ms = 300\ncancel_retry_interval_max_ms = 1000\n\
             [worker]\ntick_ms = 100\nlease_ms = 5000\n[notify]\ntimeout_ms = 1000\n",
            acquirer.app_id, acquirer.pid
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap().to_owned();
    let (root, d, c) = (dir.path().to_owned(), data.clone(), cfg.clone());
    let (app_id, channel_key) =
        off_thread(move || new_channel(&root, &d, &["--config", &c], "2088000000000101")).await;
    let (root, d, c, app) = (
        dir.path().to_owned(),
        data.clone(),
        cfg.clone(),
        app_id.clone(),
    );
    let merchant = off_thread(move || {
        new_merchant(
            &root,
            &d,
            &["--config", &c],
            &app,
            "RESTART1",
            "91310000000000041A",
        )
    })
    .await;
    let smid = merchant["smid"].as_str().unwrap().to_owned();
    let (d, c, m) = (data.clone(), cfg.clone(), smid.clone());
    off_thread(move || {
        json_of(&jianlian(
            &[
                "store",
                "create",
                "--merchant",
                &m,
                "--store-id",
                "S1",
                "--name",
                "一号店",
                "--terminal",
                "T1",
                "--config",
                &c,
            ],
            &d,
        ))
    })
    .await;
    let (d, c) = (data.clone(), cfg.clone());
    let first = off_thread(move || serve_with(&["--config", &c], &d)).await;
    // The channel, as a terminal calls it (the gateway's URL changes with
    // each process: port 0).
    let channel_client = |api: String| {
        AlipayClient::new(
            ClientConfig {
                gateway_url: api,
                app: AppCredentials::new(app_id.clone(), channel_key.clone()),
                alipay_public_key: PublicKey::from_text(
                    &std::fs::read_to_string(data.join("gateway_public_key.pem")).unwrap(),
                )
                .unwrap(),
                alipay_cert_sn: None,
                connect_timeout: Duration::from_secs(2),
                read_timeout: Duration::from_secs(30),
            },
            std::sync::Arc::new(SystemClock),
        )
        .unwrap()
    };
    let client = channel_client(first.value("channel API:"));
    let buyer = sandbox
        .create_buyer(BuyerSpec {
            balance: Some(Fen::new(1_000_000)),
            ..BuyerSpec::default()
        })
        .await
        .unwrap()
        .buyer_id;
    let fault = |amount: Option<&str>, method: &str, action, times| FaultRule {
        id: 0,
        method: Some(method.into()),
        out_trade_no: None,
        amount: amount.map(|a| Fen::parse_yuan(a).unwrap()),
        action,
        times,
    };
    // W1, W2: buyers who never confirm (polls, then cancels, three of which
    // Alipay fails); U1: Alipay pays but answers 20000; P1: its pay is in
    // flight when the gateway dies.
    for rule in [
        fault(
            Some("1.01"),
            "alipay.trade.pay",
            FaultAction::ForceWait {
                pay_after_queries: None,
            },
            Some(1),
        ),
        fault(
            Some("1.02"),
            "alipay.trade.pay",
            FaultAction::ForceWait {
                pay_after_queries: None,
            },
            Some(1),
        ),
        fault(
            Some("1.03"),
            "alipay.trade.pay",
            FaultAction::Unknown { apply: true },
            Some(1),
        ),
        fault(
            None,
            "alipay.trade.cancel",
            FaultAction::SystemError { apply: false },
            Some(3),
        ),
    ] {
        sandbox.add_fault(rule).await.unwrap();
    }
    let pay_req = |otn: &str, amount: &str, code: &str| TradePay {
        scene: Some("bar_code".into()),
        auth_code: Some(code.into()),
        order: TradeOrder {
            out_trade_no: otn.into(),
            total_amount: Fen::parse_yuan(amount).unwrap(),
            subject: "咖啡".into(),
            store_id: Some("S1".into()),
            terminal_id: Some("T1".into()),
            sub_merchant: Some(SubMerchant::new(smid.clone())),
            ..TradeOrder::default()
        },
        ..TradePay::default()
    };
    for (otn, amount) in [("W1", "1.01"), ("W2", "1.02"), ("U1", "1.03")] {
        let code = sandbox.payment_code(&buyer, None).await.unwrap();
        let out = client
            .execute(&pay_req(otn, amount, &code), &CallOptions::default())
            .await
            .unwrap();
        assert!(matches!(out, Outcome::InProgress(_)), "{otn}: {out:?}");
    }
    *proxy.hold_amount.lock().unwrap() = Some("1.04".into());
    let p1_code = sandbox.payment_code(&buyer, None).await.unwrap();
    let p1 = pay_req("P1", "1.04", &p1_code);
    let in_flight = {
        let client = client.clone();
        let p1 = p1.clone();
        tokio::spawn(async move { client.execute(&p1, &CallOptions::default()).await })
    };
    tokio::time::timeout(Duration::from_secs(30), proxy.held.notified())
        .await
        .expect("the gateway sent P1's pay");

    // SIGKILL: no shutdown, no chance to record anything more.
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    let lost = in_flight.await.unwrap();
    assert!(!matches!(lost, Ok(Outcome::Success(_))), "{lost:?}");
    proxy.release.add_permits(1);

    let (d, c) = (data.clone(), cfg.clone());
    let second = off_thread(move || serve_with(&["--config", &c], &d)).await;
    let client = channel_client(second.value("channel API:"));
    // The terminal retries P1 as it would: answered from the record.
    let retried = client.execute(&p1, &CallOptions::default()).await.unwrap();
    assert!(
        matches!(retried, Outcome::InProgress(_) | Outcome::Success(_)),
        "{retried:?}"
    );

    // Bounded wait on the real process: every trade terminal.
    let store =
        jianlian_store::Store::connect(&format!("sqlite://{}", data.join("jianlian.db").display()))
            .await
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open = store.unresolved_trades(100).await.unwrap();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still open after 90 s: {:?}",
            open.iter()
                .map(|t| (t.channel_order_no.to_string(), t.state, t.progress.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = AppId::parse(&app_id).unwrap();
    for (otn, paid) in [("W1", false), ("W2", false), ("U1", true), ("P1", true)] {
        let t = store
            .trade_by_channel_order(&channel, &ChannelOrderNo::parse(otn).unwrap())
            .await
            .unwrap()
            .unwrap();
        if paid {
            assert_eq!(t.state, TradeState::Paid, "{otn}");
        } else {
            assert!(
                matches!(t.state, TradeState::Cancelled { .. }),
                "{otn}: {:?}",
                t.state
            );
            assert_eq!(
                t.progress.polls, 3,
                "{otn}: every poll, across both processes"
            );
            assert!(t.progress.cancels >= 1, "{otn}");
        }
        let upstream_no = t.upstream_order_no.to_string();
        assert_eq!(
            proxy.count("alipay.trade.pay", &upstream_no),
            1,
            "{otn}: exactly one upstream pay"
        );
        let at_alipay = sandbox
            .trade_by_out_trade_no(&acquirer.pid, &upstream_no)
            .await
            .unwrap();
        assert_eq!(
            at_alipay.status.as_str(),
            if paid {
                "TRADE_SUCCESS"
            } else {
                "TRADE_CLOSED"
            },
            "{otn}: Alipay agrees"
        );
    }
    assert!(
        store.ledger_check().await.is_ok(),
        "the books balance after the crash"
    );
    drop(second);
    sandbox.shutdown().await;
}
