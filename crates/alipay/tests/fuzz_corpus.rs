//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through
//! the checks its fuzz target runs, so the normal test suite proves that the
//! response extractor, the notification parser and the yuan parser neither
//! panic nor break their invariants on any seed or past finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/src/alipay_checks.rs"]
mod alipay_checks;

use std::path::{Path, PathBuf};

/// The targets whose checks live in this crate. Other corpus folders (targets
/// of other crates) are replayed by those crates' tests.
const TARGETS: [&str; 3] = ["response_extractor", "notification_parser", "yuan_parser"];

/// Fewer seeds than this means the corpus went missing, not that it is small.
const SEEDS_MIN: usize = 20;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= SEEDS_MIN,
        "{}: only {} corpus files",
        dir.display(),
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).unwrap();
            std::panic::catch_unwind(|| check(&data))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(failures.is_empty(), "{target} fails on: {failures:#?}");
}

#[test]
fn response_extractor_corpus_replays_cleanly() {
    replay("response_extractor", alipay_checks::response_extractor);
}

#[test]
fn notification_parser_corpus_replays_cleanly() {
    replay("notification_parser", alipay_checks::notification_parser);
}

#[test]
fn yuan_parser_corpus_replays_cleanly() {
    replay("yuan_parser", alipay_checks::yuan_parser);
}

#[test]
fn every_alipay_target_has_a_corpus_folder() {
    let fuzz_targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for target in TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
        assert!(
            fuzz_targets.join(format!("{target}.rs")).is_file(),
            "no fuzz target {target}"
        );
    }
}
