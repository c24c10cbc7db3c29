//! Row 1 — relay overhead: round trips (p50/p99) and one-way throughput of 1 KiB and 64 KiB
//! frames between two ends through `clawtray-relay`, against a bare tokio-tungstenite forwarder
//! and a direct echo measured in the same run; and sealed against unsealed frames.

use clawtray_proto::meeting::Meeting;
use clawtray_proto::secret::StaticKeypair;

use crate::report::Row;
use crate::stats::{percentile, us};
use crate::ws::{self, Server, Ws};

struct Sizes {
    size: usize,
    label: &'static str,
    iters: usize,
    frames: usize,
}

const SIZES: [Sizes; 2] = [
    Sizes {
        size: 1024,
        label: "1 KiB",
        iters: 3000,
        frames: 40_000,
    },
    Sizes {
        size: 64 * 1024,
        label: "64 KiB",
        iters: 600,
        frames: 2_000,
    },
];

fn this_bin() -> std::path::PathBuf {
    std::env::current_exe().expect("current exe")
}

/// A pair of ends through a fresh forwarder process: (ours, far end).
pub(crate) async fn forwarder_pair() -> (Server, Ws, Ws) {
    let f = Server::spawn(&this_bin(), &["forwarder".to_owned()]).await;
    let a = ws::connect(&format!("ws://{}/", f.addr), None).await;
    let b = ws::connect(&format!("ws://{}/", f.addr), None).await;
    (f, a, b)
}

/// A meeting between two fresh keys, as the ends would hold after their handshake.
fn meetings(session: &str) -> (Meeting, Meeting) {
    let desktop = StaticKeypair::generate().expect("key");
    let agent = StaticKeypair::generate().expect("key");
    crate::pairing::meet(&desktop, &agent, session)
}

pub async fn run(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relay.db");
    let sessions = ws::seed_sessions(&db, 8);
    let relay = Server::relay(&db).await;
    let echo = Server::spawn(&this_bin(), &["echo".to_owned()]).await;
    for (i, sz) in SIZES.iter().enumerate() {
        // round trips through the relay: the agent end echoes
        let s = &sessions[i];
        let mut desk = ws::resume(&relay.addr, s, false).await;
        let agent = ws::resume(&relay.addr, s, true).await;
        let echoing = tokio::spawn(ws::echo(agent, |b| b));
        let (r50, r99) = ws::echo_percentiles(&mut desk, sz.size, sz.iters).await;
        echoing.abort();
        // the same through the bare forwarder
        let (_f, mut a, b) = forwarder_pair().await;
        let echoing = tokio::spawn(ws::echo(b, |b| b));
        let (f50, f99) = ws::echo_percentiles(&mut a, sz.size, sz.iters).await;
        echoing.abort();
        // and one hop: a direct echo
        let mut e = ws::connect(&format!("ws://{}/", echo.addr), None).await;
        let (e50, _) = ws::echo_percentiles(&mut e, sz.size, sz.iters).await;
        rows.push(
            Row::new(
                format!("relay round trip, {} frames, p50", sz.label),
                us(r50),
                "µs",
            )
            .against("bare forwarder", us(f50))
            .target(
                "≤ 1.2× forwarder",
                r50.as_secs_f64() <= 1.2 * f50.as_secs_f64(),
            ),
        );
        rows.push(
            Row::new(
                format!("relay round trip, {} frames, p99", sz.label),
                us(r99),
                "µs",
            )
            .against("bare forwarder", us(f99)),
        );
        rows.push(
            Row::new(
                format!("direct echo (one hop, context), {}, p50", sz.label),
                us(e50),
                "µs",
            )
            .against("relay p50", us(r50)),
        );
        // one-way throughput
        let s = &sessions[2 + i];
        let mut desk = ws::resume(&relay.addr, s, false).await;
        let agent = ws::resume(&relay.addr, s, true).await;
        let (relay_mibs, _) = ws::throughput(&mut desk, agent, sz.size, sz.frames).await;
        let (_f, mut a, b) = forwarder_pair().await;
        let (fwd_mibs, _) = ws::throughput(&mut a, b, sz.size, sz.frames).await;
        rows.push(
            Row::new(
                format!("relay throughput, {} frames", sz.label),
                relay_mibs,
                "MiB/s",
            )
            .against("bare forwarder", fwd_mibs),
        );
    }
    // sealed against unsealed, through the relay: each end seals what it sends, opens what it gets
    let s = &sessions[4];
    let (desk_m, mut agent_m) = meetings(&s.id);
    let mut desk = ws::resume(&relay.addr, s, false).await;
    let agent = ws::resume(&relay.addr, s, true).await;
    let echoing = tokio::spawn(ws::echo(agent, move |b| {
        let plain = agent_m.opener.open(&b).expect("open at the agent");
        agent_m.sealer.seal(&plain).expect("seal at the agent")
    }));
    let plain = vec![9u8; 1024];
    let mut sealer = desk_m.sealer;
    let mut opener = desk_m.opener;
    let mut make = || sealer.seal(&plain).expect("seal");
    let mut check = |b: Vec<u8>| {
        opener.open(&b).expect("open");
    };
    let mut samples = ws::round_trips(&mut desk, &mut make, &mut check, 3000, 300).await;
    echoing.abort();
    let sealed50 = percentile(&mut samples, 50.0);
    let s = &sessions[5];
    let mut desk2 = ws::resume(&relay.addr, s, false).await;
    let agent2 = ws::resume(&relay.addr, s, true).await;
    let echoing = tokio::spawn(ws::echo(agent2, |b| b));
    let (plain50, _) = ws::echo_percentiles(&mut desk2, 1024 + 28, 3000).await;
    echoing.abort();
    rows.push(
        Row::new(
            "sealed 1 KiB round trip via relay, p50 (4 seal/open)",
            us(sealed50),
            "µs",
        )
        .against("unsealed", us(plain50)),
    );
}
