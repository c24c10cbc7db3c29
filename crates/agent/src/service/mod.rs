//! `clawtray-agent run`: the hub. Keeps a relay link per paired desktop (picking up new pairings
//! and dropping removed ones), runs the gateway client, turns desktop messages into gateway calls
//! (`chat.send` with the desktop's message id as idempotency key, `chat.abort`, `chat.history`),
//! and fans the bridged gateway stream out to every desktop (one conversation, several screens).
//!
//! A chat message is kept (sealed, in `pending.sealed`) from the moment it is delivered until its
//! run has ended and every link has stored the ending in its outbox (see [`crate::turns`] and
//! [`Hub::settle`]), so a dead gateway or an agent restart loses nothing:
//! after a restart the agent sends it again (the gateway dedupes by idempotency key) and asks
//! `agent.wait` for the outcome of a run that ended while nobody listened.
//!
//! Exec approvals ([`approvals`]): the agent is the approver that is always online; it keeps the
//! waiting approvals, tells every desktop, and carries the first desktop answer to the gateway.

mod approvals;

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use clawtray_proto::chat::{ApprovalRequest, GatewayStatus, ToAgent, ToDesktop};
use clawtray_proto::secret::fill_random;

use crate::bridge::{history_messages, Bridge};
use crate::error::AgentError;
use crate::files;
use crate::gateway::calls::{AgentWait, ChatAbort, ChatHistory, ChatSend, WaitAnswer};
use crate::gateway::events::{HistoryAnswer, SessionEvent};
use crate::gateway::{GatewayClient, GatewayConfig, GatewayError, GatewayEvent, GatewayLink};
use crate::link::{self, HubEvent, LinkCmd, LinkConfig};
use crate::state::StateDir;
use crate::turns::{PendingSend, Turns};

/// How often the pairings file is checked for new or removed desktops.
pub const PAIRINGS_POLL: Duration = Duration::from_secs(2);
/// Typing indicator safety: off after this long without news.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one `agent.wait` call may block in the gateway (asked again while the run goes on).
const WAIT_SLICE_MS: u64 = 20_000;
/// The live `final` event normally follows the run's end by milliseconds; `agent.wait` answers
/// at the end itself. Its answer is held this long so the live event (same text) wins when the
/// agent was listening, and the wait only fills in for a run that ended while it was not.
const LIVE_GRACE: Duration = Duration::from_secs(1);

/// What `run` needs.
pub struct ServiceConfig {
    pub state: StateDir,
    pub gateway: GatewayConfig,
    pub session_key: String,
    /// Relay heartbeat of each desktop link.
    pub ping_interval: Duration,
    /// While the relay refuses a pairing, the first retry waits this long (then doubles to 1 h).
    pub refused_retry: Duration,
}

enum Done {
    Sent {
        id: String,
        run_id: String,
    },
    /// `agent.wait` says the run ended; `msg` is its ending for the desktops.
    Ended {
        run_id: String,
        msg: ToDesktop,
    },
    SendFailed {
        desktop: String,
        id: String,
        error: GatewayError,
    },
    Reply {
        desktop: String,
        msg: ToDesktop,
    },
    /// Try the head of the queue again (after a failed send).
    Retry,
    /// Every link stored the ending of message `id` in its outbox: forget the message.
    EndingStored {
        id: String,
    },
    /// `exec.approval.list` answered (after a gateway (re)connection).
    ApprovalsListed(Result<Vec<ApprovalRequest>, GatewayError>),
    /// `exec.approval.resolve` answered a desktop's decision.
    ApprovalDecided {
        desktop: String,
        id: String,
        result: Result<(), GatewayError>,
    },
}

fn instance_id() -> String {
    let mut b = [0u8; 12];
    let _ = fill_random(&mut b);
    hex::encode(b)
}

struct Hub {
    state: StateDir,
    gw: GatewayClient,
    bridge: Bridge,
    links: HashMap<String, mpsc::Sender<LinkCmd>>,
    hub_tx: mpsc::Sender<HubEvent>,
    done_tx: mpsc::Sender<Done>,
    turns: Turns,
    /// The run in progress, for the `agent.wait` task following it (it stops when this changes).
    running: watch::Sender<Option<String>>,
    instance: String,
    ping_interval: Duration,
    refused_retry: Duration,
    /// When the bridge last had something for desktops (the typing indicator's watchdog).
    last_news: Instant,
    /// Exec approvals waiting for a desktop's answer.
    approvals: crate::approvals::Approvals,
    /// Answers given while the gateway was away: (desktop, approval id, decision).
    held_decisions: Vec<(String, String, clawtray_proto::chat::ApprovalDecision)>,
}

