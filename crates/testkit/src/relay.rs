//! The real relay binary as a child process, with its own database and log file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Time allowed for each step of a test.
pub const STEP: Duration = Duration::from_secs(10);

/// The workspace's `clawtray-relay` debug binary, built on first use if needed.
#[must_use]
pub fn relay_bin() -> PathBuf {
    crate::bins::workspace_bin("clawtray-relay")
}

/// A running relay.
pub struct Relay {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The metrics listener (`/metrics`), on its own loopback port.
    pub metrics_addr: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    args: Vec<String>,
}

impl Relay {
    /// Start `bin` with `extra` arguments on a free loopback port.
    pub async fn start_bin(bin: &Path, extra: &[&str]) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let (child, addr, metrics_addr) = spawn(
            bin,
            &dir.path().join("relay.db"),
            &dir.path().join("relay.log"),
            "127.0.0.1:0",
            &args,
        )
        .await;
        Relay {
            child: Some(child),
            addr,
            metrics_addr,
            dir,
            bin: bin.to_owned(),
            args,
        }
    }

    /// Start the workspace's relay binary.
    pub async fn start(extra: &[&str]) -> Relay {
        Self::start_bin(&relay_bin(), extra).await
    }

    /// `n` nodes of a relay cluster on the Redis at `urls` (one URL, or Redis Cluster seeds),
    /// named `{prefix}-0`…, each with `extra` arguments too.
    pub async fn start_cluster(
        urls: &[String],
        n: usize,
        prefix: &str,
        extra: &[&str],
    ) -> Vec<Relay> {
        Self::start_cluster_bin(&relay_bin(), urls, n, prefix, extra).await
    }

    /// [`Relay::start_cluster`] with the relay binary at `bin`.
    pub async fn start_cluster_bin(
        bin: &Path,
        urls: &[String],
        n: usize,
        prefix: &str,
        extra: &[&str],
    ) -> Vec<Relay> {
        let urls = urls.join(",");
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("{prefix}-{i}");
            let mut args = vec!["--redis", urls.as_str(), "--node-id", id.as_str()];
            args.extend_from_slice(extra);
            nodes.push(Relay::start_bin(bin, &args).await);
        }
        nodes
    }

    /// Its SQLite database.
    #[must_use]
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("relay.db")
    }

    /// Everything it logged (debug level).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }

    /// SIGKILL (no goodbye to anyone).
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// SIGTERM and wait for the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = c.id().expect("pid");
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        tokio::time::timeout(Duration::from_secs(15), c.wait())
            .await
            .expect("relay exits after SIGTERM")
            .expect("wait")
    }

    /// Start again (after a kill) on the same address and database.
    pub async fn start_again(&mut self) {
        let (child, addr, metrics_addr) = spawn(
            &self.bin,
            &self.db(),
            &self.dir.path().join("relay.log"),
            &self.addr.to_string(),
            &self.args,
        )
        .await;
        assert_eq!(addr, self.addr);
        self.metrics_addr = metrics_addr;
        self.child = Some(child);
    }

    /// SIGKILL, then start again on the same address and database.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.start_again().await;
    }

    /// `ws://addr{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// A raw HTTP GET; the whole response. `/metrics` goes to the metrics listener.
    pub async fn http_get(&self, path: &str) -> String {
        let to = match self.metrics_addr {
            Some(m) if path.starts_with("/metrics") => m,
            _ => self.addr,
        };
        Self::http_get_at(to, path).await
    }

    /// A raw HTTP GET to `addr`; the whole response.
    pub async fn http_get_at(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

async fn spawn(
    bin: &Path,
    db: &Path,
    log: &Path,
    listen: &str,
    extra: &[String],
) -> (Child, SocketAddr, Option<SocketAddr>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut last_err = String::new();
    // Re-binding the same port right after a kill can race the kernel: retry briefly.
    for _ in 0..50 {
        let own_metrics = extra.iter().any(|a| a == "--metrics-listen");
        // a cluster node keeps its sessions in Redis, not in a database of its own
        let clustered = extra.iter().any(|a| a == "--redis");
        let mut child = Command::new(bin)
            .args(["--listen", listen])
            .args(if clustered {
                vec![]
            } else {
                vec![std::ffi::OsString::from("--db"), db.as_os_str().to_owned()]
            })
            .args(if own_metrics {
                &[][..]
            } else {
                &["--metrics-listen", "127.0.0.1:0"][..]
            })
            .args(extra)
            .env(
                "CLAWTRAY_LOG",
                std::env::var("CLAWTRAY_TEST_RELAY_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log.try_clone().expect("log clone"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn relay");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        match tokio::time::timeout(STEP, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let addr = line
                    .rsplit(' ')
                    .next()
                    .expect("addr")
                    .parse()
                    .expect("socket addr");
                // "clawtray-relay metrics on ADDR" follows unless metrics are off
                let metrics_off = extra
                    .windows(2)
                    .any(|w| w[0] == "--metrics-listen" && w[1] == "off");
                let metrics = if metrics_off {
                    None
                } else {
                    let mut found = None;
                    // a cluster node names itself first
                    for _ in 0..2 {
                        match tokio::time::timeout(STEP, lines.next_line()).await {
                            Ok(Ok(Some(m))) if m.contains("metrics on") => {
                                found = m.rsplit(' ').next().and_then(|a| a.parse().ok());
                                break;
                            }
                            Ok(Ok(Some(m))) if m.contains("cluster node") => continue,
                            _ => break,
                        }
                    }
                    found
                };
                // keep draining stdout so the relay never blocks on a full pipe
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return (child, addr, metrics);
            }
            other => {
                last_err = format!("{other:?}");
                let _ = child.kill().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("relay did not start: {last_err}");
}

/// The value of the metric `name` (a whole name: `name` followed by a space or labels) in
/// Prometheus text, if there is one.
#[must_use]
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}
