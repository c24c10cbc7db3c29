//! The installed packages, as a person (and an administrator) gets them: `scripts/test-packages`
//! builds the release packages with `scripts/package`, installs them with `apt-get install
//! ./….deb` and runs this test, which then uses only what the packages put on the machine:
//!
//! - the relay from its systemd system unit — under systemd when the machine runs it, else the
//!   unit's `ExecStart` run as the unit's `User=` with its `EnvironmentFile=` and `LimitNOFILE=`;
//! - the agent from its systemd user unit (`ExecStart` with `%h`), reading the real OpenClaw
//!   gateway's port and token from `~/.openclaw/openclaw.json` as on a real machine;
//! - the app through `xdg-open 'clawtray://pair?…'` (the desktop entry's scheme): the pairing
//!   dialog opens filled in and says the relay is not the default; the person presses Pair; they
//!   chat through the installed relay and agent;
//! - signed updates from a local HTTP server: a package signed with another key is offered,
//!   refused with a sentence when the person says Install, and nothing changes; the same package
//!   signed with the app's key is installed, the host comes back on the new version in the same
//!   process, still paired, and chats;
//! - `apt-get remove`: no clawtray process is left, and the pairing stays in the keyring.
//!
//! Needs root, the packages installed, Xvfb, dunst, WebKitWebDriver, a Secret Service and the
//! pinned gateway; hence `#[ignore]`, run by `scripts/test-packages` (which `scripts/test` runs).

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use clawtray_testkit::agent::Pairing;
use clawtray_testkit::bins::workspace_bin;
use clawtray_testkit::chat_ui::{screenshot, send, wait_reply, STEP};
use clawtray_testkit::desktop::{wait_until, DesktopEnv, WindowDriver};
use clawtray_testkit::display::{Group, Xvfb};
use clawtray_testkit::fake_model::{self, reply_for};
use clawtray_testkit::free_port;
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::tray::{notify_monitor, start_dunst, start_panel, wait_notified, Item};

const RELAY_UNIT: &str = "/usr/lib/systemd/system/clawtray-relay.service";
const AGENT_UNIT: &str = "/usr/lib/systemd/user/clawtray-agent.service";
const RELAY_ENV: &str = "/etc/clawtray-relay/relay.env";

