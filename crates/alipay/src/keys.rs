//! RSA keys in every form Alipay and its SDKs hand out, and the two sign types.
//!
//! Private keys: PKCS#1 or PKCS#8, PEM or bare base64 (Alipay's key tool writes
//! bare base64 PKCS#8). Public keys: SPKI (or PKCS#1) PEM or bare base64, or the
//! key inside an X.509 certificate (certificate mode). Keys are parsed once and
//! shared; their `Debug` output shows nothing secret.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::legacy_sha1;

/// Alipay's `sign_type`: `RSA2` is SHA256withRSA, `RSA` the legacy SHA1withRSA.
/// Both are RSASSA-PKCS1-v1_5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignType {
    #[default]
    Rsa2,
    Rsa,
}

impl SignType {
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Rsa2 => "RSA2",
            SignType::Rsa => "RSA",
        }
    }

    /// Parses the wire value; Alipay's values are upper case and exact.
    pub fn parse(text: &str) -> Option<SignType> {
        match text {
            "RSA2" => Some(SignType::Rsa2),
            "RSA" => Some(SignType::Rsa),
            _ => None,
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SignType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignType::parse(s).ok_or_else(|| format!("sign type {s:?} is neither RSA2 nor RSA"))
    }
}

/// Why key text was refused. Messages say what is wrong with the text; callers
/// add where it came from (a file name, a configuration key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is neither PEM nor base64: {0}")]
    NotBase64(String),
    #[error("PEM block \"{0}\" is not a key this tool reads")]
    UnsupportedPem(String),
    #[error("PEM block \"{0}\" has no matching END line")]
    UnterminatedPem(String),
    #[error("the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)")]
    EncryptedPrivateKey,
    #[error("this is a public key or certificate, but a private key is needed")]
    PublicWherePrivateExpected,
    #[error("this is a private key, but a public key is needed (share only the public half)")]
    PrivateWherePublicExpected,
    #[error("not an RSA private key in PKCS#8 or PKCS#1 form ({0})")]
    NotRsaPrivateKey(String),
    #[error("not an RSA public key in SPKI or PKCS#1 form ({0})")]
    NotRsaPublicKey(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("could not generate a key pair")]
    Generate,
}

/// Why signing failed (only on a broken key or an exhausted system).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing failed with this private key")]
pub struct SignError;

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature is not base64")]
    SignatureNotBase64,
    #[error("the signature does not match the content")]
    Mismatch,
}

/// An app's (or Alipay's) RSA private key. Cheap to clone; `Debug` shows nothing.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<PrivateInner>,
}

