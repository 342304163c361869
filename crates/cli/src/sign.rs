//! `jianlian sign`: signs request parameters read on stdin exactly as an
//! Alipay client does (protocol.md §3.1), and shows the sign content next to the
//! signature so an integrator can compare it with what their own code signs.

use std::collections::HashSet;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use jianlian_alipay::form::{self, SignScope};
use jianlian_alipay::{Charset, IncomingRequest, SignType};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::keys::load_private_key;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the parameters on stdin, either form-encoded (a=1&b=2, decoded once, '+' is a space)
or a JSON object of strings, and prints {\"sign_content\": \"...\", \"sign\": \"...\"}.
Exits 0 on success and 2 when the key or the input is unusable or stdout cannot be written.")]
pub struct Args {
    /// The app private key: PKCS#1 or PKCS#8, PEM, bare base64 or DER.
    #[arg(long, value_name = "FILE")]
    private_key: PathBuf,
    /// RSA2 (SHA256withRSA) or RSA (SHA1withRSA). Defaults to the `sign_type`
    /// parameter, else RSA2.
    #[arg(long, value_name = "RSA2|RSA")]
    sign_type: Option<SignType>,
}

/// Largest input read from stdin, in bytes (the gateway's own body limit).
const STDIN_MAX_BYTES: usize = jianlian_alipay::server::REQUEST_BODY_MAX_BYTES;

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match sign(&args) {
        Ok(line) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(line.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // The documented codes are 0 and 2: a lost result is not a
                // success, and main's generic exit 1 would be undocumented.
                eprintln!("error: cannot write to stdout: {e}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn sign(args: &Args) -> anyhow::Result<String> {
    let key = load_private_key(&args.private_key)?;
    let input = read_stdin(STDIN_MAX_BYTES)?;
    let (params, charset) = parse_params(&input)?;
    let sign_type_param = params
        .iter()
        .find(|(k, v)| k == "sign_type" && !form::is_blank(v))
        .map(|(_, v)| v.as_str());
    let from_params =
        match sign_type_param {
            None => None,
            Some(text) => Some(SignType::parse(text).ok_or_else(|| {
                anyhow!("the sign_type parameter {text:?} is neither RSA2 nor RSA")
            })?),
        };
    let sign_type = match (args.sign_type, from_params) {
        (Some(flag), Some(param)) if flag != param => bail!(
            "--sign-type {flag} contradicts the sign_type parameter {param}, which is itself \
             signed; Alipay verifies with the parameter's hash"
        ),
        (Some(flag), _) => flag,
        (None, Some(param)) => param,
        (None, None) => SignType::Rsa2,
    };
    let sign_content = form::sign_content(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignScope::Request,
        false,
    );
    if sign_content.is_empty() {
        bail!("stdin holds no parameter to sign (blank values and `sign` are left out)");
    }
    let bytes = charset
        .encode(&sign_content)
        .map_err(|e| anyhow!("the sign content cannot be signed in the request's charset: {e}"))?;
    let sign = key.sign(sign_type, &bytes).map_err(|e| anyhow!("{e}"))?;
    let output = serde_json::json!({ "sign_content": sign_content, "sign": sign });
    Ok(format!("{output}\n"))
}

/// Reads stdin whole, refusing more than `limit` bytes.
pub(crate) fn read_stdin(limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    std::io::stdin()
        .lock()
        .take(cap)
        .read_to_end(&mut input)
        .context("cannot read stdin")?;
    if input.len() > limit {
        bail!("stdin is larger than {limit} bytes");
    }
    Ok(input)
}

/// Removes the line break that `echo` or a text editor leaves at the end: a
/// form body never ends with a raw line break (it would be `%0A`).
pub(crate) fn trim_trailing_line_breaks(input: &[u8]) -> &[u8] {
    let end = input
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |i| i + 1);
    &input[..end]
}

/// Parses the parameters and the charset their sign content is signed in: a
/// JSON object of strings, or a form-encoded string decoded once in the charset
/// its `charset` parameter names (as the gateway decodes it).
fn parse_params(input: &[u8]) -> anyhow::Result<(Vec<(String, String)>, Charset)> {
    let trimmed = input.trim_ascii();
    if trimmed.is_empty() {
        bail!("stdin is empty; give the parameters as a=1&b=2 or as a JSON object of strings");
    }
    // No parameter name starts with `{` or `[`, so such input is JSON.
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        let pairs = parse_json_object(trimmed)?;
        let charset = match pairs.iter().find(|(k, _)| k == "charset") {
            None => Charset::Utf8,
            Some((_, text)) => Charset::parse(text)
                .ok_or_else(|| anyhow!("stdin: charset {text:?} is not utf-8 or gbk"))?,
        };
        Ok((pairs, charset))
    } else {
        let body = trim_trailing_line_breaks(input);
        let request = IncomingRequest::from_byte_pairs(form::decode_pairs(body))
            .map_err(|e| anyhow!("stdin: {}", e.sub_msg))?;
        Ok((request.params().to_vec(), request.charset()))
    }
}

/// A JSON object's members in order, duplicates kept so they can be refused.
struct OrderedMembers(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = OrderedMembers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(OrderedMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn parse_json_object(text: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
    let OrderedMembers(members) =
        serde_json::from_slice(text).map_err(|e| anyhow!("stdin is not a JSON object: {e}"))?;
    let mut seen = HashSet::new();
    let mut pairs = Vec::with_capacity(members.len());
    for (key, value) in members {
        if !seen.insert(key.clone()) {
            bail!("stdin: parameter {key} is given more than once");
        }
        match value {
            Value::String(text) => pairs.push((key, text)),
            other => bail!(
                "stdin: parameter {key} is {}, but every value must be a string \
                 (write biz_content as the exact JSON text that is sent, in a string)",
                json_kind(&other)
            ),
        }
    }
    Ok(pairs)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
