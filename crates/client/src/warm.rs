//! Warming the page cache for the chat window, so the first click after login opens it as fast as
//! the later ones. The window program run with `--prewarm` calls [`read_ahead_mapped_files`] and
//! exits: by then the dynamic loader has mapped every library it links (GTK, WebKit, …), and this
//! asks the kernel to read each of those files — and WebKit's helper programs, which the web view
//! starts as processes of their own — into the page cache ahead of use (`posix_fadvise
//! WILLNEED`). Page cache is shared and reclaimable: no process keeps that memory, and the first
//! real opening no longer waits on the disk. Linux only; elsewhere it does nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Directories next to a mapped library whose programs a library starts as processes (WebKit's
/// web and network processes, its injected bundle).
const HELPER_DIRS: &[(&str, &str)] = &[
    ("libwebkit2gtk-4.1.so", "webkit2gtk-4.1"),
    ("libwebkit2gtk-4.0.so", "webkit2gtk-4.0"),
];

/// Files this process has mapped (`/proc/self/maps`), and the helper programs of the libraries
/// among them.
#[must_use]
pub fn files_to_warm() -> BTreeSet<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let files = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    with_helpers(files)
}

/// `files` and the files in the helper directories of the libraries among them.
fn with_helpers(mut files: BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let helpers: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_str()?;
            let (_, dir) = HELPER_DIRS.iter().find(|(lib, _)| name.starts_with(lib))?;
            Some(f.parent()?.join(dir))
        })
        .collect();
    for dir in helpers {
        collect_files(&dir, 3, &mut files);
    }
    files
}

fn collect_files(dir: &Path, depth: u32, into: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() && depth > 0 {
            collect_files(&e.path(), depth - 1, into);
        } else if kind.is_file() {
            into.insert(e.path());
        }
    }
}

/// Ask the kernel to read every file of [`files_to_warm`] into the page cache; returns how many
/// files and bytes were asked for. Never fails: a file that cannot be opened is skipped.
#[must_use]
pub fn read_ahead_mapped_files() -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for path in files_to_warm() {
        if let Some(n) = read_ahead(&path) {
            files += 1;
            bytes += n;
        }
    }
    (files, bytes)
}

#[cfg(target_os = "linux")]
fn read_ahead(path: &Path) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    // SAFETY: advice on a descriptor we own, for its whole length; no memory is passed
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
    (r == 0).then_some(len)
}

#[cfg(not(target_os = "linux"))]
fn read_ahead(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_s_own_mapped_files_are_found_and_read_ahead() {
        let files = files_to_warm();
        let exe = std::env::current_exe().unwrap();
        assert!(
            files.contains(&exe),
            "the test binary itself is mapped: {files:?}"
        );
        assert!(
            files
                .iter()
                .any(|f| f.to_string_lossy().contains("libc.so")),
            "libc is mapped: {files:?}"
        );
        let (n, bytes) = read_ahead_mapped_files();
        assert!(n >= 2 && bytes > 0, "{n} files, {bytes} bytes");
    }

    #[test]
    fn helper_programs_of_a_mapped_library_are_included() {
        let dir = tempfile::tempdir().unwrap();
        let helpers = dir.path().join("webkit2gtk-4.1");
        std::fs::create_dir_all(helpers.join("injected-bundle")).unwrap();
        std::fs::write(helpers.join("WebKitWebProcess"), b"x").unwrap();
        std::fs::write(helpers.join("injected-bundle/libbundle.so"), b"x").unwrap();
        let lib = dir.path().join("libwebkit2gtk-4.1.so.0");
        let other = dir.path().join("libgtk-3.so.0");
        let into = with_helpers([lib.clone(), other.clone()].into_iter().collect());
        assert!(into.contains(&helpers.join("WebKitWebProcess")), "{into:?}");
        assert!(
            into.contains(&helpers.join("injected-bundle/libbundle.so")),
            "{into:?}"
        );
        assert_eq!(into.len(), 4, "the two libraries and two helpers: {into:?}");
    }
}
