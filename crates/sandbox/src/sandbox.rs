//! The running sandbox: configuration, start-up (load or create the state,
//! bind, serve), the shared handle with typed control operations that mirror
//! the HTTP control API, and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use jianlian_alipay::cert::Certificate;
use jianlian_alipay::time::format_beijing;
use jianlian_alipay::{AesKey, Fen, PrivateKey, PublicKey, Rate};

use crate::SandboxError;
use crate::bills::store::BillStore;
use crate::bills::{BillRecord, BillWork};
use crate::calendar::Calendar;
use crate::certs::CertsRecord;
use crate::clock::SandboxClock;
use crate::faults::{FaultRule, RULES_MAX};
use crate::journal::{self, Journal};
use crate::model::{
    App, BankCard, Buyer, CodeKind, FundChannel, IdMode, Instrument, LedgerEntry, Merchant, Notice,
    RefundPosition, RiskRule, Settlement, Trade, Voucher,
};
use crate::scheduler::{self, DueReport, TimedWork, TradeTimers};
use crate::settlement::{Payout, PayoutFilter, SettlementWork};
use crate::sftp::{SftpInfo, SftpUserSpec, SftpUserView};
use crate::state::Core;

/// How to run a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where state is persisted; `None` keeps it in memory.
    pub state_dir: Option<PathBuf>,
    pub clock: SandboxClock,
    /// Seed of the id generator (ignored when the state dir has state).
    pub seed: u64,
    /// Alipay's key; generated (and persisted) when `None`.
    pub alipay_private_key: Option<PrivateKey>,
}

impl SandboxConfig {
    /// In memory, on 127.0.0.1 with a free port, on the given clock.
    pub fn for_tests(clock: jianlian_alipay::ManualClock) -> SandboxConfig {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            clock: SandboxClock::manual(clock),
            seed: 20_880_000,
            alipay_private_key: None,
        }
    }
}

/// What bills, settlement and SFTP need beyond [`SandboxConfig`] (kept apart
/// so that code building a `SandboxConfig` literal keeps compiling).
#[derive(Debug, Clone, Default)]
pub struct BillingOptions {
    /// The working-day calendar of cross-bank payouts; `None`: the built-in
    /// 2024–2026 ([`Calendar::builtin`]).
    pub calendar: Option<Calendar>,
    /// Serve bills over SFTP on this address (port 0 picks a free port).
    pub sftp_listen: Option<SocketAddr>,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    core: Mutex<Core>,
    pub clock: SandboxClock,
    pub http: reqwest::Client,
    pub due_lock: tokio::sync::Mutex<()>,
    pub timed_work: Arc<Vec<Box<dyn TimedWork>>>,
    pub base_url: String,
    wrong_key: OnceLock<PrivateKey>,
    /// The bytes of the bill files.
    pub bill_store: Arc<BillStore>,
    /// The working-day calendar of payouts.
    pub calendar: Arc<Calendar>,
    /// The SFTP server, when one runs.
    pub sftp: Option<SftpInfo>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves a state that was valid before
        // the operation's first write; keep serving it.
        self.core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the state and journals what it changed. When notifications
    /// were queued, a delivery run is started in the background.
    pub fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> Result<R, SandboxError> {
        let mut core = self.lock();
        let notices_before = core.st.notices.len();
        let out = f(&mut core);
        let queued = core.st.notices.len() != notices_before;
        core.commit()?;
        drop(core);
        if queued {
            self.kick();
        }
        Ok(out)
    }

    /// Reads the state without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&Core) -> R) -> R {
        f(&self.lock())
    }

    fn kick(self: &Arc<Self>) {
        // Outside a runtime (a synchronous caller) the next run picks it up.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = self.clone();
        runtime.spawn(async move {
            if let Err(e) = scheduler::run_due(&shared).await {
                tracing::warn!("notification delivery: {e}");
            }
        });
    }

    /// A key that is not Alipay's (the `wrong_key` fault).
    pub fn wrong_key(&self) -> Option<PrivateKey> {
        if let Some(k) = self.wrong_key.get() {
            return Some(k.clone());
        }
        let key = PrivateKey::generate_2048().ok()?;
        Some(self.wrong_key.get_or_init(|| key).clone())
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
    sftp: Option<JoinHandle<()>>,
}

