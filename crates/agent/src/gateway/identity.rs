//! The agent's device identity towards the gateway: an Ed25519 key persisted in the state dir
//! (0600, sealed under a key derived from the agent's static key when one is given — a file
//! written in clear by an older agent is sealed on first load), the device token the gateway
//! issues on first connect, and the v3 connect signature.
//!
//! `id` = lower-case hex SHA-256 of the raw public key; signature over
//! `v3|id|client.id|client.mode|role|scopes,|signedAt|token|nonce|platform|deviceFamily`.

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use clawtray_proto::secret::SecretKey;

use crate::error::{encode_err, AgentError, Result};
use crate::{at_rest, files};

/// What is stored in the identity file.
#[derive(Serialize, Deserialize)]
struct Stored {
    private_key: String,
    #[serde(default)]
    device_token: Option<String>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.private_key.zeroize();
        self.device_token.zeroize();
    }
}

/// The device identity.
pub struct DeviceIdentity {
    key: SigningKey,
    device_token: Option<String>,
    path: PathBuf,
    seal: Option<SecretKey>,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

fn b64url() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// What the signature covers besides the identity itself.
#[derive(Debug, Clone)]
pub struct SignedFields<'a> {
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [&'a str],
    pub signed_at_ms: u64,
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: &'a str,
}

impl DeviceIdentity {
    /// Load the identity at `path`, or create one; with `seal`, the file is kept sealed under
    /// it. A damaged file (or one sealed under another key) is set aside (with a warning) and
    /// replaced: the gateway then pairs the new device automatically on loopback.
    pub fn load_or_create(path: &Path, seal: Option<SecretKey>) -> Result<Self> {
        if let Some(bytes) = files::read_if_exists(path)? {
            match Self::parse(&bytes, path, seal.clone()) {
                Ok(id) => {
                    if id.seal.is_some() && bytes.first() == Some(&b'{') {
                        // written in clear by an older agent: seal it now
                        id.save()?;
                    }
                    return Ok(id);
                }
                Err(e) => {
                    let aside = files::set_aside(path);
                    tracing::warn!("the gateway identity file {} is damaged ({e}); moved to {aside} and a new identity was made", path.display());
                }
            }
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        clawtray_proto::secret::fill_random(&mut seed[..])?;
        let id = Self {
            key: SigningKey::from_bytes(&seed),
            device_token: None,
            path: path.to_owned(),
            seal: seal.clone(),
        };
        if files::create_private(path, &id.encode()?)? {
            Ok(id)
        } else {
            // another process created it first: use that one
            let bytes = std::fs::read(path).map_err(AgentError::io("read", path))?;
            Self::parse(&bytes, path, seal).map_err(|detail| AgentError::Damaged {
                what: "the gateway identity file",
                detail,
                aside: files::set_aside(path),
                remedy: "a new identity is made at the next start",
            })
        }
    }

    /// Read the file's bytes; the error is what is wrong with them (for [`AgentError::Damaged`]).
    fn parse(
        bytes: &[u8],
        path: &Path,
        seal: Option<SecretKey>,
    ) -> std::result::Result<Self, String> {
        let plain = if bytes.first() == Some(&b'{') {
            Zeroizing::new(bytes.to_vec())
        } else {
            seal.as_ref()
                .and_then(|k| at_rest::open(k, bytes))
                .ok_or("sealed under another key, or damaged")?
        };
        let stored: Stored = serde_json::from_slice(&plain)
            .map_err(|e| clawtray_proto::delivery::json_error_shape(&e))?;
        let raw = Zeroizing::new(
            b64url()
                .decode(&stored.private_key)
                .map_err(|_| "the private key is not base64url".to_owned())?,
        );
        let seed: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| "private key is not 32 bytes".to_owned())?;
        let seed = Zeroizing::new(seed);
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
            device_token: stored.device_token.clone(),
            path: path.to_owned(),
            seal,
        })
    }

    /// The file's bytes: the JSON, sealed when there is a sealing key.
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>> {
        let stored = Stored {
            private_key: b64url().encode(self.key.to_bytes()),
            device_token: self.device_token.clone(),
        };
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&stored).map_err(encode_err("the gateway identity"))?,
        );
        match &self.seal {
            Some(k) => Ok(Zeroizing::new(at_rest::seal(k, &json)?)),
            None => Ok(json),
        }
    }

    fn save(&self) -> Result<()> {
        files::write_private(&self.path, &self.encode()?)
    }

    /// `sha256(public key)` in lower-case hex.
    #[must_use]
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.verifying_key().as_bytes()))
    }

    /// The raw public key, base64url.
    #[must_use]
    pub fn public_key(&self) -> String {
        b64url().encode(self.key.verifying_key().as_bytes())
    }

    /// The device token the gateway issued, if any.
    #[must_use]
    pub fn device_token(&self) -> Option<&str> {
        self.device_token.as_deref()
    }

    /// Keep a newly issued device token.
    pub fn set_device_token(&mut self, token: Option<String>) -> Result<()> {
        if self.device_token != token {
            self.device_token = token;
            self.save()?;
        }
        Ok(())
    }

    /// The v3 payload string.
    #[must_use]
    pub fn payload_v3(&self, f: &SignedFields<'_>) -> String {
        let norm = |s: &str| s.trim().to_ascii_lowercase();
        [
            "v3".to_owned(),
            self.id(),
            f.client_id.to_owned(),
            f.client_mode.to_owned(),
            f.role.to_owned(),
            f.scopes.join(","),
            f.signed_at_ms.to_string(),
            f.token.to_owned(),
            f.nonce.to_owned(),
            norm(f.platform),
            norm(f.device_family),
        ]
        .join("|")
    }

    /// Sign the v3 payload; base64url.
    #[must_use]
    pub fn sign_v3(&self, f: &SignedFields<'_>) -> String {
        b64url().encode(self.key.sign(self.payload_v3(f).as_bytes()).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn identity_persists_signs_and_survives_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway-identity.json");
        let mut a = DeviceIdentity::load_or_create(&path, None).unwrap();
        a.set_device_token(Some("dt".into())).unwrap();
        let b = DeviceIdentity::load_or_create(&path, None).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(b.device_token(), Some("dt"));
        assert_eq!(a.id().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let f = SignedFields {
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &["operator.read", "operator.write"],
            signed_at_ms: 42,
            token: "tok",
            nonce: "n",
            platform: " Linux ",
            device_family: "Desktop",
        };
        let payload = b.payload_v3(&f);
        assert_eq!(
            payload,
            format!(
                "v3|{}|cli|cli|operator|operator.read,operator.write|42|tok|n|linux|desktop",
                b.id()
            )
        );
        let sig = b64url().decode(b.sign_v3(&f)).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        assert!(b
            .key
            .verifying_key()
            .verify(payload.as_bytes(), &sig)
            .is_ok());
        // sealed: an older agent's file in clear is sealed on first load, and opens only with
        // the key it was sealed under
        let seal = clawtray_proto::secret::SecretKey::from_bytes([5; 32]);
        let sealed = DeviceIdentity::load_or_create(&path, Some(seal.clone())).unwrap();
        assert_eq!(sealed.id(), b.id());
        let bytes = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("private_key"));
        let again = DeviceIdentity::load_or_create(&path, Some(seal)).unwrap();
        assert_eq!((again.id(), again.device_token()), (b.id(), Some("dt")));
        std::fs::write(&path, b"{garbage").unwrap();
        let c = DeviceIdentity::load_or_create(&path, None).unwrap();
        assert_ne!(c.id(), b.id());
        assert!(
            std::fs::read_dir(dir.path()).unwrap().count() >= 2,
            "the damaged file is kept aside"
        );
    }
}
