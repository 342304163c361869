//! `jianlian notify dead-letters|replay`: channel notifications that failed on
//! every attempt of the schedule, and putting one back in the queue.

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
    /// Dead letters, oldest first.
    DeadLetters {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Deliver a dead letter again (a fresh schedule; the running gateway sends it).
    Replay { id: i64 },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.gateway.store().await?;
    match args.command {
        Command::DeadLetters { limit } => {
            let letters = ops::dead_letters(&store, limit).await?;
            print_json(&serde_json::Value::Array(
                letters.iter().map(ops::outbox_json).collect(),
            ))?;
        }
        Command::Replay { id } => {
            ops::replay_dead_letter(&store, id, SystemClock.now()).await?;
            print_json(&serde_json::json!({ "replayed": id }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
