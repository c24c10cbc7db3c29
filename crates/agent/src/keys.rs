//! Where the agent's static X25519 key lives. It is the one root secret of the agent: it answers
//! the desktops' meetings, and every file of the state dir that holds a secret (relay tokens,
//! outboxes, pending messages, the gateway identity) is sealed under keys derived from it
//! ([`crate::at_rest`]). So where it lives decides what a copy of the state dir reveals:
//!
//! - a **systemd credential** (`$CREDENTIALS_DIRECTORY/clawtray-agent-key`, e.g. from
//!   `LoadCredentialEncrypted=`): read-only, wins over every other copy;
//! - the **OS keyring** (Secret Service on Linux), entry `clawtray-agent` / `static-key:<state dir>`;
//! - the file `agent-key.json` in the state dir (0600) — where neither of the others exists.
//!
//! [`KeyStore`] says where the key should live (`auto`: a credential if given, else the keyring if
//! one answers, else the file). The key is moved there when found elsewhere — written, read back,
//! and only then removed from its old home — and two different keys in two homes are an error,
//! never a silent choice. A missing key is created only while the agent has no pairing: a keyring
//! that is locked or gone must never cost the pairings a new key would orphan.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use clawtray_proto::secret::{SecretKey, StaticKeypair};

use crate::error::{AgentError, Result};
use crate::files;

/// The key file in the state dir (the home of last resort).
pub const KEY_FILE: &str = "agent-key.json";
/// The systemd credential's name (`LoadCredentialEncrypted=clawtray-agent-key:…`).
pub const CREDENTIAL_NAME: &str = "clawtray-agent-key";
/// The keyring service name.
pub const KEYRING_SERVICE: &str = "clawtray-agent";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Where the key should live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyStore {
    /// A systemd credential if one is given, else the OS keyring if one answers, else the file.
    #[default]
    Auto,
    /// The OS keyring; an error if it does not answer.
    Keyring,
    /// The systemd credential; an error if there is none.
    Credential,
    /// The file `agent-key.json` in the state dir.
    File,
}

impl FromStr for KeyStore {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "keyring" => Ok(Self::Keyring),
            "credential" => Ok(Self::Credential),
            "file" => Ok(Self::File),
            other => Err(AgentError::Config(format!(
                "unknown key store {other:?}: use auto, keyring, credential or file"
            ))),
        }
    }
}

/// Where the key was found (or put).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHome {
    /// A systemd credential at this path.
    Credential(PathBuf),
    /// The OS keyring.
    Keyring,
    /// The key file at this path.
    File(PathBuf),
}

impl fmt::Display for KeyHome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyHome::Credential(p) => write!(f, "the systemd credential {}", p.display()),
            KeyHome::Keyring => f.write_str("the OS keyring (Secret Service)"),
            KeyHome::File(p) => write!(f, "the file {} (0600)", p.display()),
        }
    }
}

/// The key file's shape. Older agents also kept every relay token here, in clear; those are
/// moved to `tokens.sealed` ([`legacy_tokens`]) and the field is no longer written.
#[derive(Serialize, Deserialize, Default)]
struct KeyFile {
    static_secret: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tokens: BTreeMap<String, String>,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.static_secret.zeroize();
        for t in self.tokens.values_mut() {
            t.zeroize();
        }
    }
}

fn key_from_b64(s: &str, whence: &str) -> Result<StaticKeypair> {
    let raw = Zeroizing::new(
        b64()
            .decode(s.trim())
            .map_err(|_| AgentError::Key(format!("{whence} does not hold a base64 key")))?,
    );
    let arr: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| AgentError::Key(format!("{whence} does not hold a 32-byte key")))?;
    Ok(StaticKeypair::from_secret(SecretKey::from_bytes(arr)))
}

fn key_to_b64(k: &StaticKeypair) -> Zeroizing<String> {
    Zeroizing::new(b64().encode(k.secret().expose()))
}

/// The key in base64, as `clawtray-agent key export` prints it for `systemd-creds encrypt`.
#[must_use]
pub fn export(k: &StaticKeypair) -> Zeroizing<String> {
    key_to_b64(k)
}

fn read_key_file(path: &Path) -> Result<Option<KeyFile>> {
    let Some(b) = files::read_if_exists(path)? else {
        return Ok(None);
    };
    let b = Zeroizing::new(b);
    serde_json::from_slice::<KeyFile>(&b)
        .map(Some)
        .map_err(|e| AgentError::Damaged {
            what: "the agent key file",
            // the shape of the damage only: serde would quote the file's values
            detail: clawtray_proto::delivery::json_error_shape(&e),
            aside: files::set_aside(path),
            remedy: "existing pairings cannot be used — pair again",
        })
}

