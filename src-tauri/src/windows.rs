//! The one window (pairing dialog or chat, the UI decides from the state); closing it ends the
//! chat process. Its web view stays on the
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
