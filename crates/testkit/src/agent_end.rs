//! A scripted agent end for tests: pairs through the real relay, keeps its "state dir" in a
//! shared [`AgentDisk`] (so a killed incarnation's successor resumes from it, as a restarted
//! process would), answers meetings, and replies to every chat message with a streamed reply:
//! `chat_ack`, `chat_typing on`, one `chat_delta` per word, `chat_reply` with the full text,
//! `chat_typing off`. Aborts and history requests are honoured.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use clawtray_proto::chat::{HistoryMessage, ToAgent, ToDesktop};
use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::ControlFrame;
use clawtray_proto::delivery::{Delivery, DeliveryState};
use clawtray_proto::endpoint::{Endpoint, Event};
use clawtray_proto::pairing::Pairing;
use clawtray_proto::secret::StaticKeypair;
use clawtray_proto::Role;

use crate::ws::{connect, Ws};

/// How the agent replies.
#[derive(Debug, Clone)]
pub struct Script {
    /// Words per reply (one delta each, after a first delta echoing the message).
    pub words: usize,
    /// Pause between deltas.
    pub delta_delay: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            words: 5,
            delta_delay: Duration::from_millis(20),
        }
    }
}

/// The full reply the script produces for `text`.
#[must_use]
pub fn expected_reply(text: &str, words: usize) -> String {
    let mut s = format!("echo:{text}");
    for i in 1..=words {
        s.push_str(&format!(" w{i}"));
    }
    s
}

#[derive(Debug, Clone)]
struct Run {
    run_id: String,
    text: String,
    next_word: usize,
}

/// The agent's persistent state, shared across incarnations.
#[derive(Debug)]
pub struct Disk {
    pub key: StaticKeypair,
    pub session: String,
    pub token: String,
    pub desktop_public: [u8; 32],
    pub delivery: DeliveryState<ToDesktop>,
    /// Texts of chat messages delivered to the agent, in order.
    pub received: Vec<String>,
    /// File parts delivered to the agent: (file id, part index), in order.
    pub file_parts: Vec<(String, u32)>,
    /// Replies finished: (run id, text).
    pub replied: Vec<(String, String)>,
    /// Errors the relay sent this agent.
    pub relay_errors: Vec<String>,
    /// Frames and handshakes this agent refused (tampered, replayed, forged), in words.
    pub refused: Vec<String>,
    /// The desktop sent a sealed `unpair`.
    pub unpaired_by_desktop: bool,
    /// Messages a test asked to send (see [`TestAgent::send`]), and their wake-up.
    outgoing: Vec<ToDesktop>,
    wake: Arc<tokio::sync::Notify>,
    runs: VecDeque<Run>,
}

/// Shared handle to the agent's state.
#[derive(Debug, Clone)]
pub struct AgentDisk(pub Arc<Mutex<Disk>>);

impl AgentDisk {
    /// Chat texts received, in order.
    #[must_use]
    pub fn received(&self) -> Vec<String> {
        self.0.lock().expect("disk").received.clone()
    }

    /// Errors the relay sent.
    #[must_use]
    pub fn relay_errors(&self) -> Vec<String> {
        self.0.lock().expect("disk").relay_errors.clone()
    }

    /// Frames and handshakes refused, in words.
    #[must_use]
    pub fn refused(&self) -> Vec<String> {
        self.0.lock().expect("disk").refused.clone()
    }

    /// The desktop static key this agent pinned at pairing.
    #[must_use]
    pub fn desktop_public(&self) -> [u8; 32] {
        self.0.lock().expect("disk").desktop_public
    }
}

/// A running agent incarnation.
pub struct TestAgent {
    pub disk: AgentDisk,
    task: JoinHandle<()>,
}

