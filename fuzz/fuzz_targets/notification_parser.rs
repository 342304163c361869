//! Fuzz target: see `jianlian_fuzz::alipay_checks::notification_parser` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jianlian_fuzz::alipay_checks::notification_parser(data);
});
