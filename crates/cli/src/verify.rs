//! `jianlian verify`: checks a captured request, response or notification the
//! way the receiving side does, and prints the exact text the signature must
//! cover, so an integrator whose signature fails can compare strings.
//!
//! Exit codes: 0 the signature is valid (a one-line `note:` on stderr says what
//! the receiver would still refuse, if anything), 1 the signature is missing or
//! does not verify (reason on stderr, one line), 2 the input or the key cannot
//! be used at all, or the result cannot be written.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use jianlian_alipay::form::{self, SignScope};
use jianlian_alipay::notify::{NOTIFY_BODY_MAX_BYTES, Notification, NotifyError};
use jianlian_alipay::response::{ResponseCheck, ResponseError, extract_node, verify_response};
use jianlian_alipay::server::{REQUEST_BODY_MAX_BYTES, RawRequest};
use jianlian_alipay::{Charset, IncomingRequest, PublicKey, SignType};

use crate::keys::load_public_key;
use crate::sign::{read_stdin, trim_trailing_line_breaks};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the HTTP body on stdin and prints the sign content it rebuilt (for responses, the node
text that was verified). Exits 0 when the signature is valid (a one-line note on stderr says
what the receiver would still refuse, e.g. a request without version), 1 when it is missing
or not valid (one-line reason on stderr), 2 when the input or the key cannot be used.")]
pub struct Args {
    #[command(subcommand)]
    what: Target,
}

#[derive(Debug, clap::Subcommand)]
enum Target {
    /// A gateway.do request: its form body on stdin (empty for GET), its query
    /// string in --query. Checked as Alipay's gateway checks it.
    Request {
        /// The caller's (app's) public key: SPKI or PKCS#1, PEM, bare base64 or DER, or an X.509 certificate.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The request's query string (`app_id=…&sign=…`), or its whole target
        /// (`/gateway.do?…` or `https://host/gateway.do?…`).
        #[arg(long, value_name = "STRING")]
        query: Option<String>,
    },
    /// A response body as the client received it, for API --method.
    Response {
        /// Alipay's public key, or Alipay's public-key certificate.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// The API called, e.g. alipay.trade.pay (its node is alipay_trade_pay_response).
        #[arg(long, value_name = "NAME")]
        method: String,
        /// The sign type the client is configured with.
        #[arg(long, value_name = "RSA2|RSA", default_value = "RSA2")]
        sign_type: SignType,
    },
    /// An asynchronous notification: its form body on stdin.
    Notify {
        /// Alipay's public key, or Alipay's public-key certificate.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// Refuse a notification whose sign_type is not this one (default: use
        /// the notification's own sign_type).
        #[arg(long, value_name = "RSA2|RSA")]
        sign_type: Option<SignType>,
    },
}

/// What a check proved.
#[derive(Debug)]
enum Verdict {
    Valid {
        /// The rebuilt sign content (or verified node text).
        content: String,
        /// A remark worth knowing even though the signature is valid.
        note: Option<String>,
    },
    Invalid {
        /// What was rebuilt, when the input got that far.
        content: Option<String>,
        reason: String,
    },
}

