//! Fuzz target: see `jianlian_fuzz::alipay_checks::response_extractor` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jianlian_fuzz::alipay_checks::response_extractor(data);
});
