//! One paired desktop's relay link: an actor that keeps the session connected (backoff 1 s → 30 s
//! with jitter, WebSocket heartbeats), answers the desktop's meetings, seals what the hub sends
//! through the proto endpoint, and persists its outbox write-through — a message for a desktop that
//! is away waits there, in order, across agent restarts.
//!
//! The relay's word never ends a pairing here: a "permanent" relay error (revoked, unknown, …)
//! only slows the link down to a retry every few minutes, with everything kept. A pairing ends
//! when the desktop says `unpair` inside a meeting, or when the operator's `unpair` has been
//! delivered to the desktop sealed and acknowledged (then the link revokes it at the relay).

use crate::error::AgentError;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use clawtray_outbox::{Durability, Outbox};
use clawtray_proto::chat::{ToAgent, ToDesktop};
use clawtray_proto::control::ControlFrame;
use clawtray_proto::delivery::Delivery;
use clawtray_proto::endpoint::{Endpoint, Event};
use clawtray_proto::secret::{SecretKey, SecretString, StaticKeypair};
use clawtray_proto::Role;
use clawtray_transport::backoff::{unit_random, Backoff};
use clawtray_transport::heartbeat::{Beat, Heartbeat};
use clawtray_transport::paced::PacedSender;

use crate::state::Pairing;

/// Messages that may wait for one desktop.
pub const LINK_OUTBOX_CAPACITY: usize = 20_000;
/// How often an idle link pings the relay by default (a missed pong ends the connection).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
/// While the relay refuses the pairing, retries back off up to this (from `refused_retry`).
const REFUSED_MAX: Duration = Duration::from_secs(3600);

type Ws = clawtray_transport::Ws;

/// Orders from the hub.
#[derive(Debug)]
pub enum LinkCmd {
    /// Deliver this to the desktop (queued while it is away).
    Send(ToDesktop),
    /// Answer once everything sent before is stored in the outbox (it is, by the time the link
    /// reads this: `Send` persists before the next command is read). The hub forgets a finished
    /// run only after every link answered, so a kill in between loses no reply.
    Stored(tokio::sync::oneshot::Sender<()>),
    /// Tell the desktop the pairing ends (sealed); once it acknowledges, revoke the pairing at
    /// the relay and report [`HubEvent::PairingEnded`].
    Unpair,
    /// Stop (unpaired).
    Stop,
}

/// Reports to the hub.
#[derive(Debug)]
pub enum HubEvent {
    /// A message from the desktop, delivered once, in order. The hub answers on `stored` once
    /// the message is safe (persisted); only then does the link record it as received and
    /// acknowledge it, so an agent killed in between gets it again instead of losing it.
    FromDesktop {
        session: String,
        msg: ToAgent,
        stored: tokio::sync::oneshot::Sender<()>,
    },
    /// A meeting with the desktop is established.
    DesktopOnline { session: String },
    /// The desktop acknowledged the sealed `unpair`: the pairing is over on both ends.
    PairingEnded { session: String, reason: String },
}

/// Everything a link needs.
pub struct LinkConfig {
    pub pairing: Pairing,
    pub token: SecretString,
    pub key: StaticKeypair,
    pub instance: String,
    pub outbox_path: std::path::PathBuf,
    pub sealing_key: SecretKey,
    /// Heartbeat: ping this often; no pong by the next ping means a dead link.
    pub ping_interval: Duration,
    /// While the relay refuses the pairing, the first retry waits this long (doubling to 1 h).
    pub refused_retry: Duration,
}

