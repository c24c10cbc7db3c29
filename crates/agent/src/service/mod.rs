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
mod attachments;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use clawtray_proto::chat::{ApprovalRequest, GatewayStatus, SessionSummary, ToAgent, ToDesktop};
use clawtray_proto::files::{Attachment, FileLimits};
use clawtray_proto::secret::fill_random;

use crate::bridge::{canonical_session, history_messages, Bridge};
use crate::error::AgentError;
use crate::files;
use crate::gateway::calls::{
    AgentWait, ChatAbort, ChatHistory, ChatSend, SessionRow, SessionsList, WaitAnswer,
};
use crate::gateway::events::{HistoryAnswer, SessionEvent};
use crate::gateway::{GatewayClient, GatewayConfig, GatewayError, GatewayEvent, GatewayLink};
use crate::link::{self, HubEvent, LinkCmd, LinkConfig};
use crate::received_files::{ReceivedFiles, ORPHAN_AFTER};
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
        session: String,
        desktop: String,
        id: String,
        run_id: String,
        /// Its files: the gateway has them now.
        attachments: Vec<Attachment>,
    },
    /// `agent.wait` says the run ended; `msg` is its ending for the desktops.
    Ended {
        session: String,
        run_id: String,
        msg: ToDesktop,
    },
    SendFailed {
        session: String,
        desktop: String,
        id: String,
        error: GatewayError,
        attachments: Vec<Attachment>,
    },
    /// The files of message `id` cannot be used (`message` says why): it ends with that.
    FilesUnusable {
        session: String,
        desktop: String,
        id: String,
        attachments: Vec<Attachment>,
        message: String,
    },
    Reply {
        desktop: String,
        msg: ToDesktop,
    },
    /// Try the head of a session's queue again (after a failed send).
    Retry {
        session: String,
    },
    /// Every link stored the ending of message `id` in its outbox: forget the message.
    EndingStored {
        session: String,
        id: String,
    },
    /// `sessions.list` answered: for one desktop that asked, or (`None`) after a change.
    SessionsListed {
        to: Option<String>,
        result: Result<Vec<SessionSummary>, GatewayError>,
    },
    /// The sessions changed a moment ago: list them again.
    RefreshSessions,
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

/// One gateway session the agent serves: its bridge, its queue of desktop messages (one run at
/// a time per session), the run its `agent.wait` follows, and when it last had news.
struct Conversation {
    bridge: Bridge,
    turns: Turns,
    /// The run in progress, for the `agent.wait` task following it (it stops when this changes).
    running: watch::Sender<Option<String>>,
    /// When the bridge last had something for desktops (the typing indicator's watchdog).
    last_news: Instant,
}

impl Conversation {
    fn new(key: &str, tag: Option<&str>, pending: Vec<PendingSend>) -> Self {
        Self {
            bridge: Bridge::new(key),
            turns: Turns::for_session(tag.map(str::to_owned), pending),
            running: watch::channel(None).0,
            last_news: Instant::now(),
        }
    }

    /// Nothing waits, streams or settles here: it may be dropped (the gateway keeps the rest).
    fn is_idle(&self) -> bool {
        self.turns.is_empty() && self.bridge.runs_in_flight() == 0 && !self.bridge.typing()
    }

    fn set_running(&self) {
        let now = self.turns.running().map(str::to_owned);
        self.running.send_if_modified(|r| {
            let changed = *r != now;
            *r = now;
            changed
        });
    }
}

/// Idle sessions kept beyond this many are dropped (they come back on their next event).
const MAX_IDLE_CONVERSATIONS: usize = 64;
/// How many sessions a desktop is shown.
const SESSIONS_SHOWN: u32 = 100;
/// `sessions.changed` comes in bursts (every phase of a run): list once per this.
const SESSIONS_SETTLE: Duration = Duration::from_millis(700);

