//! `jianlian demo`: a scripted business day of an acquirer, on virtual time,
//! against the embedded sandbox: merchants onboarded through the channel API,
//! barcode payments (instant, the password case `10003`, an unknown answer
//! after a timeout, a failure), QR precreate paid by scan with notifications,
//! refunds (partial, full, refused for the merchant's balance). It prints a
//! summary and checks the invariants: every journal balances, no trade is
//! left open, the gateway's books agree with Alipay's ledger, every
//! notification was delivered. It exits 1 if one fails.
//!
//! Everything runs in this process on 127.0.0.1 with a manual clock; the
//! database goes to a temporary directory that is removed at exit, unless
//! `--data-dir` keeps it (then the demo says what it wrote).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use jianlian_alipay::api::merchant::{ContactInfo, IndirectCreate, MerchantProfile};
use jianlian_alipay::api::trade::{
    SubMerchant, TradeOrder, TradePay, TradePrecreate, TradeRef, TradeRefund,
};
use jianlian_alipay::api::{AlipayApi, ApiParams};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions};
use jianlian_alipay::{
    Fen, ManualClock, Outcome, PaymentCodeRule, PrivateKey, PublicKey, Rate, SignType,
};
use jianlian_core::closed_loop::LoopPolicy;
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, Pid};
use jianlian_core::ledger::{Account, TrialBalance};
use jianlian_core::notify::{AddressPolicy, OutboxStatus, RetrySchedule};
use jianlian_gateway::config::{Settings, UpstreamSettings, WorkerSettings};
use jianlian_gateway::ops::{self, NewChannel};
use jianlian_gateway::{Application, Running};
use jianlian_sandbox::model::LedgerKind;
use jianlian_sandbox::{
    AppSpec, BuyerSpec, FaultAction, FaultRule, Sandbox, SandboxConfig, SandboxHandle,
};
use jianlian_store::StoreError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the demo's database in DIR (must not hold one already); by
    /// default a temporary directory is used and removed.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// The business day starts Monday 2 March 2026, 09:00 Beijing time.
const START: &str = "2026-03-02 09:00:00";
const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

struct Day {
    clock: ManualClock,
    sandbox: SandboxHandle,
    gateway: Running,
    channel: AlipayClient,
    notify_url: String,
    delivered: Arc<AtomicUsize>,
    acquirer_app_id: String,
    channel_app_id: String,
}

