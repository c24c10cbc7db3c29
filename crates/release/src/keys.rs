//! The update signing key: making it, and signing packages with it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use minisign::{KeyPair, SecretKeyBox};
use zeroize::Zeroizing;

use crate::ReleaseError;

/// Make `dir/update-key.{sec,pub,pub.b64}`; returns the base64 public key.
pub fn keygen(dir: &Path) -> Result<String, ReleaseError> {
    let sec = dir.join("update-key.sec");
    if sec.exists() {
        return Err(ReleaseError::KeyExists(sec));
    }
    std::fs::create_dir_all(dir).map_err(|e| ReleaseError::Io(dir.to_owned(), e))?;
    // minisign's own format; the empty password (no variable set) leaves the key unencrypted
    let password = std::env::var("CLAWTRAY_SIGNING_KEY_PASSWORD").unwrap_or_default();
    let KeyPair { pk, sk } = KeyPair::generate_encrypted_keypair(Some(password))
        .map_err(|e| ReleaseError::Sign(e.to_string()))?;
    let sk_text = Zeroizing::new(
        sk.to_box(Some("clawtray update signing key"))
            .map_err(|e| ReleaseError::Sign(e.to_string()))?
            .to_string(),
    );
    let pk_text = pk
        .to_box()
        .map_err(|e| ReleaseError::Sign(e.to_string()))?
        .to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pk_text.as_bytes());
    write_private(&sec, sk_text.as_bytes())?;
    let write = |p: PathBuf, s: &str| std::fs::write(&p, s).map_err(|e| ReleaseError::Io(p, e));
    write(dir.join("update-key.pub"), &pk_text)?;
    write(dir.join("update-key.pub.b64"), &b64)?;
    Ok(b64)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| ReleaseError::Io(path.to_owned(), e))
}

/// Sign each package: `<package>.sig` beside it.
pub fn sign_all(key: &Path, packages: &[PathBuf]) -> Result<(), ReleaseError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(key).map_err(|e| ReleaseError::Io(key.to_owned(), e))?,
    );
    let bad = |e: minisign::PError| ReleaseError::BadKey(key.to_owned(), e.to_string());
    let sk_box = SecretKeyBox::from_string(&text).map_err(bad)?;
    // an unencrypted key opens with the empty password (never a prompt: this runs in scripts)
    let password = std::env::var("CLAWTRAY_SIGNING_KEY_PASSWORD").unwrap_or_default();
    let sk = sk_box.into_secret_key(Some(password)).map_err(bad)?;
    for p in packages {
        let file = std::fs::File::open(p).map_err(|e| ReleaseError::Io(p.clone(), e))?;
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let trusted = format!("file:{}", name.unwrap_or_default());
        let sig = minisign::sign(None, &sk, file, Some(&trusted), None)
            .map_err(|e| ReleaseError::Sign(e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_string().as_bytes());
        let out = sig_path(p);
        std::fs::write(&out, b64).map_err(|e| ReleaseError::Io(out.clone(), e))?;
        eprintln!("signed {}", p.display());
    }
    Ok(())
}

/// `<package>.sig`.
pub fn sig_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}
