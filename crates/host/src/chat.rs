//! The chat window process: started when the chat is wanted, asked to close (or killed when it
//! does not) when the person toggles it off. It connects back over the local channel itself; the
//! host only starts it, watches it end, and never depends on it — a window that crashes changes
//! nothing in the core.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tracing::{info, warn};

/// The window program's name, next to the host's own executable.
pub const CHAT_BIN: &str = "clawtray-chat";
/// A window asked to close gets this long before it is killed.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// The host prewarms the window's files this long after it starts (not to compete with login).
pub const PREWARM_AFTER: Duration = Duration::from_secs(5);
/// A prewarm run that takes longer than this is stopped.
const PREWARM_WAIT: Duration = Duration::from_secs(30);

/// Where the window program is: `$CLAWTRAY_CHAT_BIN`, else next to this executable.
#[must_use]
pub fn chat_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAWTRAY_CHAT_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(CHAT_BIN)))
        .unwrap_or_else(|| PathBuf::from(CHAT_BIN))
}

/// The window process, when there is one.
pub struct ChatProcess {
    bin: PathBuf,
    child: Option<Child>,
}

impl ChatProcess {
    #[must_use]
    pub fn new(bin: PathBuf) -> Self {
        Self { bin, child: None }
    }

    /// Whether a window process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    false
                }
            },
            None => false,
        }
    }

    /// Run the window program once with `--prewarm` (it reads its libraries into the page cache
    /// and exits at once, see `clawtray_client::warm`), so the first click after login does not
    /// wait on the disk. Reaped in the background; a failure only means a slower first opening.
    pub fn prewarm(&self) {
        let started = Command::new(&self.bin)
            .arg("--prewarm")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match started {
            Ok(mut child) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(PREWARM_WAIT, child.wait()).await {
                        Ok(Ok(s)) => {
                            tracing::debug!(status = %s, "the chat window's files are warm")
                        }
                        Ok(Err(e)) => warn!("prewarming the chat window: {e}"),
                        Err(_) => {
                            warn!("prewarming the chat window took over {PREWARM_WAIT:?}; stopped")
                        }
                    }
                });
            }
            Err(e) => warn!(
                "cannot prewarm the chat window ({}): {e}",
                self.bin.display()
            ),
        }
    }

    /// Start the window (nothing when one runs).
    ///
    /// # Errors
    /// A sentence when the program cannot be started.
    pub fn open(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        let child = Command::new(&self.bin)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the chat window ({}): {e}; is clawtray installed completely?",
                    self.bin.display()
                )
            })?;
        info!(pid = child.id(), "the chat window started");
        self.child = Some(child);
        Ok(())
    }

    /// Kill the window if it still runs (it was asked to close [`CLOSE_GRACE`] ago).
    pub async fn kill_if_running(&mut self) {
        if let Some(c) = &mut self.child {
            if matches!(c.try_wait(), Ok(None)) {
                warn!("the chat window did not close when asked; ending it");
                let _ = c.kill().await;
            }
        }
        self.child = None;
    }

    /// Wait until the window process ends (forever when there is none).
    pub async fn exited(&mut self) {
        match &mut self.child {
            Some(c) => {
                let status = c.wait().await;
                info!(?status, "the chat window ended");
                self.child = None;
            }
            None => std::future::pending().await,
        }
    }
}
