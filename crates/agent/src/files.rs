//! Small file helpers for the state dir: private (0600) atomic writes, race-free
//! create-if-absent, setting damaged files aside instead of crashing, and sweeping up the temp
//! files of writers that were killed mid-write.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};

/// A temp file name next to `path`, unique per process and call: two processes writing the same
/// file must never share a temp file.
fn temp_path(path: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    let _ = clawtray_proto::secret::fill_random(&mut r);
    path.with_extension(format!("tmp-{}-{}", std::process::id(), hex::encode(r)))
}

/// Create `dir` (and its parents) if missing and make it private (0700), before anything is
/// written into it.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    clawtray_outbox::create_private_dir(dir).map_err(AgentError::io("create (private)", dir))
}

/// Write `bytes` to a fresh private (0600) temp file next to `path`, fsynced; returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = path.parent().ok_or_else(|| AgentError::Io {
        action: "write",
        path: path.to_owned(),
        source: std::io::Error::other("it has no parent directory"),
    })?;
    ensure_private_dir(dir)?;
    let tmp = temp_path(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(AgentError::io("write", &tmp))?;
    if let Err(source) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(AgentError::Write { path: tmp, source });
    }
    Ok(tmp)
}

/// The bytes of `path`, or `None` when there is no such file.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("read", path)(e)),
    }
}

/// Write `bytes` to `path` atomically with mode 0600 (temp file, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AgentError::io("replace", path)(e)
    })
}

/// Create `path` with `bytes` (0600) only if it does not exist yet, atomically: when two
/// processes race, exactly one file wins. Returns false if it already existed.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = write_temp(path, bytes)?;
    let result = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(AgentError::io("create", path)(e)),
    }
}

/// Move a damaged file aside (`<name>.damaged-<unix time>`); returns the new name.
pub fn set_aside(path: &Path) -> String {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_extension(format!("damaged-{stamp}"));
    let _ = std::fs::rename(path, &aside);
    aside.display().to_string()
}

/// The pid in a temp file name made by [`temp_path`] (`<name>.tmp-<pid>-<12 hex>`).
fn temp_owner(file_name: &str) -> Option<u32> {
    let (_, rest) = file_name.rsplit_once(".tmp-")?;
    let (pid, tag) = rest.split_once('-')?;
    if tag.len() != 12 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether the process that made a temp file may still be writing it: on Linux, whether its pid
/// is alive; elsewhere, whether the file changed in the last hour.
fn writer_may_be_alive(pid: u32, meta: Option<std::fs::Metadata>) -> bool {
    if cfg!(target_os = "linux") {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    meta.and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < std::time::Duration::from_secs(3600))
}

/// Remove the temp files in `dir` that writers killed mid-write left behind (a SIGKILL between
/// creating the temp file and renaming it); a live writer's are left alone. Returns how many went.
pub fn remove_orphan_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if pid == std::process::id() || writer_may_be_alive(pid, entry.metadata().ok()) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_their_writer() {
        let tmp = temp_path(Path::new("/x/pending.sealed"));
        let name = tmp.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(temp_owner(name), Some(std::process::id()));
        assert_eq!(temp_owner("pending.sealed"), None);
        assert_eq!(temp_owner("pending.tmp-12-nothex!!!!!!"), None);
        assert_eq!(temp_owner("pending.damaged-1700000000"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_killed_writers_temp_files_are_swept_and_nothing_else(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // a process that has exited: its pid names no live process (until reused, then kept)
        let mut child = std::process::Command::new("true").spawn()?;
        let dead = child.id();
        child.wait()?;
        let orphan = dir.path().join(format!("pending.tmp-{dead}-0123456789ab"));
        let ours = temp_path(&dir.path().join("pending.sealed"));
        let live_other = dir.path().join("pairings.tmp-1-0123456789ab"); // pid 1 is alive
        let keep = [
            "pending.sealed",
            "agent-key.json",
            "pending.damaged-1700000000",
        ];
        for p in [&orphan, &ours, &live_other] {
            std::fs::write(p, b"x")?;
        }
        for k in keep {
            std::fs::write(dir.path().join(k), b"x")?;
        }
        assert_eq!(remove_orphan_temps(dir.path()), 1);
        assert!(!orphan.exists());
        assert!(ours.exists() && live_other.exists());
        for k in keep {
            assert!(dir.path().join(k).exists(), "{k} was kept");
        }
        Ok(())
    }
}
