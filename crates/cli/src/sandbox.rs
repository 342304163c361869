//! `jianlian sandbox`: runs the offline Alipay sandbox (gateway, control API,
//! notifications) on the machine clock plus a persisted virtual offset, with
//! its state in `--state DIR`, until Ctrl-C.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use jianlian_sandbox::{Sandbox, SandboxClock, SandboxConfig};

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
    let handle = Sandbox::start(config)
        .await
        .context("starting the sandbox")?;
    let base = handle.base_url().to_owned();
    let mut out = std::io::stdout().lock();
    writeln!(out, "gateway: {}", handle.gateway_url())?;
    writeln!(out, "control: {}", handle.control_url())?;
    match &args.state {
        Some(dir) => writeln!(out, "state:   {}", dir.display())?,
        None => writeln!(out, "state:   in memory (use --state DIR to keep it)")?,
    }
    writeln!(out, "now:     {} (Beijing, virtual)", handle.clock())?;
    writeln!(out)?;
    writeln!(
        out,
        "Create an app (prints app_id, pid and Alipay's public key):"
    )?;
    writeln!(out, "  jianlian keys generate --out app")?;
    writeln!(
        out,
        "  jianlian sandbox-ctl --url {base} apps create --public-key app/app_public_key.pem"
    )?;
    writeln!(
        out,
        "  curl -s {base}/sandbox/apps -d '{{\"app_public_key\":\"<PEM or base64>\"}}'"
    )?;
    writeln!(out, "Docs: docs/sandbox.md. Ctrl-C stops.")?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
