//! `jianlian bench pay`: barcode-pay throughput and latency through the
//! gateway to the sandbox, in this process on 127.0.0.1, against the RSA
//! ceiling measured in the same run.
//!
//! Every payment costs four RSA-2048 signatures (the channel's request, the
//! gateway's upstream request, the sandbox's answer, the gateway's answer),
//! so `cores × single-core sign rate ÷ 4` bounds the payments per second this
//! machine can do. The run: (1) measure the sign rate with every core
//! signing at once, before and after the peak runs (a shared machine's rate
//! drifts; the mean of the two is the ceiling's); (2) peak: for each
//! `--concurrency` level, that many clients send `--requests` pays as fast
//! as answered, and the best level is the peak; (3) half load: pays paced at
//! half the peak rate through the gateway, then the same pace straight to
//! the sandbox; the gateway-added p99 is the difference of the two p99
//! latencies. Every answer must be `10000`. Beside it, the machine's busy
//! CPU time per pay at the peak (every process, the database server
//! included) and over the same load straight to the sandbox: the share of
//! it that is signatures bounds peak ÷ ceiling, and the difference is what
//! the gateway itself costs.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jianlian_alipay::api::ApiParams;
use jianlian_alipay::api::merchant::{ContactInfo, IndirectCreate, MerchantProfile};
use jianlian_alipay::api::trade::{SubMerchant, TradeOrder, TradePay};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::request::{AppCredentials, CallOptions};
use jianlian_alipay::{
    Fen, ManualClock, Outcome, PaymentCodeRule, PrivateKey, PublicKey, Rate, SignType,
};
use jianlian_core::closed_loop::LoopPolicy;
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::Pid;
use jianlian_core::notify::{AddressPolicy, RetrySchedule};
use jianlian_gateway::Application;
use jianlian_gateway::config::{Settings, UpstreamSettings, WorkerSettings};
use jianlian_gateway::ops::{self, NewChannel};
use jianlian_sandbox::{AppSpec, BuyerSpec, Sandbox, SandboxConfig};
use sqlx::Connection as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Barcode pay through gateway → sandbox.
    Pay {
        /// Pays in the peak run (the half-load runs send half as many).
        #[arg(long, default_value_t = 2_000)]
        requests: usize,
        /// Concurrent clients of the peak runs, one run per level
        /// (comma-separated); the best run is the peak.
        #[arg(long, value_delimiter = ',', default_values_t = [16, 32, 64])]
        concurrency: Vec<usize>,
        /// sqlite or postgres.
        #[arg(long, default_value = "sqlite")]
        database: String,
        /// SQLite durability: full (a sync per commit, the default) or normal.
        #[arg(long, default_value = "full")]
        sqlite_synchronous: String,
        /// PostgreSQL server (a schema is created and dropped in it).
        #[arg(long, env = "JIANLIAN_TEST_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
}

/// Writes one line to stdout (the report is the command's output).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const START: &str = "2026-03-02 10:00:00";

