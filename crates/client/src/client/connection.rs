//! One relay connection, driven by the actor until it ends: resume the session at the relay, then
//! a loop over the person's commands, frames from the relay, the pacer, the heartbeat and the
//! [`Policy`](super::policy::Policy)'s next deadline. The endpoint's events become chat events, outbox records and
//! policy inputs; the policy's actions (start a meeting, tell the person, reconnect) are carried
//! out here.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tracing::{debug, info};

use clawtray_proto::chat::{ToAgent, ToDesktop};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::endpoint::Event;

use super::actor::{Actor, Outcome};
use super::config::UNPAIR_ACK_WAIT;
use super::handle::Command;
use super::policy::{Action, Input};
use crate::relay_url::RelayUrl;
use crate::state::{ClientEvent, ConnectionState, MessageState, PeerPresence};
use crate::wire::{self, Inbound, Ws};
use clawtray_outbox::Durability;
use clawtray_transport::heartbeat::{Beat, Heartbeat};
use clawtray_transport::paced::PacedSender;

impl Actor {
    /// Run one relay connection until it ends.
    pub(super) async fn connection(&mut self, preopened: Option<Ws>) -> Outcome {
        let (mut ws, peer_online) = match preopened {
            // a connection that just paired: the agent is there, waiting for the first meeting
            Some(ws) => (ws, true),
            None => match self.resume().await {
                Ok(resumed) => resumed,
                Err(o) => return o,
            },
        };
        self.backoff.reset();
        // frames waiting to go out, paced so a backlog never trips the relay's flood limits
        let mut out = PacedSender::new();
        if !peer_online {
            self.set_state(ConnectionState::Online {
                peer: PeerPresence::Away,
            });
        }
        if let Err(o) = self
            .steer([Input::Connected { peer_online }], &mut ws, &mut out)
            .await
        {
            return o;
        }
        let mut heartbeat = Heartbeat::new(self.config.ping_interval, self.config.pong_timeout);
        loop {
            if let Err(e) = out.send_ready(&mut ws).await {
                return Outcome::Transient(format!("connection lost: {e}"));
            }
            let due = self.policy.next_deadline();
            let step = tokio::select! {
                () = out.due() => Ok(()),
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return Outcome::Shutdown };
                    match self.online_command(cmd, &mut ws, &mut out).await {
                        Some(o) => Err(o),
                        None => {
                            let acks = self.acks(false);
                            self.steer([acks], &mut ws, &mut out).await
                        }
                    }
                }
                inbound = wire::recv(&mut ws) => {
                    heartbeat.heard();
                    self.on_inbound(inbound, &mut ws, &mut out).await
                }
                beat = heartbeat.tick() => {
                    if beat == Beat::Dead {
                        Err(Outcome::Transient("the relay stopped answering (dead link)".into()))
                    } else if wire::send_ping(&mut ws).await.is_err() {
                        Err(Outcome::Transient("connection lost".into()))
                    } else {
                        Ok(())
                    }
                }
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.steer([Input::Tick], &mut ws, &mut out).await
                }
            };
            if let Err(o) = step {
                return o;
            }
        }
    }

    /// Open the pairing's relay connection and resume the session: the open socket and whether
    /// the agent is there.
    async fn resume(&mut self) -> Result<(Ws, bool), Outcome> {
        let Some(p) = self.paired.as_ref() else {
            return Err(Outcome::Unpaired);
        };
        self.set_state(ConnectionState::Connecting);
        let relay = RelayUrl::parse(&p.info.relay_url, self.config.allow_insecure_relay)
            .map_err(Outcome::Refused)?;
        let url = relay.endpoint("/v1/desktop", &[("session", &p.info.session_id)]);
        let mut ws = wire::connect(&url, Some(p.token.expose()), self.config.connect_timeout)
            .await
            .map_err(|e| Outcome::Transient(format!("relay unreachable: {e}")))?;
        match wire::recv_within(&mut ws, self.config.connect_timeout).await {
            Ok(Inbound::Control(ControlFrame::Resumed { peer_online })) => Ok((ws, peer_online)),
            Ok(Inbound::Control(ControlFrame::Error { code, message })) => {
                Err(relay_error(code, message))
            }
            Ok(other) => Err(Outcome::Transient(format!(
                "unexpected answer from the relay: {other:?}"
            ))),
            Err(e) => Err(Outcome::Transient(format!("the relay did not answer: {e}"))),
        }
    }

    /// Feed the policy and carry out what it asks — and what that leads to, in order — until
    /// nothing is left to do.
    async fn steer(
        &mut self,
        inputs: impl IntoIterator<Item = Input>,
        ws: &mut Ws,
        out: &mut PacedSender,
    ) -> Result<(), Outcome> {
        let mut inputs: VecDeque<Input> = inputs.into_iter().collect();
        while let Some(input) = inputs.pop_front() {
            for action in self.policy.handle(input, Instant::now()) {
                match action {
                    Action::Notice(message) => self.notice(message),
                    Action::Reconnect(last_error) => return Err(Outcome::Transient(last_error)),
                    Action::StartMeeting => {
                        let Some(p) = self.paired.as_mut() else {
                            return Err(Outcome::Unpaired);
                        };
                        let events = p
                            .endpoint
                            .start_meeting()
                            .map_err(|e| Outcome::Transient(e.to_string()))?;
                        self.set_state(ConnectionState::Handshaking);
                        inputs.extend(self.handle_events(events, ws, out).await?);
                    }
                }
            }
        }
        Ok(())
    }

    /// Where acknowledgements stand, for the ack watchdog.
    fn acks(&self, progressed: bool) -> Input {
        let waiting = self
            .paired
            .as_ref()
            .is_some_and(|p| p.endpoint.is_online() && p.endpoint.delivery().unacked_len() > 0);
        Input::Acks {
            waiting,
            progressed,
        }
    }

    async fn on_inbound(
        &mut self,
        inbound: Inbound,
        ws: &mut Ws,
        out: &mut PacedSender,
    ) -> Result<(), Outcome> {
        match inbound {
            Inbound::Control(ControlFrame::PeerOnline | ControlFrame::PeerRestarted) => {
                self.steer([Input::PeerOnline], ws, out).await
            }
            Inbound::Control(ControlFrame::PeerOffline) => {
                if let Some(p) = self.paired.as_mut() {
                    p.endpoint.peer_left();
                }
                self.set_state(ConnectionState::Online {
                    peer: PeerPresence::Away,
                });
                self.steer([Input::PeerOffline], ws, out).await
            }
            Inbound::Control(ControlFrame::Error { code, message }) => {
                Err(relay_error(code, message))
            }
            Inbound::Control(_) => {
                // never log the frame itself: a `paired` frame carries a device token
                debug!("ignored an unexpected control frame");
                Ok(())
            }
            Inbound::Binary(b) => {
                let Some(p) = self.paired.as_mut() else {
                    return Err(Outcome::Unpaired);
                };
                let events = p.endpoint.on_frame(&b);
                let mut inputs = self.handle_events(events, ws, out).await?;
                if let Some(p) = self.paired.as_mut() {
                    if let Some(ack) = p.endpoint.flush_ack() {
                        out.push(ack);
                    }
                    if p.endpoint.wants_rekey() {
                        inputs.push(Input::MeetingWorn);
                    }
                }
                self.steer(inputs, ws, out).await
            }
            Inbound::Pong => Ok(()),
            Inbound::Closed(why) => Err(Outcome::Transient(format!(
                "connection to the relay lost: {why}"
            ))),
        }
    }

    /// Carry out the endpoint's events: frames to transmit, messages to record and show, acks;
    /// returns what the policy must hear of them.
    async fn handle_events(
        &mut self,
        events: Vec<Event<ToDesktop>>,
        ws: &mut Ws,
        out: &mut PacedSender,
    ) -> Result<Vec<Input>, Outcome> {
        let mut acked = false;
        let mut inputs = Vec::new();
        for e in events {
            match e {
                Event::Transmit(f) => out.push(f),
                Event::Deliver {
                    seq,
                    body: ToDesktop::Unpair,
                } => {
                    // the agent ended the pairing, sealed with the pinned keys: acknowledge it and
                    // forget. The agent revokes the session at the relay once it has the ack (a
                    // revoke from here could cut the ack off on its way).
                    info!("the agent ended the pairing");
                    if let Some(p) = self.paired.as_mut() {
                        let _ = p.outbox.set_delivered(seq);
                        if let Some(ack) = p.endpoint.flush_ack() {
                            let _ = wire::send_binary(ws, ack).await;
                        }
                    }
                    let _ = futures_util::SinkExt::close(ws).await;
                    return Err(Outcome::UnpairedByAgent);
                }
                Event::Deliver { seq, body } => self.deliver(seq, body),
                Event::Acked(seqs) => {
                    acked = true;
                    self.record_acks(&seqs);
                }
                Event::Online => {
                    self.set_state(ConnectionState::Online {
                        peer: PeerPresence::Online,
                    });
                    let resent: Vec<String> = self
                        .paired
                        .as_ref()
                        .map(|p| p.ids.values().cloned().collect())
                        .unwrap_or_default();
                    for id in resent {
                        self.emit(ClientEvent::Message {
                            id,
                            state: MessageState::Sent,
                        });
                    }
                    inputs.push(Input::MeetingOnline);
                }
                Event::Rejected(e) => {
                    let live = self.paired.as_ref().is_some_and(|p| p.endpoint.is_online());
                    inputs.push(Input::FrameRejected {
                        error: e.to_string(),
                        live,
                    });
                }
                Event::HandshakeFailed(e) => inputs.push(Input::HandshakeFailed(e.to_string())),
                Event::MeetingBroken => inputs.push(Input::MeetingBroken),
            }
        }
        inputs.push(self.acks(acked));
        Ok(inputs)
    }

    /// Record a message from the agent as received, and show it unless it is a run's ending
    /// already shown.
    fn deliver(&mut self, seq: u64, body: ToDesktop) {
        let mut fresh = true;
        if let Some(p) = self.paired.as_ref() {
            // a run's ending can come twice (an agent killed after queueing it asks the gateway
            // again after its restart): show it once
            let recorded = match body.ended_run() {
                Some(run) => p.outbox.set_delivered_once(seq, run).map(|f| fresh = f),
                None if body.is_stream_progress() => {
                    p.outbox.set_delivered_as(seq, Durability::Written)
                }
                None => p.outbox.set_delivered(seq),
            };
            if let Err(e) = recorded {
                self.notice(format!("could not record a received message: {e}"));
            }
        }
        if let ToDesktop::AgentStatus {
            files: Some(limits),
            ..
        } = &body
        {
            self.file_limits = *limits;
        }
        if fresh {
            self.emit(ClientEvent::Chat { message: body });
        } else {
            debug!("a run's ending arrived again; dropped");
        }
    }

    /// The agent acknowledged these of our messages: they leave the outbox and show delivered.
    fn record_acks(&mut self, seqs: &[u64]) {
        let Some(p) = self.paired.as_mut() else {
            return;
        };
        let stored = seqs.iter().max().map_or(Ok(()), |max| p.outbox.acked(*max));
        let ids: Vec<String> = seqs.iter().filter_map(|s| p.ids.remove(s)).collect();
        if let Err(e) = stored {
            self.notice(format!("could not update the outbox: {e}"));
        }
        for id in ids {
            self.emit(ClientEvent::Message {
                id,
                state: MessageState::Delivered,
            });
        }
    }

    async fn online_command(
        &mut self,
        cmd: Command,
        ws: &mut Ws,
        out: &mut PacedSender,
    ) -> Option<Outcome> {
        match cmd {
            Command::Shutdown => {
                let _ = futures_util::SinkExt::close(ws).await;
                Some(Outcome::Shutdown)
            }
            Command::ReconnectNow => Some(Outcome::Reconnect),
            Command::Unpair { reply } => {
                self.tell_agent_unpair(ws, out).await;
                let _ = wire::send_control(ws, &ControlFrame::Revoke).await;
                // the relay answers SESSION_REVOKED and closes; don't wait long for it
                let _ = wire::recv_within(ws, Duration::from_secs(2)).await;
                self.forget().await;
                self.set_state(ConnectionState::Unpaired);
                let _ = reply.send(());
                Some(Outcome::Reconnect)
            }
            other => {
                for e in self.queue_command(other) {
                    if let Event::Transmit(f) = e {
                        out.push(f); // a broken connection loses nothing: the outbox keeps it
                    }
                }
                None
            }
        }
    }

    /// When a meeting is live, send the sealed `unpair` and wait a little for the agent to
    /// acknowledge it, so the agent forgets this desktop too. (When the agent is away it is not
    /// told end to end; the relay's revocation makes it stop using the pairing, and its operator
    /// removes it with `clawtray-agent unpair`.)
    async fn tell_agent_unpair(&mut self, ws: &mut Ws, out: &mut PacedSender) {
        let Some(p) = self.paired.as_mut() else {
            return;
        };
        if !p.endpoint.is_online() {
            return;
        }
        let Ok((seq, events)) = p.endpoint.send(ToAgent::Unpair) else {
            return;
        };
        for e in events {
            if let Event::Transmit(f) = e {
                out.push(f);
            }
        }
        let deadline = Instant::now() + UNPAIR_ACK_WAIT;
        // the pacer may hold frames back: wait for their turn, within the deadline
        if !matches!(out.drain_until(ws, deadline).await, Ok(true)) {
            return;
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let b = match wire::recv_within(ws, left).await {
                Ok(Inbound::Binary(b)) => b,
                Ok(Inbound::Pong | Inbound::Control(_)) => continue,
                Ok(Inbound::Closed(_)) | Err(_) => return,
            };
            let Some(p) = self.paired.as_mut() else {
                return;
            };
            let acked = p
                .endpoint
                .on_frame(&b)
                .iter()
                .any(|e| matches!(e, Event::Acked(seqs) if seqs.contains(&seq)));
            if acked {
                debug!("the agent acknowledged the unpair");
                return;
            }
        }
    }
}

/// A relay error, as the connection's outcome.
fn relay_error(code: ErrorCode, message: String) -> Outcome {
    if code.is_permanent() {
        // the relay's word only: keep everything (see the module docs of `client`)
        Outcome::Refused(format!("{message} (the relay says {code})"))
    } else {
        Outcome::Transient(format!("{code}: {message}"))
    }
}
