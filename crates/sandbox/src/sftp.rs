//! The SFTP bill server (R11.3): a real SSH server (russh) whose only
//! subsystem is a read-only SFTP view (russh-sftp) of the bill store, laid out
//! as Alipay lays it out: `download/YYYYMMDD/<pid>0156_YYYYMMDD.zip` (the
//! clearing file) next to `<pid>0156_YYYYMMDD.csv.zip` (the trade bill, the
//! same bytes the download URL serves).
//!
//! Each acquirer logs in as its PID with the password and/or public keys set
//! through the control API, and sees only its own files; every write is
//! refused. The host key (ed25519) is kept in the state directory so clients
//! can pin it across restarts. Public keys are ed25519 or ECDSA: russh is
//! built without RSA (the RustCrypto `rsa` crate has an open timing advisory).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use jiff::Timestamp;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::SandboxError;
use crate::bills::BillRecord;
use crate::sandbox::Shared;

/// The host key's file in the state directory (OpenSSH format, mode 0600).
pub const HOST_KEY_FILE: &str = "sftp_host_ed25519_key";
/// Concurrent SSH sessions; more are closed at once.
const SESSIONS_MAX: usize = 32;
/// Open SFTP handles per session.
const HANDLES_MAX: usize = 64;
/// Open channels per SSH connection (one SFTP subsystem each).
const CHANNELS_MAX: usize = 8;
/// Largest read answered at once.
const READ_MAX_BYTES: u32 = 256 * 1024;
/// Public keys per acquirer.
const KEYS_MAX: usize = 16;
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// PBKDF2-HMAC-SHA256 rounds for stored passwords: enough that the state file
/// does not give the password away, cheap enough for tests.
const PBKDF2_ROUNDS: u32 = 20_000;

/// An acquirer's SFTP credentials (the user name is the PID).
#[derive(Clone, Serialize, Deserialize)]
pub struct SftpUser {
    pub pid: String,
    /// `pbkdf2-sha256$rounds$salt$hash` (base64), never the password.
    pub password_hash: Option<String>,
    /// OpenSSH public key lines.
    pub public_keys: Vec<String>,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for SftpUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpUser")
            .field("pid", &self.pid)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "(..)"),
            )
            .field("public_keys", &self.public_keys.len())
            .finish()
    }
}

/// `PUT /sandbox/sftp/users/{pid}`: replaces the acquirer's credentials.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpUserSpec {
    #[serde(default)]
    pub password: Option<String>,
    /// OpenSSH public key lines (`ssh-ed25519 AAAA… comment`).
    #[serde(default)]
    pub public_keys: Vec<String>,
}

impl std::fmt::Debug for SftpUserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpUserSpec")
            .field("password", &self.password.as_ref().map(|_| "(..)"))
            .field("public_keys", &self.public_keys)
            .finish()
    }
}

/// What the control API shows of credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpUserView {
    pub username: String,
    pub password_set: bool,
    /// `SHA256:…` fingerprints of the accepted keys.
    pub public_keys: Vec<String>,
}

impl From<&SftpUser> for SftpUserView {
    fn from(u: &SftpUser) -> Self {
        SftpUserView {
            username: u.pid.clone(),
            password_set: u.password_hash.is_some(),
            public_keys: u
                .public_keys
                .iter()
                .filter_map(|k| PublicKey::from_openssh(k).ok())
                .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
                .collect(),
        }
    }
}

/// Where the SFTP server listens and how clients recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpInfo {
    pub addr: SocketAddr,
    /// The host key as an OpenSSH public key line (for `known_hosts`).
    pub host_public_key: String,
    /// `SHA256:…`.
    pub host_fingerprint: String,
}

fn hash_with(password: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    let rounds = std::num::NonZeroU32::new(rounds).unwrap_or(std::num::NonZeroU32::MIN);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

/// Hashes a password with a random salt.
pub fn hash_password(password: &str) -> Result<String, SandboxError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| SandboxError::Startup("no randomness for a password salt".to_owned()))?;
    let hash = hash_with(password, &salt, PBKDF2_ROUNDS);
    Ok(format!(
        "pbkdf2-sha256${PBKDF2_ROUNDS}${}${}",
        B64.encode(salt),
        B64.encode(hash)
    ))
}

/// Checks a password against a stored hash (in constant time).
pub fn verify_password(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(rounds), Ok(salt), Ok(hash)) = (rounds.parse(), B64.decode(salt), B64.decode(hash))
    else {
        return false;
    };
    let got = hash_with(password, &salt, rounds);
    aws_lc_rs::constant_time::verify_slices_are_equal(&got, &hash).is_ok()
}

/// Parses an OpenSSH public key line, refusing what the server cannot verify.
pub fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| format!("not an OpenSSH public key line ({e})"))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(key),
        other => Err(format!(
            "{} keys are not accepted: use ssh-ed25519 or ecdsa-sha2-nistp256/384/521",
            other.as_str()
        )),
    }
}

