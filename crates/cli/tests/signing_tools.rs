//! Proves the signing tools (`jianlian keys generate`, `sign`, `verify`) behave
//! as issue 2 specifies, by running the real binary: key files and their
//! modes, every key format, the conformance vectors and worked examples, exit
//! codes 0/1/2, and generated keys signing and verifying end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jianlian_alipay::form::{self, Charset, SignScope};
use jianlian_alipay::notify::Notification;
use jianlian_alipay::response::{ResponseCheck, ResponseError, verify_response};
use jianlian_alipay::{PrivateKey, PublicKey, SignType};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// What one run of the binary produced.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `jianlian args…` with `stdin` and waits for it to exit.
fn jianlian(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jianlian"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the jianlian binary starts");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // A writer thread: the child may exit (or fill its stdout) before reading all input.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn conformance(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../alipay/tests/conformance")
        .join(rel)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn vectors(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(conformance(file)).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn case<'a>(cases: &'a [Value], id: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// The query string of a request target.
fn query_of(target: &str) -> &str {
    target.split_once('?').map_or("", |(_, q)| q)
}

/// Writes the DER inside a PEM or bare base64 file to `dir/name`.
fn der_copy(source: &Path, dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(source).unwrap();
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let path = dir.join(name);
    std::fs::write(&path, BASE64.decode(b64.trim()).unwrap()).unwrap();
    path
}

/// Signs `params` with the `sign` tool and returns `(sign_content, sign)`.
fn sign_tool(key: &Path, extra: &[&str], stdin: &str) -> (String, String) {
    let mut args = vec!["sign", "--private-key", path_str(key)];
    args.extend_from_slice(extra);
    let run = jianlian(&args, stdin.as_bytes());
    run.assert_code(0);
    assert!(run.stdout.ends_with('\n') && run.stdout.matches('\n').count() == 1);
    let out: serde_json::Map<String, Value> = serde_json::from_str(&run.stdout).unwrap();
    let keys: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(keys, ["sign_content", "sign"], "exactly these two members");
    (
        text(&out["sign_content"]).to_owned(),
        text(&out["sign"]).to_owned(),
    )
}

/// Form-encodes `params` (UTF-8) in the given order.
fn form_body(params: &[(&str, &str)]) -> String {
    form::encode_pairs(params.iter().copied(), Charset::Utf8).unwrap()
}

/// A complete, well-formed request's parameters (what authenticate requires).
fn pay_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("app_id", "2021000000000001"),
        ("method", "alipay.trade.pay"),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2025-01-06 09:15:02"),
        ("version", "1.0"),
        (
            "biz_content",
            r#"{"out_trade_no":"T1","scene":"bar_code","auth_code":"28763443825664394","subject":"测试 A&B=C/ok+1 100%","total_amount":"88.88"}"#,
        ),
    ]
}

// ---------------------------------------------------------------------------
// keys generate
// ---------------------------------------------------------------------------

const KEY_FILES: [&str; 4] = [
    "app_private_key.pem",
    "app_private_key.txt",
    "app_public_key.pem",
    "app_public_key.txt",
];

#[test]
fn keys_generate_writes_four_forms_with_private_files_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/keys");
    let run = jianlian(&["keys", "generate", "--out", path_str(&out)], b"");
    run.assert_code(0);
    for name in KEY_FILES {
        assert!(
            run.stdout.contains(path_str(&out.join(name))),
            "stdout names {name}: {}",
            run.stdout
        );
    }
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let private_pem = read("app_private_key.pem");
    let private_txt = read("app_private_key.txt");
    let public_pem = read("app_public_key.pem");
    let public_txt = read("app_public_key.txt");
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    for one_line in [&private_txt, &public_txt] {
        assert!(!one_line.contains('\n') && !one_line.contains("-----"));
    }
    let key = PrivateKey::from_text(&private_pem).unwrap();
    assert_eq!(
        PrivateKey::from_text(&private_txt).unwrap().public_key(),
        key.public_key()
    );
    // The .txt form is bare PKCS#8 (what the Java SDK's PKCS8EncodedKeySpec reads).
    let der = BASE64.decode(&private_txt).unwrap();
    assert!(PrivateKey::from_pkcs8_der(&der).is_ok());
    assert_eq!(
        &PublicKey::from_text(&public_pem).unwrap(),
        key.public_key()
    );
    assert_eq!(public_txt, key.public_key().to_base64());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |name: &str| {
            std::fs::metadata(out.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("app_private_key.pem"), 0o600);
        assert_eq!(mode("app_private_key.txt"), 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !KEY_FILES.contains(&n.as_str()))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn keys_generate_refuses_to_overwrite_and_writes_nothing_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    std::fs::write(out.join("app_public_key.txt"), "mine").unwrap();
    let run = jianlian(&["keys", "generate", "--out", path_str(out)], b"");
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("app_public_key.txt") && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(out.join("app_public_key.txt")).unwrap(),
        "mine"
    );
    for name in &KEY_FILES[..3] {
        assert!(!out.join(name).exists(), "{name} was not written");
    }
}

