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

use clawtray_client::session_store::{MemorySessionStore, SessionInfo, SessionStore};
use clawtray_client::{ClientConfig, ConnectionState, PairError, RelayClient};
use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::ControlFrame;
use clawtray_proto::frame;
use clawtray_proto::meeting::{self, MeetingHello, MeetingInitiator};
use clawtray_proto::pairing::{Pairing, PairingConfirming};
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

/// Mallory in the middle of a pairing, running the real protocol: SPAKE2 as the agent towards the
/// desktop and as the desktop towards the agent, each with her own static key, on the code she
/// has (a guess, or — the positive control — the real one). Her confirmations are real too: with
/// the right code each end would accept them and pin her key.
struct Mallory {
    code: Option<PairingCode>,
    knows: Option<String>,
    key: StaticKeypair,
    as_agent: Option<Pairing>,
    as_desktop: Option<Pairing>,
    my_pake: [Option<Vec<u8>>; 2],
    confirming: [Option<PairingConfirming>; 2],
    my_confirm: [Option<Vec<u8>>; 2],
    /// What each honest end's confirmation told her (the desktop's, the agent's): their static
    /// keys when her code was right, the error when not.
    learned: Learned,
}

/// What Mallory learned from each confirmation she checked.
type Learned = Arc<Mutex<Vec<Result<[u8; 32], String>>>>;

/// How a pairing through Mallory ended.
struct ThroughMallory {
    paired: Result<(), PairError>,
    agent: Result<TestAgent, tokio::task::JoinError>,
    session: Option<SessionInfo>,
    learned: Vec<Result<[u8; 32], String>>,
    mallory_key: [u8; 32],
}

/// Index of Mallory's face: 0 = posing as the agent (to the desktop), 1 = as the desktop.
const AS_AGENT: usize = 0;
const AS_DESKTOP: usize = 1;

impl Mallory {
    fn new(knows: Option<String>) -> (Self, Learned) {
        let learned = Arc::new(Mutex::new(Vec::new()));
        let m = Mallory {
            code: None,
            knows,
            key: StaticKeypair::generate().expect("key"),
            as_agent: None,
            as_desktop: None,
            my_pake: [None, None],
            confirming: [None, None],
            my_confirm: [None, None],
            learned: learned.clone(),
        };
        (m, learned)
    }

    fn on_join(&mut self, nameplate: &str) {
        let np = Nameplate::parse(nameplate).expect("nameplate");
        let code = match &self.knows {
            Some(real) => PairingCode::parse(real).expect("code"),
            None => PairingCode::generate(np).expect("guess"),
        };
        for (face, role) in [(AS_AGENT, Role::Agent), (AS_DESKTOP, Role::Desktop)] {
            let (state, msg) =
                Pairing::start(role, &code, self.key.clone(), "mallory").expect("start");
            self.my_pake[face] = Some(msg);
            match face {
                AS_AGENT => self.as_agent = Some(state),
                _ => self.as_desktop = Some(state),
            }
        }
        self.code = Some(code);
    }

    /// An honest end's SPAKE2 message reached her: finish SPAKE2 with it on the face it talks to,
    /// and send her own face's message on instead.
    fn on_pake(&mut self, face: usize, theirs: &str) -> Message {
        let theirs = base64::engine::general_purpose::STANDARD
            .decode(theirs)
            .expect("b64");
        let state = match face {
            AS_AGENT => self.as_agent.take(),
            _ => self.as_desktop.take(),
        }
        .expect("pairing started");
        let (confirming, confirm) = state.receive_pake(&theirs).expect("pake");
        self.confirming[face] = Some(confirming);
        self.my_confirm[face] = Some(confirm);
        let other = 1 - face;
        let msg = self.my_pake[other].clone().expect("pake made");
        let frame = ControlFrame::Pake {
            msg: base64::engine::general_purpose::STANDARD.encode(msg),
        };
        Message::text(frame.to_json())
    }

