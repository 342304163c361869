//! The SFTP bill server (R11.3) as real clients see it: the russh-sftp client
//! and OpenSSH's `sftp` log in with the credentials set through the control
//! API (password or ed25519 key), check the host key, list `download/`, fetch
//! `download/YYYYMMDD/<pid>0156_YYYYMMDD.zip` byte-identical to the file the
//! sandbox serves over HTTP, cannot write, cannot see another acquirer's
//! files, and wrong credentials are refused. Host key and bills survive a
//! restart on the same state directory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::OpenFlags;

use jianlian_alipay::{ManualClock, PrivateKey as RsaKey};
use jianlian_sandbox::{AppSpec, BillingOptions, BuyerSpec, Sandbox, SandboxConfig, SftpUserSpec};

use crate::bill_support::*;
use crate::common::*;

const PASSWORD: &str = "bill-reader-2026";

fn ssh_key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

/// A TestApp whose sandbox also serves SFTP (state in `state`, if given).
async fn sftp_app(state: Option<&Path>, alipay: Option<RsaKey>) -> TestApp {
    let clock = ManualClock::at_beijing(START).unwrap();
    let config = SandboxConfig {
        state_dir: state.map(Path::to_owned),
        alipay_private_key: alipay,
        ..SandboxConfig::for_tests(clock.clone())
    };
    let options = BillingOptions {
        sftp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Default::default()
    };
    let sandbox = Sandbox::start_with(config, options).await.unwrap();
    let key = app_key();
    let app = sandbox
        .create_app(AppSpec {
            app_public_key: Some(key.public_key().to_pem()),
            ..Default::default()
        })
        .await
        .unwrap();
    let client = client_for(&sandbox, &app, &key, &clock);
    let alipay_key = sandbox.alipay_public_key();
    let mut t = TestApp {
        sandbox,
        clock,
        app,
        key,
        alipay_key,
        client,
        smid: String::new(),
    };
    t.smid = t.onboard("M0001").await;
    t
}

/// Trades on 2026-03-02 and the bill written at 09:00 on the 3rd.
async fn billed_day(t: &TestApp) {
    let buyer = t.buyer(BuyerSpec::default()).await;
    for (otn, amount) in [("S1", "12.34"), ("S2", "56.78")] {
        let code = t.code(&buyer).await;
        assert!(t.call(&t.pay_req(otn, amount, &code)).await.is_success());
    }
    advance_to(t, "2026-03-03 09:00:00").await;
}

struct Client {
    host_key: String,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.to_openssh().is_ok_and(|k| k == self.host_key)
            }
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

enum Cred<'a> {
    Password(&'a str),
    Key(&'a PrivateKey),
}

/// An SFTP session and the SSH connection under it.
struct Conn {
    sftp: SftpSession,
    _ssh: russh::client::Handle<Client>,
}

impl std::ops::Deref for Conn {
    type Target = SftpSession;
    fn deref(&self) -> &SftpSession {
        &self.sftp
    }
}

/// Logs in; `None` when the server refused the credentials.
async fn login(t: &TestApp, user: &str, cred: Cred<'_>) -> Option<Conn> {
    let info = t.sandbox.sftp().unwrap().clone();
    let client = Client {
        host_key: info.host_public_key.clone(),
    };
    let config = Arc::new(russh::client::Config::default());
    let mut session = tokio::time::timeout(
        Duration::from_secs(30),
        russh::client::connect(config, info.addr, client),
    )
    .await
    .expect("connect within 30 s")
    .unwrap();
    let auth = match cred {
        Cred::Password(p) => session.authenticate_password(user, p).await.unwrap(),
        Cred::Key(k) => session
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(k.clone()), None))
            .await
            .unwrap(),
    };
    if !auth.success() {
        return None;
    }
    let channel = session.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    let sftp = SftpSession::new(channel.into_stream()).await.unwrap();
    Some(Conn {
        sftp,
        _ssh: session,
    })
}

