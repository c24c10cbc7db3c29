//! The clawtray tray app. Everything is in the library; this only starts it.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    clawtray_app::run();
}