struct Hub {
    state: StateDir,
    gw: GatewayClient,
    /// The default session's key (short form): its messages carry no `session`.
    default_key: String,
    /// The sessions with something going on, by short key.
    convs: HashMap<String, Conversation>,
    links: HashMap<String, mpsc::Sender<LinkCmd>>,
    hub_tx: mpsc::Sender<HubEvent>,
    done_tx: mpsc::Sender<Done>,
    instance: String,
    ping_interval: Duration,
    refused_retry: Duration,
    /// The session list last sent to desktops, and whether a new listing is on its way.
    sessions_shown: Vec<SessionSummary>,
    sessions_refreshing: bool,
    /// Exec approvals waiting for a desktop's answer.
    approvals: crate::approvals::Approvals,
    /// Answers given while the gateway was away: (desktop, approval id, decision).
    held_decisions: Vec<(String, String, clawtray_proto::chat::ApprovalDecision)>,
    /// Parts of files on their way to the gateway.
    received: Arc<ReceivedFiles>,
    /// What files the gateway takes (its defaults until it says).
    file_limits: FileLimits,
}

impl Hub {
    /// The short key of the session a desktop names (`None`: the default one).
    fn key_of(&self, session: Option<&str>) -> String {
        canonical_session(session.unwrap_or(&self.default_key)).to_owned()
    }

