//! Issue item 11: whatever the gateway logs, at any level, while it pays,
//! polls, resolves an unknown answer and notifies, shows payment codes only
//! masked to their last four digits and never any key material.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "e2e/common.rs"]
#[allow(dead_code)]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use jianlian_alipay::Outcome;
use jianlian_alipay::auth_code::mask;

use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_mask_payment_codes_and_show_no_keys() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,jianlian_sandbox=off",
        ))
        .with_ansi(false)
        .with_writer(captured.clone())
        .init();
    let logs = captured.clone();
    on_sqlite(|db| async move {
        let w = World::new(db).await;
        let smid = w.onboard(&w.channel, "M1", "91310000000000001A").await;
        let mut codes = Vec::new();
        for (otn, amount) in [("L1", "10.00"), ("L2", "1000.00")] {
            let code = w.code().await;
            let out = w
                .channel
                .call_notify(&w.pay_req(&smid, otn, amount, &code), &w.receiver.url)
                .await;
            assert!(
                matches!(out, Outcome::Success(_) | Outcome::InProgress(_)),
                "{out:?}"
            );
            codes.push(code);
        }
        for _ in 0..13 {
            w.advance(5).await;
        }
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("barcode pay"),
            "the pays were logged:\n{text}"
        );
        for code in &codes {
            assert!(
                !text.contains(code.as_str()),
                "a full payment code was logged"
            );
            assert!(
                text.contains(&mask(code)),
                "the masked code {} is logged",
                mask(code)
            );
        }
        assert!(!text.contains("PRIVATE KEY"));
        for key in [
            &w.gateway_key,
            &w.acquirer_key,
            &w.alipay_key,
            &w.channel.key,
        ] {
            let der = key.to_pkcs8_base64();
            for chunk in der.as_bytes().chunks(48).skip(1).take(10) {
                let chunk = std::str::from_utf8(chunk).unwrap();
                assert!(!text.contains(chunk), "key material was logged");
            }
        }
    })
    .await;
}