#[test]
fn keys_generate_with_force_replaces_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = path_str(dir.path());
    jianlian(&["keys", "generate", "--out", out], b"").assert_code(0);
    let first = std::fs::read_to_string(dir.path().join("app_public_key.txt")).unwrap();
    let again = jianlian(&["keys", "generate", "--out", out], b"");
    assert_ne!(again.code, 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app_public_key.txt")).unwrap(),
        first
    );
    jianlian(&["keys", "generate", "--out", out, "--force"], b"").assert_code(0);
    let second = std::fs::read_to_string(dir.path().join("app_public_key.txt")).unwrap();
    assert_ne!(first, second, "a new pair was written");
    let private = std::fs::read_to_string(dir.path().join("app_private_key.pem")).unwrap();
    assert_eq!(
        PrivateKey::from_text(&private)
            .unwrap()
            .public_key()
            .to_base64(),
        second,
        "the replaced files belong together"
    );
}

#[test]
fn generated_keys_sign_and_verify_through_the_tools() {
    let dir = tempfile::tempdir().unwrap();
    jianlian(&["keys", "generate", "--out", path_str(dir.path())], b"").assert_code(0);
    let params = pay_params();
    let private_pem = dir.path().join("app_private_key.pem");
    let private_txt = dir.path().join("app_private_key.txt");
    let (content_pem, sign_pem) = sign_tool(&private_pem, &[], &form_body(&params));
    let (content_txt, sign_txt) = sign_tool(&private_txt, &[], &form_body(&params));
    assert_eq!((&content_pem, &sign_pem), (&content_txt, &sign_txt));

    let mut signed = params.clone();
    signed.push(("sign", &sign_pem));
    let body = form_body(&signed);
    for public in ["app_public_key.pem", "app_public_key.txt"] {
        let key = dir.path().join(public);
        let run = jianlian(
            &["verify", "request", "--public-key", path_str(&key)],
            body.as_bytes(),
        );
        run.assert_code(0);
        assert_eq!(run.stdout, format!("{content_pem}\n"));
    }

    // Any change to a signed value fails, and the rebuilt content shows it.
    let tampered = body.replace("88.88", "8.88");
    let key = dir.path().join("app_public_key.pem");
    let run = jianlian(
        &["verify", "request", "--public-key", path_str(&key)],
        tampered.as_bytes(),
    );
    run.assert_code(1);
    assert!(run.stdout.contains(r#""total_amount":"8.88""#));
    assert!(
        run.stderr
            .starts_with("invalid: 40002 isv.invalid-signature")
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    // A key from another pair does not verify.
    let other = conformance("keys/app_public.pem");
    jianlian(
        &["verify", "request", "--public-key", path_str(&other)],
        body.as_bytes(),
    )
    .assert_code(1);
}

// ---------------------------------------------------------------------------
// sign
// ---------------------------------------------------------------------------

#[test]
fn sign_reproduces_the_worked_example() {
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(conformance("worked-examples/canonical_request.json")).unwrap(),
    )
    .unwrap();
    let expected_content =
        std::fs::read_to_string(conformance("worked-examples/canonical_sign_content.txt")).unwrap();
    let expected_content = expected_content.trim_end_matches('\n');
    let expected_sign = text(&record["params"]["sign"]);
    assert!(expected_sign.starts_with("TVB2pJKtYiI3q2YgJ6b323PMjiBnyHnQ"));
    let key = conformance("worked-examples/keys/app_pkcs1.pem");

    // As a JSON object of strings (sign included: it is never signed).
    let json = serde_json::to_string(&record["params"]).unwrap();
    let (content, sign) = sign_tool(&key, &[], &json);
    assert_eq!(content, expected_content);
    assert_eq!(sign, expected_sign);

    // As the wire form: the captured query string and body joined.
    let wire = format!(
        "{}&{}\n",
        query_of(text(&record["raw_path"])),
        text(&record["raw_body"])
    );
    let (content, sign) = sign_tool(&key, &[], &wire);
    assert_eq!(content, expected_content);
    assert_eq!(sign, expected_sign);
}

#[test]
fn sign_matches_every_request_sign_vector() {
    for c in vectors("request_sign.json") {
        let id = text(&c["id"]);
        // jianlian signs the documented rule (blank values dropped, bytes in
        // the request charset); where SDKs differ from it the vector says so.
        let expected = if c["documented_rule"].is_object() {
            &c["documented_rule"]
        } else {
            &c["expected"]
        };
        let key = conformance(text(&c["private_key_file"]));
        let json = serde_json::to_string(&c["params"]).unwrap();
        let sign_type = text(&c["sign_type"]);
        let (content, sign) = sign_tool(&key, &["--sign-type", sign_type], &json);
        assert_eq!(content, text(&expected["sign_content"]), "{id}");
        assert_eq!(sign, text(&expected["sign"]), "{id}");
    }
}

#[test]
fn sign_accepts_every_private_key_format() {
    let cases = vectors("request_sign.json");
    let c = case(&cases, "rs-pay-rsa2-basic");
    let json = serde_json::to_string(&c["params"]).unwrap();
    let expected = text(&c["expected"]["sign"]);
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        conformance("keys/app_private_pkcs1.pem"),
        conformance("keys/app_private_pkcs1.b64"),
        conformance("keys/app_private_pkcs8.pem"),
        conformance("keys/app_private_pkcs8.b64"),
        der_copy(
            &conformance("keys/app_private_pkcs1.b64"),
            dir.path(),
            "pkcs1.der",
        ),
        der_copy(
            &conformance("keys/app_private_pkcs8.pem"),
            dir.path(),
            "pkcs8.der",
        ),
    ];
    for key in &keys {
        let (_, sign) = sign_tool(key, &[], &json);
        assert_eq!(sign, expected, "{}", key.display());
    }
    // The alipay pair's private key forms sign alike too.
    let alipay: Vec<String> = [
        "keys/alipay_private_pkcs1.pem",
        "keys/alipay_private_pkcs1.b64",
        "keys/alipay_private_pkcs8.pem",
        "keys/alipay_private_pkcs8.b64",
    ]
    .iter()
    .map(|k| sign_tool(&conformance(k), &[], &json).1)
    .collect();
    assert!(alipay.windows(2).all(|w| w[0] == w[1]));
    let alipay_public = PublicKey::from_text(
        &std::fs::read_to_string(conformance("keys/alipay_public.b64")).unwrap(),
    )
    .unwrap();
    let content = text(&c["expected"]["sign_content"]);
    alipay_public
        .verify(SignType::Rsa2, content.as_bytes(), &alipay[0])
        .unwrap();
}

#[test]
fn sign_decodes_form_input_once_with_plus_as_space() {
    let key = conformance("keys/app_private_pkcs8.pem");
    let (content, sign) = sign_tool(
        &key,
        &[],
        "subject=a+b%2Bc%2541&app_id=1&empty=&blank=%20&sign=ignored",
    );
    assert_eq!(content, "app_id=1&subject=a b+c%41");
    let (json_content, json_sign) = sign_tool(
        &key,
        &[],
        r#"{"subject":"a b+c%41","app_id":"1","empty":"","blank":" "}"#,
    );
    assert_eq!((content, sign), (json_content, json_sign));
}

#[test]
fn sign_type_comes_from_the_flag_or_the_parameter() {
    let key = conformance("keys/app_private_pkcs1.pem");
    let public =
        PublicKey::from_text(&std::fs::read_to_string(conformance("keys/app_public.pem")).unwrap())
            .unwrap();
    // The parameter decides when there is no flag.
    let (content, sign) = sign_tool(&key, &[], "a=1&sign_type=RSA");
    public
        .verify(SignType::Rsa, content.as_bytes(), &sign)
        .unwrap();
    // The flag decides when there is no parameter; RSA2 by default.
    let (content, sign) = sign_tool(&key, &["--sign-type", "RSA"], "a=1");
    public
        .verify(SignType::Rsa, content.as_bytes(), &sign)
        .unwrap();
    let (content, sign) = sign_tool(&key, &[], "a=1");
    public
        .verify(SignType::Rsa2, content.as_bytes(), &sign)
        .unwrap();
    // A flag that contradicts the signed parameter is refused.
    let run = jianlian(
        &[
            "sign",
            "--private-key",
            path_str(&key),
            "--sign-type",
            "RSA",
        ],
        b"a=1&sign_type=RSA2",
    );
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("contradicts the sign_type parameter RSA2")
    );
}

