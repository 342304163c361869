//! Load benchmark: signed `alipay.trade.pay` requests per second the sandbox
//! serves over keep-alive connections, as a ratio of the machine's RSA
//! ceiling measured in the same run (each pay costs the server one RSA-2048
//! signature, so cores × single-core sign rate bounds it).
//!
//! `cargo bench -p jianlian-sandbox --bench pay_load` (env:
//! `JIANLIAN_BENCH_REQUESTS`, default 4000; `JIANLIAN_BENCH_CLIENTS`, default 8).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jianlian_alipay::api::merchant::{ContactInfo, IndirectCreate, MerchantProfile};
use jianlian_alipay::api::trade::{SubMerchant, TradeOrder, TradePay};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions, build_request};
use jianlian_alipay::{Fen, ManualClock, PrivateKey, PublicKey, SignType};
use jianlian_sandbox::{AppSpec, BuyerSpec, Sandbox, SandboxConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Single-thread RSA2 signatures per second over a response-sized message.
fn sign_rate(key: &PrivateKey) -> f64 {
    let message = vec![b'x'; 600];
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        key.sign(SignType::Rsa2, &message).unwrap();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

fn main() {
    let requests = env_usize("JIANLIAN_BENCH_REQUESTS", 4000);
    let clients = env_usize("JIANLIAN_BENCH_CLIENTS", 8);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let alipay_key = PrivateKey::generate_2048().unwrap();
    let per_core = sign_rate(&alipay_key);
    let ceiling = per_core * cores as f64;
    println!("cores: {cores}; clients: {clients}; requests: {requests}");
    println!("RSA-2048 sign, one core: {per_core:.0}/s; ceiling (cores × that): {ceiling:.0}/s");
    for persist in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = persist.then(|| dir.path().to_owned());
        let rate = runtime.block_on(serve(alipay_key.clone(), state_dir, requests, clients));
        let mode = if persist {
            "with --state (journal)"
        } else {
            "in memory"
        };
        println!(
            "pay requests served, {mode}: {rate:.0}/s ({:.0}% of the ceiling)",
            100.0 * rate / ceiling
        );
    }
}

/// Starts a sandbox, prepares `requests` signed pays, fires them from
/// `clients` keep-alive connections; returns requests per second.
async fn serve(
    alipay_key: PrivateKey,
    state_dir: Option<std::path::PathBuf>,
    requests: usize,
    clients: usize,
) -> f64 {
    {
        let clock = ManualClock::at_beijing("2026-03-02 10:00:00").unwrap();
        let config = SandboxConfig {
            alipay_private_key: Some(alipay_key),
            state_dir,
            ..SandboxConfig::for_tests(clock.clone())
        };
        let sandbox = Sandbox::start(config).await.unwrap();
        let key = PrivateKey::generate_2048().unwrap();
        let app = sandbox
            .create_app(AppSpec {
                app_public_key: Some(key.public_key().to_base64()),
                risk: Some(jianlian_sandbox::model::RiskRule {
                    stores_per_day_max: None,
                    terminals_per_day_max: None,
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        let client = AlipayClient::new(
            ClientConfig {
                gateway_url: sandbox.gateway_url(),
                app: AppCredentials::new(app.app_id.clone(), key.clone()),
                alipay_public_key: PublicKey::from_text(&app.alipay_public_key).unwrap(),
                alipay_cert_sn: None,
                connect_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(30),
            },
            Arc::new(clock.clone()),
        )
        .unwrap();
        let profile = MerchantProfile {
            external_id: Some("BENCH".into()),
            name: Some("bench".into()),
            alias_name: Some("bench".into()),
            service_phone: Some("021-12345678".into()),
            category_id: Some("2015050700000000".into()),
            source: Some(app.pid.clone()),
            contact_info: Some(vec![ContactInfo {
                name: "b".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let smid = client
            .execute(&IndirectCreate { profile }, &CallOptions::default())
            .await
            .unwrap()
            .success()
            .unwrap()
            .sub_merchant_id
            .unwrap();
        let buyer = sandbox
            .create_buyer(BuyerSpec {
                balance: Some(Fen::new(i64::MAX / 4)),
                ..Default::default()
            })
            .await
            .unwrap()
            .buyer_id;
        // Pre-sign every request so the measured time is the server's.
        let creds = AppCredentials::new(app.app_id.clone(), key.clone());
        let mut prepared = Vec::with_capacity(requests);
        for i in 0..requests {
            let code = sandbox.payment_code(&buyer, None).await.unwrap();
            let pay = TradePay {
                scene: Some("bar_code".into()),
                auth_code: Some(code),
                order: TradeOrder {
                    out_trade_no: format!("B{i}"),
                    total_amount: Fen::new(1234),
                    subject: "bench".into(),
                    store_id: Some("S1".into()),
                    terminal_id: Some("T1".into()),
                    sub_merchant: Some(SubMerchant::new(smid.clone())),
                    ..Default::default()
                },
                ..Default::default()
            };
            let signed =
                build_request(&creds, &pay, &CallOptions::default(), sandbox.now()).unwrap();
            let url = format!(
                "{}?{}",
                sandbox.gateway_url(),
                signed.query_string().unwrap()
            );
            prepared.push((url, signed.body().unwrap(), signed.content_type()));
        }
        let prepared = Arc::new(prepared);
        let next = Arc::new(AtomicUsize::new(0));
        let ok = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (prepared, next, ok) = (prepared.clone(), next.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((url, body, ct)) = prepared.get(i) else {
                        break;
                    };
                    let text = http
                        .post(url)
                        .header("content-type", ct)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    if text.contains("\"code\":\"10000\"") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed().as_secs_f64();
        let succeeded = ok.load(Ordering::Relaxed);
        assert_eq!(succeeded, requests, "every pay must succeed");
        sandbox.shutdown().await;
        requests as f64 / elapsed
    }
}
