//! Proves `jianlian sandbox` starts, prints its URLs, keeps its state in
//! `--state DIR` across a restart, and that `jianlian sandbox-ctl` drives
//! every control endpoint and prints JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jianlian_alipay::PrivateKey;

mod support;
use support::{Running, ctl, ctl_fails};

/// The sandbox on `state`, its banner naming the gateway and then the
/// control URL.
fn start(state: &std::path::Path) -> Running {
    let s = support::start(&["--state", state.to_str().unwrap()]);
    assert_eq!(s.lines[1], format!("control: {}/sandbox", s.base));
    s
}

#[test]
fn sandbox_and_ctl_round_trip_with_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let key_file = dir.path().join("app_public.pem");
    std::fs::write(
        &key_file,
        PrivateKey::generate_2048().unwrap().public_key().to_pem(),
    )
    .unwrap();

    let (app_id, buyer_id, smid_less_now) = {
        let s = start(&state);
        let info = ctl(&s.base, &["info"]);
        assert_eq!(info["gateway_url"], format!("{}/gateway.do", s.base));
        let app = ctl(
            &s.base,
            &[
                "apps",
                "create",
                "--public-key",
                key_file.to_str().unwrap(),
                "--fee-rate",
                "0.006",
            ],
        );
        let app_id = app["app_id"].as_str().unwrap().to_owned();
        assert!(app_id.starts_with("2021") && app_id.len() == 16);
        assert!(app["alipay_public_key"].as_str().unwrap().len() > 300);
        let updated = ctl(
            &s.base,
            &["apps", "update", &app_id, "--general-finance", "false"],
        );
        assert_eq!(updated["app_id"], app_id.as_str());
        assert_eq!(
            ctl(&s.base, &["apps", "get", &app_id])["general_finance"],
            false
        );
        let buyer = ctl(
            &s.base,
            &[
                "buyers",
                "create",
                "--balance",
                "12.34",
                "--requires-password",
            ],
        );
        let buyer_id = buyer["buyer_id"].as_str().unwrap().to_owned();
        assert_eq!(
            ctl(&s.base, &["buyers", "get", &buyer_id])["balance"],
            "12.34"
        );
        let code = ctl(&s.base, &["payment-code", &buyer_id]);
        let auth_code = code["auth_code"].as_str().unwrap();
        assert_eq!(auth_code.len(), 18);
        let face = ctl(
            &s.base,
            &["security-code", &buyer_id, "--pay-with", "balance"],
        );
        let token = face["auth_code"].as_str().unwrap();
        assert!(token.starts_with("fp") && token.len() == 35, "{token}");
        let before = ctl(&s.base, &["clock", "get"])["now"]
            .as_str()
            .unwrap()
            .to_owned();
        let after = ctl(&s.base, &["clock", "advance", "86400"])["now"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(after > before, "{after} should be a day after {before}");
        let rule = ctl(
            &s.base,
            &[
                "faults",
                "add",
                "--action",
                "system_error",
                "--method",
                "alipay.trade.pay",
                "--times",
                "2",
            ],
        );
        assert_eq!(rule["action"], "system_error");
        assert_eq!(
            ctl(&s.base, &["faults", "list"])["faults"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let lagging = ctl(
            &s.base,
            &[
                "faults",
                "add",
                "--action",
                "trade_not_exist",
                "--for-seconds",
                "30",
            ],
        );
        assert_eq!(lagging["for_seconds"], 30);
        let late = ctl(
            &s.base,
            &[
                "faults",
                "add",
                "--action",
                "pay_after_cancel",
                "--after",
                "close",
                "--after",
                "timeout",
            ],
        );
        assert_eq!(late["after"], serde_json::json!(["close", "timeout"]));
        let err = ctl_fails(
            &s.base,
            &[
                "faults",
                "add",
                "--json",
                r#"{"action":"force_wait","pay_after_querys":3}"#,
            ],
        );
        assert!(
            err.contains("400") && err.contains("pay_after_querys"),
            "{err}"
        );
        assert_eq!(ctl(&s.base, &["faults", "clear"])["cleared"], 3);
        assert_eq!(
            ctl(&s.base, &["ledger"])["entries"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            ctl(&s.base, &["notifications"])["notifications"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
        assert!(ctl(&s.base, &["run-due"]).get("deliveries").is_some());
        let oauth = ctl(
            &s.base,
            &[
                "oauth",
                "authorize",
                "--app-id",
                &app_id,
                "--buyer-id",
                &buyer_id,
                "--redirect-uri",
                "https://bank.example/cb",
            ],
        );
        assert!(oauth["redirect"].as_str().unwrap().contains("auth_code="));
        let err = ctl_fails(&s.base, &["confirm", "2026030222000000000000000000"]);
        assert!(err.contains("404"), "{err}");
        let err = ctl_fails(&s.base, &["buyers", "create", "--balance", "1.234"]);
        assert!(err.contains("balance"), "{err}");
        (app_id, buyer_id, after)
    };

    // Restarted on the same state directory: everything is still there,
    // including the virtual clock offset.
    let s = start(&state);
    assert_eq!(
        ctl(&s.base, &["apps", "get", &app_id])["general_finance"],
        false
    );
    assert_eq!(
        ctl(&s.base, &["buyers", "get", &buyer_id])["balance"],
        "12.34"
    );
    let now = ctl(&s.base, &["clock", "get"])["now"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        now >= smid_less_now,
        "the clock offset was lost: {now} < {smid_less_now}"
    );
}

/// `sandbox-ctl apps create --certificate-mode --out DIR` and `certs --out DIR`
/// write the three certificate files under Alipay's names, with the SNs the
/// answer states.
#[test]
fn sandbox_ctl_writes_certificate_files() {
    use jianlian_alipay::cert::{Certificate, root_cert_sn};

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("app_public.pem");
    std::fs::write(
        &key_file,
        PrivateKey::generate_2048().unwrap().public_key().to_pem(),
    )
    .unwrap();
    let s = start(&dir.path().join("state"));
    let out = dir.path().join("certs");
    let key = key_file.to_str().unwrap();
    let app = ctl(
        &s.base,
        &[
            "apps",
            "create",
            "--public-key",
            key,
            "--certificate-mode",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let app_file = read(&format!(
        "appCertPublicKey_{}.crt",
        app["app_id"].as_str().unwrap()
    ));
    assert_eq!(
        Certificate::from_text(&app_file).unwrap().sn(),
        app["app_cert_sn"]
    );
    assert_eq!(
        Certificate::from_text(&read("alipayCertPublicKey_RSA2.crt"))
            .unwrap()
            .sn(),
        app["alipay_cert_sn"]
    );
    assert_eq!(
        root_cert_sn(&read("alipayRootCert.crt")).unwrap(),
        app["alipay_root_cert_sn"]
    );

    let again = dir.path().join("again");
    let certs = ctl(&s.base, &["certs", "--out", again.to_str().unwrap()]);
    assert_eq!(certs["alipay_root_cert_sn"], app["alipay_root_cert_sn"]);
    assert_eq!(
        std::fs::read_to_string(again.join("alipayRootCert.crt")).unwrap(),
        read("alipayRootCert.crt")
    );
    let err = ctl_fails(
        &s.base,
        &[
            "apps",
            "create",
            "--public-key",
            key,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not in certificate mode"), "{err}");
}
