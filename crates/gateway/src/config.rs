//! The gateway's configuration: one TOML file plus `JIANLIAN_…` environment
//! overrides, checked at start so a bad value fails with a message naming its
//! key, never later in the middle of a payment.
//!
//! Two stages: [`Config`] is what the file and the environment say (plain
//! values, every key optional with a documented default); [`Config::resolve`]
//! turns it into [`Settings`]: parsed addresses, keys read from their files,
//! the closed-loop policy, the notification schedule and the fee defaults.
//! Values that contradict each other are refused too ([`Config::check`]: a
//! job lease shorter than the calls it covers, a trade intent stale before
//! its pay call can time out); the admin commands run the same check.
//! Secrets are never inline: keys are file paths, and `Settings` prints keys
//! as `(..)`.
//!
//! Every key is listed once in [`KEYS`]; the environment override of
//! `section.key` is `JIANLIAN_SECTION_KEY` (`upstream.app_id` →
//! `JIANLIAN_UPSTREAM_APP_ID`; top-level `data_dir` → `JIANLIAN_DATA_DIR`),
//! lists are comma-separated there. `docs/gateway.md` documents each key, and
//! a test checks it names every one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jianlian_alipay::auth_code::PaymentCodeRule;
use jianlian_alipay::cert::{Certificate, root_cert_sn};
use jianlian_alipay::request::CertSns;
use jianlian_alipay::{PrivateKey, PublicKey, Rate, SignType};
use jianlian_core::closed_loop::LoopPolicy;
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::Pid;
use jianlian_core::notify::{AddressPolicy, RetrySchedule};
use jianlian_store::SqliteSynchronous;
use jiff::SignedDuration;
use serde::Deserialize;

/// Why the configuration was refused. The message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

/// The type of a configuration value, for environment overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    Bool,
    /// A list of strings; comma-separated in the environment.
    List,
}

