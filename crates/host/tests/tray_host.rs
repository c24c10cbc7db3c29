//! The tray host as the desktop sees it. On the test's private session bus the test plays the
//! panel (a StatusNotifierWatcher the host registers with) and runs a real notification server
//! (`dunst`) on a private Xvfb; the chat window is driven through WebKitWebDriver attached to the
//! window the host starts. With the real relay, a real `clawtray-agent` and the real OpenClaw
//! gateway:
//!
//! - `Activate` (a left click) opens the chat; pairing and a streamed reply work through it;
//! - the icon name and tooltip follow the state while the real agent is killed and restarted;
//! - `Activate` again ends the window process; a reply that lands meanwhile raises a notification
//!   on dunst, and a click on it opens the chat, which shows the reply once;
//! - the window process killed (SIGKILL) mid-stream and reopened shows the whole reply once;
//! - with a second agent paired, the menu and tooltip list both with their states, the icon
//!   shows the one that needs attention (the second killed → away), Unpair is the window's (it
//!   unpairs the agent it shows; the first stays);
//! - the dbusmenu items Reconnect now, Open chat, Unpair and Quit do what they say.
//!
//! Needs Xvfb, dunst, WebKitWebDriver, a Secret Service and the pinned gateway (`scripts/test`).

use std::time::{Duration, Instant};

use serde_json::json;

use clawtray_client::ipc::wire::Status;
use clawtray_client::ConnectionState;
use clawtray_testkit::agent::{agent_bin, AgentRun, Pairing};
use clawtray_testkit::chat_ui::{
    bubbles_with, chat_window_shown, chat_windows_shown, pair_in_dialog, send, wait_reply,
    wait_streaming, STEP,
};
use clawtray_testkit::desktop::{wait_until, DesktopEnv, Host, WindowDriver};
use clawtray_testkit::display::Xvfb;
use clawtray_testkit::fake_model::{self, reply_for};
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::relay::Relay;
use clawtray_testkit::tray::{dunstctl, notify_monitor, start_dunst, start_panel, Item};

/// Longer than the host's wait for a window left by a host that died (800 ms).
const ORPHAN_GRACE_AND_MORE: Duration = Duration::from_millis(1500);

