//! Certificate mode (公钥证书, protocol.md §8): public keys from X.509
//! certificates and the MD5 serial numbers (`app_cert_sn`, `alipay_cert_sn`,
//! `alipay_root_cert_sn`) that travel with requests and responses.

use md5::{Digest as _, Md5};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::x509::X509Name;

use crate::keys::{KeyError, KeyText, PublicKey, decode_key_text};

/// A parsed public-key certificate: its key and its Alipay serial number.
#[derive(Debug, Clone)]
pub struct Certificate {
    public_key: PublicKey,
    sn: String,
    rsa_signed: bool,
}

impl Certificate {
    /// Reads one certificate from PEM or DER (or bare base64 DER).
    pub fn from_text(text: &str) -> Result<Certificate, KeyError> {
        match decode_key_text(text)? {
            KeyText::Pem { label, der } if label == "CERTIFICATE" => Certificate::from_der(&der),
            KeyText::Pem { label, .. } => Err(KeyError::UnsupportedPem(label)),
            KeyText::Der(der) => Certificate::from_der(&der),
        }
    }

    pub fn from_der(der: &[u8]) -> Result<Certificate, KeyError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| KeyError::Certificate(e.to_string()))?;
        let issuer = rfc2253(cert.issuer());
        let serial = cert.tbs_certificate.serial.to_str_radix(10);
        let sn = md5_hex(&format!("{issuer}{serial}"));
        let rsa_signed = cert
            .signature_algorithm
            .algorithm
            .to_id_string()
            .starts_with("1.2.840.113549.1.1");
        let public_key = PublicKey::from_der(cert.public_key().raw).map_err(|e| {
            KeyError::Certificate(format!("the certificate's key is not usable: {e}"))
        });
        Ok(Certificate {
            public_key: public_key?,
            sn,
            rsa_signed,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// MD5 of the issuer DN (RFC 2253) followed by the decimal serial number.
    pub fn sn(&self) -> &str {
        &self.sn
    }
}

/// `alipay_root_cert_sn`: the SNs of the RSA-signed certificates of a root
/// bundle, in file order, joined by `_`. Other certificates (SM2, ECDSA) are
/// skipped, as by every official SDK.
pub fn root_cert_sn(bundle_pem: &str) -> Result<String, KeyError> {
    let mut sns = Vec::new();
    let mut rest = bundle_pem;
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let block = &rest[start..];
        let end = block
            .find(END)
            .ok_or_else(|| KeyError::UnterminatedPem("CERTIFICATE".into()))?;
        let pem_block = &block[..end + END.len()];
        let der = match decode_key_text(pem_block)? {
            KeyText::Pem { der, .. } | KeyText::Der(der) => der,
        };
        // Non-RSA roots may carry keys we cannot parse; only their algorithm matters.
        let (_, cert) =
            X509Certificate::from_der(&der).map_err(|e| KeyError::Certificate(e.to_string()))?;
        if cert
            .signature_algorithm
            .algorithm
            .to_id_string()
            .starts_with("1.2.840.113549.1.1")
        {
            let issuer = rfc2253(cert.issuer());
            let serial = cert.tbs_certificate.serial.to_str_radix(10);
            sns.push(md5_hex(&format!("{issuer}{serial}")));
        }
        rest = &block[end + END.len()..];
    }
    if sns.is_empty() {
        return Err(KeyError::Certificate(
            "no RSA certificate in the root bundle".into(),
        ));
    }
    Ok(sns.join("_"))
}

impl Certificate {
    /// Whether the certificate is signed with an RSA algorithm.
    pub fn is_rsa_signed(&self) -> bool {
        self.rsa_signed
    }
}

fn md5_hex(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DN as Java's `X500Principal.getName()` writes it (RFC 2253): RDNs in
/// reverse order, `TYPE=value`, joined by `,` without spaces.
fn rfc2253(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let oid = attr.attr_type().to_id_string();
                let short = match oid.as_str() {
                    "2.5.4.3" => "CN".to_owned(),
                    "2.5.4.6" => "C".to_owned(),
                    "2.5.4.7" => "L".to_owned(),
                    "2.5.4.8" => "ST".to_owned(),
                    "2.5.4.9" => "STREET".to_owned(),
                    "2.5.4.10" => "O".to_owned(),
                    "2.5.4.11" => "OU".to_owned(),
                    "0.9.2342.19200300.100.1.25" => "DC".to_owned(),
                    "0.9.2342.19200300.100.1.1" => "UID".to_owned(),
                    other => other.to_owned(),
                };
                let value = attr.as_str().map(escape_rfc2253).unwrap_or_default();
                format!("{short}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
