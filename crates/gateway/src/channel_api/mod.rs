//! `POST /gateway.do`: the channel API, speaking Alipay's protocol exactly, so
//! a channel uses an official Alipay SDK by changing the URL, app_id and keys.
//!
//! Each request is read and authenticated by the protocol crate in Alipay's
//! order (app → signature → common parameters) against the channel's
//! registered key, then its `timestamp` is checked against the clock (a
//! replayed request older than `channel_api.timestamp_skew_max_secs` is
//! refused), then the method runs. Every answer, errors included, is written
//! under `<method>_response` and signed with the gateway's key; an internal
//! failure answers `20000` and reveals nothing (it is logged once).

pub mod merchants;
pub mod trades;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use jianlian_alipay::server::{
    ErrorReply, IncomingRequest, RawRequest, ResponseSigning, success_node, write_response_in,
};
use jianlian_alipay::{Charset, Code};
use jianlian_core::channel::Channel;
use serde_json::{Map, Value};

use crate::service::Service;

/// A successful answer: `10000` or `10003` with its fields.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: Code,
    pub fields: Map<String, Value>,
}

impl Answer {
    pub fn success(fields: Map<String, Value>) -> Answer {
        Answer {
            code: Code::Success,
            fields,
        }
    }
}

/// What a method returns: its answer or an Alipay-style refusal.
pub type MethodResult = Result<Answer, ErrorReply>;

/// The authenticated caller of one request.
#[derive(Debug)]
pub struct Caller {
    pub channel: Channel,
    /// The request's `notify_url`, if any (checked by the trade methods).
    pub notify_url: Option<String>,
    /// `channel` is a remembered copy, not read for this request: a trade
    /// intent is written only while the stored channel still matches it.
    pub remembered: bool,
    /// Set when the store found `channel` changed: the request is run again
    /// with a fresh read, and its answer so far is dropped.
    pub changed: AtomicBool,
}

/// Logs an internal error once and answers `20000`: the caller retries or
/// queries, and learns nothing about the gateway's insides.
pub fn internal(context: &str, e: impl std::fmt::Display) -> ErrorReply {
    tracing::error!(error = %e, "{context}");
    ErrorReply::unknown()
}

/// 40004 with an `ACQ.*` (or the gateway's `JL.*`) sub_code.
pub fn acq(sub_code: &str, sub_msg: impl Into<String>) -> ErrorReply {
    ErrorReply::business(sub_code, sub_msg)
}

/// The handler of `GET|POST /gateway.do`.
pub async fn handle(
    State(svc): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let raw = RawRequest {
        http_method: method.as_str(),
        target,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        body: &body,
    };
    let request = match IncomingRequest::parse(raw) {
        Ok(r) => r,
        Err(reply) => {
            record("invalid", &reply.code);
            return respond(&svc, "error_response", Charset::Utf8, None, Err(reply));
        }
    };
    let key = request.response_key();
    let method_name = request.method().unwrap_or("").to_owned();
    let result = run(&svc, &request).await;
    let code = match &result {
        Ok(a) => a.code,
        Err(e) => e.code,
    };
    record(metric_method(&method_name), &code);
    respond(&svc, &key, request.charset(), Some(&request), result)
}