impl TestAgent {
    /// Claim a nameplate at `relay` (`ws://host:port`). Returns the code to type and a handle that
    /// becomes a running agent once a desktop pairs.
    pub async fn pair(relay: &str, script: Script) -> (String, JoinHandle<TestAgent>) {
        let mut ws = connect(&format!("{relay}/v1/agent?instance=first"), None)
            .await
            .expect("agent connects");
        send_control(&mut ws, &ControlFrame::Claim).await;
        let ControlFrame::Claimed { nameplate, .. } = next_control(&mut ws).await else {
            panic!("claim refused")
        };
        let code =
            PairingCode::generate(Nameplate::parse(&nameplate).expect("nameplate")).expect("code");
        let shown = code.display_string().to_string();
        let relay = relay.to_owned();
        let handle = tokio::spawn(async move {
            assert_eq!(next_control(&mut ws).await, ControlFrame::Linked);
            let key = StaticKeypair::generate().expect("key");
            let (p, msg) =
                Pairing::start(Role::Agent, &code, key.clone(), "test-agent").expect("start");
            send_control(
                &mut ws,
                &ControlFrame::Pake {
                    msg: base64::engine::general_purpose::STANDARD.encode(msg),
                },
            )
            .await;
            let ControlFrame::Pake { msg } = next_control(&mut ws).await else {
                panic!("expected pake")
            };
            let peer_msg = base64::engine::general_purpose::STANDARD
                .decode(msg)
                .expect("b64");
            let (p, confirm) = p.receive_pake(&peer_msg).expect("pake");
            ws.send(Message::binary(confirm)).await.expect("send");
            let peer_confirm = loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => break b.to_vec(),
                    Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("pairing: expected confirmation, got {other:?}"),
                }
            };
            let peer = p
                .receive_confirmation(&peer_confirm)
                .expect("desktop confirmation");
            send_control(&mut ws, &ControlFrame::Confirmed).await;
            let ControlFrame::Paired { session, token } = next_control(&mut ws).await else {
                panic!("expected paired")
            };
            let disk = AgentDisk(Arc::new(Mutex::new(Disk {
                key,
                session,
                token: token.expose().to_owned(),
                desktop_public: peer.static_public,
                delivery: Delivery::<ToDesktop>::new(100_000).snapshot(),
                received: Vec::new(),
                file_parts: Vec::new(),
                replied: Vec::new(),
                relay_errors: Vec::new(),
                refused: Vec::new(),
                unpaired_by_desktop: false,
                outgoing: Vec::new(),
                wake: Arc::new(tokio::sync::Notify::new()),
                runs: VecDeque::new(),
            })));
            let d = disk.clone();
            let task =
                tokio::spawn(async move { run(relay, d, "first".into(), script, Some(ws)).await });
            TestAgent { disk, task }
        });
        (shown, handle)
    }

    /// Start a new incarnation (a restarted process) from `disk`, with a new instance id.
    #[must_use]
    pub fn start(relay: &str, disk: AgentDisk, instance: &str, script: Script) -> TestAgent {
        let d = disk.clone();
        let relay = relay.to_owned();
        let instance = instance.to_owned();
        let task = tokio::spawn(async move { run(relay, d, instance, script, None).await });
        TestAgent { disk, task }
    }

    /// Send `m` to the desktop (sealed, in order with everything else) from the live connection.
    pub fn send(&self, m: ToDesktop) {
        let mut d = self.disk.0.lock().expect("disk");
        d.outgoing.push(m);
        d.wake.notify_one();
    }

    /// Kill this incarnation abruptly (its connection drops; its disk stays).
    pub fn kill(self) -> AgentDisk {
        self.task.abort();
        self.disk
    }

    /// Revoke the session at the relay (as `clawtray-agent unpair` would).
    pub async fn revoke(relay: &str, disk: &AgentDisk) {
        let (session, token) = {
            let d = disk.0.lock().expect("disk");
            (d.session.clone(), d.token.clone())
        };
        let mut ws = connect(
            &format!("{relay}/v1/agent?session={session}&instance=revoker"),
            Some(&token),
        )
        .await
        .expect("connect");
        let _ = next_control(&mut ws).await; // resumed
        send_control(&mut ws, &ControlFrame::Revoke).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    }
}

async fn send_control(ws: &mut Ws, f: &ControlFrame) {
    let _ = ws.send(Message::text(f.to_json())).await;
}

async fn next_control(ws: &mut Ws) -> ControlFrame {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("control frame in time")
        {
            Some(Ok(Message::Text(t))) => {
                return ControlFrame::from_json(t.as_str()).expect("control")
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a control frame, got {other:?}"),
        }
    }
}

