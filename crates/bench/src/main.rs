//! `clawtray-bench`: the bench suite. Each row measures something a user or a relay operator
//! cares about next to a baseline measured in the same run, and the table (figure, baseline,
//! ratio, target) goes to stdout and `target/bench/report.md`. Run it through `scripts/bench`,
//! which builds everything in release mode and runs the criterion benches first.

mod agent_overhead;
mod app_idle;
mod attachments;
mod cluster;
mod crypto;
mod history;
mod overhead;
mod packages;
mod pairing;
mod real_agent;
mod report;
mod scale;
mod servers;
mod stats;
mod stream;
mod ws;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "clawtray-bench",
    about = "clawtray's bench suite (use scripts/bench)"
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Only these rows (crypto, stream, overhead, pairing, agent, history, files, scale, cluster, app, packages); all when empty.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where report.md goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Criterion's output dir (for the crypto row).
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// What ui/bench/stream.mjs printed (for the streaming row).
    #[arg(long, default_value = "target/bench/stream.json")]
    stream_json: PathBuf,
    /// Where scripts/bench put the packages and the starter app's .deb (for the packages row).
    #[arg(long, default_value = "target/bench/packages")]
    packages_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// (internal) the bare forwarder baseline.
    #[command(hide = true)]
    Forwarder,
    /// (internal) the direct echo baseline.
    #[command(hide = true)]
    Echo,
    /// (internal) hold idle session ends for the scale row.
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        sessions: PathBuf,
        #[arg(long)]
        agent: bool,
        /// Resume ends whose connection ended at this relay (the failover row).
        #[arg(long)]
        fallback: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.cmd {
        Some(Cmd::Forwarder) => return servers::forwarder().await,
        Some(Cmd::Echo) => return servers::echo().await,
        Some(Cmd::Hold {
            addr,
            sessions,
            agent,
            fallback,
        }) => return scale::hold(addr, sessions, agent, fallback).await,
        None => {}
    }
    let want = |row: &str| args.only.is_empty() || args.only.iter().any(|o| o == row);
    let mut rows = Vec::new();
    if want("crypto") {
        println!("bench: crypto (criterion results)");
        crypto::run(&mut rows, &args.criterion_dir);
    }
    if want("stream") {
        stream::run(&mut rows, &args.stream_json);
    }
    if want("overhead") {
        println!("bench: relay overhead");
        overhead::run(&mut rows).await;
    }
    let relay_one_way = rows
        .iter()
        .find(|r| r.figure.starts_with("relay round trip, 1 KiB frames, p50"))
        .map(|r| std::time::Duration::from_secs_f64(r.value / 2e6));
    if want("pairing") {
        println!("bench: pairing and re-key");
        pairing::run(&mut rows).await;
    }
    if want("agent") {
        println!("bench: agent overhead (starts the OpenClaw gateway, ~20 s)");
        agent_overhead::run(&mut rows, relay_one_way).await;
    }
    if want("history") {
        println!("bench: opening a long conversation (fills 5,000 messages, ~3 minutes)");
        history::run(&mut rows).await;
    }
    if want("files") {
        println!("bench: a 5 MiB file through the relay (starts the OpenClaw gateway, ~40 s)");
        attachments::run(&mut rows).await;
    }
    if want("scale") {
        println!("bench: relay scale (1k, 5k, 9k sessions)");
        scale::run(&mut rows).await;
    }
    if want("cluster") {
        println!("bench: a relay cluster on Redis (3–4 nodes, 11,000 sessions, a node killed; ~2 minutes)");
        cluster::run(&mut rows).await;
    }
    if want("app") {
        println!("bench: the tray host at rest and on click (about 3 minutes under Xvfb)");
        app_idle::run(&mut rows).await;
    }
    if want("packages") {
        println!("bench: package sizes and install times (installs and purges as root)");
        packages::run(&mut rows, &args.packages_dir);
    }
    if let Err(e) = report::write(&rows, &args.out, &report::machine()) {
        eprintln!(
            "bench: cannot write the report under {}: {e}",
            args.out.display()
        );
        std::process::exit(1);
    }
}
