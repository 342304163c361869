//! Certificate mode (公钥证书, protocol.md §8) as Alipay plays it: the
//! sandbox's own certificate hierarchy, shaped like Alipay's, so that an
//! official SDK configured with certificate files can be pointed at it.
//!
//! - The root bundle (`alipayRootCert.crt`) holds an ECDSA root first, then two
//!   RSA roots. Clients must skip the ECDSA root (as they skip the production
//!   bundle's SM2 and ECDSA roots) and join the two RSA SNs with `_`, so a client
//!   that takes the first certificate, or only one, is caught here as it would
//!   be at Alipay.
//! - A "Class 2" CA under the first RSA root issues the Alipay public-key
//!   certificate (`alipayCertPublicKey_RSA2.crt`), which holds the key the
//!   sandbox signs its answers with.
//! - A "Class 1" CA under the same root issues app public-key certificates
//!   (`appCertPublicKey_<app_id>.crt`) for the keys apps register.
//!
//! An issued file holds the certificate, then the CA certificate that issued
//! it, so that a client can chain it to the root bundle (the Java SDK's
//! `AntCertificationUtil.isTrusted` does, after `alipay.open.app.alipaycert.download`).
//!
//! The hierarchy is made the first time an app needs certificate mode, because
//! its four RSA keys cost about a second of CPU that most sandboxes never need,
//! and is kept with the state (the `certs` record). Every SN is computed by the
//! protocol crate (§8.1), the way the SDKs compute it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize, SerialNumber,
    SubjectPublicKeyInfo,
};
use serde::{Deserialize, Serialize};

use jianlian_alipay::cert::{Certificate, root_cert_sn};
use jianlian_alipay::{Code, ErrorReply, PrivateKey, PublicKey};

use crate::api::{Answer, Call, parse_biz, reply};
use crate::model::State;
use crate::state::Core;

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("certificate mode: {0}")]
pub struct CertError(pub(crate) String);

impl CertError {
    /// Certificate mode was asked for before the hierarchy was made.
    pub fn missing() -> CertError {
        CertError("the sandbox has no certificates yet".into())
    }
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError(e.to_string())
    }
}

impl From<jianlian_alipay::KeyError> for CertError {
    fn from(e: jianlian_alipay::KeyError) -> Self {
        CertError(e.to_string())
    }
}

/// The hierarchy as it is kept (the `certs` record of the journal).
#[derive(Clone, Serialize, Deserialize)]
pub struct CertsRecord {
    /// The root bundle, PEM: the ECDSA root, then the two RSA roots.
    pub root_bundle: String,
    /// The Alipay public-key certificate, then the Class 2 CA's, PEM.
    pub alipay_cert: String,
    /// The Class 1 CA's certificate, PEM (it issues app certificates).
    pub class1_cert: String,
    /// The Class 1 CA's key, PKCS#8 PEM. Secret: never logged. The other CA
    /// keys are not kept: nothing else is issued after the hierarchy is made.
    pub class1_key: String,
    /// SN of `alipay_cert` (protocol.md §8.1): what answers carry.
    pub alipay_cert_sn: String,
    /// SN of `root_bundle`: what certificate-mode requests must carry.
    pub alipay_root_cert_sn: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for CertsRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertsRecord")
            .field("alipay_cert_sn", &self.alipay_cert_sn)
            .field("alipay_root_cert_sn", &self.alipay_root_cert_sn)
            .field("class1_key", &"(..)")
            .finish_non_exhaustive()
    }
}

/// An app public-key certificate the sandbox issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The app's certificate, then the Class 1 CA's, PEM.
    pub pem: String,
    /// Its `app_cert_sn`.
    pub sn: String,
}

/// The organisation in every DN: plainly the sandbox's, never Ant Financial's,
/// so no one mistakes these certificates for Alipay's.
const ORGANIZATION: &str = "jianlian Sandbox";
const CA_UNIT: &str = "Certification Authority";
/// Validity of every certificate. Fixed and wide because the sandbox clock can
/// sit anywhere while the Java SDK checks validity against the machine's clock.
const VALID_FROM: (i32, u8, u8) = (2020, 1, 1);
/// The last day UTCTime can say (2049), the encoding every SDK parses.
const VALID_UNTIL: (i32, u8, u8) = (2049, 12, 31);

/// A PrintableString value: what CA DNs usually carry. Values stay plain (no
/// `,`, `+`, `"`…) so that RFC 2253 escaping, which Java applies and the Node
/// SDK does not, cannot make two SDKs disagree on an SN.
fn printable(text: &str) -> Result<DnValue, CertError> {
    let s = rcgen::string::PrintableString::try_from(text)
        .map_err(|e| CertError(format!("{text:?} is not a PrintableString: {e}")))?;
    Ok(DnValue::PrintableString(s))
}