/// Session → relay token, as an older agent kept them.
pub(crate) type LegacyTokens = BTreeMap<String, Zeroizing<String>>;

/// Relay tokens an older agent kept in clear in the key file (session → token), with the key
/// from that same file to seal them under before the key may move; `None` when there are none.
pub(crate) fn legacy_tokens(dir: &Path) -> Result<Option<(StaticKeypair, LegacyTokens)>> {
    let Some(k) = read_key_file(&dir.join(KEY_FILE))? else {
        return Ok(None);
    };
    if k.tokens.is_empty() {
        return Ok(None);
    }
    let key = key_from_b64(&k.static_secret, "the agent key file")?;
    let tokens = k
        .tokens
        .iter()
        .map(|(s, t)| (s.clone(), Zeroizing::new(t.clone())))
        .collect();
    Ok(Some((key, tokens)))
}

/// Rewrite the key file with `key` alone (its legacy tokens are sealed elsewhere now).
pub(crate) fn drop_legacy_tokens(dir: &Path, key: &StaticKeypair) -> Result<()> {
    write_key_file(&dir.join(KEY_FILE), &key_to_b64(key))
}

fn write_key_file(path: &Path, static_secret: &str) -> Result<()> {
    let json = Zeroizing::new(format!(
        "{{\n  \"static_secret\": \"{static_secret}\"\n}}\n"
    ));
    files::write_private(path, json.as_bytes())
}

/// The systemd credential's path, when the service was given one.
fn credential_path() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let p = Path::new(&dir).join(CREDENTIAL_NAME);
    p.exists().then_some(p)
}

fn read_credential(p: &Path) -> Result<StaticKeypair> {
    let text = Zeroizing::new(std::fs::read_to_string(p).map_err(AgentError::io("read", p))?);
    key_from_b64(&text, &format!("the credential {}", p.display()))
}

/// The keyring entry of the agent whose state dir is `dir`.
struct KeyringEntry(String);

impl KeyringEntry {
    fn of(dir: &Path) -> Self {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        Self(format!("static-key:{}", dir.display()))
    }

    fn entry(&self) -> Result<keyring::Entry> {
        keyring::Entry::new(KEYRING_SERVICE, &self.0).map_err(|e| AgentError::Key(e.to_string()))
    }

    /// `Ok(None)`: the keyring answers and holds no key; `Err`: it does not answer (why).
    fn read(&self) -> Result<Option<StaticKeypair>> {
        match self.entry()?.get_password() {
            Ok(s) => {
                let s = Zeroizing::new(s);
                key_from_b64(&s, "the keyring entry").map(Some)
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(AgentError::Key(e.to_string())),
        }
    }

    /// Store `k` and read it back through a fresh entry (a keyring that keeps nothing — a
    /// backend-less build, a session store that forgets — is caught here, not at next start).
    fn write(&self, k: &StaticKeypair) -> Result<()> {
        self.entry()?
            .set_password(&key_to_b64(k))
            .map_err(|e| AgentError::Key(format!("the keyring refused the key: {e}")))?;
        match self.read() {
            Ok(Some(back)) if back.public() == k.public() => Ok(()),
            Ok(_) => Err(AgentError::Key("the keyring did not keep the key".into())),
            Err(e) => Err(AgentError::Key(format!(
                "the keyring did not keep the key: {e}"
            ))),
        }
    }

    fn delete(&self) -> Result<()> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(AgentError::Key(format!(
                "cannot remove the key from the keyring: {e}"
            ))),
        }
    }
}

/// The key and where it now lives.
pub struct Located {
    pub key: StaticKeypair,
    pub home: KeyHome,
}

