//! Who may end a pairing, with the real `clawtray-agent`, the real relay, the real OpenClaw
//! gateway and the desktop core: only the two ends, end to end. A relay that says "revoked" (or
//! any other "permanent" code) to both ends makes neither forget its keys or its queued messages;
//! the operator's `clawtray-agent unpair` reaches the desktop sealed (at once, or when the desktop
//! next connects); the desktop's unpair reaches the agent sealed.
//! And a frame the relay altered is refused, logged and resent by a new meeting; two desktops
//! on one agent both see every reply, and one unpairing leaves the other.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;

use clawtray_agent::state::StateDir;
use clawtray_client::session_store::{MemorySessionStore, SessionStore};
use clawtray_client::{ConnectionState, RelayClient};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::fake_model::reply_for;
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::mitm::{Action, Dir, Mitm, PassThrough, Passing};
use clawtray_testkit::relay::Relay;
use tokio_tungstenite::tungstenite::Message;

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| Gateway::start(clawtray_testkit::fake_model::start()))
}

fn pairings(state: &Path) -> Vec<clawtray_agent::state::Pairing> {
    StateDir::new(state.to_owned()).pairings().unwrap()
}

async fn until_pairings(
    state: &Path,
    what: &str,
    pred: impl Fn(&[clawtray_agent::state::Pairing]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = pairings(state);
        if pred(&now) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `clawtray-agent --state-dir STATE unpair ARGS…`; returns its stdout.
async fn agent_unpair(state: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(agent_bin())
        .arg("--state-dir")
        .arg(state)
        .arg("unpair")
        .args(args)
        .output()
        .await
        .expect("run clawtray-agent unpair");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(s: &Seen) -> bool {
    matches!(s.states.last(), Some(ConnectionState::Refused { .. }))
}

/// A forged "this session was revoked" for every message the relay sends to either end.
fn forge_revoked(p: &Passing) -> Vec<Action> {
    if p.dir == Dir::ToEnd {
        let forged = ControlFrame::error(ErrorCode::SessionRevoked).to_json();
        return vec![Action::Forward(Message::text(forged))];
    }
    vec![Action::Forward(p.msg.clone())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_saying_revoked_makes_neither_end_forget() {
    let relay = Relay::start(&[]).await;
    let mitm = Mitm::start(relay.addr, PassThrough).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let _agent = AgentProc::start_with(
        agent_bin(),
        &state,
        gateway(),
        "unpair-hostile",
        &["--relay-refused-retry", "1"],
    );
    let pairing = Pairing::start(agent_bin(), &state, &mitm.url(), "e2e-agent").await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(MemorySessionStore::default());
    let mut config = client_config(data.path());
    config.refused_retry = Duration::from_secs(1);
    let client = RelayClient::start(config, store.clone());
    let mut seen = Seen::new(&client);
    client.pair(&pairing.code, &mitm.url()).await.unwrap();
    pairing.finish().await;
    seen.until("online", online).await;

    // from now on the relay answers everything with SESSION_REVOKED, to both ends
    mitm.set_tamper(forge_revoked);
    let text = "kept through a lying relay #id=lie# #words=4#";
    let id = client.send(text).await.unwrap();
    seen.until("the desktop told the relay refuses", refused)
        .await;
    // retries (every ~1 s on both ends) are refused too; give them time to do harm
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        store.load().unwrap().is_some(),
        "the desktop keeps its pairing"
    );
    assert!(
        client.queued().await.iter().any(|(q, _)| *q == id),
        "the message is kept until the agent has it"
    );
    assert_eq!(pairings(&state).len(), 1, "the agent keeps its pairing");
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(log.contains("refuses this pairing"), "{log}");
    assert!(
        StateDir::new(state.clone())
            .token(&pairings(&state)[0].session)
            .unwrap()
            .is_some(),
        "the agent keeps its relay token"
    );

    // the relay stops lying: both ends come back by themselves and the message is answered once
    mitm.set_tamper(PassThrough);
    seen.until("online again", online).await;
    seen.until("the reply", |x| x.reply_of(&id).is_some()).await;
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![reply_for(text)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_unpair_reaches_the_desktop_sealed() {
    let mut s = setup(gateway(), "unpair-operator").await;
    let state = s.state.path().join("agent");
    let out = agent_unpair(&state, &[]).await;
    assert!(
        out.contains("unpaired e2e-desktop (the desktop confirmed)"),
        "{out}"
    );
    s.seen
        .until("unpaired", |x| {
            x.states.last() == Some(&ConnectionState::Unpaired)
        })
        .await;
    assert!(
        s.seen
            .notices
            .iter()
            .any(|n| n.contains("The agent ended this pairing")),
        "{:?}",
        s.seen.notices
    );
    assert!(
        s.store.load().unwrap().is_none(),
        "the desktop forgot the pairing"
    );
    until_pairings(&state, "the agent to forget it too", <[_]>::is_empty).await;
    // and the agent, holding the desktop's acknowledgement, revoked the session at the relay
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = s.relay.http_get("/metrics").await;
        if m.contains("clawtray_relay_sessions 0\n") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !s.data.path().join(clawtray_outbox::OUTBOX_FILE).exists(),
        "the desktop's outbox is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpair_for_a_desktop_that_is_away_waits_for_it() {
    let s = setup(gateway(), "unpair-away").await;
    let state = s.state.path().join("agent");
    let (store, data) = (s.store.clone(), s.data);
    s.client.shutdown().await;
    let out = agent_unpair(&state, &["--wait", "2"]).await;
    assert!(out.contains("has not confirmed yet"), "{out}");
    let kept = pairings(&state);
    assert!(kept.len() == 1 && kept[0].unpair_requested, "{kept:?}");
    assert!(
        store.load().unwrap().is_some(),
        "the desktop was away: nothing changed there"
    );

    // the desktop comes back: the sealed unpair is waiting for it
    let client = RelayClient::start(client_config(data.path()), store.clone());
    let mut seen = Seen::new(&client);
    seen.until("unpaired", |x| {
        x.states.last() == Some(&ConnectionState::Unpaired)
    })
    .await;
    assert!(store.load().unwrap().is_none());
    until_pairings(&state, "the agent to forget the pairing", <[_]>::is_empty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktops_unpair_reaches_the_agent_sealed() {
    let s = setup(gateway(), "unpair-desktop").await;
    let state = s.state.path().join("agent");
    let session = pairings(&state)[0].session.clone();
    s.client.unpair().await.unwrap();
    assert!(s.store.load().unwrap().is_none());
    until_pairings(&state, "the agent to forget the pairing", <[_]>::is_empty).await;
    assert!(StateDir::new(state.clone())
        .token(&session)
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_the_relay_altered_is_refused_logged_and_resent() {
    // before: the agent's refusals were debug-level only, invisible in its default log
    let relay = Relay::start(&[]).await;
    let mitm = Mitm::start(relay.addr, PassThrough).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let _agent = AgentProc::start(agent_bin(), &state, gateway(), "hostile-flip");
    let pairing = Pairing::start(agent_bin(), &state, &mitm.url(), "e2e-agent").await;
    let data = tempfile::tempdir().unwrap();
    let client = RelayClient::start(
        client_config(data.path()),
        Arc::new(MemorySessionStore::default()),
    );
    let mut seen = Seen::new(&client);
    client.pair(&pairing.code, &mitm.url()).await.unwrap();
    pairing.finish().await;
    seen.until("online", online).await;
    // flip one bit in the next sealed frame towards the agent
    let mut flipped = false;
    mitm.set_tamper(move |p: &Passing| match &p.msg {
        Message::Binary(b)
            if !flipped
                && p.dir == Dir::ToEnd
                && p.path.starts_with("/v1/agent")
                && b.first() == Some(&0x01) =>
        {
            flipped = true;
            let mut b = b.to_vec();
            let last = b.len() - 1;
            b[last] ^= 1;
            vec![Action::Forward(Message::binary(b))]
        }
        _ => vec![Action::Forward(p.msg.clone())],
    });
    let text = "altered on the way #id=flip# #words=3#";
    let id = client.send(text).await.unwrap();
    seen.until("the reply, after a new meeting resent it", |x| {
        x.reply_of(&id).is_some()
    })
    .await;
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![reply_for(text)], "once");
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(
        log.contains("WARN") && log.contains("a frame from the relay was refused"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_desktops_on_one_agent_both_see_every_reply_and_one_unpairing_leaves_the_other() {
    // an untested corner until now: one agent, two paired desktops (fan-out)
    let mut s = setup(gateway(), "fan-out").await;
    let state = s.state.path().join("agent");
    let base = format!("ws://{}", s.relay.addr);
    let pairing = Pairing::start(agent_bin(), &state, &base, "e2e-agent").await;
    let data = tempfile::tempdir().unwrap();
    let store_b = Arc::new(MemorySessionStore::default());
    let b = RelayClient::start(client_config(data.path()), store_b.clone());
    let mut seen_b = Seen::new(&b);
    b.pair(&pairing.code, &base).await.unwrap();
    pairing.finish().await;
    seen_b.until("the second desktop online", online).await;
    assert_eq!(pairings(&state).len(), 2);

    let text = "from the first desktop #id=fan1# #words=4#";
    let id = s.client.send(text).await.unwrap();
    s.seen
        .until("the reply on A", |x| x.reply_of(&id).is_some())
        .await;
    let run = s.seen.run_of(&id).unwrap().clone();
    seen_b
        .until("the same reply on B", |x| x.replies.contains_key(&run))
        .await;
    assert_eq!(
        seen_b.replies[&run],
        vec![reply_for(text)],
        "once, on B too"
    );

    // B unpairs: A is untouched and still chats
    b.unpair().await.unwrap();
    until_pairings(&state, "the agent to forget only B", |p| p.len() == 1).await;
    let text = "still here #id=fan2# #words=3#";
    let id = s.client.send(text).await.unwrap();
    s.seen
        .until("A still answered", |x| x.reply_of(&id).is_some())
        .await;
    assert_eq!(s.seen.reply_of(&id).unwrap(), &vec![reply_for(text)]);
    assert!(s.store.load().unwrap().is_some());
    assert!(store_b.load().unwrap().is_none());
}
