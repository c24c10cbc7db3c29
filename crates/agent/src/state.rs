//! The agent's state dir (default: the platform data dir; files 0600, dir 0700):
//!
//! | file | holds | secret |
//! |---|---|---|
//! | `agent-key.json` | the agent's static X25519 key — only where neither a systemd credential nor the OS keyring holds it ([`crate::keys`]) | yes |
//! | `tokens.sealed` | every pairing's relay device token | sealed |
//! | `gateway-identity.json` | the Ed25519 device identity towards the gateway and its device token | sealed |
//! | `pairings.json` | per desktop: session id, relay URL, pinned desktop key, name, paired-at | no |
//! | `outbox-<session>.db` | messages for that desktop until it acknowledges them, sealed | sealed |
//! | `pending.sealed` | chat messages received but not yet accepted by the gateway, sealed | sealed |
//! | `approvals.sealed` | the exec approvals waiting for a desktop's answer | sealed |
//! | `agent.lock`, `key.lock` | one service per state dir; one process at a time creating or moving the key | no |
//!
//! "Sealed" is AES-256-GCM under a key derived from the static key ([`crate::at_rest`]).
//! A damaged file is moved aside with a clear message instead of crashing the agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use clawtray_proto::secret::{SecretKey, SecretString, StaticKeypair};

use crate::at_rest::{self, Purpose};
use crate::error::{encode_err, AgentError, Result};
use crate::files;
use crate::keys::{self, KeyHome, KeyStore};

const TOKENS_FILE: &str = "tokens.sealed";
const KEY_LOCK_FILE: &str = "key.lock";
const PAIRINGS_FILE: &str = "pairings.json";
const PENDING_FILE: &str = "pending.sealed";
const APPROVALS_FILE: &str = "approvals.sealed";
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
    fn bad_desktop_key(&self) -> AgentError {
        AgentError::Key(format!(
            "the pinned key of the desktop {:?} in pairings.json is damaged; pair it again",
            self.desktop_name
        ))
    }

    /// The pinned desktop key.
    pub fn desktop_key(&self) -> Result<[u8; 32]> {
        let v = b64()
            .decode(&self.desktop_public)
            .map_err(|_| self.bad_desktop_key())?;
        v.as_slice().try_into().map_err(|_| self.bad_desktop_key())
    }
}

/// The relay tokens, session → token (what `tokens.sealed` holds, sealed).
#[derive(Serialize, Deserialize, Default)]
struct Tokens(BTreeMap<String, String>);

impl Drop for Tokens {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for t in self.0.values_mut() {
            t.zeroize();
        }
    }
}

/// The running agent's hold on its state dir; released when dropped (or the process ends).
#[derive(Debug)]
pub struct ServiceLock {
    _file: std::fs::File,
}

/// The static key, once found, and where it lives.
type KeyCache = Arc<Mutex<Option<(StaticKeypair, KeyHome)>>>;

/// The agent's state dir.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    key_store: KeyStore,
    key: KeyCache,
}