#[test]
fn sign_refuses_unusable_input_with_exit_2_naming_the_problem() {
    let private = conformance("keys/app_private_pkcs8.pem");
    let p = path_str(&private);
    let public = conformance("keys/app_public.pem");
    let aes = conformance("keys/aes_key.b64");
    let cases: Vec<(Vec<&str>, &str, String)> = vec![
        (
            vec!["sign", "--private-key", path_str(&public)],
            "a=1",
            format!(
                "error: {}: this is a public key or certificate, but a private key is needed\n",
                public.display()
            ),
        ),
        (
            vec!["sign", "--private-key", "no/such/app.pem"],
            "a=1",
            "error: no/such/app.pem: cannot read: ".to_owned(),
        ),
        (
            vec!["sign", "--private-key", path_str(&aes)],
            "a=1",
            format!("error: {}: not an RSA private key", aes.display()),
        ),
        (
            vec!["sign", "--private-key", p],
            "",
            "error: stdin is empty".to_owned(),
        ),
        (
            vec!["sign", "--private-key", p],
            r#"{"a":1}"#,
            "error: stdin: parameter a is a number, but every value must be a string".to_owned(),
        ),
        (
            vec!["sign", "--private-key", p],
            r#"{"a":"1","a":"2"}"#,
            "error: stdin: parameter a is given more than once".to_owned(),
        ),
        (
            vec!["sign", "--private-key", p],
            "a=1&a=2",
            "error: stdin: parameter a is given more than once".to_owned(),
        ),
        (
            vec!["sign", "--private-key", p],
            r#"["a"]"#,
            "error: stdin is not a JSON object".to_owned(),
        ),
        (
            vec!["sign", "--private-key", p],
            "a=1&charset=latin1",
            "error: stdin: ".to_owned(),
        ),
        (
            vec!["sign", "--private-key", p],
            "a=1&sign_type=SM2",
            "error: the sign_type parameter \"SM2\" is neither RSA2 nor RSA".to_owned(),
        ),
    ];
    for (args, stdin, expected) in cases {
        let run = jianlian(&args, stdin.as_bytes());
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(
            run.stderr.starts_with(&expected),
            "{args:?} {stdin:?}: stderr {:?} should start with {expected:?}",
            run.stderr
        );
    }
    let run = jianlian(&["sign", "--private-key", p, "--sign-type", "MD5"], b"a=1");
    assert_eq!(run.code, 2, "clap refuses an unknown sign type");
}