/// Start a link; returns its command sender.
pub fn spawn(
    cfg: LinkConfig,
    hub: mpsc::Sender<HubEvent>,
) -> Result<mpsc::Sender<LinkCmd>, AgentError> {
    let desktop = cfg.pairing.desktop_key()?;
    let outbox: Outbox<ToDesktop> = Outbox::open(&cfg.outbox_path, &cfg.sealing_key)?;
    let (state, unreadable) = outbox.load()?;
    if unreadable > 0 {
        warn!(session = %cfg.pairing.session, unreadable, "some queued messages for a desktop could not be read back and were dropped");
    }
    let endpoint = Endpoint::new(
        Role::Agent,
        cfg.key.clone(),
        desktop,
        cfg.pairing.session.clone(),
        Delivery::restore(state, LINK_OUTBOX_CAPACITY),
    );
    let (tx, rx) = mpsc::channel(4096);
    let link = Link {
        cfg,
        hub,
        rx,
        endpoint,
        outbox,
        unpairing: false,
        refused: 0,
    };
    tokio::spawn(link.run());
    Ok(tx)
}

struct Link {
    cfg: LinkConfig,
    hub: mpsc::Sender<HubEvent>,
    rx: mpsc::Receiver<LinkCmd>,
    endpoint: Endpoint<ToDesktop, ToAgent>,
    outbox: Outbox<ToDesktop>,
    /// A sealed `unpair` was queued for the desktop; once it is no longer pending, the desktop
    /// has acknowledged it.
    unpairing: bool,
    /// Frames from the relay that failed to open (altered, replayed, reordered, forged).
    refused: u64,
}

enum Ended {
    Stop,
    /// The desktop acknowledged our `unpair` and the relay was told.
    Unpaired,
    /// The relay refuses the pairing (its word only: keep everything, retry slowly).
    Refused(String),
    Transient(String),
}

impl Link {
    fn session(&self) -> &str {
        &self.cfg.pairing.session
    }

