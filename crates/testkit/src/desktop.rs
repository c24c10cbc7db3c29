//! The desktop app's two processes under test: the tray host (`clawtray`), started with a private
//! home, runtime dir and X display, and the chat window (`clawtray-chat`) it starts, driven through
//! `WebKitWebDriver --target` attached to the window's inspector port — the host, not a driver,
//! starts the window, so the driver attaches to it (the host passes its environment on:
//! `WEBKIT_INSPECTOR_SERVER` and `TAURI_WEBVIEW_AUTOMATION`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::workspace_bin;
use crate::display::{Group, Xvfb};
use crate::free_port;
use crate::webdriver::Session;

/// How long a chat window may take to come up and accept a driver (a busy 2-core machine).
pub const WINDOW_TIMEOUT: Duration = Duration::from_secs(90);

/// A private desktop session for the app: home and XDG dirs under `work`, the X display, and the
/// window's inspector port.
pub struct DesktopEnv {
    pub home: PathBuf,
    pub config: PathBuf,
    pub data: PathBuf,
    pub runtime: PathBuf,
    pub inspector: u16,
    vars: Vec<(String, OsString)>,
}

impl DesktopEnv {
    /// Make the dirs and the environment; `extra` is added (e.g. a `PATH` with a fake browser).
    #[must_use]
    pub fn new(work: &Path, x: &Xvfb, extra: &[(&str, OsString)]) -> Self {
        let home = work.join("home");
        let config = home.join(".config");
        let data = home.join(".local/share");
        let cache = home.join(".cache");
        let runtime = work.join("runtime");
        for d in [&config, &data, &cache, &runtime] {
            std::fs::create_dir_all(d).expect("create the app's home");
        }
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("make the runtime dir private");
        let inspector = free_port();
        let mut vars: Vec<(String, OsString)> = vec![
            ("DISPLAY".into(), x.display.clone().into()),
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), config.clone().into()),
            ("XDG_DATA_HOME".into(), data.clone().into()),
            ("XDG_CACHE_HOME".into(), cache.into()),
            ("XDG_RUNTIME_DIR".into(), runtime.clone().into()),
            (
                "CLAWTRAY_CHAT_BIN".into(),
                // another build of the window (e.g. the release one) when a run asks for it
                std::env::var_os("CLAWTRAY_TEST_CHAT_BIN")
                    .unwrap_or_else(|| workspace_bin("clawtray-chat").into()),
            ),
            (
                "WEBKIT_INSPECTOR_SERVER".into(),
                format!("127.0.0.1:{inspector}").into(),
            ),
            ("TAURI_WEBVIEW_AUTOMATION".into(), "true".into()),
        ];
        for (k, v) in extra {
            vars.push(((*k).to_owned(), v.clone()));
        }
        DesktopEnv {
            home,
            config,
            data,
            runtime,
            inspector,
            vars,
        }
    }

    /// The environment the app's processes get.
    #[must_use]
    pub fn vars(&self) -> &[(String, OsString)] {
        &self.vars
    }

    /// A command for `bin` in this environment.
    #[must_use]
    pub fn command(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }
}

impl DesktopEnv {
    /// The host's `status` (waiting for it to listen), asked over its local socket as a second launch would (the
    /// wire format of `clawtray_client::ipc`: a hello, then one call; the answer's `ok` value).
    pub async fn host_status(&self) -> serde_json::Value {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let path = self.runtime.join("clawtray/host.sock");
        // a host just started may not listen yet
        let deadline = Instant::now() + WINDOW_TIMEOUT;
        let mut s = loop {
            match tokio::net::UnixStream::connect(&path).await {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    panic!("connect to the host at {}: {e}", path.display())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        s.write_all(b"{\"role\":\"launch\",\"pid\":1}\n{\"id\":1,\"call\":\"status\"}\n")
            .await
            .expect("ask the host");
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .await
            .expect("the host answers");
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON answer");
        v["outcome"]["ok"].clone()
    }
}

/// The tray host as a child process (in its own process group, killed with what it started).
pub struct Host {
    group: Group,
}

/// The host binary.
#[must_use]
pub fn host_bin() -> PathBuf {
    // another build of the host (e.g. the release one) when a run asks for it
    std::env::var_os("CLAWTRAY_TEST_HOST_BIN")
        .map_or_else(|| workspace_bin("clawtray"), PathBuf::from)
}

impl Host {
    /// Start `clawtray args…` in `env`, its output to `log`.
    #[must_use]
    pub fn start(env: &DesktopEnv, args: &[&str], log: &Path) -> Host {
        Self::start_bin(env, &host_bin(), args, log)
    }

    /// Start `bin` (the host, or a launcher that runs it) with `args`.
    #[must_use]
    pub fn start_bin(env: &DesktopEnv, bin: &Path, args: &[&str], log: &Path) -> Host {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the host's log");
        let child = env
            .command(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the tray host");
        Host {
            group: Group(child),
        }
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.group.0.id()
    }

    /// Whether it has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.group.0.try_wait().ok().flatten()
    }

    /// The chat window processes it started and has not yet seen end (zombies included); not
    /// the short `--prewarm` run a few seconds after it starts, which opens no window.
    #[must_use]
    pub fn chat_pids(&self) -> Vec<u32> {
        children_named(self.pid(), "clawtray-chat")
            .into_iter()
            .filter(|pid| {
                !std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"--prewarm"))
            })
            .collect()
    }
}

/// Processes whose parent is `ppid` and whose name is `name`.
#[must_use]
pub fn children_named(ppid: u32, name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid …
            let Some((head, tail)) = stat.rsplit_once(") ") else {
                return false;
            };
            let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or_default();
            // a zombie counts: its parent has not yet seen it end
            let parent = tail.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
            comm == name && parent == Some(ppid)
        })
        .collect()
}

/// `WebKitWebDriver` attached to a running chat window's inspector port.
pub struct WindowDriver {
    _child: Group,
    pub addr: SocketAddr,
}

impl WindowDriver {
    /// Start a driver for the window listening on `inspector`, and open a session once the
    /// window is up (retried until [`WINDOW_TIMEOUT`]).
    pub async fn attach(inspector: u16, log: &Path) -> (WindowDriver, Session) {
        let deadline = Instant::now() + WINDOW_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            let port = free_port();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open the driver's log");
            let child = Command::new("WebKitWebDriver")
                .arg(format!("--port={port}"))
                .arg(format!("--target=127.0.0.1:{inspector}"))
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("start WebKitWebDriver (apt package webkit2gtk-driver)");
            let driver = WindowDriver {
                _child: Group(child),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            let up = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(driver.addr).is_err() && Instant::now() < up {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            match Session::attach(driver.addr).await {
                Ok(s) => return (driver, s),
                Err(e) => last = e.to_string(),
            }
            drop(driver);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("no chat window to attach to on port {inspector} within {WINDOW_TIMEOUT:?}: {last}");
    }
}

/// Wait until `ok`, polling; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
