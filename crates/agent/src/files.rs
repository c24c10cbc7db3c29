//! Small file helpers for the state dir: private (0600) atomic writes, race-free
//! create-if-absent, and setting damaged files aside instead of crashing.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A temp file name next to `path`, unique per process and call: two processes writing the same
/// file must never share a temp file.
fn temp_path(path: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    let _ = clawtray_proto::secret::fill_random(&mut r);
    path.with_extension(format!("tmp-{}-{}", std::process::id(), hex::encode(r)))
}

/// Write `bytes` to a fresh private (0600) temp file next to `path`, fsynced; returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let tmp = temp_path(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "cannot write {}: {e} (is the disk full?)",
            tmp.display()
        ));
    }
    Ok(tmp)
}

/// Write `bytes` to `path` atomically with mode 0600 (temp file, fsync, rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = write_temp(path, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}

/// Create `path` with `bytes` (0600) only if it does not exist yet, atomically: when two
/// processes race, exactly one file wins. Returns false if it already existed.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<bool, String> {
    let tmp = write_temp(path, bytes)?;
    let result = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
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