/// Largest response body read (Alipay's face-to-face responses are a few KiB).
const RESPONSE_BODY_MAX_BYTES: usize = 1024 * 1024;

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let verdict = match check(args.what) {
        Ok(verdict) => verdict,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let content = match &verdict {
        Verdict::Valid { content, .. } => Some(content),
        Verdict::Invalid { content, .. } => content.as_ref(),
    };
    if let Some(content) = content
        && let Err(e) = print_line(content)
    {
        // Exit 1 would claim a bad signature; the output is what failed.
        eprintln!("error: cannot write to stdout: {e}");
        return Ok(ExitCode::from(2));
    }
    match verdict {
        Verdict::Valid { note, .. } => {
            if let Some(note) = note {
                eprintln!("note: {}", one_line(&note));
            }
            eprintln!("ok: the signature is valid");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Invalid { reason, .. } => {
            eprintln!("invalid: {}", one_line(&reason));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Writes one line to stdout and flushes it, so a full disk or a closed pipe
/// is reported here rather than lost at exit.
fn print_line(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

/// Keeps a reason on one line whatever the data inside it holds.
fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

fn check(target: Target) -> anyhow::Result<Verdict> {
    match target {
        Target::Request { public_key, query } => {
            let key = load_public_key(&public_key)?;
            let body = read_stdin(REQUEST_BODY_MAX_BYTES)?;
            Ok(check_request(&key, query.as_deref(), &body))
        }
        Target::Response {
            public_key,
            method,
            sign_type,
        } => {
            let key = load_public_key(&public_key)?;
            let body = read_stdin(RESPONSE_BODY_MAX_BYTES)?;
            let body = String::from_utf8(body).map_err(|_| anyhow!("stdin is not UTF-8 text"))?;
            check_response(&key, &method, sign_type, &body)
        }
        Target::Notify {
            public_key,
            sign_type,
        } => {
            let key = load_public_key(&public_key)?;
            let body = read_stdin(NOTIFY_BODY_MAX_BYTES)?;
            check_notify(&key, sign_type, trim_trailing_line_breaks(&body))
        }
    }
}

/// The request target for `--query`: a bare query string (a leading `?` is
/// allowed) or a whole origin- or absolute-form target, passed through.
fn request_target(query: Option<&str>) -> String {
    let query = query.map(str::trim).unwrap_or_default();
    if query.starts_with('/') || query.starts_with("http://") || query.starts_with("https://") {
        query.to_owned()
    } else {
        format!("/gateway.do?{}", query.strip_prefix('?').unwrap_or(query))
    }
}

fn check_request(key: &PublicKey, query: Option<&str>, body: &[u8]) -> Verdict {
    let target = request_target(query);
    let body = trim_trailing_line_breaks(body);
    let raw = RawRequest {
        http_method: if body.is_empty() { "GET" } else { "POST" },
        target: &target,
        content_type: None,
        body,
    };
    let request = match IncomingRequest::parse(raw) {
        Ok(request) => request,
        Err(reply) => {
            return Verdict::Invalid {
                content: None,
                reason: format!(
                    "the gateway refuses the request: {} {}: {}",
                    reply.code.as_str(),
                    reply.sub_code,
                    reply.sub_msg
                ),
            };
        }
    };
    let dropped = request.sign_content(false);
    match request.authenticate(|_| Some(key.clone())) {
        Ok(authenticated) => valid_request(&request, key, authenticated.sign_type, dropped, None),
        // The gateway checks the signature before `method`, `timestamp`,
        // `version`…: when it verifies, the signature is right and the refusal
        // is about something else, which the note names.
        Err(reply) if signature_verifies(&request, key) => {
            let refusal = format!(
                "the gateway would still refuse the request: {} {}: {}",
                reply.code.as_str(),
                reply.sub_code,
                reply.sub_msg
            );
            let sign_type = request.reply_sign_type();
            valid_request(&request, key, sign_type, dropped, Some(refusal))
        }
        Err(reply) => {
            let sign_problem = match (
                request.get("sign"),
                request.get("sign_type").and_then(SignType::parse),
            ) {
                (None, _) => "the request is not signed (no sign)".to_owned(),
                (Some(_), None) => {
                    "its sign_type is missing or neither RSA2 nor RSA, so the signature cannot \
                     be checked"
                        .to_owned()
                }
                (Some(sign), Some(sign_type)) => {
                    let mut problem = format!(
                        "the signature ({sign_type}) does not match the sign content above with \
                         this public key"
                    );
                    if sign.contains(' ') {
                        problem.push_str(
                            "; the sign contains spaces: its '+' were not percent-encoded (%2B)",
                        );
                    }
                    problem
                }
            };
            let reason = if reply.sub_code == "isv.invalid-signature" {
                format!("{} {}: {sign_problem}", reply.code.as_str(), reply.sub_code)
            } else {
                format!(
                    "{sign_problem}; the gateway refuses the request: {} {}: {}",
                    reply.code.as_str(),
                    reply.sub_code,
                    reply.sub_msg
                )
            };
            Verdict::Invalid {
                content: Some(dropped),
                reason,
            }
        }
    }
}

/// A request whose signature verifies: the content it covers, with notes on
/// what it covers beyond Alipay's rule and on what the gateway still refuses.
fn valid_request(
    request: &IncomingRequest,
    key: &PublicKey,
    sign_type: SignType,
    dropped: String,
    refusal: Option<String>,
) -> Verdict {
    // The gateway also accepts a signature over the content with empty values
    // kept (the official Node SDK signs them), and over its UTF-8 bytes
    // whatever the charset; show what the signature covers.
    let kept = request.sign_content(true);
    let (content, notes) = match (
        covering_charset(request, key, sign_type, &dropped),
        covering_charset(request, key, sign_type, &kept),
    ) {
        (Some(charset), _) => (dropped, vec![charset_note(request, charset)]),
        (None, Some(charset)) => (
            kept,
            vec![
                Some(
                    "the signature covers empty values, which Alipay's rule drops; send no \
                     empty parameters"
                        .to_owned(),
                ),
                charset_note(request, charset),
            ],
        ),
        (None, None) => (dropped, Vec::new()),
    };
    let notes: Vec<String> = notes.into_iter().flatten().chain(refusal).collect();
    Verdict::Valid {
        content,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// Whether the request's `sign` verifies under its own `sign_type` over the
/// content the gateway accepts (blank values dropped or kept, the request's
/// charset or UTF-8), whatever else is wrong with it.
fn signature_verifies(request: &IncomingRequest, key: &PublicKey) -> bool {
    let Some(sign_type) = request.get("sign_type").and_then(SignType::parse) else {
        return false;
    };
    [request.sign_content(false), request.sign_content(true)]
        .iter()
        .any(|content| covering_charset(request, key, sign_type, content).is_some())
}

/// The charset whose bytes of `content` the request's signature covers: the
/// request's own, else UTF-8 (what the Node SDK signs whatever `charset` says).
fn covering_charset(
    request: &IncomingRequest,
    key: &PublicKey,
    sign_type: SignType,
    content: &str,
) -> Option<Charset> {
    let sign = request.get("sign")?;
    [request.charset(), Charset::Utf8]
        .into_iter()
        .find(|charset| {
            charset
                .encode(content)
                .is_ok_and(|bytes| key.verify(sign_type, &bytes, sign).is_ok())
        })
}

fn charset_note(request: &IncomingRequest, covering: Charset) -> Option<String> {
    (covering != request.charset()).then(|| {
        format!(
            "the signature covers the UTF-8 bytes although charset is {}",
            request.charset().as_str()
        )
    })
}

fn check_response(
    key: &PublicKey,
    method: &str,
    sign_type: SignType,
    body: &str,
) -> anyhow::Result<Verdict> {
    let node = match extract_node(body, method) {
        Ok(node) => node,
        Err(ResponseError::DuplicateMember(member)) => {
            return Ok(Verdict::Invalid {
                content: None,
                reason: format!(
                    "the body repeats the member {member:?}, so nobody can tell which one was signed"
                ),
            });
        }
        Err(e) => return Err(anyhow!("stdin: {e}")),
    };
    let content = node.text.to_owned();
    let verdict = match verify_response(body, method, ResponseCheck::new(key, sign_type)) {
        Ok(_)
            if !content.contains("\\/") || exact_text_verifies(key, sign_type, body, &content) =>
        {
            Verdict::Valid {
                content,
                note: None,
            }
        }
        Ok(_) => Verdict::Valid {
            content: content.replace("\\/", "/"),
            note: Some(
                "the signature covers the node with \\/ written as /, which only the Java SDK \
                 (and jianlian) accept"
                    .to_owned(),
            ),
        },
        // Decryption comes after the signature check, so the signature is valid.
        Err(ResponseError::Decrypt(_)) => Verdict::Valid {
            content,
            note: Some("the node is AES-encrypted; it was verified, not decrypted".to_owned()),
        },
        Err(ResponseError::BadSignature) => Verdict::Invalid {
            content: Some(content),
            reason: format!(
                "the sign does not match the node text above ({sign_type}) with this public key"
            ),
        },
        Err(e) => Verdict::Invalid {
            content: Some(content),
            reason: e.to_string(),
        },
    };
    Ok(verdict)
}

/// Whether the root `sign` verifies over the node text exactly as sent (the
/// crate also accepts it over the text with `\/` unescaped).
fn exact_text_verifies(key: &PublicKey, sign_type: SignType, body: &str, node_text: &str) -> bool {
    let body = body.trim_start_matches('\u{feff}');
    let sign = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|root| root.get("sign").and_then(|s| s.as_str()).map(str::to_owned));
    sign.is_some_and(|sign| key.verify(sign_type, node_text.as_bytes(), &sign).is_ok())
}

/// The sign content as the bytes the notification's charset makes of it.
fn notification_bytes(notification: &Notification, content: &str) -> Vec<u8> {
    let charset = notification
        .get("charset")
        .and_then(Charset::parse)
        .unwrap_or_default();
    charset
        .encode(content)
        .map(|bytes| bytes.into_owned())
        .unwrap_or_default()
}

fn check_notify(
    key: &PublicKey,
    expected: Option<SignType>,
    body: &[u8],
) -> anyhow::Result<Verdict> {
    let notification = match Notification::parse(body) {
        Ok(n) => n,
        Err(NotifyError::RepeatedField(field)) => {
            return Ok(Verdict::Invalid {
                content: None,
                reason: format!(
                    "field {field} is repeated, so nobody can tell which value was signed"
                ),
            });
        }
        Err(e) => return Err(anyhow!("stdin: {e}")),
    };
    let content = notification.sign_content();
    let verdict = match notification.verify(key, expected) {
        Ok(sign_type) => {
            // Like the official SDKs, the crate also accepts a signature over
            // the content with blank fields kept; show the content it covers.
            let dropped_verifies = notification.get("sign").is_some_and(|sign| {
                key.verify(
                    sign_type,
                    &notification_bytes(&notification, &content),
                    sign,
                )
                .is_ok()
            });
            if dropped_verifies {
                Verdict::Valid {
                    content,
                    note: None,
                }
            } else {
                Verdict::Valid {
                    content: form::sign_content(
                        notification
                            .fields()
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str())),
                        SignScope::Notification,
                        true,
                    ),
                    note: Some(
                        "the signature covers empty fields, which Alipay's rule drops".to_owned(),
                    ),
                }
            }
        }
        Err(NotifyError::BadSignature(_)) => Verdict::Invalid {
            reason: format!(
                "the sign does not match the sign content above ({}) with this public key",
                notification.get("sign_type").unwrap_or("?")
            ),
            content: Some(content),
        },
        Err(e) => Verdict::Invalid {
            content: Some(content),
            reason: e.to_string(),
        },
    };
    Ok(verdict)
}
