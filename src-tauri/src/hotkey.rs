//! The global hotkey that toggles the chat (`settings.json` → `hotkey`). Global shortcuts do not
//! exist on Wayland, so there the feature stays off and the tray menu is the way in. On Linux
//! (X11) the key is grabbed by [`crate::x11_hotkey`], which sleeps until it is pressed; elsewhere
//! the global-shortcut plugin does it.

use std::str::FromStr;

use tauri::AppHandle;
use tauri_plugin_global_shortcut::Shortcut;
#[cfg(not(target_os = "linux"))]
use tauri_plugin_global_shortcut::{GlobalShortcutExt, ShortcutState};

use crate::windows;

/// Whether this session can have global shortcuts at all.
#[must_use]
pub fn supported() -> bool {
    let wayland = std::env::var("XDG_SESSION_TYPE")
        .is_ok_and(|t| t.eq_ignore_ascii_case("wayland"))
        || (std::env::var_os("WAYLAND_DISPLAY").is_some() && std::env::var_os("DISPLAY").is_none());
    !wayland
}

/// The plugin, with a handler that toggles the chat on key press (not used on Linux).
#[cfg(not(target_os = "linux"))]
pub fn plugin() -> tauri::plugin::TauriPlugin<tauri::Wry> {
    tauri_plugin_global_shortcut::Builder::new()
        .with_handler(|app, _shortcut, event| {
            if event.state() == ShortcutState::Pressed {
                windows::toggle_main(app);
            }
        })
        .build()
}

/// Register `hotkey`; returns the label to show in the tray menu when it is active.
pub fn register(app: &AppHandle, hotkey: Option<&str>) -> Option<String> {
    let hotkey = hotkey?.trim();
    if hotkey.is_empty() {
        return None;
    }
    if !supported() {
        tracing::info!("global shortcuts are not available on Wayland; use the tray menu");
        return None;
    }
    let shortcut = match Shortcut::from_str(hotkey) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("the hotkey {hotkey:?} in settings.json is not valid ({e}); no hotkey");
            return None;
        }
    };
    match grab(app, shortcut) {
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

#[cfg(target_os = "linux")]
fn grab(app: &AppHandle, shortcut: Shortcut) -> Result<(), String> {
    let app = app.clone();
    crate::x11_hotkey::grab(shortcut, move || {
        let handle = app.clone();
        let _ = app.run_on_main_thread(move || windows::toggle_main(&handle));
    })
}

#[cfg(not(target_os = "linux"))]
fn grab(app: &AppHandle, shortcut: Shortcut) -> Result<(), String> {
    app.global_shortcut()
        .register(shortcut)
        .map_err(|e| e.to_string())
}
