//! The local channel between the two processes of the desktop app: the **tray host** (the
//! long-lived `clawtray` process that owns the [`crate::RelayClient`], the tray icon and the
//! notifications) and the **chat window** (`clawtray-chat`, the Tauri/WebKit process that lives
//! only while the chat is open). A second launch of the host uses it too, to hand over to the
//! first.
//!
//! - [`wire`]: what crosses it — one JSON object per line: calls and their answers, the core's
//!   events, and the host's requests to the window. The same types the web view sees (ts-rs).
//! - [`endpoint`]: where it lives (a Unix socket in `$XDG_RUNTIME_DIR/clawtray/`, 0700/0600) and
//!   the same-user check on every peer.
//! - [`server`]: the host's side: serves the core to windows and launches.
//! - [`link`]: the window's side: an actor that keeps the connection up, retries what it may, and
//!   reports the host's loss and return.
//!
//! Linux (Unix sockets) is what is built and tested; a Windows named-pipe endpoint would slot in
//! behind [`endpoint`].

pub mod endpoint;
pub mod link;
pub mod server;
pub mod wire;