impl StateDir {
    /// Use `dir` (created on first write); the static key lives where [`KeyStore::Auto`] says.
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            key_store: KeyStore::Auto,
            key: Arc::default(),
        }
    }

    /// Keep the static key where `store` says (it is moved there on first use).
    #[must_use]
    pub fn with_key_store(mut self, store: KeyStore) -> Self {
        self.key_store = store;
        self
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The agent's static key, created on first use (see [`crate::keys`] for where it lives).
    pub fn static_key(&self) -> Result<StaticKeypair> {
        Ok(self.located_key()?.0)
    }

    /// Where the static key lives.
    pub fn key_home(&self) -> Result<KeyHome> {
        Ok(self.located_key()?.1)
    }

    fn located_key(&self) -> Result<(StaticKeypair, KeyHome)> {
        let mut cache = self.key.lock().map_err(|_| {
            AgentError::Key("the key cache is poisoned (a bug: please report it)".into())
        })?;
        if let Some(found) = cache.as_ref() {
            return Ok(found.clone());
        }
        // one process at a time finds, creates or moves the key (`pair` next to `run`)
        let (lock, lock_path) = self.lock_file(KEY_LOCK_FILE)?;
        lock.lock().map_err(AgentError::io("lock", &lock_path))?;
        self.seal_legacy_tokens()?;
        let has_pairings = !self.pairings()?.is_empty() || self.dir.join(TOKENS_FILE).exists();
        let found = keys::locate(&self.dir, self.key_store, has_pairings)?;
        *cache = Some((found.key.clone(), found.home.clone()));
        Ok((found.key, found.home))
    }

    /// Older agents kept the relay tokens in clear in the key file: seal them into
    /// `tokens.sealed` (with the key from that same file) before the key may move elsewhere.
    fn seal_legacy_tokens(&self) -> Result<()> {
        let Some((key, legacy)) = keys::legacy_tokens(&self.dir)? else {
            return Ok(());
        };
        let mut tokens = self.read_tokens(&key)?;
        for (session, token) in legacy {
            tokens.0.entry(session).or_insert_with(|| token.to_string());
        }
        self.write_tokens(&key, &tokens)?;
        keys::drop_legacy_tokens(&self.dir, &key)?;
        tracing::info!(
            "the relay tokens were moved out of the key file into {TOKENS_FILE} (sealed)"
        );
        Ok(())
    }

    fn read_tokens(&self, key: &StaticKeypair) -> Result<Tokens> {
        let path = self.dir.join(TOKENS_FILE);
        let Some(sealed) = files::read_if_exists(&path)? else {
            return Ok(Tokens::default());
        };
        let opened = at_rest::open(&at_rest::sealing_key(key, Purpose::Tokens), &sealed)
            .and_then(|plain| serde_json::from_slice::<Tokens>(&plain).ok());
        opened.ok_or_else(|| AgentError::Damaged {
            what: "the relay tokens file",
            detail: "it does not open with this agent's key: another key, or damage".into(),
            aside: files::set_aside(&path),
            remedy: "pair again",
        })
    }

    fn write_tokens(&self, key: &StaticKeypair, tokens: &Tokens) -> Result<()> {
        let plain =
            Zeroizing::new(serde_json::to_vec(tokens).map_err(encode_err("the relay tokens"))?);
        let sealed = at_rest::seal(&at_rest::sealing_key(key, Purpose::Tokens), &plain)?;
        files::write_private(&self.dir.join(TOKENS_FILE), &sealed)
    }

    /// A key for sealing outboxes and pending messages at rest, derived from the static key.
    pub fn sealing_key(&self) -> Result<SecretKey> {
        Ok(at_rest::sealing_key(&self.static_key()?, Purpose::Outbox))
    }

    /// A key for sealing the parts of received files, derived from the static key.
    pub fn files_key(&self) -> Result<SecretKey> {
        Ok(at_rest::sealing_key(&self.static_key()?, Purpose::Files))
    }

    /// A key for sealing the gateway identity file, derived from the static key.
    pub fn gateway_identity_key(&self) -> Result<SecretKey> {
        Ok(at_rest::sealing_key(
            &self.static_key()?,
            Purpose::GatewayIdentity,
        ))
    }

    /// The relay device token of `session`.
    pub fn token(&self, session: &str) -> Result<Option<SecretString>> {
        let key = self.static_key()?;
        Ok(self
            .read_tokens(&key)?
            .0
            .get(session)
            .map(|t| SecretString::new(t.clone())))
    }

    /// All pairings.
    pub fn pairings(&self) -> Result<Vec<Pairing>> {
        let path = self.dir.join(PAIRINGS_FILE);
        let Some(b) = files::read_if_exists(&path)? else {
            return Ok(Vec::new());
        };
        serde_json::from_slice(&b).map_err(|e| AgentError::Damaged {
            what: "the pairings file",
            detail: clawtray_proto::delivery::json_error_shape(&e),
            aside: files::set_aside(&path),
            remedy: "pair again",
        })
    }

    /// Add a pairing and its token.
    pub fn add_pairing(&self, p: Pairing, token: &SecretString) -> Result<()> {
        let key = self.static_key()?;
        let mut tokens = self.read_tokens(&key)?;
        tokens
            .0
            .insert(p.session.clone(), token.expose().to_owned());
        self.write_tokens(&key, &tokens)?;
        let mut all = self.pairings()?;
        all.retain(|x| x.session != p.session);
        all.push(p);
        self.write_pairings(&all)
    }

    /// Forget a pairing, its token and its outbox.
    pub fn remove_pairing(&self, session: &str) -> Result<()> {
        let key = self.static_key()?;
        let mut tokens = self.read_tokens(&key)?;
        if tokens.0.remove(session).is_some() {
            self.write_tokens(&key, &tokens)?;
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

    fn write_pairings(&self, all: &[Pairing]) -> Result<()> {
        files::write_private(
            &self.dir.join(PAIRINGS_FILE),
            &serde_json::to_vec_pretty(all).map_err(encode_err("the pairings"))?,
        )
    }

    /// Mark `session` to be unpaired by the running agent (see [`Pairing::unpair_requested`]).
    /// False when there is no such pairing.
    pub fn request_unpair(&self, session: &str) -> Result<bool> {
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
    pub fn lock_for_service(&self) -> Result<ServiceLock> {
        match self.try_lock()? {
            Some(l) => Ok(l),
            None => Err(AgentError::AlreadyRunning(self.dir.clone())),
        }
    }

    /// Whether an agent service holds this state dir now.
    pub fn service_running(&self) -> Result<bool> {
        Ok(self.try_lock()?.is_none())
    }

    /// Open (creating) the lock file `name` in the state dir.
    fn lock_file(&self, name: &str) -> Result<(std::fs::File, PathBuf)> {
        files::ensure_private_dir(&self.dir)?;
        let path = self.dir.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(AgentError::io("open", &path))?;
        Ok((f, path))
    }

    fn try_lock(&self) -> Result<Option<ServiceLock>> {
        let (f, path) = self.lock_file(LOCK_FILE)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(ServiceLock { _file: f })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(AgentError::io("lock", &path)(e)),
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
    pub fn save_pending<T: Serialize>(&self, pending: &T) -> Result<()> {
        self.save_sealed(PENDING_FILE, "the pending messages", pending)
    }

    /// Load the sealed pending messages (empty if none; a damaged file is set aside).
    pub fn load_pending<T: for<'de> Deserialize<'de> + Default>(&self) -> Result<T> {
        self.load_sealed(PENDING_FILE, "pending messages")
    }

    /// Persist the exec approvals waiting (sealed: commands can be private), so an agent
    /// restarted while they wait can tell desktops about those that ended meanwhile.
    pub fn save_approvals<T: Serialize>(&self, approvals: &T) -> Result<()> {
        self.save_sealed(APPROVALS_FILE, "the waiting approvals", approvals)
    }

    /// Load the sealed waiting approvals (empty if none; a damaged file is set aside).
    pub fn load_approvals<T: for<'de> Deserialize<'de> + Default>(&self) -> Result<T> {
        self.load_sealed(APPROVALS_FILE, "waiting approvals")
    }

    fn save_sealed<T: Serialize>(&self, file: &str, what: &'static str, value: &T) -> Result<()> {
        let key = self.sealing_key()?;
        let plain = Zeroizing::new(serde_json::to_vec(value).map_err(encode_err(what))?);
        let sealed = at_rest::seal(&key, &plain)?;
        files::write_private(&self.dir.join(file), &sealed)
    }

    fn load_sealed<T: for<'de> Deserialize<'de> + Default>(
        &self,
        file: &str,
        what: &str,
    ) -> Result<T> {
        let path = self.dir.join(file);
        let Some(bytes) = files::read_if_exists(&path)? else {
            return Ok(T::default());
        };
        let key = self.sealing_key()?;
        let opened = at_rest::open(&key, &bytes).and_then(|p| serde_json::from_slice(&p).ok());
        match opened {
            Some(v) => Ok(v),
            None => {
                let aside = files::set_aside(&path);
                tracing::warn!("{what} could not be read and were moved to {aside}");
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
        let s = StateDir::new(dir.path().to_owned()).with_key_store(KeyStore::File);
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
        for f in [PAIRINGS_FILE, keys::KEY_FILE, TOKENS_FILE] {
            let bytes = std::fs::read(dir.path().join(f)).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("TOKEN"),
                "{f} holds no token in clear"
            );
        }
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
    fn an_older_agents_tokens_in_clear_are_sealed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = StaticKeypair::generate().unwrap();
        std::fs::write(
            dir.path().join(keys::KEY_FILE),
            serde_json::json!({
                "static_secret": b64().encode(key.secret().expose()),
                "tokens": {"sess": "TOKEN-old"},
            })
            .to_string(),
        )
        .unwrap();
        let s = StateDir::new(dir.path().to_owned()).with_key_store(KeyStore::File);
        assert_eq!(s.static_key().unwrap().public(), key.public());
        assert_eq!(s.token("sess").unwrap().unwrap().expose(), "TOKEN-old");
        let key_file = std::fs::read_to_string(dir.path().join(keys::KEY_FILE)).unwrap();
        assert!(!key_file.contains("TOKEN-old"), "{key_file}");
        assert!(s.key_home().unwrap().to_string().contains("agent-key.json"));
    }

    #[test]
    fn tokens_sealed_under_another_key_are_set_aside_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned()).with_key_store(KeyStore::File);
        s.static_key().unwrap();
        std::fs::write(dir.path().join(TOKENS_FILE), vec![0u8; 64]).unwrap();
        let e = s.token("sess").unwrap_err().to_string();
        assert!(
            e.contains("does not open with this agent's key") && e.contains("pair again"),
            "{e}"
        );
        assert!(
            s.token("sess").unwrap().is_none(),
            "set aside, not in the way"
        );
    }

    #[test]
    fn a_damaged_key_file_is_reported_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned()).with_key_store(KeyStore::File);
        // a secret where a map of tokens belongs: serde's message would quote it
        std::fs::write(
            dir.path().join(keys::KEY_FILE),
            br#"{"static_secret": "S3CRET-KEY-MATERIAL", "tokens": "T0KEN-IN-CLEAR"}"#,
        )
        .unwrap();
        let e = s.static_key().unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("wrong shape"), "{e}");
        assert!(
            !e.contains("T0KEN-IN-CLEAR") && !e.contains("S3CRET"),
            "{e}"
        );
    }

    #[test]
    fn damaged_files_are_set_aside_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().to_owned()).with_key_store(KeyStore::File);
        std::fs::write(dir.path().join(PAIRINGS_FILE), b"{nope").unwrap();
        let e = s.pairings().unwrap_err().to_string();
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
        let s = StateDir::new(dir.path().to_owned()).with_key_store(KeyStore::File);
        assert!(!s.service_running().unwrap());
        let held = s.lock_for_service().unwrap();
        assert!(s.service_running().unwrap());
        let e = s.lock_for_service().unwrap_err().to_string();
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
                                .with_key_store(KeyStore::File)
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
