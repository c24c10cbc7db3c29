//! A hostile relay: the real relay behind a man-in-the-middle (`clawtray_testkit::mitm`) that, in
//! one test each, tries to read plaintext, pair in the middle without the code, impersonate the
//! paired agent, replay, reorder, flip bits, splice frames from another session, downgrade the
//! version byte and replay an old meeting. Each time the honest ends (the real desktop core and
//! the scripted agent) refuse what was forged, say so, and the conversation ends up exactly as
//! sent: every message delivered once, in order, every reply the agent's own.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio_tungstenite::tungstenite::Message;

use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::{ClientConfig, ConnectionState, PairError, RelayClient};
use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::ControlFrame;
use clawtray_proto::meeting::{self, MeetingHello, MeetingInitiator};
use clawtray_proto::pairing::Pairing;
use clawtray_proto::secret::StaticKeypair;
use clawtray_proto::Role;
use clawtray_testkit::agent_end::{expected_reply, Script, TestAgent};
use clawtray_testkit::mitm::{is_sealed, Action, Dir, Mitm, PassThrough, Passing, Side};
use clawtray_testkit::relay::Relay;
use common::*;

/// Words per scripted reply.
const WORDS: usize = 5;

/// Quick recovery settings, so each attack's aftermath fits in a test.
fn hostile_settings(c: &mut ClientConfig) {
    c.ack_timeout = Duration::from_secs(2);
    c.resync_delay = Duration::from_millis(300);
    c.handshake_timeout = Duration::from_secs(3);
}

/// A desktop (through the hostile relay) paired with a scripted agent (straight to the relay).
async fn pair_through(relay: &Relay, mitm: &Mitm) -> PairedDesktop {
    let agent_relay = format!("ws://{}", relay.addr);
    pair_desktop(
        &agent_relay,
        &mitm.url(),
        Script::default(),
        hostile_settings,
    )
    .await
}

impl PairedDesktop {
    /// Send `texts` back to back; wait until every one is answered.
    async fn send_all(&mut self, texts: &[String]) -> Vec<String> {
        let mut ids = Vec::new();
        for t in texts {
            ids.push(self.client.send(t).await.expect("send"));
        }
        let wanted = ids.clone();
        self.seen
            .until("every message answered", move |s| {
                wanted.iter().all(|id| s.answered(id))
            })
            .await;
        ids
    }

    /// Everything sent so far reached the agent exactly once, in order, and every reply shown is
    /// the agent's own, once.
    fn assert_exactly(&self, sent: &[String], ids: &[String]) {
        assert_eq!(
            self.agent.disk.received(),
            sent,
            "the agent got each message once, in order, and nothing else"
        );
        for (id, text) in ids.iter().zip(sent) {
            let run = &self.seen.acks[id];
            assert_eq!(self.seen.replies[run], 1, "one reply for {text}");
            assert_eq!(
                self.seen.reply_text(id).as_deref(),
                Some(expected_reply(text, WORDS).as_str())
            );
        }
    }

    fn desktop_noticed(&self, what: &str) -> bool {
        self.seen.notices.iter().any(|n| n.contains(what))
    }
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix} {i}")).collect()
}

async fn hostile() -> (Relay, Mitm) {
    let relay = Relay::start(&[]).await;
    let mitm = Mitm::start(relay.addr, PassThrough).await;
    (relay, mitm)
}

fn forward(p: &Passing) -> Vec<Action> {
    vec![Action::Forward(p.msg.clone())]
}

