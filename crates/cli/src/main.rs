//! `jianlian`: one binary for the acquirer gateway, the offline Alipay sandbox,
//! the demo, the admin commands and the signing tools. `main` only parses the
//! command line and hands over to the command's module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod channel;
mod demo;
mod gateway_args;
mod keys;
mod ledger;
mod merchant;
mod notify;
mod sandbox;
mod sandbox_ctl;
mod serve;
mod sign;
mod store_cmd;
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
    /// Run the acquirer gateway (embeds the sandbox when no upstream is configured).
    Serve(serve::Args),
    /// A scripted business day on virtual time against the embedded sandbox.
    Demo(demo::Args),
    /// Channels: create, list, show, rotate-key.
    Channel(channel::Args),
    /// The merchant registry: create, list, show, set-source, set-fees.
    Merchant(merchant::Args),
    /// Stores and terminals of a merchant.
    Store(store_cmd::Args),
    /// The double-entry ledger: check.
    Ledger(ledger::Args),
    /// Channel notifications: dead letters and replay.
    Notify(notify::Args),
    /// Load generators: `bench pay`.
    Bench(bench::Args),
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Channel(args) => channel::run(args).await,
            Command::Merchant(args) => merchant::run(args).await,
            Command::Store(args) => store_cmd::run(args).await,
            Command::Ledger(args) => ledger::run(args).await,
            Command::Notify(args) => notify::run(args).await,
            Command::Bench(args) => bench::run(args).await,
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
