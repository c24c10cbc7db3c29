//! The tray app shell: builder and plugin registration only. Logic lives in `clawtray-client`;
//! this crate wires it to the tray (`tray`), windows (`windows`), commands (`commands`) and the
//! event stream to the web view (`events`).
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod commands;
mod events;
mod hotkey;
mod logging;
mod settings;
mod tray;
mod ui_types;
mod windows;
#[cfg(target_os = "linux")]
mod x11_hotkey;

use std::sync::Arc;

use tauri::{Manager, RunEvent};

use clawtray_client::session_store::KeyringSessionStore;
use clawtray_client::{ClientConfig, RelayClient};

/// State shared with commands.
pub struct Core {
    pub client: RelayClient,
}

/// Start the app.
pub fn run() {
    let autostarted = std::env::args().any(|a| a == "--autostart");
    let builder = tauri::Builder::default()
        // single-instance first: a second launch shows the first one's window and exits
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            windows::show_main(app)
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--autostart"]),
        ))
        .plugin(tauri_plugin_notification::init())
        // used from Rust only (links from replies); the web view holds no opener permission
        .plugin(tauri_plugin_opener::init())
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::all()
                        & !tauri_plugin_window_state::StateFlags::VISIBLE,
                )
                .build(),
        );
    // on Linux the hotkey is grabbed without the plugin (no polling thread): see x11_hotkey
    #[cfg(not(target_os = "linux"))]
    let builder = builder.plugin(hotkey::plugin());
    let app = builder
        .setup(move |app| {
            let dirs =
                directories::ProjectDirs::from("", "", "clawtray").ok_or("no home directory")?;
            app.manage(logging::init(dirs.data_local_dir()));
            let device = std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "desktop".into());
            let config = ClientConfig::new(dirs.data_dir().to_owned(), device);
            let store = Arc::new(KeyringSessionStore::new(dirs.config_dir().to_owned()));
            let client =
                tauri::async_runtime::block_on(async { RelayClient::start(config, store) });
            let events = client.subscribe();
            let state = client.state();
            app.manage(Core { client });
            let (settings, problem) = settings::load(dirs.config_dir());
            if let Some(problem) = problem {
                tracing::warn!("{problem}");
            }
            let hotkey = hotkey::register(app.handle(), settings.hotkey.as_deref());
            tray::build(app.handle(), hotkey.as_deref())?;
            events::forward(app.handle().clone(), events, state);
            // no window at login when a session resumes; otherwise open the chat (or pairing)
            if !autostarted {
                windows::show_main(app.handle());
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::pair,
            commands::send,
            commands::abort,
            commands::history,
            commands::unpair,
            commands::reconnect
        ])
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            // launched while the previous instance is still quitting: its single-instance name
            // is on the bus but nobody answers; start again once it is gone
            if e.to_string().contains("single-instance") {
                restart_when_the_old_instance_is_gone();
            }
            eprintln!("clawtray could not start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|_app, event| {
        // closing the last window keeps the tray running
        if let RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
}

/// Re-run this program (same arguments) after a pause, a few times at most: a fresh process, as
/// tauri cannot build a second app in one.
fn restart_when_the_old_instance_is_gone() {
    const TRIES: u32 = 20;
    let tried: u32 = std::env::var("CLAWTRAY_START_RETRY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if tried >= TRIES {
        return;
    }
    std::thread::sleep(std::time::Duration::from_millis(250));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("CLAWTRAY_START_RETRY", (tried + 1).to_string())
            .exec();
        eprintln!("clawtray could not restart itself: {err}");
    }
}
