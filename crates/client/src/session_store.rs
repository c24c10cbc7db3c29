//! Where a pairing lives. Secrets — the desktop's static private key, the pinned agent key, the
//! relay device token and the outbox key — go to the OS keyring (service `clawtray`, one entry
//! per paired agent) and never touch the disk in clear. Non-secret metadata (relay URL, session
//! id, agent name, paired-at) lives in `pairing.json` in the platform config dir.
//!
//! [`MemorySessionStore`] keeps everything in memory, for tests of other parts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use clawtray_proto::secret::{SecretKey, SecretString, StaticKeypair};

/// Keyring service name.
pub const KEYRING_SERVICE: &str = "clawtray";
/// Metadata file name inside the config dir.
pub const METADATA_FILE: &str = "pairing.json";

/// Why the store failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("the OS keyring is not available ({0}); on Linux a Secret Service such as gnome-keyring must be running and unlocked")]
    KeyringUnavailable(String),
    #[error("the pairing's secrets are missing from the OS keyring; pair again")]
    SecretsMissing,
    #[error("the stored pairing is damaged ({0}); it was set aside — pair again")]
    Corrupt(String),
    #[error("cannot write {path}: {reason}")]
    Io { path: String, reason: String },
}

/// What the relay and the UI need to know about the pairing. Not secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct SessionInfo {
    pub relay_url: String,
    pub session_id: String,
    pub agent_name: String,
    #[ts(type = "number")]
    pub paired_at_ms: u64,
}

/// The pairing's secrets. `Debug` redacts; everything zeroizes on drop.
#[derive(Debug, Clone)]
pub struct SessionSecrets {
    pub desktop_key: StaticKeypair,
    pub agent_public: [u8; 32],
    pub device_token: SecretString,
    pub outbox_key: SecretKey,
}

/// One pairing.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub info: SessionInfo,
    pub secrets: SessionSecrets,
}

/// Load, save and forget the pairing.
pub trait SessionStore: Send + Sync {
    /// The current pairing, if any.
    fn load(&self) -> Result<Option<StoredSession>, StoreError>;
    /// Store a new pairing (replacing any other).
    fn save(&self, s: &StoredSession) -> Result<(), StoreError>;
    /// Forget the pairing (secrets and metadata).
    fn clear(&self) -> Result<(), StoreError>;
}

/// In-memory store (tests).
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    inner: Mutex<Option<StoredSession>>,
}

impl SessionStore for MemorySessionStore {
    fn load(&self) -> Result<Option<StoredSession>, StoreError> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| StoreError::Corrupt("lock".into()))?
            .clone())
    }
    fn save(&self, s: &StoredSession) -> Result<(), StoreError> {
        *self
            .inner
            .lock()
            .map_err(|_| StoreError::Corrupt("lock".into()))? = Some(s.clone());
        Ok(())
    }
    fn clear(&self) -> Result<(), StoreError> {
        *self
            .inner
            .lock()
            .map_err(|_| StoreError::Corrupt("lock".into()))? = None;
        Ok(())
    }
}

/// The secrets as stored in the keyring entry (base64 fields in one JSON string).
#[derive(Serialize, Deserialize)]
struct SecretBlob {
    desktop_key: String,
    agent_public: String,
    device_token: String,
    outbox_key: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn key32(s: &str) -> Result<[u8; 32], StoreError> {
    let v = Zeroizing::new(
        b64()
            .decode(s)
            .map_err(|_| StoreError::Corrupt("keyring entry".into()))?,
    );
    v.as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt("keyring entry".into()))
}

impl SessionSecrets {
    fn to_blob(&self) -> Zeroizing<String> {
        let blob = SecretBlob {
            desktop_key: b64().encode(self.desktop_key.secret().expose()),
            agent_public: b64().encode(self.agent_public),
            device_token: self.device_token.expose().to_owned(),
            outbox_key: b64().encode(self.outbox_key.expose()),
        };
        let s = Zeroizing::new(serde_json::to_string(&blob).unwrap_or_default());
        // the blob's own Strings are dropped here; zeroize them too
        let SecretBlob {
            desktop_key,
            device_token,
            outbox_key,
            ..
        } = blob;
        drop(Zeroizing::new(desktop_key));
        drop(Zeroizing::new(device_token));
        drop(Zeroizing::new(outbox_key));
        s
    }

    fn from_blob(s: &str) -> Result<Self, StoreError> {
        let blob: SecretBlob =
            serde_json::from_str(s).map_err(|_| StoreError::Corrupt("keyring entry".into()))?;
        let secrets = Self {
            desktop_key: StaticKeypair::from_secret(SecretKey::from_bytes(key32(
                &blob.desktop_key,
            )?)),
            agent_public: key32(&blob.agent_public)?,
            device_token: SecretString::new(blob.device_token.clone()),
            outbox_key: SecretKey::from_bytes(key32(&blob.outbox_key)?),
        };
        drop(Zeroizing::new(blob.desktop_key));
        drop(Zeroizing::new(blob.device_token));
        drop(Zeroizing::new(blob.outbox_key));
        Ok(secrets)
    }
}

