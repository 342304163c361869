//! The test world: the sandbox (playing Alipay) and the gateway in one
//! process on 127.0.0.1:0 with one shared manual clock, the acquirer's app at
//! the sandbox, a channel with its own key calling the gateway through the
//! protocol crate's client, a buyer, and a receiver for the gateway's
//! notifications. Time moves only through [`World::advance`], which runs the
//! sandbox's and the gateway's due work; nothing sleeps.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use jianlian_alipay::api::merchant::{ContactInfo, IndirectCreate, MerchantProfile};
use jianlian_alipay::api::trade::{SubMerchant, TradeOrder, TradePay, TradePayResponse};
use jianlian_alipay::api::{AlipayApi, ApiParams};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::notify::Notification;
use jianlian_alipay::request::{AppCredentials, CallOptions};
use jianlian_alipay::{Clock as _, Fen, ManualClock, Outcome, PrivateKey, PublicKey, SignType};
use jianlian_core::closed_loop::LoopPolicy;
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, Pid};
use jianlian_core::notify::{AddressPolicy, RetrySchedule};
use jianlian_gateway::config::{Settings, UpstreamSettings, WorkerSettings};
use jianlian_gateway::ops::{NewChannel, create_channel};
use jianlian_gateway::{Application, Running};
use jianlian_sandbox::{AppCreated, AppSpec, BuyerSpec, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::Value;
use sqlx::Connection as _;

pub const START: &str = "2026-03-02 10:00:00";
pub const POSTGRES_URL_VAR: &str = "JIANLIAN_TEST_POSTGRES_URL";

/// A database for one test.
#[derive(Debug, Clone)]
pub struct Db {
    pub url: String,
}

/// Runs `body` on a fresh SQLite file.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    body(Db { url }).await;
}

/// Runs `body` in a new PostgreSQL schema, dropped afterwards even when the
/// body panics. Without `JIANLIAN_TEST_POSTGRES_URL` it says so loudly and
/// does nothing, except under CI, where that is a failure.
pub async fn on_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{POSTGRES_URL_VAR} must be set under CI: the PostgreSQL run of `{test}` cannot be skipped"
        );
        eprintln!(
            "\n!!! {POSTGRES_URL_VAR} is not set: the PostgreSQL run of `{test}` did NOT run.\n"
        );
        return;
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let schema = format!(
        "jl_gw_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    let outcome = tokio::spawn(body(Db { url })).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// What the notification receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Success,
    Fail,
}

/// A channel's notification endpoint: records every delivery and answers
/// from a script (then `success`).
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    pub received: Arc<Mutex<Vec<Notification>>>,
    pub script: Arc<Mutex<VecDeque<Answer>>>,
    pub url: String,
}

async fn receive(State(r): State<Receiver>, body: axum::body::Bytes) -> &'static str {
    let n = Notification::parse(&body).unwrap();
    r.received.lock().unwrap().push(n);
    match r.script.lock().unwrap().pop_front() {
        Some(Answer::Fail) => "fail",
        Some(Answer::Success) | None => "success",
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            url: format!("http://{addr}/notify"),
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .route("/notify", post(receive))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn all(&self) -> Vec<Notification> {
        self.received.lock().unwrap().clone()
    }

    pub fn answer_next(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }
}

/// A channel calling the gateway with its own key.
#[derive(Debug, Clone)]
pub struct TestChannel {
    pub app_id: String,
    pub pid: String,
    pub key: PrivateKey,
    pub client: AlipayClient,
}

impl TestChannel {
    pub async fn call<A: AlipayApi>(&self, api: &A) -> Outcome<A::Response> {
        self.client
            .execute(api, &CallOptions::default())
            .await
            .unwrap()
    }

    pub async fn call_notify<A: AlipayApi>(&self, api: &A, url: &str) -> Outcome<A::Response> {
        let options = CallOptions {
            notify_url: Some(url.to_owned()),
            ..CallOptions::default()
        };
        self.client.execute(api, &options).await.unwrap()
    }

    /// A method by name with a JSON biz_content.
    pub async fn raw(&self, method: &str, biz: Value) -> Outcome<Value> {
        let params = ApiParams {
            biz_content: Some(biz.to_string()),
            extra: Vec::new(),
        };
        self.client
            .execute_raw(method, params, &CallOptions::default())
            .await
            .unwrap()
    }
}

