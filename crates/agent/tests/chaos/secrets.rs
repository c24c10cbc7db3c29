//! The scan after a chaos run: private keys, device tokens, the pairing code and message text
//! must not be found in clear in the relay's database and log, the agent's state dir (its two key
//! files aside, which must be 0600), the agent's log, or the desktop's data dir.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use clawtray_client::session_store::{MemorySessionStore, SessionStore};
use clawtray_testkit::scan::{files_containing, files_under};

/// In every chat message the chaos test sends.
pub const PLAINTEXT_MARKER: &str = "chaos-plaintext-7f3a";

/// The agent's key files: secrets by design, private to the agent's user.
const KEY_FILES: [&str; 2] = ["agent-key.json", "gateway-identity.json"];

pub struct Places<'a> {
    pub relay_dir: &'a Path,
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

/// The string fields of a JSON key file, each a secret.
fn key_file_secrets(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
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
    for f in KEY_FILES {
        let path = p.agent_state.join(f);
        needles.extend(key_file_secrets(&path));
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
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    if needles.is_empty() {
        problems.push("the agent's key files held no secrets to look for".into());
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

    let mut files: Vec<PathBuf> = files_under(p.relay_dir);
    files.extend(files_under(p.agent_state).into_iter().filter(|f| {
        f.file_name()
            .is_none_or(|n| !KEY_FILES.iter().any(|k| n == *k))
    }));
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
