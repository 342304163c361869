//! The HTTP surfaces and the application seam: [`router`] wires every route
//! to a shared [`Service`]; [`Application::build`] connects the store, binds
//! the listener (port 0 in tests) and hands back something to run or to drive
//! step by step ([`Running::run_due`]).
//!
//! Routes: `/gateway.do` (the channel API), `/notify/alipay` (Alipay's
//! notifications), `/healthz`, `/metrics`, and `/admin/…` (JSON, bearer
//! token; off unless `admin.token_file` is configured). The admin routes are
//! thin: each parses its request and calls the same `ops` function as the
//! matching `jianlian` command, so the two cannot drift apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jianlian_alipay::Clock;
use jianlian_alipay::api::merchant::MerchantProfile;
use jianlian_core::ids::{AppId, ChannelOrderNo, Pid};
use jianlian_core::merchant::OnboardingState;
use jianlian_store::{MerchantFilter, StoreError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::error::Error;
use crate::service::{Service, StartError};
use crate::worker::{RunReport, run_due};
use crate::{channel_api, notify_in, ops};

/// Every route of the gateway.
pub fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route(
            "/gateway.do",
            get(channel_api::handle).post(channel_api::handle),
        )
        .route("/notify/alipay", post(notify_in::handle))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/admin/channels",
            get(admin_channels).post(admin_create_channel),
        )
        .route(
            "/admin/merchants",
            get(admin_merchants).post(admin_create_merchant),
        )
        .route("/admin/merchants/set-source", post(admin_set_source))
        .route("/admin/merchants/{merchant}", get(admin_merchant))
        .route(
            "/admin/merchants/{merchant}/stores",
            post(admin_create_store),
        )
        .route("/admin/merchants/{merchant}/fees", put(admin_set_fees))
        .route("/admin/trades/{app_id}/{out_trade_no}", get(admin_trade))
        .route("/admin/dead-letters", get(admin_dead_letters))
        .route("/admin/dead-letters/{id}/replay", post(admin_replay))
        .route("/admin/ledger/check", get(admin_ledger_check))
        .layer(DefaultBodyLimit::max(
            jianlian_alipay::server::REQUEST_BODY_MAX_BYTES + 4096,
        ))
        .with_state(svc)
}

async fn healthz(State(svc): State<Arc<Service>>) -> Response {
    match svc.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(svc): State<Arc<Service>>) -> Response {
    match crate::metrics::render(&svc).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => Error::Internal(e.to_string()).into_response(),
    }
}

/// The admin API's bearer token check (constant-time comparison).
fn authorize(svc: &Service, headers: &HeaderMap) -> Result<(), Error> {
    let Some(expected) = svc.settings.admin_token.as_deref() else {
        return Err(Error::NotFound(
            "the admin API is off (admin.token_file is not configured)".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let same = given.len() == expected.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes())
            .is_ok();
    if same {
        Ok(())
    } else {
        Err(Error::Unauthorized)
    }
}

async fn admin_channels(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let channels = svc.store.channels().await?;
    Ok(Json(Value::Array(
        channels.iter().map(ops::channel_json).collect(),
    )))
}

/// Reads a JSON request body into `T`, naming what is wrong with it.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("the request body: {e}")))
}

/// `POST /admin/channels`: as `jianlian channel create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelCreate {
    name: String,
    pid: String,
    /// PEM or bare base64 (SPKI or PKCS#1).
    public_key: String,
    parent: Option<String>,
    #[serde(default)]
    notify_hosts: Vec<String>,
}

async fn admin_create_channel(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    authorize(&svc, &headers)?;
    let req: ChannelCreate = json_body(&body)?;
    let new = ops::NewChannel {
        name: req.name,
        pid: Pid::parse(&req.pid).map_err(|e| Error::Invalid(format!("pid: {e}")))?,
        public_key: req.public_key,
        parent: req
            .parent
            .map(|p| AppId::parse(&p))
            .transpose()
            .map_err(|e| Error::Invalid(format!("parent: {e}")))?,
        notify_hosts: req.notify_hosts,
    };
    let channel = ops::create_channel(&svc.store, new, svc.now()).await?;
    let gateway_key = svc.settings.gateway_key.public_key().to_base64();
    Ok((
        StatusCode::CREATED,
        Json(ops::channel_created_json(&channel, &gateway_key)),
    ))
}