struct PrivateInner {
    pair: RsaKeyPair,
    /// PKCS#8 DER, kept for SHA1 signing (see `legacy_sha1`) and export.
    pkcs8: Vec<u8>,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    /// Reads a private key from PEM (`RSA PRIVATE KEY` or `PRIVATE KEY`) or bare
    /// base64 of PKCS#8 or PKCS#1 DER.
    pub fn from_text(text: &str) -> Result<PrivateKey, KeyError> {
        match decode_key_text(text)? {
            KeyText::Pem { label, der } => match label.as_str() {
                "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&der),
                "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(&der),
                "ENCRYPTED PRIVATE KEY" => Err(KeyError::EncryptedPrivateKey),
                "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
                    Err(KeyError::PublicWherePrivateExpected)
                }
                _ => Err(KeyError::UnsupportedPem(label)),
            },
            KeyText::Der(der) => PrivateKey::from_der(&der),
        }
    }

    /// Reads PKCS#8 or PKCS#1 DER, whichever it is.
    pub fn from_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        match PrivateKey::from_pkcs8_der(der) {
            Ok(key) => Ok(key),
            Err(pkcs8_err) => PrivateKey::from_pkcs1_der(der).map_err(|pkcs1_err| {
                if PublicKey::from_der(der).is_ok() || x509_public_key(der).is_ok() {
                    KeyError::PublicWherePrivateExpected
                } else if matches!(pkcs1_err, KeyError::NotRsaPrivateKey(_)) {
                    pkcs8_err
                } else {
                    pkcs1_err
                }
            }),
        }
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let pair = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| KeyError::NotRsaPrivateKey(format!("PKCS#8: {e}")))?;
        PrivateKey::from_pair(pair)
    }

    pub fn from_pkcs1_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let pair = RsaKeyPair::from_der(der)
            .map_err(|e| KeyError::NotRsaPrivateKey(format!("PKCS#1: {e}")))?;
        PrivateKey::from_pair(pair)
    }

    /// Generates a fresh RSA-2048 key pair.
    pub fn generate_2048() -> Result<PrivateKey, KeyError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        PrivateKey::from_pair(pair)
    }

    fn from_pair(pair: RsaKeyPair) -> Result<PrivateKey, KeyError> {
        let pkcs8 = pair
            .as_der()
            .map_err(|_| KeyError::NotRsaPrivateKey("cannot encode as PKCS#8".into()))?
            .as_ref()
            .to_vec();
        let public = PublicKey::from_der(pair.public_key().as_ref())?;
        Ok(PrivateKey {
            inner: Arc::new(PrivateInner {
                pair,
                pkcs8,
                public,
            }),
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.inner.public
    }

    /// Signs `message` and returns the standard-base64 signature.
    pub fn sign(&self, sign_type: SignType, message: &[u8]) -> Result<String, SignError> {
        let raw = match sign_type {
            SignType::Rsa2 => {
                let mut out = vec![0u8; self.inner.pair.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                self.inner
                    .pair
                    .sign(&RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| SignError)?;
                out
            }
            SignType::Rsa => legacy_sha1::sign(&self.inner.pkcs8, message).ok_or(SignError)?,
        };
        Ok(BASE64.encode(raw))
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). This is secret.
    pub fn to_pkcs8_pem(&self) -> String {
        pem("PRIVATE KEY", &self.inner.pkcs8)
    }

    /// The key as one line of base64 PKCS#8 DER, the form Alipay's key tool and
    /// the Java SDK use. This is secret.
    pub fn to_pkcs8_base64(&self) -> String {
        BASE64.encode(&self.inner.pkcs8)
    }
}

/// An RSA public key that verifies `RSA2` and `RSA` signatures. Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<PublicInner>,
}

struct PublicInner {
    spki: Vec<u8>,
    sha256: ParsedPublicKey,
    sha1: ParsedPublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = self.to_base64();
        let tail = b64.get(b64.len().saturating_sub(12)..).unwrap_or_default();
        write!(f, "PublicKey(..{tail})")
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.spki == other.inner.spki
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Reads a public key from PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`, `CERTIFICATE`)
    /// or bare base64 of SPKI, PKCS#1 or certificate DER.
    pub fn from_text(text: &str) -> Result<PublicKey, KeyError> {
        match decode_key_text(text)? {
            KeyText::Pem { label, der } => match label.as_str() {
                "PUBLIC KEY" | "RSA PUBLIC KEY" => PublicKey::from_der(&der),
                "CERTIFICATE" => x509_public_key(&der),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                    Err(KeyError::PrivateWherePublicExpected)
                }
                _ => Err(KeyError::UnsupportedPem(label)),
            },
            KeyText::Der(der) => PublicKey::from_der(&der).or_else(|err| {
                x509_public_key(&der).map_err(|_| {
                    if PrivateKey::from_der(&der).is_ok() {
                        KeyError::PrivateWherePublicExpected
                    } else {
                        err
                    }
                })
            }),
        }
    }

    /// Reads SPKI or PKCS#1 `RSAPublicKey` DER.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let rsa = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|e| KeyError::NotRsaPublicKey(e.to_string()))?;
        let spki = rsa
            .as_der()
            .map_err(|_| KeyError::NotRsaPublicKey("cannot encode as SPKI".into()))?
            .as_ref()
            .to_vec();
        let parse = |alg: &'static signature::RsaParameters| {
            ParsedPublicKey::new(alg, &spki).map_err(|e| KeyError::NotRsaPublicKey(e.to_string()))
        };
        let sha256 = parse(&RSA_PKCS1_2048_8192_SHA256)?;
        let sha1 = parse(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY)?;
        Ok(PublicKey {
            inner: Arc::new(PublicInner { spki, sha256, sha1 }),
        })
    }

    /// Verifies a standard-base64 signature over `message`, with the hash named
    /// by `sign_type` (never the hash found inside the signature).
    pub fn verify(
        &self,
        sign_type: SignType,
        message: &[u8],
        signature_b64: &str,
    ) -> Result<(), VerifyError> {
        let raw = BASE64
            .decode(signature_b64)
            .map_err(|_| VerifyError::SignatureNotBase64)?;
        let key = match sign_type {
            SignType::Rsa2 => &self.inner.sha256,
            SignType::Rsa => &self.inner.sha1,
        };
        key.verify_sig(message, &raw)
            .map_err(|_| VerifyError::Mismatch)
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.inner.spki
    }

    /// One line of base64 SPKI DER: the form Alipay's console shows.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.inner.spki)
    }

    /// `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn to_pem(&self) -> String {
        pem("PUBLIC KEY", &self.inner.spki)
    }
}

fn x509_public_key(der: &[u8]) -> Result<PublicKey, KeyError> {
    let cert = crate::cert::Certificate::from_der(der)?;
    Ok(cert.public_key().clone())
}

/// Key text after armour and base64 are removed.
pub(crate) enum KeyText {
    Pem { label: String, der: Vec<u8> },
    Der(Vec<u8>),
}

/// Splits PEM armour (first block only) or decodes bare base64.
pub(crate) fn decode_key_text(text: &str) -> Result<KeyText, KeyError> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    if let Some(start) = text.find("-----BEGIN ") {
        let after = &text[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| KeyError::UnterminatedPem(String::new()))?;
        let label = after[..label_end].trim().to_owned();
        let body_and_rest = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| KeyError::UnterminatedPem(label.clone()))?;
        let body = &body_and_rest[..body_end];
        // Encrypted traditional PEM carries headers such as `Proc-Type: 4,ENCRYPTED`.
        if body.contains(':') {
            return Err(KeyError::EncryptedPrivateKey);
        }
        let der = decode_base64_loose(body)?;
        return Ok(KeyText::Pem { label, der });
    }
    Ok(KeyText::Der(decode_base64_loose(text)?))
}

