//! Row 11 — a relay cluster on Redis (one real `redis-server`, release relay nodes): round trips
//! between ends on two nodes against ends on one node and the bare forwarder; one-way throughput
//! likewise; Redis commands per forwarded frame (same node: none); RSS per socket of 3 nodes ×
//! 3,000 sessions against one embedded relay holding 3,000; and failover — a node holding 1,000
//! sessions SIGKILLed, the time until every one of them is back on another node.

use std::time::{Duration, Instant};

use clawtray_relay::store::token_hash;
use clawtray_testkit::haproxy::Haproxy;
use clawtray_testkit::redis::RedisServer;

use crate::overhead::forwarder_pair;
use crate::report::Row;
use crate::scale::{default_server_per_socket, spawn_holder, spawn_holder_with, write_sessions};
use crate::stats::{ms, percentile, rss_kib, us};
use crate::ws::{self, Seeded, Server};

const RTT_ITERS: usize = 3000;
const FRAMES: usize = 20_000;
const PER_NODE: usize = 3000;
const FAILOVER: usize = 1000;
/// Connections of each end per session in the affinity figure (each lands anew).
const AFFINITY_ROUNDS: usize = 10;
/// Round trips per connection there.
const AFFINITY_FRAMES: usize = 50;

/// Write `n` paired sessions into the cluster's Redis, as the relay keeps them.
async fn seed_redis(url: &str, n: usize) -> Vec<Seeded> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sessions: Vec<Seeded> = (0..n)
        .map(|_| Seeded {
            id: ws::random_hex(11),
            agent_token: ws::random_hex(32),
            desktop_token: ws::random_hex(32),
        })
        .collect();
    for chunk in sessions.chunks(1000) {
        let mut p = redis::pipe();
        for s in chunk {
            let key = clawtray_relay::cluster::keys::session(&s.id);
            p.cmd("HSET")
                .arg(&key)
                .arg("a")
                .arg(&token_hash(&s.agent_token)[..])
                .arg("d")
                .arg(&token_hash(&s.desktop_token)[..])
                .arg("c")
                .arg(now)
                .arg("l")
                .arg(now)
                .ignore()
                .expire(&key, 86_400)
                .ignore();
        }
        let () = p.query_async(&mut conn).await.expect("seed sessions");
    }
    sessions
}

/// A counter from a node's `/metrics`.
async fn counter(metrics: &str, name: &str) -> f64 {
    let addr = metrics.parse().expect("metrics address");
    let text = clawtray_testkit::relay::Relay::http_get_at(addr, "/metrics").await;
    clawtray_testkit::relay::metric_value(&text, name).unwrap_or(0.0)
}

/// Both ends of `s`: the desktop at `desk_at`, then the agent at `agent_at`; returns once the
/// desktop has heard the agent is online (across nodes that news travels through Redis, and a
/// frame sent before it would find no route: real ends wait for it too).
async fn ends(desk_at: &str, agent_at: &str, s: &Seeded) -> (ws::Ws, ws::Ws) {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let mut desk = ws::resume(desk_at, s, false).await;
    let agent = ws::resume(agent_at, s, true).await;
    loop {
        match desk.next().await {
            Some(Ok(Message::Text(t))) if t.contains("peer_online") => return (desk, agent),
            Some(Ok(_)) => {}
            other => panic!("the desktop end closed before its peer came: {other:?}"),
        }
    }
}

struct Node {
    server: Server,
    metrics: String,
}

async fn node(url: &str, i: usize) -> Node {
    let metrics = format!("127.0.0.1:{}", clawtray_testkit::free_port());
    let server = Server::relay_node(url, &format!("bench-{i}"), &metrics).await;
    Node { server, metrics }
}

