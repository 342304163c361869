//! `jianlian serve`: runs the acquirer gateway (channel API, Alipay's
//! notifications, the job runner, `/metrics`, `/healthz`, the admin API).
//!
//! With no `[upstream]` configured it embeds the offline sandbox in the same
//! process (`--sandbox-listen`, control API included), provisions the
//! acquirer's app there and a demo channel (keys written to the data
//! directory, reused on the next start), and prints the URLs, the keys and a
//! ready-to-paste example for the official Node SDK.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use jianlian_alipay::{Clock as _, PrivateKey, SystemClock};
use jianlian_core::ids::{AppId, Pid};
use jianlian_gateway::Application;
use jianlian_gateway::config::{Config, UpstreamConfig, write_secret};
use jianlian_gateway::ops::{self, NewChannel};
use jianlian_sandbox::{AppSpec, BuyerSpec, Sandbox, SandboxClock, SandboxConfig, SandboxHandle};
use serde::{Deserialize, Serialize};

use crate::gateway_args::{EMBEDDED_UPSTREAM_FILE, GatewayArgs, redact};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Where the gateway listens (overrides `server.listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Where the embedded sandbox listens when no upstream is configured.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    sandbox_listen: SocketAddr,
}

/// The demo channel's PID (a made-up ISV).
const DEMO_CHANNEL_PID: &str = "2088000000000099";

/// What the data directory remembers about the embedded sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Embedded {
    app_id: String,
    pid: String,
    channel_app_id: Option<String>,
    buyer_id: Option<String>,
}

pub fn init_logging() {
    let filter = std::env::var("JIANLIAN_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    let mut config = args.gateway.load()?;
    if let Some(listen) = args.listen {
        config.server.listen = Some(listen.to_string());
    }
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let (gateway_key, created) = config.ensure_gateway_key()?;
    if created {
        tracing::info!(path = %config.gateway_key_file().display(), "generated the gateway's signing key");
    }
    std::fs::write(
        data_dir.join("gateway_public_key.pem"),
        gateway_key.public_key().to_pem(),
    )?;
    let embedded_file = data_dir.join(EMBEDDED_UPSTREAM_FILE);
    let configured = Config::load(args.gateway.config.as_deref())?
        .upstream
        .is_some();
    let sandbox = if configured {
        None
    } else {
        let (sandbox, upstream) = start_sandbox(&data_dir, args.sandbox_listen).await?;
        write_embedded_upstream(&embedded_file, &upstream)?;
        config.upstream = Some(upstream);
        Some(sandbox)
    };
    let settings = config.resolve()?;
    let database = redact(&settings.database_url);
    let app = Application::build(settings, Arc::new(SystemClock)).await?;
    let svc = app.service().clone();
    let ticker = svc.settings.worker.enabled;
    let running = app.spawn(ticker);
    let base = running.base_url();
    let mut out = std::io::stdout().lock();
    writeln!(out, "jianlian gateway")?;
    writeln!(out, "  channel API:   {base}/gateway.do")?;
    writeln!(out, "  notify:        {}", svc.settings.upstream.notify_url)?;
    writeln!(
        out,
        "  metrics:       {base}/metrics   health: {base}/healthz"
    )?;
    writeln!(out, "  database:      {database}")?;
    writeln!(out, "  data dir:      {}", data_dir.display())?;
    writeln!(
        out,
        "  gateway key:   {} (public key below)",
        config.gateway_key_file().display()
    )?;
    writeln!(
        out,
        "  gateway public key: {}",
        gateway_key.public_key().to_base64()
    )?;
    writeln!(
        out,
        "  upstream:      {} (app_id {})",
        svc.settings.upstream.gateway_url, svc.settings.upstream.app_id
    )?;
    writeln!(
        out,
        "  job runner:    {}",
        if ticker {
            "on"
        } else {
            "off (worker.enabled = false)"
        }
    )?;
    if let Some(sandbox) = &sandbox {
        let demo = provision_demo(&svc.store, sandbox, &data_dir).await?;
        print_demo(&mut out, &base, sandbox, &demo, &data_dir)?;
    }
    writeln!(out, "Docs: docs/gateway.md. Ctrl-C stops.")?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.shutdown().await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

fn read_or_create_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return crate::keys::load_private_key(path);
    }
    let key = PrivateKey::generate_2048()?;
    write_secret(path, &key.to_pkcs8_pem()).map_err(|e| anyhow::anyhow!(e))?;
    Ok(key)
}

fn embedded_state(data_dir: &Path) -> PathBuf {
    data_dir.join("embedded.json")
}

fn load_embedded(data_dir: &Path) -> Option<Embedded> {
    let text = std::fs::read_to_string(embedded_state(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

fn save_embedded(data_dir: &Path, e: &Embedded) -> anyhow::Result<()> {
    std::fs::write(embedded_state(data_dir), serde_json::to_string_pretty(e)?)?;
    Ok(())
}

/// Starts the sandbox with its state in the data directory and makes sure
/// the acquirer's app exists there.
async fn start_sandbox(
    data_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<(SandboxHandle, UpstreamConfig)> {
    let config = SandboxConfig {
        listen,
        state_dir: Some(data_dir.join("sandbox")),
        clock: SandboxClock::real_time(),
        seed: 20_880_000,
        alipay_private_key: None,
    };
    let sandbox = Sandbox::start(config).await.with_context(|| {
        format!("starting the embedded sandbox on {listen} (use --sandbox-listen)")
    })?;
    let key_file = data_dir.join("acquirer_private_key.pem");
    let key = read_or_create_key(&key_file)?;
    let known = load_embedded(data_dir)
        .filter(|e| sandbox.shared().read(|c| c.st.apps.contains_key(&e.app_id)));
    let embedded = match known {
        Some(e) => e,
        None => {
            let app = sandbox
                .create_app(AppSpec {
                    app_public_key: Some(key.public_key().to_pem()),
                    name: Some("jianlian acquirer".into()),
                    ..AppSpec::default()
                })
                .await?;
            let e = Embedded {
                app_id: app.app_id,
                pid: app.pid,
                channel_app_id: None,
                buyer_id: None,
            };
            save_embedded(data_dir, &e)?;
            e
        }
    };
    let alipay_key_file = data_dir.join("alipay_public_key.pem");
    std::fs::write(&alipay_key_file, sandbox.alipay_public_key().to_pem())?;
    let upstream = UpstreamConfig {
        gateway_url: Some(sandbox.gateway_url()),
        app_id: Some(embedded.app_id.clone()),
        pid: Some(embedded.pid.clone()),
        private_key_file: Some(key_file),
        alipay_public_key_file: Some(alipay_key_file),
        ..UpstreamConfig::default()
    };
    Ok((sandbox, upstream))
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn write_embedded_upstream(path: &Path, u: &UpstreamConfig) -> anyhow::Result<()> {
    let path_text = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| toml_string(&p.display().to_string()))
            .unwrap_or_default()
    };
    let text = format!(
        "# Written by `jianlian serve` for its embedded sandbox; the admin commands read it.\n\
         gateway_url = {}\napp_id = {}\npid = {}\nprivate_key_file = {}\nalipay_public_key_file = {}\n",
        toml_string(u.gateway_url.as_deref().unwrap_or_default()),
        toml_string(u.app_id.as_deref().unwrap_or_default()),
        toml_string(u.pid.as_deref().unwrap_or_default()),
        path_text(&u.private_key_file),
        path_text(&u.alipay_public_key_file),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The demo channel and a buyer, created once and remembered.
struct Demo {
    channel_app_id: String,
    channel_key_file: PathBuf,
    buyer_id: String,
}

async fn provision_demo(
    store: &jianlian_store::Store,
    sandbox: &SandboxHandle,
    data_dir: &Path,
) -> anyhow::Result<Demo> {
    let mut embedded = load_embedded(data_dir).context("the embedded sandbox state is missing")?;
    let key_file = data_dir.join("demo_channel_private_key.pem");
    let key = read_or_create_key(&key_file)?;
    std::fs::write(
        data_dir.join("demo_channel_public_key.pem"),
        key.public_key().to_pem(),
    )?;
    let existing = match &embedded.channel_app_id {
        Some(id) => store.channel(&AppId::parse(id)?).await?,
        None => None,
    };
    let channel_app_id = match existing {
        Some(c) => c.app_id.to_string(),
        None => {
            let c = ops::create_channel(
                store,
                NewChannel {
                    name: "demo channel".into(),
                    pid: Pid::parse(DEMO_CHANNEL_PID)?,
                    public_key: key.public_key().to_pem(),
                    parent: None,
                    notify_hosts: vec![],
                },
                SystemClock.now(),
            )
            .await?;
            c.app_id.to_string()
        }
    };
    let buyer_id = match embedded
        .buyer_id
        .clone()
        .filter(|b| sandbox.shared().read(|c| c.st.buyers.contains_key(b)))
    {
        Some(b) => b,
        None => {
            sandbox
                .create_buyer(BuyerSpec {
                    balance: Some(jianlian_alipay::Fen::new(10_000_000)),
                    ..BuyerSpec::default()
                })
                .await?
                .buyer_id
        }
    };
    embedded.channel_app_id = Some(channel_app_id.clone());
    embedded.buyer_id = Some(buyer_id.clone());
    save_embedded(data_dir, &embedded)?;
    if channel_app_id.is_empty() {
        bail!("no demo channel");
    }
    Ok(Demo {
        channel_app_id,
        channel_key_file: key_file,
        buyer_id,
    })
}

fn print_demo(
    out: &mut impl std::io::Write,
    base: &str,
    sandbox: &SandboxHandle,
    demo: &Demo,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let sb = sandbox.base_url();
    writeln!(out)?;
    writeln!(
        out,
        "Embedded sandbox (no [upstream] configured): Alipay at {}",
        sandbox.gateway_url()
    )?;
    writeln!(out, "  control API:   {}", sandbox.control_url())?;
    writeln!(out, "  demo channel:  app_id {}", demo.channel_app_id)?;
    writeln!(
        out,
        "  its key:       {} (public: {})",
        demo.channel_key_file.display(),
        data_dir.join("demo_channel_public_key.pem").display()
    )?;
    writeln!(
        out,
        "  demo buyer:    {} — a payment code: jianlian sandbox-ctl --url {sb} payment-code {}",
        demo.buyer_id, demo.buyer_id
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Ready to paste (Node, npm i alipay-sdk@4.14.0; run with TZ=Asia/Shanghai):"
    )?;
    writeln!(
        out,
        r#"  node --input-type=module -e "
  import {{ AlipaySdk }} from 'alipay-sdk'; import fs from 'node:fs';
  const sdk = new AlipaySdk({{ appId: '{app}', keyType: 'PKCS8',
    privateKey: fs.readFileSync('{key}', 'ascii'),
    alipayPublicKey: fs.readFileSync('{gw_pub}', 'ascii'), gateway: '{base}/gateway.do' }});
  const call = (m, b) => sdk.exec(m, {{ bizContent: b }}, {{ validateSign: true }});
  const m = await call('ant.merchant.expand.indirect.create', {{ external_id: 'SHOP' + Date.now(), name: '示例商户有限公司',
    alias_name: '示例', service_phone: '021-55556666', category_id: '2015050700000000',
    contact_info: [{{ name: '王五', type: 'LEGAL_PERSON', mobile: '13900139000' }}] }});
  await call('jianlian.merchant.store.create', {{ sub_merchant_id: m.subMerchantId, store_id: 'S1', name: '一号店', terminal_ids: ['T1'] }});
  const code = (await (await fetch('{sb}/sandbox/buyers/{buyer}/payment-codes', {{ method: 'POST' }})).json()).auth_code;
  const no = 'ORDER' + Date.now();
  console.log(await call('alipay.trade.pay', {{ out_trade_no: no, scene: 'bar_code', auth_code: code, subject: 'coffee',
    total_amount: '12.00', store_id: 'S1', terminal_id: 'T1', sub_merchant: {{ merchant_id: m.subMerchantId }} }}));
  console.log(await call('alipay.trade.query', {{ out_trade_no: no }}));
  console.log(await call('alipay.trade.refund', {{ out_trade_no: no, refund_amount: '2.00', out_request_no: 'R1' }}));
  ""#,
        app = demo.channel_app_id,
        key = demo.channel_key_file.display(),
        gw_pub = data_dir.join("gateway_public_key.pem").display(),
        base = base,
        sb = sb,
        buyer = demo.buyer_id,
    )?;
    Ok(())
}
