//! AES content encryption (`encrypt_type=AES`, protocol.md §9): AES-128-CBC with
//! a zero IV and PKCS#7 padding, base64 at the wire.

use std::fmt;

use aws_lc_rs::cipher::{
    AES_128, AES_256, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The merchant's "接口内容加密" key. `Debug` shows nothing.
#[derive(Clone)]
pub struct AesKey {
    bytes: Vec<u8>,
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AesError {
    #[error("the AES key is not base64 of 16 or 32 bytes")]
    BadKey,
    #[error("the ciphertext is not base64")]
    NotBase64,
    #[error("the ciphertext does not decrypt with this key")]
    Decrypt,
    #[error("the plaintext is not UTF-8")]
    NotUtf8,
    #[error("encryption failed")]
    Encrypt,
}

const ZERO_IV: [u8; 16] = [0; 16];

impl AesKey {
    /// Reads the key as Alipay shows it: base64 of 16 bytes (AES-128); 32 bytes
    /// (AES-256) is accepted too.
    pub fn from_base64(text: &str) -> Result<AesKey, AesError> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| AesError::BadKey)?;
        if bytes.len() != 16 && bytes.len() != 32 {
            return Err(AesError::BadKey);
        }
        Ok(AesKey { bytes })
    }

    fn unbound(&self) -> Result<UnboundCipherKey, AesError> {
        let alg = if self.bytes.len() == 16 {
            &AES_128
        } else {
            &AES_256
        };
        UnboundCipherKey::new(alg, &self.bytes).map_err(|_| AesError::BadKey)
    }

    /// Encrypts UTF-8 text and returns base64.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, AesError> {
        let key =
            PaddedBlockEncryptingKey::cbc_pkcs7(self.unbound()?).map_err(|_| AesError::Encrypt)?;
        let mut buf = plaintext.as_bytes().to_vec();
        key.less_safe_encrypt(
            &mut buf,
            EncryptionContext::Iv128(FixedLength::from(ZERO_IV)),
        )
        .map_err(|_| AesError::Encrypt)?;
        Ok(BASE64.encode(buf))
    }

    /// Decrypts base64 ciphertext to UTF-8 text.
    pub fn decrypt(&self, ciphertext_b64: &str) -> Result<String, AesError> {
        let mut buf = BASE64
            .decode(ciphertext_b64.trim())
            .map_err(|_| AesError::NotBase64)?;
        let key =
            PaddedBlockDecryptingKey::cbc_pkcs7(self.unbound()?).map_err(|_| AesError::Decrypt)?;
        let plain = key
            .decrypt(
                &mut buf,
                DecryptionContext::Iv128(FixedLength::from(ZERO_IV)),
            )
            .map_err(|_| AesError::Decrypt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| AesError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protocol.md §9: computed by the official Node SDK and by Python cryptography.
    #[test]
    fn matches_the_sdk_vector() {
        let key = AesKey::from_base64("aa4BtZ4tspm2wnXLb1ThQA==").unwrap();
        let plain = r#"{"out_trade_no":"T20240513000001","total_amount":"88.88","subject":"测试"}"#;
        let cipher = "v9xEJGtFY9vW2Ge//P1+YMp2TYFV6oQsBVd+e1P9WZsuqk9+IkLfCGifqnXfO4j58DymgFywsslYGCA84QWnFB+pned3B7AL8aQSjprEhOw=";
        assert_eq!(key.encrypt(plain).unwrap(), cipher);
        assert_eq!(key.decrypt(cipher).unwrap(), plain);
        assert!(AesKey::from_base64("c2hvcnQ=").is_err());
    }
}