fn name(unit: &str, common_name: &str) -> Result<DistinguishedName, CertError> {
    let mut dn = DistinguishedName::new();
    // DER order C, O, OU, CN: RFC 2253 reverses it to `CN=…,OU=…,O=…,C=CN`,
    // the shape of Alipay's issuer names.
    dn.push(DnType::CountryName, printable("CN")?);
    dn.push(DnType::OrganizationName, printable(ORGANIZATION)?);
    dn.push(DnType::OrganizationalUnitName, printable(unit)?);
    dn.push(DnType::CommonName, printable(common_name)?);
    Ok(dn)
}

/// A random positive 16-byte serial number (Alipay's are about that long).
fn serial() -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CertError("no randomness".into()))?;
    // Positive (DER integers are signed) and of a fixed length.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

fn params(
    dn: DistinguishedName,
    is_ca: IsCa,
    key_usages: Vec<KeyUsagePurpose>,
) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.is_ca = is_ca;
    p.key_usages = key_usages;
    p.serial_number = Some(serial()?);
    p.not_before = rcgen::date_time_ymd(VALID_FROM.0, VALID_FROM.1, VALID_FROM.2);
    p.not_after = rcgen::date_time_ymd(VALID_UNTIL.0, VALID_UNTIL.1, VALID_UNTIL.2);
    Ok(p)
}

fn root_params(common_name: &str) -> Result<CertificateParams, CertError> {
    params(
        name(CA_UNIT, common_name)?,
        IsCa::Ca(BasicConstraints::Unconstrained),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    )
}

