//! The real app, driven through WebDriver (`tauri-driver` + Debian's `WebKitWebDriver`) under a
//! private Xvfb: pair with a code printed by a real `clawtray-agent pair`, send a message and watch
//! the reply stream in from the real OpenClaw gateway, abort a second one, restart the agent and
//! carry on; then quit and start the app again (dark theme) — it resumes from the keyring without
//! asking to pair, shows the history, and streams again; the global hotkey hides and shows it,
//! and a second launch hands over to the first and brings the chat back. Screenshots go to `target/screenshots/`.
//!
//! Needs Xvfb, tauri-driver, WebKitWebDriver, a Secret Service and the pinned gateway, which
//! `scripts/test` provides; hence `#[ignore]` for a bare `cargo test`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use clawtray_testkit::agent::{agent_bin, AgentRun, Pairing};
use clawtray_testkit::display::{TauriDriver, Xvfb};
use clawtray_testkit::fake_model::{self, reply_for};
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::relay::Relay;
use clawtray_testkit::scan::{files_containing, files_under};
use clawtray_testkit::webdriver::{Session, ENTER};

/// One step of the scenario (the app, the relay and the gateway all answer well within it).
const STEP: Duration = Duration::from_secs(60);

fn app_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawtray"))
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

async fn screenshot(app: &Session, name: &str) {
    let png = app.screenshot().await.expect("take a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "WebDriver returned a PNG");
    std::fs::write(screenshots_dir().join(name), png).expect("write the screenshot");
}

/// Start the app through the driver; WebKitWebDriver is known to miss its first start on a busy
/// machine, so one retry.
async fn start_app(driver: &TauriDriver, application: &Path) -> Session {
    match Session::start(driver.addr, application, &[]).await {
        Ok(s) => s,
        Err(first) => {
            eprintln!("the first app start failed ({first}); trying once more");
            tokio::time::sleep(Duration::from_secs(2)).await;
            Session::start(driver.addr, application, &[])
                .await
                .expect("start the app through tauri-driver")
        }
    }
}

/// Type a message into the composer and press Enter.
async fn send(app: &Session, text: &str) {
    let input = app.wait_for("#message", STEP).await.expect("the composer");
    app.send_keys(&input, text).await.expect("type the message");
    app.send_keys(&input, ENTER).await.expect("press Enter");
}

/// Wait until a finished (not streaming) agent bubble shows exactly `expected`.
async fn wait_reply(app: &Session, what: &str, expected: &str) {
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
async fn bubbles_with(app: &Session, text: &str) -> u64 {
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
async fn wait_streaming(app: &Session, what: &str, needle: &str) {
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
fn press(x: &Xvfb, combo: &str) {
    let status = std::process::Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["key", "--clearmodifiers", combo])
        .status()
        .expect("run xdotool (apt package xdotool)");
    assert!(status.success(), "xdotool key {combo}");
}

/// Whether a window titled "clawtray" is mapped on the test display.
fn chat_window_shown(x: &Xvfb) -> bool {
    std::process::Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--onlyvisible", "--name", "^clawtray$"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

async fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Xvfb, tauri-driver, WebKitWebDriver, a Secret Service and the pinned gateway: scripts/test runs it"]
async fn the_real_app_pairs_streams_aborts_survives_an_agent_restart_and_resumes() {
    // kept on failure (logs of the relay, agent, driver and app), removed on success
    let work = tempfile::Builder::new()
        .prefix("clawtray-real-app.")
        .tempdir()
        .expect("tempdir")
        .keep();
    eprintln!("real-app test: work dir {}", work.display());

    let gateway = Gateway::start(fake_model::start());
    let relay = Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let agent_bin = agent_bin();
    let agent_state = work.join("agent");
    let mut agent = AgentRun::start(&agent_bin, &agent_state, &gateway, "real-app");
    let pairing = Pairing::start(&agent_bin, &agent_state, &base, "Home agent").await;
    let pairing_code = pairing.code.clone();

    let x = Xvfb::start();
    let home = work.join("home");
    let (config, data, cache) = (
        home.join(".config"),
        home.join(".local/share"),
        home.join(".cache"),
    );
    for d in [&config, &data, &cache] {
        std::fs::create_dir_all(d).expect("create the app's home");
    }
    let display = PathBuf::from(&x.display);
    // the system browser: an `xdg-open` that writes down what it was asked to open
    let fake_bin = work.join("bin");
    std::fs::create_dir_all(&fake_bin).expect("create the fake bin dir");
    let opened = work.join("opened.txt");
    std::fs::write(
        fake_bin.join("xdg-open"),
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", opened.display()),
    )
    .expect("write the fake xdg-open");
    std::fs::set_permissions(
        fake_bin.join("xdg-open"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("make it executable");
    let path = PathBuf::from(format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    ));
    let env: [(&str, &Path); 6] = [
        ("DISPLAY", &display),
        ("PATH", &path),
        ("HOME", &home),
        ("XDG_CONFIG_HOME", &config),
        ("XDG_DATA_HOME", &data),
        ("XDG_CACHE_HOME", &cache),
    ];
    let driver = TauriDriver::start(&env, &work.join("tauri-driver.log"));

    // ── first run: the pairing dialog ───────────────────────────────────────────────────────
    let app = start_app(&driver, app_bin()).await;
    let code = app
        .wait_for("#code", STEP)
        .await
        .expect("the pairing dialog");
    let summary = app.find("details summary").await.expect("the relay fold");
    app.click(&summary).await.expect("open the relay fold");
    let relay_input = app.find("#relay").await.expect("the relay field");
    app.clear(&relay_input)
        .await
        .expect("clear the relay field");
    app.send_keys(&relay_input, &base)
        .await
        .expect("type the relay");
    app.send_keys(&code, &pairing.code)
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
    screenshot(&app, "real-app-pairing-light.png").await;
    let pair = app.find("#pair").await.expect("the Pair button");
    app.click(&pair).await.expect("click Pair");
    app.wait_for("#message", STEP)
        .await
        .expect("the chat after pairing");
    let said = pairing.finish().await;
    assert!(said.contains("Paired with"), "the agent confirms: {said}");
    app.wait_js(
        "the agent shown online",
        "return !!document.querySelector('#presence.on')",
        json!([]),
        STEP,
    )
    .await
    .expect("online");
    let autostart = config.join("autostart");
    let entries: Vec<String> = std::fs::read_dir(&autostart)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        entries.iter().any(|e| e.contains("--autostart")),
        "pairing turns on start at login (an autostart entry that starts in the tray): {entries:?}"
    );

    // ── a streamed reply from the real gateway ──────────────────────────────────────────────
    let first = "hello from the real app #id=r1# #words=8# #delay=60#";
    send(&app, first).await;
    wait_reply(&app, "the first reply", &reply_for(first)).await;
    app.wait_js(
        "the message marked answered",
        "return !!document.querySelector('.msg.user .mark.answered')",
        json!([]),
        STEP,
    )
    .await
    .expect("marked answered");

    // ── a link in a reply opens in the system browser, never in the web view ────────────────
    let link = "https://docs.example.com/clawtray?from=reply";
    let with_link = format!("a link please #id=[the docs]({link})# #words=2# #delay=60#");
    send(&app, &with_link).await;
    let anchor = app
        .wait_for(&format!(".msg.agent a[href='{link}']"), STEP)
        .await
        .expect("the reply's link, rendered");
    let page = app
        .exec("return location.href", json!([]))
        .await
        .expect("the page's address");
    app.click(&anchor).await.expect("click the link");
    wait_until("the system browser to be asked to open the link", || {
        std::fs::read_to_string(&opened).is_ok_and(|s| s.contains(link))
    })
    .await;
    // the web view refuses what is not the app's own page, whoever asks
    app.exec(
        "location.href = 'file:///etc/hostname'; return 1",
        json!([]),
    )
    .await
    .expect("ask the web view to leave");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = app
        .exec("return location.href", json!([]))
        .await
        .expect("the page's address");
    assert_eq!(still, page, "the web view stays on the app's page");
    assert!(
        app.find("#message").await.is_ok(),
        "the chat is still there"
    );
    let opened_log = std::fs::read_to_string(&opened).unwrap_or_default();
    assert!(
        !opened_log.contains("file:"),
        "a file: URL is not handed to the system: {opened_log}"
    );
    // the web view may call the app's own commands and nothing else: not the opener, not
    // notifications (both are the Rust side's), not window management
    for cmd in [
        "plugin:opener|open_url",
        "plugin:notification|notify",
        "plugin:window|close",
    ] {
        app.exec(
            "window.__acl = undefined;
             window.__TAURI_INTERNALS__.invoke(arguments[0], {url: 'https://example.com', options: {title: 'x'}})
               .then(() => { window.__acl = 'allowed'; }, (e) => { window.__acl = 'refused: ' + e; });
             return 1",
            json!([cmd]),
        )
        .await
        .expect("invoke from the page");
        let verdict = app
            .wait_js(
                "the command's answer",
                "return window.__acl",
                json!([]),
                STEP,
            )
            .await
            .expect("an answer");
        assert!(
            verdict.as_str().is_some_and(|v| v.starts_with("refused")),
            "{cmd} must be refused to the web view: {verdict}"
        );
    }

    // ── a second one, seen mid-stream, then stopped ─────────────────────────────────────────
    let long = "a long one please #id=r2# #words=120# #delay=120#";
    send(&app, long).await;
    wait_streaming(&app, "the long reply to stream", " w6").await;
    app.wait_js(
        "the Stop button",
        "const b = document.querySelector('#abort'); return !!b && !b.hidden",
        json!([]),
        STEP,
    )
    .await
    .expect("Stop is offered while a reply streams");
    screenshot(&app, "real-app-chat-streaming-light.png").await;
    let stop = app.find("#abort").await.expect("the Stop button");
    app.click(&stop).await.expect("click Stop");
    app.wait_js(
        "the reply marked stopped",
        "const b = document.querySelector('.msg.agent.aborted');
         return !!b && b.innerText.includes('Stopped')",
        json!([]),
        STEP,
    )
    .await
    .expect("the reply is stopped");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = app
        .exec(
            "return document.querySelector('.msg.agent.aborted .body').innerText",
            json!([]),
        )
        .await
        .expect("the stopped reply's text");
    assert!(
        !stopped.as_str().unwrap_or_default().contains(" w120"),
        "the stopped reply did not run to its end: {stopped}"
    );

    // ── the agent restarts (new process, new meeting keys); the chat carries on ─────────────
    agent.kill().await;
    agent = AgentRun::start(&agent_bin, &agent_state, &gateway, "real-app");
    let after = "after the agent restart #id=r3# #words=5# #delay=60#";
    send(&app, after).await;
    wait_reply(&app, "the reply after the agent restart", &reply_for(after)).await;
    for text in [reply_for(first), reply_for(after)] {
        assert_eq!(bubbles_with(&app, &text).await, 1, "exactly once: {text}");
    }
    app.quit().await.expect("quit the app");

    // ── started again (dark theme): resumes from the keyring, history, streams ──────────────
    let dark = work.join("clawtray-dark");
    std::fs::write(
        &dark,
        format!(
            "#!/bin/sh\nGTK_THEME=Adwaita:dark exec '{}' \"$@\"\n",
            app_bin().display()
        ),
    )
    .expect("write the dark launcher");
    std::fs::set_permissions(&dark, std::fs::Permissions::from_mode(0o755))
        .expect("make the dark launcher executable");
    let app = start_app(&driver, &dark).await;
    app.wait_for("#message", STEP)
        .await
        .expect("the chat straight away: the session resumed from the keyring");
    assert!(
        app.find("#code").await.is_err(),
        "no pairing dialog after a restart"
    );
    let dark_mode = app
        .exec(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            json!([]),
        )
        .await
        .expect("read the colour scheme");
    assert_eq!(
        dark_mode,
        Value::Bool(true),
        "the web view follows the dark GTK theme"
    );
    wait_reply(&app, "the history after a restart", &reply_for(first)).await;
    let again = "still here in the dark #id=r4# #words=40# #delay=100#";
    send(&app, again).await;
    wait_streaming(&app, "the dark reply to stream", " w8").await;
    screenshot(&app, "real-app-chat-streaming-dark.png").await;
    wait_reply(&app, "the dark reply", &reply_for(again)).await;

    // ── the global hotkey (settings.json, default Ctrl+Shift+Space) toggles the chat ───────
    let settings = std::fs::read_to_string(config.join("clawtray/settings.json"))
        .expect("the app writes its settings file with the defaults");
    assert!(
        settings.contains("CommandOrControl+Shift+Space"),
        "{settings}"
    );
    assert!(chat_window_shown(&x), "the chat is on screen");
    press(&x, "ctrl+shift+space");
    wait_until("the hotkey to hide the chat", || !chat_window_shown(&x)).await;
    press(&x, "ctrl+shift+space");
    wait_until("the hotkey to bring the chat back", || {
        chat_window_shown(&x)
    })
    .await;
    // a second launch (as from the desktop's menu) exits at once and brings the chat back
    press(&x, "ctrl+shift+space");
    wait_until("the hotkey to hide the chat again", || {
        !chat_window_shown(&x)
    })
    .await;
    let mut second = std::process::Command::new(app_bin());
    second.env("DISPLAY", &x.display);
    for (k, v) in &env[1..] {
        second.env(k, v);
    }
    let status = second.status().expect("launch the app a second time");
    assert!(
        status.success(),
        "the second instance hands over and exits: {status:?}"
    );
    wait_until("the first instance to show the chat", || {
        chat_window_shown(&x)
    })
    .await;
    // the session's first window is gone with its web view; the driver still ends the app
    let _ = app.quit().await;
    drop(driver);
    drop(x);

    // ── nothing secret or private in clear in the app's files ───────────────────────────────
    for needle in [pairing_code.as_bytes(), b"hello from the real app"] {
        let found = files_containing(&files_under(&home), needle);
        assert!(
            found.is_empty(),
            "{:?} found in clear in {found:?}",
            String::from_utf8_lossy(needle)
        );
    }
    drop(agent);
    drop(relay);
    drop(gateway);
    let _ = std::fs::remove_dir_all(&work);
}
