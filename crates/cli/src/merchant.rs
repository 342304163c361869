//! `jianlian merchant …`: the merchant registry Alipay lacks (R2.1): onboard a
//! merchant as the bank (or for a channel), list and search, show one with its
//! stores, terminals and `source` history, correct `source` in bulk with an
//! audit trail (R2.3), set fee rates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use jianlian_alipay::api::merchant::MerchantProfile;
use jianlian_alipay::{Clock as _, Rate, SystemClock};
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, Pid};
use jianlian_gateway::Service;
use jianlian_gateway::ops::{self, AdminMerchant};
use serde_json::json;

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
    /// Register and onboard a merchant (calls ant.merchant.expand.indirect.create).
    Create {
        /// The channel that brought the merchant (its PID is the default `source`).
        #[arg(long, value_name = "APP_ID")]
        channel: String,
        /// The merchant's data: a JSON object with Alipay's onboarding fields.
        #[arg(long, value_name = "FILE")]
        profile: PathBuf,
        /// Fee rate, e.g. 0.0038 (default: fees.rate).
        #[arg(long)]
        fee_rate: Option<String>,
        /// Fee rate on credit funding (Huabei, credit cards).
        #[arg(long)]
        credit_fee_rate: Option<String>,
    },
    /// List and search merchants.
    List {
        /// A piece of the name or external_id.
        #[arg(long)]
        q: Option<String>,
        /// draft, submitted, onboarded or rejected.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[arg(long, value_name = "APP_ID")]
        channel: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One merchant (by smid or number) with stores, terminals and source history.
    Show { merchant: String },
    /// Correct `source` on many merchants at once, audited (R2.3).
    SetSource {
        /// The new source PID.
        #[arg(long)]
        to: String,
        /// Who makes the change (kept in the audit trail).
        #[arg(long)]
        actor: String,
        #[arg(long)]
        reason: String,
        /// Merchants by smid or number.
        #[arg(required = true)]
        merchants: Vec<String>,
    },
    /// Set a merchant's fee rates (later payments use them).
    SetFees {
        merchant: String,
        #[arg(long)]
        rate: String,
        #[arg(long)]
        credit_rate: Option<String>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = SystemClock.now();
    match args.command {
        Command::Create {
            channel,
            profile,
            fee_rate,
            credit_fee_rate,
        } => {
            let text = std::fs::read_to_string(&profile)
                .with_context(|| format!("reading {}", profile.display()))?;
            let profile: MerchantProfile = jianlian_alipay::api::parse_biz(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", profile.display()))?;
            let config = args.gateway.load()?;
            config.ensure_gateway_key()?;
            let settings = config.resolve()?;
            let fees = match fee_rate {
                None => None,
                Some(rate) => Some(FeePolicy {
                    rate: Rate::parse(&rate).context("--fee-rate")?,
                    credit_rate: credit_fee_rate
                        .map(|r| Rate::parse(&r))
                        .transpose()
                        .context("--credit-fee-rate")?,
                }),
            };
            let svc = Service::start(settings, Arc::new(SystemClock)).await?;
            let merchant = ops::onboard_merchant(
                &svc,
                AdminMerchant {
                    channel: AppId::parse(&channel).context("--channel")?,
                    profile,
                    fees,
                },
            )
            .await?;
            print_json(&ops::merchant_json(&merchant))?;
        }
        Command::List {
            q,
            state,
            source,
            channel,
            limit,
        } => {
            let store = args.gateway.store().await?;
            let filter =
                jianlian_gateway::app::merchant_filter(q, state, source, channel, Some(limit))?;
            let merchants = store.search_merchants(&filter).await?;
            print_json(&serde_json::Value::Array(
                merchants.iter().map(ops::merchant_json).collect(),
            ))?;
        }
        Command::Show { merchant } => {
            let store = args.gateway.store().await?;
            let m = ops::find_merchant(&store, &merchant).await?;
            let stores = store.stores(m.id).await?;
            let terminals = store.terminals(m.id).await?;
            let history = store.source_changes(m.id).await?;
            let mut view = ops::merchant_json(&m);
            view["profile"] = serde_json::to_value(&m.profile)?;
            view["stores"] = stores
                .iter()
                .map(|s| {
                    json!({
                        "store_id": s.code.as_str(),
                        "name": s.name,
                        "terminal_ids": terminals.iter().filter(|t| t.store == s.code).map(|t| t.id.as_str()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            view["source_history"] = history
                .iter()
                .map(|c| {
                    json!({
                        "from": c.from.as_str(), "to": c.to.as_str(), "actor": c.actor,
                        "reason": c.reason, "at": c.at.to_string(),
                    })
                })
                .collect();
            print_json(&view)?;
        }
        Command::SetSource {
            to,
            actor,
            reason,
            merchants,
        } => {
            let store = args.gateway.store().await?;
            let to = Pid::parse(&to).context("--to")?;
            let changes = ops::set_source(&store, &merchants, &to, &actor, &reason, now).await?;
            print_json(&json!({
                "changed": changes.iter().map(|c| json!({
                    "merchant": c.merchant.get(), "from": c.from.as_str(), "to": c.to.as_str(),
                })).collect::<Vec<_>>(),
                "unchanged": merchants.len() - changes.len(),
            }))?;
        }
        Command::SetFees {
            merchant,
            rate,
            credit_rate,
        } => {
            let store = args.gateway.store().await?;
            let m = ops::set_fees(&store, &merchant, &rate, credit_rate.as_deref(), now).await?;
            print_json(&ops::merchant_json(&m))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