/// Every configuration key: `(section, key, kind)`; section `""` is top level.
pub const KEYS: &[(&str, &str, Kind)] = &[
    ("", "data_dir", Kind::Text),
    ("server", "listen", Kind::Text),
    ("server", "public_url", Kind::Text),
    ("database", "url", Kind::Text),
    ("database", "sqlite_synchronous", Kind::Text),
    ("gateway", "private_key_file", Kind::Text),
    ("upstream", "gateway_url", Kind::Text),
    ("upstream", "app_id", Kind::Text),
    ("upstream", "pid", Kind::Text),
    ("upstream", "private_key_file", Kind::Text),
    ("upstream", "alipay_public_key_file", Kind::Text),
    ("upstream", "app_cert_file", Kind::Text),
    ("upstream", "alipay_cert_file", Kind::Text),
    ("upstream", "alipay_root_cert_file", Kind::Text),
    ("upstream", "app_auth_token", Kind::Text),
    ("upstream", "sign_type", Kind::Text),
    ("upstream", "connect_timeout_ms", Kind::Integer),
    ("upstream", "read_timeout_ms", Kind::Integer),
    ("upstream", "notify_url", Kind::Text),
    ("closed_loop", "poll_interval_ms", Kind::Integer),
    ("closed_loop", "poll_count_max", Kind::Integer),
    ("closed_loop", "intent_stale_after_ms", Kind::Integer),
    ("closed_loop", "query_attempts_max", Kind::Integer),
    ("closed_loop", "query_retry_interval_ms", Kind::Integer),
    ("closed_loop", "cancel_retry_interval_ms", Kind::Integer),
    ("closed_loop", "cancel_retry_interval_max_ms", Kind::Integer),
    ("closed_loop", "precreate_timeout_default_ms", Kind::Integer),
    ("closed_loop", "create_timeout_default_ms", Kind::Integer),
    ("closed_loop", "resolve_grace_ms", Kind::Integer),
    ("notify", "retry_schedule", Kind::List),
    ("notify", "allow_loopback", Kind::Bool),
    ("notify", "allow_private", Kind::Bool),
    ("notify", "timeout_ms", Kind::Integer),
    ("fees", "rate", Kind::Text),
    ("fees", "credit_rate", Kind::Text),
    ("payment_code", "prefix_min", Kind::Integer),
    ("payment_code", "prefix_max", Kind::Integer),
    ("payment_code", "length_min", Kind::Integer),
    ("payment_code", "length_max", Kind::Integer),
    ("worker", "enabled", Kind::Bool),
    ("worker", "tick_ms", Kind::Integer),
    ("worker", "batch_max", Kind::Integer),
    ("worker", "concurrency_max", Kind::Integer),
    ("worker", "lease_ms", Kind::Integer),
    ("channel_api", "timestamp_skew_max_secs", Kind::Integer),
    ("admin", "token_file", Kind::Text),
];

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("JIANLIAN_{}", key.to_ascii_uppercase())
    } else {
        format!(
            "JIANLIAN_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}

/// The configuration as written: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite database and generated keys live.
    pub data_dir: Option<PathBuf>,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub gateway: GatewayKeyConfig,
    /// Alipay (or a sandbox). Absent: `jianlian serve` embeds the sandbox.
    pub upstream: Option<UpstreamConfig>,
    pub closed_loop: ClosedLoopConfig,
    pub notify: NotifyConfig,
    pub fees: FeesConfig,
    pub payment_code: PaymentCodeConfig,
    pub worker: WorkerConfig,
    pub channel_api: ChannelApiConfig,
    pub admin: AdminConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: Option<String>,
    pub sqlite_synchronous: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayKeyConfig {
    pub private_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub gateway_url: Option<String>,
    pub app_id: Option<String>,
    pub pid: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub alipay_public_key_file: Option<PathBuf>,
    pub app_cert_file: Option<PathBuf>,
    pub alipay_cert_file: Option<PathBuf>,
    pub alipay_root_cert_file: Option<PathBuf>,
    pub app_auth_token: Option<String>,
    pub sign_type: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    pub notify_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClosedLoopConfig {
    pub poll_interval_ms: Option<u64>,
    pub poll_count_max: Option<u32>,
    pub intent_stale_after_ms: Option<u64>,
    pub query_attempts_max: Option<u32>,
    pub query_retry_interval_ms: Option<u64>,
    pub cancel_retry_interval_ms: Option<u64>,
    pub cancel_retry_interval_max_ms: Option<u64>,
    pub precreate_timeout_default_ms: Option<u64>,
    pub create_timeout_default_ms: Option<u64>,
    pub resolve_grace_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub retry_schedule: Option<Vec<String>>,
    pub allow_loopback: Option<bool>,
    pub allow_private: Option<bool>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeesConfig {
    pub rate: Option<String>,
    pub credit_rate: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentCodeConfig {
    pub prefix_min: Option<u8>,
    pub prefix_max: Option<u8>,
    pub length_min: Option<usize>,
    pub length_max: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub enabled: Option<bool>,
    pub tick_ms: Option<u64>,
    pub batch_max: Option<u32>,
    pub concurrency_max: Option<usize>,
    pub lease_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelApiConfig {
    pub timestamp_skew_max_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub token_file: Option<PathBuf>,
}

/// Defaults, named so the docs and the code agree.
pub mod defaults {
    pub const DATA_DIR: &str = "jianlian-data";
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const DATABASE_FILE: &str = "jianlian.db";
    pub const GATEWAY_KEY_FILE: &str = "gateway_private_key.pem";
    pub const CONNECT_TIMEOUT_MS: u64 = 3_000;
    pub const READ_TIMEOUT_MS: u64 = 10_000;
    pub const NOTIFY_TIMEOUT_MS: u64 = 10_000;
    pub const FEE_RATE: &str = "0.0038";
    pub const WORKER_TICK_MS: u64 = 500;
    pub const WORKER_BATCH_MAX: u32 = 64;
    pub const WORKER_CONCURRENCY_MAX: usize = 16;
    pub const WORKER_LEASE_MS: u64 = 60_000;
    pub const TIMESTAMP_SKEW_MAX_SECS: u64 = 900;
}

/// Longest accepted duration setting: 30 days (longer is a typo).
const DURATION_MAX_MS: u64 = 30 * 24 * 3_600 * 1_000;

impl Config {
    /// Reads a TOML file (when given) and applies the environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            None => String::new(),
        };
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("JIANLIAN_"))
            .collect();
        Config::from_sources(&text, &vars)
    }

    /// Parses TOML text and applies `vars` (`JIANLIAN_…` pairs) over it.
    pub fn from_sources(text: &str, vars: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            });
            invalid("file", format!("{}{}", e.message(), at.unwrap_or_default()))
        })?;
        for (section, key, kind) in KEYS {
            let name = env_name(section, key);
            let Some((_, raw)) = vars.iter().find(|(k, _)| *k == name) else {
                continue;
            };
            let value = env_value(&name, raw, *kind)?;
            let target = if section.is_empty() {
                &mut table
            } else {
                let entry = table
                    .entry((*section).to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                match entry {
                    toml::Value::Table(t) => t,
                    _ => return Err(invalid(section, "must be a table ([section])")),
                }
            };
            target.insert((*key).to_owned(), value);
        }
        // A misspelt variable would otherwise be ignored without a word.
        if let Some((name, _)) = vars
            .iter()
            .find(|(k, _)| k.starts_with("JIANLIAN_") && !is_known_env(k))
        {
            return Err(invalid(
                name,
                "is not a configuration variable (see docs/gateway.md)",
            ));
        }
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            invalid(&path, e.into_inner().message())
        })
    }

    /// `data_dir`, or its default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR))
    }

    /// `database.url`, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir().join(defaults::DATABASE_FILE).display()
            )
        })
    }

    /// `gateway.private_key_file`, or its default in the data directory.
    pub fn gateway_key_file(&self) -> PathBuf {
        self.gateway
            .private_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir().join(defaults::GATEWAY_KEY_FILE))
    }

    /// Reads the gateway's signing key, generating it (mode 0600) when the
    /// configured file does not exist yet. Returns the key and whether it was
    /// created.
    pub fn ensure_gateway_key(&self) -> Result<(PrivateKey, bool), ConfigError> {
        let path = self.gateway_key_file();
        if path.exists() {
            return Ok((read_private_key("gateway.private_key_file", &path)?, false));
        }
        let key = PrivateKey::generate_2048()
            .map_err(|e| invalid("gateway.private_key_file", format!("generating: {e}")))?;
        write_secret(&path, &key.to_pkcs8_pem())
            .map_err(|e| invalid("gateway.private_key_file", e))?;
        Ok((key, true))
    }

    /// Checks every value that needs no file, and how the timings relate
    /// (a job lease outlasts the calls it covers, a trade intent is not
    /// stale while its pay call may still be answered), without requiring
    /// `[upstream]`. The admin
    /// commands call it, so a configuration `serve` would refuse is refused
    /// by them too; [`Config::resolve`] starts with it.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.plain().map(|_| ())
    }

    fn plain(&self) -> Result<Plain, ConfigError> {
        let listen_text = self.server.listen.as_deref().unwrap_or(defaults::LISTEN);
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|e| invalid("server.listen", format!("{listen_text:?}: {e}")))?;
        let public_url = match &self.server.public_url {
            Some(url) => check_http_url("server.public_url", url)?,
            None => format!("http://{listen}"),
        };
        let database_url = self.database_url();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                format!("{database_url:?} is neither sqlite://PATH nor postgres://…"),
            ));
        }
        let sqlite_synchronous = match self.database.sqlite_synchronous.as_deref() {
            None | Some("full") => SqliteSynchronous::Full,
            Some("normal") => SqliteSynchronous::Normal,
            Some(other) => {
                return Err(invalid(
                    "database.sqlite_synchronous",
                    format!("{other:?} is not full or normal"),
                ));
            }
        };
        let loop_policy = self.closed_loop.resolve()?;
        let retry_schedule = match &self.notify.retry_schedule {
            None => RetrySchedule::default(),
            Some(list) => RetrySchedule::parse(&list.join(","))
                .map_err(|e| invalid("notify.retry_schedule", e))?,
        };
        let notify_timeout = millis(
            "notify.timeout_ms",
            self.notify
                .timeout_ms
                .unwrap_or(defaults::NOTIFY_TIMEOUT_MS),
        )?;
        let rate = parse_rate(
            "fees.rate",
            self.fees.rate.as_deref().unwrap_or(defaults::FEE_RATE),
        )?;
        let credit_rate = self
            .fees
            .credit_rate
            .as_deref()
            .map(|r| parse_rate("fees.credit_rate", r))
            .transpose()?;
        let payment_code = self.payment_code.resolve()?;
        let worker = self.worker.resolve()?;
        let skew = self
            .channel_api
            .timestamp_skew_max_secs
            .unwrap_or(defaults::TIMESTAMP_SKEW_MAX_SECS);
        let timestamp_skew_max = match skew {
            0 => None,
            s if s > 30 * 24 * 3600 => {
                return Err(invalid(
                    "channel_api.timestamp_skew_max_secs",
                    "at most 30 days",
                ));
            }
            s => Some(SignedDuration::from_secs(i64::try_from(s).unwrap_or(0))),
        };
        // Without [upstream] (serve embeds the sandbox) the defaults apply.
        let upstream_timeouts = match &self.upstream {
            Some(upstream) => upstream.timeouts()?,
            None => UpstreamConfig::default().timeouts()?,
        };
        check_timing(
            upstream_timeouts,
            notify_timeout,
            worker.lease,
            loop_policy.intent_stale_after,
        )?;
        Ok(Plain {
            listen,
            public_url,
            database_url,
            sqlite_synchronous,
            loop_policy,
            retry_schedule,
            notify_timeout,
            default_fees: FeePolicy { rate, credit_rate },
            payment_code,
            worker,
            timestamp_skew_max,
        })
    }

    /// Checks every value and loads the keys. `upstream` must be configured.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let plain = self.plain()?;
        let gateway_key = read_private_key("gateway.private_key_file", &self.gateway_key_file())?;
        let upstream = self
            .upstream
            .as_ref()
            .ok_or_else(|| invalid("upstream", "is not configured"))?
            .resolve(&plain.public_url)?;
        let admin_token = match &self.admin.token_file {
            None => None,
            Some(path) => {
                let text = read_file("admin.token_file", path)?;
                let token = text.trim().to_owned();
                if token.len() < 16 {
                    return Err(invalid(
                        "admin.token_file",
                        "the token must be at least 16 characters",
                    ));
                }
                Some(token)
            }
        };
        Ok(Settings {
            listen: plain.listen,
            public_url: plain.public_url,
            database_url: plain.database_url,
            sqlite_synchronous: plain.sqlite_synchronous,
            data_dir: self.data_dir(),
            gateway_key,
            upstream,
            loop_policy: plain.loop_policy,
            retry_schedule: plain.retry_schedule,
            address_policy: AddressPolicy {
                allow_loopback: self.notify.allow_loopback.unwrap_or(false),
                allow_private: self.notify.allow_private.unwrap_or(false),
            },
            notify_timeout: plain.notify_timeout,
            default_fees: plain.default_fees,
            payment_code: plain.payment_code,
            worker: plain.worker,
            timestamp_skew_max: plain.timestamp_skew_max,
            admin_token,
        })
    }
}

