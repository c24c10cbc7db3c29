//! The one window (pairing dialog or chat, the UI decides from the state). Created on demand and
//! destroyed on close, so the tray-only process keeps no web view alive. Its web view stays on the
//! app's own pages: links in replies open in the system browser, anything else is refused
//! ([`clawtray_client::links`]).

use tauri::webview::NewWindowResponse;
use tauri::{AppHandle, Manager, Url, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_opener::OpenerExt;

use clawtray_client::links::{classify, LinkPolicy};

pub const MAIN: &str = "main";

/// Show (creating if needed) and focus the window.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let (nav_app, new_window_app) = (app.clone(), app.clone());
    let built = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .on_navigation(move |url| follow(&nav_app, url))
        .on_new_window(move |url, _| {
            follow(&new_window_app, &url);
            NewWindowResponse::Deny
        })
        .title("clawtray")
        .inner_size(440.0, 680.0)
        .min_inner_size(360.0, 420.0)
        .build();
    if let Err(e) = built {
        tracing::warn!("cannot open the window: {e}");
    }
}

/// Whether the web view may load `url`; a web or mail link goes to the system instead.
fn follow(app: &AppHandle, url: &Url) -> bool {
    match classify(url, None) {
        LinkPolicy::App => true,
        LinkPolicy::Outside(url) => {
            tracing::info!(
                scheme = url.scheme(),
                "opening a link in the system browser"
            );
            if let Err(e) = app.opener().open_url(url.as_str(), None::<&str>) {
                tracing::warn!("cannot open the link: {e}");
            }
            false
        }
        LinkPolicy::Refuse(why) => {
            tracing::warn!("refused to load a link in the chat window: {why}");
            false
        }
    }
}

/// Benchmark baseline only (`scripts/bench`): hide the window instead of destroying it, as a
/// stock Tauri tray app does, so its web view stays alive.
pub const KEEP_WEBVIEW_ENV: &str = "CLAWTRAY_BENCH_KEEP_WEBVIEW";

/// Toggle: hide (destroy) when shown, show when not.
pub fn toggle_main(app: &AppHandle) {
    match app.get_webview_window(MAIN) {
        Some(w) if w.is_visible().unwrap_or(false) => {
            if std::env::var_os(KEEP_WEBVIEW_ENV).is_some() {
                let _ = w.hide();
            } else {
                let _ = w.destroy();
            }
        }
        _ => show_main(app),
    }
}

/// Whether the chat is on screen (for notifications).
pub fn main_visible(app: &AppHandle) -> bool {
    app.get_webview_window(MAIN)
        .is_some_and(|w| w.is_visible().unwrap_or(false) && w.is_focused().unwrap_or(false))
}
