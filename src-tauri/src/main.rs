//! `clawtray-chat`, the chat window of clawtray (started by the tray host, `clawtray`).
//! Everything is in the library; this only starts it.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

fn main() {
    clawtray_app::run();
}
