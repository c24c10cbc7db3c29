//! What a person does and sees in the real chat window, through WebDriver: type and send, wait for
//! a streaming or finished reply, count the bubbles that show a text, and whether the window is on
//! the test display.

use std::time::Duration;

use serde_json::json;

use crate::display::Xvfb;
use crate::webdriver::{Session, ENTER};

/// One step of a scenario (the app, the relay and the gateway all answer well within it).
pub const STEP: Duration = Duration::from_secs(60);

/// Type a message into the composer and press Enter.
pub async fn send(app: &Session, text: &str) {
    let input = app.wait_for("#message", STEP).await.expect("the composer");
    app.send_keys(&input, text).await.expect("type the message");
    app.send_keys(&input, ENTER).await.expect("press Enter");
}

/// Wait until a finished (not streaming) agent bubble shows exactly `expected`.
pub async fn wait_reply(app: &Session, what: &str, expected: &str) {
    app.wait_js(
        what,
        "return [...document.querySelectorAll('.msg.agent:not(.streaming) .body')]
            .some(b => b.innerText.trim() === arguments[0])",
        json!([expected]),
        STEP,
    )
    .await
    .expect("the reply");
}

/// How many agent bubbles show exactly `text`.
pub async fn bubbles_with(app: &Session, text: &str) -> u64 {
    app.exec(
        "return [...document.querySelectorAll('.msg.agent .body')]
            .filter(b => b.innerText.trim() === arguments[0]).length",
        json!([text]),
    )
    .await
    .expect("count bubbles")
    .as_u64()
    .unwrap_or(0)
}

/// Wait until the streaming bubble's text contains `needle`.
pub async fn wait_streaming(app: &Session, what: &str, needle: &str) {
    app.wait_js(
        what,
        "const b = document.querySelector('.msg.agent.streaming .body');
         return !!b && b.innerText.includes(arguments[0])",
        json!([needle]),
        STEP,
    )
    .await
    .expect("a streaming reply");
}

/// Press a key combination on the test display (`xdotool key`).
pub fn press(x: &Xvfb, combo: &str) {
    let status = std::process::Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["key", "--clearmodifiers", combo])
        .status()
        .expect("run xdotool (apt package xdotool)");
    assert!(status.success(), "xdotool key {combo}");
}

/// Whether a window titled "clawtray" is mapped on the test display.
#[must_use]
pub fn chat_window_shown(x: &Xvfb) -> bool {
    chat_windows_shown(x) > 0
}

/// How many chat windows are on screen.
#[must_use]
pub fn chat_windows_shown(x: &Xvfb) -> usize {
    std::process::Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--onlyvisible", "--name", "^clawtray$"])
        .output()
        .map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count())
}

/// Pair through the dialog: open the relay fold, type `relay` and `code`, press Pair, and wait
/// for the chat.
pub async fn pair_in_dialog(app: &Session, relay: &str, code: &str) {
    let code_input = app
        .wait_for("#code", STEP)
        .await
        .expect("the pairing dialog");
    let summary = app.find("details summary").await.expect("the relay fold");
    app.click(&summary).await.expect("open the relay fold");
    let relay_input = app.find("#relay").await.expect("the relay field");
    app.clear(&relay_input)
        .await
        .expect("clear the relay field");
    app.send_keys(&relay_input, relay)
        .await
        .expect("type the relay");
    app.send_keys(&code_input, code)
        .await
        .expect("type the code");
    app.wait_js(
        "the code to be accepted as typed",
        "return !document.querySelector('#pair').disabled",
        json!([]),
        STEP,
    )
    .await
    .expect("a valid code enables Pair");
    let pair = app.find("#pair").await.expect("the Pair button");
    app.click(&pair).await.expect("click Pair");
    app.wait_for("#message", STEP)
        .await
        .expect("the chat after pairing");
}

/// `target/screenshots/` of the workspace (made if missing), where the UI tests leave pictures.
#[must_use]
pub fn screenshots_dir() -> std::path::PathBuf {
    let dir = crate::bins::workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

/// What the window shows, as WebDriver sees it, into `target/screenshots/<name>`.
pub async fn screenshot(app: &Session, name: &str) {
    let png = app.screenshot().await.expect("take a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "WebDriver returned a PNG");
    std::fs::write(screenshots_dir().join(name), png).expect("write the screenshot");
}
