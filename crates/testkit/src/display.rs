//! A private X display (`Xvfb`) for running the real app in tests, in its own process group and
//! killed with everything it started when dropped.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a helper process may take to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A child in its own process group, killed as a group on drop.
pub struct Group(pub Child);

impl Group {
    /// Start `cmd` in a process group of its own.
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0).spawn().map(Group)
    }
}

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

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