/// The real store: OS keyring for secrets, a metadata file for the rest.
#[derive(Debug, Clone)]
pub struct KeyringSessionStore {
    config_dir: PathBuf,
}

impl KeyringSessionStore {
    /// Keep metadata in `config_dir`.
    #[must_use]
    pub fn new(config_dir: PathBuf) -> Self {
        Self { config_dir }
    }

    fn meta_path(&self) -> PathBuf {
        self.config_dir.join(METADATA_FILE)
    }

    fn entry(session_id: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(KEYRING_SERVICE, &format!("session:{session_id}"))
            .map_err(|e| StoreError::KeyringUnavailable(e.to_string()))
    }

    /// The pairing's metadata (not secret), without touching the keyring: which agent, which
    /// relay. `None` when not paired.
    pub fn info(&self) -> Result<Option<SessionInfo>, StoreError> {
        self.read_meta()
    }

    fn read_meta(&self) -> Result<Option<SessionInfo>, StoreError> {
        let path = self.meta_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, &e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(info) => Ok(Some(info)),
            Err(e) => {
                let aside = path.with_extension(format!("json.corrupt-{}", std::process::id()));
                let _ = std::fs::rename(&path, &aside);
                Err(StoreError::Corrupt(format!("{}: {e}", path.display())))
            }
        }
    }
}

fn io_err(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Write `bytes` to `path` atomically (temp file, fsync, rename), mode 0600 on Unix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| io_err(path, &std::io::Error::other("no parent directory")))?;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, &e))?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| io_err(&tmp, &e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, &e))?;
    f.sync_all().map_err(|e| io_err(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, &e))
}

impl SessionStore for KeyringSessionStore {
    fn load(&self) -> Result<Option<StoredSession>, StoreError> {
        let Some(info) = self.read_meta()? else {
            return Ok(None);
        };
        let blob = match Self::entry(&info.session_id)?.get_password() {
            Ok(p) => Zeroizing::new(p),
            Err(keyring::Error::NoEntry) => return Err(StoreError::SecretsMissing),
            Err(e) => return Err(StoreError::KeyringUnavailable(e.to_string())),
        };
        let secrets = SessionSecrets::from_blob(&blob)?;
        Ok(Some(StoredSession { info, secrets }))
    }

    fn save(&self, s: &StoredSession) -> Result<(), StoreError> {
        if let Ok(Some(old)) = self.read_meta() {
            if old.session_id != s.info.session_id {
                let _ = Self::entry(&old.session_id).and_then(|e| {
                    e.delete_credential()
                        .map_err(|e| StoreError::KeyringUnavailable(e.to_string()))
                });
            }
        }
        Self::entry(&s.info.session_id)?
            .set_password(&s.secrets.to_blob())
            .map_err(|e| StoreError::KeyringUnavailable(e.to_string()))?;
        let meta =
            serde_json::to_vec_pretty(&s.info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        write_atomically(&self.meta_path(), &meta)
    }

    fn clear(&self) -> Result<(), StoreError> {
        let meta = match self.read_meta() {
            Ok(m) => m,
            Err(StoreError::Corrupt(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(info) = meta {
            match Self::entry(&info.session_id)?.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => {}
                Err(e) => return Err(StoreError::KeyringUnavailable(e.to_string())),
            }
        }
        match std::fs::remove_file(self.meta_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.meta_path(), &e)),
        }
    }
}

/// A fresh pairing's secrets and metadata (used by the pairing flow and tests).
#[must_use]
pub fn new_stored_session(
    info: SessionInfo,
    desktop_key: StaticKeypair,
    agent_public: [u8; 32],
    device_token: SecretString,
    outbox_key: SecretKey,
) -> StoredSession {
    StoredSession {
        info,
        secrets: SessionSecrets {
            desktop_key,
            agent_public,
            device_token,
            outbox_key,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_the_blob_and_debug_redacts() {
        let s = SessionSecrets {
            desktop_key: StaticKeypair::generate().unwrap(),
            agent_public: [3; 32],
            device_token: SecretString::new("tok-123".into()),
            outbox_key: SecretKey::random().unwrap(),
        };
        let back = SessionSecrets::from_blob(&s.to_blob()).unwrap();
        assert_eq!(back.desktop_key.public(), s.desktop_key.public());
        assert_eq!(back.device_token, s.device_token);
        assert_eq!(back.outbox_key, s.outbox_key);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("tok-123"), "{dbg}");
        assert!(SessionSecrets::from_blob("{").is_err());
    }
}
