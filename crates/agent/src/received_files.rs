//! Files on their way from a desktop to the gateway: each part ([`ToAgent::FilePart`]) is kept,
//! sealed at rest and fsynced, under `files/` in the state dir before it is acknowledged; the
//! chat message that carries the file puts it back together ([`ReceivedFiles::assemble`]) when
//! it goes to the gateway, and its parts are removed once the message is done with. A part
//! arrives once (the delivery layer drops resends), so a part file is written once; writing it
//! again after a crash writes the same bytes.
//!
//! Layout: `files/<desktop>/<file id>/<index>`, `<desktop>` being a hash of the desktop's relay
//! session (not the session id itself: it is not a path component anyone should have to trust).
//!
//! [`ToAgent::FilePart`]: clawtray_proto::chat::ToAgent::FilePart

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clawtray_proto::files::{decode_part, Assembly, Attachment, PartError};
use clawtray_proto::secret::SecretKey;

use crate::at_rest;
use crate::error::AgentError;
use crate::files;

/// The folder inside the state dir.
pub const FILES_DIR: &str = "files";

/// Parts of files no message came for are removed after this long (a desktop that unpaired,
/// or died, mid-transfer and never came back).
pub const ORPHAN_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The kept parts.
pub struct ReceivedFiles {
    dir: PathBuf,
    key: SecretKey,
}

impl std::fmt::Debug for ReceivedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedFiles")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Why a part could not be kept, or a file not put back together.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Part(#[from] PartError),
    #[error(transparent)]
    Disk(#[from] AgentError),
    #[error("part {index} of “{name}” could not be read back from the agent's disk (damaged)")]
    Unreadable { name: String, index: u32 },
}

impl ReceivedFiles {
    /// The store under `state_dir`, sealing with `key`.
    #[must_use]
    pub fn new(state_dir: &Path, key: SecretKey) -> Self {
        Self {
            dir: state_dir.join(FILES_DIR),
            key,
        }
    }

    fn desktop_dir(&self, desktop: &str) -> PathBuf {
        let h = clawtray_proto::files::sha256_hex(desktop.as_bytes());
        self.dir.join(&h[..24])
    }

    fn part_path(&self, desktop: &str, file: &str, index: u32) -> PathBuf {
        self.desktop_dir(desktop).join(file).join(index.to_string())
    }

    /// Keep one part (checked, sealed, fsynced).
    pub fn put_part(
        &self,
        desktop: &str,
        file: &str,
        index: u32,
        data: &str,
    ) -> Result<(), FileError> {
        let bytes = decode_part(file, data)?;
        let sealed = at_rest::seal(&self.key, &bytes).map_err(AgentError::from)?;
        // write_private makes the file's (private) directories
        files::write_private(&self.part_path(desktop, file, index), &sealed)?;
        Ok(())
    }

    /// Put `a` back together from its parts and check it is the file described.
    pub fn assemble(&self, desktop: &str, a: &Attachment) -> Result<Vec<u8>, FileError> {
        let mut asm = Assembly::new(a)?;
        for index in 0..a.parts {
            let path = self.part_path(desktop, &a.file, index);
            let sealed = files::read_if_exists(&path)?.ok_or_else(|| PartError::Missing {
                name: a.name.clone(),
                index,
            })?;
            let plain = at_rest::open(&self.key, &sealed).ok_or(FileError::Unreadable {
                name: a.name.clone(),
                index,
            })?;
            asm.push(&plain)?;
        }
        Ok(asm.finish()?)
    }

    /// Remove the parts of `file` (its message is done with).
    pub fn remove(&self, desktop: &str, file: &str) {
        if clawtray_proto::files::valid_file_id(file) {
            let _ = std::fs::remove_dir_all(self.desktop_dir(desktop).join(file));
        }
    }

    /// Remove everything a desktop sent (its pairing ended).
    pub fn forget_desktop(&self, desktop: &str) {
        let _ = std::fs::remove_dir_all(self.desktop_dir(desktop));
    }

    /// Remove files whose newest part is older than `age`; returns how many.
    pub fn sweep(&self, age: Duration) -> usize {
        let Ok(desktops) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for d in desktops.flatten() {
            let Ok(fs) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in fs.flatten() {
                let newest = std::fs::read_dir(f.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|p| p.metadata().ok()?.modified().ok())
                    .max();
                let stale = newest.is_none_or(|t| now.duration_since(t).unwrap_or_default() > age);
                if stale && std::fs::remove_dir_all(f.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawtray_proto::files::{describe, parts};

    fn store() -> (tempfile::TempDir, ReceivedFiles) {
        let d = tempfile::tempdir().unwrap();
        let s = ReceivedFiles::new(d.path(), SecretKey::from_bytes([7; 32]));
        (d, s)
    }

    #[test]
    fn parts_kept_sealed_come_back_as_the_file() {
        let (d, s) = store();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let a = describe("f1", "x.bin", "application/octet-stream", &bytes);
        for (i, p) in parts(&bytes) {
            s.put_part("desk", "f1", i, &p).unwrap();
        }
        // sealed at rest: no part holds the file's bytes in clear
        let p0 = std::fs::read(s.part_path("desk", "f1", 0)).unwrap();
        assert!(!p0.windows(64).any(|w| w == &bytes[..64]));
        assert_eq!(s.assemble("desk", &a).unwrap(), bytes);
        // another desktop's parts are another file
        assert!(matches!(
            s.assemble("other", &a),
            Err(FileError::Part(PartError::Missing { index: 0, .. }))
        ));
        s.remove("desk", "f1");
        assert!(s.assemble("desk", &a).is_err());
        drop(d);
    }

    #[test]
    fn a_damaged_part_or_a_lying_description_is_a_sentence() {
        let (_d, s) = store();
        let bytes = vec![5u8; 100_000];
        let a = describe("f2", "y.bin", "application/octet-stream", &bytes);
        for (i, p) in parts(&bytes) {
            s.put_part("desk", "f2", i, &p).unwrap();
        }
        let path = s.part_path("desk", "f2", 1);
        let mut sealed = std::fs::read(&path).unwrap();
        sealed[20] ^= 1;
        std::fs::write(&path, sealed).unwrap();
        let e = s.assemble("desk", &a).unwrap_err();
        assert!(matches!(e, FileError::Unreadable { index: 1, .. }), "{e}");
        let mut wrong = a.clone();
        wrong.sha256 = "0".repeat(64);
        s.put_part("desk", "f2", 1, &parts(&bytes).nth(1).unwrap().1)
            .unwrap();
        assert!(matches!(
            s.assemble("desk", &wrong),
            Err(FileError::Part(PartError::WrongHash { .. }))
        ));
        assert!(matches!(
            s.put_part("desk", "../../etc", 0, "AAAA"),
            Err(FileError::Part(PartError::BadFileId))
        ));
    }

    #[test]
    fn sweeping_removes_only_stale_files_and_forgetting_a_desktop_removes_its_own() {
        let (_d, s) = store();
        s.put_part("a", "f1", 0, "AAAA").unwrap();
        s.put_part("b", "f2", 0, "AAAA").unwrap();
        assert_eq!(s.sweep(Duration::from_secs(3600)), 0);
        assert_eq!(s.sweep(Duration::ZERO), 2);
        s.put_part("a", "f3", 0, "AAAA").unwrap();
        s.put_part("b", "f4", 0, "AAAA").unwrap();
        s.forget_desktop("a");
        assert!(!s.desktop_dir("a").exists());
        assert!(s.part_path("b", "f4", 0).exists());
    }
}