/// Starts a sandbox.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Starts with the built-in calendar and no SFTP server.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        Sandbox::start_with(config, BillingOptions::default()).await
    }

    /// Starts with a calendar of its own and/or an SFTP server for bills.
    pub async fn start_with(
        config: SandboxConfig,
        billing: BillingOptions,
    ) -> Result<SandboxHandle, SandboxError> {
        let calendar = match billing.calendar {
            Some(c) => c,
            None => Calendar::builtin().map_err(|e| SandboxError::Startup(e.to_string()))?,
        };
        let sftp_listener = match billing.sftp_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                SandboxError::Startup(format!("cannot listen for SFTP on {addr}: {e}"))
            })?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| {
                SandboxError::Startup(format!("cannot listen on {}: {e}", config.listen))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| SandboxError::Startup(e.to_string()))?;
        let (state, journal) = match &config.state_dir {
            Some(dir) => {
                let loaded = journal::load(dir)?;
                let mut state = match loaded {
                    Some(s) => s,
                    None => Core::fresh_state(config.seed, &alipay_key(&config)?),
                };
                crate::certs::migrate(&mut state, config.clock.now())?;
                let j = Journal::create(dir, &state)?;
                (state, Some(j))
            }
            None => (Core::fresh_state(config.seed, &alipay_key(&config)?), None),
        };
        config.clock.set_offset_secs(state.meta.clock_offset_secs);
        let mut core = Core::new(state, journal).map_err(SandboxError::Startup)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(crate::notify::DELIVERY_TIMEOUT)
            .build()
            .map_err(|e| SandboxError::Startup(format!("HTTP client: {e}")))?;
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let base_url = if host.port() == 80 {
            format!("http://{}", host.ip())
        } else {
            format!("http://{host}")
        };
        core.base_url = base_url.clone();
        let bill_store = Arc::new(match &config.state_dir {
            Some(dir) => BillStore::in_dir(dir),
            None => BillStore::memory(),
        });
        let calendar = Arc::new(calendar);
        let sftp = match sftp_listener {
            Some(l) => {
                let key = crate::sftp::host_key(config.state_dir.as_deref())?;
                let addr = l
                    .local_addr()
                    .map_err(|e| SandboxError::Startup(e.to_string()))?;
                Some((l, crate::sftp::info(addr, &key), key))
            }
            None => None,
        };
        let work: Vec<Box<dyn TimedWork>> = vec![
            Box::new(TradeTimers),
            Box::new(BillWork {
                store: bill_store.clone(),
            }),
            Box::new(SettlementWork {
                calendar: calendar.clone(),
            }),
        ];
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            clock: config.clock.clone(),
            http,
            due_lock: tokio::sync::Mutex::new(()),
            timed_work: Arc::new(work),
            base_url,
            wrong_key: OnceLock::new(),
            bill_store,
            calendar,
            sftp: sftp.as_ref().map(|(_, info, _)| info.clone()),
        });
        let sftp_task = sftp.map(|(l, _, key)| crate::sftp::serve(l, shared.clone(), key));
        let router = crate::router(shared.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("sandbox server stopped: {e}");
            }
        });
        let ticker = config.clock.is_real_time().then(|| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if let Err(e) = scheduler::run_due(&shared).await {
                        tracing::warn!("due work: {e}");
                    }
                }
            })
        });
        Ok(SandboxHandle {
            shared,
            addr,
            stop: Some(stop_tx),
            server: Some(server),
            ticker,
            sftp: sftp_task,
        })
    }
}

fn alipay_key(config: &SandboxConfig) -> Result<PrivateKey, SandboxError> {
    match &config.alipay_private_key {
        Some(k) => Ok(k.clone()),
        None => PrivateKey::generate_2048()
            .map_err(|e| SandboxError::Startup(format!("generating Alipay's key: {e}"))),
    }
}

// ---- control operations (typed; the HTTP control API calls the same) ----

/// `POST /sandbox/apps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// PEM or bare base64 SPKI. Either this or `app_cert`.
    #[serde(default)]
    pub app_public_key: Option<String>,
    /// Certificate mode: the app public-key certificate (PEM).
    #[serde(default)]
    pub app_cert: Option<String>,
    /// `true`: certificate mode, the sandbox issues the certificate of
    /// `app_public_key`. `false` (on update): back to public-key mode.
    #[serde(default)]
    pub certificate_mode: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    /// Join an existing acquirer (PID) instead of creating one.
    #[serde(default)]
    pub pid: Option<String>,
    #[serde(default)]
    pub settlement: Option<Settlement>,
    #[serde(default)]
    pub fee_rate: Option<Rate>,
    #[serde(default)]
    pub refund_position: Option<RefundPosition>,
    #[serde(default)]
    pub general_finance: Option<bool>,
    #[serde(default)]
    pub require_store_terminal: Option<bool>,
    #[serde(default)]
    pub refund_window_months: Option<u32>,
    #[serde(default)]
    pub id_mode: Option<IdMode>,
    /// AES content-encryption key (base64 of 16 bytes).
    #[serde(default)]
    pub aes_key: Option<String>,
    #[serde(default)]
    pub risk: Option<RiskRule>,
    /// R11.3: write a bill also on days without trades.
    #[serde(default)]
    pub empty_bills: Option<bool>,
}

/// The answer to `POST /sandbox/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCreated {
    pub app_id: String,
    pub pid: String,
    /// Bare base64 SPKI.
    pub alipay_public_key: String,
    /// Certificate mode only (as every field below but `gateway_url`): the SN
    /// of `alipay_cert`, which answers carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alipay_cert_sn: Option<String>,
    /// The SN of `alipay_root_cert`, which requests must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alipay_root_cert_sn: Option<String>,
    pub gateway_url: String,
    /// The SN of `app_cert`, which requests must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_cert_sn: Option<String>,
    /// The app public-key certificate, PEM (`appCertPublicKey_<app_id>.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_cert: Option<String>,
    /// The Alipay public-key certificate, PEM (`alipayCertPublicKey_RSA2.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alipay_cert: Option<String>,
    /// The root bundle, PEM (`alipayRootCert.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alipay_root_cert: Option<String>,
}