/// Redis commands the nodes sent during `f`, less what they send idle over as long.
async fn commands_during<F: std::future::Future<Output = T>, T>(
    nodes: &[&Node],
    idle_per_sec: f64,
    f: F,
) -> (f64, T) {
    let mut before = 0.0;
    for n in nodes {
        before += counter(&n.metrics, "clawtray_relay_redis_commands_total").await;
    }
    let t = Instant::now();
    let out = f.await;
    let secs = t.elapsed().as_secs_f64();
    let mut after = 0.0;
    for n in nodes {
        after += counter(&n.metrics, "clawtray_relay_redis_commands_total").await;
    }
    ((after - before - idle_per_sec * secs).max(0.0), out)
}

/// Redis's `used_memory` in bytes.
async fn redis_memory(port: u16) -> f64 {
    let info = clawtray_testkit::redis::cli(port, &["info", "memory"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub async fn run(rows: &mut Vec<Row>) {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let empty_memory = redis_memory(redis.port).await;
    let total_sessions = 3 * PER_NODE + FAILOVER + 8;
    let sessions = seed_redis(&url, total_sessions).await;
    // (spare sessions: 0–3 round trips and throughput, 4–7 the affinity figure)
    let records_memory = redis_memory(redis.port).await;
    let (spare, rest) = sessions.split_at(8);
    let (failover_sessions, per_node) = rest.split_at(FAILOVER);
    let nodes = [
        node(&url, 0).await,
        node(&url, 1).await,
        node(&url, 2).await,
    ];
    let (a, b) = (&nodes[0], &nodes[1]);
    tokio::time::sleep(Duration::from_secs(6)).await; // past the first lease

    // the nodes' idle Redis traffic (leases, inbox reads and trims), to subtract below
    let mut idle = 0.0;
    for n in [a, b] {
        idle -= counter(&n.metrics, "clawtray_relay_redis_commands_total").await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in [a, b] {
        idle += counter(&n.metrics, "clawtray_relay_redis_commands_total").await;
    }
    let idle_per_sec = idle / 3.0;

    // round trips: both ends on one node, the ends on two nodes, the bare forwarder
    let rtt = |desk_at: &'static str, agent_at: &'static str, s: Seeded| {
        let (d, g) = (
            if desk_at == "a" {
                &a.server.addr
            } else {
                &b.server.addr
            },
            if agent_at == "a" {
                &a.server.addr
            } else {
                &b.server.addr
            },
        );
        let (d, g) = (d.clone(), g.clone());
        async move {
            let (mut desk, agent) = ends(&d, &g, &s).await;
            let echoing = tokio::spawn(ws::echo(agent, |b| b));
            let r = ws::echo_percentiles(&mut desk, 1024, RTT_ITERS).await;
            echoing.abort();
            r
        }
    };
    let (same50, same99) = rtt("a", "a", spare[0].clone()).await;
    let (cross50, cross99) = rtt("a", "b", spare[1].clone()).await;
    let (f, mut fa, fb) = forwarder_pair().await;
    let echoing = tokio::spawn(ws::echo(fb, |b| b));
    let (f50, f99) = ws::echo_percentiles(&mut fa, 1024, RTT_ITERS).await;
    echoing.abort();
    drop(f);
    rows.push(
        Row::new(
            "cluster round trip, 1 KiB, ends on two nodes, p50",
            us(cross50),
            "µs",
        )
        .against("bare forwarder", us(f50)),
    );
    rows.push(
        Row::new(
            "cluster round trip, 1 KiB, ends on two nodes, p99",
            us(cross99),
            "µs",
        )
        .against("bare forwarder", us(f99)),
    );
    rows.push(
        Row::new(
            "cluster round trip, 1 KiB, ends on one node, p50",
            us(same50),
            "µs",
        )
        .against("bare forwarder", us(f50))
        .target("≤ 1.2× forwarder", us(same50) <= 1.2 * us(f50)),
    );
    rows.push(
        Row::new(
            "cluster round trip, 1 KiB, ends on one node, p99",
            us(same99),
            "µs",
        )
        .against("bare forwarder", us(f99)),
    );

    // one-way throughput and Redis commands per frame
    let (mut desk, agent) = ends(&a.server.addr, &a.server.addr, &spare[2]).await;
    let (same_cmds, (same_mibs, _)) = commands_during(
        &[a, b],
        idle_per_sec,
        ws::throughput(&mut desk, agent, 1024, FRAMES),
    )
    .await;
    let (mut desk, agent) = ends(&a.server.addr, &b.server.addr, &spare[3]).await;
    let (cross_cmds, (cross_mibs, _)) = commands_during(
        &[a, b],
        idle_per_sec,
        ws::throughput(&mut desk, agent, 1024, FRAMES),
    )
    .await;
    let (f, mut fa, fb) = forwarder_pair().await;
    let (fwd_mibs, _) = ws::throughput(&mut fa, fb, 1024, FRAMES).await;
    drop(f);
    rows.push(
        Row::new(
            "cluster throughput, 1 KiB frames, ends on two nodes",
            cross_mibs,
            "MiB/s",
        )
        .against("ends on one node", same_mibs),
    );
    rows.push(
        Row::new(
            "cluster throughput, 1 KiB frames, ends on one node",
            same_mibs,
            "MiB/s",
        )
        .against("bare forwarder", fwd_mibs),
    );
    let per = |c: f64| c / FRAMES as f64;
    rows.push(
        Row::new(
            "Redis commands per forwarded frame, ends on one node",
            per(same_cmds),
            "cmd",
        )
        .against("ends on two nodes", per(cross_cmds))
        .target("0", per(same_cmds) < 0.01),
    );

    // affinity: sessions whose two ends come through HAProxy hashing on `?session=` (the
    // shipped example) against the same HAProxy balancing round-robin
    let addrs: Vec<std::net::SocketAddr> = nodes
        .iter()
        .map(|n| n.server.addr.parse().expect("node address"))
        .collect();
    let hashing = Haproxy::start(&addrs).await;
    let round_robin = Haproxy::start_with(&addrs, |c| {
        c.replace("balance url_param session", "balance roundrobin")
    })
    .await;
    let mut crossing = Vec::new();
    for (lb, sessions) in [(&hashing, &spare[4..6]), (&round_robin, &spare[6..8])] {
        let lb_addr = lb.addr.to_string();
        let mut before = 0.0;
        for n in &nodes {
            before += counter(&n.metrics, "clawtray_relay_cross_node_sent_total").await;
        }
        let mut frames = 0.0;
        for _ in 0..AFFINITY_ROUNDS {
            for s in sessions {
                let (mut desk, agent) = ends(&lb_addr, &lb_addr, s).await;
                let echoing = tokio::spawn(ws::echo(agent, |b| b));
                let _ = ws::echo_percentiles(&mut desk, 256, AFFINITY_FRAMES).await;
                echoing.abort();
                // the warm-up tenth travels too; every round trip is two frames
                frames += (2 * (AFFINITY_FRAMES + AFFINITY_FRAMES / 10)) as f64;
            }
        }
        let mut after = 0.0;
        for n in &nodes {
            after += counter(&n.metrics, "clawtray_relay_cross_node_sent_total").await;
        }
        crossing.push(100.0 * (after - before).max(0.0) / frames);
    }
    rows.push(
        Row::new(
            "cross-node sends per frame (presence notes included), both ends through HAProxy hashing on the session",
            crossing[0],
            "%",
        )
        .against("HAProxy round-robin", crossing[1]),
    );
    drop((hashing, round_robin));

    // memory: 3 nodes × 3,000 sessions (both ends on their node), against one embedded relay
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relay.db");
    let embedded_sessions = ws::seed_sessions(&db, PER_NODE);
    let embedded = Server::relay(&db).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(embedded.pid);
    let file = dir.path().join("embedded.txt");
    write_sessions(&file, &embedded_sessions);
    let held = (
        spawn_holder(&embedded.addr, &file, true).await,
        spawn_holder(&embedded.addr, &file, false).await,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let embedded_per_socket =
        rss_kib(embedded.pid).saturating_sub(before) as f64 * 1024.0 / (2 * PER_NODE) as f64;
    drop(held);
    drop(embedded);
    let naive = default_server_per_socket(1000).await;
    let befores: Vec<u64> = nodes.iter().map(|n| rss_kib(n.server.pid)).collect();
    let mut holders = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let part = &per_node[i * PER_NODE..(i + 1) * PER_NODE];
        let file = dir.path().join(format!("node-{i}.txt"));
        write_sessions(&file, part);
        holders.push(spawn_holder(&n.server.addr, &file, true).await);
        holders.push(spawn_holder(&n.server.addr, &file, false).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut total = 0.0;
    for (n, before) in nodes.iter().zip(&befores) {
        total += rss_kib(n.server.pid).saturating_sub(*before) as f64 * 1024.0;
    }
    let cluster_per_socket = total / (3 * 2 * PER_NODE) as f64;
    // Redis: the records of every seeded session, and both ends' presence for the 9,000 held
    let held_memory = redis_memory(redis.port).await;
    let per_record = (records_memory - empty_memory) / total_sessions as f64;
    let per_presence = (held_memory - records_memory).max(0.0) / (3 * PER_NODE) as f64;
    rows.push(
        Row::new(
            "Redis memory per paired session, both ends connected",
            per_record + per_presence,
            "B",
        )
        .against("the session record alone", per_record),
    );
    rows.push(
        Row::new(
            "cluster RSS per socket, 3 nodes × 3,000 sessions",
            cluster_per_socket / 1024.0,
            "KiB",
        )
        .against(
            "one embedded relay, 3,000 sessions",
            embedded_per_socket / 1024.0,
        )
        .target("≤ 25 KB", cluster_per_socket <= 25_000.0),
    );
    rows.push(Row::new(
        "baseline: default tokio-tungstenite server, per idle socket (cluster row)",
        naive / 1024.0,
        "KiB",
    ));
    drop(holders);

    // failover: a fourth node holds 1,000 sessions; it dies; every end resumes on node 0
    let mut doomed = node(&url, 3).await;
    let file = dir.path().join("failover.txt");
    write_sessions(&file, failover_sessions);
    let connect_started = Instant::now();
    let (agents, mut agent_lines) =
        spawn_holder_with(&doomed.server.addr, &file, true, Some(&a.server.addr)).await;
    let (desktops, mut desktop_lines) =
        spawn_holder_with(&doomed.server.addr, &file, false, Some(&a.server.addr)).await;
    let first_connect = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let _ = doomed.server.child.start_kill();
    let mut back: std::collections::HashMap<String, u128> = std::collections::HashMap::new();
    for lines in [&mut agent_lines, &mut desktop_lines] {
        for _ in 0..FAILOVER {
            let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
                .await
                .expect("every end back within two minutes")
                .expect("read a holder")
                .expect("a holder line");
            let mut p = line.split(' ').skip(1);
            let (Some(id), Some(at)) = (p.next(), p.next().and_then(|v| v.parse::<u128>().ok()))
            else {
                panic!("holder: {line}");
            };
            let e = back.entry(id.to_owned()).or_default();
            *e = (*e).max(at);
        }
    }
    let mut took: Vec<Duration> = back
        .values()
        .map(|at| Duration::from_millis(at.saturating_sub(killed_at) as u64))
        .collect();
    let (p50, p99) = (percentile(&mut took, 50.0), percentile(&mut took, 99.0));
    rows.push(
        Row::new(
            "failover: 1,000 sessions' node SIGKILLed, both ends back on another node, p50",
            ms(p50),
            "ms",
        )
        .against("their first connect, all 1,000", ms(first_connect)),
    );
    rows.push(
        Row::new(
            "failover: 1,000 sessions' node SIGKILLed, both ends back on another node, p99",
            ms(p99),
            "ms",
        )
        .against("their first connect, all 1,000", ms(first_connect)),
    );
    drop((agents, desktops));
}