/// The values of a configuration that need no file, checked.
struct Plain {
    listen: SocketAddr,
    public_url: String,
    database_url: String,
    sqlite_synchronous: SqliteSynchronous,
    loop_policy: LoopPolicy,
    retry_schedule: RetrySchedule,
    notify_timeout: Duration,
    default_fees: FeePolicy,
    payment_code: PaymentCodeRule,
    worker: WorkerSettings,
    timestamp_skew_max: Option<SignedDuration>,
}

/// How the timings must relate. The longest upstream call is its connect
/// plus read timeout (the client's total bound).
/// - `worker.lease_ms` must exceed it and `notify.timeout_ms`: a job whose
///   lease runs out while its call is still waiting is claimed again by
///   another process, which calls Alipay (or the channel) a second time.
/// - `closed_loop.intent_stale_after_ms` must exceed it: a trade with no
///   recorded answer is treated as unknown (queried, then cancelled) after
///   that, which must not happen while its pay call may still be answered.
fn check_timing(
    (connect, read): (Duration, Duration),
    notify_timeout: Duration,
    lease: SignedDuration,
    intent_stale_after: SignedDuration,
) -> Result<(), ConfigError> {
    let call = connect.saturating_add(read);
    let ms = |d: Duration| d.as_millis();
    let longer = |d: SignedDuration, than: Duration| Duration::try_from(d).is_ok_and(|d| d > than);
    if !longer(lease, call) {
        return Err(invalid(
            "worker.lease_ms",
            format!(
                "{} ms must exceed upstream.connect_timeout_ms + upstream.read_timeout_ms \
                 ({} ms, the longest an upstream call takes), or another process could \
                 take a job while its call is still waiting and call Alipay again",
                lease.as_millis(),
                ms(call)
            ),
        ));
    }
    if !longer(lease, notify_timeout) {
        return Err(invalid(
            "worker.lease_ms",
            format!(
                "{} ms must exceed notify.timeout_ms ({} ms), or another process could \
                 deliver a notification again while its delivery is still waiting",
                lease.as_millis(),
                ms(notify_timeout)
            ),
        ));
    }
    if !longer(intent_stale_after, call) {
        return Err(invalid(
            "closed_loop.intent_stale_after_ms",
            format!(
                "{} ms must exceed upstream.connect_timeout_ms + upstream.read_timeout_ms \
                 ({} ms), or a pay still waiting for its answer would be queried and cancelled",
                intent_stale_after.as_millis(),
                ms(call)
            ),
        ));
    }
    Ok(())
}

