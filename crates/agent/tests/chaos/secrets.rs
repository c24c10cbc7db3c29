//! The scan after a chaos run: private keys, device tokens, the pairing code and message text
//! must not be found in clear in the relay's database and log, the agent's state dir (its key file
//! aside, where the key lives in one: it must be 0600), the agent's log, or the desktop's data dir.
//! The agent's secrets are read the way the agent reads them: the static key from wherever it
//! lives (`clawtray-agent key export`), the relay tokens and the gateway identity opened with the
//! keys derived from it.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use clawtray_agent::at_rest::{self, Purpose};
use clawtray_client::session_store::{MemorySessionStore, SessionStore};
use clawtray_proto::secret::{SecretKey, StaticKeypair};
use clawtray_testkit::scan::{files_containing, files_under};

/// In every chat message the chaos test sends.
pub const PLAINTEXT_MARKER: &str = "chaos-plaintext-7f3a";

/// The agent's key file (when the key lives in no keyring or credential): a secret by design,
/// private to the agent's user.
const KEY_FILE: &str = clawtray_agent::keys::KEY_FILE;
/// The agent's sealed secret files: private to the agent's user too.
const SEALED_SECRET_FILES: [&str; 2] = ["tokens.sealed", "gateway-identity.json"];

pub struct Places<'a> {
    /// Every relay node's folder (its database or logs).
    pub relay_dirs: &'a [&'a Path],
    /// Redis's data folder (its append-only file), in a cluster run.
    pub redis_dir: Option<&'a Path>,
    pub agent_state: &'a Path,
    pub agent_log: &'a Path,
    pub desktop_data: &'a Path,
    pub store: &'a MemorySessionStore,
    pub code: &'a str,
}

/// Every way a secret of raw bytes could be written down.
fn spellings(name: &str, raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        (format!("{name} (raw)"), raw.to_vec()),
        (format!("{name} (hex)"), hex::encode(raw).into_bytes()),
        (format!("{name} (base64)"), b64.encode(raw).into_bytes()),
        (
            format!("{name} (base64url)"),
            b64url.encode(raw).into_bytes(),
        ),
    ]
}

/// The static key, as `clawtray-agent key export` prints it.
fn agent_static_key(state: &Path) -> Result<StaticKeypair, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawtray-agent"))
        .arg("--state-dir")
        .arg(state)
        .args(["key", "export"])
        .output()
        .map_err(|e| e.to_string())?;
    let raw: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&out.stdout).trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| format!("key export: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(StaticKeypair::from_secret(SecretKey::from_bytes(raw)))
}

/// The string fields of a sealed JSON file of the agent's, each a secret.
fn sealed_file_secrets(
    path: &Path,
    key: &StaticKeypair,
    purpose: Purpose,
) -> Vec<(String, Vec<u8>)> {
    let Ok(sealed) = std::fs::read(path) else {
        return Vec::new();
    };
    let Some(bytes) = at_rest::open(&at_rest::sealing_key(key, purpose), &sealed) else {
        return Vec::new();
    };
    json_secrets(&bytes, path)
}

/// The string fields (16 bytes or longer) of a JSON document, each a secret.
fn json_secrets(bytes: &[u8], path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.len() >= 16 => {
                out.push((format!("a secret from {}", path.display()), s.into_bytes()));
            }
            Value::Object(o) => stack.extend(o.into_values()),
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}

/// Returns what was found where; empty when clean.
pub fn scan(p: &Places<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    match agent_static_key(p.agent_state) {
        Ok(key) => {
            needles.extend(spellings("the agent's static key", key.secret().expose()));
            let tokens =
                sealed_file_secrets(&p.agent_state.join("tokens.sealed"), &key, Purpose::Tokens);
            if tokens.is_empty() {
                problems.push("the agent's sealed tokens held no token to look for".into());
            }
            needles.extend(tokens);
            let identity = sealed_file_secrets(
                &p.agent_state.join("gateway-identity.json"),
                &key,
                Purpose::GatewayIdentity,
            );
            if identity.is_empty() {
                problems.push("the sealed gateway identity held no secret to look for".into());
            }
            needles.extend(identity);
        }
        Err(e) => problems.push(format!("the agent's key could not be read: {e}")),
    }
    let secret_files = std::iter::once(KEY_FILE).chain(SEALED_SECRET_FILES);
    for f in secret_files {
        let path = p.agent_state.join(f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(&path) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => problems.push(format!(
                    "{} is readable by others (mode {:o})",
                    path.display(),
                    m.permissions().mode() & 0o777
                )),
                Ok(_) => {}
                Err(e) if f == KEY_FILE && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    match p.store.load() {
        Ok(Some(s)) => {
            needles.extend(spellings(
                "the desktop's private key",
                s.secrets.desktop_key.secret().expose(),
            ));
            needles.extend(spellings(
                "the desktop's outbox key",
                s.secrets.outbox_key.expose(),
            ));
            needles.push((
                "the desktop's device token".into(),
                s.secrets.device_token.expose().as_bytes().to_vec(),
            ));
        }
        _ => problems.push("the desktop's pairing is gone".into()),
    }
    needles.push(("the pairing code".into(), p.code.as_bytes().to_vec()));
    needles.push((
        "the pairing code without dashes".into(),
        p.code.replace('-', "").into_bytes(),
    ));
    needles.push((
        "chat message text".into(),
        PLAINTEXT_MARKER.as_bytes().to_vec(),
    ));

    let mut files: Vec<PathBuf> = p
        .relay_dirs
        .iter()
        .chain(p.redis_dir.as_ref())
        .flat_map(|d| files_under(d))
        .collect();
    files.extend(
        files_under(p.agent_state)
            .into_iter()
            .filter(|f| f.file_name().is_none_or(|n| n != KEY_FILE)),
    );
    files.push(p.agent_log.to_owned());
    files.extend(files_under(p.desktop_data));
    if files.len() < 5 {
        problems.push(format!("too few files to scan: {files:?}"));
    }
    for (what, needle) in &needles {
        for f in files_containing(&files, needle) {
            problems.push(format!("{what} in {}", f.display()));
        }
    }
    problems
}
