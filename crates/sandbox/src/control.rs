//! The control API under `/sandbox/` (JSON): what a tester does to Alipay's
//! world — apps, buyers, payment codes, buyer actions, QR scans, OAuth, the
//! clock, faults — and the truth endpoints (ledger, notifications, trades,
//! merchants). Each endpoint calls the typed operation the in-process handle
//! offers, so both behave the same.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use jianlian_alipay::time::format_beijing;

use crate::SandboxError;
use crate::faults::FaultRule;
use crate::model::CodeKind;
use crate::sandbox::{AppSpec, BuyerSpec, Shared};
use crate::scheduler;

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            SandboxError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            SandboxError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            SandboxError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            SandboxError::Journal(_) | SandboxError::Startup(_) | SandboxError::Certs(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("control API: {self}");
        }
        let message = match &self {
            SandboxError::Certs(_) => {
                "the sandbox could not make a certificate; see its log".to_owned()
            }
            _ if status == StatusCode::INTERNAL_SERVER_ERROR => {
                "the sandbox could not save its state; see its log".to_owned()
            }
            _ => self.to_string(),
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

pub(crate) type Res = Result<Json<Value>, SandboxError>;

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Res {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| SandboxError::BadRequest(e.to_string()))
}

/// Parses a JSON body, naming the bad field.
pub(crate) fn body<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SandboxError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    jianlian_alipay::api::parse_biz(text).map_err(|e| {
        // The parser names the JSON's root `biz_content`; here it is the body.
        let e = e
            .strip_prefix("biz_content: ")
            .map_or(e.clone(), |rest| format!("body: {rest}"));
        SandboxError::BadRequest(e)
    })
}

pub async fn index(State(s): State<Arc<Shared>>) -> Res {
    Ok(Json(json!({
        "gateway_url": format!("{}/gateway.do", s.base_url),
        "control_url": format!("{}/sandbox", s.base_url),
        "oauth_url": format!("{}/oauth2/publicAppAuthorize.htm", s.base_url),
        "now": format_beijing(s.clock.now()),
        "methods": crate::api::METHODS,
    })))
}

pub async fn create_app(State(s): State<Arc<Shared>>, text: String) -> Res {
    let spec: AppSpec = body(&text)?;
    if spec.needs_certs() {
        s.ensure_certs_async().await?;
    }
    to_json(&s.create_app(spec)?)
}

pub async fn update_app(
    State(s): State<Arc<Shared>>,
    Path(app_id): Path<String>,
    text: String,
) -> Res {
    let spec: AppSpec = body(&text)?;
    if spec.needs_certs() {
        s.ensure_certs_async().await?;
    }
    to_json(&s.update_app(&app_id, spec)?)
}

/// `GET /sandbox/certs`: the Alipay public-key certificate and the root
/// bundle, with their SNs (made on first use).
pub async fn certs(State(s): State<Arc<Shared>>) -> Res {
    s.ensure_certs_async().await?;
    to_json(&s.certs()?)
}

pub async fn get_app(State(s): State<Arc<Shared>>, Path(app_id): Path<String>) -> Res {
    let app = s
        .read(|c| c.st.apps.get(&app_id).cloned())
        .ok_or_else(|| SandboxError::NotFound(format!("app {app_id} does not exist")))?;
    let mut v = serde_json::to_value(&app).map_err(|e| SandboxError::BadRequest(e.to_string()))?;
    if let Some(o) = v.as_object_mut()
        && o.get("aes_key").is_some_and(|k| !k.is_null())
    {
        o.insert("aes_key".into(), "(set)".into());
    }
    Ok(Json(v))
}

pub async fn create_buyer(State(s): State<Arc<Shared>>, text: String) -> Res {
    let spec: BuyerSpec = body(&text)?;
    to_json(&s.create_buyer(spec)?)
}

