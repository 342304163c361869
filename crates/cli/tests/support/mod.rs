//! What the CLI tests that run `jianlian sandbox` share: starting it on a free
//! port and reading its banner, and calling `jianlian sandbox-ctl`.
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_jianlian");

/// A running `jianlian sandbox`, killed when dropped.
pub struct Running {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The banner, up to its "Docs:" line.
    pub lines: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `jianlian sandbox --listen 127.0.0.1:0 ARGS…` and reads its banner
/// up to the "Docs:" line.
pub fn start(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = read_banner(&mut child, |line| line.starts_with("Docs:"));
    let base = lines[0]
        .strip_prefix("gateway: ")
        .and_then(|g| g.strip_suffix("/gateway.do"))
        .expect("first line names the gateway")
        .to_owned();
    Running { child, base, lines }
}

/// Reads a started child's stdout (piped) up to and including the first line
/// for which `last` holds, within 60 s; the pipe is closed after it.
pub fn read_banner(child: &mut Child, last: impl Fn(&str) -> bool) -> Vec<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the process printed its banner in time");
        let done = last(&line);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// `jianlian sandbox-ctl --url BASE ARGS…`, which must succeed; its JSON.
pub fn ctl(base: &str, args: &[&str]) -> Value {
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

/// `jianlian sandbox-ctl --url BASE ARGS…`, which must fail; its stderr.
pub fn ctl_fails(base: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["sandbox-ctl", "--url", base])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "sandbox-ctl {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
