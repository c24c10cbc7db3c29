//! Row 2 — relay scale: 1k, 5k and 9k paired sessions held open (both ends connected, idle,
//! pinging), the ends in other processes; the relay's RSS per socket and the p99 round trip of
//! one live session alongside. Baselines in the same run: a default tokio-tungstenite echo
//! server's RSS per idle socket, and the live session's p99 on an empty relay.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::report::Row;
use crate::stats::{ms, rss_kib};
use crate::ws::{self, Seeded, Server};

const STEPS: [usize; 3] = [1_000, 5_000, 9_000];
/// How often held ends ping (the relay closes a connection silent for 90 s).
const HOLD_PING: Duration = Duration::from_secs(20);

/// `clawtray-bench hold`: connect both ends of the listed sessions and keep them idle. With a
/// `fallback` address, an end whose connection ends resumes there at once and the holder prints
/// `back <session> <unix ms>` for it (the failover row).
pub async fn hold(addr: String, sessions: PathBuf, agent: bool, fallback: Option<String>) {
    let text = std::fs::read_to_string(&sessions).expect("the sessions file");
    let list: Vec<Seeded> = text
        .lines()
        .filter_map(|l| {
            let mut p = l.split(' ');
            Some(Seeded {
                id: p.next()?.to_owned(),
                agent_token: p.next()?.to_owned(),
                desktop_token: p.next()?.to_owned(),
            })
        })
        .collect();
    let mut held = Vec::with_capacity(list.len());
    for chunk in list.chunks(100) {
        let mut set = tokio::task::JoinSet::new();
        for s in chunk {
            let (addr, s) = (addr.clone(), s.clone());
            set.spawn(async move { ws::resume(&addr, &s, agent).await });
        }
        while let Some(ws) = set.join_next().await {
            held.push(ws.expect("connect an end"));
        }
    }
    println!("held {}", held.len());
    let _ = std::io::stdout().flush();
    let mut tasks = tokio::task::JoinSet::new();
    let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for (mut ws, s) in held.into_iter().zip(list) {
        let fallback = fallback.clone();
        let back_tx = back_tx.clone();
        tasks.spawn(async move {
            let mut ping = tokio::time::interval(HOLD_PING);
            loop {
                tokio::select! {
                    m = ws.next() => if !matches!(m, Some(Ok(_))) { break },
                    _ = ping.tick() => if ws.send(Message::Ping(Vec::new().into())).await.is_err() { break },
                }
            }
            let Some(fallback) = fallback else { return };
            ws = ws::resume(&fallback, &s, agent).await;
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let _ = back_tx.send(format!("back {} {ms}", s.id));
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
    drop(back_tx);
    let printer = tokio::spawn(async move {
        while let Some(line) = back_rx.recv().await {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    });
    while tasks.join_next().await.is_some() {}
    let _ = printer.await;
}

pub(crate) fn write_sessions(path: &Path, s: &[Seeded]) {
    let body: String = s
        .iter()
        .map(|s| format!("{} {} {}\n", s.id, s.agent_token, s.desktop_token))
        .collect();
    std::fs::write(path, body).expect("write the sessions file");
}

pub(crate) async fn spawn_holder(addr: &str, file: &Path, agent: bool) -> Child {
    spawn_holder_with(addr, file, agent, None).await.0
}

/// A holder process; with `fallback`, also the rest of its output (the `back …` lines).
pub(crate) async fn spawn_holder_with(
    addr: &str,
    file: &Path,
    agent: bool,
    fallback: Option<&str>,
) -> (
    Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut c = Command::new(std::env::current_exe().expect("current exe"));
    c.args(["hold", "--addr", addr, "--sessions"])
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if agent {
        c.arg("--agent");
    }
    if let Some(f) = fallback {
        c.args(["--fallback", f]);
    }
    let mut child = c.spawn().expect("start a holder");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let line = lines
        .next_line()
        .await
        .expect("read the holder")
        .expect("the holder reports");
    assert!(line.starts_with("held "), "holder: {line}");
    (child, lines)
}

/// p99 of 1 KiB round trips on one live session.
async fn live_p99(addr: &str, s: &Seeded) -> Duration {
    let mut desk = ws::resume(addr, s, false).await;
    let agent = ws::resume(addr, s, true).await;
    let echoing = tokio::spawn(ws::echo(agent, |b| b));
    let (_, p99) = ws::echo_percentiles(&mut desk, 1024, 2000).await;
    echoing.abort();
    p99
}

/// RSS per idle socket of a default tokio-tungstenite echo server (the floor a naive relay sits on).
pub(crate) async fn default_server_per_socket(n: usize) -> f64 {
    let echo = Server::spawn(
        &std::env::current_exe().expect("current exe"),
        &["echo".to_owned()],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(echo.pid);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut w = ws::connect(&format!("ws://{}/", echo.addr), None).await;
        // one small frame each, so the server's read path (and its buffer) is warm
        w.send(Message::binary(vec![0u8; 16])).await.expect("send");
        ws::next_binary(&mut w).await;
        held.push(w);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(echo.pid);
    (after.saturating_sub(before)) as f64 * 1024.0 / n as f64
}

pub async fn run(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relay.db");
    let total = STEPS[STEPS.len() - 1];
    let sessions = ws::seed_sessions(&db, total + 1);
    let (live, idle) = sessions.split_last().expect("sessions");
    let relay = Server::relay(&db).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty_p99 = live_p99(&relay.addr, live).await;
    let rss_before = rss_kib(relay.pid);
    let naive = default_server_per_socket(1000).await;
    rows.push(Row::new(
        "baseline: default tokio-tungstenite server, per idle socket",
        naive / 1024.0,
        "KiB",
    ));
    let mut holders = Vec::new();
    let mut from = 0;
    for step in STEPS {
        let part = &idle[from..step];
        let file = dir.path().join(format!("sessions-{step}.txt"));
        write_sessions(&file, part);
        holders.push(spawn_holder(&relay.addr, &file, true).await);
        holders.push(spawn_holder(&relay.addr, &file, false).await);
        from = step;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = rss_kib(relay.pid);
        let per_socket = (rss.saturating_sub(rss_before)) as f64 * 1024.0 / (2 * step) as f64;
        let p99 = live_p99(&relay.addr, live).await;
        rows.push(
            Row::new(
                format!(
                    "relay RSS per socket, {step} sessions ({} MiB total)",
                    rss / 1024
                ),
                per_socket / 1024.0,
                "KiB",
            )
            .against("default tungstenite server", naive / 1024.0)
            .target("≤ 25 KB", per_socket <= 25_000.0),
        );
        rows.push(
            Row::new(
                format!("live session 1 KiB round trip p99, {step} idle sessions"),
                ms(p99),
                "ms",
            )
            .against("empty relay", ms(empty_p99))
            .target("< 5 ms", p99 < Duration::from_millis(5)),
        );
    }
    drop(holders);
}
