//! An HTTP client for Alipay's gateway (reqwest over rustls) with explicit
//! connect and read timeouts. One `execute` path serves every typed API.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{AlipayApi, ApiParams};
use crate::form::Charset;
use crate::keys::PublicKey;
use crate::request::{AppCredentials, BuildError, CallOptions, SignedRequest, build_raw};
use crate::response::{
    Outcome, ResponseCheck, ResponseError, UnknownReason, VerifiedNode, classify, classify_for,
    verify_response,
};
use crate::time::Clock;

/// Where and how to reach Alipay.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://openapi.alipay.com/gateway.do`, or the sandbox's.
    pub gateway_url: String,
    pub app: AppCredentials,
    pub alipay_public_key: PublicKey,
    /// Certificate mode: the SN of Alipay's public-key certificate.
    pub alipay_cert_sn: Option<String>,
    pub connect_timeout: Duration,
    /// Limit for each wait for the server to send; the whole exchange is also
    /// bounded by `connect_timeout + read_timeout`.
    pub read_timeout: Duration,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("HTTP client: {0}")]
pub struct ClientBuildError(String);

/// A client bound to one app. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AlipayClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    clock: Arc<dyn Clock>,
}

/// What one exchange produced before classification.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: SignedRequest,
    /// The response body, when one arrived.
    pub body: Option<String>,
}

impl AlipayClient {
    pub fn new(
        config: ClientConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<AlipayClient, ClientBuildError> {
        // `read_timeout` bounds each wait for the server; the total bounds a
        // server that trickles bytes forever.
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.connect_timeout + config.read_timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(AlipayClient {
            http,
            config: Arc::new(config),
            clock,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Calls a typed API. `Err` means nothing was sent (the request could not
    /// be built); every outcome of sending is an [`Outcome`].
    pub async fn execute<A: AlipayApi>(
        &self,
        api: &A,
        options: &CallOptions,
    ) -> Result<Outcome<A::Response>, BuildError> {
        let (outcome, _) = self.execute_logged(api, options).await?;
        Ok(outcome)
    }

    /// As [`execute`](Self::execute), also returning the exchange for audit.
    pub async fn execute_logged<A: AlipayApi>(
        &self,
        api: &A,
        options: &CallOptions,
    ) -> Result<(Outcome<A::Response>, Exchange), BuildError> {
        let request = build_raw(
            &self.config.app,
            A::METHOD,
            api.params()?,
            options,
            self.clock.now(),
        )?;
        let (outcome, body) = self.send(&request, classify_for::<A>).await;
        Ok((outcome, Exchange { request, body }))
    }

    /// Calls a method known only at run time. Its answer must carry `code`
    /// (see [`classify`]).
    pub async fn execute_raw<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: ApiParams,
        options: &CallOptions,
    ) -> Result<Outcome<T>, BuildError> {
        let request = build_raw(&self.config.app, method, params, options, self.clock.now())?;
        Ok(self.send(&request, classify::<T>).await.0)
    }

    /// Sends a signed request and verifies the answer, which `classify_answer`
    /// (the caller's: only it knows whether its API may answer without `code`)
    /// turns into an outcome.
    async fn send<T>(
        &self,
        request: &SignedRequest,
        classify_answer: fn(Result<VerifiedNode, ResponseError>) -> Outcome<T>,
    ) -> (Outcome<T>, Option<String>) {
        let (query, body) = match (request.query_string(), request.body()) {
            (Ok(q), Ok(b)) => (q, b),
            (Err(e), _) | (_, Err(e)) => {
                return (
                    Outcome::Unknown(UnknownReason::Transport(e.to_string())),
                    None,
                );
            }
        };
        let separator = if self.config.gateway_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{separator}{query}", self.config.gateway_url);
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, request.content_type())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return (Outcome::Unknown(transport_reason(&e)), None),
        };
        if response.status() != reqwest::StatusCode::OK {
            return (
                Outcome::Unknown(UnknownReason::HttpStatus(response.status().as_u16())),
                None,
            );
        }
        let body_charset = response_charset(&response).unwrap_or(self.config.app.charset);
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return (Outcome::Unknown(transport_reason(&e)), None),
        };
        let Some(text) = body_charset.decode(&bytes) else {
            return (
                Outcome::Unknown(UnknownReason::BadBody(format!(
                    "the response is not valid {}",
                    body_charset.as_str()
                ))),
                None,
            );
        };
        let check = ResponseCheck {
            alipay_public_key: &self.config.alipay_public_key,
            sign_type: self.config.app.sign_type,
            charset: self.config.app.charset,
            aes: self.config.app.aes_key.as_ref(),
            alipay_cert_sn: self.config.alipay_cert_sn.as_deref(),
        };
        let outcome = classify_answer(verify_response(&text, &request.method, check));
        (outcome, Some(text))
    }
}

/// The charset named by the response's `Content-Type`, as the Java SDK reads
/// the body (falling back to the request's charset when none is named).
fn response_charset(response: &reqwest::Response) -> Option<Charset> {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    content_type.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("charset") {
            Charset::parse(value.trim().trim_matches('"'))
        } else {
            None
        }
    })
}

fn transport_reason(e: &reqwest::Error) -> UnknownReason {
    if e.is_timeout() {
        UnknownReason::Timeout
    } else {
        // Include the source chain: "error sending request" alone says nothing.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        UnknownReason::Transport(text)
    }
}
