//! The chaos suite: real processes — the relay, the agent, the real OpenClaw gateway with the fake
//! streaming model — and the real desktop core, with a seeded schedule that sends chat messages
//! while it SIGKILLs and restarts the relay and the agent, kills the desktop mid-await, and breaks
//! both links through `faulty_link` (drop, stall, half-open, reset mid-frame). Afterwards every
//! message sent must have been answered exactly once, in order, with the full reply the model
//! produced; and no secret or message text may sit in clear in any file the run left behind.
//!
//! Cluster mode runs the same schedule against three relay nodes sharing a real Redis, each end
//! reaching them through its own HAProxy (the shipped example; the two list the nodes rotated by
//! one, so the ends sit on different nodes and their frames cross through Redis); a relay kill
//! then SIGKILLs one node, and HAProxy sends the ends elsewhere.
//!
//! Quick mode (both) runs in the test command. `scripts/chaos --long` runs 10,000 messages;
//! `--cluster` runs the cluster mode alone; `CLAWTRAY_CHAOS_SEED` replays a schedule
//! (`CLAWTRAY_CHAOS_MESSAGES` sets the count).

mod desktop;
mod ledger;
mod schedule;
mod secrets;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use clawtray_client::session_store::MemorySessionStore;
use clawtray_proto::chat::ApprovalDecision;
use clawtray_testkit::agent::{AgentRun, Pairing};
use clawtray_testkit::fake_model::{reply_after_exec, reply_for};
use clawtray_testkit::faulty_link::FaultyLink;
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::haproxy::Haproxy;
use clawtray_testkit::redis::RedisServer;
use clawtray_testkit::relay::Relay;

use desktop::Desktop;
use ledger::{Ledger, Sent};
use schedule::{Fault, Rng, Side};

/// The agent's relay heartbeat in seconds (a half-open link is noticed within two).
const AGENT_HEARTBEAT: &str = "2";

struct Mode {
    seed: u64,
    messages: usize,
    min_faults: usize,
    /// Faults stop at this many even if replies are still outstanding.
    max_faults: usize,
    /// The sender waits while this many sent messages are unanswered, so the faults cover the
    /// whole run rather than only the sending.
    max_backlog: usize,
    /// How long to wait for the next reply once sending and faults are over.
    settle: Duration,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Mode {
    fn from_env(cluster: bool) -> Mode {
        let long = std::env::var("CLAWTRAY_CHAOS_LONG").is_ok_and(|v| v == "1");
        let seed = env_u64("CLAWTRAY_CHAOS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        // quick cluster runs are shorter: both quick runs share the test command's two cores
        let default_messages = match (long, cluster) {
            (true, _) => 10_000,
            (false, false) => 300,
            (false, true) => 150,
        };
        let messages = env_u64("CLAWTRAY_CHAOS_MESSAGES").map_or(default_messages, |m| m as usize);
        Mode {
            seed,
            messages,
            min_faults: match (long, cluster) {
                (true, _) => 200,
                (false, false) => 30,
                (false, true) => 20,
            },
            max_faults: if long { 5_000 } else { 120 },
            max_backlog: if long { 1_000 } else { 60 },
            settle: Duration::from_secs(if long { 300 } else { 120 }),
        }
    }
}

fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawtray-agent"))
}

/// `clawtray-agent run` on `state`, bridging to `gateway`, with the short heartbeat.
fn start_agent(state: &Path, gateway: &Gateway) -> AgentRun {
    AgentRun::start_with(
        agent_bin(),
        state,
        gateway,
        "chaos",
        &["--relay-heartbeat", AGENT_HEARTBEAT],
    )
}

/// Everything running, and what the schedule acts on.
struct World {
    /// One relay, or the nodes of a cluster.
    relays: Vec<Relay>,
    /// The cluster's Redis and the ends' load balancers (cluster mode).
    redis: Option<RedisServer>,
    _balancers: Vec<Haproxy>,
    agent_link: FaultyLink,
    desktop_link: FaultyLink,
    gateway: Gateway,
    agent_state: std::path::PathBuf,
    agent: AgentRun,
    data: tempfile::TempDir,
    store: Arc<MemorySessionStore>,
    desktop: Option<Desktop>,
    ledger: Arc<Mutex<Ledger>>,
    /// The current desktop's handle, for the sender.
    current: watch::Sender<Option<Arc<clawtray_client::RelayClient>>>,
    counts: std::collections::BTreeMap<String, usize>,
}

impl World {
    fn link(&self, side: Side) -> &FaultyLink {
        match side {
            Side::Agent => &self.agent_link,
            Side::Desktop => &self.desktop_link,
        }
    }