    /// How messages of session `key` are marked for desktops (`None`: the default session).
    fn tag<'a>(&self, key: &'a str) -> Option<&'a str> {
        (key != self.default_key).then_some(key)
    }

    fn conv(&mut self, key: &str) -> &mut Conversation {
        let default_key = &self.default_key;
        self.convs.entry(key.to_owned()).or_insert_with(|| {
            let tag = (key != default_key.as_str()).then_some(key);
            Conversation::new(key, tag, Vec::new())
        })
    }

    fn tagged(&self, key: &str, msgs: Vec<ToDesktop>) -> Vec<ToDesktop> {
        let tag = self.tag(key);
        msgs.into_iter().map(|m| m.in_session(tag)).collect()
    }

    /// One event from the gateway client: a (re)connection, a loss, or a session event.
    fn on_gateway_event(&mut self, ev: GatewayEvent) {
        match ev {
            GatewayEvent::Connected { files, .. } => {
                self.file_limits = files;
                let keys: Vec<String> = self.convs.keys().cloned().collect();
                for key in &keys {
                    let out = self
                        .conv(key)
                        .bridge
                        .reset("the agent reconnected to its gateway");
                    let out = self.tagged(key, out);
                    self.forward(key, out);
                }
                if let Some(status) = self.gateway_status() {
                    self.to_all(vec![status]);
                }
                for key in &keys {
                    self.drive(key);
                }
                self.backfill_approvals();
                self.subscribe_sessions();
            }
            GatewayEvent::Disconnected { reason } => {
                let why = format!("the agent lost its gateway ({reason})");
                let keys: Vec<String> = self.convs.keys().cloned().collect();
                for key in keys {
                    let conv = self.conv(&key);
                    let mut out = conv.bridge.reset(&why);
                    let lost = conv.turns.gateway_lost();
                    if let Some((run, _)) = &lost {
                        if !out.iter().any(|m| m.ended_run() == Some(run.as_str())) {
                            out.push(ToDesktop::ChatError {
                                session: None,
                                run_id: Some(run.clone()),
                                message: format!("the reply was interrupted: {why}"),
                            });
                        }
                        conv.set_running();
                    }
                    // the run's ending is already remembered: pass everything as is
                    let out = self.tagged(&key, out);
                    self.to_all(out);
                    if let Some((_, id)) = lost {
                        self.settle(&key, id);
                    }
                }
                self.to_all(vec![ToDesktop::AgentStatus {
                    files: None,
                    gateway: GatewayStatus::Disconnected,
                }]);
            }
            GatewayEvent::Event { name, payload } if approvals::is_approval_event(&name) => {
                self.on_approval_event(&name, &payload);
            }
            GatewayEvent::Event { name, .. } if name == SESSIONS_CHANGED => {
                self.sessions_changed();
            }
            GatewayEvent::Event { name, payload } => match SessionEvent::parse(&name, payload) {
                Ok(Some(ev)) => {
                    let Some(key) = ev.session_key().map(|k| canonical_session(k).to_owned())
                    else {
                        return;
                    };
                    let conv = self.conv(&key);
                    let out = conv.bridge.on_event(&ev);
                    if !out.is_empty() {
                        conv.last_news = Instant::now();
                        let out = self.tagged(&key, out);
                        self.forward(&key, out);
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

    /// Once every link has stored what was sent to it so far (the ending of message `id` of
    /// session `key`), report [`Done::EndingStored`]. A link that is gone or stops answers as
    /// stored: nothing more can reach it.
    fn settle(&self, key: &str, id: String) {
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
        let (done, session) = (self.done_tx.clone(), key.to_owned());
        tokio::spawn(async move {
            for w in waits {
                let _ = w.await;
            }
            let _ = done.send(Done::EndingStored { session, id }).await;
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
        Some(ToDesktop::AgentStatus {
            files: Some(self.file_limits),
            gateway,
        })
    }

    fn save_pending(&self) {
        // the default session first, then the others in a stable order
        let mut keys: Vec<&String> = self.convs.keys().collect();
        keys.sort_by_key(|k| (**k != self.default_key, (*k).clone()));
        let all: Vec<PendingSend> = keys
            .into_iter()
            .flat_map(|k| self.convs[k].turns.entries())
            .collect();
        if let Err(e) = self.state.save_pending(&all) {
            warn!("cannot persist pending messages: {e}");
        }
    }

    /// Send bridged gateway output of session `key` on, finishing the head's run when its
    /// ending passes and dropping a second ending of a run that already ended here.
    fn forward(&mut self, key: &str, out: Vec<ToDesktop>) {
        let conv = self.conv(key);
        let mut pass = Vec::with_capacity(out.len());
        let mut finished = Vec::new();
        for m in out {
            if let Some(run) = m.ended_run() {
                if conv.turns.is_finished(run) {
                    debug!(run_id = %run, "a second ending of a run was dropped");
                    continue;
                }
                finished.extend(conv.turns.finish(run).map(|p| p.id));
                debug!(run_id = %run, "a run ended (live event)");
            }
            pass.push(m);
        }
        if !finished.is_empty() {
            conv.set_running();
        }
        self.to_all(pass);
        if !finished.is_empty() {
            for id in finished {
                self.settle(key, id);
            }
            self.drive(key);
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
        self.received.forget_desktop(session);
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

    /// Hand the head of session `key`'s queue to the gateway if nothing is asked of it yet.
    fn drive(&mut self, key: &str) {
        if !self.gw.is_connected() {
            return;
        }
        let Some(PendingSend {
            desktop,
            id,
            text,
            started,
            attachments,
            ..
        }) = self.conv(key).turns.next_to_send()
        else {
            return;
        };
        let (gw, done, session) = (self.gw.clone(), self.done_tx.clone(), key.to_owned());
        let (store, limits) = (self.received.clone(), self.file_limits);
        tokio::spawn(async move {
            // a message the gateway accepted once is deduped by its id: its files went with the
            // first `chat.send` (and were removed here after it)
            let files = if started {
                Vec::new()
            } else {
                attachments.clone()
            };
            let files = match attachments::for_gateway(store, desktop.clone(), files, limits).await
            {
                Ok(f) => f,
                Err(message) => {
                    let _ = done
                        .send(Done::FilesUnusable {
                            session,
                            desktop,
                            id,
                            attachments,
                            message,
                        })
                        .await;
                    return;
                }
            };
            let r = gw
                .chat_send(&ChatSend {
                    session_key: &session,
                    message: &text,
                    idempotency_key: &id,
                    queue_mode: "followup",
                    attachments: &files,
                })
                .await;
            drop(files);
            let _ = done
                .send(match r {
                    Ok(sent) => Done::Sent {
                        run_id: sent.run_id.unwrap_or_else(|| id.clone()),
                        session,
                        desktop,
                        id,
                        attachments,
                    },
                    Err(error) => Done::SendFailed {
                        session,
                        desktop,
                        id,
                        error,
                        attachments,
                    },
                })
                .await;
        });
    }

    /// Follow run `run_id` of session `key` with `agent.wait` until it ends or stops being the
    /// session's run in progress.
    fn follow(&mut self, key: &str, run_id: String) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        let session = key.to_owned();
        let mut running = self.conv(key).running.subscribe();
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
                            ended = reply_in_history(&gw, &session, &run_id).await;
                        }
                        if let Some(msg) = ended {
                            tokio::time::sleep(LIVE_GRACE).await;
                            let _ = done
                                .send(Done::Ended {
                                    session,
                                    run_id,
                                    msg,
                                })
                                .await;
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
    fn ask_then_reply(&self, desktop: String, key: &str, ask: DesktopAsk) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        let (session, tag) = (key.to_owned(), self.tag(key).map(str::to_owned));
        tokio::spawn(async move {
            let failed = |what: &str, e: GatewayError| ToDesktop::ChatError {
                session: tag.clone(),
                run_id: None,
                message: format!("the agent could not {what}: {e}"),
            };
            let msg = match ask {
                DesktopAsk::Abort { run_id } => {
                    let asked = ChatAbort {
                        session_key: &session,
                        run_id: &run_id,
                    };
                    match gw.chat_abort(&asked).await {
                        // the run's ending comes as a gateway event
                        Ok(()) => return,
                        Err(e) => failed("stop the reply", e),
                    }
                }
                DesktopAsk::History { limit, before } => {
                    let offset = match before.as_deref().map(parse_cursor) {
                        None => None,
                        Some(Some(o)) => Some(o),
                        Some(None) => {
                            let msg = ToDesktop::ChatError {
                                session: tag.clone(),
                                run_id: None,
                                message: "the agent could not load older messages: the page cursor is not one it made".into(),
                            };
                            let _ = done.send(Done::Reply { desktop, msg }).await;
                            return;
                        }
                    };
                    let asked = ChatHistory {
                        session_key: &session,
                        limit,
                        offset,
                    };
                    match gw.chat_history(&asked).await {
                        Ok(v) => ToDesktop::History {
                            messages: history_messages(&v),
                            session: tag.clone(),
                            before,
                            older: v
                                .has_more
                                .unwrap_or(false)
                                .then_some(v.next_offset)
                                .flatten()
                                .map(make_cursor),
                        },
                        Err(e) => failed("load the history", e),
                    }
                }
            };
            let _ = done.send(Done::Reply { desktop, msg }).await;
        });
    }

    /// List the sessions for one desktop (`to`) or, after a change, for all.
    fn list_sessions(&self, to: Option<String>) {
        let (gw, done, default_key) = (
            self.gw.clone(),
            self.done_tx.clone(),
            self.default_key.clone(),
        );
        tokio::spawn(async move {
            let result = gw
                .sessions_list(&SessionsList {
                    limit: SESSIONS_SHOWN,
                })
                .await
                .map(|l| session_summaries(&l.sessions, &default_key));
            let _ = done.send(Done::SessionsListed { to, result }).await;
        });
    }

    /// Ask the gateway for `sessions.changed` events on this connection.
    fn subscribe_sessions(&self) {
        let gw = self.gw.clone();
        tokio::spawn(async move {
            if let Err(e) = gw.sessions_subscribe().await {
                info!(error = %e, "the gateway offers no session updates; desktops see the list when they ask");
            }
        });
    }

    /// A `sessions.changed` event: list again once the burst settles.
    fn sessions_changed(&mut self) {
        if self.sessions_refreshing || self.links.is_empty() {
            return;
        }
        self.sessions_refreshing = true;
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SESSIONS_SETTLE).await;
            let _ = done.send(Done::RefreshSessions).await;
        });
    }

    fn on_sessions_listed(
        &mut self,
        to: Option<String>,
        result: Result<Vec<SessionSummary>, GatewayError>,
    ) {
        match (to, result) {
            (Some(desktop), Ok(sessions)) => {
                self.sessions_shown.clone_from(&sessions);
                self.to_one(&desktop, ToDesktop::Sessions { sessions });
            }
            (Some(desktop), Err(e)) => self.to_one(
                &desktop,
                ToDesktop::ChatError {
                    session: None,
                    run_id: None,
                    message: format!("the agent could not list its sessions: {e}"),
                },
            ),
            (None, Ok(sessions)) => {
                if sessions != self.sessions_shown {
                    self.sessions_shown.clone_from(&sessions);
                    self.to_all(vec![ToDesktop::Sessions { sessions }]);
                }
            }
            (None, Err(e)) => debug!(error = %e, "listing the sessions after a change failed"),
        }
    }

    /// Drop idle sessions beyond [`MAX_IDLE_CONVERSATIONS`] (never the default one).
    fn prune_conversations(&mut self) {
        let idle: Vec<String> = self
            .convs
            .iter()
            .filter(|(k, c)| **k != self.default_key && c.is_idle())
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle.iter().skip(MAX_IDLE_CONVERSATIONS) {
            self.convs.remove(k);
        }
    }

    fn on_hub_event(&mut self, ev: HubEvent) {
        match ev {
            HubEvent::FromDesktop {
                session: desktop,
                msg,
                stored,
            } => match msg {
                ToAgent::FilePart { file, index, data } => {
                    self.on_file_part(desktop, file, index, data, stored);
                }
                ToAgent::Chat {
                    id,
                    text,
                    session,
                    attachments,
                } => {
                    let key = self.key_of(session.as_deref());
                    if self
                        .conv(&key)
                        .turns
                        .push_with_files(&desktop, &id, &text, attachments)
                    {
                        self.save_pending();
                        debug!(%id, session = %key, "a desktop message is kept");
                    } else {
                        debug!(%id, "a desktop message came again; already kept");
                    }
                    let _ = stored.send(());
                    if self.gw.is_connected() {
                        self.drive(&key);
                    } else if self.gw.link() == GatewayLink::Down {
                        let note = ToDesktop::ChatError { session: self.tag(&key).map(str::to_owned), run_id: None, message: "the agent cannot reach its OpenClaw gateway right now; your message is kept and will be sent when it is back".into() };
                        self.to_one(&desktop, note);
                    }
                }
                ToAgent::ChatAbort { run_id, session } => {
                    let _ = stored.send(());
                    let key = self.key_of(session.as_deref());
                    self.ask_then_reply(desktop, &key, DesktopAsk::Abort { run_id });
                }
                ToAgent::ChatHistory {
                    limit,
                    before,
                    session,
                } => {
                    let _ = stored.send(());
                    let limit = limit.clamp(1, 500);
                    let key = self.key_of(session.as_deref());
                    self.ask_then_reply(desktop, &key, DesktopAsk::History { limit, before });
                }
                ToAgent::SessionList => {
                    let _ = stored.send(());
                    self.list_sessions(Some(desktop));
                }
                ToAgent::ApprovalDecide { id, decision } => {
                    let _ = stored.send(());
                    self.on_decision(desktop, id, decision);
                }
                ToAgent::Unknown => {
                    // a newer desktop's kind of message: taken (a refusal would stop the pairing's
                    // every later message) and ignored
                    let _ = stored.send(());
                    debug!(session = %desktop, "a desktop sent a kind of message this agent does not know; ignored");
                }
                ToAgent::ApprovalList => {
                    let _ = stored.send(());
                    let pending = self.approvals.pending();
                    self.to_one(&desktop, ToDesktop::Approvals { pending });
                }
                ToAgent::Unpair => {
                    // sealed with the pinned desktop key: the desktop itself ended the pairing
                    let _ = stored.send(());
                    info!(session = %desktop, "the desktop ended the pairing; forgetting it");
                    self.end_pairing(&desktop);
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
            Done::Sent {
                session,
                desktop,
                id,
                run_id,
                attachments,
            } => {
                debug!(%id, %run_id, %session, "the gateway runs a desktop message");
                let conv = self.conv(&session);
                if conv.turns.sent(&id, &run_id) {
                    conv.set_running();
                    // `started` is on disk before the files go: an agent killed in between
                    // sends the message again without them (the gateway dedupes it by id)
                    self.save_pending();
                    let ack = ToDesktop::ChatAck {
                        session: self.tag(&session).map(str::to_owned),
                        id,
                        run_id: run_id.clone(),
                    };
                    self.to_all(vec![ack]);
                    self.follow(&session, run_id);
                    self.drop_files(&desktop, &attachments);
                }
                // otherwise the message is still to be sent (its files with it), or was settled
                // already; parts nothing will use again go with the weekly sweep
            }
            Done::Ended {
                session,
                run_id,
                msg,
            } => {
                let conv = self.conv(&session);
                if let Some(p) = conv.turns.finish(&run_id) {
                    conv.set_running();
                    info!(%run_id, "a run ended while the agent was not listening; its outcome came from agent.wait");
                    let msg = msg.in_session(self.tag(&session));
                    self.to_all(vec![msg]);
                    self.settle(&session, p.id);
                    self.drive(&session);
                }
            }
            Done::EndingStored { session, id } => {
                if self.conv(&session).turns.ending_stored(&id) {
                    self.save_pending();
                }
            }
            Done::FilesUnusable {
                session,
                desktop,
                id,
                attachments,
                message,
            } => {
                // the sentence names the file: it goes to the desktop, not to the log
                warn!(%id, "a desktop's message carries files that cannot be sent; the desktop is told");
                self.refuse(
                    &session,
                    &desktop,
                    id,
                    &attachments,
                    format!("the message was not sent: {message}"),
                );
            }
            Done::SendFailed {
                session,
                desktop,
                id,
                error,
                attachments,
            } => {
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
                    self.conv(&session).turns.send_failed(&id);
                    warn!(%error, "chat.send failed; will try again");
                    let done = self.done_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = done.send(Done::Retry { session }).await;
                    });
                } else {
                    warn!(%error, "the gateway refused a desktop's message; it was dropped and the desktop told");
                    self.refuse(
                        &session,
                        &desktop,
                        id,
                        &attachments,
                        format!("the gateway refused the message: {error}"),
                    );
                }
            }
            Done::Reply { desktop, msg } => self.to_one(&desktop, msg),
            Done::Retry { session } => self.drive(&session),
            Done::SessionsListed { to, result } => self.on_sessions_listed(to, result),
            Done::RefreshSessions => {
                self.sessions_refreshing = false;
                self.list_sessions(None);
            }
            Done::ApprovalsListed(listed) => self.on_approvals_listed(listed),
            Done::ApprovalDecided {
                desktop,
                id,
                result,
            } => self.on_decided(&desktop, &id, result),
        }
    }

    /// Message `id` will not run: tell its desktop (run ids are message ids here, so this ends
    /// the message's turn), remove its files, let it settle, and go on with the next one.
    fn refuse(
        &mut self,
        session: &str,
        desktop: &str,
        id: String,
        files: &[Attachment],
        message: String,
    ) {
        self.drop_files(desktop, files);
        let refused = self.conv(session).turns.refused(&id);
        self.to_one(
            desktop,
            ToDesktop::ChatError {
                session: self.tag(session).map(str::to_owned),
                run_id: Some(id),
                message,
            },
        );
        if let Some(p) = refused {
            self.settle(session, p.id);
        }
        self.drive(session);
    }

    /// The typing indicator's watchdog, per session.
    fn typing_watchdog(&mut self) {
        let stale: Vec<String> = self
            .convs
            .iter()
            .filter(|(_, c)| c.bridge.typing() && c.last_news.elapsed() > TYPING_TIMEOUT)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            let out = self.conv(&key).bridge.typing_timed_out();
            let out = self.tagged(&key, out);
            self.to_all(out);
        }
    }
}

/// The `sessions.changed` event (after `sessions.subscribe`).
const SESSIONS_CHANGED: &str = "sessions.changed";

/// What desktops see of `sessions.list`'s rows (archived ones left out).
fn session_summaries(rows: &[SessionRow], default_key: &str) -> Vec<SessionSummary> {
    let mut out: Vec<SessionSummary> = rows
        .iter()
        .filter(|r| r.archived != Some(true))
        .map(|r| {
            let key = canonical_session(&r.key).to_owned();
            SessionSummary {
                default: key == default_key,
                title: [&r.label, &r.display_name, &r.derived_title]
                    .into_iter()
                    .flatten()
                    .find(|t| !t.trim().is_empty())
                    .cloned(),
                updated_at_ms: r.updated_at,
                running: r.has_active_run.unwrap_or(false),
                key,
            }
        })
        .collect();
    // the default session is always there, even before its first message
    if !out.iter().any(|s| s.default) {
        out.push(SessionSummary {
            key: default_key.to_owned(),
            title: None,
            updated_at_ms: None,
            running: false,
            default: true,
        });
    }
    out
}

/// A history page cursor: the gateway's offset from the newest message, as an opaque string.
fn make_cursor(offset: u64) -> String {
    format!("o{offset}")
}

fn parse_cursor(c: &str) -> Option<u64> {
    c.strip_prefix('o')?.parse().ok()
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
    let received = Arc::new(ReceivedFiles::new(cfg.state.path(), cfg.state.files_key()?));
    let stale = received.sweep(ORPHAN_AFTER);
    if stale > 0 {
        info!(
            files = stale,
            "removed parts of files no message came for (older than a week)"
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
    let default_key = canonical_session(&cfg.session_key).to_owned();
    let mut by_session: HashMap<String, Vec<PendingSend>> = HashMap::new();
    for p in pending {
        let key = canonical_session(p.session.as_deref().unwrap_or(&default_key)).to_owned();
        by_session.entry(key).or_default().push(p);
    }
    by_session.entry(default_key.clone()).or_default();
    let convs = by_session
        .into_iter()
        .map(|(key, pending)| {
            let tag = (key != default_key).then_some(key.as_str());
            let conv = Conversation::new(&key, tag, pending);
            (key, conv)
        })
        .collect();
    let mut hub = Hub {
        state: cfg.state,
        gw,
        default_key,
        convs,
        links: HashMap::new(),
        hub_tx,
        done_tx,
        instance: instance_id(),
        ping_interval: cfg.ping_interval,
        refused_retry: cfg.refused_retry,
        sessions_shown: Vec::new(),
        sessions_refreshing: false,
        approvals: crate::approvals::Approvals::restore(approvals_kept),
        held_decisions: Vec::new(),
        received,
        file_limits: FileLimits::default(),
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
                hub.typing_watchdog();
                hub.prune_conversations();
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
            offset: None,
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
        session: None,
        run_id: run_id.to_owned(),
        text: m.text()?,
    })
}

/// The desktops' view of an `agent.wait` answer, or `None` while the run goes on.
fn wait_outcome(run_id: &str, v: &WaitAnswer) -> Option<ToDesktop> {
    let run_id = run_id.to_owned();
    match v.status.as_deref() {
        Some("ok") => Some(ToDesktop::ChatReply {
            session: None,
            run_id,
            text: v
                .terminal_reply
                .as_ref()
                .and_then(|t| t.text.clone())
                .unwrap_or_default(),
        }),
        Some("aborted" | "cancelled" | "killed") => Some(ToDesktop::ChatAborted {
            session: None,
            run_id,
        }),
        Some("timeout" | "pending") | None => None,
        Some(other) => Some(ToDesktop::ChatError {
            session: None,
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
    History { limit: u32, before: Option<String> },
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
                session: None,
                run_id: "r".into(),
                text: "ok: w1".into()
            })
        );
        assert_eq!(reply_of_run(&h, "missing"), None);
    }

    #[test]
    fn session_rows_become_what_desktops_see() {
        let rows: Vec<SessionRow> = serde_json::from_value(json!([
            {"key": "agent:main:work", "label": null, "derivedTitle": "Quarterly report", "updatedAt": 5, "hasActiveRun": true},
            {"key": "agent:main:old", "archived": true},
            {"key": "agent:other:x", "label": "  ", "displayName": "Other agent's"}
        ]))
        .unwrap();
        let shown = session_summaries(&rows, "main");
        assert_eq!(
            shown,
            vec![
                SessionSummary {
                    key: "work".into(),
                    title: Some("Quarterly report".into()),
                    updated_at_ms: Some(5),
                    running: true,
                    default: false,
                },
                SessionSummary {
                    key: "agent:other:x".into(),
                    title: Some("Other agent's".into()),
                    updated_at_ms: None,
                    running: false,
                    default: false,
                },
                SessionSummary {
                    key: "main".into(),
                    title: None,
                    updated_at_ms: None,
                    running: false,
                    default: true,
                },
            ],
            "archived left out, blank titles skipped, the default one always there"
        );
    }

    #[test]
    fn history_cursors_are_the_agents_own() {
        assert_eq!(parse_cursor(&make_cursor(150)), Some(150));
        for bad in ["", "150", "o", "o-1", "ox", "p150"] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
        assert_eq!(canonical_session("agent:main:work"), "work");
        assert_eq!(canonical_session("work"), "work");
        assert_eq!(canonical_session("agent:other:work"), "agent:other:work");
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
                session: None,
                run_id: "r".into(),
                text: "ok A: w1".into()
            })
        );
        let pending = json!({"runId":"r","status":"pending","timeoutPhase":"queue"});
        assert_eq!(wait_outcome("r", &pending), None);
        assert_eq!(wait_outcome("r", &json!({"status":"timeout"})), None);
        assert_eq!(
            wait_outcome("r", &json!({"status":"aborted"})),
            Some(ToDesktop::ChatAborted {
                session: None,
                run_id: "r".into()
            })
        );
        assert!(matches!(
            wait_outcome("r", &json!({"status":"error","error":"model down"})),
            Some(ToDesktop::ChatError { message, .. }) if message == "model down"
        ));
    }
}