/// Find the key for the state dir `dir` under the policy `store`, move it where `store` wants it,
/// remove other copies; create it if it exists nowhere and `has_pairings` is false. The caller
/// holds the state dir's key lock and has moved legacy tokens out of the key file first.
pub(crate) fn locate(dir: &Path, store: KeyStore, has_pairings: bool) -> Result<Located> {
    let file = dir.join(KEY_FILE);
    let entry = KeyringEntry::of(dir);
    let credential = credential_path();
    if store == KeyStore::Credential && credential.is_none() {
        return Err(AgentError::Key(format!(
            "--key-store credential: no systemd credential {CREDENTIAL_NAME} (add \
             LoadCredentialEncrypted={CREDENTIAL_NAME}:… to the unit; see docs/agent.md)"
        )));
    }
    // every copy there is, and whether the keyring answers
    let mut copies: Vec<(KeyHome, StaticKeypair)> = Vec::new();
    if let Some(p) = &credential {
        copies.push((KeyHome::Credential(p.clone()), read_credential(p)?));
    }
    let keyring = entry.read();
    match &keyring {
        Ok(Some(k)) => copies.push((KeyHome::Keyring, k.clone())),
        Ok(None) => {}
        Err(e) if store == KeyStore::Keyring => {
            return Err(AgentError::Key(format!(
                "--key-store keyring: the OS keyring does not answer ({e}); unlock it or run \
                 the agent in a session that has one"
            )))
        }
        Err(_) => {}
    }
    if let Some(k) = read_key_file(&file)? {
        copies.push((
            KeyHome::File(file.clone()),
            key_from_b64(&k.static_secret, "the agent key file")?,
        ));
    }
    if let Some((a, b)) = copies.windows(2).find_map(|w| {
        (w[0].1.public() != w[1].1.public()).then(|| (w[0].0.clone(), w[1].0.clone()))
    }) {
        return Err(AgentError::Key(format!(
            "two different agent keys: in {a} and in {b}; keep the one your desktops were \
             paired with and remove the other"
        )));
    }
    let keyring_answers = keyring.is_ok();
    let wanted = match (&credential, store) {
        (Some(p), _) => KeyHome::Credential(p.clone()),
        (None, KeyStore::Keyring) => KeyHome::Keyring,
        (None, KeyStore::File) => KeyHome::File(file.clone()),
        (None, _) if keyring_answers => KeyHome::Keyring,
        (None, _) => KeyHome::File(file.clone()),
    };
    let key = match copies.first() {
        Some((_, k)) => k.clone(),
        None if has_pairings => {
            let keyring_note = match &keyring {
                Err(e) => format!(" (the OS keyring does not answer: {e} — unlock it and retry)"),
                Ok(_) => String::new(),
            };
            return Err(AgentError::Key(format!(
                "the agent's key is in none of its homes{keyring_note}: not in the keyring, \
                 not in {}, no systemd credential. The pairings in {} cannot be used without \
                 it; restore the key, or remove pairings.json and pair again",
                file.display(),
                dir.display()
            )));
        }
        None => StaticKeypair::generate()?,
    };
    // put it where it is wanted (if it is not there yet), then remove the other copies
    let kept_in = |home: &KeyHome| copies.iter().any(|(h, _)| h == home);
    let file_home = KeyHome::File(file.clone());
    let in_file = || -> Result<KeyHome> {
        if !kept_in(&file_home) {
            write_key_file(&file, &key_to_b64(&key))?;
        }
        Ok(file_home.clone())
    };
    let home = match wanted {
        KeyHome::Credential(_) => wanted,
        KeyHome::Keyring if kept_in(&KeyHome::Keyring) => wanted,
        KeyHome::Keyring => match entry.write(&key) {
            Ok(()) => wanted,
            Err(e) if store == KeyStore::Keyring => return Err(e),
            Err(e) => {
                tracing::warn!("{e}; the agent key stays in {}", file.display());
                in_file()?
            }
        },
        KeyHome::File(_) => in_file()?,
    };
    for (old, _) in &copies {
        if *old == home {
            continue;
        }
        match old {
            KeyHome::Credential(_) => {}
            KeyHome::Keyring => entry.delete()?,
            KeyHome::File(p) => {
                std::fs::remove_file(p).map_err(AgentError::io("remove the old key file", p))?;
            }
        }
        tracing::info!("the agent key moved from {old} to {home}");
    }
    Ok(Located { key, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_stores_parse_and_refuse_unknown_names() {
        assert_eq!("auto".parse::<KeyStore>().unwrap(), KeyStore::Auto);
        assert_eq!(
            "credential".parse::<KeyStore>().unwrap(),
            KeyStore::Credential
        );
        assert!("vault"
            .parse::<KeyStore>()
            .unwrap_err()
            .to_string()
            .contains("auto, keyring"));
    }

    #[test]
    fn a_bad_key_says_where_it_came_from_without_quoting_it() {
        let e = key_from_b64("S3CRET!!", "the credential /x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the credential /x") && !e.contains("S3CRET"),
            "{e}"
        );
        let short = b64().encode([1u8; 16]);
        assert!(key_from_b64(&short, "w")
            .unwrap_err()
            .to_string()
            .contains("32-byte"));
    }
}
