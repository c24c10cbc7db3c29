//! Real Redis for the relay cluster's tests: `redis-server` from the package manager as a child
//! process on a loopback port — one plain server (append-only file on, as docs/relay.md asks of
//! a production one, so a restart keeps what it held), or a Redis Cluster of masters with
//! replicas made by `redis-cli --cluster create`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::relay::STEP;

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    bus_port: u16,
    dir: PathBuf,
    cluster: bool,
    _tmp: Option<tempfile::TempDir>,
}

fn spawn(port: u16, bus_port: u16, dir: &Path, cluster: bool) -> Child {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--protected-mode", "no", "--loglevel", "warning"])
        // replicas sync at once (the default waits 5 s to batch them)
        .args(["--repl-diskless-sync-delay", "0"]);
    if cluster {
        cmd.args([
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
            "--cluster-config-file",
            "nodes.conf",
            // its own free port (the default, port + 10000, may not exist above 55535)
            "--cluster-port",
            &bus_port.to_string(),
        ]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (apt-get install redis-server; scripts/setup-system does)")
}

/// `redis-cli -p PORT ARGS…`, its output.
pub async fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_for_ping(port: u16) {
    let deadline = tokio::time::Instant::now() + STEP;
    while cli(port, &["ping"]).await.trim() != "PONG" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis on {port} did not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl RedisServer {
    /// A plain server on a free loopback port.
    pub async fn start() -> RedisServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        Self::start_in(dir, false, Some(tmp)).await
    }

    async fn start_in(dir: PathBuf, cluster: bool, tmp: Option<tempfile::TempDir>) -> RedisServer {
        let port = crate::free_port();
        let bus_port = crate::free_port();
        let child = spawn(port, bus_port, &dir, cluster);
        wait_for_ping(port).await;
        RedisServer {
            child: Some(child),
            port,
            bus_port,
            dir,
            cluster,
            _tmp: tmp,
        }
    }

    /// It has not been killed.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its data folder (the append-only file).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `redis://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// Start again on the same port and data directory (after [`RedisServer::kill`]).
    pub async fn start_again(&mut self) {
        for _ in 0..50 {
            let child = spawn(self.port, self.bus_port, &self.dir, self.cluster);
            self.child = Some(child);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                if cli(self.port, &["ping"]).await.trim() == "PONG" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.kill().await; // the port may not have been free yet
        }
        panic!("redis did not start again on {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}

/// A Redis Cluster on loopback.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _tmp: tempfile::TempDir,
}

impl RedisCluster {
    /// `masters` masters, each with `replicas` replicas, slots spread, every node up.
    pub async fn start(masters: usize, replicas: usize) -> RedisCluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for i in 0..masters * (1 + replicas) {
            let dir = tmp.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            nodes.push(RedisServer::start_in(dir, true, None).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let replicas = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let out = cli(nodes[0].port, &args).await;
        assert!(
            out.contains("[OK] All 16384 slots covered"),
            "cluster create: {out}"
        );
        let cluster = RedisCluster { nodes, _tmp: tmp };
        cluster.wait_healthy().await;
        // a replica that never finished its first sync cannot take over: wait for all of them
        let want = replicas.parse::<usize>().unwrap_or(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for i in cluster.masters().await {
            loop {
                let info = cli(cluster.nodes[i].port, &["info", "replication"]).await;
                if info.matches("state=online").count() >= want {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "replicas never synced: {info}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        cluster
    }

    /// Every live node says `cluster_state:ok`.
    pub async fn wait_healthy(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut ok = true;
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                ok &= cli(n.port, &["cluster", "info"])
                    .await
                    .contains("cluster_state:ok");
            }
            if ok {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let mut report = String::new();
                for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                    report += &format!(
                        "{}:\n{}\n{}\n",
                        n.port,
                        cli(n.port, &["cluster", "info"])
                            .await
                            .lines()
                            .take(3)
                            .collect::<Vec<_>>()
                            .join(" "),
                        cli(n.port, &["cluster", "nodes"]).await
                    );
                }
                panic!("the Redis Cluster never became healthy:\n{report}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL node `i` (a master) and wait until the cluster has noticed and a replica serves
    /// its slots.
    pub async fn kill_and_fail_over(&mut self, i: usize) {
        let killed_port = self.nodes[i].port;
        self.nodes[i].kill().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let live = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node")
            .port;
        loop {
            let nodes = cli(live, &["cluster", "nodes"]).await;
            let failed = nodes.lines().any(|l| {
                l.contains(&format!(":{killed_port}@"))
                    && l.split_whitespace()
                        .nth(2)
                        .is_some_and(|f| f.contains("fail") && !f.contains("fail?"))
            });
            if failed {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster never marked the master failed:\n{nodes}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.wait_healthy().await;
    }

    /// Seed URLs for `--redis` (every node).
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Indexes of the nodes that are masters now.
    pub async fn masters(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.child.is_some() && cli(n.port, &["role"]).await.starts_with("master") {
                out.push(i);
            }
        }
        out
    }

    /// Wait until every replica of `key`'s master holds `key` (Redis replicates after it
    /// answers; a master killed before that takes the write along).
    pub async fn wait_replicated(&self, key: &str) {
        let master = self.master_of(key).await;
        let live = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
        let master_id = cli(self.nodes[master].port, &["cluster", "myid"]).await;
        let nodes = cli(live.port, &["cluster", "nodes"]).await;
        let replicas: Vec<u16> = nodes
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some(master_id.trim()))
            .filter_map(|l| {
                l.split_whitespace()
                    .nth(1)?
                    .split(['@', ':'])
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for port in replicas {
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &port.to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("redis-cli");
                let out = {
                    use tokio::io::AsyncWriteExt;
                    let mut child = out;
                    let mut stdin = child.stdin.take().expect("stdin");
                    stdin
                        .write_all(format!("READONLY\nEXISTS {key}\n").as_bytes())
                        .await
                        .expect("write");
                    drop(stdin);
                    child.wait_with_output().await.expect("redis-cli")
                };
                if String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .nth(1)
                    .map(str::trim)
                    == Some("1")
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{key} never reached the replica on {port}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The master that serves `key`'s slot now.
    pub async fn master_of(&self, key: &str) -> usize {
        let live = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a live node");
        let slot = cli(live.port, &["cluster", "keyslot", key]).await;
        let slot: u16 = slot.trim().parse().expect("slot");
        // `CLUSTER NODES`: id addr:port@bus flags master ping pong epoch state slot-ranges…
        let reply = cli(live.port, &["cluster", "nodes"]).await;
        for line in reply.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 9 || !cols[2].contains("master") || cols[2].contains("fail") {
                continue;
            }
            for range in &cols[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
                    continue;
                };
                if (lo..=hi).contains(&slot) {
                    let port: u16 = cols[1]
                        .split(['@', ':'])
                        .nth(1)
                        .and_then(|p| p.parse().ok())
                        .expect("node port");
                    return self
                        .nodes
                        .iter()
                        .position(|n| n.port == port)
                        .expect("a node of ours");
                }
            }
        }
        panic!("no master serves slot {slot}");
    }
}
