//! The real OpenClaw gateway (npm `openclaw`, pinned in `tests/gateway/`) as a child process,
//! offline: isolated HOME and state dir, no catalog refresh, no update checks, no telemetry, no
//! mDNS, the fake model as its only provider, loopback only.
//!
//! The gateway runs under a small shell guard that kills it when our stdin closes, so a test
//! process that dies never leaves a ~1 GB gateway behind.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// The gateway token tests use.
pub const TEST_GATEWAY_TOKEN: &str = "clawtray-test-gateway-token";
/// Time allowed for the gateway to start listening (it takes ~20 s here).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// `tests/gateway` in the workspace.
#[must_use]
pub fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/gateway")
}

/// A running gateway.
pub struct Gateway {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    model: SocketAddr,
    /// Exec runs on the gateway host and asks a person every time.
    ask_for_exec: bool,
}

use crate::free_port;

impl Gateway {
    /// Start a gateway whose model is the fake model at `model`.
    pub fn start(model: SocketAddr) -> Gateway {
        Self::start_with(model, false)
    }

    /// Start a gateway whose exec tool runs commands on this host and asks for a person's
    /// approval every time (`tools.exec: {host: gateway, security: full, ask: always}`).
    pub fn start_asking_for_exec(model: SocketAddr) -> Gateway {
        Self::start_with(model, true)
    }

    fn start_with(model: SocketAddr, ask_for_exec: bool) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut g = Gateway {
            child: None,
            port: free_port(),
            dir,
            model,
            ask_for_exec,
        };
        g.write_config();
        g.spawn();
        g
    }

    /// `ws://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The config file (the agent can read its port and token from it, as from a real install).
    #[must_use]
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("openclaw.json")
    }

    fn write_config(&self) {
        let d = self.dir.path();
        std::fs::create_dir_all(d.join("home")).expect("home");
        std::fs::create_dir_all(d.join("state")).expect("state");
        let mut config = json!({
            "gateway": {"mode": "local", "port": self.port, "bind": "loopback", "auth": {"mode": "token", "token": TEST_GATEWAY_TOKEN}},
            "models": {"mode": "replace", "catalogRefresh": {"enabled": false}, "providers": {"fake": {
                "baseUrl": format!("http://{}/v1", self.model), "apiKey": "sk-local-fake", "api": "openai-completions",
                "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": false, "input": ["text"], "contextWindow": 128000, "maxTokens": 4096,
                            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}}]}}},
            "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
            "update": {"checkOnStart": false},
            "telemetry": {"enabled": false},
            "discovery": {"mdns": {"mode": "off"}},
            "browser": {"enabled": false},
            "cron": {"enabled": false},
            "plugins": {"enabled": false},
            "logging": {"file": d.join("gateway-file.log")},
        });
        if self.ask_for_exec {
            config["tools"] =
                json!({"exec": {"host": "gateway", "security": "full", "ask": "always"}});
        }
        std::fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write config");
    }

    fn spawn(&mut self) {
        let h = harness_dir();
        let node = h.join("node/node_modules/.bin/node");
        let entry = h.join("openclaw/node_modules/openclaw/openclaw.mjs");
        assert!(
            node.exists() && entry.exists(),
            "the pinned gateway is not installed: run scripts/setup-gateway"
        );
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("gateway.log"))
            .expect("log");
        // sh guard: start the gateway, wait for stdin to close, then stop it
        let script = r#""$NODE" "$ENTRY" gateway run --port "$PORT" --bind loopback & pid=$!; cat >/dev/null; kill $pid 2>/dev/null; sleep 2; kill -9 $pid 2>/dev/null"#;
        let child = Command::new("sh")
            .args(["-c", script])
            .env("NODE", &node)
            .env("ENTRY", &entry)
            .env("PORT", self.port.to_string())
            .env("HOME", d.join("home"))
            .env("OPENCLAW_STATE_DIR", d.join("state"))
            .env("OPENCLAW_CONFIG_PATH", self.config_path())
            .env("OPENCLAW_DISABLE_BONJOUR", "1")
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("OPENCLAW_NO_RESPAWN", "1")
            .env("OPENCLAW_SKIP_CHANNELS", "1")
            .env("OPENCLAW_EXEC_SHELL_SNAPSHOT", "0")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn the gateway");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the gateway did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stop (SIGTERM via the guard) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop and start again on the same port and state.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// What the gateway printed.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.flush();
            }
            let _ = c.wait();
        }
    }
}