async fn status(env: &DesktopEnv) -> Status {
    serde_json::from_value::<Status>(env.host_status().await).expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Xvfb, dunst, WebKitWebDriver, a Secret Service and the pinned gateway: scripts/test runs it"]
async fn the_tray_host_opens_the_chat_on_click_follows_the_state_and_notifies() {
    let work = clawtray_testkit::kept_work_dir("clawtray-tray-host");
    // exec on the gateway host, asking a person every time
    let gateway = Gateway::start_asking_for_exec(fake_model::start());
    let mut relay = Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let agent_bin = agent_bin();
    let agent_state = work.join("agent");
    let mut agent = AgentRun::start(&agent_bin, &agent_state, &gateway, "tray-host");
    let pairing = Pairing::start(&agent_bin, &agent_state, &base, "Home agent").await;

    let x = Xvfb::start();
    let env = DesktopEnv::new(&work, &x, &[]);
    // the panel and the notification server, on the session bus
    let (_panel, items) = start_panel().await;
    // dunst's context menu runs `dmenu` with the notifications' actions: this one picks
    // "Allow once", as the person would in the menu
    let dmenu = work.join("dmenu.sh");
    std::fs::write(
        &dmenu,
        format!(
            "#!/bin/sh\ntee -a {} | grep -m1 'Allow once'\n",
            work.join("dmenu.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&dmenu, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dunstrc = work.join("dunstrc");
    std::fs::write(&dunstrc, format!("[global]\ndmenu = {}\n", dmenu.display())).unwrap();
    let dunst = start_dunst(&env, Some(&dunstrc)).await;
    let bus = zbus::Connection::session().await.unwrap();
    let notified = notify_monitor().await;

    // ── started at login: no window, the icon registers with the panel ──────────────────────
    let mut host = Host::start(&env, &["--autostart"], &work.join("host.log"));
    let item = Item::of(&bus, &items, &host).await;
    assert_eq!(item.icon().await, "clawtray-unpaired");
    assert_eq!(item.tooltip().await, "clawtray — not paired");
    assert!(host.chat_pids().is_empty(), "no window at login");
    let menu = item.menu().await;
    for label in [
        "Open chat",
        "Pair…",
        "Unpair",
        "Reconnect now",
        "Start at login",
        "Quit",
    ] {
        assert!(
            menu.keys().any(|l| l.starts_with(label)),
            "{label} in {menu:?}"
        );
    }

    // ── a left click opens the chat: pair and stream through it ─────────────────────────────
    item.activate().await;
    let (driver, app) = WindowDriver::attach(env.inspector, &work.join("webdriver.log")).await;
    assert_eq!(host.chat_pids().len(), 1, "one window process");
    pair_in_dialog(&app, &base, &pairing.code).await;
    let said = pairing.finish().await;
    assert!(said.contains("Paired with"), "{said}");
    item.wait_state("online", "clawtray-online").await;
    assert_eq!(item.tooltip().await, "clawtray — online");
    let first = "hello from the tray #id=t1# #words=6# #delay=50#";
    send(&app, first).await;
    wait_reply(&app, "the first reply", &reply_for(first)).await;

    // ── the icon follows the agent: killed → away, restarted → online ───────────────────────
    agent.kill().await;
    item.wait_state("the agent shown away", "clawtray-away")
        .await;
    assert!(item.tooltip().await.contains("offline"));
    agent = AgentRun::start(&agent_bin, &agent_state, &gateway, "tray-host");
    item.wait_state("the agent back online", "clawtray-online")
        .await;

    // ── a second agent: the menu and tooltip list both; the icon shows the one that needs
    //    attention; Unpair moves to the window (which unpairs only the agent it shows) ──────
    let second_state = work.join("agent-second");
    let mut second = AgentRun::start(&agent_bin, &second_state, &gateway, "tray-host-second");
    let pairing2 = Pairing::start(&agent_bin, &second_state, &base, "Lab agent").await;
    app.click_css("#add-agent", STEP).await.expect("Add agent");
    pair_in_dialog(&app, &base, &pairing2.code).await;
    assert!(pairing2.finish().await.contains("Paired with"));
    let deadline = Instant::now() + STEP;
    loop {
        let menu = item.menu().await;
        if menu.contains_key("Home agent — online") && menu.contains_key("Lab agent — online") {
            assert_eq!(
                menu.get("Unpair").map(|(_, on)| *on),
                Some(false),
                "{menu:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the menu never listed both agents: {menu:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        item.tooltip().await,
        "clawtray — Home agent: online, Lab agent: online"
    );
    second.kill().await;
    item.wait_state("the second agent away: the icon says so", "clawtray-away")
        .await;
    item.wait_menu_item("Lab agent — agent offline").await;
    item.wait_menu_item("Home agent — online").await;
    // the window shows the second agent (just paired): unpair it there; the first stays
    app.click_css("#unpair", STEP)
        .await
        .expect("unpair the second agent");
    item.wait_state("one agent again, online", "clawtray-online")
        .await;
    let deadline = Instant::now() + STEP;
    while item.menu().await.keys().any(|l| l.starts_with("Lab agent")) {
        assert!(
            Instant::now() < deadline,
            "the unpaired agent stays in the menu"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(item.tooltip().await, "clawtray — online");
    app.wait_js(
        "the window back on the first agent",
        "return !document.querySelector('#agent') && !!document.querySelector('#presence.on')",
        serde_json::json!([]),
        STEP,
    )
    .await
    .expect("the first agent's chat");
    drop(second);

    // ── an exec approval: the icon asks for attention, dunst shows the command with its
    //    answers; the person picks "Allow once" in dunst's menu; the command runs for real ────
    let token = format!("ran-{}", std::process::id());
    let file = work.join("token.txt");
    std::fs::write(&file, &token).unwrap();
    let cmd = format!("cat {}", file.display());
    let asks = format!("read my file #id=t5# #exec={cmd}#");
    send(&app, &asks).await;
    let n = notified.clone();
    let c = cmd.clone();
    wait_until("a notification asking about the command", STEP, || {
        n.lock()
            .unwrap()
            .iter()
            .any(|m| m.starts_with("Your agent asks to run a command") && m.contains(&c))
    })
    .await;
    let asked = notified
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.starts_with("Your agent asks"))
        .cloned()
        .unwrap();
    assert!(
        asked.contains("\"allow-once\", \"Allow once\"") && asked.contains("\"deny\", \"Deny\""),
        "the answers the gateway allows, as buttons: {asked}"
    );
    assert!(
        !asked.contains("Always"),
        "ask=always offers no allow-always: {asked}"
    );
    assert_eq!(item.status().await, "NeedsAttention");
    assert_eq!(
        item.tooltip().await,
        "clawtray — 1 approval waiting for you"
    );
    assert!(item.menu().await.keys().any(|l| l == "1 approval waiting…"));
    dunstctl(&env, &["context"]);
    wait_reply(
        &app,
        "the reply with the file's content",
        &fake_model::reply_after_exec(Some("t5"), &token),
    )
    .await;
    let deadline = Instant::now() + STEP;
    while item.status().await != "Active" {
        assert!(Instant::now() < deadline, "the attention never went");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(item.tooltip().await, "clawtray — online");

    // ── a click closes the chat (the process ends); a reply lands meanwhile → notification ──
    let meanwhile = "while the chat is closed #id=t2# #words=30# #delay=150#";
    send(&app, meanwhile).await;
    wait_streaming(&app, "the reply to start", " w2").await;
    item.activate().await;
    let h = &host;
    wait_until("the window process to end", STEP, || {
        h.chat_pids().is_empty()
    })
    .await;
    let xs = &x;
    wait_until("no chat window on screen", STEP, || !chat_window_shown(xs)).await;
    drop(app);
    drop(driver);
    let expected = reply_for(meanwhile);
    let n = notified.clone();
    let preview: String = expected.chars().take(40).collect();
    wait_until("a notification for the reply", STEP, || {
        n.lock()
            .unwrap()
            .iter()
            .any(|m| m.starts_with("Your agent replied") && m.contains(&preview))
    })
    .await;
    assert!(
        notified
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("\"default\"")),
        "dunst supports actions, so the notification carries a click action: {:?}",
        notified.lock().unwrap()
    );
    let shown: u32 = dunstctl(&env, &["count", "displayed"])
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(shown >= 1, "dunst shows the notification");
    // a click on it opens the chat, with the reply that arrived meanwhile, once
    dunstctl(&env, &["action", "0"]);
    let (driver, app) = WindowDriver::attach(env.inspector, &work.join("webdriver.log")).await;
    wait_reply(&app, "the reply that arrived while closed", &expected).await;
    assert_eq!(bubbles_with(&app, &expected).await, 1, "once");

    // ── the window process killed mid-stream: reopened, the whole reply, once ───────────────
    let long = "survive a crashed window #id=t3# #words=60# #delay=100#";
    send(&app, long).await;
    wait_streaming(&app, "the long reply to stream", " w5").await;
    for pid in host.chat_pids() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    drop(app);
    drop(driver);
    wait_until("the killed window to be gone", STEP, || {
        h.chat_pids().is_empty()
    })
    .await;
    item.click("Open chat").await;
    let (driver, app) = WindowDriver::attach(env.inspector, &work.join("webdriver.log")).await;
    let whole = reply_for(long);
    wait_reply(&app, "the whole reply after the crash", &whole).await;
    assert_eq!(bubbles_with(&app, &whole).await, 1, "once");
    assert_eq!(bubbles_with(&app, &reply_for(first)).await, 1, "once");
    let shot = app.screenshot().await.expect("a screenshot");
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("tray-host-chat-reopened.png"), shot).unwrap();

    // ── the host killed under the open window: the window says so and waits; a message typed
    //    meanwhile goes once the host is started again, which adopts the window (no second one)
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &host.pid().to_string()])
        .status();
    app.wait_js(
        "the window to say the host is gone",
        "return document.querySelector('.banner')?.innerText.includes('tray host is not running')",
        json!([]),
        STEP,
    )
    .await
    .expect("the window tells the person");
    let typed = "typed while the host was gone #id=t4# #words=5# #delay=40#";
    send(&app, typed).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // a launch from the menu (it opens the chat): the dead host's window comes back to it
    let dead_host = std::mem::replace(&mut host, Host::start(&env, &[], &work.join("host.log")));
    let item = Item::of(&bus, &items, &host).await;
    item.wait_state("online with the new host", "clawtray-online")
        .await;
    app.wait_js(
        "the window's warning to go once it is back",
        "return !document.querySelector('.banner')?.innerText.includes('tray host is not running')",
        json!([]),
        STEP,
    )
    .await
    .expect("the window reconnects");
    wait_reply(
        &app,
        "the reply to what was typed meanwhile",
        &reply_for(typed),
    )
    .await;
    assert_eq!(bubbles_with(&app, &reply_for(typed)).await, 1, "once");
    let mine = app
        .exec(
            "return [...document.querySelectorAll('.msg.user .body')].filter(b => b.innerText.trim() === arguments[0]).length",
            json!([typed]),
        )
        .await
        .unwrap();
    assert_eq!(mine, json!(1), "the message shown once");
    tokio::time::sleep(ORPHAN_GRACE_AND_MORE).await;
    assert_eq!(
        chat_windows_shown(&x),
        1,
        "the window was adopted, not doubled"
    );
    assert!(
        host.chat_pids().is_empty(),
        "the new host started no window of its own"
    );
    // the new host drives the adopted window: a click closes it, another opens a fresh one
    item.activate().await;
    wait_until("the adopted window to close", STEP, || {
        !chat_window_shown(xs)
    })
    .await;
    drop(app);
    drop(driver);
    item.activate().await;
    let (driver, app) = WindowDriver::attach(env.inspector, &work.join("webdriver.log")).await;
    wait_reply(&app, "the history in the new window", &reply_for(typed)).await;
    assert_eq!(host.chat_pids().len(), 1, "the new host's own window");

    // ── Reconnect now: the relay comes back, the host connects before its next retry ───────
    relay.kill().await;
    item.wait_state("offline after the relay died", "clawtray-offline")
        .await;
    // let the backoff grow past a few seconds, so the effect of the click is plain
    let next_try = loop {
        let s = status(&env).await;
        if let ConnectionState::WaitingToRetry { next_try_at_ms, .. } = s.state {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            if next_try_at_ms > now + 4_000 {
                break next_try_at_ms;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    relay.start_again().await;
    item.click("Reconnect now").await;
    // connected to the relay (the agent, on its own backoff, may come a little later)
    let deadline = Instant::now() + STEP;
    while !matches!(status(&env).await.state, ConnectionState::Online { .. }) {
        assert!(Instant::now() < deadline, "never reconnected to the relay");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now < next_try,
        "connected at once, not at the scheduled retry ({} ms later)",
        now.saturating_sub(next_try)
    );
    item.wait_state("online after Reconnect now", "clawtray-online")
        .await;

    // ── Unpair from the menu: the pairing ends on both ends; the icon says so ──────────────
    item.click("Unpair").await;
    item.wait_state("not paired", "clawtray-unpaired").await;
    app.wait_for("#code", STEP)
        .await
        .expect("the open chat turns into the pairing dialog");
    let s = status(&env).await;
    assert!(s.session.is_none(), "the pairing is gone");

    // ── Quit: the host and its window end ───────────────────────────────────────────────────
    item.click("Quit").await;
    let deadline = Instant::now() + STEP;
    let code = loop {
        if let Some(c) = host.exited() {
            break c;
        }
        assert!(Instant::now() < deadline, "the host did not quit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(code.success(), "quit cleanly: {code:?}");
    wait_until("the window to close with it", STEP, || {
        !chat_window_shown(&x)
    })
    .await;
    drop(app);
    drop(driver);
    drop(dunst);
    drop(dead_host);
    drop(agent);
    drop(relay);
    drop(gateway);
    let _ = std::fs::remove_dir_all(&work);
}
