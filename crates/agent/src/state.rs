//! The agent's state dir (default: the platform data dir; files 0600, dir 0700):
//!
//! | file | holds | secret |
//! |---|---|---|
//! | `agent-key.json` | the agent's static X25519 key and every pairing's relay device token | yes |
//! | `gateway-identity.json` | the Ed25519 device identity towards the gateway and its device token | yes |
//! | `pairings.json` | per desktop: session id, relay URL, pinned desktop key, name, paired-at | no |
//! | `outbox-<session>.db` | messages for that desktop until it acknowledges them, sealed | sealed |
//! | `pending.sealed` | chat messages received but not yet accepted by the gateway, sealed | sealed |
//!
//! A damaged file is moved aside with a clear message instead of crashing the agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use clawtray_proto::secret::{fill_random, SecretKey, SecretString, StaticKeypair};

use crate::files;

const KEY_FILE: &str = "agent-key.json";
const PAIRINGS_FILE: &str = "pairings.json";
const PENDING_FILE: &str = "pending.sealed";
const LOCK_FILE: &str = "agent.lock";
/// The gateway identity file name.
pub const GATEWAY_IDENTITY_FILE: &str = "gateway-identity.json";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// One paired desktop (not secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    pub session: String,
    pub relay_url: String,
    pub desktop_public: String,
    pub desktop_name: String,
    pub paired_at_ms: u64,
    /// `clawtray-agent unpair` asked to end this pairing: the running agent tells the desktop
    /// end to end (sealed `unpair`) and forgets the pairing once the desktop has acknowledged it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpair_requested: bool,
}

impl Pairing {
    /// The pinned desktop key.
    pub fn desktop_key(&self) -> Result<[u8; 32], String> {
        let v = b64()
            .decode(&self.desktop_public)
            .map_err(|e| e.to_string())?;
        v.as_slice()
            .try_into()
            .map_err(|_| "desktop key is not 32 bytes".to_owned())
    }
}

#[derive(Serialize, Deserialize, Default)]
struct KeyFile {
    static_secret: String,
    #[serde(default)]
    tokens: BTreeMap<String, String>,
}

/// The running agent's hold on its state dir; released when dropped (or the process ends).
#[derive(Debug)]
pub struct ServiceLock {
    _file: std::fs::File,
}

