//! Test harness: the real `clawtray-relay` binary as a child process, and two protocol ends
//! (agent and desktop) built directly on `clawtray-proto`, speaking over real WebSockets.

#![allow(dead_code)]

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::meeting::{self, Meeting, MeetingHello, MeetingInitiator};
use clawtray_proto::pairing::{PairedPeer, Pairing};
use clawtray_proto::secret::StaticKeypair;
use clawtray_proto::{ProtoError, Role};

/// The real relay binary of this package.
pub struct Relay;

impl Relay {
    pub async fn start(extra: &[&str]) -> clawtray_testkit::relay::Relay {
        clawtray_testkit::relay::Relay::start_bin(
            std::path::Path::new(env!("CARGO_BIN_EXE_clawtray-relay")),
            extra,
        )
        .await
    }
}

pub use clawtray_testkit::relay::STEP;
type RelayProc = clawtray_testkit::relay::Relay;

/// What one end received.
#[derive(Debug)]
pub enum Incoming {
    Control(ControlFrame),
    Binary(Vec<u8>),
    Closed(Option<CloseFrame>),
}

/// One WebSocket end.
pub struct End {
    pub ws: clawtray_testkit::ws::Ws,
}

impl End {
    pub async fn connect(url: &str, bearer: Option<&str>) -> End {
        let ws = tokio::time::timeout(STEP, clawtray_testkit::ws::connect(url, bearer))
            .await
            .expect("connect in time")
            .expect("connect");
        End { ws }
    }

    pub async fn send(&mut self, f: &ControlFrame) {
        self.ws
            .send(Message::text(f.to_json()))
            .await
            .expect("send control");
    }

    pub async fn send_bin(&mut self, b: Vec<u8>) {
        self.ws.send(Message::binary(b)).await.expect("send binary");
    }

    pub async fn next(&mut self) -> Incoming {
        loop {
            let m = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("a frame in time");
            return match m {
                None | Some(Err(_)) => Incoming::Closed(None),
                Some(Ok(Message::Text(t))) => Incoming::Control(
                    ControlFrame::from_json(t.as_str()).expect("valid control frame"),
                ),
                Some(Ok(Message::Binary(b))) => Incoming::Binary(b.to_vec()),
                Some(Ok(Message::Close(c))) => Incoming::Closed(c),
                Some(Ok(_)) => continue,
            };
        }
    }

    pub async fn control(&mut self) -> ControlFrame {
        match self.next().await {
            Incoming::Control(c) => c,
            other => panic!("expected a control frame, got {other:?}"),
        }
    }

