//! Alipay's `gateway.do` over HTTP (protocol.md §11): GET and POST, origin- and
//! absolute-form targets, query and body merged, checks in Alipay's order,
//! every answer signed under the method key with the request's sign type
//! (`isv.invalid-signature` echoing the sign content), certificate mode (the
//! app's and the root bundle's SNs checked, `alipay_cert_sn` in answers),
//! AES-encrypted requests and answers, and the transport
//! faults (delay, drop before or after applying, wrong key, unknown results).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use bytes::Bytes;
use serde::Deserialize;

use jianlian_alipay::server::{RawRequest, ResponseSigning, write_response, write_response_in};
use jianlian_alipay::{
    AesKey, Charset, Code, ErrorReply, Fen, IncomingRequest, PrivateKey, SignType,
};

use crate::api::{self, Call, acq};
use crate::faults::{FaultAction, Target};
use crate::sandbox::Shared;

/// What the HTTP layer sends back.
#[derive(Debug)]
pub enum GatewayOutcome {
    /// A body, in `charset` (the request's, unless the text cannot be written in it).
    Body { bytes: Vec<u8>, charset: Charset },
    /// Close the connection without an answer (a fault).
    Drop,
}

/// How the answer is signed.
struct Answering {
    key: String,
    sign_type: SignType,
    cert_sn: Option<String>,
    aes: Option<AesKey>,
    wrong_key: bool,
}

fn error_body(
    shared: &Shared,
    charset: Charset,
    key: &str,
    sign_type: SignType,
    e: &ErrorReply,
) -> GatewayOutcome {
    let alipay_key = shared.read(|c| c.alipay_key.clone());
    signed(
        charset,
        key,
        &e.to_node_json(),
        &alipay_key,
        sign_type,
        None,
        None,
    )
}

/// The signed answer in the caller's charset (the signature covers the node's
/// bytes in it); text GBK cannot write is answered in UTF-8.
fn signed(
    charset: Charset,
    key: &str,
    node: &str,
    alipay_key: &PrivateKey,
    sign_type: SignType,
    cert_sn: Option<&str>,
    aes: Option<&AesKey>,
) -> GatewayOutcome {
    let signing = Some(ResponseSigning {
        key: alipay_key,
        sign_type,
        cert_sn,
        aes,
    });
    match write_response_in(charset, key, node, signing) {
        Ok(bytes) => GatewayOutcome::Body { bytes, charset },
        Err(_) => GatewayOutcome::Body {
            bytes: write_response(key, node, signing).into_bytes(),
            charset: Charset::Utf8,
        },
    }
}

/// The selectors a request presents to fault rules.
fn target_of(method: &str, biz: Option<&str>) -> (String, Option<String>, Option<Fen>) {
    let value: serde_json::Value = biz
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    let otn = value
        .get("out_trade_no")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let amount = ["total_amount", "refund_amount"]
        .iter()
        .filter_map(|k| value.get(*k))
        .find_map(|v| match v {
            serde_json::Value::String(s) => Fen::parse_yuan(s).ok(),
            serde_json::Value::Number(n) => Fen::parse_yuan(&n.to_string()).ok(),
            _ => None,
        });
    (method.to_owned(), otn, amount)
}

