//! `jianlian keys generate`: a fresh RSA-2048 app key pair in the four forms
//! Alipay integrations need, and the key-file loading every signing tool shares
//! (so that each tool accepts every key format and names the file on error).

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use jianlian_alipay::cert::Certificate;
use jianlian_alipay::{KeyError, PrivateKey, PublicKey};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Write a new RSA-2048 app key pair: app_private_key.pem (PKCS#8),
    /// app_private_key.txt (one line of base64 PKCS#8, for the Java SDK and
    /// Alipay's tool), app_public_key.pem and app_public_key.txt (one line of
    /// base64 SPKI, to paste into Alipay's console).
    Generate {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace key files that already exist.
        #[arg(long)]
        force: bool,
    },
}

/// Largest key file read, in bytes: a PEM certificate chain is a few KiB, so
/// anything bigger is not a key.
const KEY_FILE_MAX_BYTES: u64 = 64 * 1024;

/// What `keys generate` writes, private halves first.
const FILE_NAMES: [&str; 4] = [
    "app_private_key.pem",
    "app_private_key.txt",
    "app_public_key.pem",
    "app_public_key.txt",
];

/// Private key files: readable by the owner only.
const PRIVATE_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

/// One file `keys generate` writes.
struct KeyFile {
    name: &'static str,
    what: &'static str,
    contents: String,
    mode: u32,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Generate { out, force } => generate(&out, force),
    }
}

fn generate(out: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if out.exists() && !out.is_dir() {
        bail!("{}: not a directory", out.display());
    }
    if !force {
        let existing: Vec<String> = FILE_NAMES
            .iter()
            .map(|name| out.join(name))
            .filter(|path| path.exists())
            .map(|path| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "refusing to overwrite {} (use --force to replace); nothing was written",
                existing.join(", ")
            );
        }
    }
    fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;

    let key = PrivateKey::generate_2048().map_err(|e| anyhow!("{e}"))?;
    let public = key.public_key();
    let [private_pem, private_txt, public_pem, public_txt] = FILE_NAMES;
    let files = [
        KeyFile {
            name: private_pem,
            what: "app private key, PKCS#8 PEM (secret)",
            contents: key.to_pkcs8_pem(),
            mode: PRIVATE_MODE,
        },
        KeyFile {
            name: private_txt,
            what: "app private key, one line of base64 PKCS#8 (secret; Java SDK form)",
            contents: key.to_pkcs8_base64(),
            mode: PRIVATE_MODE,
        },
        KeyFile {
            name: public_pem,
            what: "app public key, SPKI PEM",
            contents: public.to_pem(),
            mode: PUBLIC_MODE,
        },
        KeyFile {
            name: public_txt,
            what: "app public key, one line of base64 SPKI (paste into Alipay's console)",
            contents: public.to_base64(),
            mode: PUBLIC_MODE,
        },
    ];
    write_all_or_nothing(out, &files, force)?;

    let mut report = String::new();
    for file in &files {
        let path = out.join(file.name);
        let _ = writeln!(
            report,
            "wrote {}{}: {}",
            path.display(),
            mode_of(&path),
            file.what
        );
    }
    std::io::stdout()
        .lock()
        .write_all(report.as_bytes())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Writes every file under a temporary name first and only then moves them into
/// place (renames within one directory), so a failure while writing leaves no
/// partial key set behind. Without `force` the move is a hard link, which fails
/// rather than replace a file that appeared in the meantime, and undoes the
/// links already made.
fn write_all_or_nothing(dir: &Path, files: &[KeyFile], force: bool) -> anyhow::Result<()> {
    let pid = std::process::id();
    let temps: Vec<PathBuf> = files
        .iter()
        .map(|f| dir.join(format!(".{}.{pid}.tmp", f.name)))
        .collect();
    let cleanup = |paths: &[PathBuf]| {
        for path in paths {
            let _ = fs::remove_file(path);
        }
    };
    for (file, temp) in files.iter().zip(&temps) {
        if let Err(e) = write_new_file(temp, &file.contents, file.mode) {
            cleanup(&temps);
            return Err(e.context(format!("{}: cannot write", temp.display())));
        }
    }
    let mut placed: Vec<PathBuf> = Vec::new();
    for (file, temp) in files.iter().zip(&temps) {
        let target = dir.join(file.name);
        let result = if force {
            fs::rename(temp, &target)
        } else {
            fs::hard_link(temp, &target)
        };
        if let Err(e) = result {
            cleanup(&temps);
            if !force {
                cleanup(&placed);
            }
            return Err(anyhow!(e).context(format!("{}: cannot write", target.display())));
        }
        placed.push(target);
    }
    cleanup(&temps);
    Ok(())
}

/// ` (mode 0600)`: the permissions the file really has (the umask may narrow
/// what was asked for).
fn mode_of(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path) {
            return format!(" (mode {:04o})", meta.permissions().mode() & 0o777);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    String::new()
}

fn write_new_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Reads a key file: text (PEM or bare base64) or binary DER.
fn read_key_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.is_dir() {
        bail!("{}: is a directory, not a key file", path.display());
    }
    if meta.len() > KEY_FILE_MAX_BYTES {
        bail!(
            "{}: {} bytes is too large for a key file (at most {KEY_FILE_MAX_BYTES})",
            path.display(),
            meta.len()
        );
    }
    fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// A DER file starts with an ASN.1 SEQUENCE tag; PEM and base64 never do.
fn is_der(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
}

fn key_text<'a>(path: &Path, bytes: &'a [u8]) -> anyhow::Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| {
        anyhow!(
            "{}: neither PEM, base64 nor DER (the file is binary but not an ASN.1 structure)",
            path.display()
        )
    })
}

/// Loads an RSA private key in any form (PKCS#1 or PKCS#8; PEM, bare base64 or DER).
pub(crate) fn load_private_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let bytes = read_key_file(path)?;
    let parsed = if is_der(&bytes) {
        PrivateKey::from_der(&bytes)
    } else {
        PrivateKey::from_text(key_text(path, &bytes)?)
    };
    parsed.map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Loads an RSA public key in any form (SPKI or PKCS#1; PEM, bare base64 or
/// DER), or the key of an X.509 certificate (certificate mode).
pub(crate) fn load_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let bytes = read_key_file(path)?;
    let parsed = if is_der(&bytes) {
        PublicKey::from_der(&bytes).or_else(|key_err| {
            Certificate::from_der(&bytes)
                .map(|cert| cert.public_key().clone())
                .map_err(|_| {
                    if PrivateKey::from_der(&bytes).is_ok() {
                        KeyError::PrivateWherePublicExpected
                    } else {
                        key_err
                    }
                })
        })
    } else {
        PublicKey::from_text(key_text(path, &bytes)?)
    };
    parsed.map_err(|e| anyhow!("{}: {e}", path.display()))
}