    pub async fn binary(&mut self) -> Vec<u8> {
        match self.next().await {
            Incoming::Binary(b) => b,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// Expect an error frame with `code`, then the close.
    pub async fn expect_error_and_close(&mut self, code: ErrorCode) {
        loop {
            match self.next().await {
                Incoming::Control(ControlFrame::Error { code: got, .. }) => {
                    assert_eq!(got, code);
                    break;
                }
                Incoming::Binary(_)
                | Incoming::Control(ControlFrame::PeerOffline | ControlFrame::PeerOnline) => {
                    continue
                }
                other => panic!("expected error {code}, got {other:?}"),
            }
        }
        match self.next().await {
            Incoming::Closed(Some(cf)) => assert_eq!(cf.reason.as_str(), code.as_str()),
            Incoming::Closed(None) => {}
            other => panic!("expected close after {code}, got {other:?}"),
        }
    }
}

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// An agent connection that claimed a nameplate.
pub async fn claim(relay: &RelayProc, instance: &str) -> (End, String) {
    let mut agent = End::connect(&relay.url(&format!("/v1/agent?instance={instance}")), None).await;
    agent.send(&ControlFrame::Claim).await;
    match agent.control().await {
        ControlFrame::Claimed {
            nameplate,
            expires_in,
        } => {
            assert!(expires_in > 0);
            (agent, nameplate)
        }
        other => panic!("expected claimed, got {other:?}"),
    }
}

/// The outcome of a pairing attempt at one end.
pub struct PairingOutcome {
    pub end: End,
    pub peer: Result<PairedPeer, ProtoError>,
}

/// Run SPAKE2 + confirmation between `agent` and `desktop` (already linked) with their codes.
pub async fn run_pake(
    mut agent: End,
    agent_code: &PairingCode,
    agent_key: &StaticKeypair,
    mut desktop: End,
    desktop_code: &PairingCode,
    desktop_key: &StaticKeypair,
) -> (PairingOutcome, PairingOutcome) {
    let (a, a_msg) =
        Pairing::start(Role::Agent, agent_code, agent_key.clone(), "test-agent").expect("start");
    let (d, d_msg) = Pairing::start(
        Role::Desktop,
        desktop_code,
        desktop_key.clone(),
        "test-desktop",
    )
    .expect("start");
    agent.send(&ControlFrame::Pake { msg: b64(&a_msg) }).await;
    desktop.send(&ControlFrame::Pake { msg: b64(&d_msg) }).await;
    let msg = match agent.control().await {
        ControlFrame::Pake { msg } => msg,
        other => panic!("agent expected pake, got {other:?}"),
    };
    let (a, a_conf) = a.receive_pake(&unb64(&msg)).expect("agent pake");
    let msg = match desktop.control().await {
        ControlFrame::Pake { msg } => msg,
        other => panic!("desktop expected pake, got {other:?}"),
    };
    let (d, d_conf) = d.receive_pake(&unb64(&msg)).expect("desktop pake");
    agent.send_bin(a_conf).await;
    desktop.send_bin(d_conf).await;
    let a_peer = a.receive_confirmation(&agent.binary().await);
    let d_peer = d.receive_confirmation(&desktop.binary().await);
    (
        PairingOutcome {
            end: agent,
            peer: a_peer,
        },
        PairingOutcome {
            end: desktop,
            peer: d_peer,
        },
    )
}

/// A paired session, both ends connected.
pub struct Paired {
    pub agent: End,
    pub desktop: End,
    pub session: String,
    pub agent_token: String,
    pub desktop_token: String,
    pub agent_key: StaticKeypair,
    pub desktop_key: StaticKeypair,
}

impl Paired {
    /// A Noise meeting between the two connected ends (desktop initiates).
    pub async fn meet(&mut self) -> (Meeting, Meeting) {
        meet(
            &mut self.agent,
            &self.agent_key,
            &mut self.desktop,
            &self.desktop_key,
            &self.session,
        )
        .await
    }
}

pub async fn pair(relay: &RelayProc) -> Paired {
    pair_on(relay, relay).await
}

/// Pair an agent connected to `agent_relay` with a desktop connected to `desktop_relay` (two
/// nodes of a cluster, or the same relay).
pub async fn pair_on(agent_relay: &RelayProc, relay: &RelayProc) -> Paired {
    let (agent, nameplate) = claim(agent_relay, "proc-1").await;
    let code =
        PairingCode::generate(Nameplate::parse(&nameplate).expect("nameplate")).expect("code");
    // the person types the code shown by the agent
    let typed = PairingCode::parse(&code.display_string()).expect("typed code");
    let mut desktop = End::connect(&relay.url("/v1/desktop"), None).await;
    desktop
        .send(&ControlFrame::Join {
            nameplate: typed.nameplate().to_string(),
        })
        .await;
    assert_eq!(desktop.control().await, ControlFrame::Linked);
    let mut agent = agent;
    assert_eq!(agent.control().await, ControlFrame::Linked);
    let agent_key = StaticKeypair::generate().expect("key");
    let desktop_key = StaticKeypair::generate().expect("key");
    let (a, d) = run_pake(agent, &code, &agent_key, desktop, &typed, &desktop_key).await;
    assert_eq!(
        a.peer.as_ref().expect("agent confirmed").static_public,
        desktop_key.public()
    );
    assert_eq!(
        d.peer.as_ref().expect("desktop confirmed").static_public,
        agent_key.public()
    );
    let (mut agent, mut desktop) = (a.end, d.end);
    agent.send(&ControlFrame::Confirmed).await;
    desktop.send(&ControlFrame::Confirmed).await;
    let ControlFrame::Paired {
        session,
        token: agent_token,
    } = agent.control().await
    else {
        panic!("agent expected paired")
    };
    let ControlFrame::Paired {
        session: s2,
        token: desktop_token,
    } = desktop.control().await
    else {
        panic!("desktop expected paired")
    };
    assert_eq!(session, s2);
    assert_ne!(agent_token, desktop_token);
    let (agent_token, desktop_token) = (
        agent_token.expose().to_owned(),
        desktop_token.expose().to_owned(),
    );
    Paired {
        agent,
        desktop,
        session,
        agent_token,
        desktop_token,
        agent_key,
        desktop_key,
    }
}

/// Run a Noise KK meeting through the relay: desktop initiates, agent responds.
pub async fn meet(
    agent: &mut End,
    agent_key: &StaticKeypair,
    desktop: &mut End,
    desktop_key: &StaticKeypair,
    session: &str,
) -> (Meeting, Meeting) {
    let (init, m1) = MeetingInitiator::start(
        desktop_key,
        &agent_key.public(),
        session,
        MeetingHello::default(),
    )
    .expect("init");
    desktop.send_bin(m1).await;
    let m1 = agent.binary().await;
    let (agent_meeting, m2) = meeting::respond(
        agent_key,
        &desktop_key.public(),
        session,
        &m1,
        MeetingHello::default(),
    )
    .expect("respond");
    agent.send_bin(m2).await;
    let desktop_meeting = init.finish(&desktop.binary().await).expect("finish");
    (agent_meeting, desktop_meeting)
}

/// Seal on one end, open on the other, through the relay.
pub async fn exchange(
    from: &mut End,
    from_m: &mut Meeting,
    to: &mut End,
    to_m: &mut Meeting,
    text: &[u8],
) {
    from.send_bin(from_m.sealer.seal(text).expect("seal")).await;
    let got = to_m.opener.open(&to.binary().await).expect("open");
    assert_eq!(got, text);
}

/// Resume a session end with its token.
pub async fn resume(
    relay: &RelayProc,
    role: Role,
    session: &str,
    token: &str,
    instance: &str,
) -> (End, bool) {
    let path = match role {
        Role::Agent => format!("/v1/agent?session={session}&instance={instance}"),
        Role::Desktop => format!("/v1/desktop?session={session}"),
    };
    let mut end = End::connect(&relay.url(&path), Some(token)).await;
    match end.control().await {
        ControlFrame::Resumed { peer_online } => (end, peer_online),
        other => panic!("expected resumed, got {other:?}"),
    }
}
