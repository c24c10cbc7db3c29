//! The host link's events, turned into what the web view sees (`clawtray://event`): the core's
//! events, each with the agent (slot) it is about; a lost host as a notice and, when it is back, the state again (the UI
//! redraws from it); the host's requests carried out — close the window, bring it to the front,
//! hand a pairing link to the dialog (`clawtray://pair-link`, kept until the UI takes it).

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::mpsc;

use clawtray_client::ipc::link::LinkEvent;
use clawtray_client::ipc::wire::{Call, FromHost, Status};
use clawtray_client::ClientEvent;

use crate::{windows, Core};

pub const EVENT: &str = "clawtray://event";
pub const PAIR_LINK_EVENT: &str = "clawtray://pair-link";

/// A pairing link for the dialog: the person confirms before anything happens.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct PairLink {
    pub code: String,
    pub relay: Option<String>,
}

/// The event as the UI reads it: the core's event, with `agent` (the slot it is about) added.
fn tagged(event: &ClientEvent, agent: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
    if let (Some(a), Some(o)) = (agent, v.as_object_mut()) {
        o.insert("agent".into(), a.into());
    }
    v
}

/// Show the window from the main thread, without waiting for it. This loop must never wait on
/// the main thread: a pairing link arrives as soon as the host sees the window connect, before
/// `setup` has built the window, and a second `main` window built from here then never came back —
/// which stopped every event after it (found by the installed-packages test: a link-started app
/// paired, and then showed nothing its agent said).
fn raise(app: &AppHandle) {
    let handle = app.clone();
    if let Err(e) = app.run_on_main_thread(move || windows::show_main(&handle)) {
        tracing::warn!("cannot show the window: {e}");
    }
}

pub fn forward(app: AppHandle, mut events: mpsc::Receiver<LinkEvent>) {
    tauri::async_runtime::spawn(async move {
        let mut lost = false;
        while let Some(ev) = events.recv().await {
            match ev {
                LinkEvent::Host(FromHost::Event { event, agent }) => {
                    let _ = app.emit(EVENT, tagged(&event, agent.as_deref()));
                }
                LinkEvent::Host(FromHost::Close) => app.exit(0),
                LinkEvent::Host(FromHost::Raise) => raise(&app),
                LinkEvent::Host(FromHost::PairLink { code, relay }) => {
                    let link = PairLink { code, relay };
                    if let Ok(mut l) = app.state::<Core>().pair_link.lock() {
                        *l = Some(link.clone());
                    }
                    raise(&app);
                    let _ = app.emit(PAIR_LINK_EVENT, &link);
                }
                LinkEvent::Host(FromHost::Reply { .. }) => {}
                LinkEvent::Lost { reason } => {
                    tracing::warn!("lost the tray host: {reason}");
                    if !lost {
                        lost = true;
                        let _ = app.emit(
                            EVENT,
                            ClientEvent::Notice {
                                message: "clawtray's tray host is not running; reconnecting…"
                                    .into(),
                            },
                        );
                    }
                }
                LinkEvent::Connected => {
                    if std::mem::take(&mut lost) {
                        let host = app.state::<Core>().host.clone();
                        if let Ok(s) = host.call_as::<Status>(Call::Status).await {
                            let _ = app.emit(EVENT, ClientEvent::State { state: s.state });
                        }
                        let _ = app.emit(
                            EVENT,
                            ClientEvent::Notice {
                                message: "Reconnected to clawtray's tray host.".into(),
                            },
                        );
                    }
                }
            }
        }
    });
}
