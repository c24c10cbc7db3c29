//! Scans for secrets and plaintext where they must not be: every file under a folder, and
//! whether some bytes contain a needle.

use std::path::{Path, PathBuf};

/// Every file under `dir`, recursively (nothing if it does not exist).
#[must_use]
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
#[must_use]
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Those of `files` whose bytes contain `needle`.
#[must_use]
pub fn files_containing(files: &[PathBuf], needle: &[u8]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| std::fs::read(f).is_ok_and(|bytes| contains(&bytes, needle)))
        .cloned()
        .collect()
}

/// What `secret-tool search --all` (libsecret's own CLI: an independent look at the Secret
/// Service) finds for `service` / `username`, stdout and stderr together.
#[must_use]
pub fn secret_tool_search(service: &str, username: &str) -> String {
    let out = std::process::Command::new("secret-tool")
        .args(["search", "--all", "service", service, "username", username])
        .output()
        .expect("secret-tool runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