pub async fn get_buyer(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Res {
    let b = s
        .read(|c| c.st.buyers.get(&id).cloned())
        .ok_or_else(|| SandboxError::NotFound(format!("buyer {id} does not exist")))?;
    to_json(&b)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeSpec {
    #[serde(default)]
    pay_with: Option<String>,
}

pub async fn payment_code(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    text: String,
) -> Res {
    issue_code(&s, &id, &text, CodeKind::BarCode)
}

/// `POST /sandbox/buyers/{buyer_id}/security-codes`: the token a
/// face-payment device obtains once it has recognised the buyer, for
/// `alipay.trade.pay` with `scene=security_code`.
pub async fn security_code(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    text: String,
) -> Res {
    issue_code(&s, &id, &text, CodeKind::SecurityCode)
}

fn issue_code(s: &Arc<Shared>, buyer_id: &str, text: &str, kind: CodeKind) -> Res {
    let spec: CodeSpec = body(text)?;
    let code = s.issue_code(buyer_id, spec.pay_with.as_deref(), kind)?;
    let expires = s.read(|c| c.st.codes.get(&code).map(|p| format_beijing(p.expires_at)));
    Ok(Json(json!({"auth_code": code, "expires_at": expires})))
}

pub async fn get_trade(State(s): State<Arc<Shared>>, Path(no): Path<String>) -> Res {
    let t = s
        .read(|c| c.st.trades.get(&no).cloned())
        .ok_or_else(|| SandboxError::NotFound(format!("trade {no} does not exist")))?;
    to_json(&t)
}

#[derive(Debug, Deserialize)]
pub struct TradeFilter {
    date: Option<String>,
    out_trade_no: Option<String>,
}

pub async fn list_trades(State(s): State<Arc<Shared>>, Query(f): Query<TradeFilter>) -> Res {
    let list: Vec<crate::model::Trade> = s.read(|c| {
        c.st.trades
            .values()
            .filter(|t| {
                f.date.as_deref().is_none_or(|d| {
                    jianlian_alipay::time::beijing_date(t.created_at).to_string() == d
                })
            })
            .filter(|t| {
                f.out_trade_no
                    .as_deref()
                    .is_none_or(|o| t.out_trade_no == o)
            })
            .cloned()
            .collect()
    });
    Ok(Json(json!({"trades": list})))
}

pub async fn confirm(State(s): State<Arc<Shared>>, Path(no): Path<String>) -> Res {
    let now = s.clock.now();
    to_json(&s.with(|c| c.confirm_trade(&no, now))??)
}

pub async fn abandon(State(s): State<Arc<Shared>>, Path(no): Path<String>) -> Res {
    let now = s.clock.now();
    to_json(&s.with(|c| c.abandon_trade(&no, now))??)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanSpec {
    qr_code: String,
    buyer_id: String,
    #[serde(default = "yes")]
    confirm: bool,
}

fn yes() -> bool {
    true
}

pub async fn scan(State(s): State<Arc<Shared>>, text: String) -> Res {
    let spec: ScanSpec = body(&text)?;
    let now = s.clock.now();
    to_json(&s.with(|c| c.scan_qr(&spec.qr_code, &spec.buyer_id, spec.confirm, now))??)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeSpec {
    app_id: String,
    buyer_id: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

pub async fn authorize(State(s): State<Arc<Shared>>, text: String) -> Res {
    let spec: AuthorizeSpec = body(&text)?;
    let scope = spec.scope.unwrap_or_else(|| "auth_base".to_owned());
    let now = s.clock.now();
    let code = s.with(|c| c.authorize(&spec.app_id, &spec.buyer_id, &scope, now))??;
    let redirect = spec.redirect_uri.map(|r| {
        let sep = if r.contains('?') { '&' } else { '?' };
        let enc = |t: &str| {
            jianlian_alipay::form::encode_component(t, jianlian_alipay::Charset::Utf8)
                .unwrap_or_default()
        };
        let mut url = format!(
            "{r}{sep}app_id={}&source=alipay_wallet&scope={}&auth_code={}",
            enc(&spec.app_id),
            enc(&scope),
            enc(&code)
        );
        if let Some(st) = &spec.state {
            url.push_str(&format!("&state={}", enc(st)));
        }
        url
    });
    Ok(Json(json!({"auth_code": code, "redirect": redirect})))
}

pub async fn get_merchant(State(s): State<Arc<Shared>>, Path(smid): Path<String>) -> Res {
    let m = s
        .read(|c| c.st.merchants.get(&smid).cloned())
        .ok_or_else(|| SandboxError::NotFound(format!("merchant {smid} does not exist")))?;
    to_json(&m)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskSpec {
    blocked: bool,
}

pub async fn merchant_risk(
    State(s): State<Arc<Shared>>,
    Path(smid): Path<String>,
    text: String,
) -> Res {
    let spec: RiskSpec = body(&text)?;
    to_json(&s.set_merchant_risk(&smid, spec.blocked)?)
}

pub async fn clock(State(s): State<Arc<Shared>>) -> Res {
    Ok(Json(json!({"now": format_beijing(s.clock.now())})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceSpec {
    seconds: i64,
}

pub async fn advance(State(s): State<Arc<Shared>>, text: String) -> Res {
    let spec: AdvanceSpec = body(&text)?;
    let now = scheduler::advance(&s, spec.seconds).await?;
    Ok(Json(json!({"now": format_beijing(now)})))
}

pub async fn run_due(State(s): State<Arc<Shared>>) -> Res {
    let report = scheduler::run_due(&s).await?;
    to_json(&report)
}

pub async fn add_fault(State(s): State<Arc<Shared>>, text: String) -> Res {
    let rule: FaultRule = body(&text)?;
    to_json(&s.add_fault(rule)?)
}

pub async fn list_faults(State(s): State<Arc<Shared>>) -> Res {
    let rules = s.read(|c| c.st.faults.clone());
    Ok(Json(json!({"faults": rules})))
}

pub async fn clear_faults(State(s): State<Arc<Shared>>) -> Res {
    Ok(Json(json!({"cleared": s.clear_faults()?})))
}

#[derive(Debug, Deserialize)]
pub struct LedgerFilter {
    date: Option<String>,
}

pub async fn ledger(State(s): State<Arc<Shared>>, Query(f): Query<LedgerFilter>) -> Res {
    if let Some(d) = f.date.as_deref()
        && d.parse::<jiff::civil::Date>().is_err()
    {
        return Err(SandboxError::BadRequest(format!(
            "date {d:?} is not yyyy-MM-dd"
        )));
    }
    Ok(Json(json!({"entries": s.ledger(f.date.as_deref())})))
}

#[derive(Debug, Deserialize)]
pub struct NoticeFilter {
    out_trade_no: Option<String>,
}

pub async fn notifications(State(s): State<Arc<Shared>>, Query(f): Query<NoticeFilter>) -> Res {
    Ok(Json(
        json!({"notifications": s.notifications(f.out_trade_no.as_deref())}),
    ))
}
