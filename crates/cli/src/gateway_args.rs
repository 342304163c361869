//! The options every gateway command shares (`--config`, `--data-dir`,
//! `--database-url`), so `jianlian serve` and the admin commands open the
//! same configuration and the same database.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jianlian_gateway::config::{Config, UpstreamConfig};
use jianlian_store::Store;

/// Written by `serve` when it embeds the sandbox, read by the admin commands
/// that call Alipay (so `jianlian merchant create` reaches the same sandbox).
pub const EMBEDDED_UPSTREAM_FILE: &str = "embedded-upstream.toml";

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// The TOML configuration file (docs/gateway.md); `JIANLIAN_…` variables override it.
    #[arg(long, env = "JIANLIAN_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where the SQLite database and generated keys live (overrides `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…` (overrides `database.url`).
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
}

impl GatewayArgs {
    /// The configuration: file, environment, then these flags, checked the
    /// way `serve` checks it (every value and how the timings relate), so an
    /// admin command never works on a configuration the gateway would refuse.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = Some(dir.clone());
        }
        if let Some(url) = &self.database_url {
            config.database.url = Some(url.clone());
        }
        if config.upstream.is_none() {
            let embedded = config.data_dir().join(EMBEDDED_UPSTREAM_FILE);
            if embedded.exists() {
                config.upstream = Some(read_upstream(&embedded)?);
            }
        }
        config.check()?;
        Ok(config)
    }

    /// The configuration's database, migrated.
    pub async fn store(&self) -> anyhow::Result<Store> {
        let config = self.load()?;
        let url = config.database_url();
        Store::connect(&url)
            .await
            .with_context(|| format!("opening the database {}", redact(&url)))
    }
}

fn read_upstream(path: &Path) -> anyhow::Result<UpstreamConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: not an [upstream] table", path.display()))
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Prints JSON to stdout, one document.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
