//! Forwards the core's events to the web view (`clawtray://event`), keeps the tray in step with
//! the connection state, and notifies when a reply finishes while the chat is not in view.

use tauri::{AppHandle, Emitter};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::{broadcast, watch};

use clawtray_client::{ClientEvent, ConnectionState};
use clawtray_proto::chat::ToDesktop;

use crate::{tray, windows};

pub const EVENT: &str = "clawtray://event";

pub fn forward(
    app: AppHandle,
    mut events: broadcast::Receiver<ClientEvent>,
    state: watch::Receiver<ConnectionState>,
) {
    tray::update(&app, &state.borrow().clone());
    tauri::async_runtime::spawn(async move {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(n, "the UI missed events; it reloads its state");
                    let _ = app.emit(EVENT, ClientEvent::Notice { message: "Some updates were skipped; reopen the chat if something looks stale.".into() });
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            match &ev {
                ClientEvent::State { state } => tray::update(&app, state),
                ClientEvent::Chat {
                    message: ToDesktop::ChatReply { text, .. },
                } if !windows::main_visible(&app) => {
                    let preview: String = text.chars().take(120).collect();
                    let _ = app
                        .notification()
                        .builder()
                        .title("Your agent replied")
                        .body(preview)
                        .show();
                }
                _ => {}
            }
            let _ = app.emit(EVENT, &ev);
        }
    });
}