fn yuan(text: &str) -> anyhow::Result<Fen> {
    Fen::parse_yuan(text).with_context(|| format!("amount {text}"))
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

impl Day {
    fn now_text(&self) -> String {
        jianlian_alipay::time::format_beijing(jianlian_alipay::Clock::now(&self.clock))
    }

    async fn call<A: AlipayApi>(
        &self,
        api: &A,
        notify: bool,
    ) -> anyhow::Result<Outcome<A::Response>> {
        let options = CallOptions {
            notify_url: notify.then(|| self.notify_url.clone()),
            ..CallOptions::default()
        };
        Ok(self.channel.execute(api, &options).await?)
    }

    /// Moves virtual time; both sides run what became due.
    async fn advance(&self, seconds: i64) -> anyhow::Result<()> {
        self.sandbox.advance(seconds).await?;
        self.settle().await
    }

    async fn settle(&self) -> anyhow::Result<()> {
        for _ in 0..20 {
            self.sandbox.run_due().await?;
            let report = self.gateway.run_due().await?;
            self.sandbox.run_due().await?;
            if report.claimed == 0 {
                break;
            }
        }
        Ok(())
    }

    async fn onboard(
        &self,
        external_id: &str,
        name: &str,
        licence: &str,
    ) -> anyhow::Result<String> {
        let profile = MerchantProfile {
            external_id: Some(external_id.into()),
            name: Some(name.into()),
            alias_name: Some(name.chars().take(8).collect()),
            service_phone: Some("021-55556666".into()),
            category_id: Some("2015050700000000".into()),
            business_license: Some(licence.into()),
            contact_info: Some(vec![ContactInfo {
                name: "王五".into(),
                contact_type: Some("LEGAL_PERSON".into()),
                mobile: Some("13900139000".into()),
                ..ContactInfo::default()
            }]),
            ..MerchantProfile::default()
        };
        let smid = match self.call(&IndirectCreate { profile }, false).await? {
            Outcome::Success(r) => r.body.sub_merchant_id.context("no sub_merchant_id")?,
            other => bail!("onboarding {external_id} failed: {other:?}"),
        };
        let params = ApiParams {
            biz_content: Some(
                serde_json::json!({"sub_merchant_id": smid, "store_id": "S1", "name": format!("{name} 一号店"), "terminal_ids": ["POS1"]})
                    .to_string(),
            ),
            extra: Vec::new(),
        };
        let store: Outcome<serde_json::Value> = self
            .channel
            .execute_raw(
                "jianlian.merchant.store.create",
                params,
                &CallOptions::default(),
            )
            .await?;
        if !store.is_success() {
            bail!("registering the store of {external_id} failed: {store:?}");
        }
        say(&format!(
            "  {}  onboarded {name}: smid {smid}, store S1, terminal POS1",
            self.now_text()
        ));
        Ok(smid)
    }

    fn order(smid: &str, otn: &str, amount: Fen, subject: &str) -> TradeOrder {
        TradeOrder {
            out_trade_no: otn.into(),
            total_amount: amount,
            subject: subject.into(),
            store_id: Some("S1".into()),
            terminal_id: Some("POS1".into()),
            sub_merchant: Some(SubMerchant::new(smid)),
            ..TradeOrder::default()
        }
    }

    async fn pay(
        &self,
        buyer: &str,
        smid: &str,
        otn: &str,
        amount: &str,
        subject: &str,
    ) -> anyhow::Result<String> {
        let code = self.sandbox.payment_code(buyer, None).await?;
        let req = TradePay {
            scene: Some("bar_code".into()),
            auth_code: Some(code),
            order: Day::order(smid, otn, yuan(amount)?, subject),
            ..TradePay::default()
        };
        let outcome = self.call(&req, true).await?;
        let (what, trade_no) = match &outcome {
            Outcome::Success(r) => ("10000 paid".to_owned(), r.body.trade_no.clone()),
            Outcome::InProgress(r) => (
                "10003 in progress (the terminal will query)".to_owned(),
                r.body.trade_no.clone(),
            ),
            Outcome::Failed(f) => (
                format!(
                    "{} {} {}",
                    f.code,
                    f.sub_code.as_deref().unwrap_or_default(),
                    f.sub_msg.as_deref().unwrap_or_default()
                ),
                None,
            ),
            Outcome::Unknown(u) => (format!("unknown: {u}"), None),
        };
        say(&format!(
            "  {}  pay {otn} {amount:>8} → {what}",
            self.now_text()
        ));
        Ok(trade_no.unwrap_or_default())
    }

    async fn refund(&self, otn: &str, amount: &str, request: &str) -> anyhow::Result<bool> {
        let req = TradeRefund {
            trade: TradeRef::out_trade_no(otn),
            refund_amount: yuan(amount)?,
            out_request_no: Some(request.into()),
            refund_reason: Some("demo".into()),
            ..TradeRefund::default()
        };
        let outcome = self.call(&req, false).await?;
        let (ok, what) = match &outcome {
            Outcome::Success(r) => (
                true,
                format!(
                    "refunded (fund_change {}, refunded so far {})",
                    if r.body.fund_change == Some(jianlian_alipay::api::trade::YesNo::Y) {
                        "Y"
                    } else {
                        "N"
                    },
                    r.body.refund_fee.map(Fen::to_yuan).unwrap_or_default()
                ),
            ),
            Outcome::Failed(f) => (
                false,
                format!(
                    "refused: {} {}",
                    f.sub_code.as_deref().unwrap_or_default(),
                    f.sub_msg.as_deref().unwrap_or_default()
                ),
            ),
            other => (false, format!("{other:?}")),
        };
        say(&format!(
            "  {}  refund {otn} {amount:>8} ({request}) → {what}",
            self.now_text()
        ));
        Ok(ok)
    }
}

async fn receiver(delivered: Arc<AtomicUsize>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(LOCAL).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move || {
            let delivered = delivered.clone();
            async move {
                delivered.fetch_add(1, Ordering::SeqCst);
                "success"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/notify"))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("JIANLIAN_LOG")
                .ok()
                .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
                .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary directory")?),
    };
    let dir = match (&args.data_dir, &temp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => bail!("no directory"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db_file = dir.join("demo.db");
    if db_file.exists() {
        bail!(
            "{} exists: the demo starts from an empty database; choose another --data-dir",
            db_file.display()
        );
    }
    let ok = business_day(&format!("sqlite://{}", db_file.display())).await?;
    match &args.data_dir {
        Some(_) => say(&format!(
            "\nWrote {} (and its -wal/-shm files while open).",
            db_file.display()
        )),
        None => say(
            "\nThe demo's database was in a temporary directory, now removed: nothing was left behind.",
        ),
    }
    drop(temp);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the day; `Ok(true)` when every invariant holds.
async fn business_day(database_url: &str) -> anyhow::Result<bool> {
    let clock = ManualClock::at_beijing(START)?;
    let sandbox = Sandbox::start(SandboxConfig {
        listen: LOCAL,
        ..SandboxConfig::for_tests(clock.clone())
    })
    .await?;
    let acquirer_key = PrivateKey::generate_2048()?;
    let app = sandbox
        .create_app(AppSpec {
            app_public_key: Some(acquirer_key.public_key().to_pem()),
            name: Some("demo bank".into()),
            ..AppSpec::default()
        })
        .await?;
    let gateway_key = PrivateKey::generate_2048()?;
    let settings = Settings {
        listen: LOCAL,
        public_url: format!("http://{LOCAL}"),
        database_url: database_url.to_owned(),
        // A throwaway database: no sync per commit.
        sqlite_synchronous: jianlian_store::SqliteSynchronous::Normal,
        data_dir: std::env::temp_dir(),
        gateway_key: gateway_key.clone(),
        upstream: UpstreamSettings {
            gateway_url: sandbox.gateway_url(),
            app_id: app.app_id.clone(),
            pid: Pid::parse(&app.pid)?,
            private_key: acquirer_key,
            alipay_public_key: PublicKey::from_text(&app.alipay_public_key)?,
            cert_sns: None,
            alipay_cert_sn: None,
            app_auth_token: None,
            sign_type: SignType::Rsa2,
            connect_timeout: Duration::from_secs(2),
            // Short, so the "unknown after a timeout" case costs under a second.
            read_timeout: Duration::from_millis(400),
            notify_url: format!("http://{LOCAL}/notify/alipay"),
        },
        loop_policy: LoopPolicy::default(),
        retry_schedule: RetrySchedule::default(),
        address_policy: AddressPolicy {
            allow_loopback: true,
            allow_private: false,
        },
        notify_timeout: Duration::from_secs(5),
        default_fees: FeePolicy::flat(Rate::parse("0.0038")?),
        payment_code: PaymentCodeRule::default(),
        worker: WorkerSettings {
            enabled: false,
            tick: Duration::from_millis(500),
            batch_max: 64,
            concurrency_max: 8,
            lease: jiff::SignedDuration::from_secs(60),
        },
        timestamp_skew_max: Some(jiff::SignedDuration::from_mins(15)),
        admin_token: None,
    };
    let gateway = Application::build(settings, Arc::new(clock.clone()))
        .await?
        .spawn(false);
    let svc = gateway.service().clone();
    let channel_key = PrivateKey::generate_2048()?;
    let channel = ops::create_channel(
        &svc.store,
        NewChannel {
            name: "Demo ISV".into(),
            pid: Pid::parse("2088000000000099")?,
            public_key: channel_key.public_key().to_pem(),
            parent: None,
            notify_hosts: vec![],
        },
        jianlian_alipay::Clock::now(&clock),
    )
    .await?;
    let client = AlipayClient::new(
        ClientConfig {
            gateway_url: format!("{}/gateway.do", gateway.base_url()),
            app: AppCredentials::new(channel.app_id.to_string(), channel_key),
            alipay_public_key: gateway_key.public_key().clone(),
            alipay_cert_sn: None,
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(30),
        },
        Arc::new(clock.clone()),
    )?;
    let delivered = Arc::new(AtomicUsize::new(0));
    let notify_url = receiver(delivered.clone()).await?;
    let day = Day {
        clock,
        sandbox,
        gateway,
        channel: client,
        notify_url,
        delivered,
        acquirer_app_id: app.app_id.clone(),
        channel_app_id: channel.app_id.to_string(),
    };
    say(&format!(
        "jianlian demo — one business day of an acquirer, on virtual time\n\
         gateway {} · sandbox {} · channel app_id {}\n",
        day.gateway.base_url(),
        day.sandbox.gateway_url(),
        channel.app_id
    ));
    script(&day).await?;
    summary(&day).await
}

async fn buyer(day: &Day, spec: BuyerSpec) -> anyhow::Result<String> {
    Ok(day.sandbox.create_buyer(spec).await?.buyer_id)
}

async fn script(day: &Day) -> anyhow::Result<()> {
    say("Onboarding (ant.merchant.expand.indirect.create + jianlian.merchant.store.create)");
    let cafe = day
        .onboard("M-CAFE", "上海光明咖啡有限公司", "91310000MA1CAFE001")
        .await?;
    let noodle = day
        .onboard("M-NOODLE", "上海老街面馆有限公司", "91310000MA1NOOD002")
        .await?;
    let bakery = day
        .onboard("M-BAKERY", "上海麦香烘焙有限公司", "91310000MA1BAKE003")
        .await?;
    ops::set_fees(
        &day.gateway.service().store,
        &bakery,
        "0.0038",
        Some("0.006"),
        jianlian_alipay::Clock::now(&day.clock),
    )
    .await?;
    say("  (the bakery pays 0.60 % on credit funding, 0.38 % otherwise)");
    let big = Fen::new(1_000_000);
    let alice = buyer(
        day,
        BuyerSpec {
            balance: Some(big),
            name: Some("Alice".into()),
            ..BuyerSpec::default()
        },
    )
    .await?;
    let bob = buyer(
        day,
        BuyerSpec {
            huabei_limit: Some(big),
            pay_with: Some("huabei".into()),
            ..BuyerSpec::default()
        },
    )
    .await?;
    let carol = buyer(
        day,
        BuyerSpec {
            balance: Some(big),
            requires_password: Some(true),
            ..BuyerSpec::default()
        },
    )
    .await?;
    let dave = buyer(
        day,
        BuyerSpec {
            balance: Some(big),
            requires_password: Some(true),
            ..BuyerSpec::default()
        },
    )
    .await?;
    let erin = buyer(
        day,
        BuyerSpec {
            balance: Some(Fen::new(500)),
            ..BuyerSpec::default()
        },
    )
    .await?;

    day.advance(1800).await?;
    say("\nBarcode payments (alipay.trade.pay)");
    day.pay(&alice, &cafe, "DAY001", "38.00", "拿铁 ×2").await?;
    day.pay(&bob, &bakery, "DAY002", "120.00", "生日蛋糕 (花呗)")
        .await?;
    day.pay(&alice, &noodle, "DAY003", "26.50", "牛肉面")
        .await?;
    say("  -- the password case: 10003, polled every 5 s; Carol enters her password after 10 s");
    let carol_trade = day
        .pay(&carol, &cafe, "DAY004", "1288.00", "咖啡豆礼盒")
        .await?;
    day.advance(10).await?;
    day.sandbox.confirm(&carol_trade).await?;
    day.advance(5).await?;
    say("  -- Dave never enters his: 12 polls over 60 s, then the trade is cancelled");
    day.pay(&dave, &noodle, "DAY005", "45.00", "套餐").await?;
    for _ in 0..12 {
        day.advance(5).await?;
    }
    say("  -- Alipay answers too late (sandbox delay fault, the gateway's read timeout is 0.4 s):");
    say("     unknown, never failure → query (not found) → query again 5 s later → cancel");
    day.sandbox
        .add_fault(FaultRule {
            id: 0,
            method: Some("alipay.trade.pay".into()),
            out_trade_no: None,
            amount: Some(yuan("66.00")?),
            action: FaultAction::Delay { ms: 700 },
            times: Some(1),
        })
        .await?;
    day.pay(&alice, &bakery, "DAY006", "66.00", "面包").await?;
    day.settle().await?;
    day.advance(5).await?;
    say("  -- Erin's balance is short: 40004, passed through");
    day.pay(&erin, &cafe, "DAY007", "88.00", "早餐").await?;

    day.advance(3600).await?;
    say(
        "\nQR precreate, paid by scan; Alipay notifies the gateway, the gateway notifies the channel",
    );
    for (smid, otn, amount) in [(&cafe, "QR001", "18.00"), (&bakery, "QR002", "25.00")] {
        let req = TradePrecreate {
            order: Day::order(smid, otn, yuan(amount)?, "扫码点单"),
            ..TradePrecreate::default()
        };
        let qr = match day.call(&req, true).await? {
            Outcome::Success(r) => r.body.qr_code.context("no qr_code")?,
            other => bail!("precreate {otn}: {other:?}"),
        };
        say(&format!(
            "  {}  precreate {otn} {amount:>8} → {qr}",
            day.now_text()
        ));
        day.advance(30).await?;
        day.sandbox.scan_qr(&qr, &alice, true).await?;
        day.settle().await?;
        say(&format!(
            "  {}  Alice scanned and paid {otn}",
            day.now_text()
        ));
    }

    day.advance(3600).await?;
    say("\nRefunds (alipay.trade.refund)");
    day.refund("DAY001", "10.00", "DAY001-R1").await?;
    day.refund("DAY003", "26.50", "DAY003-R1").await?;
    day.settle().await?;
    say("  -- the next morning: the bakery has no income yet today (R10.1)");
    day.advance(22 * 3600).await?;
    day.refund("DAY002", "50.00", "DAY002-R1").await?;
    day.advance(3600).await?;
    Ok(())
}

async fn summary(day: &Day) -> anyhow::Result<bool> {
    let store = &day.gateway.service().store;
    let counts = store.trade_counts().await?;
    say("\nSummary");
    say("  trades");
    let channel = AppId::parse(&day.channel_app_id)?;
    let mut trades = store.trades_of_channels(&[channel], 1_000).await?;
    trades.sort_by_key(|t| t.id);
    for t in &trades {
        let action = match t.state {
            jianlian_core::trade::TradeState::Cancelled { action: Some(a) } => format!(
                " ({})",
                if a == jianlian_alipay::api::trade::CancelAction::Close {
                    "close"
                } else {
                    "refund"
                }
            ),
            jianlian_core::trade::TradeState::Cancelled { action: None } => {
                " (Alipay never had it)".to_owned()
            }
            _ => String::new(),
        };
        say(&format!(
            "    {:<7} {:>9}  {:<10}{action}  fee {}",
            t.channel_order_no.as_str(),
            t.total_amount.to_yuan(),
            t.state.as_str(),
            t.fee.map_or_else(|| "-".to_owned(), |f| f.fee.to_yuan()),
        ));
    }
    say("  trades by outcome");
    for (state, n) in &counts {
        say(&format!("    {state:<10} {n:>3}"));
    }
    let mut ok = true;
    let mut check = |good: bool, what: String| {
        say(&format!("  [{}] {what}", if good { "ok" } else { "FAIL" }));
        ok &= good;
    };
    say("  books (yuan)");
    // The ledger check itself (core::ledger::check over every journal read
    // back): each journal balances, none is booked twice, the trial balance
    // is zero. Its verdict is the invariant printed below.
    let ledger = store.ledger_check().await;
    let balance = ledger.as_ref().ok();
    if let Some(b) = balance {
        let fees = b
            .balance(&Account::FeeIncome)
            .checked_neg()
            .unwrap_or(Fen::ZERO);
        let line = |label: &str, amount: Fen| {
            say(&format!(
                "    {} {:>10}",
                pad_columns(label, 34),
                amount.to_yuan()
            ));
        };
        line("fee income", fees);
        line("at Alipay (clearing)", b.balance(&Account::AlipayClearing));
        let merchants = store
            .search_merchants(&jianlian_store::MerchantFilter {
                limit: 100,
                ..Default::default()
            })
            .await?;
        let names: BTreeMap<_, _> = merchants
            .iter()
            .map(|m| (m.id, m.profile.name.clone().unwrap_or_default()))
            .collect();
        for (id, name) in names {
            line(&format!("owed to {name}"), b.owed_to(id));
        }
    }
    let delivered = store
        .outbox_in_status(OutboxStatus::Delivered, 1_000)
        .await?
        .len();
    let pending = store
        .outbox_in_status(OutboxStatus::Pending, 1_000)
        .await?
        .len();
    let dead = store
        .outbox_in_status(OutboxStatus::Dead, 1_000)
        .await?
        .len();
    say(&format!(
        "  notifications to the channel: {delivered} delivered ({} answers of `success` received), {pending} pending, {dead} dead",
        day.delivered.load(Ordering::SeqCst)
    ));
    say("\nInvariants");
    let (good, what) = ledger_invariant(&ledger);
    check(good, what);
    let open = store.unresolved_trades(100).await?;
    check(
        open.is_empty(),
        format!("no trade left non-terminal ({} open)", open.len()),
    );
    let mut alipay = Fen::ZERO;
    for e in day.sandbox.ledger(None).await {
        if e.app_id != day.acquirer_app_id {
            continue;
        }
        alipay = match e.kind {
            LedgerKind::Charge => alipay.try_add(e.amount)?,
            LedgerKind::Refund => alipay.try_sub(e.amount)?,
            _ => alipay,
        };
    }
    let ours = balance.map(|b| b.balance(&Account::AlipayClearing));
    check(
        ours == Some(alipay),
        format!(
            "the gateway's books agree with Alipay's ledger (charges − refunds = {}, books {})",
            alipay.to_yuan(),
            ours.map_or_else(|| "unreadable".to_owned(), Fen::to_yuan)
        ),
    );
    check(
        pending == 0 && dead == 0 && delivered > 0,
        format!("every notification to the channel was delivered ({delivered})"),
    );
    let expected: Vec<(&str, u64)> = vec![
        ("cancelled", 2),
        ("failed", 1),
        ("paid", 5),
        ("refunded", 1),
    ];
    let got: Vec<(&str, u64)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    check(
        got == expected,
        format!("the day's outcomes are as scripted ({got:?})"),
    );
    Ok(ok)
}

/// The ledger invariant's line: the verdict of the ledger check, and what it
/// found when the books do not balance.
fn ledger_invariant(ledger: &Result<TrialBalance, StoreError>) -> (bool, String) {
    const WHAT: &str = "every journal balances and the trial balance is zero";
    match ledger {
        Ok(b) => (true, format!("{WHAT} ({} journals)", b.journals)),
        Err(e) => (false, format!("{WHAT}: {e}")),
    }
}

/// `text` padded with spaces to `columns` terminal columns, counting a
/// non-ASCII character (the merchants' Chinese names) as two.
fn pad_columns(text: &str, columns: usize) -> String {
    let width: usize = text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{text}{}", " ".repeat(columns.saturating_sub(width)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jianlian_core::ledger::LedgerError;

    #[test]
    fn the_ledger_line_is_the_checks_verdict() {
        let balanced = TrialBalance {
            journals: 3,
            ..TrialBalance::default()
        };
        assert_eq!(
            ledger_invariant(&Ok(balanced)),
            (
                true,
                "every journal balances and the trial balance is zero (3 journals)".to_owned()
            )
        );
        let broken = Err(StoreError::Ledger(LedgerError::TrialBalance(Fen::new(1))));
        let (good, what) = ledger_invariant(&broken);
        assert!(!good);
        assert!(what.contains("the trial balance is 0.01"), "{what}");
    }

    #[test]
    fn chinese_names_pad_to_the_same_columns_as_ascii_labels() {
        assert_eq!(super::pad_columns("fee", 6), "fee   ");
        assert_eq!(super::pad_columns("面馆", 6), "面馆  ");
        assert_eq!(super::pad_columns("上海老街面馆", 6), "上海老街面馆");
    }
}
