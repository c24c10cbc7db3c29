//! The global hotkey that toggles the chat (`settings.json` → `hotkey`, in the accelerator
//! syntax, e.g. `CommandOrControl+Shift+Space`). X11 only: global shortcuts do not exist on
//! Wayland, so there the feature stays off and the tray is the way in.

use std::str::FromStr;

use global_hotkey::hotkey::HotKey;
use tokio::sync::mpsc;

use crate::platform::Intent;

/// Whether this session can have global shortcuts at all.
#[must_use]
pub fn supported() -> bool {
    let wayland = std::env::var("XDG_SESSION_TYPE")
        .is_ok_and(|t| t.eq_ignore_ascii_case("wayland"))
        || (std::env::var_os("WAYLAND_DISPLAY").is_some() && std::env::var_os("DISPLAY").is_none());
    !wayland && std::env::var_os("DISPLAY").is_some()
}

/// Grab `hotkey`; each press sends [`Intent::ToggleChat`]. Returns the label for the tray menu
/// when the key is active.
pub fn register(hotkey: Option<&str>, intents: mpsc::UnboundedSender<Intent>) -> Option<String> {
    let hotkey = hotkey?.trim();
    if hotkey.is_empty() {
        return None;
    }
    if !supported() {
        tracing::info!("global shortcuts need an X11 display; use the tray icon");
        return None;
    }
    let shortcut = match HotKey::from_str(hotkey) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("the hotkey {hotkey:?} in settings.json is not valid ({e}); no hotkey");
            return None;
        }
    };
    match crate::x11_hotkey::grab(shortcut, move || {
        let _ = intents.send(Intent::ToggleChat);
    }) {
        Ok(()) => {
            tracing::info!(hotkey, "the hotkey toggles the chat");
            Some(hotkey.replace("CommandOrControl", "Ctrl"))
        }
        Err(e) => {
            tracing::warn!(
                "cannot register the hotkey {hotkey:?} (another program may hold it): {e}"
            );
            None
        }
    }
}
