//! End-to-end tests of the sandbox: each business rule it enforces, driven
//! through `AlipayClient` over loopback HTTP on a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bill_props;
mod bill_sdk;
mod bill_support;
mod bills;
mod certs;
mod common;
mod faults;
mod gateway;
mod merchants;
mod notifications;
mod oauth;
mod persistence;
mod refunds;
mod sdk;
mod settlement;
mod sftp;
mod trades;

#[path = "../../../../fuzz/src/sandbox_checks.rs"]
mod sandbox_checks;

/// Replays every committed seed and finding of the `sandbox_gateway` fuzz
/// target through its checks.
#[test]
fn fuzz_corpus_replays() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sandbox_gateway");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "the corpus went missing: {}",
        files.len()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if std::panic::catch_unwind(|| sandbox_checks::sandbox_gateway(&data)).is_err() {
            panic!("{} breaks a check", f.display());
        }
    }
}
