//! Where the local channel lives and who may use it: a Unix socket `host.sock` in
//! `$XDG_RUNTIME_DIR/clawtray/` (a private per-user directory; `/tmp/clawtray-<uid>/` where the
//! session has none), the directory 0700 and the socket 0600, and every peer's credentials checked
//! (same user only) — a socket file's mode alone is not trusted.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

/// The socket's file name in [`dir`].
pub const SOCKET: &str = "host.sock";

/// This process's effective user id.
#[must_use]
pub fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail
    unsafe { libc::geteuid() }
}

/// The channel's directory: `$XDG_RUNTIME_DIR/clawtray`, else `/tmp/clawtray-<uid>`.
#[must_use]
pub fn dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("clawtray"),
        _ => std::env::temp_dir().join(format!("clawtray-{}", my_uid())),
    }
}

/// The socket's path.
#[must_use]
pub fn socket_path() -> PathBuf {
    dir().join(SOCKET)
}

/// Create `dir` 0700, or check that an existing one is ours and private (a directory another
/// user made in `/tmp` must not be used).
///
/// # Errors
/// When it cannot be created, or belongs to someone else, or others may enter it.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != my_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of this user; remove it and start clawtray again",
                dir.display()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Listen at `path` (its directory made private first), the socket 0600. A stale socket file (no
/// one listening) is replaced; the caller holds the single-instance lock, so nobody else binds.
///
/// # Errors
/// When the directory or the socket cannot be made.
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        private_dir(parent)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Whether the peer on `stream` is this user.
///
/// # Errors
/// `PermissionDenied` naming the peer's uid when it is someone else.
pub fn check_peer(stream: &UnixStream) -> io::Result<()> {
    let cred = stream.peer_cred()?;
    if cred.uid() == my_uid() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "a process of user {} tried to use clawtray's local socket; refused",
                cred.uid()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_and_a_peer_of_this_user_passes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rt/clawtray").join(SOCKET);
        let l = listen(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
        let c = UnixStream::connect(&path).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        check_peer(&s).unwrap();
        drop(c);
        // a second listen replaces the stale file
        drop(l);
        listen(&path).unwrap();
    }

    #[test]
    fn a_directory_others_may_enter_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("open");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
    }
}