    /// An honest end's confirmation reached her: check it on the face it talks to (learning that
    /// end's static key if her code was right) and send her own confirmation from the other face.
    fn on_confirm(&mut self, face: usize, theirs: &[u8]) -> Message {
        let confirming = self.confirming[face].take().expect("pake finished");
        let outcome = confirming
            .receive_confirmation(theirs)
            .map(|peer| peer.static_public)
            .map_err(|e| e.to_string());
        self.learned.lock().expect("learned").push(outcome);
        let other = 1 - face;
        Message::binary(self.my_confirm[other].clone().expect("confirmation made"))
    }
}

impl clawtray_testkit::mitm::Tamper for Mallory {
    fn on_message(&mut self, p: &Passing) -> Vec<Action> {
        // the desktop's connection passes through her: what goes to the relay comes from the
        // desktop (she answers it as the agent); what comes back is the agent's (she answers it as
        // the desktop)
        let face = match p.dir {
            Dir::ToRelay => AS_AGENT,
            Dir::ToEnd => AS_DESKTOP,
        };
        let msg = match &p.msg {
            Message::Text(t) => match serde_json::from_str::<ControlFrame>(t) {
                Ok(ControlFrame::Join { nameplate }) => {
                    self.on_join(&nameplate);
                    p.msg.clone()
                }
                Ok(ControlFrame::Pake { msg }) => self.on_pake(face, &msg),
                _ => p.msg.clone(),
            },
            Message::Binary(b) if b.first() == Some(&frame::PAIRING_CONFIRM) => {
                self.on_confirm(face, b)
            }
            _ => p.msg.clone(),
        };
        vec![Action::Forward(msg)]
    }
}

