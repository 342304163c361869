//! `jianlian sandbox`: runs the offline Alipay sandbox (gateway, control API,
//! notifications, daily bills, payouts, optionally the SFTP bill server) on
//! the machine clock plus a persisted virtual offset, with its state in
//! `--state DIR`, until Ctrl-C.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use jianlian_sandbox::{BillingOptions, Calendar, Sandbox, SandboxClock, SandboxConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; port 80 lets the
    /// official Python SDK reach it).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Directory holding the sandbox's state; without it, state is in memory.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Seed of the id generator for a new state (ids are reproducible).
    #[arg(long, default_value_t = 20_880_000)]
    seed: u64,
    /// Serve the daily bills over SFTP on this address (e.g. 127.0.0.1:2222;
    /// port 0 picks a free port). Credentials: `sandbox-ctl sftp set-user`.
    #[arg(long)]
    sftp_listen: Option<SocketAddr>,
    /// More years of the Chinese working-day calendar (CSV `date,kind,name`,
    /// as crates/sandbox/data/cn_calendar.csv); the sandbox ships 2024–2026.
    #[arg(long)]
    calendar: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let config = SandboxConfig {
        listen: args.listen,
        state_dir: args.state.clone(),
        clock: SandboxClock::real_time(),
        seed: args.seed,
        alipay_private_key: None,
    };
    let calendar = match &args.calendar {
        Some(path) => Some(Calendar::builtin_with_file(path).context("loading --calendar")?),
        None => None,
    };
    let billing = BillingOptions {
        calendar,
        sftp_listen: args.sftp_listen,
    };
    let handle = Sandbox::start_with(config, billing)
        .await
        .context("starting the sandbox")?;
    let base = handle.base_url().to_owned();
    let mut banner = String::new();
    let mut line = |text: String| {
        banner.push_str(&text);
        banner.push('\n');
    };
    line(format!("gateway: {}", handle.gateway_url()));
    line(format!("control: {}", handle.control_url()));
    if let Some(sftp) = handle.sftp() {
        line(format!(
            "sftp:    sftp -P {} <pid>@{} (host key {})",
            sftp.addr.port(),
            sftp.addr.ip(),
            sftp.host_fingerprint
        ));
    }
    let years: Vec<String> = handle
        .calendar()
        .years()
        .iter()
        .map(i16::to_string)
        .collect();
    line(format!(
        "calendar: working days known for {}",
        years.join(", ")
    ));
    line(match &args.state {
        Some(dir) => format!("state:   {}", dir.display()),
        None => "state:   in memory (use --state DIR to keep it)".to_owned(),
    });
    line(format!("now:     {} (Beijing, virtual)", handle.clock()));
    line(String::new());
    line("Create an app (prints app_id, pid and Alipay's public key):".to_owned());
    line("  jianlian keys generate --out app".to_owned());
    line(format!(
        "  jianlian sandbox-ctl --url {base} apps create --public-key app/app_public_key.pem"
    ));
    line(format!(
        "  curl -s {base}/sandbox/apps -d '{{\"app_public_key\":\"<PEM or base64>\"}}'"
    ));
    line("Docs: docs/sandbox.md. Ctrl-C stops.".to_owned());
    // One write, and best effort: whoever started the sandbox may stop
    // reading its stdout after the first lines, and a closed pipe must not
    // stop the server.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
