//! `clawtray-chat --prewarm`, as the tray host runs it a few seconds after login: it reads the
//! window's libraries into the page cache and exits at once — no window, no web view, so it works
//! with no display at all (the window itself cannot start without one).

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn prewarm_reads_ahead_and_exits_without_a_window() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_clawtray-chat"))
        .arg("--prewarm")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run clawtray-chat --prewarm");
    assert!(
        out.status.success(),
        "prewarm exits 0 without a display: {out:?}"
    );
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "quiet: {out:?}"
    );
    // generous: the point is that it returns instead of waiting for a window or a host
    assert!(started.elapsed() < Duration::from_secs(60));
}