/// The answer to `GET /sandbox/certs`: what a certificate-mode app configures
/// besides its own certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxCerts {
    /// The Alipay public-key certificate, PEM (`alipayCertPublicKey_RSA2.crt`).
    pub alipay_cert: String,
    pub alipay_cert_sn: String,
    /// The root bundle, PEM (`alipayRootCert.crt`).
    pub alipay_root_cert: String,
    pub alipay_root_cert_sn: String,
    /// Bare base64 SPKI: the key inside `alipay_cert`.
    pub alipay_public_key: String,
}

/// `POST /sandbox/buyers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyerSpec {
    #[serde(default)]
    pub balance: Option<Fen>,
    #[serde(default)]
    pub bank_cards: Vec<CardSpec>,
    #[serde(default)]
    pub huabei_limit: Option<Fen>,
    #[serde(default)]
    pub mcard_balance: Option<Fen>,
    #[serde(default)]
    pub pcard_balance: Option<Fen>,
    /// Jifenbao points; one point is one fen.
    #[serde(default)]
    pub points: Option<i64>,
    #[serde(default)]
    pub vouchers: Vec<VoucherSpec>,
    #[serde(default)]
    pub requires_password: Option<bool>,
    #[serde(default)]
    pub daily_limit: Option<Fen>,
    /// `balance`, `bank_card:N`, `huabei`, `mcard` or `pcard`.
    #[serde(default)]
    pub pay_with: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cert_no: Option<String>,
    #[serde(default)]
    pub logon_id: Option<String>,
    /// Every payment of the buyer is refused by risk control.
    #[serde(default)]
    pub risky: Option<bool>,
    /// The buyer switched off balance payments (`ACQ.ERROR_BALANCE_PAYMENT_DISABLE`
    /// when only the balance would pay).
    #[serde(default)]
    pub balance_payment_disabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    #[serde(rename = "type")]
    pub card_type: String,
    #[serde(default)]
    pub balance: Option<Fen>,
    #[serde(default)]
    pub limit: Option<Fen>,
    #[serde(default)]
    pub bank_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherSpec {
    /// `COUPON`, `DISCOUNT`, `MCOUPON` or `MDISCOUNT`.
    #[serde(rename = "type")]
    pub channel: String,
    pub amount: Fen,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerCreated {
    pub buyer_id: String,
    pub logon_id: String,
}

/// Default balance of a new buyer.
pub const BUYER_BALANCE_DEFAULT: Fen = Fen::new(50_000);

/// Parses `balance`, `bank_card:N`, `huabei`, `mcard`, `pcard`.
pub fn parse_instrument(text: &str) -> Result<Instrument, SandboxError> {
    match text {
        "balance" => Ok(Instrument::Balance),
        "huabei" => Ok(Instrument::Huabei),
        "mcard" => Ok(Instrument::Mcard),
        "pcard" => Ok(Instrument::Pcard),
        other => other
            .strip_prefix("bank_card:")
            .and_then(|n| n.parse().ok())
            .map(Instrument::BankCard)
            .ok_or_else(|| {
                SandboxError::BadRequest(format!(
                    "instrument {other:?} is not balance, bank_card:N, huabei, mcard or pcard"
                ))
            }),
    }
}

fn bad(msg: impl Into<String>) -> SandboxError {
    SandboxError::BadRequest(msg.into())
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `http://ADDR/gateway.do`.
    pub fn gateway_url(&self) -> String {
        format!("{}/gateway.do", self.shared.base_url)
    }

    /// `http://ADDR/sandbox`.
    pub fn control_url(&self) -> String {
        format!("{}/sandbox", self.shared.base_url)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Alipay's public key (what apps verify responses and notifications with).
    pub fn alipay_public_key(&self) -> PublicKey {
        self.shared.read(|c| c.alipay_key.public_key().clone())
    }

    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    pub async fn create_app(&self, spec: AppSpec) -> Result<AppCreated, SandboxError> {
        if spec.needs_certs() {
            self.shared.ensure_certs_async().await?;
        }
        self.shared.create_app(spec)
    }

    pub async fn update_app(
        &self,
        app_id: &str,
        spec: AppSpec,
    ) -> Result<AppCreated, SandboxError> {
        if spec.needs_certs() {
            self.shared.ensure_certs_async().await?;
        }
        self.shared.update_app(app_id, spec)
    }

    /// The Alipay public-key certificate and the root bundle (made now if no
    /// app has needed them yet).
    pub async fn certs(&self) -> Result<SandboxCerts, SandboxError> {
        self.shared.ensure_certs_async().await?;
        self.shared.certs()
    }

    pub async fn create_buyer(&self, spec: BuyerSpec) -> Result<BuyerCreated, SandboxError> {
        self.shared.create_buyer(spec)
    }

    pub async fn buyer(&self, buyer_id: &str) -> Option<Buyer> {
        self.shared.read(|c| c.st.buyers.get(buyer_id).cloned())
    }

    /// A new payment code (single use, 60 s).
    pub async fn payment_code(
        &self,
        buyer_id: &str,
        pay_with: Option<&str>,
    ) -> Result<String, SandboxError> {
        self.shared.payment_code(buyer_id, pay_with)
    }

    /// A new face-payment token for the `security_code` scene (single use, 60 s).
    pub async fn security_code(
        &self,
        buyer_id: &str,
        pay_with: Option<&str>,
    ) -> Result<String, SandboxError> {
        self.shared
            .issue_code(buyer_id, pay_with, CodeKind::SecurityCode)
    }

    pub async fn confirm(&self, trade_no: &str) -> Result<Trade, SandboxError> {
        let now = self.now();
        Ok(self.shared.with(|c| c.confirm_trade(trade_no, now))??)
    }

    pub async fn abandon(&self, trade_no: &str) -> Result<Trade, SandboxError> {
        let now = self.now();
        Ok(self.shared.with(|c| c.abandon_trade(trade_no, now))??)
    }

    pub async fn scan_qr(
        &self,
        qr_code: &str,
        buyer_id: &str,
        confirm: bool,
    ) -> Result<Trade, SandboxError> {
        let now = self.now();
        Ok(self
            .shared
            .with(|c| c.scan_qr(qr_code, buyer_id, confirm, now))??)
    }

    /// An OAuth authorisation code for `buyer_id` on `app_id`.
    pub async fn authorize(
        &self,
        app_id: &str,
        buyer_id: &str,
        scope: &str,
    ) -> Result<String, SandboxError> {
        let now = self.now();
        Ok(self
            .shared
            .with(|c| c.authorize(app_id, buyer_id, scope, now))??)
    }

    pub async fn trade(&self, trade_no: &str) -> Option<Trade> {
        self.shared.read(|c| c.st.trades.get(trade_no).cloned())
    }

    pub async fn trade_by_out_trade_no(&self, pid: &str, out_trade_no: &str) -> Option<Trade> {
        self.shared.read(|c| match c.order(pid, out_trade_no) {
            Some(crate::state::OrderRef::Trade(no)) => c.st.trades.get(no).cloned(),
            _ => None,
        })
    }

    pub async fn merchant(&self, smid: &str) -> Option<Merchant> {
        self.shared.read(|c| c.st.merchants.get(smid).cloned())
    }

    pub async fn set_merchant_risk(
        &self,
        smid: &str,
        blocked: bool,
    ) -> Result<Merchant, SandboxError> {
        self.shared.set_merchant_risk(smid, blocked)
    }

    /// `yyyy-MM-dd HH:mm:ss`, Beijing.
    pub fn clock(&self) -> String {
        format_beijing(self.now())
    }

    /// Advances virtual time, running everything that became due first.
    pub async fn advance(&self, seconds: i64) -> Result<Timestamp, SandboxError> {
        scheduler::advance(&self.shared, seconds).await
    }

    /// Runs the work due now (deliveries included) and waits for it.
    pub async fn run_due(&self) -> Result<DueReport, SandboxError> {
        scheduler::run_due(&self.shared).await
    }

    pub async fn add_fault(&self, rule: FaultRule) -> Result<FaultRule, SandboxError> {
        self.shared.add_fault(rule)
    }

    pub async fn clear_faults(&self) -> Result<usize, SandboxError> {
        self.shared.clear_faults()
    }

    pub async fn faults(&self) -> Vec<FaultRule> {
        self.shared.read(|c| c.st.faults.clone())
    }

    /// Every money movement, optionally for one Beijing date (`yyyy-MM-dd`).
    pub async fn ledger(&self, date: Option<&str>) -> Vec<LedgerEntry> {
        self.shared.ledger(date)
    }

    /// Every notification with its attempts, optionally for one `out_trade_no`.
    pub async fn notifications(&self, out_trade_no: Option<&str>) -> Vec<Notice> {
        self.shared.notifications(out_trade_no)
    }

    /// Bills, optionally of one acquirer and/or one date.
    pub async fn bills(
        &self,
        pid: Option<&str>,
        date: Option<jiff::civil::Date>,
    ) -> Vec<BillRecord> {
        self.shared.bills(pid, date)
    }

    /// The bytes of a bill file (`date` as `yyyyMMdd`), as SFTP and the
    /// download URL serve them.
    pub async fn bill_file(
        &self,
        pid: &str,
        date: jiff::civil::Date,
        name: &str,
    ) -> Result<bytes::Bytes, SandboxError> {
        self.shared.bill_file(pid, date, name)
    }

    /// Payouts matching a filter.
    pub async fn settlements(&self, filter: PayoutFilter) -> Result<Vec<Payout>, SandboxError> {
        self.shared.settlements(&filter)
    }

    /// Sets (replaces) an acquirer's SFTP credentials.
    pub async fn set_sftp_user(
        &self,
        pid: &str,
        spec: SftpUserSpec,
    ) -> Result<SftpUserView, SandboxError> {
        let shared = self.shared.clone();
        let pid = pid.to_owned();
        // Hashing a password takes a few milliseconds of CPU.
        tokio::task::spawn_blocking(move || shared.set_sftp_user(&pid, spec))
            .await
            .map_err(|e| SandboxError::Startup(format!("hashing the password: {e}")))?
    }

    /// Where the SFTP server listens, and its host key.
    pub fn sftp(&self) -> Option<&SftpInfo> {
        self.shared.sftp.as_ref()
    }

    /// The working-day calendar payouts follow.
    pub fn calendar(&self) -> &Calendar {
        &self.shared.calendar
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(t) = self.sftp.take() {
            t.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(t) = self.sftp.take() {
            t.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Shared {
    /// The certificate hierarchy, made and kept now if there is none yet.
    /// Making it takes about a second of CPU, outside the state lock.
    pub fn ensure_certs(self: &Arc<Self>) -> Result<CertsRecord, SandboxError> {
        if let Some(c) = self.read(|c| c.st.certs.clone()) {
            return Ok(c);
        }
        let alipay_key = self.read(|c| c.alipay_key.public_key().clone());
        let made = crate::certs::generate(&alipay_key, self.clock.now())?;
        self.with(|core| match core.st.certs.clone() {
            // Another caller made one meanwhile: keep the first.
            Some(kept) => kept,
            None => {
                core.put_certs(made.clone());
                made
            }
        })
    }

    /// [`Shared::ensure_certs`] on a blocking thread when there is work to do.
    pub async fn ensure_certs_async(self: &Arc<Self>) -> Result<(), SandboxError> {
        if self.read(|c| c.st.certs.is_some()) {
            return Ok(());
        }
        let shared = self.clone();
        tokio::task::spawn_blocking(move || shared.ensure_certs())
            .await
            .map_err(|e| crate::certs::CertError(format!("making the certificates: {e}")))??;
        Ok(())
    }

    /// `GET /sandbox/certs`.
    pub fn certs(self: &Arc<Self>) -> Result<SandboxCerts, SandboxError> {
        let certs = self.ensure_certs()?;
        Ok(SandboxCerts {
            alipay_cert: certs.alipay_cert,
            alipay_cert_sn: certs.alipay_cert_sn,
            alipay_root_cert: certs.root_bundle,
            alipay_root_cert_sn: certs.alipay_root_cert_sn,
            alipay_public_key: self.read(|c| c.alipay_key.public_key().to_base64()),
        })
    }

    pub fn create_app(self: &Arc<Self>, spec: AppSpec) -> Result<AppCreated, SandboxError> {
        let keys = app_keys(&spec, None)?.ok_or_else(|| {
            bad("app_public_key (PEM or bare base64 SPKI) or app_cert is required")
        })?;
        let aes_key = check_aes(spec.aes_key.as_deref())?;
        check_refund_window(spec.refund_window_months)?;
        if keys.needs_certs() {
            self.ensure_certs()?;
        }
        let now = self.clock.now();
        let gateway_url = format!("{}/gateway.do", self.base_url);
        self.with(|core| {
            let pid = match &spec.pid {
                Some(pid) if core.st.apps.values().any(|a| &a.pid == pid) => pid.clone(),
                Some(pid) => {
                    return Err(SandboxError::NotFound(format!(
                        "no acquirer with PID {pid}"
                    )));
                }
                None => core.ids().user_id(),
            };
            let app_id = loop {
                let id = core.ids().app_id();
                if !core.st.apps.contains_key(&id) {
                    break id;
                }
            };
            let (public_key, app_cert, app_cert_sn) = keys.resolve(core, &pid, &app_id)?;
            let app = App {
                app_id: app_id.clone(),
                pid: pid.clone(),
                name: spec
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("sandbox app {app_id}")),
                public_key,
                app_cert_sn,
                app_cert,
                settlement: spec.settlement.unwrap_or_default(),
                fee_rate: spec
                    .fee_rate
                    .unwrap_or(Rate::from_ppm(3_800).unwrap_or(Rate::ZERO)),
                refund_position: spec.refund_position.unwrap_or_default(),
                general_finance: spec.general_finance.unwrap_or(true),
                require_store_terminal: spec.require_store_terminal.unwrap_or(true),
                refund_window_months: spec.refund_window_months.unwrap_or(3),
                id_mode: spec.id_mode.unwrap_or_default(),
                aes_key,
                risk: spec.risk.unwrap_or_default(),
                created_at: now,
                empty_bills: spec.empty_bills.unwrap_or(false),
            };
            let out = app_answer(core, &app, gateway_url);
            core.put_app(app);
            Ok(out)
        })?
    }

    /// Changes an app's settings (only the fields given).
    pub fn update_app(
        self: &Arc<Self>,
        app_id: &str,
        spec: AppSpec,
    ) -> Result<AppCreated, SandboxError> {
        if spec.pid.is_some() {
            return Err(bad("an app cannot move to another acquirer"));
        }
        let current = self
            .read(|c| c.st.apps.get(app_id).cloned())
            .ok_or_else(|| SandboxError::NotFound(format!("app {app_id} does not exist")))?;
        let keys = app_keys(&spec, Some(&current))?;
        if keys.as_ref().is_some_and(AppKeys::needs_certs) {
            self.ensure_certs()?;
        }
        let aes = match spec.aes_key.as_deref() {
            Some(_) => Some(check_aes(spec.aes_key.as_deref())?),
            None => None,
        };
        check_refund_window(spec.refund_window_months)?;
        let gateway_url = format!("{}/gateway.do", self.base_url);
        self.with(|core| {
            let mut app =
                core.st.apps.get(app_id).cloned().ok_or_else(|| {
                    SandboxError::NotFound(format!("app {app_id} does not exist"))
                })?;
            if let Some(keys) = keys {
                let (public_key, cert, sn) = keys.resolve(core, &app.pid, &app.app_id)?;
                app.public_key = public_key;
                app.app_cert = cert;
                app.app_cert_sn = sn;
            }
            if let Some(aes) = aes {
                app.aes_key = aes;
            }
            if let Some(v) = spec.settlement {
                app.settlement = v;
            }
            if let Some(v) = spec.fee_rate {
                app.fee_rate = v;
            }
            if let Some(v) = spec.refund_position {
                app.refund_position = v;
            }
            if let Some(v) = spec.general_finance {
                app.general_finance = v;
            }
            if let Some(v) = spec.require_store_terminal {
                app.require_store_terminal = v;
            }
            if let Some(v) = spec.refund_window_months {
                app.refund_window_months = v;
            }
            if let Some(v) = spec.id_mode {
                app.id_mode = v;
            }
            if let Some(v) = spec.risk {
                app.risk = v;
            }
            if let Some(v) = spec.empty_bills {
                app.empty_bills = v;
            }
            if let Some(v) = spec.name.clone() {
                app.name = v;
            }
            let out = app_answer(core, &app, gateway_url);
            core.put_app(app);
            Ok(out)
        })?
    }

    pub fn create_buyer(self: &Arc<Self>, spec: BuyerSpec) -> Result<BuyerCreated, SandboxError> {
        let mut cards = Vec::new();
        for (i, c) in spec.bank_cards.iter().enumerate() {
            let available = match (c.card_type.as_str(), c.balance, c.limit) {
                ("DEBIT_CARD", Some(b), None) => b,
                ("CREDIT_CARD", None, Some(l)) => l,
                ("DEBIT_CARD", _, _) => {
                    return Err(bad(format!(
                        "bank_cards[{i}]: a DEBIT_CARD has a balance (and no limit)"
                    )));
                }
                ("CREDIT_CARD", _, _) => {
                    return Err(bad(format!(
                        "bank_cards[{i}]: a CREDIT_CARD has a limit (and no balance)"
                    )));
                }
                (other, _, _) => {
                    return Err(bad(format!(
                        "bank_cards[{i}].type {other:?} is not DEBIT_CARD or CREDIT_CARD"
                    )));
                }
            };
            if available.is_negative() {
                return Err(bad(format!("bank_cards[{i}]: amounts cannot be negative")));
            }
            cards.push(BankCard {
                card_type: c.card_type.clone(),
                bank_code: c.bank_code.clone().unwrap_or_else(|| "ICBC".to_owned()),
                available,
            });
        }
        let mut vouchers = Vec::new();
        for (i, v) in spec.vouchers.iter().enumerate() {
            let channel = FundChannel::parse(&v.channel)
                .filter(|c| c.is_voucher())
                .ok_or_else(|| {
                    bad(format!(
                        "vouchers[{i}].type {:?} is not COUPON, DISCOUNT, MCOUPON or MDISCOUNT",
                        v.channel
                    ))
                })?;
            if v.amount.get() <= 0 {
                return Err(bad(format!("vouchers[{i}].amount must be positive")));
            }
            vouchers.push((channel, v.amount, v.name.clone()));
        }
        let instrument = match spec.pay_with.as_deref() {
            Some(t) => parse_instrument(t)?,
            None => Instrument::Balance,
        };
        if let Instrument::BankCard(i) = instrument
            && i >= cards.len()
        {
            return Err(bad(format!(
                "pay_with bank_card:{i}: the buyer has {} cards",
                cards.len()
            )));
        }
        for (name, v) in [
            ("balance", spec.balance),
            ("huabei_limit", spec.huabei_limit),
            ("mcard_balance", spec.mcard_balance),
            ("pcard_balance", spec.pcard_balance),
            ("daily_limit", spec.daily_limit),
        ] {
            if v.is_some_and(Fen::is_negative) {
                return Err(bad(format!("{name} cannot be negative")));
            }
        }
        if spec.points.is_some_and(|p| p < 0) {
            return Err(bad("points cannot be negative"));
        }
        let now = self.clock.now();
        self.with(|core| {
            let buyer_id = loop {
                let id = core.ids().user_id();
                if !core.st.buyers.contains_key(&id) && !core.st.apps.values().any(|a| a.pid == id)
                {
                    break id;
                }
            };
            let logon_id = spec
                .logon_id
                .clone()
                .unwrap_or_else(|| core.ids().logon_id());
            let vouchers = vouchers
                .into_iter()
                .enumerate()
                .map(|(i, (channel, amount, name))| Voucher {
                    id: format!("{}{i:04}", &buyer_id),
                    channel,
                    name: name.unwrap_or_else(|| format!("{} {}", channel.as_str(), amount)),
                    amount,
                    used: false,
                })
                .collect();
            core.put_buyer(Buyer {
                buyer_id: buyer_id.clone(),
                logon_id: logon_id.clone(),
                name: spec.name.clone(),
                cert_no: spec.cert_no.clone(),
                balance: spec.balance.unwrap_or(BUYER_BALANCE_DEFAULT),
                bank_cards: cards,
                huabei_available: spec.huabei_limit.unwrap_or(Fen::ZERO),
                mcard_balance: spec.mcard_balance.unwrap_or(Fen::ZERO),
                pcard_balance: spec.pcard_balance.unwrap_or(Fen::ZERO),
                points: spec.points.unwrap_or(0),
                vouchers,
                requires_password: spec.requires_password.unwrap_or(false),
                daily_limit: spec.daily_limit,
                spent_date: String::new(),
                spent: Fen::ZERO,
                instrument,
                risky: spec.risky.unwrap_or(false),
                balance_payment_disabled: spec.balance_payment_disabled.unwrap_or(false),
                open_ids: Default::default(),
                created_at: now,
            });
            BuyerCreated { buyer_id, logon_id }
        })
    }

    pub fn payment_code(
        self: &Arc<Self>,
        buyer_id: &str,
        pay_with: Option<&str>,
    ) -> Result<String, SandboxError> {
        self.issue_code(buyer_id, pay_with, CodeKind::BarCode)
    }

    /// A payment code or face-payment token for a buyer, paying with
    /// `pay_with` (else the buyer's instrument).
    pub fn issue_code(
        self: &Arc<Self>,
        buyer_id: &str,
        pay_with: Option<&str>,
        kind: CodeKind,
    ) -> Result<String, SandboxError> {
        let instrument = pay_with.map(parse_instrument).transpose()?;
        let now = self.clock.now();
        Ok(self.with(|c| c.issue_payment_code(buyer_id, instrument, kind, now))??)
    }

    pub fn set_merchant_risk(
        self: &Arc<Self>,
        smid: &str,
        blocked: bool,
    ) -> Result<Merchant, SandboxError> {
        self.with(|core| {
            let mut m =
                core.st.merchants.get(smid).cloned().ok_or_else(|| {
                    SandboxError::NotFound(format!("merchant {smid} does not exist"))
                })?;
            m.risk_blocked = blocked.then(|| "blocked through the control API".to_owned());
            if !blocked {
                m.seen_stores.clear();
                m.seen_terminals.clear();
            }
            core.put_merchant(m.clone());
            Ok(m)
        })?
    }

    pub fn add_fault(self: &Arc<Self>, mut rule: FaultRule) -> Result<FaultRule, SandboxError> {
        rule.validate().map_err(SandboxError::BadRequest)?;
        self.with(|core| {
            if core.st.faults.len() >= RULES_MAX {
                return Err(bad(format!(
                    "at most {RULES_MAX} fault rules; clear some first"
                )));
            }
            core.st.meta.fault_seq += 1;
            core.touch_meta();
            rule.id = core.st.meta.fault_seq;
            core.faults_mut().push(rule.clone());
            Ok(rule)
        })?
    }

    pub fn clear_faults(self: &Arc<Self>) -> Result<usize, SandboxError> {
        self.with(|core| {
            let n = core.st.faults.len();
            core.faults_mut().clear();
            n
        })
    }

    pub fn ledger(&self, date: Option<&str>) -> Vec<LedgerEntry> {
        self.read(|c| {
            c.st.ledger
                .iter()
                .filter(|e| date.is_none_or(|d| e.date == d))
                .cloned()
                .collect()
        })
    }

    pub fn notifications(&self, out_trade_no: Option<&str>) -> Vec<Notice> {
        self.read(|c| {
            let mut list: Vec<Notice> =
                c.st.notices
                    .values()
                    .filter(|n| out_trade_no.is_none_or(|o| n.out_trade_no == o))
                    .cloned()
                    .collect();
            list.sort_by_key(|n| n.seq);
            list
        })
    }
}

impl AppSpec {
    /// Whether the app will be in certificate mode, so the sandbox's
    /// certificates must exist.
    pub fn needs_certs(&self) -> bool {
        self.certificate_mode == Some(true) || self.app_cert.is_some()
    }
}

/// How an app proves who it is, from a spec.
#[derive(Debug)]
enum AppKeys {
    /// Public-key mode.
    PublicKey(PublicKey),
    /// Certificate mode with a certificate the sandbox issues for the key.
    Issue(PublicKey),
    /// Certificate mode with an uploaded certificate.
    Uploaded { pem: String, cert: Certificate },
}

impl AppKeys {
    fn needs_certs(&self) -> bool {
        !matches!(self, AppKeys::PublicKey(_))
    }

    /// The app's key (bare base64 SPKI), certificate and its SN.
    fn resolve(
        self,
        core: &Core,
        pid: &str,
        app_id: &str,
    ) -> Result<(String, Option<String>, Option<String>), SandboxError> {
        match self {
            AppKeys::PublicKey(key) => Ok((key.to_base64(), None, None)),
            AppKeys::Issue(key) => {
                let certs = core
                    .st
                    .certs
                    .as_ref()
                    .ok_or_else(|| SandboxError::Certs(crate::certs::CertError::missing()))?;
                let issued = certs.issue_app_cert(&key, pid, app_id)?;
                Ok((key.to_base64(), Some(issued.pem), Some(issued.sn)))
            }
            AppKeys::Uploaded { pem, cert } => Ok((
                cert.public_key().to_base64(),
                Some(pem),
                Some(cert.sn().to_owned()),
            )),
        }
    }
}

/// Refunds are allowed for 1 to 24 months (R10.4), or not at all (0: a
/// contract without refunds, apis.md §3 transition 6).
fn check_refund_window(months: Option<u32>) -> Result<(), SandboxError> {
    match months {
        Some(m) if m > REFUND_WINDOW_MONTHS_MAX => Err(bad(format!(
            "refund_window_months must be between 0 (no refunds) and {REFUND_WINDOW_MONTHS_MAX}"
        ))),
        _ => Ok(()),
    }
}

/// Longest refund window an app may have, in months.
pub const REFUND_WINDOW_MONTHS_MAX: u32 = 24;

/// Reads the key settings of a spec; `None` when an update changes none.
/// On update, a new `app_public_key` keeps the app's mode unless
/// `certificate_mode` says otherwise.
fn app_keys(spec: &AppSpec, current: Option<&App>) -> Result<Option<AppKeys>, SandboxError> {
    let in_cert_mode = current.is_some_and(|a| a.app_cert_sn.is_some());
    match (&spec.app_public_key, &spec.app_cert, spec.certificate_mode) {
        (Some(_), Some(_), _) => Err(bad("give app_public_key or app_cert, not both")),
        (None, Some(_), Some(false)) => Err(bad(
            "app_cert is certificate mode: drop certificate_mode false or give app_public_key",
        )),
        (None, Some(pem), _) => {
            let cert = Certificate::from_text(pem).map_err(|e| bad(format!("app_cert: {e}")))?;
            Ok(Some(AppKeys::Uploaded {
                pem: pem.trim().to_owned() + "\n",
                cert,
            }))
        }
        (Some(text), None, mode) => {
            let key =
                PublicKey::from_text(text).map_err(|e| bad(format!("app_public_key: {e}")))?;
            Ok(Some(if mode.unwrap_or(in_cert_mode) {
                AppKeys::Issue(key)
            } else {
                AppKeys::PublicKey(key)
            }))
        }
        (None, None, None) => Ok(None),
        (None, None, Some(mode)) => {
            let Some(app) = current else {
                return Err(bad(
                    "app_public_key (PEM or bare base64 SPKI) or app_cert is required",
                ));
            };
            if mode == in_cert_mode {
                return Ok(None);
            }
            let key = PublicKey::from_text(&app.public_key)
                .map_err(|e| bad(format!("the app's key: {e}")))?;
            Ok(Some(if mode {
                AppKeys::Issue(key)
            } else {
                AppKeys::PublicKey(key)
            }))
        }
    }
}

/// The answer to `POST /sandbox/apps` and `PATCH /sandbox/apps/{app_id}`.
fn app_answer(core: &Core, app: &App, gateway_url: String) -> AppCreated {
    let certs = core.st.certs.as_ref().filter(|_| app.app_cert_sn.is_some());
    AppCreated {
        app_id: app.app_id.clone(),
        pid: app.pid.clone(),
        alipay_public_key: core.alipay_key.public_key().to_base64(),
        alipay_cert_sn: certs.map(|c| c.alipay_cert_sn.clone()),
        alipay_root_cert_sn: certs.map(|c| c.alipay_root_cert_sn.clone()),
        gateway_url,
        app_cert_sn: app.app_cert_sn.clone(),
        app_cert: app.app_cert.clone(),
        alipay_cert: certs.map(|c| c.alipay_cert.clone()),
        alipay_root_cert: certs.map(|c| c.root_bundle.clone()),
    }
}

fn check_aes(text: Option<&str>) -> Result<Option<String>, SandboxError> {
    match text {
        None => Ok(None),
        Some(t) => AesKey::from_base64(t)
            .map(|_| Some(t.trim().to_owned()))
            .map_err(|e| bad(format!("aes_key: {e}"))),
    }
}
