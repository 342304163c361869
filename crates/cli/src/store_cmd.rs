//! `jianlian store create`: registers a merchant's store and its terminals
//! (R3.2); a trade naming an unregistered store or terminal is refused.

use std::process::ExitCode;

use jianlian_alipay::{Clock as _, SystemClock};
use jianlian_gateway::ops;

use crate::gateway_args::{GatewayArgs, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Register a store (or add terminals to an existing one).
    Create {
        /// The merchant, by smid or number.
        #[arg(long)]
        merchant: String,
        /// The store's code, e.g. SHKFC001.
        #[arg(long = "store-id")]
        store_id: String,
        #[arg(long)]
        name: String,
        /// A terminal of the store (repeatable).
        #[arg(long = "terminal")]
        terminals: Vec<String>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Create {
        merchant,
        store_id,
        name,
        terminals,
    } = args.command;
    let store = args.gateway.store().await?;
    let created = ops::create_store(
        &store,
        &merchant,
        &store_id,
        &name,
        &terminals,
        SystemClock.now(),
    )
    .await?;
    print_json(&ops::store_json(&created))?;
    Ok(ExitCode::SUCCESS)
}
