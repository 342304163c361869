//! `jianlian ledger check`: every journal of the double-entry ledger balances
//! and the trial balance is zero (R9); prints each account's balance and exits
//! 1 when the books do not balance.

use std::process::ExitCode;

use jianlian_store::StoreError;

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
    /// Check the books and print the balances (yuan, debits positive).
    Check,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Check = args.command;
    let store = args.gateway.store().await?;
    match store.ledger_check().await {
        Ok(balance) => {
            let mut view = jianlian_gateway::ledger_json(&balance);
            view["journals"] = balance.journals.into();
            print_json(&view)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::Ledger(e)) => {
            eprintln!("the ledger does not balance: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
