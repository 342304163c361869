//! Helpers shared by the integration tests: the conformance folder, its keys
//! and its JSON vector files.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use jianlian_alipay::{PrivateKey, PublicKey};
use serde_json::Value;

/// `crates/alipay/tests/conformance`, a copy of the shared conformance vectors.
pub fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// A file of the conformance folder, as text.
pub fn read(relative: &str) -> String {
    let path = conformance_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn private_key(relative: &str) -> PrivateKey {
    PrivateKey::from_text(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

pub fn public_key(relative: &str) -> PublicKey {
    PublicKey::from_text(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// A vector file: one JSON array of cases.
pub fn cases(file: &str) -> Vec<Value> {
    match serde_json::from_str(&read(file)) {
        Ok(Value::Array(cases)) => cases,
        other => panic!("{file} is not a JSON array: {other:?}"),
    }
}

/// A string field of a case, or a panic naming the case and field.
pub fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field]
        .as_str()
        .unwrap_or_else(|| panic!("{}: field {field} is not a string", case["id"]))
}

/// A JSON object of strings as ordered pairs.
pub fn string_pairs(object: &Value) -> Vec<(String, String)> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or_else(|| panic!("{k} is not a string"));
            (k.clone(), v.to_owned())
        })
        .collect()
}
