//! `jianlian channel create|list|show|rotate-key`: the channels (ISVs) the
//! gateway serves, each with a gateway-issued `app_id`, its own PID and RSA
//! public key, an optional parent channel and its allowed notify hosts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use jianlian_alipay::{Clock as _, SystemClock};
use jianlian_core::ids::{AppId, Pid};
use jianlian_gateway::ops::{self, NewChannel};

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
    /// Register a channel; prints {"app_id", "gateway_public_key"}.
    Create {
        #[arg(long)]
        name: String,
        /// The channel's Alipay PID (2088…): the default `source` of its merchants.
        #[arg(long)]
        pid: String,
        /// The channel's RSA public key (PEM or bare base64).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The channel above this one.
        #[arg(long, value_name = "APP_ID")]
        parent: Option<String>,
        /// A host the channel may name in notify_url (repeatable; none = any
        /// host the address policy allows).
        #[arg(long = "notify-host", value_name = "HOST")]
        notify_hosts: Vec<String>,
    },
    /// Every channel.
    List,
    /// One channel.
    Show { app_id: String },
    /// Replace a channel's public key.
    RotateKey {
        app_id: String,
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.gateway.store().await?;
    match args.command {
        Command::Create {
            name,
            pid,
            public_key,
            parent,
            notify_hosts,
        } => {
            let key = crate::keys::load_public_key(&public_key)?;
            let config = args.gateway.load()?;
            let (gateway_key, _) = config
                .ensure_gateway_key()
                .context("the gateway's signing key")?;
            let new = NewChannel {
                name,
                pid: Pid::parse(&pid).context("--pid")?,
                public_key: key.to_pem(),
                parent: parent
                    .map(|p| AppId::parse(&p))
                    .transpose()
                    .context("--parent")?,
                notify_hosts,
            };
            let channel = ops::create_channel(&store, new, SystemClock.now()).await?;
            print_json(&ops::channel_created_json(
                &channel,
                &gateway_key.public_key().to_base64(),
            ))?;
        }
        Command::List => {
            let channels = store.channels().await?;
            print_json(&serde_json::Value::Array(
                channels.iter().map(ops::channel_json).collect(),
            ))?;
        }
        Command::Show { app_id } => {
            let id = AppId::parse(&app_id).context("APP_ID")?;
            let channel = store
                .channel(&id)
                .await?
                .with_context(|| format!("no channel {app_id}"))?;
            print_json(&ops::channel_json(&channel))?;
        }
        Command::RotateKey { app_id, public_key } => {
            let id = AppId::parse(&app_id).context("APP_ID")?;
            let key = crate::keys::load_public_key(&public_key)?;
            let channel = ops::rotate_channel_key(&store, &id, &key.to_pem()).await?;
            print_json(&ops::channel_json(&channel))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