// ---------------------------------------------------------------------------
// verify request
// ---------------------------------------------------------------------------

fn verify_request(key: &Path, query: &str, body: &str) -> Run {
    jianlian(
        &[
            "verify",
            "request",
            "--public-key",
            path_str(key),
            "--query",
            query,
        ],
        body.as_bytes(),
    )
}

#[test]
fn verify_request_matches_every_captured_request() {
    for c in vectors("request_http.json") {
        let id = text(&c["id"]);
        let request = &c["request"];
        let key = conformance(text(&c["app_public_key_file"]));
        let run = verify_request(
            &key,
            query_of(text(&request["target"])),
            text(&request["body"]),
        );
        if c["valid"] == true {
            run.assert_code(0);
            assert_eq!(
                run.stdout,
                format!("{}\n", text(&c["sign_content"])),
                "{id}"
            );
        } else {
            assert_eq!(run.code, 1, "{id}: {run:?}");
            assert!(run.stderr.starts_with("invalid: "), "{id}: {}", run.stderr);
            assert_eq!(run.stderr.lines().count(), 1, "{id}: {}", run.stderr);
        }
    }
}

#[test]
fn verify_request_reproduces_the_worked_example() {
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(conformance("worked-examples/canonical_request.json")).unwrap(),
    )
    .unwrap();
    let expected =
        std::fs::read_to_string(conformance("worked-examples/canonical_sign_content.txt")).unwrap();
    let key = conformance("worked-examples/keys/app_pub.pem");
    // --query takes the whole origin-form target as well as the bare query.
    for query in [
        text(&record["raw_path"]).to_owned(),
        query_of(text(&record["raw_path"])).to_owned(),
        format!("?{}", query_of(text(&record["raw_path"]))),
        format!("http://127.0.0.1{}", text(&record["raw_path"])),
    ] {
        let run = verify_request(&key, &query, text(&record["raw_body"]));
        run.assert_code(0);
        assert_eq!(run.stdout.trim_end(), expected.trim_end());
        assert_eq!(run.stderr, "ok: the signature is valid\n");
    }
}

