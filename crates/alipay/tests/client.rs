//! Proves that `client::AlipayClient` turns every kind of exchange with a
//! gateway into the right `Outcome`, against local servers on 127.0.0.1:
//! success, 10003, 40004, 20000, unsigned and badly signed bodies, HTTP 500,
//! connection refused, a server that never answers and a connection closed
//! mid-response. The gateway here authenticates every request with our own
//! `IncomingRequest` (a round trip) and records it, so the tests also prove
//! that the client sends no blank value, the common parameters in the query
//! string and `biz_content` in the form body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jianlian_alipay::api::trade::{TradeOrder, TradePay};
use jianlian_alipay::client::{AlipayClient, ClientConfig};
use jianlian_alipay::form::{self, Charset};
use jianlian_alipay::request::{AppCredentials, CallOptions};
use jianlian_alipay::response::ResponseError;
use jianlian_alipay::server::{
    ErrorReply, IncomingRequest, RawRequest, ResponseSigning, success_node, write_response,
};
use jianlian_alipay::{
    Action, Code, Fen, ManualClock, Outcome, PrivateKey, SignType, UnknownReason,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const APP_ID: &str = "2021000000000001";
const NOW_BEIJING: &str = "2025-01-06 09:15:02";

/// What the test gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Success,
    InProgress,
    BusinessFailed,
    Unavailable,
    Unsigned,
    BadSignature,
    Http500,
    /// A success whose body is sent as GBK bytes, labelled so in `Content-Type`.
    GbkLabelledBody,
}

/// One request as the gateway saw it.
#[derive(Debug, Clone)]
struct Received {
    query: String,
    body: String,
    content_type: Option<String>,
    /// Every parameter after decoding, or why our server refused the request.
    authenticated: Result<BTreeMap<String, String>, String>,
}

#[derive(Clone)]
struct GatewayState {
    mode: Mode,
    received: Arc<Mutex<Vec<Received>>>,
    alipay_key: PrivateKey,
}

struct Gateway {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Gateway {
    async fn start(mode: Mode) -> Gateway {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = GatewayState {
            mode,
            received: received.clone(),
            alipay_key: common::private_key("keys/alipay_private_pkcs8.pem"),
        };
        let app = Router::new()
            .route("/gateway.do", post(gateway_do))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Gateway { addr, received }
    }

