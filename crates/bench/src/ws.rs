//! WebSocket ends for the relay rows: sessions seeded straight into a relay database (so ten
//! thousand paired sessions cost no pairing), the release relay as a child process, ends that
//! resume a session, and the two measurements — round trips and one-way throughput.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use clawtray_proto::secret::fill_random;
use clawtray_relay::store::{token_hash, SessionRecord, SqliteStore};

use crate::stats::percentile;

pub use clawtray_testkit::ws::Ws;

/// One seeded session: its id and both ends' device tokens.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub id: String,
    pub agent_token: String,
    pub desktop_token: String,
}

/// `n` random bytes in hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b).expect("the OS random source");
    hex::encode(b)
}

/// Write `n` paired sessions into the relay database at `db`.
pub fn seed_sessions(db: &Path, n: usize) -> Vec<Seeded> {
    let store = SqliteStore::open(db).expect("open the relay database");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (0..n)
        .map(|_| {
            let s = Seeded {
                id: random_hex(11), // 22 characters, as the relay expects
                agent_token: random_hex(32),
                desktop_token: random_hex(32),
            };
            store
                .create(&SessionRecord {
                    id: s.id.clone(),
                    agent_token_hash: token_hash(&s.agent_token),
                    desktop_token_hash: token_hash(&s.desktop_token),
                    created_at: now,
                    last_seen: now,
                    revoked_at: None,
                })
                .expect("seed a session");
            s
        })
        .collect()
}

/// A release binary next to this one (`scripts/bench` builds them all).
pub fn sibling_bin(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is not built next to clawtray-bench: run scripts/bench"))
}

/// A child process that prints `… listening on ADDR` first (the relay, the forwarder, the echo).
pub struct Server {
    /// Killed when the server is dropped.
    pub child: Child,
    pub addr: String,
    pub pid: u32,
}

impl Server {
    pub async fn spawn(bin: &Path, args: &[String]) -> Server {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let pid = child.id().expect("pid");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next_line()
                .await
                .expect("read the server's output")
                .expect("the server printed its address");
            if let Some((_, a)) = line.rsplit_once("listening on ") {
                break a.trim().to_owned();
            }
        };
        // keep reading: a server whose stdout closed would die on its next line
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server { child, addr, pid }
    }

    /// The release relay on a seeded database, limits raised out of the way (the rows measure
    /// forwarding, not the flood limiter).
    pub async fn relay(db: &Path) -> Server {
        Self::relay_with(&["--db", &db.display().to_string(), "--metrics-listen", "off"]).await
    }

    /// A release relay node of a cluster on the Redis at `redis`, its metrics on `metrics`.
    pub async fn relay_node(redis: &str, node: &str, metrics: &str) -> Server {
        Self::relay_with(&[
            "--redis",
            redis,
            "--node-id",
            node,
            "--metrics-listen",
            metrics,
        ])
        .await
    }

    /// The release relay with `store` arguments and the raised limits.
    async fn relay_with(store: &[&str]) -> Server {
        let args: Vec<String> = store
            .iter()
            .copied()
            .chain([
                "--listen",
                "127.0.0.1:0",
                "--frames-per-sec",
                "1000000000",
                "--frame-burst",
                "1000000000",
                "--bytes-per-sec",
                "100000000000",
                "--byte-burst",
                "100000000000",
                "--queue-frames",
                "2000000000",
                "--queue-bytes",
                "100000000000",
                "--max-connections",
                "19500",
                // every bench client comes from 127.0.0.1
                "--max-connections-per-ip",
                "0",
                "--pairing-per-ip-per-min",
                "100000",
            ])
            .map(|s| s.to_owned())
            .collect();
        Server::spawn(&sibling_bin("clawtray-relay"), &args).await
    }
}

/// Connect to `url` with an optional bearer token.
pub async fn connect(url: &str, bearer: Option<&str>) -> Ws {
    clawtray_testkit::ws::connect(url, bearer)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Resume a seeded session's end at the relay; waits for `resumed`.
pub async fn resume(addr: &str, s: &Seeded, agent: bool) -> Ws {
    let (path, token) = if agent {
        (
            format!("/v1/agent?session={}&instance=bench", s.id),
            &s.agent_token,
        )
    } else {
        (format!("/v1/desktop?session={}", s.id), &s.desktop_token)
    };
    let mut ws = connect(&format!("ws://{addr}{path}"), Some(token)).await;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("resumed") => return ws,
            Some(Ok(Message::Text(t))) => panic!("the relay refused a seeded session: {t}"),
            Some(Ok(_)) => {}
            other => panic!("the relay closed a seeded session: {other:?}"),
        }
    }
}

/// Read the next binary frame.
pub async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return b.to_vec(),
            Some(Ok(
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_),
            )) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Echo every binary frame back until the connection ends; `transform` maps each one.
pub async fn echo(mut ws: Ws, mut transform: impl FnMut(Vec<u8>) -> Vec<u8> + Send) {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Binary(b) = m {
            if ws
                .send(Message::binary(transform(b.to_vec())))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// `iters` round trips of `frame`, each sent when the previous came back (after `warmup`).
pub async fn round_trips(
    ws: &mut Ws,
    make: &mut (dyn FnMut() -> Vec<u8> + Send),
    check: &mut (dyn FnMut(Vec<u8>) + Send),
    iters: usize,
    warmup: usize,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(iters);
    for i in 0..iters + warmup {
        let t = Instant::now();
        ws.send(Message::binary(make())).await.expect("send");
        check(next_binary(ws).await);
        if i >= warmup {
            out.push(t.elapsed());
        }
    }
    out
}

/// p50 and p99 of `iters` round trips of `size` bytes from `ws`, echoed unchanged at the far
/// end (after a tenth as many for warm-up).
pub async fn echo_percentiles(ws: &mut Ws, size: usize, iters: usize) -> (Duration, Duration) {
    let frame = vec![7u8; size];
    let mut make = || frame.clone();
    let mut check = |b: Vec<u8>| assert_eq!(b.len(), size, "a frame came back damaged");
    let mut s = round_trips(ws, &mut make, &mut check, iters, iters / 10).await;
    (percentile(&mut s, 50.0), percentile(&mut s, 99.0))
}

/// Send `count` frames of `size` bytes as fast as the socket takes them; `rx` counts them.
/// Returns MiB/s from the first send to the last arrival.
pub async fn throughput(tx: &mut Ws, mut rx: Ws, size: usize, count: usize) -> (f64, Ws) {
    let reader = tokio::spawn(async move {
        for _ in 0..count {
            next_binary(&mut rx).await;
        }
        rx
    });
    let frame = vec![1u8; size];
    let t = Instant::now();
    for _ in 0..count {
        tx.feed(Message::binary(frame.clone())).await.expect("send");
    }
    tx.flush().await.expect("flush");
    let rx = reader.await.expect("the reader");
    let secs = t.elapsed().as_secs_f64();
    ((size * count) as f64 / (1024.0 * 1024.0) / secs, rx)
}
