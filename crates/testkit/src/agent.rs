//! Real `clawtray-agent` processes: `run` against the real gateway, and `pair`, whose printed
//! code a test types into a desktop the way a person would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::gateway::{Gateway, TEST_GATEWAY_TOKEN};

/// How long `pair` may take to print its code.
pub const CODE_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace's `clawtray-agent` binary.
#[must_use]
pub fn agent_bin() -> PathBuf {
    crate::bins::workspace_bin("clawtray-agent")
}

/// A `clawtray-agent run` process; killed when dropped. It logs (debug) to `<state>.log`.
pub struct AgentRun {
    pub child: Child,
}

impl AgentRun {
    /// Start `bin run` with its state in `state`, bridging to `gateway` under `session_key`.
    #[must_use]
    pub fn start(bin: &Path, state: &Path, gateway: &Gateway, session_key: &str) -> AgentRun {
        Self::start_with(bin, state, gateway, session_key, &[])
    }

    /// [`AgentRun::start`] with more `run` options (e.g. `--relay-heartbeat 2`).
    #[must_use]
    pub fn start_with(
        bin: &Path,
        state: &Path,
        gateway: &Gateway,
        session_key: &str,
        extra: &[&str],
    ) -> AgentRun {
        Self::start_at(bin, state, &gateway.url(), session_key, extra)
    }

    /// [`AgentRun::start_with`] for a gateway at `gateway_url` (e.g. `wss://` behind a TLS
    /// terminator).
    #[must_use]
    pub fn start_at(
        bin: &Path,
        state: &Path,
        gateway_url: &str,
        session_key: &str,
        extra: &[&str],
    ) -> AgentRun {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.with_extension("log"))
            .expect("open the agent's log file");
        let child = Command::new(bin)
            .arg("--state-dir")
            .arg(state)
            .args([
                "run",
                "--gateway",
                gateway_url,
                "--session-key",
                session_key,
            ])
            .args(extra)
            // the token goes by environment, never on the command line (/proc/PID/cmdline)
            .env("OPENCLAW_GATEWAY_TOKEN", TEST_GATEWAY_TOKEN)
            .env("CLAWTRAY_LOG", "clawtray_agent=debug,info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn clawtray-agent run");
        AgentRun { child }
    }

    /// SIGKILL, and wait for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A running `clawtray-agent pair`, after it printed its code.
pub struct Pairing {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// The pairing code it shows.
    pub code: String,
    /// The `clawtray://pair?…` link it printed.
    pub link: Option<String>,
}

impl Pairing {
    /// Start `bin pair` against the relay at `relay` (a `ws://` base URL) and wait for its code.
    pub async fn start(bin: &Path, state: &Path, relay: &str, name: &str) -> Pairing {
        let mut child = Command::new(bin)
            .arg("--state-dir")
            .arg(state)
            .args(["pair", "--relay", relay, "--name", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn clawtray-agent pair");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut link = None;
        let code = loop {
            let line = tokio::time::timeout(CODE_TIMEOUT, lines.next_line())
                .await
                .expect("clawtray-agent pair printed no code in time")
                .expect("read clawtray-agent pair's output")
                .expect("clawtray-agent pair ended without a code");
            if let Some(at) = line.find("clawtray://pair?") {
                link = Some(line[at..].trim().to_owned());
            }
            if let Some(code) = line.strip_prefix("Pairing code: ") {
                break code.trim().to_owned();
            }
        };
        Pairing {
            child,
            lines,
            code,
            link,
        }
    }

    /// Wait for `pair` to end; returns what it printed after the code. Panics if it failed.
    pub async fn finish(mut self) -> String {
        let mut rest = String::new();
        while let Ok(Some(l)) = self.lines.next_line().await {
            rest.push_str(&l);
            rest.push('\n');
        }
        let status = self
            .child
            .wait()
            .await
            .expect("wait for clawtray-agent pair");
        assert!(status.success(), "clawtray-agent pair failed: {rest}");
        rest
    }
}
