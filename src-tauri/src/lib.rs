//! The chat window process (`clawtray-chat`): the Tauri shell around the web UI. The tray host
//! (`clawtray`, crate `clawtray-host`) starts it when the chat is wanted; it connects back over the
//! local channel ([`clawtray_client::ipc`]), forwards the UI's commands to the host and the host's
//! events to the UI, and exits when its window closes — so GTK and WebKit live only while the chat
//! is open. Builder and wiring only: windows (`windows`), commands (`commands`), the host link
//! (`events`).
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod commands;
mod events;
mod ui_types;
mod windows;

use tauri::Manager;

use clawtray_client::ipc::endpoint;
use clawtray_client::ipc::link::HostLink;
use clawtray_client::ipc::wire::Role;

/// State shared with commands.
pub struct Core {
    pub host: HostLink,
    /// A pairing link the host handed over, until the UI takes it.
    pub pair_link: std::sync::Mutex<Option<events::PairLink>>,
}

/// Start the window.
pub fn run() {
    let app = tauri::Builder::default()
        // used from Rust only (links from replies); the web view holds no opener permission
        .plugin(tauri_plugin_opener::init())
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::all()
                        & !tauri_plugin_window_state::StateFlags::VISIBLE,
                )
                .build(),
        )
        .setup(move |app| {
            let dirs =
                directories::ProjectDirs::from("", "", "clawtray").ok_or("no home directory")?;
            app.manage(clawtray_client::logging::init(
                dirs.data_local_dir(),
                "clawtray-chat",
            ));
            let (host, link_events) = tauri::async_runtime::block_on(async {
                HostLink::start(endpoint::socket_path(), Role::Window)
            });
            app.manage(Core {
                host,
                pair_link: std::sync::Mutex::new(None),
            });
            events::forward(app.handle().clone(), link_events);
            windows::show_main(app.handle());
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::pair,
            commands::send,
            commands::abort,
            commands::history,
            commands::unpair,
            commands::reconnect,
            commands::decide,
            commands::approvals,
            commands::sessions,
            commands::take_pair_link
        ])
        .build(tauri::generate_context!("../tauri.conf.json"));
    match app {
        // the window closing ends the process (the default: no window, no app)
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("clawtray-chat could not start: {e}");
            std::process::exit(1);
        }
    }
}