/// The host key: loaded from the state directory, or made (and saved there).
pub fn host_key(state_dir: Option<&Path>) -> Result<PrivateKey, SandboxError> {
    let startup = |m: String| SandboxError::Startup(m);
    let path = state_dir.map(|d| d.join(HOST_KEY_FILE));
    if let Some(p) = &path
        && p.exists()
    {
        let text = std::fs::read_to_string(p)
            .map_err(|e| startup(format!("reading {}: {e}", p.display())))?;
        return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
            startup(format!(
                "{} is not an OpenSSH private key: {e}",
                p.display()
            ))
        });
    }
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed)
        .map_err(|_| startup("no randomness for the SFTP host key".to_owned()))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    if let Some(p) = &path {
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| startup(format!("encoding the SFTP host key: {e}")))?;
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| startup(format!("creating {}: {e}", dir.display())))?;
        }
        write_private(p, text.as_bytes())
            .map_err(|e| startup(format!("writing {}: {e}", p.display())))?;
    }
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What the server says about itself.
pub fn info(addr: SocketAddr, key: &PrivateKey) -> SftpInfo {
    let public = key.public_key();
    SftpInfo {
        addr,
        host_public_key: public.to_openssh().unwrap_or_default(),
        host_fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
    }
}

/// Serves SSH/SFTP on `listener` until the returned task is aborted (which
/// also ends every session).
pub fn serve(listener: TcpListener, shared: Arc<Shared>, key: PrivateKey) -> JoinHandle<()> {
    let config = Arc::new(russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(300)),
        nodelay: true,
        ..Default::default()
    });
    tokio::spawn(async move {
        let mut sessions = JoinSet::new();
        loop {
            // Reap finished sessions so the set stays bounded.
            while sessions.try_join_next().is_some() {}
            let (socket, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("sftp accept: {e}");
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if sessions.len() >= SESSIONS_MAX {
                tracing::warn!(%peer, "sftp: {SESSIONS_MAX} sessions open, refusing another");
                drop(socket);
                continue;
            }
            let handler = SshSession {
                shared: shared.clone(),
                pid: None,
                channels: HashMap::new(),
            };
            let config = config.clone();
            sessions.spawn(async move {
                match russh::server::run_stream(config, socket, handler).await {
                    Ok(session) => {
                        if let Err(e) = session.await {
                            tracing::debug!(%peer, "sftp session ended: {e}");
                        }
                    }
                    Err(e) => tracing::debug!(%peer, "sftp handshake failed: {e}"),
                }
            });
        }
    })
}

