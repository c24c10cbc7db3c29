//! Row 3 — pairing and re-key on loopback: code typed → online (the real desktop core against the
//! scripted agent end through the release relay), split into compute (SPAKE2 + key generation +
//! confirmation + the first Noise KK meeting, both sides, in memory) and the rest (round trips,
//! storage); and re-key after an agent restart against a bare reconnect (WebSocket connect +
//! session resume) measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ConnectionState, RelayClient};
use clawtray_proto::code::PairingCode;
use clawtray_proto::meeting::{self, Meeting, MeetingHello, MeetingInitiator};
use clawtray_proto::pairing::Pairing;
use clawtray_proto::secret::StaticKeypair;
use clawtray_proto::Role;
use clawtray_testkit::agent_end::{Script, TestAgent};

use crate::report::Row;
use crate::stats::{ms, percentile};
use crate::ws::{self, Server};

const PAIRINGS: usize = 15;
/// How long one step of a pairing or re-key may take before the row gives up.
const STEP: Duration = Duration::from_secs(30);

pub(crate) fn online(s: &ConnectionState) -> bool {
    matches!(
        s,
        ConnectionState::Online {
            peer: PeerPresence::Online
        }
    )
}

/// Both sides' work for one pairing and its first meeting, in memory.
fn compute_once() -> Duration {
    let t = Instant::now();
    let code = PairingCode::parse("7351-K4Q7-2MXD").expect("a valid code");
    let a_id = StaticKeypair::generate().expect("key");
    let d_id = StaticKeypair::generate().expect("key");
    let (a_key, d_key) = (a_id.clone(), d_id.clone());
    let (a, a_msg) = Pairing::start(Role::Agent, &code, a_id, "agent").expect("start");
    let (d, d_msg) = Pairing::start(Role::Desktop, &code, d_id, "desktop").expect("start");
    let (a, a_conf) = a.receive_pake(&d_msg).expect("pake");
    let (d, d_conf) = d.receive_pake(&a_msg).expect("pake");
    a.receive_confirmation(&d_conf).expect("confirm");
    d.receive_confirmation(&a_conf).expect("confirm");
    meet(&d_key, &a_key, "s");
    t.elapsed()
}

/// A Noise KK meeting between `desktop` and `agent`, both sides in memory: (desktop's, agent's).
pub(crate) fn meet(
    desktop: &StaticKeypair,
    agent: &StaticKeypair,
    session: &str,
) -> (Meeting, Meeting) {
    let (init, m1) =
        MeetingInitiator::start(desktop, &agent.public(), session, MeetingHello::default())
            .expect("initiate");
    let (agent_m, m2) = meeting::respond(
        agent,
        &desktop.public(),
        session,
        &m1,
        MeetingHello::default(),
    )
    .expect("respond");
    (init.finish(&m2).expect("finish"), agent_m)
}

/// Both sides' work for one Noise KK meeting (what a re-key computes), in memory.
fn meeting_once() -> Duration {
    let d_key = StaticKeypair::generate().expect("key");
    let a_key = StaticKeypair::generate().expect("key");
    let t = Instant::now();
    meet(&d_key, &a_key, "s");
    t.elapsed()
}

/// Wait (at most `within`) until `pred` holds for the client's state.
pub(crate) async fn until(
    client: &RelayClient,
    pred: impl Fn(&ConnectionState) -> bool,
    within: Duration,
) {
    let mut st = client.state();
    tokio::time::timeout(within, st.wait_for(|s| pred(s)))
        .await
        .expect("the desktop reached the state in time")
        .expect("the desktop is running");
}

pub async fn run(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relay.db");
    let seeded = ws::seed_sessions(&db, 1);
    let relay = Server::relay(&db).await;
    let url = format!("ws://{}", relay.addr);

    let mut compute: Vec<Duration> = (0..50).map(|_| compute_once()).collect();
    let compute50 = percentile(&mut compute, 50.0);

    let mut pair_times = Vec::new();
    let mut rekey_times = Vec::new();
    for i in 0..PAIRINGS {
        let (code, agent) = TestAgent::pair(&url, Script::default()).await;
        let data = tempfile::tempdir().expect("tempdir");
        let mut cfg = ClientConfig::new(data.path().to_owned(), format!("bench-{i}"));
        cfg.ping_interval = Duration::from_secs(20);
        let client = RelayClient::start(cfg, Arc::new(MemorySessionStore::default()));
        let t = Instant::now();
        client.pair(&code, &url).await.expect("pairing");
        until(&client, online, STEP).await;
        pair_times.push(t.elapsed());
        let agent = agent.await.expect("the agent paired");
        // re-key: the agent process restarts (new meeting keys); time from its start to online
        let disk = agent.kill();
        until(&client, |s| !online(s), STEP).await;
        let t = Instant::now();
        let agent = TestAgent::start(&url, disk, &format!("restart-{i}"), Script::default());
        until(&client, online, STEP).await;
        rekey_times.push(t.elapsed());
        drop(agent);
        client.shutdown().await;
    }
    // a bare reconnect: WebSocket connect + session resume, nothing else
    let mut reconnects = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let w = ws::resume(&relay.addr, &seeded[0], true).await;
        reconnects.push(t.elapsed());
        drop(w);
    }
    let pair50 = percentile(&mut pair_times, 50.0);
    let rekey50 = percentile(&mut rekey_times, 50.0);
    let reconnect50 = percentile(&mut reconnects, 50.0);
    rows.push(
        Row::new("pairing: code typed → online, p50", ms(pair50), "ms")
            .against("compute alone (both sides)", ms(compute50))
            .target("≤ 50 ms", pair50 <= Duration::from_millis(50)),
    );
    let mut meeting: Vec<Duration> = (0..50).map(|_| meeting_once()).collect();
    let meeting50 = percentile(&mut meeting, 50.0);
    // a bare reconnect is TCP connect + upgrade + resume: at least one round trip, so it bounds one
    let allowed = reconnect50 * 2 + meeting50;
    rows.push(
        Row::new(
            "re-key after an agent restart → online, p50",
            ms(rekey50),
            "ms",
        )
        .against("bare reconnect + resume", ms(reconnect50))
        .target(
            format!(
                "≤ reconnect + 1 round trip + meeting compute ({:.2} ms)",
                ms(allowed)
            ),
            rekey50 <= allowed,
        ),
    );
}
