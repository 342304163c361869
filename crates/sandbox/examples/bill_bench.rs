//! Benchmark of the daily bills and the SFTP server: time and peak memory to
//! write the bill of a day with 1,000,000 trades (both files: the 25-column
//! trade bill and the 27-column clearing file), their sizes, and SFTP
//! download throughput on loopback.
//!
//! It runs a real in-process sandbox: the trades are put straight into its
//! state (going through `gateway.do` would measure RSA signing, see the
//! `pay_load` bench), then the clock is advanced to 09:00 and the sandbox's
//! own scheduled work writes the bill. Peak memory is the process's VmHWM
//! (reset through /proc/self/clear_refs just before the bill run).
//!
//! `cargo run --release -p jianlian-sandbox --example bill_bench`
//! (env: `JIANLIAN_BENCH_TRADES`, default 1000000; `JIANLIAN_BENCH_SFTP_RUNS`,
//! default 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey as SshKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;

use jianlian_alipay::api::trade::TradeStatus;
use jianlian_alipay::time::parse_beijing;
use jianlian_alipay::{Fen, ManualClock, PrivateKey, Rate};
use jianlian_sandbox::bills::read::{Table, entries};
use jianlian_sandbox::model::{FundChannel, FundPart, Instrument, Origin, Refund, Trade};
use jianlian_sandbox::{AppSpec, BillingOptions, BuyerSpec, Sandbox, SandboxConfig, SftpUserSpec};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A line of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used: the figure to trust
/// when other work shares the machine's cores.
fn cpu_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based) of the whole line; the
    // kernel's USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn part(channel: FundChannel, fen: i64) -> FundPart {
    FundPart {
        channel,
        amount: Fen::new(fen),
        fund_type: None,
        bank_code: None,
        card_index: None,
        voucher_id: None,
        voucher_name: (channel == FundChannel::Mdiscount).then(|| "满10减1".to_owned()),
    }
}

/// The i-th trade of the day: amounts from 0.01 to 500.00, a merchant voucher
/// on every tenth, a partial refund on every twentieth.
#[allow(clippy::too_many_arguments)]
fn trade(
    i: usize,
    n: usize,
    day_start: Timestamp,
    pid: &str,
    app_id: &str,
    smid: &str,
    buyers: &[String],
    rate: Rate,
) -> Trade {
    let i64i = i64::try_from(i).unwrap();
    let n64 = i64::try_from(n).unwrap();
    let at = day_start
        .checked_add(SignedDuration::from_millis(i64i * 86_000_000 / n64))
        .unwrap();
    let total = 1 + (i64i * 7919) % 50_000;
    let funding = if i.is_multiple_of(10) && total > 200 {
        vec![
            part(FundChannel::Mdiscount, 100),
            part(FundChannel::Alipayaccount, total - 100),
        ]
    } else {
        vec![part(FundChannel::Alipayaccount, total)]
    };
    let mut t = Trade {
        trade_no: format!("20260302220000{i:014}"),
        out_trade_no: format!("BENCH{i:010}"),
        app_id: app_id.to_owned(),
        pid: pid.to_owned(),
        smid: smid.to_owned(),
        origin: Origin::Pay,
        status: TradeStatus::TradeSuccess,
        total: Fen::new(total),
        subject: format!("测试商品{}", i % 100),
        body: i.is_multiple_of(3).then(|| "门店消费".to_owned()),
        store_id: Some(format!("SHKFC{:03}", i % 50)),
        terminal_id: Some(format!("T{:04}", i % 500)),
        operator_id: Some("OP01".to_owned()),
        passback_params: None,
        merchant_order_no: None,
        disable_pay_channels: None,
        ext_user_info: None,
        buyer_id: buyers[i % buyers.len()].clone(),
        instrument: Instrument::Balance,
        funding,
        fee_rate: rate,
        fee: Fen::ZERO,
        fee_returned: Fen::ZERO,
        refunds: Vec::new(),
        created_at: at,
        paid_at: Some(at),
        closed_at: None,
        expires_at: at,
        finish_at: None,
        close_reason: None,
        notify_url: None,
        sign_type: "RSA2".to_owned(),
        charset: "utf-8".to_owned(),
        pay_after_queries: None,
        queries: 0,
        late_pay_after: Vec::new(),
        late_payment: None,
        settlement_id: None,
        no_refund: false,
        auth_code_masked: None,
    };
    t.fee = rate.fee_on(t.receipt_amount());
    if i.is_multiple_of(20) && total > 100 {
        let amount = Fen::new(100);
        let fee_return = rate.fee_on(amount);
        t.fee_returned = fee_return;
        t.refunds.push(Refund {
            out_request_no: format!("RF{i:010}"),
            amount,
            reason: None,
            parts: vec![part(FundChannel::Alipayaccount, 100)],
            merchant_cost: amount,
            fee_return,
            at,
            store_id: None,
            terminal_id: None,
            operator_id: None,
            by_cancel: false,
            settlement_id: None,
        });
    }
    t
}

struct Client {
    host_key: String,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
            if key.to_openssh().is_ok_and(|k| k == self.host_key)))
    }
}

fn main() {
    let trades = env_usize("JIANLIAN_BENCH_TRADES", 1_000_000);
    let sftp_runs = env_usize("JIANLIAN_BENCH_SFTP_RUNS", 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(trades, sftp_runs));
}

