//! Signed updates, the part without I/O: the update manifest (the format of Tauri's updater, so
//! `tauri signer` keys and signatures work too), which of its packages fits this installation,
//! whether it is newer, and the minisign signature check against the public key built into the
//! app. Fetching, asking the person and running the package manager are the tray host's
//! (`crates/host/src/update.rs`).
//!
//! A manifest:
//! ```json
//! { "version": "0.2.0", "notes": "…", "pub_date": "2026-12-02T10:00:00Z",
//!   "platforms": { "linux-x86_64-deb": { "url": "https://…/clawtray_0.2.0_amd64.deb",
//!                                        "signature": "<base64 of the minisign .sig file>" } } }
//! ```
//! The public key is the base64 of minisign's public key file (as `tauri signer generate` and
//! `clawtray-release keygen` print it).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// Why an update was not offered or not installed: each a sentence for the person.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("this build of clawtray has no update key; updates come from your package manager")]
    NoKey,
    #[error("the update key built into clawtray is damaged ({0}); reinstall clawtray")]
    BadKey(String),
    #[error("the update server's answer is not an update manifest: {0}")]
    BadManifest(String),
    #[error("the update manifest offers nothing for this installation ({0})")]
    NoPackage(String),
    #[error("the update to {version} is not signed with clawtray's key ({why}); it was not installed and nothing changed")]
    BadSignature { version: String, why: String },
    #[error("the update server could not be reached: {0}")]
    Fetch(String),
    #[error("the update could not be installed: {0}")]
    Install(String),
}

/// One package in a manifest.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Package {
    pub url: String,
    /// base64 of the minisign signature file of the package's bytes.
    pub signature: String,
}

/// An update manifest, as served at the update URL.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub version: String,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub pub_date: Option<String>,
    pub platforms: BTreeMap<String, Package>,
}

/// What the manifest offers this installation: a newer version and its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub version: String,
    pub notes: Option<String>,
    pub package: Package,
}

/// How this copy of the app was installed: which of a manifest's packages fits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallKind {
    Deb,
    Rpm,
    /// From a tarball or a checkout: no package manager to install with.
    Unmanaged,
}

impl InstallKind {
    /// The manifest's platform key for this machine and kind (Tauri's names:
    /// `linux-x86_64-deb`, `linux-aarch64-rpm`, …).
    #[must_use]
    pub fn platform_key(self) -> String {
        let base = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
        match self {
            Self::Deb => format!("{base}-deb"),
            Self::Rpm => format!("{base}-rpm"),
            Self::Unmanaged => base,
        }
    }
}