async fn names(sftp: &SftpSession, path: &str) -> Vec<String> {
    let mut v: Vec<String> = sftp
        .read_dir(path)
        .await
        .unwrap()
        .map(|e| e.file_name())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_russh_sftp_client_fetches_the_bills_an_acquirer_may_see() {
    let t = sftp_app(None, None).await;
    billed_day(&t).await;
    let pid = t.app.pid.clone();
    let key = ssh_key(7);
    let view = t
        .sandbox
        .set_sftp_user(
            &pid,
            SftpUserSpec {
                password: Some(PASSWORD.into()),
                public_keys: vec![key.public_key().to_openssh().unwrap()],
            },
        )
        .await
        .unwrap();
    assert!(view.password_set);
    assert_eq!(view.public_keys.len(), 1);
    assert!(view.public_keys[0].starts_with("SHA256:"));

    let sftp = login(&t, &pid, Cred::Password(PASSWORD))
        .await
        .expect("password login");
    assert_eq!(sftp.canonicalize(".").await.unwrap(), "/");
    assert_eq!(names(&sftp, "/").await, ["download"]);
    assert_eq!(names(&sftp, "download").await, ["20260302"]);
    let clearing = format!("{pid}0156_20260302.zip");
    let trade = format!("{pid}0156_20260302.csv.zip");
    assert_eq!(
        names(&sftp, "download/20260302").await,
        [trade.clone(), clearing.clone()]
    );

    // Byte-identical to HTTP: the trade bill behind the download URL, the
    // clearing file behind the control API.
    let over_sftp = sftp
        .read(format!("download/20260302/{trade}"))
        .await
        .unwrap();
    assert_eq!(over_sftp, download(&t, "2026-03-02").await);
    let over_sftp = sftp
        .read(format!("/download/20260302/{clearing}"))
        .await
        .unwrap();
    let url = format!(
        "{}/sandbox/bills/{pid}/20260302/{clearing}",
        t.sandbox.base_url()
    );
    let over_http = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(over_sftp, over_http.to_vec());
    let bill = read(&over_sftp);
    assert_eq!(rows_of(&bill.detail, "交易").len(), 2);
    let meta = sftp
        .metadata(format!("download/20260302/{clearing}"))
        .await
        .unwrap();
    assert_eq!(meta.size, Some(over_http.len() as u64));

    // Read-only.
    assert!(
        sftp.open_with_flags(
            format!("download/20260302/{clearing}"),
            OpenFlags::WRITE | OpenFlags::TRUNCATE
        )
        .await
        .is_err()
    );
    assert!(sftp.create("download/new.zip").await.is_err());
    assert!(sftp.create_dir("download/x").await.is_err());
    assert!(
        sftp.remove_file(format!("download/20260302/{trade}"))
            .await
            .is_err()
    );
    assert!(sftp.read("download/20260301/x.zip").await.is_err());

    // The key works too; wrong password, wrong key, unknown user: refused.
    let by_key = login(&t, &pid, Cred::Key(&key)).await.expect("key login");
    assert_eq!(names(&by_key, "download").await, ["20260302"]);
    assert!(
        login(&t, &pid, Cred::Password("not-the-password"))
            .await
            .is_none()
    );
    assert!(login(&t, &pid, Cred::Key(&ssh_key(8))).await.is_none());
    assert!(
        login(&t, "2088000000000000", Cred::Password(PASSWORD))
            .await
            .is_none()
    );

    // Another acquirer sees its own (empty) download/ and nothing of ours.
    let other_key = app_key();
    let other = t
        .sandbox
        .create_app(AppSpec {
            app_public_key: Some(other_key.public_key().to_pem()),
            ..Default::default()
        })
        .await
        .unwrap();
    t.sandbox
        .set_sftp_user(
            &other.pid,
            SftpUserSpec {
                password: Some("other-acquirer-pw".into()),
                public_keys: vec![],
            },
        )
        .await
        .unwrap();
    let theirs = login(&t, &other.pid, Cred::Password("other-acquirer-pw"))
        .await
        .unwrap();
    assert!(names(&theirs, "download").await.is_empty());
    assert!(
        theirs
            .read(format!("download/20260302/{clearing}"))
            .await
            .is_err()
    );
    // Our password is not theirs.
    assert!(
        login(&t, &other.pid, Cred::Password(PASSWORD))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_when_set() {
    let t = sftp_app(None, None).await;
    let pid = t.app.pid.clone();
    let set = |spec: SftpUserSpec| {
        let s = &t.sandbox;
        let pid = pid.clone();
        async move { s.set_sftp_user(&pid, spec).await }
    };
    let err = |r: Result<_, jianlian_sandbox::SandboxError>| r.unwrap_err().to_string();
    assert!(err(set(SftpUserSpec::default()).await).contains("password"));
    assert!(
        err(set(SftpUserSpec {
            password: Some("short".into()),
            ..Default::default()
        })
        .await)
        .contains("8 to 128")
    );
    assert!(
        err(set(SftpUserSpec {
            public_keys: vec!["ssh-ed25519 nonsense".into()],
            ..Default::default()
        })
        .await)
        .contains("public_keys[0]")
    );
    let unknown = t
        .sandbox
        .set_sftp_user(
            "2088999999999999",
            SftpUserSpec {
                password: Some(PASSWORD.into()),
                ..Default::default()
            },
        )
        .await;
    assert!(err(unknown).contains("no acquirer"));
    // Over HTTP the password never comes back.
    let url = format!("{}/sandbox/sftp/users/{pid}", t.sandbox.base_url());
    let http = reqwest::Client::new();
    let put = http
        .put(&url)
        .body(format!("{{\"password\":\"{PASSWORD}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let text = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("\"password_set\":true") && !text.contains(PASSWORD),
        "{text}"
    );
    let info = reqwest::get(format!("{}/sandbox/sftp", t.sandbox.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        info.contains("ssh-ed25519 ") && info.contains("SHA256:"),
        "{info}"
    );
    let deleted = http
        .delete(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(deleted.contains("true"));
    assert!(login(&t, &pid, Cred::Password(PASSWORD)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_bills_and_credentials_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let alipay = RsaKey::generate_2048().unwrap();
    let t = sftp_app(Some(dir.path()), Some(alipay.clone())).await;
    billed_day(&t).await;
    t.sandbox
        .set_sftp_user(
            &t.app.pid,
            SftpUserSpec {
                password: Some(PASSWORD.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let host = t.sandbox.sftp().unwrap().host_public_key.clone();
    let before = download(&t, "2026-03-02").await;
    let pid = t.app.pid.clone();
    let TestApp { sandbox, .. } = t;
    sandbox.shutdown().await;

    let clock = ManualClock::at_beijing("2026-03-03 10:00:00").unwrap();
    let config = SandboxConfig {
        state_dir: Some(dir.path().to_owned()),
        alipay_private_key: Some(alipay),
        ..SandboxConfig::for_tests(clock)
    };
    let again = Sandbox::start_with(
        config,
        BillingOptions {
            sftp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.sftp().unwrap().host_public_key, host);
    let name = format!("{pid}0156_20260302.csv.zip");
    let file = again
        .bill_file(&pid, "2026-03-02".parse().unwrap(), &name)
        .await
        .unwrap();
    assert_eq!(file.to_vec(), before);
    assert!(again.shared().read(|c| c.st.sftp_users.contains_key(&pid)));
    // The bill is not written twice.
    assert_eq!(again.bills(Some(&pid), None).await.len(), 1);
    again.shutdown().await;
}

/// OpenSSH's `sftp` in batch mode, bounded by a timeout.
async fn openssh_sftp(args: &[String], batch: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let batch_file = dir.path().join("batch");
    std::fs::write(&batch_file, batch).unwrap();
    let mut cmd = tokio::process::Command::new("sftp");
    cmd.arg("-b").arg(&batch_file).args(args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("sftp finished within 60 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_sftp_fetches_the_same_bytes() {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v sftp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "OpenSSH's sftp is not installed, and CI must run this test (apt-get install openssh-client)"
        );
        eprintln!(
            "\n*** SKIPPED the OpenSSH half of the SFTP tests: `sftp` is not installed \
             (apt-get install openssh-client). The russh-sftp client tests still ran. ***\n"
        );
        return;
    }
    let t = sftp_app(None, None).await;
    billed_day(&t).await;
    let pid = t.app.pid.clone();
    let key = ssh_key(9);
    t.sandbox
        .set_sftp_user(
            &pid,
            SftpUserSpec {
                public_keys: vec![key.public_key().to_openssh().unwrap()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let info = t.sandbox.sftp().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("id_ed25519");
    std::fs::write(
        &key_file,
        key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The host key is pinned: StrictHostKeyChecking=yes against the key the
    // sandbox announces.
    let known = dir.path().join("known_hosts");
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {}\n",
            info.addr.port(),
            info.host_public_key
        ),
    )
    .unwrap();
    let args = |user: &str, key: &Path| -> Vec<String> {
        vec![
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known.display()),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            key.display().to_string(),
            "-P".into(),
            info.addr.port().to_string(),
            format!("{user}@127.0.0.1"),
        ]
    };
    let clearing = format!("{pid}0156_20260302.zip");
    let local = dir.path().join("fetched.zip");
    let out = openssh_sftp(
        &args(&pid, &key_file),
        &format!(
            "ls download\nls -l download/20260302\nget download/20260302/{clearing} {}\n",
            local.display()
        ),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sftp failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("20260302"), "{stdout}");
    assert!(stdout.contains(&clearing), "{stdout}");
    let http = t
        .sandbox
        .bill_file(&pid, "2026-03-02".parse().unwrap(), &clearing)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&local).unwrap(), http.to_vec());

    // Writing is refused (sftp -b stops at the failing command).
    let out = openssh_sftp(
        &args(&pid, &key_file),
        &format!("put {} download/20260302/mine.zip\n", local.display()),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A key the sandbox does not know is refused.
    let stranger = dir.path().join("id_stranger");
    std::fs::write(
        &stranger,
        ssh_key(10).to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&stranger, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = openssh_sftp(&args(&pid, &stranger), "ls download\n").await;
    assert!(!out.status.success());
}
