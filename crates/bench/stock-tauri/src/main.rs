//! Tauri 2's starter app (create-tauri-app, vanilla): one window, one page, one command. The
//! bench packages it beside clawtray to compare package and installed sizes.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[tauri::command]
fn greet(name: &str) -> String {
    format!("Hello, {name}! You've been greeted from Rust!")
}

fn main() {
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(tauri::generate_handler![greet])
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("stock-tauri-app: {e}");
        std::process::exit(1);
    }
}
