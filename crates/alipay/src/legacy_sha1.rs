//! SHA1withRSA signing for Alipay's legacy `RSA` sign type.
//!
//! aws-lc-rs verifies SHA1 signatures but offers no SHA1 signing encoding, and
//! pulling in the RustCrypto `rsa` crate would bring its unfixed timing advisory
//! (RUSTSEC-2023-0071). So this one module calls AWS-LC's `RSA_sign` directly,
//! through the same `aws-lc-sys` build that aws-lc-rs links. It is the only
//! unsafe code in the workspace (checked by `.ci/run`).
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use aws_lc_rs::digest::{self, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_sys as ffi;

/// Signs `message` with SHA1withRSA (PKCS#1 v1.5) using a PKCS#8 DER private key.
/// Returns `None` when AWS-LC refuses the key or the operation.
pub(crate) fn sign(pkcs8_der: &[u8], message: &[u8]) -> Option<Vec<u8>> {
    let digest = digest::digest(&SHA1_FOR_LEGACY_USE_ONLY, message);
    let digest = digest.as_ref();
    // SAFETY: `cbs` is initialised by `CBS_init` over `pkcs8_der`, which outlives
    // every use of it. Each pointer returned by AWS-LC is checked for null before
    // use and freed exactly once on every path. `out` has `RSA_size` bytes, the
    // maximum `RSA_sign` writes, and `out_len` reports how many it wrote.
    unsafe {
        let mut cbs = MaybeUninit::<ffi::CBS>::uninit();
        ffi::CBS_init(cbs.as_mut_ptr(), pkcs8_der.as_ptr(), pkcs8_der.len());
        let pkey = ffi::EVP_parse_private_key(cbs.as_mut_ptr());
        if pkey.is_null() {
            return None;
        }
        let rsa = ffi::EVP_PKEY_get1_RSA(pkey);
        ffi::EVP_PKEY_free(pkey);
        if rsa.is_null() {
            return None;
        }
        let size = usize::try_from(ffi::RSA_size(rsa)).unwrap_or(0);
        let mut out = vec![0u8; size];
        let mut out_len: std::os::raw::c_uint = 0;
        let ok = ffi::RSA_sign(
            ffi::NID_sha1,
            digest.as_ptr(),
            digest.len(),
            out.as_mut_ptr(),
            &mut out_len,
            rsa,
        );
        ffi::RSA_free(rsa);
        if ok != 1 || size == 0 {
            return None;
        }
        out.truncate(usize::try_from(out_len).unwrap_or(0));
        Some(out)
    }
}