/// Environment variables that start with `JIANLIAN_` but are not settings.
const NON_CONFIG_ENV: &[&str] = &["JIANLIAN_SANDBOX_URL", "JIANLIAN_LOG", "JIANLIAN_CONFIG"];

fn is_known_env(name: &str) -> bool {
    NON_CONFIG_ENV.contains(&name)
        || name.starts_with("JIANLIAN_BENCH_")
        || name.starts_with("JIANLIAN_TEST_")
        || KEYS.iter().any(|(s, k, _)| env_name(s, k) == name)
}

fn env_value(name: &str, raw: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    Ok(match kind {
        Kind::Text => toml::Value::String(raw.to_owned()),
        Kind::Integer => toml::Value::Integer(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| invalid(name, format!("{raw:?} is not an integer")))?,
        ),
        Kind::Bool => match raw.trim() {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err(invalid(name, format!("{raw:?} is not true or false"))),
        },
        Kind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

fn millis(key: &str, ms: u64) -> Result<Duration, ConfigError> {
    if ms == 0 || ms > DURATION_MAX_MS {
        return Err(invalid(key, "must be between 1 and 2592000000 (30 days)"));
    }
    Ok(Duration::from_millis(ms))
}

fn signed_millis(key: &str, ms: u64) -> Result<SignedDuration, ConfigError> {
    let d = millis(key, ms)?;
    SignedDuration::try_from(d).map_err(|e| invalid(key, e))
}

fn parse_rate(key: &str, text: &str) -> Result<Rate, ConfigError> {
    Rate::parse(text).map_err(|e| invalid(key, e))
}

fn check_http_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| invalid(key, format!("{url:?} is not an http:// or https:// URL")))?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(invalid(key, format!("{url:?} has no host")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn read_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

fn read_private_key(key: &str, path: &Path) -> Result<PrivateKey, ConfigError> {
    let text = read_file(key, path)?;
    PrivateKey::from_text(&text).map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

fn read_public_key(key: &str, path: &Path) -> Result<PublicKey, ConfigError> {
    let text = read_file(key, path)?;
    PublicKey::from_text(&text).map_err(|e| invalid(key, format!("{}: {e}", path.display())))
}

/// Writes a secret file readable by its owner only, creating its directory.
pub fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

impl UpstreamConfig {
    /// `(connect, read)` timeouts, checked.
    fn timeouts(&self) -> Result<(Duration, Duration), ConfigError> {
        Ok((
            millis(
                "upstream.connect_timeout_ms",
                self.connect_timeout_ms
                    .unwrap_or(defaults::CONNECT_TIMEOUT_MS),
            )?,
            millis(
                "upstream.read_timeout_ms",
                self.read_timeout_ms.unwrap_or(defaults::READ_TIMEOUT_MS),
            )?,
        ))
    }

    fn resolve(&self, public_url: &str) -> Result<UpstreamSettings, ConfigError> {
        let required = |value: &Option<String>, key: &str| -> Result<String, ConfigError> {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| invalid(key, "is required"))
        };
        let gateway_url = check_http_url(
            "upstream.gateway_url",
            &required(&self.gateway_url, "upstream.gateway_url")?,
        )?;
        let app_id = required(&self.app_id, "upstream.app_id")?;
        if app_id.len() > 32 || !app_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                "upstream.app_id",
                "expected 1 to 32 letters or digits",
            ));
        }
        let pid = Pid::parse(&required(&self.pid, "upstream.pid")?)
            .map_err(|e| invalid("upstream.pid", e))?;
        let key_path = self
            .private_key_file
            .as_ref()
            .ok_or_else(|| invalid("upstream.private_key_file", "is required"))?;
        let private_key = read_private_key("upstream.private_key_file", key_path)?;
        let cert_files = (
            &self.app_cert_file,
            &self.alipay_cert_file,
            &self.alipay_root_cert_file,
        );
        let (alipay_public_key, cert) = match (&self.alipay_public_key_file, cert_files) {
            (Some(path), (None, None, None)) => (
                read_public_key("upstream.alipay_public_key_file", path)?,
                None,
            ),
            (None, (Some(app), Some(alipay), Some(root))) => {
                let app_cert = Certificate::from_text(&read_file("upstream.app_cert_file", app)?)
                    .map_err(|e| invalid("upstream.app_cert_file", e))?;
                let alipay_cert =
                    Certificate::from_text(&read_file("upstream.alipay_cert_file", alipay)?)
                        .map_err(|e| invalid("upstream.alipay_cert_file", e))?;
                let root_sn = root_cert_sn(&read_file("upstream.alipay_root_cert_file", root)?)
                    .map_err(|e| invalid("upstream.alipay_root_cert_file", e))?;
                if app_cert.public_key() != private_key.public_key() {
                    return Err(invalid(
                        "upstream.app_cert_file",
                        "the certificate's key is not the public half of upstream.private_key_file",
                    ));
                }
                let sns = CertSns {
                    app_cert_sn: app_cert.sn().to_owned(),
                    alipay_root_cert_sn: root_sn,
                };
                (
                    alipay_cert.public_key().clone(),
                    Some((sns, alipay_cert.sn().to_owned())),
                )
            }
            (Some(_), _) => {
                return Err(invalid(
                    "upstream.alipay_public_key_file",
                    "give either a public key or the three certificate files, not both",
                ));
            }
            (None, _) => {
                return Err(invalid(
                    "upstream.alipay_public_key_file",
                    "is required (or app_cert_file, alipay_cert_file and alipay_root_cert_file for certificate mode)",
                ));
            }
        };
        let sign_type_text = self.sign_type.as_deref().unwrap_or("RSA2");
        let sign_type = SignType::parse(sign_type_text).ok_or_else(|| {
            invalid(
                "upstream.sign_type",
                format!("{sign_type_text:?} is not RSA2 or RSA"),
            )
        })?;
        let app_auth_token = self
            .app_auth_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if app_auth_token.as_deref().is_some_and(|t| t.len() > 40) {
            return Err(invalid("upstream.app_auth_token", "at most 40 characters"));
        }
        let notify_url = match &self.notify_url {
            Some(url) => check_http_url("upstream.notify_url", url)?,
            None => format!("{public_url}/notify/alipay"),
        };
        let (connect_timeout, read_timeout) = self.timeouts()?;
        let (cert_sns, alipay_cert_sn) = match cert {
            Some((sns, sn)) => (Some(sns), Some(sn)),
            None => (None, None),
        };
        Ok(UpstreamSettings {
            gateway_url,
            app_id,
            pid,
            private_key,
            alipay_public_key,
            cert_sns,
            alipay_cert_sn,
            app_auth_token,
            sign_type,
            connect_timeout,
            read_timeout,
            notify_url,
        })
    }
}