async fn run(n: usize, sftp_runs: usize) {
    let clock = ManualClock::at_beijing("2026-03-02 00:00:00").unwrap();
    let config = SandboxConfig {
        alipay_private_key: Some(PrivateKey::generate_2048().unwrap()),
        ..SandboxConfig::for_tests(clock)
    };
    let sandbox = Sandbox::start_with(
        config,
        BillingOptions {
            sftp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let app = sandbox
        .create_app(AppSpec {
            app_public_key: Some(PrivateKey::generate_2048().unwrap().public_key().to_pem()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut buyers = Vec::new();
    for i in 0..1000u32 {
        let b = sandbox
            .create_buyer(BuyerSpec {
                name: i.is_multiple_of(2).then(|| "张小明".to_owned()),
                ..Default::default()
            })
            .await
            .unwrap();
        buyers.push(b.buyer_id);
    }
    let day_start = parse_beijing("2026-03-02 00:00:00").unwrap();
    let rate = Rate::parse("0.0038").unwrap();
    let smid = "2088000000009999";
    let started = Instant::now();
    sandbox
        .shared()
        .with(|c| {
            for i in 0..n {
                let t = trade(i, n, day_start, &app.pid, &app.app_id, smid, &buyers, rate);
                c.st.trades.insert(t.trade_no.clone(), t);
            }
        })
        .unwrap();
    println!(
        "trades: {n} (built in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // Payouts of the day are planned at midnight: timed on their own.
    let rss_state = status_kb("VmRSS");
    let cpu = cpu_secs();
    let started = Instant::now();
    let target = parse_beijing("2026-03-03 08:59:59").unwrap();
    sandbox
        .advance(target.duration_since(sandbox.now()).as_secs())
        .await
        .unwrap();
    let planning = started.elapsed();
    let planning_cpu = cpu_secs() - cpu;

    // The bill run at 09:00, with the peak RSS reset just before.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS");
    let cpu = cpu_secs();
    let started = Instant::now();
    sandbox.advance(1).await.unwrap();
    let billing = started.elapsed();
    let billing_cpu = cpu_secs() - cpu;
    let peak = status_kb("VmHWM");
    let record = sandbox.bills(Some(&app.pid), None).await.remove(0);
    println!("state in memory: RSS {:.0} MiB", mib(rss_state));
    println!(
        "payout planning at midnight (scan + sort of the day): {:.2} s wall, {:.2} s CPU",
        planning.as_secs_f64(),
        planning_cpu
    );
    println!(
        "bill run at 09:00 (rows, trade bill, clearing file): {:.2} s wall, {:.2} s CPU; RSS before {:.0} MiB, peak {:.0} MiB (+{:.0} MiB)",
        billing.as_secs_f64(),
        billing_cpu,
        mib(rss_before),
        mib(peak),
        mib(peak.saturating_sub(rss_before))
    );
    println!(
        "rows: {} trades + {} refunds; net {} yuan",
        record.trade_rows, record.refund_rows, record.net
    );
    let mut files = Vec::new();
    for f in &record.files {
        let bytes = sandbox
            .bill_file(&app.pid, record.date, &f.name)
            .await
            .unwrap();
        let detail = entries(&bytes).unwrap().remove(0);
        println!(
            "{:?} file {}: {:.1} MiB zipped, detail CSV {:.1} MiB (GBK)",
            f.flavor,
            f.name,
            bytes.len() as f64 / 1048576.0,
            detail.bytes.len() as f64 / 1048576.0
        );
        let table = Table::parse(&detail.text);
        assert_eq!(table.rows.len(), record.trade_rows + record.refund_rows);
        files.push((f.flavor, f.name.clone(), bytes));
    }

    // SFTP: download the trade bill from loopback.
    let key = SshKey::from(Ed25519Keypair::from_seed(&[42; 32]));
    sandbox
        .set_sftp_user(
            &app.pid,
            SftpUserSpec {
                public_keys: vec![key.public_key().to_openssh().unwrap()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let info = sandbox.sftp().unwrap().clone();
    let mut ssh = russh::client::connect(
        Arc::new(russh::client::Config::default()),
        info.addr,
        Client {
            host_key: info.host_public_key.clone(),
        },
    )
    .await
    .unwrap();
    assert!(
        ssh.authenticate_publickey(&app.pid, PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .unwrap()
            .success()
    );
    let channel = ssh.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    let sftp = SftpSession::new(channel.into_stream()).await.unwrap();
    for (flavor, name, bytes) in &files {
        let path = format!("download/20260302/{name}");
        let mut best = Duration::MAX;
        for _ in 0..sftp_runs {
            let started = Instant::now();
            let got = sftp.read(path.as_str()).await.unwrap();
            let took = started.elapsed();
            assert_eq!(&got, bytes, "SFTP serves the stored bytes");
            best = best.min(took);
        }
        println!(
            "SFTP download of the {flavor:?} file ({:.1} MiB): best of {sftp_runs} {:.2} s = {:.1} MiB/s",
            bytes.len() as f64 / 1048576.0,
            best.as_secs_f64(),
            bytes.len() as f64 / 1048576.0 / best.as_secs_f64()
        );
    }
    sandbox.shutdown().await;
}