/// `POST /admin/merchants`: as `jianlian merchant create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantCreate {
    /// The channel that brought the merchant (its PID is the default `source`).
    channel: String,
    /// Alipay's onboarding fields.
    profile: MerchantProfile,
    fee_rate: Option<String>,
    credit_fee_rate: Option<String>,
}

async fn admin_create_merchant(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    authorize(&svc, &headers)?;
    let req: MerchantCreate = json_body(&body)?;
    let merchant = ops::onboard_merchant(
        &svc,
        ops::AdminMerchant {
            channel: AppId::parse(&req.channel)
                .map_err(|e| Error::Invalid(format!("channel: {e}")))?,
            profile: req.profile,
            fees: ops::parse_fees(req.fee_rate.as_deref(), req.credit_fee_rate.as_deref())?,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ops::merchant_json(&merchant))))
}

async fn admin_merchant(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    Ok(Json(
        ops::merchant_detail_json(&svc.store, &merchant).await?,
    ))
}

/// `POST /admin/merchants/{merchant}/stores`: as `jianlian store create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreCreate {
    store_id: String,
    name: String,
    #[serde(default)]
    terminal_ids: Vec<String>,
}

async fn admin_create_store(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), Error> {
    authorize(&svc, &headers)?;
    let req: StoreCreate = json_body(&body)?;
    let created = ops::create_store(
        &svc.store,
        &merchant,
        &req.store_id,
        &req.name,
        &req.terminal_ids,
        svc.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ops::store_json(&created))))
}

/// `PUT /admin/merchants/{merchant}/fees`: as `jianlian merchant set-fees`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeesSet {
    rate: String,
    credit_rate: Option<String>,
}

async fn admin_set_fees(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Path(merchant): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let req: FeesSet = json_body(&body)?;
    let m = ops::set_fees(
        &svc.store,
        &merchant,
        &req.rate,
        req.credit_rate.as_deref(),
        svc.now(),
    )
    .await?;
    Ok(Json(ops::merchant_json(&m)))
}

/// `POST /admin/merchants/set-source`: as `jianlian merchant set-source`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSet {
    to: String,
    actor: String,
    reason: String,
    /// Merchants by smid or number.
    merchants: Vec<String>,
}

async fn admin_set_source(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let req: SourceSet = json_body(&body)?;
    let to = Pid::parse(&req.to).map_err(|e| Error::Invalid(format!("to: {e}")))?;
    let results = ops::set_source(&svc, &req.merchants, &to, &req.actor, &req.reason).await?;
    Ok(Json(ops::source_report_json(&results)))
}

#[derive(Debug, Deserialize)]
struct MerchantQuery {
    q: Option<String>,
    state: Option<String>,
    source: Option<String>,
    channel: Option<String>,
    limit: Option<u32>,
}

async fn admin_merchants(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Query(q): Query<MerchantQuery>,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let filter = merchant_filter(q.q, q.state, q.source, q.channel, q.limit)?;
    let merchants = svc.store.search_merchants(&filter).await?;
    Ok(Json(Value::Array(
        merchants.iter().map(ops::merchant_json).collect(),
    )))
}

/// A merchant search from loose text parameters (shared with the CLI).
pub fn merchant_filter(
    text: Option<String>,
    state: Option<String>,
    source: Option<String>,
    channel: Option<String>,
    limit: Option<u32>,
) -> Result<MerchantFilter, Error> {
    let state = state
        .map(|s| {
            OnboardingState::parse(&s).ok_or_else(|| {
                Error::Invalid(format!(
                    "state {s:?} is not draft, submitted, onboarded or rejected"
                ))
            })
        })
        .transpose()?;
    let source = source
        .map(|s| Pid::parse(&s).map_err(|e| Error::Invalid(e.to_string())))
        .transpose()?;
    let channels = channel
        .map(|c| {
            AppId::parse(&c)
                .map(|a| vec![a])
                .map_err(|e| Error::Invalid(e.to_string()))
        })
        .transpose()?;
    Ok(MerchantFilter {
        channels,
        text,
        state,
        source,
        limit: limit.unwrap_or(100),
    })
}