fn binary(p: &Passing) -> Option<Vec<u8>> {
    match &p.msg {
        Message::Binary(b) => Some(b.to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_sees_plaintext() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    let marker = "PLAINTEXT-MARKER-5d1c9e";
    let sent = vec![
        format!("hello {marker}"),
        format!("and again {marker}, longer"),
    ];
    let ids = p.send_all(&sent).await;
    p.assert_exactly(&sent, &ids);
    assert!(mitm.seen_count() > 10, "the relay carried the conversation");
    assert!(
        !mitm.saw(marker.as_bytes()),
        "the marker (sent and echoed back) never crossed the relay in clear"
    );
    assert!(!mitm.saw(b"echo:"), "nor did the reply text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_the_code_cannot_pair_in_the_middle() {
    let (relay, mitm) = hostile().await;
    // Mallory sees the nameplate (it is not secret) and guesses the rest of the code; it runs
    // SPAKE2 with each end in place of the other.
    let mut guess: Option<PairingCode> = None;
    mitm.set_tamper(move |p: &Passing| {
        let Message::Text(t) = &p.msg else {
            return forward(p);
        };
        match serde_json::from_str::<ControlFrame>(t) {
            Ok(ControlFrame::Join { nameplate }) => {
                guess = Nameplate::parse(&nameplate)
                    .ok()
                    .and_then(|n| PairingCode::generate(n).ok());
                forward(p)
            }
            Ok(ControlFrame::Pake { .. }) => {
                let (Some(code), Ok(key)) = (&guess, StaticKeypair::generate()) else {
                    return forward(p);
                };
                // towards the relay it poses as the desktop, towards the desktop as the agent
                let role = match p.dir {
                    Dir::ToRelay => Role::Desktop,
                    Dir::ToEnd => Role::Agent,
                };
                let Ok((_, msg)) = Pairing::start(role, code, key, "mallory") else {
                    return forward(p);
                };
                let frame = ControlFrame::Pake {
                    msg: base64::engine::general_purpose::STANDARD.encode(msg),
                };
                vec![Action::Forward(Message::text(frame.to_json()))]
            }
            _ => forward(p),
        }
    });
    let (code, agent) = TestAgent::pair(&format!("ws://{}", relay.addr), Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    hostile_settings(&mut cfg);
    let client = RelayClient::start(cfg, Arc::new(MemorySessionStore::default()));
    let err = client
        .pair(&code, &mitm.url())
        .await
        .expect_err("pairing through Mallory fails");
    assert!(
        matches!(err, PairError::WrongCode),
        "the desktop says the code did not match: {err}"
    );
    assert!(
        agent.await.is_err(),
        "the agent refused the confirmation and did not pair"
    );
    assert!(client.session().await.is_none(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_agent_cannot_hold_a_meeting() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    // Mallory answers every meeting in the agent's place with a well-formed Noise reply made with
    // her own static key.
    mitm.set_tamper(|p: &Passing| match binary(p) {
        Some(b) if p.dir == Dir::ToEnd && b.first() == Some(&0x03) => {
            let forged = (|| {
                let mallory = StaticKeypair::generate().ok()?;
                let victim = StaticKeypair::generate().ok()?;
                let hello = MeetingHello { delivered: 0 };
                let (_, init) =
                    MeetingInitiator::start(&victim, &mallory.public(), "s", hello).ok()?;
                let (_, reply) =
                    meeting::respond(&mallory, &victim.public(), "s", &init, hello).ok()?;
                Some(reply)
            })();
            forged.map_or_else(Vec::new, |r| vec![Action::Forward(Message::binary(r))])
        }
        _ => forward(p),
    });
    let states_before = p.seen.states.len();
    p.client.reconnect_now().await;
    let during = texts("while Mallory answers", 2);
    let mut ids = Vec::new();
    for t in &during {
        ids.push(p.client.send(t).await.unwrap());
    }
    p.seen
        .until("the circuit breaker to trip", |s| {
            s.notices
                .iter()
                .any(|n| n.contains("handshakes with the agent failed"))
        })
        .await;
    assert!(
        !p.seen.states[states_before..]
            .iter()
            .any(|s| matches!(s, ConnectionState::Online { .. })),
        "never online with a forged agent: {:?}",
        &p.seen.states[states_before..]
    );
    assert!(
        p.agent.disk.received().is_empty(),
        "nothing reached anyone meanwhile"
    );
    // Mallory gives up: the queued messages go through, once
    mitm.set_tamper(PassThrough);
    p.client.reconnect_now().await;
    let wanted = ids.clone();
    p.seen
        .until("the queued messages answered", move |s| {
            wanted.iter().all(|id| s.answered(id))
        })
        .await;
    p.assert_exactly(&during, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_frames_are_refused_and_nothing_doubles() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    // every sealed frame, either way, is delivered twice (the first 6 each way)
    let mut budget = [6u32, 6u32];
    mitm.set_tamper(move |p: &Passing| {
        let slot = usize::from(p.dir == Dir::ToEnd);
        if is_sealed(p) && budget[slot] > 0 {
            budget[slot] -= 1;
            return vec![
                Action::Forward(p.msg.clone()),
                Action::Forward(p.msg.clone()),
            ];
        }
        forward(p)
    });
    let sent = texts("replay me", 3);
    let ids = p.send_all(&sent).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.assert_exactly(&sent, &ids);
    assert!(
        !p.agent.disk.refused().is_empty(),
        "the agent refused the replays"
    );
    assert!(p.desktop_noticed("refused"), "{:?}", p.seen.notices);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_frames_are_refused_and_resent_in_order() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    // hold the desktop's next sealed frame back until the one after it has gone
    let mut held: Option<Message> = None;
    let mut done = false;
    mitm.set_tamper(move |p: &Passing| {
        if done || !is_sealed(p) || p.dir != Dir::ToRelay {
            return forward(p);
        }
        match held.take() {
            None => {
                held = Some(p.msg.clone());
                Vec::new()
            }
            Some(first) => {
                done = true;
                vec![Action::Forward(p.msg.clone()), Action::Forward(first)]
            }
        }
    });
    let sent = texts("in order", 3);
    let ids = p.send_all(&sent).await;
    p.assert_exactly(&sent, &ids);
    assert!(
        !p.agent.disk.refused().is_empty(),
        "the late frame was refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bits_are_refused_both_ways() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    // flip one bit in the 1st sealed frame to the agent and the 3rd to the desktop
    let mut count = [0u32, 0u32];
    mitm.set_tamper(move |p: &Passing| {
        let slot = usize::from(p.dir == Dir::ToEnd);
        let Some(mut b) = binary(p).filter(|_| is_sealed(p)) else {
            return forward(p);
        };
        count[slot] += 1;
        if count[slot] == [1, 3][slot] {
            let i = b.len() / 2;
            b[i] ^= 0x08;
            return vec![Action::Forward(Message::binary(b))];
        }
        forward(p)
    });
    let sent = texts("flip", 3);
    let ids = p.send_all(&sent).await;
    p.assert_exactly(&sent, &ids);
    assert!(!p.agent.disk.refused().is_empty(), "the agent refused one");
    assert!(p.desktop_noticed("refused"), "{:?}", p.seen.notices);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_spliced_from_another_session_are_refused() {
    let (relay, mitm) = hostile().await;
    let mut a = pair_through(&relay, &mitm).await;
    let mut b = pair_through(&relay, &mitm).await;
    // let B's meeting settle (its first sealed frame commits the agent's side), so the first
    // sealed frame after this is A's
    tokio::time::sleep(Duration::from_secs(1)).await;
    // capture session A's frames both ways (A talks first: its connection is the first to carry
    // a sealed frame; a paired desktop keeps its pairing connection, so paths do not tell);
    // copy them into session B's connection
    let captured: Arc<Mutex<Vec<(Dir, Message)>>> = Arc::default();
    let cap = captured.clone();
    let mut a_conn: Option<usize> = None;
    mitm.set_tamper(move |p: &Passing| {
        if !is_sealed(p) || p.side != Side::Desktop {
            return forward(p);
        }
        let mut cap = cap.lock().unwrap();
        if *a_conn.get_or_insert(p.conn) == p.conn {
            cap.push((p.dir, p.msg.clone()));
            return forward(p);
        }
        let mut out = forward(p);
        if let Some(i) = cap.iter().position(|(d, _)| *d == p.dir) {
            let (_, m) = cap.remove(i);
            out.push(Action::Forward(m));
        }
        out
    });
    let sent_a = texts("session A", 3);
    let ids_a = a.send_all(&sent_a).await;
    let sent_b = texts("session B", 3);
    let ids_b = b.send_all(&sent_b).await;
    a.assert_exactly(&sent_a, &ids_a);
    b.assert_exactly(&sent_b, &ids_b);
    assert!(
        !b.agent.disk.refused().is_empty(),
        "B's agent refused A's frames"
    );
    assert!(b.desktop_noticed("refused"), "{:?}", b.seen.notices);
    assert!(
        captured.lock().unwrap().len() < 12,
        "the splices were attempted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgraded_version_byte_is_refused() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    // "version 0" on the first two sealed frames each way
    let mut budget = [2u32, 2u32];
    mitm.set_tamper(move |p: &Passing| {
        let slot = usize::from(p.dir == Dir::ToEnd);
        match binary(p) {
            Some(mut b) if is_sealed(p) && budget[slot] > 0 => {
                budget[slot] -= 1;
                b[0] = 0x00;
                vec![Action::Forward(Message::binary(b))]
            }
            _ => forward(p),
        }
    });
    let sent = texts("downgrade", 3);
    let ids = p.send_all(&sent).await;
    p.assert_exactly(&sent, &ids);
    let refused = p.agent.disk.refused();
    assert!(
        refused
            .iter()
            .any(|r| r.contains("0x00") || r.contains("unknown")),
        "{refused:?}"
    );
    assert!(p.desktop_noticed("refused"), "{:?}", p.seen.notices);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_meeting_replayed_is_refused() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    // record a whole meeting: the desktop's init, the agent's reply, and a sealed message in it
    #[derive(Default)]
    struct Recorded {
        init: Option<Message>,
        reply: Option<Message>,
        sealed: Vec<Message>,
        replaying: bool,
        replayed: bool,
    }
    let rec: Arc<Mutex<Recorded>> = Arc::default();
    let r = rec.clone();
    mitm.set_tamper(move |p: &Passing| {
        let mut r = r.lock().unwrap();
        let first = binary(p).and_then(|b| b.first().copied());
        if !r.replaying {
            match (p.dir, first) {
                (Dir::ToRelay, Some(0x02)) if r.init.is_none() => r.init = Some(p.msg.clone()),
                (Dir::ToEnd, Some(0x03)) if r.reply.is_none() => r.reply = Some(p.msg.clone()),
                (Dir::ToRelay, Some(0x01)) => r.sealed.push(p.msg.clone()),
                _ => {}
            }
            return forward(p);
        }
        if r.replayed || first != Some(0x01) || p.dir != Dir::ToRelay {
            return forward(p);
        }
        // in a later meeting: replay the old one's handshake and traffic at both ends
        r.replayed = true;
        let mut out = forward(p);
        for m in r.init.iter().chain(r.sealed.iter()) {
            out.push(Action::Forward(m.clone()));
        }
        if let Some(reply) = &r.reply {
            out.push(Action::Inject {
                conn: p.conn,
                dir: Dir::ToEnd,
                msg: reply.clone(),
            });
        }
        out
    });
    // meeting 1: recorded
    p.client.reconnect_now().await;
    p.seen.until("back online", online).await;
    let mut sent = texts("first meeting", 2);
    let mut ids = p.send_all(&sent).await;
    assert!(rec.lock().unwrap().init.is_some() && rec.lock().unwrap().reply.is_some());
    // meeting 2: the replay, once it is established (not on the closing connection)
    p.client.reconnect_now().await;
    let handshakes = p.seen.states.len();
    p.seen
        .until("a new meeting", |s| {
            s.states.len() > handshakes && online(s)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rec.lock().unwrap().replaying = true;
    let later = texts("second meeting", 3);
    ids.extend(p.send_all(&later).await);
    sent.extend(later);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rec.lock().unwrap().replayed, "the replay happened");
    p.assert_exactly(&sent, &ids);
    assert!(
        !p.agent.disk.refused().is_empty(),
        "the agent refused the old meeting's frames"
    );
}
