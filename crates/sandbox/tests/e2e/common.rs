//! The test world: an in-process sandbox on 127.0.0.1:0 with a manual clock,
//! an app with its own key, an onboarded merchant, and `AlipayClient` as the
//! caller, with a helper per API.

use std::sync::Arc;
use std::time::Duration;

use jianlian_alipay::api::AlipayApi;
use jianlian_alipay::api::merchant::{ContactInfo, IndirectCreate, MerchantProfile};
use jianlian_alipay::api::trade::{
    SubMerchant, TradeOrder, TradePay, TradeQuery, TradeRef, TradeStatus,
};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions};
use jianlian_alipay::{Fen, ManualClock, Outcome, PrivateKey, PublicKey};
use jianlian_sandbox::{AppCreated, AppSpec, BuyerSpec, Sandbox, SandboxConfig, SandboxHandle};

pub const START: &str = "2026-03-02 10:00:00";

pub struct TestApp {
    pub sandbox: SandboxHandle,
    pub clock: ManualClock,
    pub app: AppCreated,
    pub key: PrivateKey,
    pub alipay_key: PublicKey,
    pub client: AlipayClient,
    pub smid: String,
}

pub fn app_key() -> PrivateKey {
    PrivateKey::generate_2048().unwrap()
}

pub async fn sandbox(clock: &ManualClock) -> SandboxHandle {
    Sandbox::start(SandboxConfig::for_tests(clock.clone()))
        .await
        .unwrap()
}

pub fn client_for(
    sandbox: &SandboxHandle,
    app: &AppCreated,
    key: &PrivateKey,
    clock: &ManualClock,
) -> AlipayClient {
    let config = ClientConfig {
        gateway_url: sandbox.gateway_url(),
        app: AppCredentials::new(app.app_id.clone(), key.clone()),
        alipay_public_key: PublicKey::from_text(&app.alipay_public_key).unwrap(),
        alipay_cert_sn: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    };
    AlipayClient::new(config, Arc::new(clock.clone())).unwrap()
}