impl ClosedLoopConfig {
    fn resolve(&self) -> Result<LoopPolicy, ConfigError> {
        let base = LoopPolicy::default();
        let d = |key: &str, value: Option<u64>, default: SignedDuration| match value {
            Some(ms) => signed_millis(&format!("closed_loop.{key}"), ms),
            None => Ok(default),
        };
        let count = |key: &str, value: Option<u32>, default: u32| match value {
            Some(0) => Err(invalid(&format!("closed_loop.{key}"), "must be at least 1")),
            Some(n) if n > 1_000 => Err(invalid(&format!("closed_loop.{key}"), "at most 1000")),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let policy = LoopPolicy {
            poll_interval: d(
                "poll_interval_ms",
                self.poll_interval_ms,
                base.poll_interval,
            )?,
            poll_count_max: count("poll_count_max", self.poll_count_max, base.poll_count_max)?,
            intent_stale_after: d(
                "intent_stale_after_ms",
                self.intent_stale_after_ms,
                base.intent_stale_after,
            )?,
            query_attempts_max: count(
                "query_attempts_max",
                self.query_attempts_max,
                base.query_attempts_max,
            )?,
            query_retry_interval: d(
                "query_retry_interval_ms",
                self.query_retry_interval_ms,
                base.query_retry_interval,
            )?,
            cancel_retry_interval: d(
                "cancel_retry_interval_ms",
                self.cancel_retry_interval_ms,
                base.cancel_retry_interval,
            )?,
            cancel_retry_interval_max: d(
                "cancel_retry_interval_max_ms",
                self.cancel_retry_interval_max_ms,
                base.cancel_retry_interval_max,
            )?,
            precreate_timeout_default: d(
                "precreate_timeout_default_ms",
                self.precreate_timeout_default_ms,
                base.precreate_timeout_default,
            )?,
            create_timeout_default: d(
                "create_timeout_default_ms",
                self.create_timeout_default_ms,
                base.create_timeout_default,
            )?,
            resolve_grace: d(
                "resolve_grace_ms",
                self.resolve_grace_ms,
                base.resolve_grace,
            )?,
        };
        policy
            .check()
            .map_err(|e| invalid(&format!("closed_loop.{}", e.0), e))?;
        if policy.cancel_retry_interval_max < policy.cancel_retry_interval {
            return Err(invalid(
                "closed_loop.cancel_retry_interval_max_ms",
                "must not be below cancel_retry_interval_ms",
            ));
        }
        Ok(policy)
    }
}

impl PaymentCodeConfig {
    fn resolve(&self) -> Result<PaymentCodeRule, ConfigError> {
        let base = PaymentCodeRule::default();
        let rule = PaymentCodeRule {
            prefix_min: self.prefix_min.unwrap_or(base.prefix_min),
            prefix_max: self.prefix_max.unwrap_or(base.prefix_max),
            length_min: self.length_min.unwrap_or(base.length_min),
            length_max: self.length_max.unwrap_or(base.length_max),
        };
        if rule.prefix_min < 10 || rule.prefix_max > 99 || rule.prefix_min > rule.prefix_max {
            return Err(invalid(
                "payment_code.prefix_min",
                "prefix_min..=prefix_max must be a range of two-digit numbers",
            ));
        }
        if rule.length_min < 2 || rule.length_max > 64 || rule.length_min > rule.length_max {
            return Err(invalid(
                "payment_code.length_min",
                "length_min..=length_max must be a range within 2..=64",
            ));
        }
        Ok(rule)
    }
}

impl WorkerConfig {
    fn resolve(&self) -> Result<WorkerSettings, ConfigError> {
        let batch_max = self.batch_max.unwrap_or(defaults::WORKER_BATCH_MAX);
        if !(1..=1_000).contains(&batch_max) {
            return Err(invalid("worker.batch_max", "must be between 1 and 1000"));
        }
        let concurrency_max = self
            .concurrency_max
            .unwrap_or(defaults::WORKER_CONCURRENCY_MAX);
        if !(1..=256).contains(&concurrency_max) {
            return Err(invalid(
                "worker.concurrency_max",
                "must be between 1 and 256",
            ));
        }
        Ok(WorkerSettings {
            enabled: self.enabled.unwrap_or(true),
            tick: millis(
                "worker.tick_ms",
                self.tick_ms.unwrap_or(defaults::WORKER_TICK_MS),
            )?,
            batch_max,
            concurrency_max,
            lease: signed_millis(
                "worker.lease_ms",
                self.lease_ms.unwrap_or(defaults::WORKER_LEASE_MS),
            )?,
        })
    }
}

/// The checked configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// How Alipay and operators reach this gateway (no trailing `/`).
    pub public_url: String,
    pub database_url: String,
    /// Whether each SQLite commit is synced to disk (`full`) or not (`normal`).
    pub sqlite_synchronous: SqliteSynchronous,
    pub data_dir: PathBuf,
    /// Signs answers and notifications to channels.
    pub gateway_key: PrivateKey,
    pub upstream: UpstreamSettings,
    pub loop_policy: LoopPolicy,
    pub retry_schedule: RetrySchedule,
    pub address_policy: AddressPolicy,
    pub notify_timeout: Duration,
    /// Fee rates of a merchant onboarded without explicit ones.
    pub default_fees: FeePolicy,
    pub payment_code: PaymentCodeRule,
    pub worker: WorkerSettings,
    /// Channel requests whose `timestamp` is further from now are refused
    /// (replay protection); `None` turns the check off.
    pub timestamp_skew_max: Option<SignedDuration>,
    /// Bearer token of the admin API; the API is off without one.
    pub admin_token: Option<String>,
}

