//! Asynchronous notifications (protocol.md §6): Alipay (or the gateway, towards
//! its channels) POSTs a signed form; the receiver verifies it and answers
//! `success`.
//!
//! Verification decodes the form once, refuses repeated fields, signs over every
//! field but `sign` and `sign_type` with blank values dropped, sorted, in the
//! notification's charset, with the hash its `sign_type` names. Like the
//! official Node and Python SDKs it also accepts a signature over the content
//! with blank fields kept.

use std::collections::HashSet;

use crate::form::{self, Charset, SignScope};
use crate::keys::{PrivateKey, PublicKey, SignError, SignType};

/// The exact body a receiver answers with once it has processed a notification.
pub const ACK_BODY: &str = "success";

/// Largest notification body accepted, in bytes.
pub const NOTIFY_BODY_MAX_BYTES: usize = 64 * 1024;

/// Why a notification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("the notification body is larger than 64 KiB")]
    TooLarge,
    #[error("field {0} is repeated")]
    RepeatedField(String),
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("charset {0:?} is not utf-8 or gbk")]
    BadCharset(String),
    #[error("the body is not valid {0}")]
    Undecodable(&'static str),
    #[error("sign_type {0:?} is neither RSA2 nor RSA")]
    BadSignType(String),
    #[error("sign_type {found} is not the configured {expected}")]
    UnexpectedSignType { expected: SignType, found: SignType },
    #[error("the signature does not verify (sign content: {0})")]
    BadSignature(String),
    #[error(transparent)]
    Encode(#[from] form::EncodeError),
}

/// A received notification: decoded fields in the order they arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    fields: Vec<(String, String)>,
    charset: Charset,
}

impl Notification {
    /// Decodes a form body (once; `+` is a space) in the charset its `charset`
    /// field names, refusing repeated fields.
    pub fn parse(body: &[u8]) -> Result<Notification, NotifyError> {
        if body.len() > NOTIFY_BODY_MAX_BYTES {
            return Err(NotifyError::TooLarge);
        }
        let pairs = form::decode_pairs(body);
        let charset = match pairs.iter().find(|(k, _)| k == b"charset") {
            None => Charset::Utf8,
            Some((_, v)) => {
                let text = String::from_utf8_lossy(v).into_owned();
                Charset::parse(&text).ok_or(NotifyError::BadCharset(text))?
            }
        };
        let mut fields: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        let mut seen = HashSet::with_capacity(pairs.len());
        for (k, v) in pairs {
            let undecodable = || NotifyError::Undecodable(charset.as_str());
            let key = charset.decode(&k).ok_or_else(undecodable)?;
            let value = charset.decode(&v).ok_or_else(undecodable)?;
            // Compared decoded: GBK has two byte forms of some characters.
            if !seen.insert(key.clone()) {
                return Err(NotifyError::RepeatedField(key));
            }
            fields.push((key, value));
        }
        Ok(Notification { fields, charset })
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// A field's value; blank values count as absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !form::is_blank(v))
    }

    /// The documented sign content: blank fields dropped.
    pub fn sign_content(&self) -> String {
        self.sign_content_with(false)
    }

    fn sign_content_with(&self, keep_blank: bool) -> String {
        form::sign_content(
            self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignScope::Notification,
            keep_blank,
        )
    }

    /// Verifies the signature with the hash the notification's `sign_type`
    /// names; `expected` refuses a sign type other than the configured one.
    pub fn verify(
        &self,
        key: &PublicKey,
        expected: Option<SignType>,
    ) -> Result<SignType, NotifyError> {
        let sign = self.get("sign").ok_or(NotifyError::Missing("sign"))?;
        let sign_type_text = self
            .get("sign_type")
            .ok_or(NotifyError::Missing("sign_type"))?;
        let sign_type = SignType::parse(sign_type_text)
            .ok_or_else(|| NotifyError::BadSignType(sign_type_text.to_owned()))?;
        if let Some(expected) = expected.filter(|e| *e != sign_type) {
            return Err(NotifyError::UnexpectedSignType {
                expected,
                found: sign_type,
            });
        }
        let content = self.sign_content();
        if key
            .verify(sign_type, &self.charset.encode(&content)?, sign)
            .is_ok()
        {
            return Ok(sign_type);
        }
        // The official Node and Python SDKs keep blank fields when they verify
        // (protocol.md §6.3), so a signature over `key=` is one they accept; it
        // covers every non-blank field just the same.
        if self.fields.iter().any(|(_, v)| form::is_blank(v)) {
            let with_blank = self.sign_content_with(true);
            if let Ok(bytes) = self.charset.encode(&with_blank)
                && key.verify(sign_type, &bytes, sign).is_ok()
            {
                return Ok(sign_type);
            }
        }
        Err(NotifyError::BadSignature(content))
    }
}

/// Builds a signed notification body. Blank fields are left out (so that every
/// SDK, including those that do not drop blanks when verifying, agrees), `sign`
/// and `sign_type` are appended, and the form is encoded in `charset`.
pub fn build_notification<'a, I>(
    fields: I,
    key: &PrivateKey,
    sign_type: SignType,
    charset: Charset,
) -> Result<String, NotifyError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut kept: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(k, v)| !form::is_blank(v) && *k != "sign" && *k != "sign_type")
        .collect();
    let has_charset = kept.iter().any(|(k, _)| *k == "charset");
    if !has_charset {
        kept.push(("charset", charset.as_str()));
    }
    let content = form::sign_content(kept.iter().copied(), SignScope::Notification, false);
    let bytes = charset.encode(&content)?;
    let sign = key
        .sign(sign_type, &bytes)
        .map_err(|SignError| NotifyError::BadSignature(String::new()))?;
    kept.push(("sign", &sign));
    kept.push(("sign_type", sign_type.as_str()));
    Ok(form::encode_pairs(kept, charset)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = PrivateKey::generate_2048().unwrap();
        let body = build_notification(
            [
                ("trade_status", "TRADE_SUCCESS"),
                ("subject", "测试 A+B 100%"),
                ("total_amount", "1.00"),
                ("body", ""),
            ],
            &key,
            SignType::Rsa2,
            Charset::Utf8,
        )
        .unwrap();
        let n = Notification::parse(body.as_bytes()).unwrap();
        assert_eq!(n.get("subject"), Some("测试 A+B 100%"));
        assert_eq!(
            n.verify(key.public_key(), Some(SignType::Rsa2)),
            Ok(SignType::Rsa2)
        );
        let tampered = body.replace("total_amount=1.00", "total_amount=2.00");
        let n = Notification::parse(tampered.as_bytes()).unwrap();
        assert!(matches!(
            n.verify(key.public_key(), None),
            Err(NotifyError::BadSignature(_))
        ));
        let repeated = format!("{body}&total_amount=1.00");
        assert_eq!(
            Notification::parse(repeated.as_bytes()),
            Err(NotifyError::RepeatedField("total_amount".into()))
        );
    }
}
