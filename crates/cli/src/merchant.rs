//! `jianlian merchant …`: the merchant registry Alipay lacks (R2.1): onboard a
//! merchant as the bank (or for a channel), list and search, show one with its
//! stores, terminals and `source` history, correct `source` in bulk (sent to
//! Alipay, then recorded with an audit trail, R2.3), set fee rates. The work
//! itself is in `jianlian_gateway::ops`, shared with the admin API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use jianlian_alipay::api::merchant::MerchantProfile;
use jianlian_alipay::{Clock as _, SystemClock};
use jianlian_core::ids::{AppId, Pid};
use jianlian_gateway::Service;
use jianlian_gateway::ops::{self, AdminMerchant};

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
    /// Correct `source` on many merchants at once (R2.3): sent to Alipay for
    /// each, recorded and audited where Alipay accepted it; exits 1 unless
    /// every merchant now has the new source.
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

/// The gateway's service, for commands that call Alipay.
async fn service(gateway: &GatewayArgs) -> anyhow::Result<Arc<Service>> {
    let config = gateway.load()?;
    config.ensure_gateway_key()?;
    let settings = config.resolve()?;
    Ok(Service::start(settings, Arc::new(SystemClock)).await?)
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
            let fees = ops::parse_fees(fee_rate.as_deref(), credit_fee_rate.as_deref())?;
            let svc = service(&args.gateway).await?;
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
            print_json(&ops::merchant_detail_json(&store, &merchant).await?)?;
        }
        Command::SetSource {
            to,
            actor,
            reason,
            merchants,
        } => {
            let to = Pid::parse(&to).context("--to")?;
            let svc = service(&args.gateway).await?;
            let results = ops::set_source(&svc, &merchants, &to, &actor, &reason).await?;
            print_json(&ops::source_report_json(&results))?;
            if !ops::source_correction_complete(&results) {
                // The report names the merchants Alipay refused or did not
                // answer for; a script must not take the run for complete.
                return Ok(ExitCode::FAILURE);
            }
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