/// Read a manifest and say whether it offers something newer than `current` for `kind`.
///
/// # Errors
/// [`UpdateError::BadManifest`] for JSON that is not a manifest or a version that is not
/// `MAJOR.MINOR.PATCH`; [`UpdateError::NoPackage`] when a newer version has no package for
/// `kind`.
pub fn offer(body: &[u8], current: &str, kind: InstallKind) -> Result<Option<Offer>, UpdateError> {
    let m: Manifest =
        serde_json::from_slice(body).map_err(|e| UpdateError::BadManifest(e.to_string()))?;
    let theirs = semver::Version::parse(m.version.trim_start_matches('v')).map_err(|e| {
        UpdateError::BadManifest(format!("version {:?} is not a version: {e}", m.version))
    })?;
    let ours = semver::Version::parse(current)
        .map_err(|e| UpdateError::BadManifest(format!("this build's version {current:?}: {e}")))?;
    if theirs <= ours {
        return Ok(None);
    }
    let key = kind.platform_key();
    let package = m.platforms.get(&key).cloned().ok_or_else(|| {
        UpdateError::NoPackage(format!(
            "{} has no {key} package; it lists {}",
            m.version,
            m.platforms.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    Ok(Some(Offer {
        version: theirs.to_string(),
        notes: m.notes,
        package,
    }))
}

/// The public key updates must be signed with.
pub struct UpdateKey(minisign_verify::PublicKey);

impl UpdateKey {
    /// From the base64 of a minisign public key file (`None`: this build has no key).
    ///
    /// # Errors
    /// [`UpdateError::NoKey`] or [`UpdateError::BadKey`].
    pub fn from_base64(key: Option<&str>) -> Result<Self, UpdateError> {
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(UpdateError::NoKey)?;
        let text = decode_text(key).map_err(UpdateError::BadKey)?;
        minisign_verify::PublicKey::decode(&text)
            .or_else(|_| minisign_verify::PublicKey::from_base64(key))
            .map(Self)
            .map_err(|e| UpdateError::BadKey(e.to_string()))
    }

    /// Check that `offer`'s signature covers `bytes` (the downloaded package).
    ///
    /// # Errors
    /// [`UpdateError::BadSignature`], saying why, for a signature that is malformed, made with
    /// another key or for other bytes.
    pub fn verify(&self, offer: &Offer, bytes: &[u8]) -> Result<(), UpdateError> {
        let bad = |why: String| UpdateError::BadSignature {
            version: offer.version.clone(),
            why,
        };
        let text = decode_text(&offer.package.signature).map_err(bad)?;
        let sig = minisign_verify::Signature::decode(&text)
            .map_err(|e| bad(format!("the signature is malformed: {e}")))?;
        self.0.verify(bytes, &sig, false).map_err(|e| {
            bad(match e {
                minisign_verify::Error::UnexpectedKeyId => "it was made with another key".into(),
                minisign_verify::Error::InvalidSignature => {
                    "it does not match the downloaded package".into()
                }
                e => e.to_string(),
            })
        })?;
        // The manifest's version is not signed, the comment is: it names the file signed, which
        // must be this version's package — an older signed package cannot pass for a newer one.
        let file = sig
            .trusted_comment()
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file:"))
            .ok_or_else(|| bad("its signed comment names no file".into()))?;
        if !names_version(file, &offer.version) {
            return Err(bad(format!(
                "it signs {file}, which is not version {}",
                offer.version
            )));
        }
        Ok(())
    }
}

/// Whether a package's file name carries `version` (`clawtray_0.2.0_amd64.deb`,
/// `clawtray-0.2.0-1.x86_64.rpm`).
fn names_version(file: &str, version: &str) -> bool {
    ["_", "-"].iter().any(|before| {
        ["_", "-", "."]
            .iter()
            .any(|after| file.contains(&format!("{before}{version}{after}")))
    })
}

/// base64 → UTF-8 text (a minisign key or signature file).
fn decode_text(b64: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "not text once decoded".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A key pair and a signature of b"package bytes" in a file named clawtray_0.2.0_amd64.deb,
    // made with `clawtray-release keygen` / `sign`; the secret key is not kept anywhere.
    const PUBKEY: &str = include_str!("../tests/data/update-key.pub.b64");
    const SIG: &str = include_str!("../tests/data/package.sig.b64");
    const OTHER_PUBKEY: &str = include_str!("../tests/data/other-key.pub.b64");

    fn manifest(version: &str, key: &str) -> String {
        format!(
            r#"{{"version":"{version}","notes":"n","platforms":{{"{key}":{{"url":"http://x/p.deb","signature":"{}"}}}}}}"#,
            SIG.trim()
        )
    }

    #[test]
    fn a_newer_version_with_a_package_for_us_is_offered() {
        let key = InstallKind::Deb.platform_key();
        let o = offer(
            manifest("0.2.0", &key).as_bytes(),
            "0.1.0",
            InstallKind::Deb,
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.version, "0.2.0");
        assert_eq!(o.package.url, "http://x/p.deb");
        assert_eq!(o.notes.as_deref(), Some("n"));
    }

    #[test]
    fn the_same_or_an_older_version_is_not_offered() {
        let key = InstallKind::Deb.platform_key();
        for v in ["0.1.0", "0.0.9", "v0.1.0"] {
            assert_eq!(
                offer(manifest(v, &key).as_bytes(), "0.1.0", InstallKind::Deb).unwrap(),
                None,
                "{v}"
            );
        }
        // semver order, not string order
        assert!(offer(
            manifest("0.10.0", &key).as_bytes(),
            "0.9.0",
            InstallKind::Deb
        )
        .unwrap()
        .is_some());
    }

    #[test]
    fn junk_and_missing_packages_are_sentences() {
        let e = offer(b"<html>", "0.1.0", InstallKind::Deb).unwrap_err();
        assert!(matches!(e, UpdateError::BadManifest(_)), "{e}");
        let e = offer(manifest("soon", "x").as_bytes(), "0.1.0", InstallKind::Deb).unwrap_err();
        assert!(e.to_string().contains("not a version"), "{e}");
        let e = offer(
            manifest("0.2.0", "windows-x86_64").as_bytes(),
            "0.1.0",
            InstallKind::Rpm,
        )
        .unwrap_err();
        assert!(e.to_string().contains("-rpm package"), "{e}");
    }

    fn offer_with(sig: &str) -> Offer {
        Offer {
            version: "0.2.0".into(),
            notes: None,
            package: Package {
                url: String::new(),
                signature: sig.into(),
            },
        }
    }

    #[test]
    fn the_signature_must_cover_the_bytes_with_our_key() {
        let key = UpdateKey::from_base64(Some(PUBKEY)).unwrap();
        key.verify(&offer_with(SIG), b"package bytes").unwrap();
        let e = key.verify(&offer_with(SIG), b"package bytez").unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let other = UpdateKey::from_base64(Some(OTHER_PUBKEY)).unwrap();
        let e = other
            .verify(&offer_with(SIG), b"package bytes")
            .unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
        let e = key
            .verify(&offer_with("bm9wZQ=="), b"package bytes")
            .unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
        let e = key
            .verify(&offer_with("%%%"), b"package bytes")
            .unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        // a good signature of another version's package
        let mut older = offer_with(SIG);
        older.version = "0.3.0".into();
        let e = key.verify(&older, b"package bytes").unwrap_err();
        assert!(e.to_string().contains("which is not version 0.3.0"), "{e}");
    }

    #[test]
    fn file_names_carry_versions() {
        assert!(names_version("clawtray_0.2.0_amd64.deb", "0.2.0"));
        assert!(names_version("clawtray-0.2.0-1.x86_64.rpm", "0.2.0"));
        assert!(!names_version("clawtray_0.2.0_amd64.deb", "0.2.1"));
        assert!(!names_version("clawtray_10.2.0_amd64.deb", "0.2.0"));
    }

    #[test]
    fn no_key_or_a_damaged_key_is_said() {
        assert_eq!(UpdateKey::from_base64(None).err(), Some(UpdateError::NoKey));
        assert_eq!(
            UpdateKey::from_base64(Some(" ")).err(),
            Some(UpdateError::NoKey)
        );
        assert!(matches!(
            UpdateKey::from_base64(Some("bm9wZQ==")).err(),
            Some(UpdateError::BadKey(_))
        ));
    }
}
