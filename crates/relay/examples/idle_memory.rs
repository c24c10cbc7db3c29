//! Measures the relay's resident memory per idle WebSocket connection.
//!
//! `cargo run --release -p clawtray-relay --example idle_memory -- [CONNECTIONS]`
//! Starts the release `clawtray-relay` binary next to this example, opens CONNECTIONS idle
//! desktop sockets (default 2000), and prints the relay's RSS before and after.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(2000), |s| s.parse())?;
    let exe = std::env::current_exe()?;
    let relay_bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("clawtray-relay"))
        .ok_or("cannot locate clawtray-relay next to this example")?;
    let mut child = tokio::process::Command::new(&relay_bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--max-connections",
            "50000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("no pid")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let line = lines.next_line().await?.ok_or("relay printed nothing")?;
    let addr = line.rsplit(' ').next().ok_or("no address")?.to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/v1/desktop")).await?;
        ws.send(Message::Ping(Vec::new().into())).await?;
        conns.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!("connections  relay RSS before  relay RSS after  per connection");
    println!(
        "{n:>11}  {before:>12} KiB  {after:>11} KiB  {:>10.1} KiB",
        per / 1024.0
    );
    drop(conns);
    let _ = child.kill().await;
    Ok(())
}
