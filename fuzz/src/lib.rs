//! The checks behind each fuzz target, kept in plain functions so that the
//! normal test suites can replay the committed corpus through the very same
//! code (crates/alipay/tests/fuzz_corpus.rs includes `alipay_checks.rs`,
//! crates/sandbox/tests/e2e includes `sandbox_checks.rs`).

pub mod alipay_checks;
pub mod sandbox_checks;