/// The world of one test.
pub struct World {
    pub clock: ManualClock,
    pub sandbox: SandboxHandle,
    pub acquirer: AppCreated,
    /// The acquirer app's private key (the gateway signs upstream with it);
    /// `tests/logs.rs` proves it never reaches the logs.
    #[allow(dead_code)]
    pub acquirer_key: PrivateKey,
    /// Alipay's (the sandbox's) private key, to forge notifications with.
    pub alipay_key: PrivateKey,
    pub gateway_key: PrivateKey,
    pub gateway: Running,
    pub channel: TestChannel,
    pub receiver: Receiver,
    pub buyer: String,
}

pub fn test_settings(
    db: &Db,
    sandbox: &SandboxHandle,
    acquirer: &AppCreated,
    acquirer_key: &PrivateKey,
    gateway_key: &PrivateKey,
) -> Settings {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    Settings {
        listen,
        public_url: format!("http://{listen}"),
        database_url: db.url.clone(),
        sqlite_synchronous: jianlian_store::SqliteSynchronous::Full,
        data_dir: std::env::temp_dir(),
        gateway_key: gateway_key.clone(),
        upstream: UpstreamSettings {
            gateway_url: sandbox.gateway_url(),
            app_id: acquirer.app_id.clone(),
            pid: Pid::parse(&acquirer.pid).unwrap(),
            private_key: acquirer_key.clone(),
            alipay_public_key: PublicKey::from_text(&acquirer.alipay_public_key).unwrap(),
            cert_sns: None,
            alipay_cert_sn: None,
            app_auth_token: None,
            sign_type: SignType::Rsa2,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            notify_url: format!("http://{listen}/notify/alipay"),
        },
        loop_policy: LoopPolicy::default(),
        retry_schedule: RetrySchedule::default(),
        address_policy: AddressPolicy {
            allow_loopback: true,
            allow_private: false,
        },
        notify_timeout: Duration::from_secs(5),
        default_fees: FeePolicy::flat(jianlian_alipay::Rate::parse("0.006").unwrap()),
        payment_code: jianlian_alipay::PaymentCodeRule::default(),
        worker: WorkerSettings {
            enabled: false,
            tick: Duration::from_millis(500),
            batch_max: 64,
            concurrency_max: 8,
            lease: jiff::SignedDuration::from_secs(60),
        },
        timestamp_skew_max: Some(jiff::SignedDuration::from_mins(15)),
        admin_token: Some("test-admin-token-0123456789".into()),
    }
}

pub fn yuan(text: &str) -> Fen {
    Fen::parse_yuan(text).unwrap()
}

