//! `application/x-www-form-urlencoded` in the request's charset, and the sign
//! content rule shared by requests and notifications.
//!
//! Alipay percent-encodes in the charset named by the `charset` parameter
//! (UTF-8 in practice, GBK in old integrations) and signs the bytes of the sign
//! content in that same charset.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A charset Alipay accepts in the `charset` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Charset {
    #[default]
    Utf8,
    /// `gbk` or `gb2312` (GBK is a superset of GB2312).
    Gbk,
}

/// A string that cannot be written in the charset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("text cannot be encoded in {charset}: {text:?}")]
pub struct EncodeError {
    pub charset: &'static str,
    pub text: String,
}

impl Charset {
    /// Parses the `charset` parameter, case-insensitively.
    pub fn parse(text: &str) -> Option<Charset> {
        match text.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Charset::Utf8),
            "gbk" | "gb2312" => Some(Charset::Gbk),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Gbk => "GBK",
        }
    }

    /// Encodes text, refusing characters the charset lacks (encoding_rs would
    /// otherwise silently write `&#NNNN;`).
    pub fn encode(self, text: &str) -> Result<Cow<'_, [u8]>, EncodeError> {
        match self {
            Charset::Utf8 => Ok(Cow::Borrowed(text.as_bytes())),
            Charset::Gbk => {
                let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
                if unmappable {
                    Err(EncodeError {
                        charset: "GBK",
                        text: text.to_owned(),
                    })
                } else {
                    Ok(bytes)
                }
            }
        }
    }

    /// Decodes bytes, refusing malformed sequences.
    pub fn decode(self, bytes: &[u8]) -> Option<String> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
            Charset::Gbk => encoding_rs::GBK
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(Cow::into_owned),
        }
    }
}

/// Splits a form-encoded string into percent-decoded byte pairs, in order.
/// `+` is a space; a malformed `%` escape is kept literally (as browsers do).
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is a key with
/// an empty value.
pub fn decode_pairs(input: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    input
        .split(|b| *b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = match segment.iter().position(|b| *b == b'=') {
                Some(i) => (&segment[..i], &segment[i + 1..]),
                None => (segment, &segment[..0]),
            };
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                match (hex_value(input[i + 1]), hex_value(input[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes one value in `charset`, space as `+`, leaving only
/// `A–Z a–z 0–9 - . _ *` unescaped (what Java's `URLEncoder` and Python's
/// `quote_plus` agree on).
pub fn encode_component(text: &str, charset: Charset) -> Result<String, EncodeError> {
    let bytes = charset.encode(text)?;
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for &b in bytes.iter() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    Ok(out)
}

/// Joins pairs as a form-encoded string in the given order.
pub fn encode_pairs<'a, I>(pairs: I, charset: Charset) -> Result<String, EncodeError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode_component(key, charset)?);
        out.push('=');
        out.push_str(&encode_component(value, charset)?);
    }
    Ok(out)
}

/// Java's `Character.isWhitespace`, which Alipay's "empty value" rule uses:
/// Unicode space, line and paragraph separators except the no-break spaces
/// (U+00A0, U+2007, U+202F), plus the ASCII controls U+0009–U+000D and
/// U+001C–U+001F. Unlike Rust's `char::is_whitespace`, U+0085 and U+00A0 are
/// not whitespace here.
pub fn is_java_whitespace(c: char) -> bool {
    matches!(c,
        '\u{09}'..='\u{0D}'
        | '\u{1C}'..='\u{1F}'
        | ' '
        | '\u{1680}'
        | '\u{2000}'..='\u{2006}'
        | '\u{2008}'..='\u{200A}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{205F}'
        | '\u{3000}')
}

/// Alipay's notion of an empty value: empty, or whitespace only (Java rule).
pub fn is_blank(value: &str) -> bool {
    value.chars().all(is_java_whitespace)
}

/// Which parameters the sign content leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignScope {
    /// Requests: everything but `sign` (`sign_type` is signed).
    Request,
    /// Notifications and return URLs: everything but `sign` and `sign_type`.
    Notification,
}

/// Builds the sign content: the parameters of `scope`, keys sorted bytewise,
/// `key=value` joined by `&`, raw values. Parameters with a blank key are always
/// dropped (the Java SDK's `areNotEmpty(key, value)`); blank values are dropped
/// unless `keep_blank` (the official Node SDK signs `key=` for empty values).
pub fn sign_content<'a, I>(params: I, scope: SignScope, keep_blank: bool) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut kept: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(key, value)| {
            let excluded = match scope {
                SignScope::Request => *key == "sign",
                SignScope::Notification => *key == "sign" || *key == "sign_type",
            };
            !excluded && !is_blank(key) && (keep_blank || !is_blank(value))
        })
        .collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(kept.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (key, value) in kept {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let pairs = decode_pairs(b"a=1+2&b=%E6%B5%8B%20x&c&d=%zz&&e=100%");
        let text: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            text,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "测 x".into()),
                ("c".into(), String::new()),
                ("d".into(), "%zz".into()),
                ("e".into(), "100%".into()),
            ]
        );
    }

    #[test]
    fn encodes_like_url_encoder() {
        assert_eq!(
            encode_component("测试 A&B=C/ok", Charset::Utf8).unwrap(),
            "%E6%B5%8B%E8%AF%95+A%26B%3DC%2Fok"
        );
        assert_eq!(
            encode_component("测试", Charset::Gbk).unwrap(),
            "%B2%E2%CA%D4"
        );
        assert!(encode_component("😀", Charset::Gbk).is_err());
    }

    #[test]
    fn sign_content_sorts_and_drops_blank() {
        let params = [
            ("b", "2"),
            ("sign", "x"),
            ("a", "1"),
            ("c", " \t"),
            ("sign_type", "RSA2"),
            ("A", "0"),
        ];
        assert_eq!(
            sign_content(params, SignScope::Request, false),
            "A=0&a=1&b=2&sign_type=RSA2"
        );
        assert_eq!(
            sign_content(params, SignScope::Notification, false),
            "A=0&a=1&b=2"
        );
        assert_eq!(
            sign_content(params, SignScope::Request, true),
            "A=0&a=1&b=2&c= \t&sign_type=RSA2"
        );
        // A no-break space is not blank under Java's rule.
        assert_eq!(
            sign_content([("a", "\u{a0}")], SignScope::Request, false),
            "a=\u{a0}"
        );
    }
}