/// How the gateway reaches Alipay. Its `Debug` hides `app_auth_token` (the
/// private key hides itself).
#[derive(Clone)]
pub struct UpstreamSettings {
    pub gateway_url: String,
    pub app_id: String,
    /// The acquirer's PID: `seller_id` of every notification must be it.
    pub pid: Pid,
    pub private_key: PrivateKey,
    pub alipay_public_key: PublicKey,
    pub cert_sns: Option<CertSns>,
    pub alipay_cert_sn: Option<String>,
    pub app_auth_token: Option<String>,
    pub sign_type: SignType,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// The `notify_url` sent upstream: this gateway's `/notify/alipay`.
    pub notify_url: String,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so a new field cannot be left out (or leak) unnoticed.
        let UpstreamSettings {
            gateway_url,
            app_id,
            pid,
            private_key,
            alipay_public_key,
            cert_sns,
            alipay_cert_sn,
            app_auth_token,
            sign_type,
            connect_timeout,
            read_timeout,
            notify_url,
        } = self;
        f.debug_struct("UpstreamSettings")
            .field("gateway_url", gateway_url)
            .field("app_id", app_id)
            .field("pid", pid)
            .field("private_key", private_key)
            .field("alipay_public_key", alipay_public_key)
            .field("cert_sns", cert_sns)
            .field("alipay_cert_sn", alipay_cert_sn)
            .field("app_auth_token", &app_auth_token.as_ref().map(|_| "(..)"))
            .field("sign_type", sign_type)
            .field("connect_timeout", connect_timeout)
            .field("read_timeout", read_timeout)
            .field("notify_url", notify_url)
            .finish()
    }
}

