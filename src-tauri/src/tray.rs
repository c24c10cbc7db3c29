//! The tray icon and its menu. The icon and tooltip show the connection state; the menu is the
//! way in on Linux, where tray hosts do not report clicks.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager};
use tauri_plugin_autostart::ManagerExt;

use clawtray_client::state::PeerPresence;
use clawtray_client::ConnectionState;

use crate::{windows, Core};

const TRAY: &str = "main";

fn icon(state: &ConnectionState) -> (&'static [u8], &'static str) {
    match state {
        ConnectionState::Online {
            peer: PeerPresence::Online,
        } => (
            include_bytes!("../../icons/tray-online.png"),
            "clawtray — online",
        ),
        ConnectionState::Online {
            peer: PeerPresence::Away,
        } => (
            include_bytes!("../../icons/tray-away.png"),
            "clawtray — your agent is offline; messages queue",
        ),
        ConnectionState::Connecting | ConnectionState::Handshaking | ConnectionState::Pairing => (
            include_bytes!("../../icons/tray-connecting.png"),
            "clawtray — connecting…",
        ),
        ConnectionState::WaitingToRetry { .. } => (
            include_bytes!("../../icons/tray-offline.png"),
            "clawtray — offline, retrying",
        ),
        ConnectionState::Refused { .. } => (
            include_bytes!("../../icons/tray-offline.png"),
            "clawtray — the relay refuses this pairing; open to pair again",
        ),
        ConnectionState::Unpaired | ConnectionState::NeedsRepairing { .. } => (
            include_bytes!("../../icons/tray-unpaired.png"),
            "clawtray — not paired",
        ),
    }
}

/// Build the tray; `hotkey` is the active chat hotkey's label, shown on "Open chat".
pub fn build(app: &AppHandle, hotkey: Option<&str>) -> tauri::Result<()> {
    let open_label = hotkey.map_or_else(|| "Open chat".to_owned(), |h| format!("Open chat ({h})"));
    let open = MenuItem::with_id(app, "open", open_label, true, None::<&str>)?;
    let pair = MenuItem::with_id(app, "pair", "Pair…", true, None::<&str>)?;
    let unpair = MenuItem::with_id(app, "unpair", "Unpair", true, None::<&str>)?;
    let reconnect = MenuItem::with_id(app, "reconnect", "Reconnect now", true, None::<&str>)?;
    let login = CheckMenuItem::with_id(
        app,
        "login",
        "Start at login",
        true,
        app.autolaunch().is_enabled().unwrap_or(false),
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[&open, &pair, &unpair, &reconnect, &sep, &login, &quit],
    )?;
    let (bytes, tip) = icon(&ConnectionState::Unpaired);
    TrayIconBuilder::with_id(TRAY)
        .icon(Image::from_bytes(bytes)?)
        .tooltip(tip)
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(move |app, e| match e.id().as_ref() {
            "open" | "pair" => windows::show_main(app),
            "unpair" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    let _ = app.state::<Core>().client.unpair().await;
                });
            }
            "reconnect" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    app.state::<Core>().client.reconnect_now().await
                });
            }
            "login" => {
                let a = app.autolaunch();
                let on = a.is_enabled().unwrap_or(false);
                let _ = if on { a.disable() } else { a.enable() };
                let _ = login.set_checked(!on);
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, e| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = e
            {
                windows::toggle_main(tray.app_handle());
            }
        })
        .build(app)?;
    Ok(())
}

/// Show `state` on the tray icon and tooltip.
pub fn update(app: &AppHandle, state: &ConnectionState) {
    let Some(tray) = app.tray_by_id(TRAY) else {
        return;
    };
    let (bytes, tip) = icon(state);
    if let Ok(img) = Image::from_bytes(bytes) {
        let _ = tray.set_icon(Some(img));
    }
    let _ = tray.set_tooltip(Some(tip));
}
