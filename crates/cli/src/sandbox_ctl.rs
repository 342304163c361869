//! `jianlian sandbox-ctl`: drives a running sandbox through its control API
//! (`/sandbox/…`), one subcommand per endpoint, printing the JSON answer
//! (a bill file is saved to `--out` instead).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sandbox's base URL (as printed by `jianlian sandbox`).
    #[arg(
        long,
        env = "JIANLIAN_SANDBOX_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    url: String,
    // Boxed: the subcommands are large and `main`'s command enum holds this.
    #[command(subcommand)]
    command: Box<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Gateway and control URLs, the virtual time and the served methods.
    Info,
    /// Apps (an acquirer's app_id, PID and keys).
    #[command(subcommand)]
    Apps(Apps),
    /// Certificate mode: the Alipay public-key certificate and the root bundle.
    Certs {
        /// Also write alipayCertPublicKey_RSA2.crt and alipayRootCert.crt here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Buyers and their funding.
    #[command(subcommand)]
    Buyers(Buyers),
    /// A new payment code for a buyer (single use, 60 s).
    PaymentCode {
        buyer_id: String,
        /// balance, bank_card:N, huabei, mcard or pcard.
        #[arg(long)]
        pay_with: Option<String>,
    },
    /// A face-payment token for a buyer, for `scene=security_code` (single
    /// use, 60 s).
    SecurityCode {
        buyer_id: String,
        /// balance, bank_card:N, huabei, mcard or pcard.
        #[arg(long)]
        pay_with: Option<String>,
    },
    /// The buyer pays a waiting trade (password entered / cashier confirmed).
    Confirm { trade_no: String },
    /// The buyer declines a waiting trade (it closes).
    Abandon { trade_no: String },
    /// Trades as Alipay knows them.
    #[command(subcommand)]
    Trades(Trades),
    /// Precreate QR codes.
    #[command(subcommand)]
    Qr(Qr),
    /// OAuth: a buyer authorises an app.
    #[command(subcommand)]
    Oauth(Oauth),
    /// Onboarded merchants.
    #[command(subcommand)]
    Merchants(Merchants),
    /// The virtual clock.
    #[command(subcommand)]
    Clock(Clock),
    /// Fault injection rules.
    #[command(subcommand)]
    Faults(Faults),
    /// Every money movement (amounts in yuan).
    Ledger {
        /// Beijing date, yyyy-MM-dd.
        #[arg(long)]
        date: Option<String>,
    },
    /// Every notification and delivery attempt.
    Notifications {
        #[arg(long)]
        out_trade_no: Option<String>,
    },
    /// Runs the work due now (timeouts, notification attempts).
    RunDue,
    /// Daily bills (written at 09:00 on T+1).
    #[command(subcommand)]
    Bills(Bills),
    /// The SFTP bill server and its per-acquirer credentials.
    #[command(subcommand)]
    Sftp(Sftp),
    /// Settlement payouts (R9.2).
    Settlements {
        /// Payout (arrival) date, yyyy-MM-dd.
        #[arg(long)]
        date: Option<String>,
        /// Trading day settled, yyyy-MM-dd.
        #[arg(long)]
        business_date: Option<String>,
        #[arg(long)]
        app_id: Option<String>,
        #[arg(long)]
        pid: Option<String>,
    },
    /// The working-day calendar: the years it knows, or one day.
    Calendar {
        /// yyyy-MM-dd.
        #[arg(long)]
        date: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Bills {
    /// Bills written so far.
    List {
        #[arg(long)]
        pid: Option<String>,
        /// yyyy-MM-dd.
        #[arg(long)]
        date: Option<String>,
    },
    /// Saves one bill file (as `bills list` names it).
    Get {
        pid: String,
        /// yyyyMMdd or yyyy-MM-dd.
        date: String,
        /// e.g. 20880000000000010156_20260302.csv.zip.
        file: String,
        /// Where to save it.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum Sftp {
    /// Address and host key of the SFTP server.
    Info,
    /// Sets (replaces) an acquirer's credentials; the user name is the PID.
    SetUser {
        pid: String,
        #[arg(long)]
        password: Option<String>,
        /// An OpenSSH public key (file or text); repeatable.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
    },
    GetUser {
        pid: String,
    },
    DeleteUser {
        pid: String,
    },
}

#[derive(Debug, Subcommand)]
enum Apps {
    /// Registers an app; prints app_id, pid and alipay_public_key.
    Create {
        /// App public key: a file or the text (PEM or bare base64).
        #[arg(long)]
        public_key: Option<String>,
        /// Certificate mode: the app public-key certificate (file or PEM).
        #[arg(long)]
        cert: Option<String>,
        /// Certificate mode: the sandbox issues the certificate of --public-key.
        #[arg(long)]
        certificate_mode: bool,
        /// Certificate mode: also write the app certificate, the Alipay
        /// certificate and the root bundle here, under Alipay's file names.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        settings: AppSettings,
    },
    /// Changes an app's settings.
    Update {
        app_id: String,
        /// Public key to rotate to (file or text); keeps the app's mode.
        #[arg(long)]
        public_key: Option<String>,
        /// true: certificate mode (a certificate is issued); false: public-key mode.
        #[arg(long)]
        certificate_mode: Option<bool>,
        /// Certificate mode: also write the three certificate files here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        settings: AppSettings,
    },
    Get {
        app_id: String,
    },
}

#[derive(Debug, clap::Args)]
struct AppSettings {
    #[arg(long)]
    name: Option<String>,
    /// Join the acquirer with this PID (create only).
    #[arg(long)]
    pid: Option<String>,
    /// same_bank or cross_bank.
    #[arg(long)]
    settlement: Option<String>,
    /// e.g. 0.0038.
    #[arg(long)]
    fee_rate: Option<String>,
    /// merchant_day or acquirer.
    #[arg(long)]
    refund_position: Option<String>,
    /// Switch the "general finance" configuration (R3.8).
    #[arg(long)]
    general_finance: Option<bool>,
    /// Require store_id and terminal_id on trades (R3.2).
    #[arg(long)]
    require_store_terminal: Option<bool>,
    #[arg(long)]
    refund_window_months: Option<u32>,
    /// user_id or open_id.
    #[arg(long)]
    id_mode: Option<String>,
    /// AES content-encryption key (base64).
    #[arg(long)]
    aes_key: Option<String>,
    /// Big-merchant rule: most distinct stores per smid per day.
    #[arg(long)]
    risk_stores_max: Option<u32>,
    /// Big-merchant rule: most distinct terminals per smid per day.
    #[arg(long)]
    risk_terminals_max: Option<u32>,
    /// Write a bill also on days without trades (R11.3).
    #[arg(long)]
    empty_bills: Option<bool>,
}

#[derive(Debug, Subcommand)]
enum Buyers {
    /// Creates a buyer; prints buyer_id and logon_id.
    Create {
        /// Alipay balance in yuan (default 500.00).
        #[arg(long)]
        balance: Option<String>,
        #[arg(long)]
        huabei_limit: Option<String>,
        /// Points (one point is one fen).
        #[arg(long)]
        points: Option<i64>,
        #[arg(long)]
        requires_password: bool,
        /// The buyer has switched off paying from the balance.
        #[arg(long)]
        balance_payment_disabled: bool,
        #[arg(long)]
        daily_limit: Option<String>,
        /// balance, bank_card:N, huabei, mcard or pcard.
        #[arg(long)]
        pay_with: Option<String>,
        /// The whole body as JSON (bank cards, vouchers…); flags are added to it.
        #[arg(long)]
        json: Option<String>,
    },
    Get {
        buyer_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum Trades {
    Get {
        trade_no: String,
    },
    List {
        #[arg(long)]
        date: Option<String>,
        #[arg(long)]
        out_trade_no: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Qr {
    /// A buyer scans a precreate QR (and pays, unless --no-confirm).
    Scan {
        #[arg(long)]
        qr_code: String,
        #[arg(long)]
        buyer_id: String,
        #[arg(long)]
        no_confirm: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Oauth {
    Authorize {
        #[arg(long)]
        app_id: String,
        #[arg(long)]
        buyer_id: String,
        /// auth_base or auth_user.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        redirect_uri: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Merchants {
    Get {
        smid: String,
    },
    /// Blocks or unblocks an smid (risk control).
    Risk {
        smid: String,
        #[arg(long)]
        blocked: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Clock {
    Get,
    /// Moves virtual time forward, running everything that became due.
    Advance {
        seconds: i64,
    },
}

#[derive(Debug, Subcommand)]
enum Faults {
    /// Adds a rule, e.g. --action system_error --method alipay.trade.pay --times 1.
    // Boxed: the rule's flags make this variant far larger than the others.
    Add(Box<FaultAdd>),
    List,
    Clear,
}

#[derive(Debug, clap::Args)]
struct FaultAdd {
    /// unknown, system_error, delay, drop_after, drop_before, wrong_key,
    /// force_wait, pay_after_cancel, trade_not_exist, fund_change_n,
    /// notify_fail, notify_duplicate, notify_shuffle.
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    method: Option<String>,
    #[arg(long)]
    out_trade_no: Option<String>,
    /// Selects by total_amount / refund_amount (yuan).
    #[arg(long)]
    amount: Option<String>,
    #[arg(long)]
    times: Option<u32>,
    /// unknown/system_error: run the call before answering.
    #[arg(long)]
    apply: bool,
    /// delay: milliseconds.
    #[arg(long)]
    ms: Option<u64>,
    /// force_wait: pay after this many queries.
    #[arg(long)]
    pay_after_queries: Option<u32>,
    /// pay_after_cancel: the closes after which the payment arrives
    /// (cancel, close, timeout); repeatable, default cancel.
    #[arg(long)]
    after: Vec<String>,
    /// trade_not_exist: only while the trade is younger than this.
    #[arg(long)]
    for_seconds: Option<u64>,
    /// notify_shuffle: hold notifications this long.
    #[arg(long)]
    hold_seconds: Option<u64>,
    /// The whole rule as JSON instead.
    #[arg(long)]
    json: Option<String>,
}

/// Reads `text` as a file when such a file exists, else as the value itself.
fn file_or_text(text: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(text);
    if !text.contains('\n') && path.is_file() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {text}"));
    }
    Ok(text.to_owned())
}

fn insert<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

/// Inserts the text of a `--flag FILE-or-TEXT` argument.
fn insert_file(map: &mut Map<String, Value>, key: &str, arg: Option<&str>) -> anyhow::Result<()> {
    insert(map, key, arg.map(file_or_text).transpose()?);
    Ok(())
}

fn app_settings(s: AppSettings) -> Map<String, Value> {
    let mut m = Map::new();
    insert(&mut m, "name", s.name);
    insert(&mut m, "pid", s.pid);
    insert(&mut m, "settlement", s.settlement);
    insert(&mut m, "fee_rate", s.fee_rate);
    insert(&mut m, "refund_position", s.refund_position);
    insert(&mut m, "general_finance", s.general_finance);
    insert(&mut m, "require_store_terminal", s.require_store_terminal);
    insert(&mut m, "refund_window_months", s.refund_window_months);
    insert(&mut m, "id_mode", s.id_mode);
    insert(&mut m, "aes_key", s.aes_key);
    insert(&mut m, "empty_bills", s.empty_bills);
    if s.risk_stores_max.is_some() || s.risk_terminals_max.is_some() {
        m.insert(
            "risk".into(),
            json!({"stores_per_day_max": s.risk_stores_max, "terminals_per_day_max": s.risk_terminals_max}),
        );
    }
    m
}

enum Verb {
    Get,
    Post(Value),
    Patch(Value),
    Put(Value),
    Delete,
    /// GET a file and save it.
    Save(std::path::PathBuf),
}

/// `?k=v&…` of the parameters given (values are dates, ids: URL-safe).
fn query(params: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// Writes the certificate files of a control-API answer into `dir`, under
/// the names Alipay's console gives them, and says so on stderr.
fn write_cert_files(dir: &Path, answer: &Value) -> anyhow::Result<()> {
    let mut files = Vec::new();
    if let (Some(pem), Some(app_id)) = (answer["app_cert"].as_str(), answer["app_id"].as_str()) {
        files.push((format!("appCertPublicKey_{app_id}.crt"), pem));
    }
    if let Some(pem) = answer["alipay_cert"].as_str() {
        files.push(("alipayCertPublicKey_RSA2.crt".to_owned(), pem));
    }
    if let Some(pem) = answer["alipay_root_cert"].as_str() {
        files.push(("alipayRootCert.crt".to_owned(), pem));
    }
    if files.is_empty() {
        bail!("the app is not in certificate mode: there are no certificates to write");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut err = std::io::stderr().lock();
    for (name, pem) in files {
        let path = dir.join(name);
        std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
        writeln!(err, "wrote {}", path.display())?;
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/').to_owned();
    // Where to write the certificate files of the answer, if anywhere.
    let mut cert_files: Option<PathBuf> = None;
    let (verb, path) = match *args.command {
        Command::Info => (Verb::Get, "/sandbox".to_owned()),
        Command::Apps(Apps::Create {
            public_key,
            cert,
            certificate_mode,
            out,
            settings,
        }) => {
            let mut m = app_settings(settings);
            insert_file(&mut m, "app_public_key", public_key.as_deref())?;
            insert_file(&mut m, "app_cert", cert.as_deref())?;
            insert(&mut m, "certificate_mode", certificate_mode.then_some(true));
            cert_files = out;
            (Verb::Post(Value::Object(m)), "/sandbox/apps".to_owned())
        }
        Command::Apps(Apps::Update {
            app_id,
            public_key,
            certificate_mode,
            out,
            settings,
        }) => {
            let mut m = app_settings(settings);
            insert_file(&mut m, "app_public_key", public_key.as_deref())?;
            insert(&mut m, "certificate_mode", certificate_mode);
            cert_files = out;
            (
                Verb::Patch(Value::Object(m)),
                format!("/sandbox/apps/{app_id}"),
            )
        }
        Command::Certs { out } => {
            cert_files = out;
            (Verb::Get, "/sandbox/certs".to_owned())
        }
        Command::Apps(Apps::Get { app_id }) => (Verb::Get, format!("/sandbox/apps/{app_id}")),
        Command::Buyers(Buyers::Create {
            balance,
            huabei_limit,
            points,
            requires_password,
            balance_payment_disabled,
            daily_limit,
            pay_with,
            json,
        }) => {
            let mut m = match json {
                Some(j) => match serde_json::from_str::<Value>(&j).context("--json")? {
                    Value::Object(m) => m,
                    _ => bail!("--json must be a JSON object"),
                },
                None => Map::new(),
            };
            insert(&mut m, "balance", balance);
            insert(&mut m, "huabei_limit", huabei_limit);
            insert(&mut m, "points", points);
            insert(
                &mut m,
                "requires_password",
                requires_password.then_some(true),
            );
            insert(
                &mut m,
                "balance_payment_disabled",
                balance_payment_disabled.then_some(true),
            );
            insert(&mut m, "daily_limit", daily_limit);
            insert(&mut m, "pay_with", pay_with);
            (Verb::Post(Value::Object(m)), "/sandbox/buyers".to_owned())
        }
        Command::Buyers(Buyers::Get { buyer_id }) => {
            (Verb::Get, format!("/sandbox/buyers/{buyer_id}"))
        }
        Command::PaymentCode { buyer_id, pay_with } => {
            let mut m = Map::new();
            insert(&mut m, "pay_with", pay_with);
            (
                Verb::Post(Value::Object(m)),
                format!("/sandbox/buyers/{buyer_id}/payment-codes"),
            )
        }
        Command::SecurityCode { buyer_id, pay_with } => {
            let mut m = Map::new();
            insert(&mut m, "pay_with", pay_with);
            (
                Verb::Post(Value::Object(m)),
                format!("/sandbox/buyers/{buyer_id}/security-codes"),
            )
        }
        Command::Confirm { trade_no } => (
            Verb::Post(json!({})),
            format!("/sandbox/trades/{trade_no}/confirm"),
        ),
        Command::Abandon { trade_no } => (
            Verb::Post(json!({})),
            format!("/sandbox/trades/{trade_no}/abandon"),
        ),
        Command::Trades(Trades::Get { trade_no }) => {
            (Verb::Get, format!("/sandbox/trades/{trade_no}"))
        }
        Command::Trades(Trades::List { date, out_trade_no }) => {
            let mut q = Vec::new();
            if let Some(d) = date {
                q.push(format!("date={d}"));
            }
            if let Some(o) = out_trade_no {
                q.push(format!("out_trade_no={o}"));
            }
            (Verb::Get, format!("/sandbox/trades?{}", q.join("&")))
        }
        Command::Qr(Qr::Scan {
            qr_code,
            buyer_id,
            no_confirm,
        }) => (
            Verb::Post(json!({"qr_code": qr_code, "buyer_id": buyer_id, "confirm": !no_confirm})),
            "/sandbox/qr/scan".to_owned(),
        ),
        Command::Oauth(Oauth::Authorize {
            app_id,
            buyer_id,
            scope,
            redirect_uri,
            state,
        }) => {
            let mut m = Map::new();
            m.insert("app_id".into(), app_id.into());
            m.insert("buyer_id".into(), buyer_id.into());
            insert(&mut m, "scope", scope);
            insert(&mut m, "redirect_uri", redirect_uri);
            insert(&mut m, "state", state);
            (
                Verb::Post(Value::Object(m)),
                "/sandbox/oauth/authorize".to_owned(),
            )
        }
        Command::Merchants(Merchants::Get { smid }) => {
            (Verb::Get, format!("/sandbox/merchants/{smid}"))
        }
        Command::Merchants(Merchants::Risk { smid, blocked }) => (
            Verb::Post(json!({"blocked": blocked})),
            format!("/sandbox/merchants/{smid}/risk"),
        ),
        Command::Clock(Clock::Get) => (Verb::Get, "/sandbox/clock".to_owned()),
        Command::Clock(Clock::Advance { seconds }) => (
            Verb::Post(json!({"seconds": seconds})),
            "/sandbox/clock/advance".to_owned(),
        ),
        Command::Faults(Faults::Add(add)) => {
            let FaultAdd {
                action,
                method,
                out_trade_no,
                amount,
                times,
                apply,
                ms,
                pay_after_queries,
                after,
                for_seconds,
                hold_seconds,
                json,
            } = *add;
            let body = match (json, action) {
                (Some(j), _) => serde_json::from_str::<Value>(&j).context("--json")?,
                (None, Some(action)) => {
                    let mut m = Map::new();
                    m.insert("action".into(), action.into());
                    insert(&mut m, "method", method);
                    insert(&mut m, "out_trade_no", out_trade_no);
                    insert(&mut m, "amount", amount);
                    insert(&mut m, "times", times);
                    insert(&mut m, "apply", apply.then_some(true));
                    insert(&mut m, "ms", ms);
                    insert(&mut m, "pay_after_queries", pay_after_queries);
                    if !after.is_empty() {
                        m.insert("after".into(), after.into());
                    }
                    insert(&mut m, "for_seconds", for_seconds);
                    insert(&mut m, "hold_seconds", hold_seconds);
                    Value::Object(m)
                }
                (None, None) => bail!("faults add needs --action or --json"),
            };
            (Verb::Post(body), "/sandbox/faults".to_owned())
        }
        Command::Faults(Faults::List) => (Verb::Get, "/sandbox/faults".to_owned()),
        Command::Faults(Faults::Clear) => (Verb::Delete, "/sandbox/faults".to_owned()),
        Command::Ledger { date } => (
            Verb::Get,
            match date {
                Some(d) => format!("/sandbox/ledger?date={d}"),
                None => "/sandbox/ledger".to_owned(),
            },
        ),
        Command::Notifications { out_trade_no } => (
            Verb::Get,
            match out_trade_no {
                Some(o) => format!("/sandbox/notifications?out_trade_no={o}"),
                None => "/sandbox/notifications".to_owned(),
            },
        ),
        Command::RunDue => (Verb::Post(json!({})), "/sandbox/run-due".to_owned()),
        Command::Bills(Bills::List { pid, date }) => (
            Verb::Get,
            format!("/sandbox/bills{}", query(&[("pid", pid), ("date", date)])),
        ),
        Command::Bills(Bills::Get {
            pid,
            date,
            file,
            out,
        }) => (
            Verb::Save(out),
            format!("/sandbox/bills/{pid}/{}/{file}", date.replace('-', "")),
        ),
        Command::Sftp(Sftp::Info) => (Verb::Get, "/sandbox/sftp".to_owned()),
        Command::Sftp(Sftp::SetUser {
            pid,
            password,
            public_keys,
        }) => {
            let mut m = Map::new();
            insert(&mut m, "password", password);
            let keys = public_keys
                .iter()
                .map(|k| file_or_text(k).map(|t| Value::from(t.trim())))
                .collect::<anyhow::Result<Vec<Value>>>()?;
            m.insert("public_keys".into(), Value::Array(keys));
            (
                Verb::Put(Value::Object(m)),
                format!("/sandbox/sftp/users/{pid}"),
            )
        }
        Command::Sftp(Sftp::GetUser { pid }) => (Verb::Get, format!("/sandbox/sftp/users/{pid}")),
        Command::Sftp(Sftp::DeleteUser { pid }) => {
            (Verb::Delete, format!("/sandbox/sftp/users/{pid}"))
        }
        Command::Settlements {
            date,
            business_date,
            app_id,
            pid,
        } => (
            Verb::Get,
            format!(
                "/sandbox/settlements{}",
                query(&[
                    ("date", date),
                    ("business_date", business_date),
                    ("app_id", app_id),
                    ("pid", pid),
                ])
            ),
        ),
        Command::Calendar { date } => (
            Verb::Get,
            format!("/sandbox/calendar{}", query(&[("date", date)])),
        ),
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let url = format!("{base}{path}");
    let save_to = match &verb {
        Verb::Save(p) => Some(p.clone()),
        _ => None,
    };
    let request = match verb {
        Verb::Get | Verb::Save(_) => http.get(&url),
        Verb::Delete => http.delete(&url),
        Verb::Post(body) => http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        Verb::Patch(body) => http
            .patch(&url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        Verb::Put(body) => http
            .put(&url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    };
    let response = request.send().await.with_context(|| {
        format!("cannot reach the sandbox at {base} (is `jianlian sandbox` running?)")
    })?;
    let status = response.status();
    if let Some(path) = save_to.filter(|_| status.is_success()) {
        let bytes = response.bytes().await.context("reading the file")?;
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        let mut out = std::io::stdout().lock();
        let saved = json!({"saved": path.display().to_string(), "bytes": bytes.len()});
        writeln!(out, "{}", serde_json::to_string_pretty(&saved)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = response.text().await.context("reading the answer")?;
    let pretty = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if !status.is_success() {
        bail!("the sandbox answered HTTP {status}: {pretty}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{pretty}")?;
    drop(out);
    if let Some(dir) = cert_files {
        let answer: Value = serde_json::from_str(&pretty).context("reading the answer")?;
        write_cert_files(&dir, &answer)?;
    }
    Ok(ExitCode::SUCCESS)
}