/// RSA-2048 SHA256withRSA signatures per second per core, with one thread
/// per core signing at once for about a second (the rate the pays get when
/// the machine is busy, not one core's rate beside idle ones).
fn sign_rate(cores: usize) -> anyhow::Result<f64> {
    let key = PrivateKey::generate_2048()?;
    let message = [b'x'; 300];
    let rates = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let started = Instant::now();
                    let mut n = 0_u32;
                    while started.elapsed() < Duration::from_millis(1_000) {
                        key.sign(SignType::Rsa2, &message)
                            .map_err(|_| anyhow::anyhow!("signing failed"))?;
                        n += 1;
                    }
                    anyhow::Ok(f64::from(n) / started.elapsed().as_secs_f64())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<f64>>>()
    })?;
    #[allow(clippy::cast_precision_loss)]
    Ok(rates.iter().sum::<f64>() / rates.len() as f64)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let last = sorted.len() - 1;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((last as f64) * p).round() as usize;
    sorted[index.min(last)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

struct Bench {
    gateway_client: AlipayClient,
    direct_client: AlipayClient,
    smid: String,
    codes: Vec<String>,
    next_code: AtomicUsize,
    next_order: AtomicUsize,
}

impl Bench {
    fn pay_req(&self, prefix: &str) -> anyhow::Result<TradePay> {
        let i = self.next_code.fetch_add(1, Ordering::SeqCst);
        let code = self
            .codes
            .get(i)
            .context("ran out of payment codes")?
            .clone();
        let n = self.next_order.fetch_add(1, Ordering::SeqCst);
        Ok(TradePay {
            scene: Some("bar_code".into()),
            auth_code: Some(code),
            order: TradeOrder {
                out_trade_no: format!("{prefix}{n:09}"),
                total_amount: Fen::new(100),
                subject: "bench".into(),
                store_id: Some("S1".into()),
                terminal_id: Some("T1".into()),
                sub_merchant: Some(SubMerchant::new(self.smid.clone())),
                ..TradeOrder::default()
            },
            ..TradePay::default()
        })
    }

    async fn one(&self, direct: bool) -> anyhow::Result<Duration> {
        let req = self.pay_req(if direct { "D" } else { "G" })?;
        let client = if direct {
            &self.direct_client
        } else {
            &self.gateway_client
        };
        let started = Instant::now();
        let outcome = client.execute(&req, &CallOptions::default()).await?;
        let took = started.elapsed();
        match outcome {
            Outcome::Success(_) => Ok(took),
            other => bail!("a pay did not succeed: {other:?}"),
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Pay {
        requests,
        concurrency,
        database,
        sqlite_synchronous,
        postgres_url,
    } = args.command;
    let sync = match sqlite_synchronous.as_str() {
        "full" => jianlian_store::SqliteSynchronous::Full,
        "normal" => jianlian_store::SqliteSynchronous::Normal,
        other => bail!("--sqlite-synchronous {other:?}: expected full or normal"),
    };
    if requests == 0
        || requests > 1_000_000
        || concurrency.is_empty()
        || concurrency.len() > 8
        || concurrency.iter().any(|c| !(1..=1_024).contains(c))
    {
        bail!("--requests must be 1..=1000000 and --concurrency 1 to 8 levels of 1..=1024");
    }
    let temp = tempfile::tempdir()?;
    let (url, schema) = match database.as_str() {
        "sqlite" => (
            format!("sqlite://{}", temp.path().join("bench.db").display()),
            None,
        ),
        "postgres" => {
            let base = postgres_url.context(
                "--postgres-url (or JIANLIAN_TEST_POSTGRES_URL) is required for postgres",
            )?;
            let schema = format!("jl_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&base).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut admin)
                .await?;
            let sep = if base.contains('?') { '&' } else { '?' };
            (
                format!("{base}{sep}options[search_path]={schema}"),
                Some((base, schema)),
            )
        }
        other => bail!("--database {other:?}: expected sqlite or postgres"),
    };
    let label = if database == "sqlite" {
        format!("sqlite (synchronous={sqlite_synchronous})")
    } else {
        database.clone()
    };
    let result = measure(&url, sync, requests, &concurrency, &label).await;
    if let Some((base, schema)) = schema {
        let mut admin = sqlx::PgConnection::connect(&base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await?;
    }
    result
}

async fn measure(
    url: &str,
    sync: jianlian_store::SqliteSynchronous,
    requests: usize,
    concurrency: &[usize],
    database: &str,
) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let rate_before = tokio::task::spawn_blocking(move || sign_rate(cores)).await??;

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
            ..AppSpec::default()
        })
        .await?;
    let gateway_key = PrivateKey::generate_2048()?;
    let alipay_public = PublicKey::from_text(&app.alipay_public_key)?;
    let settings = Settings {
        listen: LOCAL,
        public_url: format!("http://{LOCAL}"),
        database_url: url.to_owned(),
        sqlite_synchronous: sync,
        data_dir: std::env::temp_dir(),
        gateway_key: gateway_key.clone(),
        upstream: UpstreamSettings {
            gateway_url: sandbox.gateway_url(),
            app_id: app.app_id.clone(),
            pid: Pid::parse(&app.pid)?,
            private_key: acquirer_key.clone(),
            alipay_public_key: alipay_public.clone(),
            cert_sns: None,
            alipay_cert_sn: None,
            app_auth_token: None,
            sign_type: SignType::Rsa2,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            notify_url: format!("http://{LOCAL}/notify/alipay"),
        },
        loop_policy: LoopPolicy::default(),
        retry_schedule: RetrySchedule::default(),
        address_policy: AddressPolicy::default(),
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
        timestamp_skew_max: None,
        admin_token: None,
    };
    let gateway = Application::build(settings, Arc::new(clock.clone()))
        .await?
        .spawn(false);
    let channel_key = PrivateKey::generate_2048()?;
    let channel = ops::create_channel(
        &gateway.service().store,
        NewChannel {
            name: "bench".into(),
            pid: Pid::parse("2088000000000098")?,
            public_key: channel_key.public_key().to_pem(),
            parent: None,
            notify_hosts: vec![],
        },
        jianlian_alipay::Clock::now(&clock),
    )
    .await?;
    let client = |url: String, app_id: String, key: PrivateKey, alipay: PublicKey| {
        AlipayClient::new(
            ClientConfig {
                gateway_url: url,
                app: AppCredentials::new(app_id, key),
                alipay_public_key: alipay,
                alipay_cert_sn: None,
                connect_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(60),
            },
            Arc::new(clock.clone()),
        )
    };
    let gateway_client = client(
        format!("{}/gateway.do", gateway.base_url()),
        channel.app_id.to_string(),
        channel_key,
        gateway_key.public_key().clone(),
    )?;
    let direct_client = client(
        sandbox.gateway_url(),
        app.app_id.clone(),
        acquirer_key,
        alipay_public,
    )?;
    let profile = MerchantProfile {
        external_id: Some("BENCH1".into()),
        name: Some("压测商户有限公司".into()),
        alias_name: Some("压测".into()),
        service_phone: Some("021-55556666".into()),
        category_id: Some("2015050700000000".into()),
        contact_info: Some(vec![ContactInfo {
            name: "王五".into(),
            ..ContactInfo::default()
        }]),
        ..MerchantProfile::default()
    };
    let smid = match gateway_client
        .execute(&IndirectCreate { profile }, &CallOptions::default())
        .await?
    {
        Outcome::Success(r) => r.body.sub_merchant_id.context("no smid")?,
        other => bail!("onboarding: {other:?}"),
    };
    let store = ApiParams {
        biz_content: Some(serde_json::json!({"sub_merchant_id": smid, "store_id": "S1", "name": "s", "terminal_ids": ["T1"]}).to_string()),
        extra: Vec::new(),
    };
    let registered: Outcome<serde_json::Value> = gateway_client
        .execute_raw(
            "jianlian.merchant.store.create",
            store,
            &CallOptions::default(),
        )
        .await?;
    if !registered.is_success() {
        bail!("store: {registered:?}");
    }
    let buyer = sandbox
        .create_buyer(BuyerSpec {
            balance: Some(Fen::new(1_000_000_000_000)),
            ..BuyerSpec::default()
        })
        .await?
        .buyer_id;
    let half = requests.div_ceil(2);
    let total = requests * (concurrency.len() + 1) + 2 * half + 10;
    let mut codes = Vec::with_capacity(total);
    for _ in 0..total {
        codes.push(sandbox.payment_code(&buyer, None).await?);
    }
    let bench = Arc::new(Bench {
        gateway_client,
        direct_client,
        smid,
        codes,
        next_code: AtomicUsize::new(0),
        next_order: AtomicUsize::new(0),
    });
    // Warm up connections and caches.
    for _ in 0..10 {
        bench.one(false).await?;
    }

    // Peak: the best of the concurrency levels.
    let mut levels = Vec::with_capacity(concurrency.len());
    let mut peak = 0.0_f64;
    let mut peak_lat = Vec::new();
    let mut peak_clients = 0;
    let mut peak_cpu = None;
    for &clients in concurrency {
        let before = CpuTicks::now();
        let (rate, lat) = flat_out(&bench, requests, clients, false).await?;
        let cpu = CpuTicks::now().and_then(|after| Some(after.since(&before?, requests)));
        levels.push(format!("{clients} clients: {rate:.0}/s"));
        if rate > peak {
            (peak, peak_lat, peak_clients, peak_cpu) = (rate, lat, clients, cpu);
        }
    }
    // The same load straight to the sandbox: what the load generator and
    // the sandbox cost without the gateway (two signatures a pay).
    let before = CpuTicks::now();
    let (direct_peak, _) = flat_out(&bench, requests, peak_clients, true).await?;
    let direct_cpu = CpuTicks::now().and_then(|after| Some(after.since(&before?, requests)));
    let rate_after = tokio::task::spawn_blocking(move || sign_rate(cores)).await??;
    let rate = f64::midpoint(rate_before, rate_after);
    #[allow(clippy::cast_precision_loss)]
    let ceiling = (cores as f64) * rate / 4.0;
    say!(
        "RSA-2048 sign, per core with {cores} cores signing: {rate_before:.0}/s before, {rate_after:.0}/s after; ceiling {ceiling:.0} pays/s (4 signatures each)"
    );
    say!("peak runs: {}", levels.join(", "));

    // Half load, through the gateway then direct.
    let pace = peak / 2.0;
    let watch = StallWatch::start();
    let through = paced(&bench, half, pace, false).await?;
    let through_stalls = watch.finish();
    let watch = StallWatch::start();
    let direct = paced(&bench, half, pace, true).await?;
    let direct_stalls = watch.finish();
    let added = percentile(&through, 0.99).saturating_sub(percentile(&direct, 0.99));

    say!(
        "database: {database}; {requests} pays per peak run (best: {peak_clients} clients), {half} at half load"
    );
    say!("| figure | value |");
    say!("|---|---|");
    say!("| ceiling (cores × sign rate ÷ 4) | {ceiling:.0} pays/s |");
    say!(
        "| peak throughput | {peak:.0} pays/s ({:.2} × ceiling) |",
        peak / ceiling
    );
    say!(
        "| peak latency p50 / p99 | {:.1} ms / {:.1} ms |",
        ms(percentile(&peak_lat, 0.5)),
        ms(percentile(&peak_lat, 0.99))
    );
    say!(
        "| half load ({pace:.0}/s) through the gateway p50 / p99 | {:.1} ms / {:.1} ms |",
        ms(percentile(&through, 0.5)),
        ms(percentile(&through, 0.99))
    );
    say!(
        "| half load straight to the sandbox p50 / p99 | {:.1} ms / {:.1} ms |",
        ms(percentile(&direct, 0.5)),
        ms(percentile(&direct, 0.99))
    );
    say!("| gateway-added p99 at half load | {:.1} ms |", ms(added));
    say!(
        "| the machine at half load, through / direct: time stolen by the host; a 1 ms sleeper woke over {} ms late | {through_stalls} / {direct_stalls} |",
        STALL_LATE.as_millis()
    );
    // What the ratio can be at best: the share of the CPU a pay costs that
    // is its four signatures (at full use of every core, peak ÷ ceiling is
    // this share).
    let rsa_ms = 4_000.0 / rate;
    let cpu_json = peak_cpu.zip(direct_cpu).map(|(c, d)| {
        say!(
            "| CPU per pay at peak (all processes, busy time) | {:.2} ms, of which {:.2} ms system and {:.2} ms outside this process (the database server on PostgreSQL); signatures {rsa_ms:.2} ms = {:.2} of it |",
            c.busy_ms,
            c.system_ms,
            c.outside_ms,
            rsa_ms / c.busy_ms
        );
        // The gateway's own share: the difference with the direct run, less
        // its two signatures.
        let gateway_ms = c.busy_ms - d.busy_ms;
        say!(
            "| CPU per pay straight to the sandbox ({direct_peak:.0}/s) | {:.2} ms; so the gateway adds {gateway_ms:.2} ms, {:.2} ms besides its two signatures |",
            d.busy_ms,
            gateway_ms - rsa_ms / 2.0
        );
        serde_json::json!({"cpu_ms_per_pay": c.busy_ms, "system_ms_per_pay": c.system_ms,
            "outside_ms_per_pay": c.outside_ms,
            "rsa_share": rsa_ms / c.busy_ms, "direct_cpu_ms_per_pay": d.busy_ms,
            "direct_peak": direct_peak, "gateway_cpu_ms_per_pay": gateway_ms,
            "gateway_non_rsa_ms_per_pay": gateway_ms - rsa_ms / 2.0})
    });
    let json = serde_json::json!({
        "database": database, "cores": cores, "sign_rate": rate,
        "sign_rate_before": rate_before, "sign_rate_after": rate_after, "ceiling": ceiling,
        "peak_clients": peak_clients,
        "peak": peak, "peak_ratio": peak / ceiling,
        "peak_p50_ms": ms(percentile(&peak_lat, 0.5)), "peak_p99_ms": ms(percentile(&peak_lat, 0.99)),
        "half_p50_ms": ms(percentile(&through, 0.5)), "half_p90_ms": ms(percentile(&through, 0.9)),
        "half_p99_ms": ms(percentile(&through, 0.99)), "half_max_ms": ms(percentile(&through, 1.0)),
        "direct_p50_ms": ms(percentile(&direct, 0.5)), "direct_p99_ms": ms(percentile(&direct, 0.99)),
        "gateway_added_p99_ms": ms(added), "peak_cpu": cpu_json,
        "half_stalls": through_stalls.json(), "direct_stalls": direct_stalls.json(),
    });
    say!("{json}");
    drop(gateway);
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// How late a wake-up counts as a stall of the machine.
const STALL_LATE: Duration = Duration::from_millis(5);

/// What the machine itself did to a phase of the run, beside the pays: the
/// CPU time the host stole from it (`steal` in `/proc/stat`), and how often
/// a thread that sleeps 1 ms at a time woke more than [`STALL_LATE`] late
/// (with cores to spare at half load, a late wake-up is the host's pause,
/// which delays every pay in flight and reaches the p99).
struct StallWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sleeper: std::thread::JoinHandle<(u32, Duration)>,
    before: Option<CpuTicks>,
}

struct Stalls {
    steal_ms: Option<f64>,
    late_wakeups: u32,
    longest: Duration,
}

impl StallWatch {
    fn start() -> StallWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sleeper = std::thread::spawn(move || {
            let (mut late, mut longest) = (0_u32, Duration::ZERO);
            while !flag.load(Ordering::Relaxed) {
                let asked = Instant::now();
                std::thread::sleep(Duration::from_millis(1));
                let over = asked.elapsed().saturating_sub(Duration::from_millis(1));
                longest = longest.max(over);
                late += u32::from(over > STALL_LATE);
            }
            (late, longest)
        });
        StallWatch {
            stop,
            sleeper,
            before: CpuTicks::now(),
        }
    }

    fn finish(self) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        let (late_wakeups, longest) = self.sleeper.join().unwrap_or_default();
        let steal_ms = self
            .before
            .zip(CpuTicks::now())
            .map(|(before, after)| ticks_ms(after.steal.saturating_sub(before.steal)));
        Stalls {
            steal_ms,
            late_wakeups,
            longest,
        }
    }
}