/// One SSH connection.
struct SshSession {
    shared: Arc<Shared>,
    /// The authenticated acquirer.
    pid: Option<String>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl SshSession {
    fn knows_key(&self, user: &str, key: &PublicKey) -> bool {
        self.shared.read(|c| {
            c.st.sftp_users.get(user).is_some_and(|u| {
                u.public_keys
                    .iter()
                    .filter_map(|k| PublicKey::from_openssh(k).ok())
                    .any(|k| k.key_data() == key.key_data())
            })
        })
    }
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let stored = self.shared.read(|c| {
            c.st.sftp_users
                .get(user)
                .and_then(|u| u.password_hash.clone())
        });
        if stored.is_some_and(|h| verify_password(&h, password)) {
            self.pid = Some(user.to_owned());
            return Ok(Auth::Accept);
        }
        tracing::info!(user, "sftp: password refused");
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.knows_key(user, offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.knows_key(user, key.public_key) {
            self.pid = Some(user.to_owned());
            return Ok(Auth::Accept);
        }
        tracing::info!(user, "sftp: public key refused");
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() < CHANNELS_MAX {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        // Otherwise dropping `reply` refuses the channel.
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let channel = self.channels.remove(&channel_id);
        match (name, channel, &self.pid) {
            ("sftp", Some(channel), Some(pid)) => {
                session.channel_success(channel_id)?;
                let fs = BillFs {
                    shared: self.shared.clone(),
                    pid: pid.clone(),
                    handles: HashMap::new(),
                    next_handle: 0,
                };
                russh_sftp::server::run(channel.into_stream(), fs).await;
            }
            _ => session.channel_failure(channel_id)?,
        }
        Ok(())
    }
}

/// A path of the SFTP view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Root,
    Download,
    Day(String),
    File { key: String, size: u64, mtime: u32 },
}

enum Open {
    Dir { entries: Vec<File>, sent: bool },
    File { bytes: Bytes },
}

/// The read-only view of one acquirer's bills.
struct BillFs {
    shared: Arc<Shared>,
    pid: String,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

/// `/`-separated components with `.` and `..` resolved; relative paths start
/// at the root (the session's only directory).
fn components(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts
}

fn canonical(parts: &[&str]) -> String {
    format!("/{}", parts.join("/"))
}

fn dir_attrs(mtime: u32) -> FileAttributes {
    let mut a = FileAttributes {
        size: Some(0),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o555),
        atime: Some(mtime),
        mtime: Some(mtime),
        ..Default::default()
    };
    a.set_dir(true);
    a
}

fn file_attrs(size: u64, mtime: u32) -> FileAttributes {
    let mut a = FileAttributes {
        size: Some(size),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(0o444),
        atime: Some(mtime),
        mtime: Some(mtime),
        ..Default::default()
    };
    a.set_regular(true);
    a
}

fn epoch(at: Timestamp) -> u32 {
    u32::try_from(at.as_second()).unwrap_or(0)
}

impl BillFs {
    /// This acquirer's bills that have files, by date.
    fn records(&self) -> Vec<BillRecord> {
        let prefix = format!("{}/", self.pid);
        self.shared.read(|c| {
            c.st.bills
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, r)| r)
                .filter(|r| r.error.is_none() && !r.files.is_empty())
                .cloned()
                .collect()
        })
    }

    fn node(&self, parts: &[&str]) -> Result<Node, StatusCode> {
        match parts {
            [] => Ok(Node::Root),
            ["download"] => Ok(Node::Download),
            ["download", day] => self
                .records()
                .iter()
                .any(|r| crate::bills::ymd(r.date) == *day)
                .then(|| Node::Day((*day).to_owned()))
                .ok_or(StatusCode::NoSuchFile),
            ["download", day, name] => self
                .records()
                .iter()
                .filter(|r| crate::bills::ymd(r.date) == *day)
                .find_map(|r| {
                    r.files
                        .iter()
                        .find(|f| f.name == *name)
                        .map(|f| Node::File {
                            key: r.file_key(&f.name),
                            size: f.size,
                            mtime: epoch(r.generated_at),
                        })
                })
                .ok_or(StatusCode::NoSuchFile),
            _ => Err(StatusCode::NoSuchFile),
        }
    }

    fn attrs(&self, node: &Node) -> FileAttributes {
        match node {
            Node::Root | Node::Download => dir_attrs(0),
            Node::Day(day) => {
                let mtime = self
                    .records()
                    .iter()
                    .find(|r| crate::bills::ymd(r.date) == *day)
                    .map_or(0, |r| epoch(r.generated_at));
                dir_attrs(mtime)
            }
            Node::File { size, mtime, .. } => file_attrs(*size, *mtime),
        }
    }

    fn list(&self, node: &Node) -> Vec<File> {
        match node {
            Node::Root => vec![File::new("download", dir_attrs(0))],
            Node::Download => self
                .records()
                .iter()
                .map(|r| File::new(crate::bills::ymd(r.date), dir_attrs(epoch(r.generated_at))))
                .collect(),
            Node::Day(day) => self
                .records()
                .iter()
                .filter(|r| crate::bills::ymd(r.date) == *day)
                .flat_map(|r| {
                    r.files.iter().map(|f| {
                        File::new(f.name.clone(), file_attrs(f.size, epoch(r.generated_at)))
                    })
                })
                .collect(),
            Node::File { .. } => Vec::new(),
        }
    }

    fn add_handle(&mut self, open: Open) -> Result<String, StatusCode> {
        if self.handles.len() >= HANDLES_MAX {
            return Err(StatusCode::Failure);
        }
        self.next_handle += 1;
        let h = self.next_handle.to_string();
        self.handles.insert(h.clone(), open);
        Ok(h)
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

impl russh_sftp::server::Handler for BillFs {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let parts = components(&path);
        Ok(Name {
            id,
            files: vec![File::dummy(canonical(&parts))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let node = self.node(&components(&path))?;
        Ok(Attrs {
            id,
            attrs: self.attrs(&node),
        })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handles.get(&handle) {
            Some(Open::File { bytes }) => {
                file_attrs(u64::try_from(bytes.len()).unwrap_or(u64::MAX), 0)
            }
            Some(Open::Dir { .. }) => dir_attrs(0),
            None => return Err(StatusCode::Failure),
        };
        Ok(Attrs { id, attrs })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let node = self.node(&components(&path))?;
        if matches!(node, Node::File { .. }) {
            return Err(StatusCode::NoSuchFile);
        }
        let entries = self.list(&node);
        let handle = self.add_handle(Open::Dir {
            entries,
            sent: false,
        })?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir { entries, sent }) if !*sent => {
                *sent = true;
                Ok(Name {
                    id,
                    files: std::mem::take(entries),
                })
            }
            Some(Open::Dir { .. }) => Err(StatusCode::Eof),
            _ => Err(StatusCode::Failure),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        if pflags.intersects(
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
        ) {
            return Err(StatusCode::PermissionDenied);
        }
        let Node::File { key, .. } = self.node(&components(&filename))? else {
            return Err(StatusCode::Failure);
        };
        let bytes = match self.shared.bill_store.get(&key) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(StatusCode::NoSuchFile),
            Err(e) => {
                tracing::error!("sftp: reading {key}: {e}");
                return Err(StatusCode::Failure);
            }
        };
        let handle = self.add_handle(Open::File { bytes })?;
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File { bytes }) = self.handles.get(&handle) else {
            return Err(StatusCode::Failure);
        };
        let start = usize::try_from(offset).map_err(|_| StatusCode::Eof)?;
        if start >= bytes.len() {
            return Err(StatusCode::Eof);
        }
        let len = usize::try_from(len.min(READ_MAX_BYTES)).unwrap_or(0);
        let end = start.saturating_add(len).min(bytes.len());
        Ok(Data {
            id,
            data: bytes.slice(start..end).to_vec(),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.handles.remove(&handle);
        Ok(ok(id))
    }

    async fn write(
        &mut self,
        _id: u32,
        _handle: String,
        _offset: u64,
        _data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn remove(&mut self, _id: u32, _filename: String) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn rmdir(&mut self, _id: u32, _path: String) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn rename(
        &mut self,
        _id: u32,
        _oldpath: String,
        _newpath: String,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn setstat(
        &mut self,
        _id: u32,
        _path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn fsetstat(
        &mut self,
        _id: u32,
        _handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied)
    }
}

// ---- control operations ----

impl Shared {
    /// Sets (replaces) an acquirer's SFTP credentials.
    pub fn set_sftp_user(
        self: &Arc<Self>,
        pid: &str,
        spec: SftpUserSpec,
    ) -> Result<SftpUserView, SandboxError> {
        let bad = |m: String| SandboxError::BadRequest(m);
        if !self.read(|c| c.st.apps.values().any(|a| a.pid == pid)) {
            return Err(SandboxError::NotFound(format!(
                "no acquirer with PID {pid}"
            )));
        }
        if spec.password.is_none() && spec.public_keys.is_empty() {
            return Err(bad("give a password, public_keys, or both".to_owned()));
        }
        if spec.public_keys.len() > KEYS_MAX {
            return Err(bad(format!("at most {KEYS_MAX} public_keys")));
        }
        let mut keys = Vec::new();
        for (i, line) in spec.public_keys.iter().enumerate() {
            let key = parse_public_key(line).map_err(|e| bad(format!("public_keys[{i}]: {e}")))?;
            keys.push(
                key.to_openssh()
                    .map_err(|e| bad(format!("public_keys[{i}]: {e}")))?,
            );
        }
        let password_hash = match spec.password.as_deref() {
            Some(p) if !PASSWORD_LEN.contains(&p.chars().count()) => {
                return Err(bad(format!(
                    "password must have {} to {} characters",
                    PASSWORD_LEN.start(),
                    PASSWORD_LEN.end()
                )));
            }
            Some(p) => Some(hash_password(p)?),
            None => None,
        };
        let user = SftpUser {
            pid: pid.to_owned(),
            password_hash,
            public_keys: keys,
            updated_at: self.clock.now(),
        };
        let view = SftpUserView::from(&user);
        self.with(|c| c.put_sftp_user(user))?;
        Ok(view)
    }

    pub fn sftp_user(&self, pid: &str) -> Option<SftpUserView> {
        self.read(|c| c.st.sftp_users.get(pid).map(SftpUserView::from))
    }

    /// Removes an acquirer's credentials; false when it had none.
    pub fn delete_sftp_user(self: &Arc<Self>, pid: &str) -> Result<bool, SandboxError> {
        self.with(|c| {
            if c.st.sftp_users.contains_key(pid) {
                c.remove_sftp_user(pid);
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("s3cret-pass").unwrap();
        assert!(h.starts_with("pbkdf2-sha256$"));
        assert!(!h.contains("s3cret"));
        assert!(verify_password(&h, "s3cret-pass"));
        assert!(!verify_password(&h, "s3cret-pasS"));
        assert!(!verify_password("garbage", "s3cret-pass"));
        assert_ne!(h, hash_password("s3cret-pass").unwrap(), "salted");
    }

    #[test]
    fn paths_resolve_inside_the_view() {
        assert_eq!(
            components("/download/../download/./20260302"),
            vec!["download", "20260302"]
        );
        assert_eq!(components("../../etc"), vec!["etc"]);
        assert_eq!(canonical(&components(".")), "/");
    }

    #[test]
    fn host_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let a = host_key(Some(dir.path())).unwrap();
        let b = host_key(Some(dir.path())).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(HOST_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_ne!(host_key(None).unwrap().public_key(), a.public_key());
    }
}