impl Hub {
    /// One event from the gateway client: a (re)connection, a loss, or a session event.
    fn on_gateway_event(&mut self, ev: GatewayEvent) {
        match ev {
            GatewayEvent::Connected { .. } => {
                let mut out = self.bridge.reset("the agent reconnected to its gateway");
                out.extend(self.gateway_status());
                self.forward(out);
                self.drive();
                self.backfill_approvals();
            }
            GatewayEvent::Disconnected { reason } => {
                let why = format!("the agent lost its gateway ({reason})");
                let mut out = self.bridge.reset(&why);
                let lost = self.turns.gateway_lost();
                if let Some((run, _)) = &lost {
                    if !out.iter().any(|m| m.ended_run() == Some(run.as_str())) {
                        out.push(ToDesktop::ChatError {
                            run_id: Some(run.clone()),
                            message: format!("the reply was interrupted: {why}"),
                        });
                    }
                    self.set_running();
                }
                out.push(ToDesktop::AgentStatus {
                    gateway: GatewayStatus::Disconnected,
                });
                // the run's ending is already remembered: pass everything as is
                self.to_all(out);
                if let Some((_, id)) = lost {
                    self.settle(id);
                }
            }
            GatewayEvent::Event { name, payload } if approvals::is_approval_event(&name) => {
                self.on_approval_event(&name, &payload);
            }
            GatewayEvent::Event { name, payload } => match SessionEvent::parse(&name, payload) {
                Ok(Some(ev)) => {
                    let out = self.bridge.on_event(&ev);
                    if !out.is_empty() {
                        self.last_news = Instant::now();
                        self.forward(out);
                    }
                }
                Ok(None) => {}
                Err(error) => warn!(%error, "a gateway event was skipped"),
            },
        }
    }

    fn to_all(&self, msgs: Vec<ToDesktop>) {
        for m in msgs {
            for tx in self.links.values() {
                if tx.try_send(LinkCmd::Send(m.clone())).is_err() {
                    warn!("a desktop link is not keeping up; a message was dropped");
                }
            }
        }
    }