async fn admin_trade(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Path((app_id, out_trade_no)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let app_id = AppId::parse(&app_id).map_err(|e| Error::Invalid(e.to_string()))?;
    let no = ChannelOrderNo::parse(&out_trade_no).map_err(|e| Error::Invalid(e.to_string()))?;
    let trade = svc
        .store
        .trade_by_channel_order(&app_id, &no)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no trade {out_trade_no} of channel {app_id}")))?;
    Ok(Json(channel_api::trades::trade_view(&trade)))
}

async fn admin_dead_letters(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let letters = ops::dead_letters(&svc.store, 1_000).await?;
    Ok(Json(Value::Array(
        letters.iter().map(ops::outbox_json).collect(),
    )))
}

async fn admin_replay(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    ops::replay_dead_letter(&svc.store, id, svc.now()).await?;
    Ok(Json(json!({ "replayed": id })))
}

async fn admin_ledger_check(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    authorize(&svc, &headers)?;
    let balance = svc.store.ledger_check().await.map_err(|e| match e {
        StoreError::Ledger(l) => Error::Conflict(format!("the ledger does not balance: {l}")),
        other => other.into(),
    })?;
    Ok(Json(crate::ledger_json(&balance)))
}

/// The gateway, built and bound, not yet serving.
#[derive(Debug)]
pub struct Application {
    svc: Arc<Service>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl Application {
    /// Connects and migrates the store, builds the clients, binds the listener.
    /// With port 0, URLs derived from the listen address (`public_url` and
    /// the upstream `notify_url` left at their defaults) get the real port.
    pub async fn build(
        mut settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartError> {
        // Counters recorded before the recorder exists would be lost.
        let _ = crate::metrics::handle();
        let listen = settings.listen;
        let listener =
            tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| StartError::Listen {
                    addr: listen.to_string(),
                    reason: e.to_string(),
                })?;
        let addr = listener.local_addr().map_err(|e| StartError::Listen {
            addr: listen.to_string(),
            reason: e.to_string(),
        })?;
        if listen.port() == 0 {
            let derived = format!("http://{listen}");
            let real = format!("http://{addr}");
            if settings.public_url == derived {
                settings.public_url.clone_from(&real);
            }
            if let Some(path) = settings.upstream.notify_url.strip_prefix(&derived) {
                settings.upstream.notify_url = format!("{real}{path}");
            }
        }
        let svc = Service::start(settings, clock).await?;
        Ok(Application {
            svc,
            listener,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &Arc<Service> {
        &self.svc
    }

    /// Serves in the background; with `ticker` the job runner runs every
    /// `worker.tick_ms` on the service's clock (as `serve` does). Dropping the
    /// handle stops both.
    pub fn spawn(self, ticker: bool) -> Running {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let svc = self.svc.clone();
        let app = router(svc.clone());
        let server = tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the gateway server stopped");
            }
        });
        let ticker = ticker.then(|| {
            let svc = svc.clone();
            let every: Duration = svc.settings.worker.tick;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match run_due(&svc, svc.now()).await {
                        Ok(report) if report.claimed > 0 => {
                            tracing::debug!(?report, "jobs run");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "job runner"),
                    }
                }
            })
        });
        Running {
            svc,
            addr: self.addr,
            stop: Some(stop_tx),
            server: Some(server),
            ticker,
        }
    }
}

/// A serving gateway.
#[derive(Debug)]
pub struct Running {
    svc: Arc<Service>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn service(&self) -> &Arc<Service> {
        &self.svc
    }

    /// Runs the jobs due at the clock's now (the test's step function).
    pub async fn run_due(&self) -> Result<RunReport, StoreError> {
        run_due(&self.svc, self.svc.now()).await
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