pub fn profile(external_id: &str, licence: &str) -> MerchantProfile {
    MerchantProfile {
        external_id: Some(external_id.into()),
        name: Some(format!("上海{external_id}餐饮有限公司")),
        alias_name: Some(format!("{external_id}餐厅")),
        service_phone: Some("021-12345678".into()),
        category_id: Some("2015050700000000".into()),
        business_license: Some(licence.into()),
        contact_info: Some(vec![ContactInfo {
            name: "张三".into(),
            contact_type: Some("LEGAL_PERSON".into()),
            mobile: Some("13800138000".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

pub fn sub_code<T: std::fmt::Debug>(o: &Outcome<T>) -> String {
    match o {
        Outcome::Failed(f) => f.sub_code.clone().unwrap_or_default(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub fn failure_msg<T: std::fmt::Debug>(o: &Outcome<T>) -> String {
    match o {
        Outcome::Failed(f) => f.sub_msg.clone().unwrap_or_default(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

impl World {
    pub async fn new(db: Db) -> World {
        World::with(db, AppSpec::default(), |_| {}).await
    }

    /// A world whose acquirer app and gateway settings are adjusted.
    pub async fn with(db: Db, mut spec: AppSpec, tune: impl FnOnce(&mut Settings)) -> World {
        let clock = ManualClock::at_beijing(START).unwrap();
        let alipay_key = PrivateKey::generate_2048().unwrap();
        let sandbox = Sandbox::start(SandboxConfig {
            alipay_private_key: Some(alipay_key.clone()),
            ..SandboxConfig::for_tests(clock.clone())
        })
        .await
        .unwrap();
        let acquirer_key = PrivateKey::generate_2048().unwrap();
        spec.app_public_key = Some(acquirer_key.public_key().to_pem());
        let acquirer = sandbox.create_app(spec).await.unwrap();
        let gateway_key = PrivateKey::generate_2048().unwrap();
        let mut settings = test_settings(&db, &sandbox, &acquirer, &acquirer_key, &gateway_key);
        tune(&mut settings);
        let gateway = Application::build(settings, Arc::new(clock.clone()))
            .await
            .unwrap()
            .spawn(false);
        let receiver = Receiver::start().await;
        let buyer = sandbox
            .create_buyer(BuyerSpec {
                balance: Some(yuan("100000.00")),
                ..BuyerSpec::default()
            })
            .await
            .unwrap()
            .buyer_id;
        let mut w = World {
            clock,
            sandbox,
            acquirer,
            acquirer_key,
            alipay_key,
            gateway_key,
            gateway,
            channel: placeholder_channel(),
            receiver,
            buyer,
        };
        w.channel = w.new_channel("渠道甲", "2088000000000101", None).await;
        w
    }

    pub fn clock_now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    pub fn settings(&self) -> Settings {
        self.gateway.service().settings.clone()
    }

    /// Registers a channel (as the CLI does) and gives it a client.
    pub async fn new_channel(&self, name: &str, pid: &str, parent: Option<&str>) -> TestChannel {
        let key = PrivateKey::generate_2048().unwrap();
        let channel = create_channel(
            &self.gateway.service().store,
            NewChannel {
                name: name.into(),
                pid: Pid::parse(pid).unwrap(),
                public_key: key.public_key().to_pem(),
                parent: parent.map(|p| AppId::parse(p).unwrap()),
                notify_hosts: vec![],
            },
            self.clock.now(),
        )
        .await
        .unwrap();
        self.client_for(channel.app_id.as_str(), pid, key)
    }

    pub fn client_for(&self, app_id: &str, pid: &str, key: PrivateKey) -> TestChannel {
        let config = ClientConfig {
            gateway_url: format!("{}/gateway.do", self.gateway.base_url()),
            app: AppCredentials::new(app_id.to_owned(), key.clone()),
            alipay_public_key: self.gateway_key.public_key().clone(),
            alipay_cert_sn: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
        };
        TestChannel {
            app_id: app_id.to_owned(),
            pid: pid.to_owned(),
            key,
            client: AlipayClient::new(config, Arc::new(self.clock.clone())).unwrap(),
        }
    }

    /// Onboards a merchant through the channel API and registers store
    /// `S1` with terminal `T1`; returns the smid.
    pub async fn onboard(&self, channel: &TestChannel, external_id: &str, licence: &str) -> String {
        let out = channel
            .call(&IndirectCreate {
                profile: profile(external_id, licence),
            })
            .await;
        let smid = match out {
            Outcome::Success(r) => r.body.sub_merchant_id.unwrap(),
            other => panic!("onboarding failed: {other:?}"),
        };
        let store = channel
            .raw(
                "jianlian.merchant.store.create",
                serde_json::json!({"sub_merchant_id": smid, "store_id": "S1", "name": "一号店", "terminal_ids": ["T1"]}),
            )
            .await;
        assert!(store.is_success(), "{store:?}");
        smid
    }

    pub async fn code(&self) -> String {
        self.code_for(&self.buyer).await
    }

    pub async fn code_for(&self, buyer: &str) -> String {
        self.sandbox.payment_code(buyer, None).await.unwrap()
    }

    pub fn pay_req(&self, smid: &str, otn: &str, amount: &str, code: &str) -> TradePay {
        TradePay {
            scene: Some("bar_code".into()),
            auth_code: Some(code.into()),
            order: TradeOrder {
                out_trade_no: otn.into(),
                total_amount: yuan(amount),
                subject: "咖啡".into(),
                store_id: Some("S1".into()),
                terminal_id: Some("T1".into()),
                sub_merchant: Some(SubMerchant::new(smid)),
                ..TradeOrder::default()
            },
            ..TradePay::default()
        }
    }

    /// A barcode pay by the world's buyer with a fresh code.
    pub async fn pay(
        &self,
        channel: &TestChannel,
        smid: &str,
        otn: &str,
        amount: &str,
    ) -> Outcome<TradePayResponse> {
        let code = self.code().await;
        channel
            .call_notify(&self.pay_req(smid, otn, amount, &code), &self.receiver.url)
            .await
    }

    /// Adds a sandbox fault rule for `method` (and `amount` when given).
    pub async fn fault(
        &self,
        method: &str,
        amount: Option<&str>,
        action: jianlian_sandbox::FaultAction,
        times: Option<u32>,
    ) {
        self.sandbox
            .add_fault(jianlian_sandbox::FaultRule {
                id: 0,
                method: Some(method.into()),
                out_trade_no: None,
                amount: amount.map(yuan),
                action,
                times,
            })
            .await
            .unwrap();
    }

    /// Moves the shared clock, then runs the due work of both sides until
    /// neither has more (bounded).
    pub async fn advance(&self, seconds: i64) {
        self.sandbox.advance(seconds).await.unwrap();
        self.settle().await;
    }

    /// Runs what is due now on both sides until nothing more is (bounded).
    pub async fn settle(&self) {
        for _ in 0..10 {
            self.sandbox.run_due().await.unwrap();
            let report = self.gateway.run_due().await.unwrap();
            self.sandbox.run_due().await.unwrap();
            if report.claimed == 0 {
                return;
            }
        }
    }

    /// The trade as the gateway keeps it.
    pub async fn trade(&self, channel: &TestChannel, otn: &str) -> jianlian_core::trade::Trade {
        self.gateway
            .service()
            .store
            .trade_by_channel_order(
                &AppId::parse(&channel.app_id).unwrap(),
                &jianlian_core::ids::ChannelOrderNo::parse(otn).unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
    }

    /// The trade as Alipay (the sandbox) keeps it.
    pub async fn upstream_trade(
        &self,
        trade: &jianlian_core::trade::Trade,
    ) -> Option<jianlian_sandbox::model::Trade> {
        self.sandbox
            .trade_by_out_trade_no(&self.acquirer.pid, trade.upstream_order_no.as_str())
            .await
    }

    /// Row counts of every business table (to prove a refusal wrote nothing).
    pub async fn rows(&self) -> Vec<(&'static str, i64)> {
        self.gateway.service().store.row_counts().await.unwrap()
    }

    /// Restarts the gateway on the same database (the old one is dropped).
    pub async fn restart(&mut self) {
        let settings = self.settings();
        let mut fresh = settings.clone();
        fresh.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        fresh.public_url = format!("http://{}", fresh.listen);
        fresh.upstream.notify_url = format!("http://{}/notify/alipay", fresh.listen);
        let old = std::mem::replace(
            &mut self.gateway,
            Application::build(fresh, Arc::new(self.clock.clone()))
                .await
                .unwrap()
                .spawn(false),
        );
        drop(old);
        let key = self.channel.key.clone();
        self.channel =
            self.client_for(&self.channel.app_id.clone(), &self.channel.pid.clone(), key);
    }
}

fn placeholder_channel() -> TestChannel {
    let key = PrivateKey::generate_2048().unwrap();
    let config = ClientConfig {
        gateway_url: "http://127.0.0.1:9/gateway.do".into(),
        app: AppCredentials::new("0", key.clone()),
        alipay_public_key: key.public_key().clone(),
        alipay_cert_sn: None,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
    };
    TestChannel {
        app_id: String::new(),
        pid: String::new(),
        key,
        client: AlipayClient::new(config, Arc::new(ManualClock::at_beijing(START).unwrap()))
            .unwrap(),
    }
}

/// Declares an end-to-end test run on SQLite (`name::sqlite`) and, with
/// `pg`, on PostgreSQL too (`name::postgres`).
#[macro_export]
macro_rules! e2e {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::on_sqlite(super::$name).await;
            }
        }
    };
    ($name:ident, pg) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::on_sqlite(super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::common::on_postgres(stringify!($name), super::$name).await;
            }
        }
    };
}