/// Pair a desktop (through Mallory) with a scripted agent (straight to the relay).
async fn pair_past_mallory(knows_the_code: bool) -> ThroughMallory {
    let relay = Relay::start(&[]).await;
    let (code, agent) = TestAgent::pair(&format!("ws://{}", relay.addr), Script::default()).await;
    let (mallory, learned) = Mallory::new(knows_the_code.then(|| code.clone()));
    let mallory_key = mallory.key.public();
    let mitm = Mitm::start(relay.addr, mallory).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    hostile_settings(&mut cfg);
    let client = RelayClient::start(cfg, Arc::new(MemorySessionStore::default()));
    let paired = client.pair(&code, &mitm.url()).await.map(|_| ());
    let agent = tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the agent's pairing ends");
    let session = client.session().await;
    let learned = learned.lock().unwrap().clone();
    ThroughMallory {
        paired,
        agent,
        session,
        learned,
        mallory_key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_the_code_cannot_pair_in_the_middle() {
    // Mallory sees the nameplate (it is not secret), guesses the rest of the code, and runs the
    // real SPAKE2 with each end in place of the other
    let ThroughMallory {
        paired,
        agent,
        session,
        learned,
        ..
    } = pair_past_mallory(false).await;
    let err = paired.expect_err("pairing through Mallory fails");
    assert!(
        matches!(err, PairError::WrongCode),
        "the desktop says the code did not match: {err}"
    );
    assert!(
        agent.is_err(),
        "the agent refused Mallory's confirmation and did not pair"
    );
    assert!(session.is_none(), "nothing was stored");
    assert!(!learned.is_empty(), "Mallory saw a confirmation");
    assert!(
        learned.iter().all(Result::is_err),
        "and learned no end's key from it: {learned:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_attack_with_the_code_succeeds_so_the_test_above_can_fail() {
    // positive control: the attacker of the test above, given the real code, does pair in the
    // middle — so that test's failure to pair comes from the code, not from a broken attacker
    let ThroughMallory {
        paired,
        agent,
        session,
        learned,
        mallory_key,
    } = pair_past_mallory(true).await;
    paired.expect("with the code, Mallory's confirmation is accepted");
    let agent = agent.expect("and the agent's too");
    assert_eq!(
        session.expect("stored").agent_name,
        "mallory",
        "the desktop pinned Mallory as its agent"
    );
    assert_eq!(
        agent.disk.desktop_public(),
        mallory_key,
        "the agent pinned Mallory as its desktop"
    );
    assert_eq!(learned.len(), 2, "she checked both confirmations");
    assert!(learned.iter().all(Result::is_ok), "{learned:?}");
}

/// Mallory answers every meeting the desktop starts — the live init itself, which never reaches
/// the agent — with `key` in the agent's place. She knows the session id and the desktop's static
/// public key (neither is secret to her here). What she could not build with the real protocol
/// she sends as a well-framed reply of the genuine length with her own ephemeral key.
fn answer_live_meetings(
    key: StaticKeypair,
    desktop_public: [u8; 32],
    session: String,
    tally: Arc<Mutex<[u32; 2]>>,
) -> impl FnMut(&Passing) -> Vec<Action> + Send + 'static {
    move |p: &Passing| match binary(p) {
        Some(init) if p.dir == Dir::ToRelay && init.first() == Some(&frame::MEETING_INIT) => {
            let hello = MeetingHello { delivered: 0 };
            let reply = match meeting::respond(&key, &desktop_public, &session, &init, hello) {
                Ok((_, reply)) => {
                    tally.lock().unwrap()[0] += 1;
                    reply
                }
                Err(_) => {
                    tally.lock().unwrap()[1] += 1;
                    forged_reply_shape()
                }
            };
            vec![Action::Inject {
                conn: p.conn,
                dir: Dir::ToEnd,
                msg: Message::binary(reply),
            }]
        }
        // the agent's own replies (to nothing it was sent) are dropped
        Some(b) if p.dir == Dir::ToEnd && b.first() == Some(&frame::MEETING_REPLY) => Vec::new(),
        _ => forward(p),
    }
}

/// A meeting reply frame of the genuine length: kind byte, a fresh ephemeral public key, then
/// random bytes where the encrypted hello would be.
fn forged_reply_shape() -> Vec<u8> {
    let genuine = (|| {
        let a = StaticKeypair::generate().ok()?;
        let b = StaticKeypair::generate().ok()?;
        let hello = MeetingHello { delivered: 0 };
        let (_, init) = MeetingInitiator::start(&a, &b.public(), "s", hello).ok()?;
        let (_, reply) = meeting::respond(&b, &a.public(), "s", &init, hello).ok()?;
        Some(reply)
    })()
    .expect("a genuine reply to measure");
    let mut forged = vec![frame::MEETING_REPLY];
    forged.extend_from_slice(&StaticKeypair::generate().expect("key").public());
    while forged.len() < genuine.len() {
        forged.extend_from_slice(&StaticKeypair::generate().expect("random").public());
    }
    forged.truncate(genuine.len());
    forged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_agent_cannot_hold_a_meeting() {
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    let (desktop_public, session) = {
        let d = p.agent.disk.0.lock().unwrap();
        (d.desktop_public, d.session.clone())
    };
    let tally = Arc::new(Mutex::new([0u32; 2]));
    let mallory = StaticKeypair::generate().unwrap();
    mitm.set_tamper(answer_live_meetings(
        mallory,
        desktop_public,
        session,
        tally.clone(),
    ));
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
    let [answered, forged] = *tally.lock().unwrap();
    assert_eq!(
        answered, 0,
        "without the agent's key she cannot even read the init"
    );
    assert!(forged >= 3, "she answered the live meetings: {forged}");
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
    // the breaker does not forget: the pairing and the queued messages are still there
    assert!(p.client.session().await.is_some(), "the pairing is kept");
    assert!(
        p.store.load().unwrap().is_some(),
        "and so is the stored secret"
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
async fn a_live_reply_made_with_the_agent_key_is_accepted_so_the_test_above_can_fail() {
    // positive control: the same interception, with the agent's own key, does hold the meeting —
    // so the refusal above comes from the missing key, not from a reply that never arrives
    let (relay, mitm) = hostile().await;
    let mut p = pair_through(&relay, &mitm).await;
    let (key, desktop_public, session) = {
        let d = p.agent.disk.0.lock().unwrap();
        (d.key.clone(), d.desktop_public, d.session.clone())
    };
    let tally = Arc::new(Mutex::new([0u32; 2]));
    mitm.set_tamper(answer_live_meetings(
        key,
        desktop_public,
        session,
        tally.clone(),
    ));
    let states_before = p.seen.states.len();
    p.client.reconnect_now().await;
    p.seen
        .until("online again", move |s| {
            s.states[states_before..]
                .iter()
                .any(|s| matches!(s, ConnectionState::Online { .. }))
        })
        .await;
    assert!(tally.lock().unwrap()[0] >= 1, "her reply held the meeting");
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
