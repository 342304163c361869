//! Proves `jianlian sandbox --sftp-listen --calendar` announces its SFTP
//! server and the calendar years it knows, refuses a malformed calendar file
//! naming the line, and that `jianlian sandbox-ctl` drives the bill, SFTP
//! credential, settlement and calendar endpoints (a bill saved with
//! `bills get` is the zip the sandbox wrote).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};

use jianlian_alipay::PrivateKey;

mod support;
use support::{BIN, ctl, start};

#[test]
fn a_malformed_calendar_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, "date,kind,name\n2027-01-01,holiday,New Year\n").unwrap();
    let mut child = Command::new(BIN)
        .args(["sandbox", "--listen", "127.0.0.1:0", "--calendar"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("bad.csv") && stderr.contains("line 2"),
        "{stderr}"
    );
}

#[test]
fn sandbox_ctl_drives_bills_sftp_settlements_and_the_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let calendar = dir.path().join("cn_2027.csv");
    std::fs::write(&calendar, "date,kind,name\n2027-01-01,off,New Year's Day\n").unwrap();
    let s = start(&[
        "--sftp-listen",
        "127.0.0.1:0",
        "--calendar",
        calendar.to_str().unwrap(),
        "--state",
        dir.path().join("state").to_str().unwrap(),
    ]);
    let sftp_line = s
        .lines
        .iter()
        .find(|l| l.starts_with("sftp:"))
        .expect("an sftp line");
    assert!(sftp_line.contains("host key SHA256:"), "{sftp_line}");
    assert!(
        s.lines
            .iter()
            .any(|l| l == "calendar: working days known for 2024, 2025, 2026, 2027"),
        "{:?}",
        s.lines
    );

    let day = ctl(&s.base, &["calendar", "--date", "2027-01-01"]);
    assert_eq!(day["working_day"], false);
    assert_eq!(day["holiday"], "New Year's Day");
    assert_eq!(day["next_working_day"], "2027-01-04");
    assert_eq!(
        ctl(&s.base, &["calendar"])["years"],
        serde_json::json!([2024, 2025, 2026, 2027])
    );

    let key_file = dir.path().join("app_public.pem");
    std::fs::write(
        &key_file,
        PrivateKey::generate_2048().unwrap().public_key().to_pem(),
    )
    .unwrap();
    let app = ctl(
        &s.base,
        &[
            "apps",
            "create",
            "--public-key",
            key_file.to_str().unwrap(),
            "--empty-bills",
            "true",
            "--settlement",
            "cross_bank",
        ],
    );
    let pid = app["pid"].as_str().unwrap().to_owned();
    let app_id = app["app_id"].as_str().unwrap().to_owned();
    assert_eq!(ctl(&s.base, &["apps", "get", &app_id])["empty_bills"], true);

    let info = ctl(&s.base, &["sftp", "info"]);
    assert!(
        info["host_public_key"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    let user = ctl(
        &s.base,
        &["sftp", "set-user", &pid, "--password", "cli-password-1"],
    );
    assert_eq!(user["username"], pid.as_str());
    assert_eq!(user["password_set"], true);
    assert_eq!(
        ctl(&s.base, &["sftp", "get-user", &pid])["password_set"],
        true
    );

    // Two days on, today's empty bill exists (whatever the hour now).
    ctl(&s.base, &["clock", "advance", "172800"]);
    let bills = ctl(&s.base, &["bills", "list", "--pid", &pid]);
    let list = bills["bills"].as_array().unwrap();
    assert!(!list.is_empty(), "{bills}");
    let first = &list[0];
    let date = first["date"].as_str().unwrap();
    let name = first["files"][0]["name"].as_str().unwrap();
    assert!(name.ends_with(".csv.zip"), "{name}");
    let saved = dir.path().join("bill.zip");
    let answer = ctl(
        &s.base,
        &[
            "bills",
            "get",
            &pid,
            date,
            name,
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&saved).unwrap();
    assert_eq!(answer["bytes"], bytes.len());
    assert_eq!(&bytes[..4], b"PK\x03\x04");
    assert_eq!(first["files"][0]["size"], bytes.len());

    // No trades, so nothing to pay out.
    let settlements = ctl(&s.base, &["settlements", "--pid", &pid]);
    assert_eq!(settlements["settlements"], serde_json::json!([]));
    assert_eq!(
        ctl(&s.base, &["sftp", "delete-user", &pid])["deleted"],
        true
    );
}
