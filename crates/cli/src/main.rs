//! `jianlian`: one binary for the acquirer gateway, the offline Alipay sandbox,
//! the demo, the admin commands and the signing tools. `main` only parses the
//! command line and hands over to the command's module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod keys;
mod sandbox;
mod sandbox_ctl;
mod sign;
mod verify;

/// jianlian: indirect acquiring for Alipay face-to-face payment.
#[derive(Debug, Parser)]
#[command(name = "jianlian", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate RSA-2048 key pairs in every form Alipay uses.
    Keys(keys::Args),
    /// Sign request parameters read on stdin; print the sign content and signature.
    Sign(sign::Args),
    /// Verify a request, response or notification read on stdin.
    Verify(verify::Args),
    /// Run the offline Alipay sandbox (gateway, control API, notifications).
    Sandbox(sandbox::Args),
    /// Drive a running sandbox through its control API.
    SandboxCtl(sandbox_ctl::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Keys(args) => keys::run(args).await,
            Command::Sign(args) => sign::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::SandboxCtl(args) => sandbox_ctl::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
