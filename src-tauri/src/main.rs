//! `clawtray-chat`, the chat window of clawtray (started by the tray host, `clawtray`).
//! Everything is in the library; this only starts it.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

fn main() {
    // started by the host after login with `--prewarm`: the libraries are mapped by now; read
    // them into the page cache and leave (no window, no web view)
    if std::env::args().nth(1).as_deref() == Some("--prewarm") {
        let _ = clawtray_client::warm::read_ahead_mapped_files();
        return;
    }
    clawtray_app::run();
}