/// Base64 with any whitespace (line breaks, `\r`, spaces) removed first.
fn decode_base64_loose(text: &str) -> Result<Vec<u8>, KeyError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(KeyError::Empty);
    }
    BASE64
        .decode(compact.as_bytes())
        .map_err(|e| KeyError::NotBase64(e.to_string()))
}

/// PEM with 64-character lines.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_signs_and_verifies_both_types() {
        let key = PrivateKey::generate_2048().unwrap();
        for st in [SignType::Rsa2, SignType::Rsa] {
            let sig = key.sign(st, b"a=1&b=2").unwrap();
            assert_eq!(sig.len(), 344);
            key.public_key().verify(st, b"a=1&b=2", &sig).unwrap();
            assert_eq!(
                key.public_key().verify(st, b"a=1&b=3", &sig),
                Err(VerifyError::Mismatch)
            );
        }
        let rsa2 = key.sign(SignType::Rsa2, b"x").unwrap();
        assert!(key.public_key().verify(SignType::Rsa, b"x", &rsa2).is_err());
    }

    #[test]
    fn round_trips_every_text_form() {
        let key = PrivateKey::generate_2048().unwrap();
        let again = PrivateKey::from_text(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let again = PrivateKey::from_text(&key.to_pkcs8_base64()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = key.public_key();
        assert_eq!(&PublicKey::from_text(&public.to_pem()).unwrap(), public);
        assert_eq!(&PublicKey::from_text(&public.to_base64()).unwrap(), public);
    }

    #[test]
    fn wrong_halves_are_named() {
        let key = PrivateKey::generate_2048().unwrap();
        assert_eq!(
            PrivateKey::from_text(&key.public_key().to_pem()).unwrap_err(),
            KeyError::PublicWherePrivateExpected
        );
        assert_eq!(
            PublicKey::from_text(&key.to_pkcs8_base64()).unwrap_err(),
            KeyError::PrivateWherePublicExpected
        );
        assert_eq!(PrivateKey::from_text("  ").unwrap_err(), KeyError::Empty);
        assert!(matches!(
            PrivateKey::from_text("not a key!").unwrap_err(),
            KeyError::NotBase64(_)
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = PrivateKey::generate_2048().unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "PrivateKey(..)");
    }
}
