//! One tray host per user: the first one holds an exclusive lock on `host.lock` next to the local
//! socket for its whole life; a second launch finds the lock taken and hands over to the first
//! through the socket (show the chat, with a pairing link if it was given one), then exits.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use clawtray_client::ipc::link::HostLink;
use clawtray_client::ipc::wire::{Call, Role};

/// How long a second launch waits for the first to answer (or to finish quitting).
pub const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// The lock held by the running host (released when the process ends, however it ends).
pub struct Lock {
    _file: File,
}

/// Take the lock in `dir`, or `None` when another host holds it.
///
/// # Errors
/// When the lock file cannot be opened.
pub fn try_lock(dir: &Path) -> std::io::Result<Option<Lock>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("host.lock"))?;
    // SAFETY: flock on a descriptor we own; no memory is passed
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        Ok(Some(Lock { _file: file }))
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

/// Ask the running host to show the chat (with `link` for the pairing dialog).
///
/// # Errors
/// A sentence when it does not answer in [`HANDOVER_WAIT`].
pub async fn hand_over(socket: &Path, link: Option<String>) -> Result<(), String> {
    let (host, _events) = HostLink::start(socket.to_owned(), Role::Launch);
    match tokio::time::timeout(HANDOVER_WAIT, host.call(Call::Show { link })).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.message),
        Err(_) => Err(format!(
            "another clawtray holds {} but did not answer in {HANDOVER_WAIT:?}",
            socket.display()
        )),
    }
}
