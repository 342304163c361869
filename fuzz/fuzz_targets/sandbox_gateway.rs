//! Fuzz target: see `jianlian_fuzz::sandbox_checks::sandbox_gateway` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    jianlian_fuzz::sandbox_checks::sandbox_gateway(data);
});
