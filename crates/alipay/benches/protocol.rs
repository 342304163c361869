//! Criterion benchmarks of the protocol's five hot paths, on the payloads and
//! keys of the worked examples (protocol.md §2.4, §5, §6.3), so that
//! `bench/protocol.sh` can compare them with the official SDKs on the very same
//! bytes. Each input is checked once before it is timed, so a benchmark can
//! never measure a failure path.
//!
//! Time is wall-clock time, or with `JIANLIAN_BENCH_CLOCK=cpu` the CPU time of
//! the benchmarking thread: on a machine shared with other work, that keeps the
//! other work out of the figures (`bench/protocol.sh` uses it, and measures the
//! SDKs and `openssl speed` in CPU time too).

// A benchmark has nowhere to report a broken fixture but a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use jianlian_alipay::api::trade::{TradeOrder, TradePay, TradePayResponse};
use jianlian_alipay::notify::Notification;
use jianlian_alipay::request::{AppCredentials, CallOptions, build_request};
use jianlian_alipay::response::{Outcome, ResponseCheck, classify, verify_response};
use jianlian_alipay::server::{RawRequest, ResponseSigning, write_response};
use jianlian_alipay::time::parse_beijing;
use jianlian_alipay::{Fen, IncomingRequest, PrivateKey, PublicKey, SignType};

/// The clock the benches read: wall-clock, or the thread's CPU time.
struct BenchClock {
    thread_cpu: bool,
    origin: Instant,
}

impl BenchClock {
    fn from_env() -> BenchClock {
        BenchClock {
            thread_cpu: std::env::var("JIANLIAN_BENCH_CLOCK").is_ok_and(|v| v == "cpu"),
            origin: Instant::now(),
        }
    }

    fn now(&self) -> Duration {
        if self.thread_cpu {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            Duration::new(
                u64::try_from(t.tv_sec).expect("a CPU time is not negative"),
                u32::try_from(t.tv_nsec).expect("nanoseconds fit"),
            )
        } else {
            self.origin.elapsed()
        }
    }
}

impl Measurement for BenchClock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }
    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_secs_f64() * 1e9
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn worked_example(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/worked-examples")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn private_key(rel: &str) -> PrivateKey {
    PrivateKey::from_text(&worked_example(rel)).expect("a private key")
}

fn public_key(rel: &str) -> PublicKey {
    PublicKey::from_text(&worked_example(rel)).expect("a public key")
}

/// The body of the captured response (after the blank line of the HTTP text).
fn canonical_response_body() -> String {
    let http = worked_example("canonical_response_http.txt");
    let (_, body) = http
        .split_once("\r\n\r\n")
        .or_else(|| http.split_once("\n\n"))
        .expect("headers, then a body");
    body.to_owned()
}

/// The pay request of protocol.md §2.4: what a cashier sends after scanning.
fn typical_pay() -> (AppCredentials, TradePay, CallOptions) {
    let app = AppCredentials::new("2021000000000001", private_key("keys/app_pkcs1.pem"));
    let pay = TradePay {
        scene: Some("bar_code".into()),
        auth_code: Some("28763443825664394".into()),
        order: TradeOrder {
            out_trade_no: "T20240513000001".into(),
            total_amount: Fen::parse_yuan("88.88").expect("an amount"),
            subject: "测试商品 A&B=C/ok".into(),
            ..TradeOrder::default()
        },
        ..TradePay::default()
    };
    let options = CallOptions {
        notify_url: Some("https://merchant.example.com/alipay/notify".into()),
        ..CallOptions::default()
    };
    (app, pay, options)
}

fn build_and_sign_request(c: &mut Criterion<BenchClock>) {
    let (app, pay, options) = typical_pay();
    let now = parse_beijing("2024-05-13 17:49:20").expect("a timestamp");
    let build = || {
        let request = build_request(&app, &pay, &options, now).expect("builds");
        let wire = (
            request.query_string().expect("encodes"),
            request.body().expect("encodes"),
        );
        (request, wire)
    };
    let (request, _) = build();
    let app_public = public_key("keys/app_pub.pem");
    let authenticated = IncomingRequest::from_params(request.params.clone())
        .expect("decodes")
        .authenticate(|_| Some(app_public.clone()));
    assert!(authenticated.is_ok(), "the built request verifies");
    c.bench_function("build_and_sign_request", |b| b.iter(|| black_box(build())));
}

fn verify_request(c: &mut Criterion<BenchClock>) {
    let record: serde_json::Value =
        serde_json::from_str(&worked_example("canonical_request.json")).expect("JSON");
    let target = record["raw_path"].as_str().expect("raw_path").to_owned();
    let body = record["raw_body"].as_str().expect("raw_body").to_owned();
    let app_public = public_key("keys/app_pub.pem");
    let check = || {
        let raw = RawRequest {
            http_method: "POST",
            target: &target,
            content_type: Some("application/x-www-form-urlencoded;charset=UTF-8"),
            body: body.as_bytes(),
        };
        IncomingRequest::parse(raw)
            .and_then(|request| request.authenticate(|_| Some(app_public.clone())))
    };
    assert!(check().is_ok(), "the captured request verifies");
    c.bench_function("verify_request", |b| b.iter(|| black_box(check())));
}

fn sign_response(c: &mut Criterion<BenchClock>) {
    let body = canonical_response_body();
    let (_, after_key) = body
        .split_once("\"alipay_trade_pay_response\":")
        .expect("a pay response");
    let (node, _) = after_key
        .rsplit_once(",\"sign\"")
        .expect("a signed response");
    let alipay_key = private_key("keys/alipay_pkcs1.pem");
    let write = || {
        write_response(
            "alipay_trade_pay_response",
            node,
            Some(ResponseSigning {
                key: &alipay_key,
                sign_type: SignType::Rsa2,
                cert_sn: None,
                aes: None,
            }),
        )
    };
    assert_eq!(write(), body.trim_end(), "reproduces the captured response");
    c.bench_function("sign_response", |b| b.iter(|| black_box(write())));
}

fn verify_and_classify_response(c: &mut Criterion<BenchClock>) {
    let body = canonical_response_body();
    let alipay_public = public_key("keys/alipay_pub.pem");
    let check = || {
        classify::<TradePayResponse>(verify_response(
            &body,
            "alipay.trade.pay",
            ResponseCheck::new(&alipay_public, SignType::Rsa2),
        ))
    };
    assert!(
        matches!(check(), Outcome::Success(_)),
        "the captured response verifies"
    );
    c.bench_function("verify_response", |b| b.iter(|| black_box(check())));
}

fn verify_notification(c: &mut Criterion<BenchClock>) {
    let body = worked_example("notify_body.txt");
    let body = body.trim_end_matches(['\r', '\n']);
    let alipay_public = public_key("keys/alipay_pub.pem");
    let check = || {
        Notification::parse(body.as_bytes()).map(|n| n.verify(&alipay_public, Some(SignType::Rsa2)))
    };
    assert!(
        matches!(check(), Ok(Ok(_))),
        "the captured notification verifies"
    );
    c.bench_function("verify_notification", |b| b.iter(|| black_box(check())));
}

criterion_group! {
    name = protocol;
    config = Criterion::default().with_measurement(BenchClock::from_env());
    targets = build_and_sign_request,
        verify_request,
        sign_response,
        verify_and_classify_response,
        verify_notification
}
criterion_main!(protocol);