    /// Once every link has stored what was sent to it so far (the ending of message `id`),
    /// report [`Done::EndingStored`]. A link that is gone or stops answers as stored: nothing
    /// more can reach it.
    fn settle(&self, id: String) {
        let waits: Vec<_> = self
            .links
            .values()
            .map(|tx| {
                let (stored, wait) = tokio::sync::oneshot::channel();
                if let Err(mpsc::error::TrySendError::Full(cmd)) =
                    tx.try_send(LinkCmd::Stored(stored))
                {
                    // a barrier may come late, never early: wait for room
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(cmd).await;
                    });
                }
                wait
            })
            .collect();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            for w in waits {
                let _ = w.await;
            }
            let _ = done.send(Done::EndingStored { id }).await;
        });
    }

    fn to_one(&self, desktop: &str, m: ToDesktop) {
        if let Some(tx) = self.links.get(desktop) {
            let _ = tx.try_send(LinkCmd::Send(m));
        }
    }

    /// The gateway's state for a desktop — none while the first connection is still being made
    /// (that is "connecting", not "unreachable"; the `Connected` event tells everyone shortly).
    fn gateway_status(&self) -> Option<ToDesktop> {
        let gateway = match self.gw.link() {
            GatewayLink::Connecting => return None,
            GatewayLink::Connected => GatewayStatus::Connected,
            GatewayLink::Down => GatewayStatus::Disconnected,
        };
        Some(ToDesktop::AgentStatus { gateway })
    }

    fn save_pending(&self) {
        if let Err(e) = self.state.save_pending(&self.turns.entries()) {
            warn!("cannot persist pending messages: {e}");
        }
    }

    fn set_running(&self) {
        let now = self.turns.running().map(str::to_owned);
        self.running.send_if_modified(|r| {
            let changed = *r != now;
            *r = now;
            changed
        });
    }

    /// Send bridged gateway output on, finishing the head's run when its ending passes and
    /// dropping a second ending of a run that already ended here.
    fn forward(&mut self, out: Vec<ToDesktop>) {
        let mut pass = Vec::with_capacity(out.len());
        let mut finished = Vec::new();
        for m in out {
            if let Some(run) = m.ended_run() {
                if self.turns.is_finished(run) {
                    debug!(run_id = %run, "a second ending of a run was dropped");
                    continue;
                }
                finished.extend(self.turns.finish(run).map(|p| p.id));
                debug!(run_id = %run, "a run ended (live event)");
            }
            pass.push(m);
        }
        self.to_all(pass);
        if !finished.is_empty() {
            for id in finished {
                self.settle(id);
            }
            self.set_running();
            self.drive();
        }
    }

    /// Stop a pairing's link and forget the pairing, its token and its outbox.
    fn end_pairing(&mut self, session: &str) {
        if let Some(tx) = self.links.remove(session) {
            let _ = tx.try_send(LinkCmd::Stop);
        }
        if let Err(e) = self.state.remove_pairing(session) {
            warn!("{e}");
        }
    }

    /// Start links for new pairings, stop links for removed ones, and hand an operator's
    /// `unpair` to the link that tells the desktop.
    fn reconcile_links(&mut self) {
        let pairings = match self.state.pairings() {
            Ok(p) => p,
            Err(e) => {
                warn!("{e}");
                return;
            }
        };
        self.links.retain(|session, tx| {
            let keep = pairings.iter().any(|p| &p.session == session);
            if !keep {
                info!(%session, "pairing removed; stopping its link");
                let _ = tx.try_send(LinkCmd::Stop);
            }
            keep
        });
        for p in pairings {
            if let Some(tx) = self.links.get(&p.session) {
                if p.unpair_requested {
                    let _ = tx.try_send(LinkCmd::Unpair);
                }
                continue;
            }
            let token = match self.state.token(&p.session) {
                Ok(Some(t)) => t,
                Ok(None) => {
                    warn!(session = %p.session, "no device token for this pairing; pair again");
                    continue;
                }
                Err(e) => {
                    warn!("{e}");
                    continue;
                }
            };
            let cfg = match (self.state.static_key(), self.state.sealing_key()) {
                (Ok(key), Ok(sealing_key)) => LinkConfig {
                    outbox_path: self.state.outbox_path(&p.session),
                    pairing: p.clone(),
                    token,
                    key,
                    instance: self.instance.clone(),
                    sealing_key,
                    ping_interval: self.ping_interval,
                    refused_retry: self.refused_retry,
                },
                (Err(e), _) | (_, Err(e)) => {
                    warn!("{e}");
                    continue;
                }
            };
            match link::spawn(cfg, self.hub_tx.clone()) {
                Ok(tx) => {
                    info!(session = %p.session, desktop = %p.desktop_name, "serving paired desktop");
                    if p.unpair_requested {
                        let _ = tx.try_send(LinkCmd::Unpair);
                    }
                    self.links.insert(p.session.clone(), tx);
                }
                Err(e) => warn!(session = %p.session, "cannot start the link: {e}"),
            }
        }
    }

    /// Hand the head of the queue to the gateway if nothing is asked of it yet.
    fn drive(&mut self) {
        if !self.gw.is_connected() {
            return;
        }
        let Some(PendingSend {
            desktop, id, text, ..
        }) = self.turns.next_to_send()
        else {
            return;
        };
        let (gw, done, key) = (
            self.gw.clone(),
            self.done_tx.clone(),
            self.bridge.session_key().to_owned(),
        );
        tokio::spawn(async move {
            let r = gw
                .chat_send(&ChatSend {
                    session_key: &key,
                    message: &text,
                    idempotency_key: &id,
                    queue_mode: "followup",
                })
                .await;
            let _ = done
                .send(match r {
                    Ok(sent) => Done::Sent {
                        run_id: sent.run_id.unwrap_or_else(|| id.clone()),
                        id,
                    },
                    Err(error) => Done::SendFailed { desktop, id, error },
                })
                .await;
        });
    }

    /// Follow run `run_id` with `agent.wait` until it ends or stops being the run in progress.
    fn follow(&self, run_id: String) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        let key = self.bridge.session_key().to_owned();
        let mut running = self.running.subscribe();
        tokio::spawn(async move {
            let still_ours = |r: &watch::Receiver<Option<String>>| {
                r.borrow().as_deref() == Some(run_id.as_str())
            };
            while still_ours(&running) {
                let params = AgentWait {
                    run_id: &run_id,
                    timeout_ms: WAIT_SLICE_MS,
                };
                let asked = gw.agent_wait(&params);
                let answer = tokio::select! {
                    a = asked => a,
                    _ = running.changed() => continue,
                };
                match answer {
                    Ok(v) => {
                        let mut ended = wait_outcome(&run_id, &v);
                        if ended.is_none() {
                            // the gateway may have forgotten a run that ended long ago (its
                            // dedupe still answers `ok`): its reply is in the transcript
                            ended = reply_in_history(&gw, &key, &run_id).await;
                        }
                        if let Some(msg) = ended {
                            tokio::time::sleep(LIVE_GRACE).await;
                            let _ = done.send(Done::Ended { run_id, msg }).await;
                            return;
                        }
                    }
                    // the gateway connection is gone: `gateway_lost` ends the run
                    Err(GatewayError::NotConnected | GatewayError::Closed) => return,
                    Err(e) => {
                        warn!(error = %e, "agent.wait failed; asking again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// Carry out a desktop's `ask` at the gateway; answer the desktop with the history, or with a
    /// sentence when it failed.
    fn ask_then_reply(&self, desktop: String, ask: DesktopAsk) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        let key = self.bridge.session_key().to_owned();
        tokio::spawn(async move {
            let failed = |what: &str, e: GatewayError| ToDesktop::ChatError {
                run_id: None,
                message: format!("the agent could not {what}: {e}"),
            };
            let msg = match ask {
                DesktopAsk::Abort { run_id } => {
                    let asked = ChatAbort {
                        session_key: &key,
                        run_id: &run_id,
                    };
                    match gw.chat_abort(&asked).await {
                        // the run's ending comes as a gateway event
                        Ok(()) => return,
                        Err(e) => failed("stop the reply", e),
                    }
                }
                DesktopAsk::History { limit } => {
                    let asked = ChatHistory {
                        session_key: &key,
                        limit,
                    };
                    match gw.chat_history(&asked).await {
                        Ok(v) => ToDesktop::History {
                            messages: history_messages(&v),
                        },
                        Err(e) => failed("load the history", e),
                    }
                }
            };
            let _ = done.send(Done::Reply { desktop, msg }).await;
        });
    }

    fn on_hub_event(&mut self, ev: HubEvent) {
        match ev {
            HubEvent::FromDesktop {
                session,
                msg,
                stored,
            } => match msg {
                ToAgent::Chat { id, text, .. } => {
                    if self.turns.push(&session, &id, &text) {
                        self.save_pending();
                        debug!(%id, waiting = self.turns.len(), "a desktop message is kept");
                    } else {
                        debug!(%id, "a desktop message came again; already kept");
                    }
                    let _ = stored.send(());
                    if self.gw.is_connected() {
                        self.drive();
                    } else if self.gw.link() == GatewayLink::Down {
                        let note = ToDesktop::ChatError { run_id: None, message: "the agent cannot reach its OpenClaw gateway right now; your message is kept and will be sent when it is back".into() };
                        self.to_one(&session, note);
                    }
                }
                ToAgent::ChatAbort { run_id } => {
                    let _ = stored.send(());
                    self.ask_then_reply(session, DesktopAsk::Abort { run_id });
                }
                ToAgent::ChatHistory { limit, .. } => {
                    let _ = stored.send(());
                    let limit = limit.clamp(1, 500);
                    self.ask_then_reply(session, DesktopAsk::History { limit });
                }
                ToAgent::ApprovalDecide { id, decision } => {
                    let _ = stored.send(());
                    self.on_decision(session, id, decision);
                }
                ToAgent::ApprovalList => {
                    let _ = stored.send(());
                    let pending = self.approvals.pending();
                    self.to_one(&session, ToDesktop::Approvals { pending });
                }
                ToAgent::Unpair => {
                    // sealed with the pinned desktop key: the desktop itself ended the pairing
                    let _ = stored.send(());
                    info!(%session, "the desktop ended the pairing; forgetting it");
                    self.end_pairing(&session);
                }
            },
            HubEvent::DesktopOnline { session } => {
                if let Some(status) = self.gateway_status() {
                    self.to_one(&session, status);
                }
            }
            HubEvent::PairingEnded { session, reason } => {
                info!(%session, %reason, "pairing ended; forgetting it");
                self.end_pairing(&session);
            }
        }
    }

    fn on_done(&mut self, d: Done) {
        match d {
            Done::Sent { id, run_id } => {
                debug!(%id, %run_id, "the gateway runs a desktop message");
                if self.turns.sent(&id, &run_id) {
                    self.save_pending();
                    self.set_running();
                    self.to_all(vec![ToDesktop::ChatAck {
                        id,
                        run_id: run_id.clone(),
                    }]);
                    self.follow(run_id);
                }
            }
            Done::Ended { run_id, msg } => {
                if let Some(p) = self.turns.finish(&run_id) {
                    self.set_running();
                    info!(%run_id, "a run ended while the agent was not listening; its outcome came from agent.wait");
                    self.to_all(vec![msg]);
                    self.settle(p.id);
                    self.drive();
                }
            }
            Done::EndingStored { id } => {
                if self.turns.ending_stored(&id) {
                    self.save_pending();
                }
            }
            Done::SendFailed { desktop, id, error } => {
                let retry_later = matches!(
                    error,
                    GatewayError::NotConnected | GatewayError::Closed | GatewayError::Timeout(_)
                ) || matches!(
                    &error,
                    GatewayError::Gateway {
                        retryable: true,
                        ..
                    }
                );
                if retry_later {
                    self.turns.send_failed(&id);
                    warn!(%error, "chat.send failed; will try again");
                    let done = self.done_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = done.send(Done::Retry).await;
                    });
                } else {
                    warn!(%error, "the gateway refused a desktop's message; it was dropped and the desktop told");
                    let refused = self.turns.refused(&id);
                    self.to_one(
                        &desktop,
                        // run ids are message ids here: this ends the message's turn
                        ToDesktop::ChatError {
                            run_id: Some(id),
                            message: format!("the gateway refused the message: {error}"),
                        },
                    );
                    if let Some(p) = refused {
                        self.settle(p.id);
                    }
                    self.drive();
                }
            }
            Done::Reply { desktop, msg } => self.to_one(&desktop, msg),
            Done::Retry => self.drive(),
            Done::ApprovalsListed(listed) => self.on_approvals_listed(listed),
            Done::ApprovalDecided {
                desktop,
                id,
                result,
            } => self.on_decided(&desktop, &id, result),
        }
    }
}

/// Run until `shutdown` resolves.
pub async fn run(
    cfg: ServiceConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let _lock = cfg.state.lock_for_service()?; // one agent per state dir, held until we return
    cfg.state.static_key()?; // create the key before anything else
    let swept = files::remove_orphan_temps(cfg.state.path());
    if swept > 0 {
        info!(
            files = swept,
            "removed temp files a killed agent left in the state dir"
        );
    }
    let (gw, mut gw_events) = GatewayClient::start(cfg.gateway)?;
    let (hub_tx, mut hub_rx) = mpsc::channel(4096);
    let (done_tx, mut done_rx) = mpsc::channel(1024);
    let pending: Vec<PendingSend> = cfg.state.load_pending()?;
    if !pending.is_empty() {
        info!(
            waiting = pending.len(),
            "resuming desktop messages kept by the last run"
        );
    }
    // approvals the last run held: the gateway's list (after connecting) says what became of them
    let approvals_kept: Vec<ApprovalRequest> = cfg.state.load_approvals()?;
    let mut hub = Hub {
        state: cfg.state,
        gw,
        bridge: Bridge::new(&cfg.session_key),
        links: HashMap::new(),
        hub_tx,
        done_tx,
        turns: Turns::new(pending),
        running: watch::channel(None).0,
        instance: instance_id(),
        ping_interval: cfg.ping_interval,
        refused_retry: cfg.refused_retry,
        last_news: Instant::now(),
        approvals: crate::approvals::Approvals::restore(approvals_kept),
        held_decisions: Vec::new(),
    };
    hub.reconcile_links();
    info!(desktops = hub.links.len(), "clawtray-agent running");
    let mut poll = tokio::time::interval(PAIRINGS_POLL);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            ev = gw_events.recv() => match ev {
                    Ok(ev) => hub.on_gateway_event(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => warn!(n, "gateway events were dropped (the agent fell behind)"),
                Err(broadcast::error::RecvError::Closed) => return Err(GatewayError::Closed.into()),
            },
            Some(ev) = hub_rx.recv() => hub.on_hub_event(ev),
            Some(d) = done_rx.recv() => hub.on_done(d),
            _ = poll.tick() => {
                hub.reconcile_links();
                hub.expire_approvals();
                if hub.bridge.typing() && hub.last_news.elapsed() > TYPING_TIMEOUT {
                    let out = hub.bridge.typing_timed_out();
                    hub.to_all(out);
                }
            }
        }
    }
    for tx in hub.links.values() {
        let _ = tx.try_send(LinkCmd::Stop);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// How far back the transcript is searched for a run's reply.
const HISTORY_LOOKBACK: u32 = 50;

/// The reply run `run_id` left in the session's transcript, if it finished.
async fn reply_in_history(gw: &GatewayClient, key: &str, run_id: &str) -> Option<ToDesktop> {
    let h = gw
        .chat_history(&ChatHistory {
            session_key: key,
            limit: HISTORY_LOOKBACK,
        })
        .await
        .ok()?;
    reply_of_run(&h, run_id)
}

/// The assistant message of `run_id` in a `chat.history` answer (`__openclaw.runId`).
fn reply_of_run(history: &HistoryAnswer, run_id: &str) -> Option<ToDesktop> {
    let m = history
        .messages
        .iter()
        .rev()
        .find(|m| m.role.as_deref() == Some("assistant") && m.run_id() == Some(run_id))?;
    Some(ToDesktop::ChatReply {
        run_id: run_id.to_owned(),
        text: m.text()?,
    })
}

/// The desktops' view of an `agent.wait` answer, or `None` while the run goes on.
fn wait_outcome(run_id: &str, v: &WaitAnswer) -> Option<ToDesktop> {
    let run_id = run_id.to_owned();
    match v.status.as_deref() {
        Some("ok") => Some(ToDesktop::ChatReply {
            run_id,
            text: v
                .terminal_reply
                .as_ref()
                .and_then(|t| t.text.clone())
                .unwrap_or_default(),
        }),
        Some("aborted" | "cancelled" | "killed") => Some(ToDesktop::ChatAborted { run_id }),
        Some("timeout" | "pending") | None => None,
        Some(other) => Some(ToDesktop::ChatError {
            run_id: Some(run_id),
            message: v
                .error
                .clone()
                .unwrap_or_else(|| format!("the agent's run ended: {other}")),
        }),
    }
}

/// What a desktop asked of the gateway besides a chat message.
enum DesktopAsk {
    Abort { run_id: String },
    History { limit: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_runs_reply_is_found_in_the_transcript() {
        let h = json!({"messages": [
            {"role": "user", "content": "hi", "idempotencyKey": "r:user"},
            {"role": "assistant", "__openclaw": {"runId": "r"}, "content": [{"type": "text", "text": "ok: w1"}]},
            {"role": "assistant", "__openclaw": {"runId": "other"}, "content": [{"type": "text", "text": "no"}]}
        ]});
        let h = serde_json::from_value(h).unwrap();
        assert_eq!(
            reply_of_run(&h, "r"),
            Some(ToDesktop::ChatReply {
                run_id: "r".into(),
                text: "ok: w1".into()
            })
        );
        assert_eq!(reply_of_run(&h, "missing"), None);
    }

    #[test]
    fn wait_answers_become_endings() {
        let wait_outcome = |run: &str, v: &Value| {
            super::wait_outcome(run, &serde_json::from_value(v.clone()).unwrap())
        };
        let ok = json!({"runId":"r","status":"ok","terminalReply":{"disposition":"visible","text":"ok A: w1"}});
        assert_eq!(
            wait_outcome("r", &ok),
            Some(ToDesktop::ChatReply {
                run_id: "r".into(),
                text: "ok A: w1".into()
            })
        );
        let pending = json!({"runId":"r","status":"pending","timeoutPhase":"queue"});
        assert_eq!(wait_outcome("r", &pending), None);
        assert_eq!(wait_outcome("r", &json!({"status":"timeout"})), None);
        assert_eq!(
            wait_outcome("r", &json!({"status":"aborted"})),
            Some(ToDesktop::ChatAborted { run_id: "r".into() })
        );
        assert!(matches!(
            wait_outcome("r", &json!({"status":"error","error":"model down"})),
            Some(ToDesktop::ChatError { message, .. }) if message == "model down"
        ));
    }
}
