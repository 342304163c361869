//! Proves docs/sandbox.md's walk-through runs as pasted: its shell blocks, in
//! order, in one `bash` against a live `jianlian sandbox`, every command
//! succeeding, every HTTP answer 2xx and every id it captures present; and
//! that the doc names every route the sandbox serves, with a `curl` example of
//! every control endpoint inside the walk-through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;
use support::BIN;

const BEGIN: &str = "<!-- walkthrough: begin";
const END: &str = "<!-- walkthrough: end -->";

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A shell block of the walk-through and the commands it needs beyond
/// `bash`, `curl`, `jq` and `jianlian` (from `<!-- walkthrough: begin (needs …) -->`).
#[derive(Debug)]
struct Block {
    code: String,
    needs: Vec<String>,
}

/// The `sh` blocks between the walk-through markers, in document order.
fn walkthrough(doc: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut region: Option<Vec<String>> = None;
    let mut code: Option<String> = None;
    for line in doc.lines() {
        if let Some(rest) = line.strip_prefix(BEGIN) {
            assert!(region.is_none(), "walk-through regions do not nest");
            let needs = rest
                .trim_end_matches("-->")
                .trim()
                .trim_start_matches("(needs")
                .trim_end_matches(')')
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            region = Some(needs);
        } else if line == END {
            assert!(code.is_none(), "a walk-through ends inside a block");
            region = None;
        } else if let Some(needs) = &region {
            match (&mut code, line) {
                (None, "```sh") => code = Some(String::new()),
                (Some(c), "```") => {
                    blocks.push(Block {
                        code: std::mem::take(c),
                        needs: needs.clone(),
                    });
                    code = None;
                }
                (Some(c), _) => {
                    c.push_str(line);
                    c.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    assert!(region.is_none(), "a walk-through region is not closed");
    blocks
}

/// Every `(METHOD, path)` the sandbox's router serves, read from its source.
fn routes(router_source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in router_source.split(".route(").skip(1) {
        let chunk = chunk.split(".layer(").next().unwrap_or(chunk);
        let path = chunk.split('"').nth(1).expect("a route path");
        for method in ["get", "post", "put", "patch", "delete"] {
            let token = format!("{method}(");
            let served = chunk.match_indices(&token).any(|(at, _)| {
                !chunk[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if served {
                out.push((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    out
}

/// Replaces every `{name}` by `{}`: the doc and the router name parameters
/// differently (`{yyyyMMdd}`, `{date}`).
fn unnamed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        match (c, inside) {
            ('{', _) => {
                inside = true;
                out.push('{');
            }
            ('}', true) => {
                inside = false;
                out.push('}');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// The `(METHOD, path)` of every `curl` call of a script (`$S` stripped, the
/// query dropped).
fn curl_calls(script: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // `curl …` or `X=$(curl …`.
        let Some(start) = words
            .iter()
            .position(|w| *w == "curl" || w.ends_with("(curl"))
        else {
            continue;
        };
        let words = &words[start..];
        let explicit = words
            .iter()
            .position(|w| *w == "-X")
            .and_then(|i| words.get(i + 1));
        let posts = words.iter().any(|w| *w == "-d" || w.starts_with("--data"));
        let method = match (explicit, posts) {
            (Some(m), _) => (*m).to_owned(),
            (None, true) => "POST".to_owned(),
            (None, false) => "GET".to_owned(),
        };
        let Some(url) = words
            .iter()
            .map(|w| w.trim_matches('"'))
            .find_map(|w| w.strip_prefix("$S"))
        else {
            continue;
        };
        let path = url.split('?').next().unwrap_or(url).to_owned();
        out.push((method, path));
    }
    out
}

/// Whether a concrete path (`/sandbox/trades/$W1/confirm`) fits a route
/// (`/sandbox/trades/{trade_no}/confirm`).
fn fits(route: &str, path: &str) -> bool {
    let (r, p): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    r.len() == p.len()
        && r.iter()
            .zip(&p)
            .all(|(r, p)| r == p || (r.starts_with('{') && !p.is_empty()))
}

#[test]
fn every_route_is_documented_and_every_control_endpoint_has_a_walkthrough_example() {
    let doc = repo_file("docs/sandbox.md");
    let routes = routes(&repo_file("crates/sandbox/src/lib.rs"));
    assert!(routes.len() >= 30, "the router went missing: {routes:?}");
    let blocks = walkthrough(&doc);
    assert!(blocks.len() >= 20, "the walk-through went missing");
    let script: String = blocks.iter().map(|b| b.code.as_str()).collect();
    let calls = curl_calls(&script);
    let documented = unnamed(&doc);
    for (method, path) in &routes {
        assert!(
            documented.contains(&unnamed(path)),
            "docs/sandbox.md does not mention the route {method} {path}"
        );
        let control = path.starts_with("/sandbox") || path.starts_with("/oauth2");
        if control {
            assert!(
                calls.iter().any(|(m, p)| m == method && fits(path, p)),
                "the walk-through has no curl example of {method} {path}"
            );
        }
    }
    // And the other way round: every curl call of the walk-through is a route.
    for (method, path) in &calls {
        assert!(
            routes.iter().any(|(m, r)| m == method && fits(r, path)),
            "the walk-through calls {method} {path}, which the sandbox does not serve"
        );
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[test]
fn the_walkthrough_runs_against_a_live_sandbox() {
    for tool in ["bash", "curl", "jq"] {
        assert!(
            on_path(tool),
            "the walk-through of docs/sandbox.md needs {tool}; install it"
        );
    }
    let blocks = walkthrough(&repo_file("docs/sandbox.md"));
    // State in memory, SFTP on a free port (the walk-through's SFTP endpoints).
    let sandbox = support::start(&["--sftp-listen", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("jianlian")).unwrap();
    // curl reads $CURL_HOME/.curlrc: an HTTP error fails the command (the
    // pasted commands use plain `curl -s`).
    std::fs::write(
        dir.path().join(".curlrc"),
        "fail-with-body\nshow-error\nmax-time = 60\n",
    )
    .unwrap();
    // Strict bash: a failing command, pipe or substitution stops the script,
    // and `jq -e` makes a missing id (null) a failure.
    let mut script = String::from(
        "set -euo pipefail\nshopt -s inherit_errexit\njq() { command jq -e \"$@\"; }\nset -x\n",
    );
    let mut skipped = Vec::new();
    for block in &blocks {
        if block.needs.iter().all(|tool| on_path(tool)) {
            script.push_str(&block.code);
        } else {
            skipped.push(block.needs.join(" "));
        }
    }
    let path: PathBuf = bin;
    let search = std::env::join_paths(std::iter::once(path).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", search)
        .env("CURL_HOME", dir.path())
        .env("S", &sandbox.base)
        .env("JIANLIAN_SANDBOX_URL", &sandbox.base)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let tail = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    assert!(
        out.status.success(),
        "the walk-through failed ({}).\n--- stdout (end) ---\n{}\n--- trace (end) ---\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    // What it did is there: the bill it fetched, the clearing file it saved.
    for file in ["bill.zip", "clearing.zip", "app/app_private_key.pem"] {
        let size = std::fs::metadata(dir.path().join(file)).map_or(0, |m| m.len());
        assert!(size > 0, "the walk-through did not leave {file}");
    }
    if !skipped.is_empty() {
        eprintln!("blocks skipped for want of: {skipped:?}");
    }
}