/// One incarnation: (re)connect, answer meetings, reply to chat.
async fn run(
    relay: String,
    disk: AgentDisk,
    instance: String,
    script: Script,
    mut first: Option<Ws>,
) {
    let (key, desktop_public, session, token, delivery) = {
        let d = disk.0.lock().expect("disk");
        (
            d.key.clone(),
            d.desktop_public,
            d.session.clone(),
            d.token.clone(),
            d.delivery.clone(),
        )
    };
    let mut endpoint: Endpoint<ToDesktop, ToAgent> = Endpoint::new(
        Role::Agent,
        key,
        desktop_public,
        session.clone(),
        Delivery::restore(delivery, 100_000),
    );
    loop {
        let mut ws = match first.take() {
            Some(ws) => ws,
            None => {
                let url = format!("{relay}/v1/agent?session={session}&instance={instance}");
                match connect(&url, Some(&token)).await {
                    Ok(mut ws) => match tokio::time::timeout(Duration::from_secs(5), ws.next())
                        .await
                    {
                        Ok(Some(Ok(Message::Text(t)))) => match ControlFrame::from_json(t.as_str())
                        {
                            Ok(ControlFrame::Resumed { .. }) => ws,
                            Ok(ControlFrame::Error { code, .. }) => {
                                disk.0
                                    .lock()
                                    .expect("disk")
                                    .relay_errors
                                    .push(code.as_str().to_owned());
                                if code.is_permanent() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                continue;
                            }
                            _ => continue,
                        },
                        _ => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
        };
        endpoint.peer_left();
        serve(&mut ws, &mut endpoint, &disk, &script).await;
        endpoint.peer_left();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve(
    ws: &mut Ws,
    endpoint: &mut Endpoint<ToDesktop, ToAgent>,
    disk: &AgentDisk,
    script: &Script,
) {
    let mut next_tick: Option<Instant> = disk
        .0
        .lock()
        .expect("disk")
        .runs
        .front()
        .map(|_| Instant::now());
    let wake = disk.0.lock().expect("disk").wake.clone();
    loop {
        tokio::select! {
            () = wake.notified() => {
                let out = std::mem::take(&mut disk.0.lock().expect("disk").outgoing);
                for m in out {
                    if !send(ws, endpoint, disk, m).await {
                        return;
                    }
                }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { return };
                match msg {
                    Message::Text(t) => match ControlFrame::from_json(t.as_str()) {
                        Ok(ControlFrame::PeerOffline) => endpoint.peer_left(),
                        Ok(ControlFrame::Error { code, .. }) => {
                            disk.0.lock().expect("disk").relay_errors.push(code.as_str().to_owned());
                            return;
                        }
                        _ => {}
                    },
                    Message::Binary(b) => {
                        let events = endpoint.on_frame(&b);
                        if !handle(ws, endpoint, disk, events).await {
                            return;
                        }
                        if let Some(f) = endpoint.flush_ack() {
                            let _ = ws.send(Message::binary(f)).await;
                        }
                        if next_tick.is_none() && !disk.0.lock().expect("disk").runs.is_empty() {
                            next_tick = Some(Instant::now());
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            () = sleep_until(next_tick.unwrap_or_else(Instant::now)), if next_tick.is_some() => {
                let out = step_run(disk, script);
                for m in out {
                    if !send(ws, endpoint, disk, m).await {
                        return;
                    }
                }
                next_tick = if disk.0.lock().expect("disk").runs.is_empty() { None } else { Some(Instant::now() + script.delta_delay) };
            }
        }
    }
}

/// Advance the current run by one step; returns the messages to send.
fn step_run(disk: &AgentDisk, script: &Script) -> Vec<ToDesktop> {
    let mut d = disk.0.lock().expect("disk");
    let Some(run) = d.runs.front_mut() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if run.next_word == 0 {
        out.push(ToDesktop::ChatTyping {
            session: None,
            on: true,
        });
        out.push(ToDesktop::ChatDelta {
            session: None,
            run_id: run.run_id.clone(),
            seq: 1,
            text: format!("echo:{}", run.text),
            replace: false,
        });
        run.next_word = 1;
    } else if run.next_word <= script.words {
        let i = run.next_word;
        out.push(ToDesktop::ChatDelta {
            session: None,
            run_id: run.run_id.clone(),
            seq: (i + 1) as u64,
            text: format!(" w{i}"),
            replace: false,
        });
        run.next_word += 1;
    } else {
        let full = expected_reply(&run.text, script.words);
        let run_id = run.run_id.clone();
        out.push(ToDesktop::ChatReply {
            session: None,
            run_id: run_id.clone(),
            text: full.clone(),
        });
        out.push(ToDesktop::ChatTyping {
            session: None,
            on: false,
        });
        d.runs.pop_front();
        d.replied.push((run_id, full));
    }
    out
}

async fn send(
    ws: &mut Ws,
    endpoint: &mut Endpoint<ToDesktop, ToAgent>,
    disk: &AgentDisk,
    m: ToDesktop,
) -> bool {
    let Ok((_, events)) = endpoint.send(m) else {
        return false;
    };
    disk.0.lock().expect("disk").delivery = endpoint.delivery().snapshot();
    for e in events {
        if let Event::Transmit(f) = e {
            if ws.send(Message::binary(f)).await.is_err() {
                return false;
            }
        }
    }
    true
}

async fn handle(
    ws: &mut Ws,
    endpoint: &mut Endpoint<ToDesktop, ToAgent>,
    disk: &AgentDisk,
    events: Vec<Event<ToAgent>>,
) -> bool {
    let mut replies = Vec::new();
    for e in events {
        match e {
            Event::Transmit(f) => {
                if ws.send(Message::binary(f)).await.is_err() {
                    return false;
                }
            }
            Event::Deliver { body, .. } => {
                let mut d = disk.0.lock().expect("disk");
                match body {
                    ToAgent::Chat { id, text, .. } => {
                        d.received.push(text.clone());
                        replies.push(ToDesktop::ChatAck {
                            session: None,
                            id: id.clone(),
                            run_id: id.clone(),
                        });
                        d.runs.push_back(Run {
                            run_id: id,
                            text,
                            next_word: 0,
                        });
                    }
                    ToAgent::ChatAbort { run_id, .. } => {
                        if let Some(pos) = d.runs.iter().position(|r| r.run_id == run_id) {
                            d.runs.remove(pos);
                            replies.push(ToDesktop::ChatAborted {
                                session: None,
                                run_id,
                            });
                            replies.push(ToDesktop::ChatTyping {
                                session: None,
                                on: false,
                            });
                        }
                    }
                    ToAgent::ChatHistory { .. } => {
                        let mut messages = Vec::new();
                        let replied = d.replied.clone();
                        for (i, text) in d.received.iter().enumerate() {
                            messages.push(HistoryMessage {
                                files: Vec::new(),
                                id: None,
                                role: "user".into(),
                                text: text.clone(),
                                timestamp: None,
                            });
                            if let Some((_, r)) = replied.get(i) {
                                messages.push(HistoryMessage {
                                    files: Vec::new(),
                                    id: None,
                                    role: "assistant".into(),
                                    text: r.clone(),
                                    timestamp: None,
                                });
                            }
                        }
                        replies.push(ToDesktop::History {
                            before: None,
                            older: None,
                            session: None,
                            messages,
                        });
                    }
                    ToAgent::SessionList => replies.push(ToDesktop::Sessions {
                        sessions: vec![clawtray_proto::chat::SessionSummary {
                            key: "main".into(),
                            title: None,
                            updated_at_ms: None,
                            running: !d.runs.is_empty(),
                            default: true,
                        }],
                    }),
                    ToAgent::FilePart { file, index, .. } => d.file_parts.push((file, index)),
                    ToAgent::Unpair => d.unpaired_by_desktop = true,
                    ToAgent::Unknown => {}
                    // the scripted agent has no gateway and so nothing to approve
                    ToAgent::ApprovalList => replies.push(ToDesktop::Approvals {
                        pending: Vec::new(),
                    }),
                    ToAgent::ApprovalDecide { id, .. } => {
                        replies.push(ToDesktop::ApprovalRefused {
                            id,
                            message: "no approval is waiting with that id".into(),
                        })
                    }
                }
                d.delivery = endpoint.delivery().snapshot();
            }
            Event::Acked(_) => {
                disk.0.lock().expect("disk").delivery = endpoint.delivery().snapshot()
            }
            Event::Rejected(e) | Event::HandshakeFailed(e) => {
                disk.0.lock().expect("disk").refused.push(e.to_string());
            }
            Event::Online | Event::MeetingBroken => {}
        }
    }
    for m in replies {
        if !send(ws, endpoint, disk, m).await {
            return false;
        }
    }
    true
}