#[test]
fn verify_request_accepts_every_public_key_format() {
    let cases = vectors("request_http.json");
    let c = case(&cases, "rh-node4-trade-pay");
    let query = query_of(text(&c["request"]["target"]));
    let body = text(&c["request"]["body"]);
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        conformance("keys/app_public.pem"),
        conformance("keys/app_public.b64"),
        fixture("app_public_pkcs1.pem"),
        fixture("app_cert.pem"),
        der_copy(&conformance("keys/app_public.b64"), dir.path(), "spki.der"),
        der_copy(&fixture("app_cert.pem"), dir.path(), "cert.der"),
    ];
    for key in &keys {
        let run = verify_request(key, query, body);
        run.assert_code(0);
        assert_eq!(run.stdout, format!("{}\n", text(&c["sign_content"])));
    }
    // The certificate of another key fails as a signature, not as input.
    verify_request(&fixture("alipay_cert.pem"), query, body).assert_code(1);
}

#[test]
fn verify_request_says_when_the_sign_lost_its_plus_signs() {
    let cases = vectors("request_http.json");
    let c = case(&cases, "rh-node4-trade-pay");
    let query = query_of(text(&c["request"]["target"])).replace("%2B", "+");
    let run = verify_request(
        &conformance("keys/app_public.pem"),
        &query,
        text(&c["request"]["body"]),
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains("not percent-encoded (%2B)"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_request_shows_the_content_a_lenient_signature_covers() {
    let key = PrivateKey::from_text(
        &std::fs::read_to_string(conformance("keys/app_private_pkcs8.pem")).unwrap(),
    )
    .unwrap();
    let public = conformance("keys/app_public.pem");

    // charset=GBK, but the UTF-8 bytes were signed (what the Node SDK does).
    let mut params = pay_params();
    for (k, v) in &mut params {
        if *k == "charset" {
            *v = "GBK";
        }
    }
    let content = form::sign_content(params.iter().copied(), SignScope::Request, false);
    let sign = key.sign(SignType::Rsa2, content.as_bytes()).unwrap();
    params.push(("sign", &sign));
    let body = form::encode_pairs(params.iter().copied(), Charset::Gbk).unwrap();
    assert!(body.contains("%B2%E2%CA%D4"), "the body is GBK on the wire");
    let run = verify_request(&public, "", &body);
    run.assert_code(0);
    assert_eq!(run.stdout, format!("{content}\n"));
    assert!(
        run.stderr
            .contains("the signature covers the UTF-8 bytes although charset is GBK"),
        "{}",
        run.stderr
    );

    // An empty value kept in the signed content (the Node SDK sends and signs it).
    let mut params = pay_params();
    params.push(("return_url", ""));
    let kept = form::sign_content(params.iter().copied(), SignScope::Request, true);
    assert!(kept.contains("&return_url=&"));
    let sign = key.sign(SignType::Rsa2, kept.as_bytes()).unwrap();
    params.push(("sign", &sign));
    let run = verify_request(&public, "", &form_body(&params));
    run.assert_code(0);
    assert_eq!(run.stdout, format!("{kept}\n"));
    assert!(run.stderr.contains("covers empty values"), "{}", run.stderr);
}

#[test]
fn verify_request_reports_what_the_gateway_refuses() {
    let key = conformance("keys/app_public.pem");
    let app_key = conformance("keys/app_private_pkcs8.pem");
    // Signed correctly but missing `version`, or with a malformed timestamp:
    // the signature is valid (exit 0); a note says what the gateway refuses.
    for (drop, replace, refusal) in [
        ("version", None, "40001 isv.missing-version"),
        (
            "",
            Some(("timestamp", "2025/01/06 09:15")),
            "40002 isv.invalid-timestamp",
        ),
        ("app_id", None, "40001 isv.missing-app-id"),
    ] {
        let mut params = pay_params();
        params.retain(|(k, _)| *k != drop);
        if let Some((name, value)) = replace {
            params.iter_mut().find(|(k, _)| *k == name).unwrap().1 = value;
        }
        let (content, sign) = sign_tool(&app_key, &[], &form_body(&params));
        params.push(("sign", &sign));
        let run = verify_request(&key, "", &form_body(&params));
        run.assert_code(0);
        assert_eq!(run.stdout, format!("{content}\n"), "{refusal}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{}", run.stderr);
        assert!(
            lines[0].starts_with("note: the gateway would still refuse the request: ")
                && lines[0].contains(refusal),
            "{}",
            run.stderr
        );
        assert_eq!(lines[1], "ok: the signature is valid");
    }
    // The same request missing `version` but with a signature over other
    // content: the signature is what fails.
    let mut params = pay_params();
    params.retain(|(k, _)| *k != "version");
    let (_, sign) = sign_tool(&app_key, &[], &form_body(&pay_params()));
    params.push(("sign", &sign));
    let run = verify_request(&key, "", &form_body(&params));
    run.assert_code(1);
    assert!(
        run.stderr.starts_with(
            "invalid: 40002 isv.invalid-signature: the signature (RSA2) does not match"
        ),
        "{}",
        run.stderr
    );
    // No app_id and no sign at all.
    let run = verify_request(&key, "a=1", "");
    run.assert_code(1);
    assert!(
        run.stderr
            .starts_with("invalid: the request is not signed (no sign)")
            && run.stderr.contains("40001 isv.missing-app-id"),
        "{}",
        run.stderr
    );
    // A sign without a usable sign_type cannot be checked.
    let mut params = pay_params();
    params.retain(|(k, _)| *k != "sign_type");
    let (_, sign) = sign_tool(&app_key, &["--sign-type", "RSA2"], &form_body(&params));
    params.push(("sign", &sign));
    let run = verify_request(&key, "", &form_body(&params));
    run.assert_code(1);
    assert!(
        run.stderr.contains("sign_type is missing")
            && run.stderr.contains("40001 isv.missing-signature-type"),
        "{}",
        run.stderr
    );
}

#[cfg(target_os = "linux")]
#[test]
fn verify_and_sign_exit_2_when_stdout_cannot_be_written() {
    // /dev/full refuses every write (ENOSPC): the result is lost, which must
    // not read as "invalid signature" (1) or as success (0).
    let cases = vectors("request_http.json");
    let c = case(&cases, "rh-node4-trade-pay");
    let key = conformance("keys/app_public.pem");
    let private = conformance("keys/app_private_pkcs8.pem");
    let runs: [(Vec<&str>, &str); 2] = [
        (
            vec![
                "verify",
                "request",
                "--public-key",
                path_str(&key),
                "--query",
                query_of(text(&c["request"]["target"])),
            ],
            text(&c["request"]["body"]),
        ),
        (vec!["sign", "--private-key", path_str(&private)], "a=1"),
    ];
    for (args, stdin) in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jianlian"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot write to stdout"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn verify_refuses_unusable_keys_and_arguments_with_exit_2() {
    let private = conformance("keys/app_private_pkcs1.pem");
    let run = verify_request(&private, "a=1", "");
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: {}: this is a private key, but a public key is needed (share only the public half)\n",
            private.display()
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let private_der = der_copy(&private, dir.path(), "app.der");
    let run = verify_request(&private_der, "a=1", "");
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("this is a private key, but a public key is needed")
    );

    let run = verify_request(Path::new("missing.pem"), "a=1", "");
    run.assert_code(2);
    assert!(run.stderr.starts_with("error: missing.pem: cannot read"));

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key at all!").unwrap();
    let run = verify_request(&garbage, "a=1", "");
    run.assert_code(2);
    assert!(
        run.stderr.starts_with(&format!(
            "error: {}: the key is neither PEM nor base64",
            garbage.display()
        )),
        "{}",
        run.stderr
    );

    // A response without --method is unusable.
    let key = conformance("keys/alipay_public.pem");
    let run = jianlian(
        &["verify", "response", "--public-key", path_str(&key)],
        b"{}",
    );
    run.assert_code(2);
    assert!(run.stderr.contains("--method"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------
// verify response
// ---------------------------------------------------------------------------

fn verify_response_tool(key: &Path, method: &str, sign_type: &str, body: &[u8]) -> Run {
    jianlian(
        &[
            "verify",
            "response",
            "--public-key",
            path_str(key),
            "--method",
            method,
            "--sign-type",
            sign_type,
        ],
        body,
    )
}

fn response_body(c: &Value) -> Vec<u8> {
    let mut body = match c["body_prefix_bytes_hex"].as_str() {
        Some(hex) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
        None => Vec::new(),
    };
    body.extend_from_slice(text(&c["body"]).as_bytes());
    body
}

#[test]
fn verify_response_agrees_with_the_protocol_crate_on_every_vector() {
    for c in vectors("response_verify.json") {
        let id = text(&c["id"]);
        let key_file = conformance(text(&c["alipay_public_key_file"]));
        let key = PublicKey::from_text(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
        let sign_type = SignType::parse(text(&c["client_sign_type"])).unwrap();
        let method = text(&c["method"]);
        let body = response_body(&c);
        let library = verify_response(
            std::str::from_utf8(&body).unwrap(),
            method,
            ResponseCheck::new(&key, sign_type),
        );
        let library_valid = matches!(library, Ok(_) | Err(ResponseError::Decrypt(_)));
        let run = verify_response_tool(&key_file, method, sign_type.as_str(), &body);
        assert_eq!(run.code, if library_valid { 0 } else { 1 }, "{id}: {run:?}");
        if library_valid && c["signed_content"].is_string() {
            assert_eq!(
                run.stdout,
                format!("{}\n", text(&c["signed_content"])),
                "{id}"
            );
        }
        // Where the official SDKs and the bytes all agree, so must we, except
        // for the `\/` fallback jianlian takes from the Java SDK (protocol.md §4.1).
        let accepted: Vec<bool> = c["accepted_by"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_bool)
            .collect();
        let unanimous = accepted.windows(2).all(|w| w[0] == w[1]);
        let over_node = c["signature_over_first_node_text"].as_bool();
        let java_fallback = id == "rv-escaped-slashes-signed-unescaped";
        if unanimous && over_node == accepted.first().copied() && !java_fallback {
            assert_eq!(run.code == 0, accepted[0], "{id}");
        }
    }
}

#[test]
fn verify_response_verdicts_that_do_not_depend_on_policy() {
    let cases = vectors("response_verify.json");
    let key = conformance("keys/alipay_public.pem");
    let run_case = |id: &str, key: &Path| {
        let c = case(&cases, id);
        let run = verify_response_tool(
            key,
            text(&c["method"]),
            text(&c["client_sign_type"]),
            &response_body(c),
        );
        (run, c.clone())
    };
    let (run, c) = run_case("rv-compact-ok", &key);
    run.assert_code(0);
    assert_eq!(run.stdout, format!("{}\n", text(&c["signed_content"])));
    // A certificate carrying Alipay's key verifies as well.
    run_case("rv-compact-ok", &fixture("alipay_cert.pem"))
        .0
        .assert_code(0);
    let (run, _) = run_case("rv-rsa-sha1-client-rsa", &key);
    run.assert_code(0);
    let (run, _) = run_case("rv-body-changed-after-signing", &key);
    run.assert_code(1);
    assert!(
        run.stderr
            .starts_with("invalid: the sign does not match the node text above")
    );
    run_case("rv-signed-with-wrong-key", &key).0.assert_code(1);
    let (run, _) = run_case("rv-unsigned-success", &key);
    run.assert_code(1);
    assert_eq!(run.stderr, "invalid: the response is not signed\n");
    let (run, c) = run_case("rv-encrypted-node", &key);
    run.assert_code(0);
    assert_eq!(run.stdout, format!("{}\n", text(&c["signed_content"])));
    assert!(run.stderr.contains("AES-encrypted"));

    // The same RSA2 body checked as RSA fails.
    let c = case(&cases, "rv-compact-ok");
    verify_response_tool(&key, text(&c["method"]), "RSA", &response_body(c)).assert_code(1);
}

#[test]
fn verify_response_reproduces_the_worked_example() {
    let http = std::fs::read_to_string(conformance("worked-examples/canonical_response_http.txt"))
        .unwrap();
    let (_, body) = http
        .split_once("\r\n\r\n")
        .or_else(|| http.split_once("\n\n"))
        .unwrap();
    let key = conformance("worked-examples/keys/alipay_pub.pem");
    let run = verify_response_tool(&key, "alipay.trade.pay", "RSA2", body.as_bytes());
    run.assert_code(0);
    let (_, after_key) = body.split_once("\"alipay_trade_pay_response\":").unwrap();
    let (node, _) = after_key.rsplit_once(",\"sign\"").unwrap();
    assert!(node.starts_with(r#"{"code":"10000","msg":"Success","buyer_logon_id""#));
    assert_eq!(run.stdout, format!("{node}\n"));
    // The method names the node: another method finds none, which is unusable input.
    let run = verify_response_tool(&key, "alipay.trade.query", "RSA2", body.as_bytes());
    run.assert_code(2);
    assert!(
        run.stderr.contains("alipay_trade_query_response"),
        "{}",
        run.stderr
    );
    let run = verify_response_tool(&key, "alipay.trade.pay", "RSA2", b"<html>busy</html>");
    run.assert_code(2);
    assert!(
        run.stderr
            .starts_with("error: stdin: the body is not a JSON object")
    );
}

// ---------------------------------------------------------------------------
// verify notify
// ---------------------------------------------------------------------------

fn verify_notify_tool(key: &Path, extra: &[&str], body: &[u8]) -> Run {
    let mut args = vec!["verify", "notify", "--public-key", path_str(key)];
    args.extend_from_slice(extra);
    jianlian(&args, body)
}

#[test]
fn verify_notify_agrees_with_the_protocol_crate_on_every_vector() {
    for c in vectors("notify_verify.json") {
        let id = text(&c["id"]);
        let key_file = conformance(text(&c["alipay_public_key_file"]));
        let key = PublicKey::from_text(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
        let body = text(&c["body"]).as_bytes();
        let run = verify_notify_tool(&key_file, &[], body);
        match Notification::parse(body) {
            Ok(n) => {
                let library_valid = n.verify(&key, None).is_ok();
                assert_eq!(run.code, if library_valid { 0 } else { 1 }, "{id}: {run:?}");
                if !library_valid {
                    assert_eq!(run.stdout, format!("{}\n", n.sign_content()), "{id}");
                }
            }
            Err(_) => assert_eq!(run.code, 1, "{id}: a repeated field is refused"),
        }
        // Where the official SDKs agree with the documented rule, so must we.
        if c["sdks_agree"] == true && c["valid"] == c["documented_rule_valid"] {
            assert_eq!(run.code == 0, c["valid"] == true, "{id}");
        }
        if run.code == 0 {
            assert_eq!(
                run.stdout,
                format!("{}\n", text(&c["sign_content"])),
                "{id}"
            );
        } else {
            assert_eq!(run.stderr.lines().count(), 1, "{id}: {}", run.stderr);
        }
    }
}

#[test]
fn verify_notify_reproduces_the_worked_example_and_checks_the_sign_type() {
    let body = std::fs::read(conformance("worked-examples/notify_body.txt")).unwrap();
    let expected =
        std::fs::read_to_string(conformance("worked-examples/notify_sign_content.txt")).unwrap();
    let key = conformance("worked-examples/keys/alipay_pub.pem");
    let run = verify_notify_tool(&key, &[], &body);
    run.assert_code(0);
    assert_eq!(run.stdout.trim_end(), expected.trim_end());
    verify_notify_tool(&key, &["--sign-type", "RSA2"], &body).assert_code(0);
    let run = verify_notify_tool(&key, &["--sign-type", "RSA"], &body);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("sign_type RSA2 is not the configured RSA"),
        "{}",
        run.stderr
    );

    let cases = vectors("notify_verify.json");
    let c = case(&cases, "nv-trade-success-basic");
    let run = verify_notify_tool(
        &fixture("alipay_cert.pem"),
        &[],
        text(&c["body"]).as_bytes(),
    );
    run.assert_code(0);
    let c = case(&cases, "nv-tampered-total-amount");
    let run = verify_notify_tool(
        &conformance("keys/alipay_public.b64"),
        &[],
        text(&c["body"]).as_bytes(),
    );
    run.assert_code(1);
    assert!(
        run.stderr
            .starts_with("invalid: the sign does not match the sign content above (RSA2)")
    );
}