impl Stalls {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"steal_ms": self.steal_ms, "late_wakeups": self.late_wakeups,
            "longest_late_ms": ms(self.longest)})
    }
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.steal_ms {
            Some(steal) => write!(f, "{steal:.0} ms stolen; ")?,
            None => write!(f, "steal unknown; ")?,
        }
        write!(
            f,
            "{} late wake-ups (longest {:.1} ms)",
            self.late_wakeups,
            ms(self.longest)
        )
    }
}

/// `/proc/stat` ticks (USER_HZ) in milliseconds.
fn ticks_ms(ticks: u64) -> f64 {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    #[allow(clippy::cast_precision_loss)]
    let ms = ticks as f64 * 1_000.0 / hz as f64;
    ms
}

/// The machine's busy CPU time so far (every process: this one, and the
/// database server when it is PostgreSQL), from `/proc/stat`; `None` where
/// there is none.
struct CpuTicks {
    /// user + nice + system + irq + softirq, and system + irq + softirq.
    busy: u64,
    system: u64,
    /// This process's user + system time, from `/proc/self/stat`.
    this_process: u64,
    /// Time the host ran something else while this machine wanted to run.
    steal: u64,
}

/// Busy CPU per pay over a run.
struct CpuPerPay {
    busy_ms: f64,
    system_ms: f64,
    /// Busy time outside this process: the PostgreSQL server's, when the
    /// database is PostgreSQL (and whatever else the machine ran).
    outside_ms: f64,
}