    fn only_request(&self) -> Received {
        let received = self.received.lock().unwrap();
        assert_eq!(received.len(), 1, "expected exactly one request");
        received[0].clone()
    }
}

async fn gateway_do(
    State(state): State<GatewayState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = format!("/gateway.do?{query}");
    let raw = RawRequest {
        http_method: "POST",
        target: &target,
        content_type: content_type.as_deref(),
        body: &body,
    };
    let app_public = common::public_key("keys/app_public.pem");
    let authenticated = IncomingRequest::parse(raw)
        .and_then(|request| {
            request.authenticate(|app_id| (app_id == APP_ID).then(|| app_public.clone()))?;
            Ok(request.params().iter().cloned().collect())
        })
        .map_err(|e: ErrorReply| e.to_string());
    state.received.lock().unwrap().push(Received {
        query,
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type,
        authenticated,
    });
    answer(&state)
}

fn answer(state: &GatewayState) -> Response {
    let signing = ResponseSigning {
        key: &state.alipay_key,
        sign_type: SignType::Rsa2,
        cert_sn: None,
        aes: None,
    };
    let paid = json!({
        "trade_no": "2025010622001446881000012345",
        "out_trade_no": "T20250106000001",
        "total_amount": "88.88",
        "receipt_amount": "88.88",
        "buyer_logon_id": "159****5620",
    });
    let key = "alipay_trade_pay_response";
    let body = match state.mode {
        Mode::Success => write_response(
            key,
            &success_node(Code::Success, &paid).unwrap(),
            Some(signing),
        ),
        Mode::InProgress => write_response(
            key,
            &success_node(Code::InProgress, &paid).unwrap(),
            Some(signing),
        ),
        Mode::BusinessFailed => {
            let node = ErrorReply::business("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付授权码无效")
                .with_field("out_trade_no", "T20250106000001")
                .to_node_json();
            write_response(key, &node, Some(signing))
        }
        Mode::Unavailable => {
            write_response(key, &ErrorReply::unknown().to_node_json(), Some(signing))
        }
        Mode::Unsigned => {
            let node = ErrorReply::new(
                Code::InvalidArguments,
                "isv.invalid-app-id",
                "无效的AppID参数",
            )
            .to_node_json();
            write_response(key, &node, None)
        }
        Mode::BadSignature => {
            let impostor = common::private_key("keys/app_private_pkcs8.pem");
            let node = success_node(Code::Success, &paid).unwrap();
            write_response(
                key,
                &node,
                Some(ResponseSigning {
                    key: &impostor,
                    ..signing
                }),
            )
        }
        Mode::Http500 => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
        Mode::GbkLabelledBody => {
            let node = success_node(
                Code::Success,
                &json!({"out_trade_no": "T1", "store_name": "测试门店"}),
            )
            .unwrap();
            let text = write_response(key, &node, Some(signing));
            let bytes = Charset::Gbk.encode(&text).unwrap().into_owned();
            return ([(header::CONTENT_TYPE, "text/html;charset=GBK")], bytes).into_response();
        }
    };
    ([(header::CONTENT_TYPE, "text/html;charset=utf-8")], body).into_response()
}

fn client(addr: SocketAddr, read_timeout: Duration) -> AlipayClient {
    let config = ClientConfig {
        gateway_url: format!("http://{addr}/gateway.do"),
        app: AppCredentials::new(APP_ID, common::private_key("keys/app_private_pkcs8.b64")),
        alipay_public_key: common::public_key("keys/alipay_public.b64"),
        alipay_cert_sn: None,
        connect_timeout: Duration::from_secs(2),
        read_timeout,
    };
    let clock = ManualClock::at_beijing(NOW_BEIJING).unwrap();
    AlipayClient::new(config, Arc::new(clock)).unwrap()
}

fn pay() -> TradePay {
    TradePay {
        scene: Some("bar_code".into()),
        auth_code: Some("28763443825664394".into()),
        order: TradeOrder {
            out_trade_no: "T20250106000001".into(),
            total_amount: Fen::new(8888),
            subject: "测试商品 A&B=C/ok".into(),
            ..TradeOrder::default()
        },
        ..TradePay::default()
    }
}

/// Options with blank values, which must never reach the wire.
fn options() -> CallOptions {
    CallOptions {
        notify_url: Some("https://merchant.example.com/alipay/notify".into()),
        return_url: Some(String::new()),
        app_auth_token: Some("  \t".into()),
        auth_token: None,
    }
}

async fn pay_against(
    mode: Mode,
) -> (
    Outcome<jianlian_alipay::api::trade::TradePayResponse>,
    Gateway,
) {
    let gateway = Gateway::start(mode).await;
    let outcome = client(gateway.addr, Duration::from_secs(5))
        .execute(&pay(), &options())
        .await
        .unwrap();
    (outcome, gateway)
}

fn keys_of(encoded: &str) -> Vec<String> {
    form::decode_pairs(encoded.as_bytes())
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).unwrap())
        .collect()
}

#[tokio::test]
async fn success_and_the_request_on_the_wire() {
    let (outcome, gateway) = pay_against(Mode::Success).await;
    let Outcome::Success(reply) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        reply.body.trade_no.as_deref(),
        Some("2025010622001446881000012345")
    );
    assert_eq!(reply.body.total_amount, Some(Fen::new(8888)));

    let request = gateway.only_request();
    let params = request.authenticated.clone().unwrap();
    assert_eq!(params["app_id"], APP_ID);
    assert_eq!(params["method"], "alipay.trade.pay");
    assert_eq!(
        params["timestamp"], NOW_BEIJING,
        "the timestamp comes from the injected clock"
    );
    let biz: serde_json::Value = serde_json::from_str(&params["biz_content"]).unwrap();
    assert_eq!(biz["total_amount"], "88.88");
    assert_eq!(biz["subject"], "测试商品 A&B=C/ok");
    // Blank options are neither sent nor signed.
    assert!(params.values().all(|v| !form::is_blank(v)), "{params:?}");
    assert!(!params.contains_key("return_url") && !params.contains_key("app_auth_token"));

    let mut query_keys = keys_of(&request.query);
    query_keys.sort();
    assert_eq!(
        query_keys,
        [
            "app_id",
            "charset",
            "format",
            "method",
            "notify_url",
            "sign",
            "sign_type",
            "timestamp",
            "version"
        ]
    );
    assert_eq!(keys_of(&request.body), ["biz_content"]);
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded;charset=utf-8")
    );
}