/// `Key=value` lines of a systemd unit, in order.
fn unit(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .filter(|l| !l.trim_start().starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn first<'a>(u: &'a [(String, String)], key: &str) -> &'a str {
    u.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// The unit's `Environment=` assignments.
fn environment(u: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    u.iter()
        .filter(|(k, _)| k == "Environment")
        .filter_map(|(_, v)| v.split_once('='))
}

/// The unit's `ExecStart=` as program and arguments, `%h` standing for `home`.
fn exec_start(u: &[(String, String)], home: &str) -> Vec<String> {
    first(u, "ExecStart")
        .replace("%h", home)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The installed version of a package (None: not installed).
fn installed(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status} ${Version}", package])
        .output()
        .expect("run dpkg-query");
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.strip_prefix("installed ").map(str::to_owned)
}

/// Processes whose name (comm) is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == name)
                })
                .filter(|pid| {
                    // not a zombie
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                        !s.rsplit_once(") ").is_some_and(|(_, t)| t.starts_with('Z'))
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The tray host of the desktop session `env` (the process xdg-open started).
fn host_pid(env: &DesktopEnv) -> Option<u32> {
    let needle = format!("XDG_RUNTIME_DIR={}", env.runtime.display());
    pids_named("clawtray").into_iter().find(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|e| e.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
    })
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// A manifest offering `version` as the `.deb` at `url`, signed by `sig`.
fn manifest(version: &str, url: &str, sig: &str) -> String {
    json!({
        "version": version,
        "notes": "A test release.",
        "platforms": {
            format!("{}-{}-deb", std::env::consts::OS, std::env::consts::ARCH): {"url": url, "signature": sig.trim()}
        }
    })
    .to_string()
}

fn env_path(var: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(var)
            .unwrap_or_else(|| panic!("{var} is not set: run scripts/test-packages")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the packages installed: scripts/test-packages runs it"]
async fn the_installed_packages_pair_through_a_link_chat_update_signed_and_uninstall_cleanly() {
    let update_dir = env_path("CLAWTRAY_UPDATE_PACKAGES");
    let newer = std::env::var("CLAWTRAY_UPDATE_VERSION").expect("CLAWTRAY_UPDATE_VERSION");
    let current = installed("clawtray").expect("the clawtray package is installed");
    for p in ["clawtray-agent", "clawtray-relay"] {
        assert_eq!(
            installed(p).as_deref(),
            Some(current.as_str()),
            "{p} installed"
        );
    }
    let work = clawtray_testkit::kept_work_dir("clawtray-installed");

    // ── what the app package put on the machine ────────────────────────────────────────────
    let desktop = std::fs::read_to_string("/usr/share/applications/clawtray.desktop")
        .expect("the desktop entry");
    assert!(
        desktop.contains("MimeType=x-scheme-handler/clawtray;"),
        "{desktop}"
    );
    assert!(desktop.contains("Exec=clawtray %u"), "{desktop}");
    for size in [16, 22, 24, 32, 48, 64, 128, 256, 512] {
        let icon = format!("/usr/share/icons/hicolor/{size}x{size}/apps/clawtray.png");
        assert!(Path::new(&icon).exists(), "{icon}");
    }
    let handler = Command::new("xdg-mime")
        .args(["query", "default", "x-scheme-handler/clawtray"])
        .output()
        .expect("xdg-mime (xdg-utils)");
    assert_eq!(
        String::from_utf8_lossy(&handler.stdout).trim(),
        "clawtray.desktop",
        "clawtray:// is registered"
    );

    // ── the relay, from its system unit ─────────────────────────────────────────────────────
    let relay_unit = unit(RELAY_UNIT);
    for hardening in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("User", "clawtray-relay"),
        ("StateDirectory", "clawtray-relay"),
    ] {
        assert_eq!(first(&relay_unit, hardening.0), hardening.1, "{RELAY_UNIT}");
    }
    let nofile: u64 = first(&relay_unit, "LimitNOFILE").parse().expect("a number");
    assert!(
        nofile > 10_000,
        "LimitNOFILE {nofile} covers the default --max-connections (10,000)"
    );
    let relay_port = free_port();
    let metrics_port = free_port();
    let env_before = std::fs::read_to_string(RELAY_ENV).expect("the relay's settings file");
    // the administrator's edit: where to listen
    std::fs::write(
        RELAY_ENV,
        format!("{env_before}\nCLAWTRAY_RELAY_LISTEN=127.0.0.1:{relay_port}\nCLAWTRAY_RELAY_METRICS_LISTEN=127.0.0.1:{metrics_port}\n"),
    )
    .expect("edit the relay's settings");
    let relay_log = work.join("relay.log");
    let mut relay_proc: Option<Group> = None;
    if Path::new("/run/systemd/system").exists() {
        let ok = Command::new("systemctl")
            .args(["restart", "clawtray-relay"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "systemctl restart clawtray-relay");
    } else {
        // no systemd here: the unit's ExecStart as its User, with its EnvironmentFile and
        // LimitNOFILE (the state directory is the package's, made by its postinst)
        let exec = exec_start(&relay_unit, "/var/lib/clawtray-relay");
        let envfile = first(&relay_unit, "EnvironmentFile")
            .trim_start_matches('-')
            .to_owned();
        let mut c = Command::new("prlimit");
        c.arg(format!("--nofile={nofile}:{nofile}"))
            .args([
                "setpriv",
                "--reuid",
                "clawtray-relay",
                "--regid",
                "clawtray-relay",
                "--init-groups",
                "--no-new-privs",
                "--",
            ])
            .args(&exec)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        // an environment file is `KEY=value` lines and comments, as a unit's are
        for (k, v) in unit(&envfile) {
            c.env(k, v);
        }
        for (k, v) in environment(&relay_unit) {
            c.env(k, v);
        }
        let log = std::fs::File::create(&relay_log).expect("relay log");
        relay_proc = Some(
            Group::spawn(c.stdout(log.try_clone().expect("log")).stderr(log))
                .expect("start the installed relay"),
        );
    }
    let deadline = Instant::now() + STEP;
    while TcpStream::connect(("127.0.0.1", relay_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the installed relay never listened: {}",
            std::fs::read_to_string(&relay_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let relay_pid = *pids_named("clawtray-relay")
        .first()
        .expect("the relay runs");
    let status = std::fs::read_to_string(format!("/proc/{relay_pid}/status")).expect("its status");
    let uid = Command::new("id")
        .args(["-u", "clawtray-relay"])
        .output()
        .expect("id");
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_owned();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.as_str())),
        "the relay runs as clawtray-relay: {status}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{relay_pid}/limits")).expect("its limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&nofile.to_string())),
        "{limits}"
    );
    let relay_url = format!("ws://127.0.0.1:{relay_port}");

    // ── the agent, from its user unit, next to the real gateway ────────────────────────────
    let gateway = Gateway::start(fake_model::start());
    let agent_home = work.join("agent-home");
    std::fs::create_dir_all(agent_home.join(".openclaw")).expect("agent home");
    std::fs::copy(
        gateway.config_path(),
        agent_home.join(".openclaw/openclaw.json"),
    )
    .expect("the gateway's config, as on a real machine");
    let agent_unit = unit(AGENT_UNIT);
    let home = agent_home.display().to_string();
    let exec = exec_start(&agent_unit, &home);
    assert_eq!(
        exec[0], "/usr/bin/clawtray-agent",
        "the unit runs the installed agent"
    );
    let agent_cmd = |args: &[String]| {
        let mut c = tokio::process::Command::new(&args[0]);
        c.args(&args[1..])
            .env("HOME", &agent_home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("OPENCLAW_GATEWAY_TOKEN");
        for (k, v) in environment(&agent_unit) {
            c.env(k, v);
        }
        // more than the unit's level: agent.log says what happened if this fails
        c.env("CLAWTRAY_LOG", "clawtray_agent=debug,info");
        c
    };
    let agent_log = std::fs::File::create(work.join("agent.log")).expect("agent log");
    let _agent = agent_cmd(&exec)
        .stdout(Stdio::null())
        .stderr(agent_log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the installed agent");
    let pairing = Pairing::start(
        Path::new("/usr/bin/clawtray-agent"),
        &agent_home.join(".local/share/clawtray-agent"),
        &relay_url,
        "Home agent",
    )
    .await;
    let link = pairing
        .link
        .clone()
        .expect("the agent prints a clawtray://pair link");
    assert!(
        link.contains(&pairing.code) && link.contains(&relay_url),
        "{link}"
    );

    // ── the app, opened by the link ─────────────────────────────────────────────────────────
    let www = work.join("www");
    std::fs::create_dir_all(www.join("bad")).expect("www");
    let http_port = free_port();
    let _http = Group::spawn(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &http_port.to_string(),
                "--directory",
            ])
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("http.log")).expect("http log")),
    )
    .expect("start an HTTP server (python3)");
    let update_url = format!("http://127.0.0.1:{http_port}/latest.json");
    let x = Xvfb::start();
    let env = DesktopEnv::new(
        &work,
        &x,
        &[
            (
                "CLAWTRAY_CHAT_BIN",
                OsString::from("/usr/bin/clawtray-chat"),
            ),
            ("CLAWTRAY_UPDATE_URL", OsString::from(&update_url)),
            // the logs (home/.local/share/clawtray/logs) say what happened if this fails
            (
                "CLAWTRAY_LOG",
                OsString::from("clawtray=debug,clawtray_client=debug,info"),
            ),
        ],
    );
    let (_panel, items) = start_panel().await;
    let _dunst = start_dunst(&env, None).await;
    let notified = notify_monitor().await;
    // as a browser does: xdg-open runs the desktop entry's Exec line (`clawtray %u`), and in a
    // plain X session keeps waiting on it — nobody waits for it here
    let _xdg_open = Group::spawn(
        env.command(Path::new("xdg-open"))
            .arg(&link)
            .stdout(Stdio::null()),
    )
    .expect("run xdg-open (xdg-utils)");
    let (driver, app) = WindowDriver::attach(env.inspector, &work.join("webdriver.log")).await;
    app.wait_for("#code", STEP)
        .await
        .expect("the pairing dialog");
    app.wait_js(
        "the code filled in from the link",
        "return document.querySelector('#code').value.replace(/\\s/g,'') === arguments[0].replace(/\\s/g,'')",
        json!([pairing.code]),
        STEP,
    )
    .await
    .expect("the code is filled in");
    let notice = app.find("#link-notice").await.expect("the link's notice");
    let notice = app.text(&notice).await.expect("its text");
    assert!(notice.contains("Filled in from a pairing link"), "{notice}");
    assert!(
        notice.contains(&relay_url),
        "a relay other than the default is named: {notice}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(&app, "installed-deep-link.png").await;
    let host = host_pid(&env).expect("the installed host runs");
    assert_eq!(
        std::fs::read_link(format!("/proc/{host}/exe")).expect("its exe"),
        Path::new("/usr/bin/clawtray"),
        "the desktop entry started the installed host"
    );
    // a link never pairs by itself: the person presses Pair
    app.click_css("#pair", STEP).await.expect("press Pair");
    app.wait_for("#message", STEP)
        .await
        .expect("the chat after pairing");
    let said = pairing.finish().await;
    assert!(said.contains("Paired with"), "the agent confirms: {said}");
    send(&app, "hello from the installed app").await;
    wait_reply(
        &app,
        "the reply through the installed relay and agent",
        &reply_for("hello from the installed app"),
    )
    .await;
    let autostart = std::fs::read_to_string(env.config.join("autostart/clawtray.desktop"))
        .expect("start at login is on once paired");
    assert!(
        autostart.contains("/usr/bin/clawtray --autostart"),
        "it starts the installed binary: {autostart}"
    );

    // ── an update signed with another key: offered, refused, nothing changes ────────────────
    let deb = std::fs::read_dir(&update_dir)
        .expect("the newer packages")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a newer .deb");
    let name = deb
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    let release = workspace_bin("clawtray-release");
    let keygen = Command::new(&release)
        .args(["keygen", "--out"])
        .arg(work.join("other-key"))
        .output()
        .expect("clawtray-release keygen");
    assert!(keygen.status.success(), "{keygen:?}");
    std::fs::copy(&deb, www.join("bad").join(&name)).expect("copy the package");
    let signed = Command::new(&release)
        .args(["sign", "--key"])
        .arg(work.join("other-key/update-key.sec"))
        .arg(www.join("bad").join(&name))
        .status()
        .expect("sign with the other key");
    assert!(signed.success());
    let bad_sig =
        std::fs::read_to_string(www.join(format!("bad/{name}.sig"))).expect("the other signature");
    std::fs::write(
        www.join("latest.json"),
        manifest(
            &newer,
            &format!("http://127.0.0.1:{http_port}/bad/{name}"),
            &bad_sig,
        ),
    )
    .expect("serve the manifest");
    let bus = zbus::Connection::session().await.expect("the session bus");
    let item = Item::of_pid(&bus, &items, host).await;
    item.click("Check for updates").await;
    let install_label = format!("Install clawtray {newer} and restart");
    item.wait_menu_item(&install_label).await;
    wait_notified(&notified, &format!("clawtray {newer} is available")).await;
    item.click(&install_label).await;
    let refused = wait_notified(&notified, "The update was not installed").await;
    assert!(
        refused.contains("not signed with clawtray's key") && refused.contains("another key"),
        "{refused}"
    );
    assert_eq!(
        installed("clawtray").as_deref(),
        Some(current.as_str()),
        "nothing was installed"
    );
    assert_eq!(host_pid(&env), Some(host), "the host carries on");
    assert!(
        !cmdline(host).contains("--updated-from"),
        "and was not restarted"
    );
    screenshot(&app, "installed-update-refused.png").await;

    // ── the same package signed with the app's key: installed, restarted, still paired ─────
    std::fs::copy(&deb, www.join(&name)).expect("copy the package");
    let good_sig =
        std::fs::read_to_string(update_dir.join(format!("{name}.sig"))).expect("its signature");
    std::fs::write(
        www.join("latest.json"),
        manifest(
            &newer,
            &format!("http://127.0.0.1:{http_port}/{name}"),
            &good_sig,
        ),
    )
    .expect("serve the manifest");
    item.click("Check for updates").await;
    item.wait_menu_item(&install_label).await;
    item.click(&install_label).await;
    wait_until("the new version to be installed", STEP, || {
        installed("clawtray").as_deref() == Some(newer.as_str())
    })
    .await;
    wait_until("the host to restart on it", STEP, || {
        cmdline(host).contains("--updated-from")
    })
    .await;
    assert_eq!(
        host_pid(&env),
        Some(host),
        "the same process, now the new program"
    );
    wait_notified(&notified, &format!("clawtray is now {newer}")).await;
    let version = Command::new("/usr/bin/clawtray")
        .arg("--version")
        .output()
        .expect("clawtray --version");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains(&newer),
        "{version:?}"
    );
    drop(app);
    drop(driver);
    // the chat was open: it comes back, with the session from the keyring
    let (driver, app) = WindowDriver::attach(env.inspector, &work.join("webdriver.log")).await;
    app.wait_for("#message", STEP)
        .await
        .expect("the chat, still paired");
    send(&app, "hello after the update").await;
    wait_reply(
        &app,
        "a reply after the update",
        &reply_for("hello after the update"),
    )
    .await;
    // the conversation from before the update (its history comes back from the agent)
    wait_reply(
        &app,
        "the conversation from before the update",
        &reply_for("hello from the installed app"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    screenshot(&app, "installed-after-update.png").await;

    // ── uninstall: nothing keeps running, the pairing stays in the keyring ─────────────────
    let removed = Command::new("apt-get")
        .args([
            "remove",
            "-y",
            "-q",
            "clawtray",
            "clawtray-agent",
            "clawtray-relay",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("apt-get remove");
    assert!(
        removed.status.success(),
        "apt-get remove: {}",
        String::from_utf8_lossy(&removed.stderr)
    );
    drop(app);
    drop(driver);
    wait_until("no clawtray process left", STEP, || {
        [
            "clawtray",
            "clawtray-chat",
            "clawtray-relay",
            "clawtray-agent",
        ]
        .iter()
        .all(|n| pids_named(n).is_empty())
    })
    .await;
    if let Some(mut g) = relay_proc.take() {
        let _ = g.0.wait();
    }
    let kept = Command::new("secret-tool")
        .args(["search", "--all", "service", "clawtray"])
        .output()
        .expect("secret-tool (libsecret-tools)");
    let kept =
        String::from_utf8_lossy(&kept.stdout).into_owned() + &String::from_utf8_lossy(&kept.stderr);
    assert!(
        kept.contains("session:"),
        "the pairing stays in the keyring after uninstall: {kept}"
    );
    assert!(
        Path::new("/var/lib/clawtray-relay/relay.db").exists(),
        "remove keeps the relay's sessions (purge removes them)"
    );
    let purged = Command::new("apt-get")
        .args(["purge", "-y", "-q", "clawtray-relay"])
        .status()
        .expect("apt-get purge");
    assert!(purged.success());
    assert!(
        !Path::new("/var/lib/clawtray-relay").exists(),
        "purge removes the relay's state"
    );
    assert!(!Path::new(RELAY_ENV).exists(), "and its settings");
    drop(gateway);
    let _ = std::fs::remove_dir_all(&work);
}