    async fn apply(&mut self, fault: Fault, rng: &mut Rng) {
        *self.counts.entry(format!("{fault:?}")).or_default() += 1;
        match fault {
            Fault::KillRelay => {
                // one node of a cluster (the ends go elsewhere through HAProxy meanwhile)
                let i = rng.range(0, self.relays.len() as u64 - 1) as usize;
                self.relays[i].kill().await;
                tokio::time::sleep(rng.millis(0, 1500)).await;
                self.relays[i].start_again().await;
            }
            Fault::KillAgent => {
                self.agent.kill().await;
                tokio::time::sleep(rng.millis(0, 1500)).await;
                self.agent = start_agent(&self.agent_state, &self.gateway);
            }
            Fault::KillDesktop => {
                self.current.send_replace(None);
                if let Some(d) = self.desktop.take() {
                    d.kill().await;
                }
                tokio::time::sleep(rng.millis(0, 1000)).await;
                let d = Desktop::start(self.data.path(), self.store.clone(), self.ledger.clone());
                // a send the kill cut short counts if the new incarnation still has it queued
                let queued = d.client.queued().await;
                self.ledger.lock().expect("ledger").resolve_maybe(&queued);
                self.current.send_replace(Some(d.client.clone()));
                self.desktop = Some(d);
            }
            Fault::Drop(side) => self.link(side).drop_current(),
            Fault::Stall(side) => {
                let d = rng.millis(200, 5000);
                self.link(side).stall_current_for(d);
            }
            Fault::HalfOpen(side) => self.link(side).half_open_current(),
            Fault::Reset(side) => self.link(side).reset_current_mid_frame(),
        }
    }
}

/// Sends `n` messages through whichever desktop is current, with seeded pauses.
async fn sender(
    n: usize,
    max_backlog: usize,
    seed: u64,
    exec: (std::path::PathBuf, String),
    mut current: watch::Receiver<Option<Arc<clawtray_client::RelayClient>>>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let (file, token) = exec;
    // one message in 25 (quick) or 100 (long) asks to run a command, which waits for approval
    let every = if n > 1000 { 100 } else { 25 };
    let mut rng = Rng::new(seed ^ 0x5EED_5EED);
    for i in 0..n {
        // long runs keep replies short: the gateway's own per-run cost sets the pace
        let (words, delay) = if n > 1000 {
            (rng.range(1, 4), rng.range(2, 8))
        } else {
            (rng.range(2, 8), rng.range(5, 25))
        };
        let asks = i % every == 7;
        let text = if asks {
            format!(
                "{} {i} #id=m{i}# #exec=cat {}#",
                secrets::PLAINTEXT_MARKER,
                file.display()
            )
        } else {
            format!(
                "{} {i} #id=m{i}# #words={words}# #delay={delay}#",
                secrets::PLAINTEXT_MARKER
            )
        };
        let tag = format!("m{i}");
        let (expected, denied) = if asks {
            (
                reply_after_exec(Some(&tag), &token),
                Some(reply_after_exec(Some(&tag), "")),
            )
        } else {
            (reply_for(&text), None)
        };
        let client = current
            .wait_for(Option::is_some)
            .await
            .expect("the schedule is running")
            .clone()
            .expect("a desktop");
        let sent = client.send(&text).await;
        drop(client);
        {
            let mut l = ledger.lock().expect("ledger");
            match sent {
                Ok(id) => l.sent.push(Sent {
                    id,
                    text,
                    expected,
                    denied,
                }),
                // the desktop was killed during the send: maybe it kept it, maybe not
                Err(_) => l.maybe.push((text, expected, denied)),
            }
        }
        tokio::time::sleep(rng.millis(10, 200)).await;
        while ledger.lock().expect("ledger").unanswered() > max_backlog {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Answers every exec approval the current desktop shows with "allow once" (a person clicking),
/// until `stop`.
async fn answerer(
    mut current: watch::Receiver<Option<Arc<clawtray_client::RelayClient>>>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(client) = current.borrow_and_update().clone() else {
            continue;
        };
        let due = ledger.lock().expect("ledger").to_answer();
        for id in due {
            if client
                .decide(&id, ApprovalDecision::AllowOnce)
                .await
                .is_ok()
            {
                ledger
                    .lock()
                    .expect("ledger")
                    .answered_at
                    .insert(id, Instant::now());
            }
        }
    }
}

/// The figures printed after a run.
struct Summary {
    sent: usize,
    maybe: usize,
    answered: usize,
    deltas: u64,
    notices: u64,
    approvals: usize,
    refused: usize,
    denied: usize,
}

impl Summary {
    fn of(l: &Ledger) -> Summary {
        Summary {
            sent: l.sent.len(),
            maybe: l.maybe.len(),
            answered: l.replies.len(),
            deltas: l.deltas,
            notices: l.notices,
            approvals: l.approvals.len(),
            refused: l.refused.len(),
            denied: l
                .sent
                .iter()
                .filter(|s| {
                    l.replies
                        .get(&s.id)
                        .is_some_and(|r| r.iter().any(|t| s.is_denial(t)))
                })
                .count(),
        }
    }
}

/// Copy the logs of a failed run to `target/chaos/<seed>/` before the temp dirs go.
fn keep_evidence(world: &World, seed: u64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/chaos/{seed}"));
    let _ = std::fs::create_dir_all(&dir);
    for (from, name) in [
        (
            world.agent_state.with_extension("log"),
            "agent.log".to_owned(),
        ),
        (
            world.gateway.dir.path().join("gateway.log"),
            "gateway.log".to_owned(),
        ),
    ]
    .into_iter()
    .chain(
        world
            .relays
            .iter()
            .enumerate()
            .map(|(i, r)| (r.dir.path().join("relay.log"), format!("relay-{i}.log"))),
    ) {
        let _ = std::fs::copy(from, dir.join(name));
    }
    println!("chaos: the logs are kept in {}", dir.display());
}

fn replay_hint(seed: u64, messages: usize) -> String {
    format!("replay with: scripts/chaos --seed {seed} --messages {messages}")
}

/// Only the cluster mode (`scripts/chaos --cluster`), or only the single relay (`--single`)?
fn only(which: &str) -> bool {
    std::env::var("CLAWTRAY_CHAOS_ONLY").is_ok_and(|v| v != which)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_or_doubled_under_chaos() {
    if only("single") {
        return;
    }
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_or_doubled_under_chaos_across_a_relay_cluster() {
    if only("cluster") {
        return;
    }
    run(true).await;
}

/// The relay(s) the ends reach: one relay, or three nodes on a Redis behind two HAProxies.
async fn relays(cluster: bool) -> (Vec<Relay>, Option<RedisServer>, Vec<Haproxy>) {
    if !cluster {
        return (vec![Relay::start(&[]).await], None, Vec::new());
    }
    let redis = RedisServer::start().await;
    let nodes = Relay::start_cluster(
        &[redis.url()],
        3,
        "chaos-node",
        &["--trusted-proxy", "127.0.0.1"],
    )
    .await;
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let mut rotated = addrs.clone();
    rotated.rotate_left(1);
    // The agent's and the desktop's balancers list the nodes rotated by one: HAProxy's hash
    // ring is built on the servers' ids (their places in the list), so a session hashed to the
    // k-th server lands on different nodes through the two — its frames cross through Redis
    // while all three nodes are up. (Reversing the list instead kept the middle server in
    // place: the first --cluster --long run's session hashed there and crossed nothing.)
    let balancers = vec![Haproxy::start(&addrs).await, Haproxy::start(&rotated).await];
    (nodes, Some(redis), balancers)
}

async fn run(cluster: bool) {
    let mode = Mode::from_env(cluster);
    let what = if cluster {
        "a relay cluster (3 nodes, Redis, HAProxy)"
    } else {
        "one relay"
    };
    println!(
        "chaos: seed {} — {} messages, ≥{} faults, through {what}",
        mode.seed, mode.messages, mode.min_faults
    );
    let hint = replay_hint(mode.seed, mode.messages);
    // exec on the gateway host, asking every time: some messages wait for an approval
    let gateway = Gateway::start_asking_for_exec(clawtray_testkit::fake_model::start());
    let exec_dir = tempfile::tempdir().expect("tempdir");
    let token = format!("ran-{}", mode.seed);
    let exec_file = exec_dir.path().join("token.txt");
    std::fs::write(&exec_file, &token).expect("write the exec file");
    let (relays, redis, balancers) = relays(cluster).await;
    let (agent_up, desktop_up) = match balancers.as_slice() {
        [a, d] => (a.addr, d.addr),
        _ => (relays[0].addr, relays[0].addr),
    };
    let agent_link = FaultyLink::start(agent_up).await;
    let desktop_link = FaultyLink::start(desktop_up).await;
    let state = tempfile::tempdir().expect("tempdir");
    let agent_state = state.path().join("agent");
    let agent = start_agent(&agent_state, &gateway);
    let pairing = Pairing::start(
        agent_bin(),
        &agent_state,
        &format!("ws://{}", agent_link.addr),
        "chaos-agent",
    )
    .await;
    let code = pairing.code.clone();
    let data = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemorySessionStore::default());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let desktop = Desktop::start(data.path(), store.clone(), ledger.clone());
    desktop
        .client
        .pair(&code, &format!("ws://{}", desktop_link.addr))
        .await
        .expect("pairing succeeds");
    pairing.finish().await;
    let (current, watching) = watch::channel(Some(desktop.client.clone()));
    let mut world = World {
        relays,
        redis,
        _balancers: balancers,
        agent_link,
        desktop_link,
        gateway,
        agent_state,
        agent,
        data,
        store,
        desktop: Some(desktop),
        ledger: ledger.clone(),
        current,
        counts: Default::default(),
    };

    let started = Instant::now();
    let answering_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answering = tokio::spawn(answerer(
        watching.clone(),
        ledger.clone(),
        answering_stop.clone(),
    ));
    let sending = tokio::spawn(sender(
        mode.messages,
        mode.max_backlog,
        mode.seed,
        (exec_file.clone(), token.clone()),
        watching,
        ledger.clone(),
    ));
    let mut rng = Rng::new(mode.seed);
    let mut faults = 0;
    // faults go on while anything is unanswered (up to max_faults), not only while sending
    let outstanding = |l: &Arc<Mutex<Ledger>>| l.lock().expect("ledger").unanswered() > 0;
    while !sending.is_finished()
        || faults < mode.min_faults
        || (outstanding(&ledger) && faults < mode.max_faults)
    {
        tokio::time::sleep(rng.millis(200, 1500)).await;
        let fault = Fault::pick(&mut rng);
        world.apply(fault, &mut rng).await;
        faults += 1;
    }
    sending.await.expect("the sender");
    let sending_took = started.elapsed();

    // settle: until every message is answered, or replies stop coming for `settle`
    let mut last = (usize::MAX, Instant::now());
    loop {
        let waiting = ledger.lock().expect("ledger").unanswered();
        if waiting == 0 {
            break;
        }
        if waiting < last.0 {
            last = (waiting, Instant::now());
        } else if last.1.elapsed() > mode.settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // a late second reply would show up now
    tokio::time::sleep(Duration::from_secs(3)).await;
    answering_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = answering.await;

    let (v, l) = {
        let l = ledger.lock().expect("ledger");
        (l.verdict(), Summary::of(&l))
    };
    println!("chaos: seed {}", mode.seed);
    println!(
        "chaos: {} messages sent ({} sends cut short by a kill and never kept), {} answered, {} deltas shown",
        l.sent, l.maybe, l.answered, l.deltas
    );
    println!(
        "chaos: {faults} faults in {:.0?} under fire, {:.0?} in all: {:?}",
        sending_took,
        started.elapsed(),
        world.counts
    );
    let agent_log =
        std::fs::read_to_string(world.agent_state.with_extension("log")).unwrap_or_default();
    println!(
        "chaos: the agent resumed kept messages {} times and took {} run outcomes from agent.wait",
        agent_log.matches("resuming desktop messages").count(),
        agent_log
            .matches("its outcome came from agent.wait")
            .count()
    );
    println!(
        "chaos: lost {}, doubled {}, damaged {}, out of order {}, strays {}, failed runs {}; {} notices shown",
        v.lost, v.doubled, v.damaged, v.out_of_order, v.strays, v.failed_runs, l.notices
    );
    println!(
        "chaos: {} exec approvals asked, {} resolved once, {} lost, {} answered twice; {} answers refused by the agent (second copies after a desktop restart, the gateway away); {} exec messages denied because no approver was online as they started",
        l.approvals, l.approvals - v.approvals_lost - v.approvals_doubled, v.approvals_lost, v.approvals_doubled, l.refused, l.denied
    );
    if cluster {
        let mut crossed = 0.0;
        for r in &world.relays {
            let m = r.http_get("/metrics").await;
            crossed +=
                clawtray_testkit::relay::metric_value(&m, "clawtray_relay_cross_node_sent_total")
                    .unwrap_or(0.0);
        }
        println!("chaos: {crossed} frames and notes crossed nodes through Redis (since each node's last start)");
    }
    if !v.clean() {
        keep_evidence(&world, mode.seed);
    }
    assert!(
        v.clean(),
        "chaos found problems (seed {}):\n{}\n{hint}\nagent log: {}",
        mode.seed,
        v.problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        world.agent_state.with_extension("log").display()
    );
    assert!(
        l.sent + l.maybe == mode.messages && faults >= mode.min_faults,
        "the schedule did not run in full; {hint}"
    );

    // agents killed mid-write left temp files; the live one swept them when it started
    let live = world.agent.child.id();
    let orphans: Vec<String> = std::fs::read_dir(&world.agent_state)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.contains(".tmp-") && live.is_none_or(|pid| !n.contains(&format!(".tmp-{pid}-")))
        })
        .collect();
    assert!(
        orphans.is_empty(),
        "killed agents' temp files were left in the state dir: {orphans:?}"
    );

    // the secrets scan, over everything the run left behind
    world.agent.kill().await;
    for r in &mut world.relays {
        r.kill().await;
    }
    if let Some(redis) = world.redis.as_mut() {
        redis.kill().await;
    }
    if let Some(d) = world.desktop.take() {
        d.kill().await;
    }
    let relay_dirs: Vec<&Path> = world.relays.iter().map(|r| r.dir.path()).collect();
    let found = secrets::scan(&secrets::Places {
        relay_dirs: &relay_dirs,
        redis_dir: world.redis.as_ref().map(RedisServer::dir),
        agent_state: &world.agent_state,
        agent_log: &world.agent_state.with_extension("log"),
        desktop_data: world.data.path(),
        store: &world.store,
        code: &code,
    });
    assert!(
        found.is_empty(),
        "secrets in clear after the chaos run:\n{}",
        found.join("\n")
    );
}