/// Serves one `gateway.do` request.
pub async fn serve(shared: &Arc<Shared>, raw: RawRequest<'_>) -> GatewayOutcome {
    let req = match IncomingRequest::parse(raw) {
        Ok(r) => r,
        Err(e) => return error_body(shared, Charset::Utf8, "error_response", SignType::Rsa2, &e),
    };
    let charset = req.charset();
    let key = req.response_key();
    let sign_type = req.reply_sign_type();
    let fail = |e: &ErrorReply| error_body(shared, charset, &key, sign_type, e);
    let auth =
        match req.authenticate(|app_id| shared.with(|c| c.app_public_key(app_id)).ok().flatten()) {
            Ok(a) => a,
            Err(e) => return fail(&e),
        };
    let Some(app) = shared.read(|c| c.st.apps.get(&auth.app_id).cloned()) else {
        return fail(&ErrorReply::unknown());
    };
    // Certificate mode: an app registered with a certificate must name it and
    // the sandbox's root bundle (Alipay's sub_codes, protocol.md §8.2).
    if let Some(expected) = app.app_cert_sn.as_deref() {
        let root = shared.read(|c| c.st.certs.as_ref().map(|x| x.alipay_root_cert_sn.clone()));
        let e = match (req.get("app_cert_sn"), req.get("alipay_root_cert_sn")) {
            (None, _) => Some(ErrorReply::new(
                Code::InvalidArguments,
                "isv.missing-app-cert-sn",
                "缺少应用公钥证书序列号",
            )),
            (Some(sn), _) if sn != expected => Some(ErrorReply::new(
                Code::InvalidArguments,
                "isv.app-cert-not-exist",
                format!(
                    "应用公钥证书不存在: app_cert_sn {sn} is not the SN of the app's certificate"
                ),
            )),
            (_, None) => Some(ErrorReply::new(
                Code::InvalidArguments,
                "isv.missing-alipay-root-cert-sn",
                "缺少支付宝根证书序列号",
            )),
            (_, Some(sn)) if Some(sn) != root.as_deref() => Some(ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-alipay-root-cert-sn",
                format!(
                    "无效支付宝根证书序列号: alipay_root_cert_sn {sn} is not the SN of the sandbox's root bundle (GET /sandbox/certs)"
                ),
            )),
            _ => None,
        };
        if let Some(e) = e {
            return fail(&e);
        }
    } else if req.is_cert_mode() {
        let e = ErrorReply::new(
            Code::InvalidArguments,
            "isv.app-cert-not-exist",
            "应用公钥证书不存在: this app registered a public key, not a certificate; drop app_cert_sn",
        );
        return fail(&e);
    }
    let aes = app
        .aes_key
        .as_deref()
        .and_then(|k| AesKey::from_base64(k).ok());
    let biz = match req.biz_content(aes.as_ref()) {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let method = req.method().unwrap_or_default().to_owned();
    let (t_method, t_otn, t_amount) = target_of(&method, biz.as_deref());
    let target = Target {
        method: Some(&t_method),
        out_trade_no: t_otn.as_deref(),
        amount: t_amount,
    };
    let (delay, transport, wrong) = match shared.with(|c| {
        let delay = c.fire_fault(&target, |a| matches!(a, FaultAction::Delay { .. }));
        let transport = c.fire_fault(&target, |a| {
            matches!(
                a,
                FaultAction::Unknown { .. }
                    | FaultAction::SystemError { .. }
                    | FaultAction::DropAfter
                    | FaultAction::DropBefore
            )
        });
        let wrong = c
            .fire_fault(&target, |a| matches!(a, FaultAction::WrongKey))
            .is_some();
        (delay, transport, wrong)
    }) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("journal: {e}");
            return fail(&ErrorReply::unknown());
        }
    };
    if let Some(FaultAction::Delay { ms }) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let answering = Answering {
        key: key.clone(),
        sign_type,
        cert_sn: if req.is_cert_mode() {
            shared.read(|c| c.st.certs.as_ref().map(|x| x.alipay_cert_sn.clone()))
        } else {
            None
        },
        aes: if req.is_encrypted() { aes } else { None },
        wrong_key: wrong,
    };
    let early = match &transport {
        Some(FaultAction::DropBefore) => return GatewayOutcome::Drop,
        Some(FaultAction::Unknown { apply: false }) => Some(ErrorReply::unknown()),
        Some(FaultAction::SystemError { apply: false }) => Some(acq("ACQ.SYSTEM_ERROR", "")),
        _ => None,
    };
    let node = match early {
        Some(e) => e.to_node_json(),
        None => {
            let call = Call {
                app,
                method,
                biz,
                request: req.clone(),
                notify_url: req.get("notify_url").map(str::to_owned),
                sign_type: auth.sign_type,
                charset,
                now: shared.clock.now(),
            };
            let answer = match shared.with(|c| api::dispatch(c, &call)) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!("journal: {e}");
                    Err(ErrorReply::unknown())
                }
            };
            match (&transport, answer) {
                (Some(FaultAction::DropAfter), _) => return GatewayOutcome::Drop,
                (Some(FaultAction::Unknown { apply: true }), _) => {
                    ErrorReply::unknown().to_node_json()
                }
                (Some(FaultAction::SystemError { apply: true }), _) => {
                    acq("ACQ.SYSTEM_ERROR", "").to_node_json()
                }
                (_, Ok(reply)) => reply.node_json,
                (_, Err(e)) => e.to_node_json(),
            }
        }
    };
    let signing_key = if answering.wrong_key {
        shared.wrong_key()
    } else {
        None
    }
    .unwrap_or_else(|| shared.read(|c| c.alipay_key.clone()));
    signed(
        charset,
        &answering.key,
        &node,
        &signing_key,
        answering.sign_type,
        answering.cert_sn.as_deref(),
        answering.aes.as_ref(),
    )
}