#[tokio::test]
async fn code_10003_is_in_progress() {
    let (outcome, gateway) = pay_against(Mode::InProgress).await;
    let Outcome::InProgress(reply) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reply.body.out_trade_no.as_deref(), Some("T20250106000001"));
    assert!(gateway.only_request().authenticated.is_ok());
}

#[tokio::test]
async fn code_40004_is_a_failure_with_its_action() {
    let (outcome, gateway) = pay_against(Mode::BusinessFailed).await;
    let Outcome::Failed(failure) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(failure.code, Code::BusinessFailed);
    assert_eq!(
        failure.sub_code.as_deref(),
        Some("ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    assert_eq!(failure.sub_msg.as_deref(), Some("支付授权码无效"));
    assert_eq!(failure.action, Action::NewCode);
    assert!(gateway.only_request().authenticated.is_ok());
}

#[tokio::test]
async fn code_20000_is_unknown() {
    let (outcome, gateway) = pay_against(Mode::Unavailable).await;
    let Outcome::Unknown(UnknownReason::Gateway { code, sub_code, .. }) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(code, Code::ServiceUnavailable);
    assert_eq!(sub_code.as_deref(), Some("isp.unknow-error"));
    assert!(gateway.only_request().authenticated.is_ok());
}

#[tokio::test]
async fn an_unsigned_body_is_unknown() {
    let (outcome, _) = pay_against(Mode::Unsigned).await;
    assert!(
        matches!(
            outcome,
            Outcome::Unknown(UnknownReason::Response(ResponseError::Unsigned { .. }))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_bad_signature_is_unknown() {
    let (outcome, _) = pay_against(Mode::BadSignature).await;
    assert!(
        matches!(
            outcome,
            Outcome::Unknown(UnknownReason::Response(ResponseError::BadSignature))
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn http_500_is_unknown() {
    let (outcome, gateway) = pay_against(Mode::Http500).await;
    assert_eq!(outcome, Outcome::Unknown(UnknownReason::HttpStatus(500)));
    assert!(gateway.only_request().authenticated.is_ok());
}

#[tokio::test]
async fn the_body_is_read_in_the_charset_its_content_type_names() {
    // As the Java SDK reads it; the signature still covers the node's text.
    let (outcome, _) = pay_against(Mode::GbkLabelledBody).await;
    let Outcome::Success(reply) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reply.body.store_name.as_deref(), Some("测试门店"));
}

#[tokio::test]
async fn connection_refused_is_unknown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let outcome = client(addr, Duration::from_secs(5))
        .execute(&pay(), &options())
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Unknown(UnknownReason::Transport(_))),
        "{outcome:?}"
    );
}

/// Reads one HTTP request (head and `Content-Length` body), at most 64 KiB.
async fn read_request(stream: &mut TcpStream) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while buffer.len() < 64 * 1024 {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= head_end + 4 + length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Hold every connection open without answering, until the test ends.
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            held.push(stream);
        }
    });
    let outcome = client(addr, Duration::from_millis(200))
        .execute(&pay(), &options())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Unknown(UnknownReason::Timeout));
}

#[tokio::test]
async fn a_connection_closed_mid_response_is_unknown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await;
        let partial = "HTTP/1.1 200 OK\r\nContent-Type: text/html;charset=utf-8\r\nContent-Length: 500\r\n\r\n{\"alipay_trade_pay_response\":{\"code\":\"10000\",";
        stream.write_all(partial.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let outcome = client(addr, Duration::from_secs(5))
        .execute(&pay(), &options())
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Unknown(UnknownReason::Transport(_))),
        "{outcome:?}"
    );
}
