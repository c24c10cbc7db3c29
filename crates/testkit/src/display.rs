//! A private X display (`Xvfb`) and `tauri-driver` (with Debian's `WebKitWebDriver`) for driving
//! the real app in tests. Both run in their own process groups and are killed with everything
//! they started (web driver, app, web processes) when dropped.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a helper process may take to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A child in its own process group, killed as a group on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `Xvfb` on a display number nobody else uses.
pub struct Xvfb {
    _child: Group,
    /// e.g. `:93`
    pub display: String,
}

impl Xvfb {
    /// Start a 1280×800 screen; waits until its socket accepts connections.
    #[must_use]
    pub fn start() -> Xvfb {
        let first = 90 + (std::process::id() % 500);
        let n = (first..first + 200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .expect("a free X display number");
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start Xvfb (apt package xvfb)");
        let child = Group(child);
        let socket = format!("/tmp/.X11-unix/X{n}");
        wait_until("Xvfb's socket", || Path::new(&socket).exists());
        Xvfb {
            _child: child,
            display,
        }
    }
}

/// Where `tauri-driver` is: `$CLAWTRAY_TAURI_DRIVER`, then `$PATH`, then where
/// `scripts/setup-tauri-driver` installs it.
#[must_use]
pub fn tauri_driver_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAWTRAY_TAURI_DRIVER") {
        return PathBuf::from(p);
    }
    crate::on_path("tauri-driver").unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        Path::new(&home).join(".cache/clawtray/tools/bin/tauri-driver")
    })
}

/// A running `tauri-driver`: a W3C WebDriver endpoint that starts the app under test.
pub struct TauriDriver {
    _child: Group,
    /// Its WebDriver endpoint.
    pub addr: SocketAddr,
}

impl TauriDriver {
    /// Start it on free loopback ports. `env` is the environment the app will see (on top of
    /// this process's: DISPLAY, HOME, XDG dirs…); its output goes to `log`.
    #[must_use]
    pub fn start(env: &[(&str, &Path)], log: &Path) -> TauriDriver {
        let bin = tauri_driver_bin();
        assert!(
            bin.exists(),
            "tauri-driver not found at {} (scripts/setup-tauri-driver installs it)",
            bin.display()
        );
        let port = free_port();
        let native = free_port();
        let log = std::fs::File::create(log).expect("create tauri-driver's log");
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = Group(cmd.spawn().expect("start tauri-driver"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // tauri-driver answers at once but forwards to WebKitWebDriver, which comes up later;
        // a session asked for before then gets an empty answer
        let native = SocketAddr::from(([127, 0, 0, 1], native));
        wait_until("tauri-driver and WebKitWebDriver to listen", || {
            std::net::TcpStream::connect(addr).is_ok()
                && std::net::TcpStream::connect(native).is_ok()
        });
        TauriDriver {
            _child: child,
            addr,
        }
    }
}

use crate::free_port;

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