fn intermediate_params(common_name: &str) -> Result<CertificateParams, CertError> {
    let mut p = params(
        name(CA_UNIT, common_name)?,
        IsCa::Ca(BasicConstraints::Constrained(0)),
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
    )?;
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn leaf_params(common_name: &str) -> Result<CertificateParams, CertError> {
    let mut p = params(
        name("Alipay", common_name)?,
        IsCa::ExplicitNoCa,
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ],
    )?;
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

fn rsa_key() -> Result<KeyPair, CertError> {
    Ok(KeyPair::generate_rsa_for(
        &PKCS_RSA_SHA256,
        RsaKeySize::_2048,
    )?)
}

fn spki(key: &PublicKey) -> Result<SubjectPublicKeyInfo, CertError> {
    Ok(SubjectPublicKeyInfo::from_der(key.spki_der())?)
}

/// Makes a new hierarchy whose Alipay certificate holds `alipay_key`.
pub fn generate(alipay_key: &PublicKey, now: Timestamp) -> Result<CertsRecord, CertError> {
    let e1_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
    let e1 = root_params("jianlian Sandbox Certification Authority E1")?.self_signed(&e1_key)?;
    let r1_key = rsa_key()?;
    let r1_params = root_params("jianlian Sandbox Certification Authority R1")?;
    let r1 = r1_params.self_signed(&r1_key)?;
    let r1_issuer = Issuer::new(r1_params, &r1_key);
    let r2_key = rsa_key()?;
    let r2 = root_params("jianlian Sandbox Root CA G2")?.self_signed(&r2_key)?;

    let class2_key = rsa_key()?;
    let class2_params = intermediate_params("jianlian Sandbox Certification Authority Class 2 R1")?;
    let class2 = class2_params.signed_by(&class2_key, &r1_issuer)?;
    let class2_issuer = Issuer::new(class2_params, &class2_key);
    let class1_key = rsa_key()?;
    let class1 = intermediate_params("jianlian Sandbox Certification Authority Class 1 R1")?
        .signed_by(&class1_key, &r1_issuer)?;

    let alipay =
        leaf_params("jianlian Sandbox Alipay")?.signed_by(&spki(alipay_key)?, &class2_issuer)?;
    let alipay_cert = format!("{}{}", alipay.pem(), class2.pem());
    let root_bundle = format!("{}{}{}", e1.pem(), r1.pem(), r2.pem());
    let record = CertsRecord {
        alipay_cert_sn: Certificate::from_text(&alipay_cert)?.sn().to_owned(),
        alipay_root_cert_sn: root_cert_sn(&root_bundle)?,
        root_bundle,
        alipay_cert,
        class1_cert: class1.pem(),
        class1_key: class1_key.serialize_pem(),
        created_at: now,
    };
    record.verify(alipay_key)?;
    Ok(record)
}

impl CertsRecord {
    /// Checks a kept hierarchy: the SNs are what the protocol crate computes
    /// from the certificates, and the Alipay certificate holds Alipay's key.
    pub fn verify(&self, alipay_key: &PublicKey) -> Result<(), CertError> {
        let alipay = Certificate::from_text(&self.alipay_cert)?;
        if alipay.sn() != self.alipay_cert_sn {
            return Err(CertError(format!(
                "the kept alipay_cert_sn {} is not the certificate's {}",
                self.alipay_cert_sn,
                alipay.sn()
            )));
        }
        if alipay.public_key() != alipay_key {
            return Err(CertError(
                "the Alipay certificate does not hold the sandbox's Alipay key".into(),
            ));
        }
        let root = root_cert_sn(&self.root_bundle)?;
        if root != self.alipay_root_cert_sn {
            return Err(CertError(format!(
                "the kept alipay_root_cert_sn {} is not the bundle's {root}",
                self.alipay_root_cert_sn
            )));
        }
        Ok(())
    }

    /// Issues the app public-key certificate of `app_key` (subject
    /// `CN=<pid>-<app_id>`, as Alipay names them) under the Class 1 CA.
    pub fn issue_app_cert(
        &self,
        app_key: &PublicKey,
        pid: &str,
        app_id: &str,
    ) -> Result<IssuedCert, CertError> {
        let key = KeyPair::from_pkcs8_pem_and_sign_algo(&self.class1_key, &PKCS_RSA_SHA256)?;
        let issuer = Issuer::from_ca_cert_pem(&self.class1_cert, key)?;
        let cert = leaf_params(&format!("{pid}-{app_id}"))?.signed_by(&spki(app_key)?, &issuer)?;
        let pem = format!("{}{}", cert.pem(), self.class1_cert);
        let sn = Certificate::from_text(&pem)?.sn().to_owned();
        Ok(IssuedCert { pem, sn })
    }

    /// `alipay_cert_content` of `alipay.open.app.alipaycert.download`: base64
    /// of the certificate file's text, as the Java SDK decodes it.
    pub fn alipay_cert_content(&self) -> String {
        BASE64.encode(self.alipay_cert.as_bytes())
    }
}

/// A state saved before the sandbox issued certificates may hold apps in
/// certificate mode: they get the hierarchy at start, before any request.
pub fn migrate(state: &mut State, now: Timestamp) -> Result<(), CertError> {
    if state.certs.is_some() || !state.apps.values().any(|a| a.app_cert_sn.is_some()) {
        return Ok(());
    }
    let alipay_key = PrivateKey::from_text(&state.meta.alipay_key_pkcs8)?;
    state.certs = Some(generate(alipay_key.public_key(), now)?);
    Ok(())
}

#[derive(Debug, Deserialize)]
struct DownloadRequest {
    alipay_cert_sn: String,
}

#[derive(Debug, Serialize)]
struct DownloadResponse<'a> {
    alipay_cert_content: &'a str,
}

impl Core {
    /// `alipay.open.app.alipaycert.download`: the Alipay public-key
    /// certificate with this SN, base64 of its file.
    pub fn alipaycert_download(&mut self, call: &Call) -> Answer {
        let req: DownloadRequest = parse_biz(call)?;
        match self.st.certs.as_ref() {
            Some(c) if c.alipay_cert_sn == req.alipay_cert_sn => {
                let content = c.alipay_cert_content();
                reply(
                    Code::Success,
                    &DownloadResponse {
                        alipay_cert_content: &content,
                    },
                )
            }
            // Alipay's sub_code for this case is not public; this is the name
            // of its common "no such Alipay certificate" error.
            _ => Err(ErrorReply::business(
                "isv.alipay-cert-not-exist",
                format!(
                    "支付宝公钥证书不存在: no Alipay certificate has SN {}",
                    req.alipay_cert_sn
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_and_carry_the_keys() {
        let alipay = PrivateKey::generate_2048().unwrap();
        let record = generate(alipay.public_key(), Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(
            record.alipay_root_cert_sn.len(),
            65,
            "two RSA roots joined by _"
        );
        let app = PrivateKey::generate_2048().unwrap();
        let issued = record
            .issue_app_cert(app.public_key(), "2088000000000001", "2021000000000001")
            .unwrap();
        let cert = Certificate::from_text(&issued.pem).unwrap();
        assert_eq!(cert.public_key(), app.public_key());
        assert_eq!(cert.sn(), issued.sn);
        assert_ne!(issued.sn, record.alipay_cert_sn);
        assert!(format!("{record:?}").contains("(..)"));
        assert!(!format!("{record:?}").contains("PRIVATE"));
    }
}