/// The job runner's settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Whether `serve` runs the job runner on a ticker.
    pub enabled: bool,
    pub tick: Duration,
    pub batch_max: u32,
    pub concurrency_max: usize,
    pub lease: SignedDuration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file_and_names_bad_keys() {
        let text = "[closed_loop]\npoll_interval_ms = 5000\n[notify]\nallow_loopback = false\n";
        let config = Config::from_sources(
            text,
            &vars(&[
                ("JIANLIAN_CLOSED_LOOP_POLL_INTERVAL_MS", "2000"),
                ("JIANLIAN_NOTIFY_RETRY_SCHEDULE", "1m, 2m"),
                ("JIANLIAN_NOTIFY_ALLOW_LOOPBACK", "true"),
                ("JIANLIAN_DATA_DIR", "/tmp/x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.closed_loop.poll_interval_ms, Some(2000));
        assert_eq!(
            config.notify.retry_schedule,
            Some(vec!["1m".to_owned(), "2m".to_owned()])
        );
        assert_eq!(config.notify.allow_loopback, Some(true));
        assert_eq!(config.data_dir(), PathBuf::from("/tmp/x"));

        let err = Config::from_sources("[closed_loop]\npoll_intervall_ms = 1\n", &[]).unwrap_err();
        assert!(err.to_string().contains("poll_intervall_ms"), "{err}");
        let err = Config::from_sources("[closed_loop]\npoll_count_max = \"x\"\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("closed_loop.poll_count_max"),
            "{err}"
        );
        let err =
            Config::from_sources("", &vars(&[("JIANLIAN_WORKER_TICK_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("JIANLIAN_WORKER_TICK_MS"), "{err}");
        let err = Config::from_sources("", &vars(&[("JIANLIAN_UPSTREAM_APPID", "1")])).unwrap_err();
        assert!(err.to_string().contains("JIANLIAN_UPSTREAM_APPID"), "{err}");
    }

    #[test]
    fn every_key_is_documented() {
        let docs = include_str!("../../../docs/gateway.md");
        for (section, key, _) in KEYS {
            let name = if section.is_empty() {
                (*key).to_owned()
            } else {
                format!("{section}.{key}")
            };
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "docs/gateway.md lacks {name}"
            );
        }
    }

    #[test]
    fn resolve_names_the_offending_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::generate_2048().unwrap();
        let key_file = dir.path().join("k.pem");
        std::fs::write(&key_file, key.to_pkcs8_pem()).unwrap();
        let pub_file = dir.path().join("p.pem");
        std::fs::write(&pub_file, key.public_key().to_pem()).unwrap();
        let base = format!(
            "data_dir = {dir:?}\n[gateway]\nprivate_key_file = {key:?}\n[upstream]\n\
             gateway_url = \"http://127.0.0.1:9/gateway.do\"\napp_id = \"2021000000000001\"\n\
             pid = \"2088000000000001\"\nprivate_key_file = {key:?}\n\
             alipay_public_key_file = {pubk:?}\n",
            dir = dir.path(),
            key = key_file,
            pubk = pub_file,
        );
        let settings = Config::from_sources(&base, &[]).unwrap().resolve().unwrap();
        assert_eq!(settings.loop_policy, LoopPolicy::default());
        assert_eq!(
            settings.upstream.notify_url,
            "http://127.0.0.1:8080/notify/alipay"
        );
        for (extra, key) in [
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            (
                "[closed_loop]\npoll_interval_ms = 0\n",
                "closed_loop.poll_interval_ms",
            ),
            (
                "[notify]\nretry_schedule = [\"4m\", \"soon\"]\n",
                "notify.retry_schedule",
            ),
            ("[fees]\nrate = \"3%\"\n", "fees.rate"),
            (
                "[payment_code]\nprefix_min = 31\n",
                "payment_code.prefix_min",
            ),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        ] {
            let err = Config::from_sources(&format!("{base}{extra}"), &[])
                .and_then(|c| c.resolve())
                .unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        // How timings relate: each refusal names the keys involved.
        for (extra, key, names) in [
            (
                "[worker]\nlease_ms = 12000\n",
                "worker.lease_ms",
                "upstream.read_timeout_ms",
            ),
            (
                "[worker]\nlease_ms = 20000\n[notify]\ntimeout_ms = 25000\n",
                "worker.lease_ms",
                "notify.timeout_ms",
            ),
            (
                "[closed_loop]\nintent_stale_after_ms = 13000\n",
                "closed_loop.intent_stale_after_ms",
                "upstream.connect_timeout_ms",
            ),
        ] {
            let config = Config::from_sources(&format!("{base}{extra}"), &[]).unwrap();
            for err in [config.check().unwrap_err(), config.resolve().unwrap_err()] {
                let text = err.to_string();
                assert!(
                    text.contains(key) && text.contains(names),
                    "{extra}: {text}"
                );
            }
        }
        // The upstream timeouts count when [upstream] sets them, and the
        // defaults (3 s + 10 s) without it.
        let slow = base.replace("[upstream]\n", "[upstream]\nread_timeout_ms = 58000\n");
        let err = Config::from_sources(&slow, &[])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("worker.lease_ms"), "{err}");
        let no_upstream = Config::from_sources("[worker]\nlease_ms = 13000\n", &[]).unwrap();
        assert!(
            no_upstream
                .check()
                .unwrap_err()
                .to_string()
                .contains("worker.lease_ms")
        );
        let fine = Config::from_sources("[worker]\nlease_ms = 13001\n", &[]).unwrap();
        assert_eq!(fine.check(), Ok(()));
        let missing = base.replace("pid = \"2088000000000001\"\n", "");
        let err = Config::from_sources(&missing, &[])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("upstream.pid"), "{err}");
        let bad_key = base.replace(
            &format!("{pub_file:?}"),
            &format!("{:?}", dir.path().join("none")),
        );
        let err = Config::from_sources(&bad_key, &[])
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string().contains("upstream.alipay_public_key_file"),
            "{err}"
        );
    }
}