pub fn profile(external_id: &str) -> MerchantProfile {
    MerchantProfile {
        external_id: Some(external_id.into()),
        name: Some("上海某某餐饮有限公司".into()),
        alias_name: Some("某某餐厅".into()),
        service_phone: Some("021-12345678".into()),
        category_id: Some("2015050700000000".into()),
        source: Some("2088000000000001".into()),
        contact_info: Some(vec![ContactInfo {
            name: "张三".into(),
            contact_type: Some("LEGAL_PERSON".into()),
            mobile: Some("13800138000".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_spec(AppSpec::default()).await
    }

    pub async fn with_spec(mut spec: AppSpec) -> TestApp {
        let clock = ManualClock::at_beijing(START).unwrap();
        let sandbox = sandbox(&clock).await;
        let key = app_key();
        spec.app_public_key = Some(key.public_key().to_pem());
        let app = sandbox.create_app(spec).await.unwrap();
        let client = client_for(&sandbox, &app, &key, &clock);
        let alipay_key = sandbox.alipay_public_key();
        let mut t = TestApp {
            sandbox,
            clock,
            app,
            key,
            alipay_key,
            client,
            smid: String::new(),
        };
        t.smid = t.onboard("M0001").await;
        t
    }

    pub async fn call<A: AlipayApi>(&self, api: &A) -> Outcome<A::Response> {
        self.client
            .execute(api, &CallOptions::default())
            .await
            .unwrap()
    }

    pub async fn call_notify<A: AlipayApi>(
        &self,
        api: &A,
        notify_url: &str,
    ) -> Outcome<A::Response> {
        let options = CallOptions {
            notify_url: Some(notify_url.to_owned()),
            ..CallOptions::default()
        };
        self.client.execute(api, &options).await.unwrap()
    }

    pub async fn onboard(&self, external_id: &str) -> String {
        let out = self
            .call(&IndirectCreate {
                profile: profile(external_id),
            })
            .await;
        out.success().unwrap().sub_merchant_id.unwrap()
    }

    pub async fn buyer(&self, spec: BuyerSpec) -> String {
        self.sandbox.create_buyer(spec).await.unwrap().buyer_id
    }

    pub async fn code(&self, buyer: &str) -> String {
        self.sandbox.payment_code(buyer, None).await.unwrap()
    }

    pub fn order(&self, out_trade_no: &str, yuan: &str) -> TradeOrder {
        TradeOrder {
            out_trade_no: out_trade_no.into(),
            total_amount: Fen::parse_yuan(yuan).unwrap(),
            subject: "测试商品".into(),
            store_id: Some("SHKFC001".into()),
            terminal_id: Some("T0001".into()),
            sub_merchant: Some(SubMerchant::new(self.smid.clone())),
            ..Default::default()
        }
    }

    pub fn pay_req(&self, out_trade_no: &str, yuan: &str, code: &str) -> TradePay {
        TradePay {
            scene: Some("bar_code".into()),
            auth_code: Some(code.into()),
            order: self.order(out_trade_no, yuan),
            ..Default::default()
        }
    }

    /// Another acquirer (a new PID) with its own app, in the same sandbox.
    pub async fn other_acquirer(&self) -> AlipayClient {
        let key = app_key();
        let spec = AppSpec {
            app_public_key: Some(key.public_key().to_pem()),
            ..Default::default()
        };
        let app = self.sandbox.create_app(spec).await.unwrap();
        assert_ne!(app.pid, self.app.pid);
        client_for(&self.sandbox, &app, &key, &self.clock)
    }

    pub async fn advance(&self, seconds: i64) {
        self.sandbox.advance(seconds).await.unwrap();
    }

    /// The trade's status as `alipay.trade.query` reports it.
    pub async fn status(&self, out_trade_no: &str) -> Option<TradeStatus> {
        let query = TradeQuery {
            trade: TradeRef::out_trade_no(out_trade_no),
            ..Default::default()
        };
        self.call(&query).await.success().unwrap().trade_status
    }

    /// The buyer's Alipay balance.
    pub async fn balance(&self, buyer: &str) -> Fen {
        self.sandbox.buyer(buyer).await.unwrap().balance
    }
}

/// The sub_code of a definite failure (panics otherwise, showing the outcome).
pub fn sub_code<T: std::fmt::Debug>(outcome: &Outcome<T>) -> String {
    match outcome {
        Outcome::Failed(f) => f.sub_code.clone().unwrap_or_default(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The sub_code of an answer the client must confirm by query (a code whose
/// action is QUERY, such as `ACQ.TRADE_HAS_SUCCESS`); panics otherwise.
pub fn query_sub_code<T: std::fmt::Debug>(outcome: &Outcome<T>) -> String {
    match outcome {
        Outcome::Unknown(jianlian_alipay::UnknownReason::Gateway { sub_code, .. }) => {
            sub_code.clone().unwrap_or_default()
        }
        other => panic!("expected an answer to confirm by query, got {other:?}"),
    }
}

pub fn yuan(text: &str) -> Fen {
    Fen::parse_yuan(text).unwrap()
}

/// A notification receiver on 127.0.0.1:0: records every body and answers
/// from a script (then `success`).
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<std::sync::Mutex<Vec<String>>>,
    pub script: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use axum::extract::State;
        type S = (
            Arc<std::sync::Mutex<Vec<String>>>,
            Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
        );
        async fn handle(State((bodies, script)): State<S>, body: String) -> String {
            bodies.lock().unwrap().push(body);
            script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| "success".into())
        }
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let app = axum::Router::new()
            .route("/notify", axum::routing::post(handle))
            .with_state((bodies.clone(), script.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/notify"),
            bodies,
            script,
        }
    }

    pub fn answer(&self, answers: &[&str]) {
        let mut s = self.script.lock().unwrap();
        for a in answers {
            s.push_back((*a).to_owned());
        }
    }

    /// Every notification received, parsed and verified with Alipay's key.
    pub fn received(&self, alipay_key: &PublicKey) -> Vec<jianlian_alipay::notify::Notification> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                let n = jianlian_alipay::notify::Notification::parse(b.as_bytes()).unwrap();
                n.verify(alipay_key, None).expect("notification signature");
                n
            })
            .collect()
    }
}