/// Method names are bounded in the metric labels: unknown ones count as `other`.
fn metric_method(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn record(method: &'static str, code: &Code) {
    metrics::counter!("jianlian_channel_requests_total", "method" => method, "code" => code.as_str())
        .increment(1);
}

/// Every method of the channel API.
pub const METHODS: &[&str] = &[
    "alipay.trade.pay",
    "alipay.trade.precreate",
    "alipay.trade.create",
    "alipay.trade.query",
    "alipay.trade.cancel",
    "alipay.trade.close",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "ant.merchant.expand.indirect.create",
    "ant.merchant.expand.indirect.query",
    "ant.merchant.expand.indirect.modify",
    "jianlian.merchant.store.create",
];

/// The methods that may authenticate with a remembered channel (see
/// `Service::remembered_channel`): each writes a trade intent, and the store
/// writes it only while the channel is still as remembered.
const STARTS: &[&str] = &[
    "alipay.trade.pay",
    "alipay.trade.precreate",
    "alipay.trade.create",
];

async fn run(svc: &Arc<Service>, request: &IncomingRequest) -> MethodResult {
    let app_id = request.get("app_id");
    // A remembered copy that may be stale (None) is followed by a fresh read.
    let remembered = STARTS
        .contains(&request.method().unwrap_or_default())
        .then(|| app_id.and_then(|a| svc.remembered_channel(a)))
        .flatten();
    if let Some(channel) = remembered
        && let Some(result) = run_as(svc, request, channel, true).await
    {
        return result;
    }
    let channel = match app_id {
        Some(app_id) => svc
            .active_channel(app_id)
            .await
            .map_err(|e| internal("channel lookup", e))?,
        None => None,
    };
    let Some(channel) = channel else {
        // Refuses the unknown or inactive app_id in Alipay's terms.
        request.authenticate(|_| None)?;
        return Err(ErrorReply::unknown());
    };
    run_as(svc, request, channel, false)
        .await
        .unwrap_or_else(|| Err(ErrorReply::unknown()))
}

/// Authenticates the request as `channel`'s and runs its method. With a
/// `remembered` channel, `None` when that copy may be stale: the signature
/// did not verify with its key, or the store found the channel changed
/// before writing the trade intent (nothing was written).
async fn run_as(
    svc: &Arc<Service>,
    request: &IncomingRequest,
    channel: Channel,
    remembered: bool,
) -> Option<MethodResult> {
    let key = svc.channel_key(&channel);
    if let Err(reply) = request.authenticate(|_| key) {
        return (!remembered).then_some(Err(reply));
    }
    let caller = Caller {
        channel,
        notify_url: request.get("notify_url").map(str::to_owned),
        remembered,
        changed: AtomicBool::new(false),
    };
    let result = dispatch(svc, request, &caller).await;
    if caller.changed.load(Ordering::Acquire) {
        return None;
    }
    Some(result)
}

async fn dispatch(svc: &Arc<Service>, request: &IncomingRequest, caller: &Caller) -> MethodResult {
    check_timestamp(svc, request)?;
    let biz = request.biz_content(None)?;
    let biz = biz.as_deref();
    match request.method().unwrap_or_default() {
        "alipay.trade.pay" => trades::pay(svc, caller, need(biz)?).await,
        "alipay.trade.precreate" => trades::precreate(svc, caller, need(biz)?).await,
        "alipay.trade.create" => trades::create(svc, caller, need(biz)?).await,
        "alipay.trade.query" => trades::query(svc, caller, need(biz)?).await,
        "alipay.trade.cancel" => trades::cancel(svc, caller, need(biz)?).await,
        "alipay.trade.close" => trades::close(svc, caller, need(biz)?).await,
        "alipay.trade.refund" => trades::refund(svc, caller, need(biz)?).await,
        "alipay.trade.fastpay.refund.query" => trades::refund_query(svc, caller, need(biz)?).await,
        "ant.merchant.expand.indirect.create" => merchants::create(svc, caller, need(biz)?).await,
        "ant.merchant.expand.indirect.query" => merchants::query(svc, caller, need(biz)?).await,
        "ant.merchant.expand.indirect.modify" => merchants::modify(svc, caller, need(biz)?).await,
        "jianlian.merchant.store.create" => merchants::create_store(svc, caller, need(biz)?).await,
        other => Err(ErrorReply::new(
            Code::InvalidArguments,
            "isv.invalid-method",
            format!("不存在的方法名: {other} is not a method of this gateway"),
        )),
    }
}

fn need(biz: Option<&str>) -> Result<&str, ErrorReply> {
    biz.ok_or_else(|| ErrorReply::invalid_parameter("biz_content is required"))
}

/// Replay protection: the signed `timestamp` must be within the configured
/// skew of the gateway's clock.
fn check_timestamp(svc: &Service, request: &IncomingRequest) -> Result<(), ErrorReply> {
    let Some(skew) = svc.settings.timestamp_skew_max else {
        return Ok(());
    };
    let text = request.get("timestamp").unwrap_or_default();
    let sent = jianlian_alipay::time::parse_beijing(text).map_err(|_| {
        ErrorReply::new(
            Code::InvalidArguments,
            "isv.invalid-timestamp",
            format!("非法的时间戳参数: {text:?}"),
        )
    })?;
    let off = svc.now().duration_since(sent).abs();
    if off > skew {
        return Err(ErrorReply::new(
            Code::InvalidArguments,
            "isv.invalid-timestamp",
            format!(
                "非法的时间戳参数: timestamp {text} (Beijing time) is more than {} s from the gateway's clock",
                skew.as_secs()
            ),
        ));
    }
    Ok(())
}

/// Writes the signed answer in the caller's charset.
fn respond(
    svc: &Service,
    key: &str,
    charset: Charset,
    request: Option<&IncomingRequest>,
    result: MethodResult,
) -> Response {
    let node = match &result {
        Ok(answer) => success_node(answer.code, &Value::Object(answer.fields.clone()))
            .unwrap_or_else(|_| ErrorReply::unknown().to_node_json()),
        Err(reply) => reply.to_node_json(),
    };
    let signing = ResponseSigning {
        key: &svc.settings.gateway_key,
        sign_type: request
            .map(IncomingRequest::reply_sign_type)
            .unwrap_or_default(),
        cert_sn: None,
        aes: None,
    };
    let (bytes, charset) = match write_response_in(charset, key, &node, Some(signing)) {
        Ok(bytes) => (bytes, charset),
        // A value the caller's charset cannot carry: answer in UTF-8.
        Err(_) => (
            jianlian_alipay::server::write_response(key, &node, Some(signing)).into_bytes(),
            Charset::Utf8,
        ),
    };
    let content_type = format!("application/json;charset={}", charset.as_str());
    let mut response = bytes.into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Sends a refund of unknown outcome again with the same `out_request_no`
/// (the refund-confirmation job's remedy when Alipay did not receive it).
pub(crate) async fn resend_refund(
    svc: &Service,
    trade: &jianlian_core::trade::Trade,
    refund: &jianlian_core::refund::Refund,
) -> Option<(jianlian_core::refund::Refund, bool)> {
    trades::send_refund(svc, trade, refund, None).await.1
}