/// The agent's state dir.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Use `dir` (created on first write).
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn read_keys(&self) -> Result<Option<KeyFile>, String> {
        let path = self.dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(b) => {
                let b = Zeroizing::new(b);
                match serde_json::from_slice::<KeyFile>(&b) {
                    Ok(k) => Ok(Some(k)),
                    Err(e) => {
                        // the shape of the damage only: serde would quote the file's values
                        let e = clawtray_proto::delivery::json_error_shape(&e);
                        let aside = files::set_aside(&path);
                        Err(format!("the agent key file was damaged ({e}) and was moved to {aside}; existing pairings cannot be used — pair again"))
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn write_keys(&self, k: &KeyFile) -> Result<(), String> {
        let json = Zeroizing::new(serde_json::to_vec_pretty(k).map_err(|e| e.to_string())?);
        files::write_private(&self.dir.join(KEY_FILE), &json)
    }

    /// The agent's static key, created on first use.
    pub fn static_key(&self) -> Result<StaticKeypair, String> {
        if let Some(k) = self.read_keys()? {
            let raw = Zeroizing::new(b64().decode(&k.static_secret).map_err(|e| e.to_string())?);
            let arr: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| "static key is not 32 bytes".to_owned())?;
            return Ok(StaticKeypair::from_secret(SecretKey::from_bytes(arr)));
        }
        let kp = StaticKeypair::generate().map_err(|e| e.to_string())?;
        let fresh = KeyFile {
            static_secret: b64().encode(kp.secret().expose()),
            tokens: BTreeMap::new(),
        };
        let json = Zeroizing::new(serde_json::to_vec_pretty(&fresh).map_err(|e| e.to_string())?);
        drop(Zeroizing::new(fresh.static_secret));
        if files::create_private(&self.dir.join(KEY_FILE), &json)? {
            Ok(kp)
        } else {
            // another process (e.g. `pair` next to `run`) created it first: use that one
            self.static_key()
        }
    }

    /// A key for sealing files at rest, derived from the static key.
    pub fn sealing_key(&self) -> Result<SecretKey, String> {
        let kp = self.static_key()?;
        let hk = Hkdf::<Sha256>::new(Some(b"clawtray/1 agent at rest"), kp.secret().expose());
        let mut okm = [0u8; 32];
        hk.expand(b"outbox", &mut okm).map_err(|e| e.to_string())?;
        Ok(SecretKey::from_bytes(okm))
    }

    /// The relay device token of `session`.
    pub fn token(&self, session: &str) -> Result<Option<SecretString>, String> {
        Ok(self
            .read_keys()?
            .and_then(|k| k.tokens.get(session).map(|t| SecretString::new(t.clone()))))
    }

    /// All pairings.
    pub fn pairings(&self) -> Result<Vec<Pairing>, String> {
        let path = self.dir.join(PAIRINGS_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                let e = clawtray_proto::delivery::json_error_shape(&e);
                let aside = files::set_aside(&path);
                format!("the pairings file was damaged ({e}) and was moved to {aside}; pair again")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Add a pairing and its token.
    pub fn add_pairing(&self, p: Pairing, token: &SecretString) -> Result<(), String> {
        let mut keys = self
            .read_keys()?
            .ok_or("the agent key must exist before pairing")?;
        keys.tokens
            .insert(p.session.clone(), token.expose().to_owned());
        self.write_keys(&keys)?;
        let mut all = self.pairings()?;
        all.retain(|x| x.session != p.session);
        all.push(p);
        self.write_pairings(&all)
    }

    /// Forget a pairing, its token and its outbox.
    pub fn remove_pairing(&self, session: &str) -> Result<(), String> {
        if let Some(mut keys) = self.read_keys()? {
            keys.tokens.remove(session);
            self.write_keys(&keys)?;
        }
        let mut all = self.pairings()?;
        all.retain(|x| x.session != session);
        self.write_pairings(&all)?;
        for suffix in ["", "-wal", "-shm"] {
            let _ =
                std::fs::remove_file(format!("{}{suffix}", self.outbox_path(session).display()));
        }
        Ok(())
    }

    fn write_pairings(&self, all: &[Pairing]) -> Result<(), String> {
        files::write_private(
            &self.dir.join(PAIRINGS_FILE),
            &serde_json::to_vec_pretty(all).map_err(|e| e.to_string())?,
        )
    }

    /// Mark `session` to be unpaired by the running agent (see [`Pairing::unpair_requested`]).
    /// False when there is no such pairing.
    pub fn request_unpair(&self, session: &str) -> Result<bool, String> {
        let mut all = self.pairings()?;
        let Some(p) = all.iter_mut().find(|p| p.session == session) else {
            return Ok(false);
        };
        p.unpair_requested = true;
        self.write_pairings(&all)?;
        Ok(true)
    }

    /// Hold the state dir for one running agent: two agents on one state dir would answer the
    /// same desktops with the same keys and race on every file. The lock goes with the process
    /// (a killed agent releases it).
    pub fn lock_for_service(&self) -> Result<ServiceLock, String> {
        match self.try_lock()? {
            Some(l) => Ok(l),
            None => Err(format!(
                "another clawtray-agent is already running with the state dir {}",
                self.dir.display()
            )),
        }
    }

    /// Whether an agent service holds this state dir now.
    pub fn service_running(&self) -> Result<bool, String> {
        Ok(self.try_lock()?.is_none())
    }

    fn try_lock(&self) -> Result<Option<ServiceLock>, String> {
        files::ensure_private_dir(&self.dir)?;
        let path = self.dir.join(LOCK_FILE);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(ServiceLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    /// Where `session`'s outbox lives.
    #[must_use]
    pub fn outbox_path(&self, session: &str) -> PathBuf {
        let safe: String = session
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        self.dir.join(format!("outbox-{safe}.db"))
    }

    /// Where the gateway identity lives.
    #[must_use]
    pub fn gateway_identity_path(&self) -> PathBuf {
        self.dir.join(GATEWAY_IDENTITY_FILE)
    }

    /// Persist chat messages not yet accepted by the gateway (sealed).
    pub fn save_pending<T: Serialize>(&self, pending: &T) -> Result<(), String> {
        let key = self.sealing_key()?;
        let plain = Zeroizing::new(serde_json::to_vec(pending).map_err(|e| e.to_string())?);
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce).map_err(|e| e.to_string())?;
        let ct = Aes256Gcm::new(key.expose().into())
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| "sealing failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        files::write_private(&self.dir.join(PENDING_FILE), &out)
    }

    /// Load the sealed pending messages (empty if none; a damaged file is set aside).
    pub fn load_pending<T: for<'de> Deserialize<'de> + Default>(&self) -> Result<T, String> {
        let path = self.dir.join(PENDING_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let key = self.sealing_key()?;
        let opened = (bytes.len() > 12)
            .then(|| {
                Aes256Gcm::new(key.expose().into())
                    .decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..])
                    .ok()
            })
            .flatten()
            .and_then(|p| serde_json::from_slice(&Zeroizing::new(p)).ok());
        match opened {
            Some(v) => Ok(v),
            None => {
                let aside = files::set_aside(&path);
                tracing::warn!("pending messages could not be read and were moved to {aside}");
                Ok(T::default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairings_tokens_and_keys_persist_and_secrets_stay_in_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned());
        let k1 = s.static_key().unwrap();
        assert_eq!(k1.public(), s.static_key().unwrap().public());
        let p = Pairing {
            session: "sess".into(),
            relay_url: "ws://127.0.0.1:1".into(),
            desktop_public: b64().encode([1u8; 32]),
            desktop_name: "laptop".into(),
            paired_at_ms: 1,
            unpair_requested: false,
        };
        s.add_pairing(p.clone(), &SecretString::new("TOKEN-xyz".into()))
            .unwrap();
        assert_eq!(s.pairings().unwrap(), vec![p]);
        assert_eq!(s.token("sess").unwrap().unwrap().expose(), "TOKEN-xyz");
        let pairings = std::fs::read_to_string(dir.path().join(PAIRINGS_FILE)).unwrap();
        assert!(!pairings.contains("TOKEN"));
        s.save_pending(&vec!["MARKER".to_owned()]).unwrap();
        assert!(
            !String::from_utf8_lossy(&std::fs::read(dir.path().join(PENDING_FILE)).unwrap())
                .contains("MARKER")
        );
        assert_eq!(
            s.load_pending::<Vec<String>>().unwrap(),
            vec!["MARKER".to_owned()]
        );
        assert!(s.request_unpair("sess").unwrap());
        assert!(!s.request_unpair("other").unwrap());
        assert!(s.pairings().unwrap()[0].unpair_requested);
        s.remove_pairing("sess").unwrap();
        assert!(s.pairings().unwrap().is_empty());
        assert!(s.token("sess").unwrap().is_none());
    }

    #[test]
    fn a_damaged_key_file_is_reported_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned());
        // a secret where a map of tokens belongs: serde's message would quote it
        std::fs::write(
            dir.path().join(KEY_FILE),
            br#"{"static_secret": "S3CRET-KEY-MATERIAL", "tokens": "T0KEN-IN-CLEAR"}"#,
        )
        .unwrap();
        let e = s.static_key().unwrap_err();
        assert!(e.contains("damaged") && e.contains("wrong shape"), "{e}");
        assert!(
            !e.contains("T0KEN-IN-CLEAR") && !e.contains("S3CRET"),
            "{e}"
        );
    }

    #[test]
    fn damaged_files_are_set_aside_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned());
        std::fs::write(dir.path().join(PAIRINGS_FILE), b"{nope").unwrap();
        let e = s.pairings().unwrap_err();
        assert!(e.contains("damaged") && e.contains("pair again"), "{e}");
        assert!(
            s.pairings().unwrap().is_empty(),
            "the damaged file no longer blocks start-up"
        );
        std::fs::write(
            dir.path().join(PENDING_FILE),
            b"garbage that is long enough",
        )
        .unwrap();
        s.static_key().unwrap();
        assert!(s.load_pending::<Vec<String>>().unwrap().is_empty());
    }
}

#[cfg(test)]
mod race_tests {
    use super::*;

    #[test]
    fn one_service_per_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned());
        assert!(!s.service_running().unwrap());
        let held = s.lock_for_service().unwrap();
        assert!(s.service_running().unwrap());
        let e = s.lock_for_service().unwrap_err();
        assert!(e.contains("already running"), "{e}");
        drop(held);
        assert!(!s.service_running().unwrap());
    }

    #[test]
    fn racing_processes_agree_on_one_static_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            StateDir::new(dir.path().to_owned())
                                .static_key()
                                .unwrap()
                                .public()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(
                keys.windows(2).all(|w| w[0] == w[1]),
                "all racers must end with the same key"
            );
        }
    }
}
