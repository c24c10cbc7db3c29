//! The platform parts of the tray host, behind small traits so other systems' backends can follow
//! (Linux is what is built and tested): the tray icon ([`TrayBackend`]: StatusNotifierItem here,
//! `tray-icon` on Windows/macOS), notifications ([`Notifier`]: the freedesktop notification
//! service here), start at login ([`Autostart`]: an XDG autostart entry here). The local channel's
//! endpoint is `clawtray_client::ipc::endpoint` (a Unix socket; a named pipe on Windows).

use clawtray_client::ConnectionState;
use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest};

/// What the person asked for, from the tray, a notification or the hotkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Left click on the icon, or the hotkey: open the chat, or close it when it is open.
    ToggleChat,
    /// "Open chat" / "Pair…" / a notification's click: open the chat (or raise it).
    OpenChat,
    Unpair,
    Reconnect,
    SetAutostart(bool),
    /// "Check for updates" in the tray.
    CheckForUpdates,
    /// "Install clawtray X and restart", from the tray or the update's notification: the
    /// person's yes to the update on offer.
    InstallUpdate,
    Quit,
    /// An answer to an exec approval, from its notification's buttons.
    Decide {
        id: String,
        decision: ApprovalDecision,
    },
}

/// A tray icon that shows the state and reports [`Intent`]s.
#[allow(async_fn_in_trait)]
pub trait TrayBackend {
    /// Show `state` (icon and tooltip; what the menu offers).
    async fn show_state(&self, state: &ConnectionState);
    /// Show whether start at login is on.
    async fn show_autostart(&self, on: bool);
    /// Show that `waiting` approvals need the person (0: nothing does).
    async fn show_approvals(&self, waiting: usize);
    /// Take the icon away.
    async fn shutdown(&self);
}

/// The desktop's notifications.
#[allow(async_fn_in_trait)]
pub trait Notifier {
    /// Tell the person `summary` / `body`; a click on it asks for [`Intent::OpenChat`].
    async fn notify(&self, summary: &str, body: &str);
    /// Ask the person about an exec approval: its answers as buttons where the server has
    /// actions (each one an [`Intent::Decide`]); a click elsewhere opens the chat's card.
    async fn ask(&self, approval: &ApprovalRequest);
    /// The approval no longer waits: take its notification away.
    async fn withdraw(&self, approval_id: &str);
}

/// Start at login.
pub trait Autostart {
    /// Whether the host starts at login.
    fn is_enabled(&self) -> bool;
    /// Turn it on or off.
    ///
    /// # Errors
    /// A sentence saying what could not be written or removed.
    fn set(&self, on: bool) -> Result<(), String>;
}
