//! Proves `jianlian sandbox` starts, prints its URLs, keeps its state in
//! `--state DIR` across a restart, and that `jianlian sandbox-ctl` drives
//! every control endpoint and prints JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jianlian_alipay::PrivateKey;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_jianlian");

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(state: &std::path::Path) -> Running {
    let mut child = Command::new(BIN)
        .args(["sandbox", "--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the sandbox printed nothing");
    let gateway = first
        .strip_prefix("gateway: ")
        .expect("first line names the gateway");
    let base = gateway.strip_suffix("/gateway.do").unwrap().to_owned();
    let control = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(control, format!("control: {base}/sandbox"));
    Running { child, base }
}

fn ctl(base: &str, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["sandbox-ctl", "--url", base])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sandbox-ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ctl_fails(base: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["sandbox-ctl", "--url", base])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "sandbox-ctl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
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
        assert_eq!(ctl(&s.base, &["faults", "clear"])["cleared"], 1);
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