/// The axum handler for `/gateway.do`.
pub async fn handler(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let raw = RawRequest {
        http_method: method.as_str(),
        target: &target,
        content_type,
        body: &body,
    };
    match serve(&shared, raw).await {
        GatewayOutcome::Body { bytes, charset } => {
            let ct = format!("text/html;charset={}", charset.as_str());
            let mut response = (StatusCode::OK, bytes).into_response();
            if let Ok(v) = HeaderValue::from_str(&ct) {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            response
        }
        GatewayOutcome::Drop => {
            // A body that fails makes the server abort the connection mid-answer.
            let failing = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped (fault)"))
            });
            Response::new(Body::from_stream(failing))
        }
    }
}

/// Query of the OAuth authorize page.
#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    app_id: Option<String>,
    scope: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    /// Sandbox extension: which buyer authorises (otherwise a form asks).
    buyer_id: Option<String>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /oauth2/publicAppAuthorize.htm`: with `buyer_id`, redirects to
/// `redirect_uri` with `auth_code`; without, shows a form asking for it.
pub async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let (Some(app_id), Some(redirect)) = (q.app_id.as_deref(), q.redirect_uri.as_deref()) else {
        return (
            StatusCode::BAD_REQUEST,
            Html("app_id and redirect_uri are required".to_owned()),
        )
            .into_response();
    };
    if !(redirect.starts_with("http://") || redirect.starts_with("https://")) {
        return (
            StatusCode::BAD_REQUEST,
            Html("redirect_uri must be an http(s) URL".to_owned()),
        )
            .into_response();
    }
    let scope = q.scope.clone().unwrap_or_else(|| "auth_base".to_owned());
    let Some(buyer_id) = q.buyer_id.as_deref().filter(|b| !b.is_empty()) else {
        let hidden = |k: &str, v: &str| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                html_escape(v)
            )
        };
        let page = format!(
            "<!doctype html><meta charset=\"utf-8\"><title>支付宝授权 (sandbox)</title>\
             <form method=\"get\">{}{}{}{}<label>buyer_id <input name=\"buyer_id\"></label>\
             <button>授权 / Authorise</button></form>",
            hidden("app_id", app_id),
            hidden("scope", &scope),
            hidden("redirect_uri", redirect),
            hidden("state", q.state.as_deref().unwrap_or_default()),
        );
        return Html(page).into_response();
    };
    let now = shared.clock.now();
    let code = match shared.with(|c| c.authorize(app_id, buyer_id, &scope, now)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            return (StatusCode::BAD_REQUEST, Html(html_escape(&e.to_string()))).into_response();
        }
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(html_escape(&e.to_string())),
            )
                .into_response();
        }
    };
    let enc =
        |s: &str| jianlian_alipay::form::encode_component(s, Charset::Utf8).unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut url = format!(
        "{redirect}{sep}app_id={}&source=alipay_wallet&scope={}&auth_code={}",
        enc(app_id),
        enc(&scope),
        enc(&code)
    );
    if let Some(state) = q.state.as_deref() {
        url.push_str(&format!("&state={}", enc(state)));
    }
    Redirect::to(&url).into_response()
}