    async fn run(mut self) {
        let mut backoff = Backoff::default();
        let mut refused_backoff = Backoff::new(self.cfg.refused_retry, REFUSED_MAX);
        loop {
            let ended = match self.connect().await {
                Ok(mut ws) => {
                    backoff.reset();
                    refused_backoff.reset();
                    let e = self.serve(&mut ws).await;
                    self.endpoint.peer_left();
                    e
                }
                Err(e) => e,
            };
            let wait = match ended {
                Ended::Stop => return,
                Ended::Unpaired => {
                    info!(session = %self.session(), "the desktop acknowledged the unpair");
                    let _ = self
                        .hub
                        .send(HubEvent::PairingEnded {
                            session: self.session().to_owned(),
                            reason: "unpaired on both ends".into(),
                        })
                        .await;
                    return;
                }
                Ended::Refused(reason) => {
                    let wait = refused_backoff.next_delay(unit_random());
                    warn!(session = %self.session(), desktop = %self.cfg.pairing.desktop_name, %reason, retry_in_s = wait.as_secs(),
                        "the relay refuses this pairing; it is kept (a relay cannot end a pairing). If the desktop was unpaired, remove it with `clawtray-agent unpair --now`");
                    wait
                }
                Ended::Transient(reason) => {
                    let wait = backoff.next_delay(unit_random());
                    info!(session = %self.session(), %reason, retry_in_ms = wait.as_millis() as u64, "relay link down");
                    wait
                }
            };
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = sleep_until(deadline) => break,
                    cmd = self.rx.recv() => match cmd {
                        None | Some(LinkCmd::Stop) => return,
                        Some(LinkCmd::Send(m)) => { let _ = self.enqueue(m); }
                        Some(LinkCmd::Stored(done)) => { let _ = done.send(()); }
                        Some(LinkCmd::Unpair) => { let _ = self.queue_unpair(); }
                    },
                }
            }
        }
    }

    /// Queue the sealed `unpair` once (an earlier run's copy still in the outbox counts).
    fn queue_unpair(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        if !self.unpair_pending() {
            info!(session = %self.session(), "telling the desktop the pairing ends");
            frames = self.enqueue(ToDesktop::Unpair);
        }
        // only an `unpair` that is really queued can be acknowledged (a full outbox drops it; the
        // hub asks again on its next look at the pairings)
        self.unpairing = self.unpair_pending();
        frames
    }

    /// Whether a sealed `unpair` waits for the desktop's acknowledgement.
    fn unpair_pending(&self) -> bool {
        self.endpoint
            .delivery()
            .pending()
            .any(|(_, m)| matches!(m, ToDesktop::Unpair))
    }

    async fn connect(&mut self) -> Result<Ws, Ended> {
        let mut url = url::Url::parse(&self.cfg.pairing.relay_url)
            .map_err(|e| Ended::Refused(format!("bad relay URL: {e}")))?;
        url.set_path("/v1/agent");
        url.query_pairs_mut()
            .clear()
            .append_pair("session", &self.cfg.pairing.session)
            .append_pair("instance", &self.cfg.instance);
        let opened = clawtray_transport::connect(
            url.as_str(),
            Some(self.cfg.token.expose()),
            clawtray_transport::RELAY_MAX_MESSAGE,
            Duration::from_secs(15),
        )
        .await;
        let mut ws = match opened {
            Ok(ws) => ws,
            Err(e @ clawtray_transport::ConnectError::Request(_)) => {
                return Err(Ended::Refused(e.to_string()))
            }
            Err(e) => return Err(Ended::Transient(format!("relay unreachable: {e}"))),
        };
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match ControlFrame::from_json(t.as_str()) {
                Ok(ControlFrame::Resumed { peer_online }) => {
                    debug!(session = %self.session(), peer_online, "relay link up");
                    Ok(ws)
                }
                Ok(ControlFrame::Error { code, message }) if code.is_permanent() => {
                    Err(Ended::Refused(format!("{code}: {message}")))
                }
                Ok(ControlFrame::Error { code, message }) => {
                    Err(Ended::Transient(format!("{code}: {message}")))
                }
                _ => Err(Ended::Transient(
                    "unexpected first frame from the relay".into(),
                )),
            },
            _ => Err(Ended::Transient("the relay did not answer".into())),
        }
    }

    /// Persist, then hand to the endpoint. Returns frames to transmit now.
    fn enqueue(&mut self, m: ToDesktop) -> Vec<Vec<u8>> {
        let seq = self.endpoint.delivery().next_seq();
        let durability = if m.is_stream_progress() {
            Durability::Written
        } else {
            Durability::Synced
        };
        if let Err(e) = self.outbox.enqueue_as(seq, &m, durability) {
            warn!(session = %self.session(), error = %e, "cannot persist a message for the desktop; it is kept in memory only");
        }
        match self.endpoint.send(m) {
            Ok((_, events)) => events
                .into_iter()
                .filter_map(|e| {
                    if let Event::Transmit(f) = e {
                        Some(f)
                    } else {
                        None
                    }
                })
                .collect(),
            Err(e) => {
                warn!(session = %self.session(), error = %e, "a message for the desktop was dropped");
                Vec::new()
            }
        }
    }

    async fn serve(&mut self, ws: &mut Ws) -> Ended {
        // a missed answer within one interval drops the link
        let mut heartbeat = Heartbeat::new(self.cfg.ping_interval, self.cfg.ping_interval);
        // every frame goes out in order through the pacer (see clawtray_proto::pacer)
        let mut out = PacedSender::new();
        loop {
            if out.send_ready(ws).await.is_err() {
                return Ended::Transient("write to the relay failed".into());
            }
            tokio::select! {
                () = out.due() => {}
                cmd = self.rx.recv() => match cmd {
                    None | Some(LinkCmd::Stop) => {
                        let _ = ws.close(None).await;
                        return Ended::Stop;
                    }
                    Some(LinkCmd::Send(m)) => {
                        for f in self.enqueue(m) {
                            out.push(f);
                        }
                    }
                    Some(LinkCmd::Stored(done)) => { let _ = done.send(()); }
                    Some(LinkCmd::Unpair) => {
                        for f in self.queue_unpair() {
                            out.push(f);
                        }
                    }
                },
                msg = ws.next() => {
                    heartbeat.heard();
                    match msg {
                        None | Some(Err(_)) => return Ended::Transient("relay connection lost".into()),
                        Some(Ok(Message::Text(t))) => match ControlFrame::from_json(t.as_str()) {
                            Ok(ControlFrame::PeerOffline) => self.endpoint.peer_left(),
                            Ok(ControlFrame::Error { code, message }) if code.is_permanent() => return Ended::Refused(format!("{code}: {message}")),
                            Ok(ControlFrame::Error { code, message }) => return Ended::Transient(format!("{code}: {message}")),
                            _ => {}
                        },
                        Some(Ok(Message::Binary(b))) => {
                            let events = self.endpoint.on_frame(&b);
                            if let Err(e) = self.handle(events, &mut out).await {
                                return e;
                            }
                            if let Some(f) = self.endpoint.flush_ack() {
                                out.push(f);
                            }
                            if self.unpair_acked() {
                                // the desktop has forgotten us: end the pairing at the relay too
                                let _ = ws.send(Message::text(ControlFrame::Revoke.to_json())).await;
                                let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
                                return Ended::Unpaired;
                            }
                        }
                        Some(Ok(Message::Close(_))) => return Ended::Transient("the relay closed the connection".into()),
                        Some(Ok(_)) => {}
                    }
                }
                beat = heartbeat.tick() => {
                    if beat == Beat::Dead {
                        return Ended::Transient("the relay stopped answering (dead link)".into());
                    }
                    if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                        return Ended::Transient("write to the relay failed".into());
                    }
                }
            }
        }
    }

    /// Whether the desktop has acknowledged our sealed `unpair`.
    fn unpair_acked(&self) -> bool {
        self.unpairing && !self.unpair_pending()
    }

    async fn handle(
        &mut self,
        events: Vec<Event<ToAgent>>,
        out: &mut PacedSender,
    ) -> Result<(), Ended> {
        for e in events {
            match e {
                Event::Transmit(f) => out.push(f),
                Event::Deliver { seq, body } => {
                    let (stored, safe) = tokio::sync::oneshot::channel();
                    let handed = self
                        .hub
                        .send(HubEvent::FromDesktop {
                            session: self.session().to_owned(),
                            msg: body,
                            stored,
                        })
                        .await;
                    if handed.is_err() || safe.await.is_err() {
                        // the hub is gone (shutting down): do not acknowledge what nobody kept
                        return Err(Ended::Stop);
                    }
                    if let Err(e) = self.outbox.set_delivered(seq) {
                        warn!(error = %e, "cannot record a delivered message");
                    }
                }
                Event::Acked(seqs) => {
                    if let Some(max) = seqs.iter().max() {
                        if let Err(e) = self.outbox.acked(*max) {
                            warn!(error = %e, "cannot update the outbox");
                        }
                    }
                }
                Event::Online => {
                    info!(session = %self.session(), "desktop online (new meeting)");
                    let _ = self
                        .hub
                        .send(HubEvent::DesktopOnline {
                            session: self.session().to_owned(),
                        })
                        .await;
                }
                Event::HandshakeFailed(e) => {
                    warn!(session = %self.session(), error = %e, "a desktop's handshake failed (wrong keys: possible attack, or the desktop lost its pairing)")
                }
                Event::Rejected(e) => {
                    // every refusal is counted and logged; a flood of them (a hostile relay owes
                    // us no rate limit) is logged at powers of two so the log stays readable
                    self.refused += 1;
                    if self.refused.is_power_of_two() {
                        warn!(session = %self.session(), refused = self.refused, error = %e,
                            "a frame from the relay was refused: altered, replayed, reordered or forged on the way; nothing it carried was used");
                    } else {
                        debug!(session = %self.session(), refused = self.refused, error = %e, "frame refused");
                    }
                }
                Event::MeetingBroken => {
                    warn!(session = %self.session(), "too many bad frames; waiting for the desktop to start a new meeting")
                }
            }
        }
        Ok(())
    }
}