impl CpuTicks {
    fn now() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        let system = at(2) + at(5) + at(6);
        // The command name (field 2) may hold spaces; the fields after its
        // closing parenthesis start with field 3, so utime (14) and stime
        // (15) are the 12th and 13th there.
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after_name = own.rsplit_once(')')?.1;
        let own: Vec<u64> = after_name
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let this_process = own.get(11).copied()? + own.get(12).copied()?;
        Some(CpuTicks {
            busy: at(0) + at(1) + system,
            system,
            this_process,
            steal: at(7),
        })
    }

    fn since(&self, before: &CpuTicks, pays: usize) -> CpuPerPay {
        #[allow(clippy::cast_precision_loss)]
        let per_pay = |ticks: u64| ticks_ms(ticks) / pays.max(1) as f64;
        let busy = self.busy.saturating_sub(before.busy);
        let own = self.this_process.saturating_sub(before.this_process);
        CpuPerPay {
            busy_ms: per_pay(busy),
            system_ms: per_pay(self.system.saturating_sub(before.system)),
            outside_ms: per_pay(busy.saturating_sub(own)),
        }
    }
}

/// `clients` clients send `n` pays (`direct`: to the sandbox, not through
/// the gateway), each as soon as its previous one is answered; returns pays
/// per second and the sorted latencies.
async fn flat_out(
    bench: &Arc<Bench>,
    n: usize,
    clients: usize,
    direct: bool,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let started = Instant::now();
    let remaining = Arc::new(AtomicUsize::new(n));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let bench = bench.clone();
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                lat.push(bench.one(direct).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.extend(t.await??);
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    Ok((rate, lat))
}

/// Sends `n` pays at `per_second`, each in its own task; returns the sorted latencies.
async fn paced(
    bench: &Arc<Bench>,
    n: usize,
    per_second: f64,
    direct: bool,
) -> anyhow::Result<Vec<Duration>> {
    let gap = Duration::from_secs_f64(1.0 / per_second.max(1.0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + gap.mul_f64(f64::from(u32::try_from(i).unwrap_or(u32::MAX)));
        tokio::time::sleep_until(at).await;
        let bench = bench.clone();
        tasks.push(tokio::spawn(async move { bench.one(direct).await }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.push(t.await??);
    }
    lat.sort();
    Ok(lat)
}
