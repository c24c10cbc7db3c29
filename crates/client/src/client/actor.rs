//! The actor task behind [`super::RelayClient`]: loads the pairing (retrying while the keyring is
//! away), pairs, runs one relay connection at a time ([`super::connection`]), waits between
//! connections (backoff, or slowly while the relay refuses the pairing) and owns the outbox:
//! every message is written there before it is first transmitted. It forgets the pairing only on
//! the person's word or the agent's sealed `unpair`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use clawtray_proto::chat::{ToAgent, ToDesktop};
use clawtray_proto::delivery::Delivery;
use clawtray_proto::endpoint::{Endpoint, Event};
use clawtray_proto::files::FileLimits;
use clawtray_proto::sealed::MAX_PLAINTEXT;
use clawtray_proto::secret::SecretString;
use clawtray_proto::{ProtoError, Role};

use super::config::{ClientConfig, OUTBOX_CAPACITY};
use super::handle::Command;
use super::policy::{Input, Policy};
use crate::error::{ClientError, PairError};
use crate::outgoing_files::{prepare, OutgoingFile};
use crate::pairing_flow;
use crate::relay_url::RelayUrl;
use crate::session_store::{SessionInfo, SessionStore, StoreError, StoredSession};
use crate::state::{ClientEvent, ConnectionState, MessageState, Sent};
use crate::wire::Ws;
use clawtray_outbox::{Durability, Outbox, OUTBOX_FILE};
use clawtray_transport::backoff::{unit_random, Backoff};

/// How one connection ended.
pub(super) enum Outcome {
    Shutdown,
    Unpaired,
    /// The agent ended the pairing inside a meeting (sealed `unpair`).
    UnpairedByAgent,
    Reconnect,
    /// The relay refuses the pairing: keep it, tell the person, try again slowly.
    Refused(String),
    Transient(String),
}

/// How a wait between connections ended.
enum Waited {
    /// Connect again.
    Retry,
    /// A new pairing was made during the wait: go on with its open connection.
    Paired(Box<Ws>),
    Shutdown,
}

/// A loaded pairing with its live protocol state.
pub(super) struct Paired {
    pub(super) info: SessionInfo,
    pub(super) token: SecretString,
    pub(super) endpoint: Endpoint<ToAgent, ToDesktop>,
    pub(super) outbox: Outbox<ToAgent>,
    /// Chat message ids by outbox sequence number, until acknowledged.
    pub(super) ids: HashMap<u64, String>,
}

/// The actor: owns the pairing, the outbox and the policy; runs one connection at a time.
pub(super) struct Actor {
    pub(super) config: ClientConfig,
    store: Arc<dyn SessionStore>,
    pub(super) rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<ClientEvent>,
    state_tx: watch::Sender<ConnectionState>,
    pub(super) paired: Option<Paired>,
    pub(super) backoff: Backoff,
    /// Meetings, deadlines, the breaker, resync and the ack watchdog (spans connections).
    pub(super) policy: Policy,
    /// What files the agent's gateway takes (its defaults until the agent says).
    pub(super) file_limits: FileLimits,
}

/// Why the actor waits between connections.
enum Waiting {
    /// A transient failure: back off and try again.
    Retry(String),
    /// The relay refuses the pairing: keep it and try again slowly.
    Refused(String),
}

fn unix_ms_in(d: Duration) -> u64 {
    SystemTime::now()
        .checked_add(d)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An id a caller may choose for a message: what the agent and the gateway accept as a key.
fn valid_message_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Actor {
    pub(super) fn new(
        config: ClientConfig,
        store: Arc<dyn SessionStore>,
        rx: mpsc::Receiver<Command>,
        events: broadcast::Sender<ClientEvent>,
        state_tx: watch::Sender<ConnectionState>,
    ) -> Self {
        let policy = Policy::new(config.timings());
        Self {
            config,
            store,
            rx,
            events,
            state_tx,
            paired: None,
            backoff: Backoff::default(),
            policy,
            file_limits: FileLimits::default(),
        }
    }

    pub(super) fn set_state(&self, s: ConnectionState) {
        if *self.state_tx.borrow() == s {
            return;
        }
        debug!(state = ?s, "state");
        self.state_tx.send_replace(s.clone());
        let _ = self.events.send(ClientEvent::State { state: s });
    }

    pub(super) fn emit(&self, e: ClientEvent) {
        let _ = self.events.send(e);
    }

    pub(super) fn notice(&self, message: String) {
        warn!("{message}");
        self.emit(ClientEvent::Notice { message });
    }

    /// Run a (blocking, D-Bus) store operation off the async threads.
    fn store_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn SessionStore) -> Result<T, StoreError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static {
        let store = self.store.clone();
        async move {
            tokio::task::spawn_blocking(move || f(store.as_ref()))
                .await
                .unwrap_or_else(|e| Err(StoreError::KeyringUnavailable(e.to_string())))
        }
    }

    fn open_paired(&self, s: StoredSession) -> Result<Paired, String> {
        let outbox = Outbox::open(
            &self.config.data_dir.join(OUTBOX_FILE),
            &s.secrets.outbox_key,
        )
        .map_err(|e| e.to_string())?;
        let (state, unreadable) = outbox.load().map_err(|e| e.to_string())?;
        if unreadable > 0 {
            self.notice(format!("{unreadable} queued message(s) could not be read back from the outbox and were dropped"));
        }
        let ids = state
            .unacked
            .iter()
            .filter_map(|(seq, m)| match m {
                ToAgent::Chat { id, .. } => Some((*seq, id.clone())),
                _ => None,
            })
            .collect();
        let endpoint = Endpoint::new(
            Role::Desktop,
            s.secrets.desktop_key.clone(),
            s.secrets.agent_public,
            s.info.session_id.clone(),
            Delivery::restore(state, OUTBOX_CAPACITY),
        );
        Ok(Paired {
            info: s.info,
            token: s.secrets.device_token.clone(),
            endpoint,
            outbox,
            ids,
        })
    }

    /// Load the stored pairing, retrying while the keyring is unavailable. False on shutdown.
    async fn load(&mut self) -> bool {
        loop {
            match self.store_call(|s| s.load()).await {
                Ok(None) => {
                    self.set_state(ConnectionState::Unpaired);
                    return true;
                }
                Ok(Some(s)) => {
                    match self.open_paired(s) {
                        Ok(p) => self.paired = Some(p),
                        Err(e) => self.set_state(ConnectionState::NeedsRepairing {
                            reason: format!("the outbox cannot be opened: {e}"),
                        }),
                    }
                    return true;
                }
                Err(e @ (StoreError::SecretsMissing | StoreError::Corrupt(_))) => {
                    let _ = self.store_call(|s| s.clear()).await;
                    self.set_state(ConnectionState::NeedsRepairing {
                        reason: e.to_string(),
                    });
                    return true;
                }
                Err(e) => {
                    if let Waited::Shutdown = self.wait(Waiting::Retry(e.to_string())).await {
                        return false;
                    }
                }
            }
        }
    }

    pub(super) async fn run(mut self) {
        if !self.load().await {
            return;
        }
        let mut preopened: Option<Ws> = None;
        loop {
            if self.paired.is_none() {
                match self.rx.recv().await {
                    None | Some(Command::Shutdown) => return,
                    Some(cmd) => {
                        if let Some(ws) = self.unpaired_command(cmd).await {
                            preopened = Some(ws);
                        }
                    }
                }
                continue;
            }
            let outcome = self.connection(preopened.take()).await;
            // the meeting's keys die with the connection: until the next meeting, sends queue
            if let Some(p) = self.paired.as_mut() {
                p.endpoint.peer_left();
            }
            let why = match outcome {
                Outcome::Shutdown => return,
                Outcome::Reconnect => continue,
                Outcome::Unpaired => {
                    self.forget().await;
                    self.set_state(ConnectionState::Unpaired);
                    continue;
                }
                Outcome::UnpairedByAgent => {
                    self.forget().await;
                    self.notice("The agent ended this pairing (unpaired on its side). Pair again with a new code to chat.".into());
                    self.set_state(ConnectionState::Unpaired);
                    continue;
                }
                Outcome::Refused(reason) => {
                    warn!("the relay refuses the pairing (kept): {reason}");
                    Waiting::Refused(reason)
                }
                Outcome::Transient(err) => Waiting::Retry(err),
            };
            match self.wait(why).await {
                Waited::Shutdown => return,
                Waited::Retry => {}
                Waited::Paired(ws) => preopened = Some(*ws),
            }
        }
    }

    /// Handle a command while not paired; returns the open connection after a successful pairing.
    async fn unpaired_command(&mut self, cmd: Command) -> Option<Ws> {
        match cmd {
            Command::Pair { code, relay, reply } => {
                return self
                    .pair_and_reply(&code, &relay, reply, ConnectionState::Unpaired)
                    .await;
            }
            Command::Send { reply, .. } => {
                let _ = reply.send(Err(ClientError::NotPaired));
            }
            Command::Queued { reply } => {
                let _ = reply.send(Vec::new());
            }
            Command::Session { reply } => {
                let _ = reply.send(None);
            }
            Command::Unpair { reply } => {
                let _ = reply.send(());
            }
            Command::Decide { reply, .. } => {
                let _ = reply.send(Err(ClientError::NotPaired));
            }
            Command::Abort { .. }
            | Command::ListApprovals
            | Command::ListSessions
            | Command::History { .. }
            | Command::ReconnectNow
            | Command::Shutdown => {}
        }
        None
    }

    /// Pair, answer `reply`, and return the open connection on success. A failed attempt puts
    /// the state back to `otherwise` (unpaired, or the refused pairing that stays).
    async fn pair_and_reply(
        &mut self,
        code: &str,
        relay: &str,
        reply: oneshot::Sender<Result<SessionInfo, PairError>>,
        otherwise: ConnectionState,
    ) -> Option<Ws> {
        match self.pair(code, relay).await {
            Ok((ws, info)) => {
                let _ = reply.send(Ok(info));
                Some(ws)
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                if *self.state_tx.borrow() == ConnectionState::Pairing {
                    self.set_state(otherwise);
                }
                None
            }
        }
    }

    async fn pair(&mut self, code: &str, relay: &str) -> Result<(Ws, SessionInfo), PairError> {
        let relay = RelayUrl::parse(relay, self.config.allow_insecure_relay)
            .map_err(PairError::BadRelayUrl)?;
        self.set_state(ConnectionState::Pairing);
        let (ws, stored) = pairing_flow::pair(
            &relay,
            code,
            &self.config.device_name,
            self.config.connect_timeout,
        )
        .await?;
        let to_save = stored.clone();
        self.store_call(move |s| s.save(&to_save))
            .await
            .map_err(|e| PairError::Storage(e.to_string()))?;
        // the person paired again: the old pairing (refused by its relay) and its queue go now
        if let Some(old) = self.paired.take() {
            old.outbox.destroy();
        }
        // a fresh pairing starts with a fresh outbox
        let path = self.config.data_dir.join(OUTBOX_FILE);
        if let Ok(old) = Outbox::<ToAgent>::open(&path, &stored.secrets.outbox_key) {
            old.destroy();
        }
        let info = stored.info.clone();
        let paired = self.open_paired(stored).map_err(PairError::Storage)?;
        info!(agent = %info.agent_name, "paired");
        self.paired = Some(paired);
        self.backoff.reset();
        self.policy.handle(Input::Paired, Instant::now());
        Ok((ws, info))
    }

    pub(super) async fn forget(&mut self) {
        if let Some(p) = self.paired.take() {
            p.outbox.destroy();
        }
        if let Err(e) = self.store_call(|s| s.clear()).await {
            self.notice(format!(
                "could not remove the pairing from the keyring: {e}"
            ));
        }
    }

    /// Wait before the next attempt, handling commands meanwhile.
    async fn wait(&mut self, why: Waiting) -> Waited {
        let delay = match &why {
            Waiting::Retry(_) => self.backoff.next_delay(unit_random()),
            Waiting::Refused(_) => self.config.refused_retry.mul_f64(0.8 + 0.4 * unit_random()),
        };
        match why {
            Waiting::Retry(last_error) => {
                info!(error = %last_error, retry_in_ms = delay.as_millis() as u64, "waiting to retry");
                self.set_state(ConnectionState::WaitingToRetry {
                    next_try_at_ms: unix_ms_in(delay),
                    last_error,
                });
            }
            Waiting::Refused(reason) => self.set_state(ConnectionState::Refused {
                reason,
                next_try_at_ms: unix_ms_in(delay),
            }),
        }
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => return Waited::Retry,
                cmd = self.rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => return Waited::Shutdown,
                    Some(Command::ReconnectNow) => return Waited::Retry,
                    Some(Command::Unpair { reply }) => {
                        self.forget().await;
                        self.set_state(ConnectionState::Unpaired);
                        let _ = reply.send(());
                        return Waited::Retry;
                    }
                    Some(Command::Pair { code, relay, reply }) if self.refused() => {
                        // pairing again replaces the pairing the relay refuses (the person's word)
                        let before = self.state_tx.borrow().clone();
                        if let Some(ws) = self.pair_and_reply(&code, &relay, reply, before).await {
                            return Waited::Paired(Box::new(ws));
                        }
                    }
                    Some(other) => {
                        if self.paired.is_none() {
                            if let Some(ws) = self.unpaired_command(other).await {
                                return Waited::Paired(Box::new(ws));
                            }
                        } else {
                            // no meeting is live while waiting: nothing to transmit
                            let _ = self.queue_command(other);
                        }
                    }
                },
            }
        }
    }

    fn refused(&self) -> bool {
        matches!(*self.state_tx.borrow(), ConnectionState::Refused { .. })
    }

    /// Commands that need no connection: queue messages (sealed at once when a meeting is live),
    /// answer queries. Returns the endpoint's events (frames to transmit when online).
    pub(super) fn queue_command(&mut self, cmd: Command) -> Vec<Event<ToDesktop>> {
        match cmd {
            Command::Send {
                text,
                id,
                session,
                files,
                reply,
            } => match self.enqueue_chat(text, id, session, &files) {
                Ok((sent, events)) => {
                    let _ = reply.send(Ok(sent));
                    events
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Vec::new()
                }
            },
            Command::Abort { run_id, session } => self
                .enqueue(ToAgent::ChatAbort { session, run_id })
                .unwrap_or_default(),
            Command::Decide {
                id,
                decision,
                reply,
            } => match self.enqueue(ToAgent::ApprovalDecide { id, decision }) {
                Ok(events) => {
                    let _ = reply.send(Ok(()));
                    events
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Vec::new()
                }
            },
            Command::ListApprovals => self.enqueue(ToAgent::ApprovalList).unwrap_or_default(),
            Command::History {
                limit,
                before,
                session,
            } => self
                .enqueue(ToAgent::ChatHistory {
                    session,
                    limit,
                    before,
                })
                .unwrap_or_default(),
            Command::ListSessions => self.enqueue(ToAgent::SessionList).unwrap_or_default(),
            Command::Queued { reply } => {
                let q = self
                    .paired
                    .as_ref()
                    .map(|p| {
                        p.endpoint
                            .delivery()
                            .pending()
                            .filter_map(|(_, m)| match m {
                                ToAgent::Chat {
                                    id, text, session, ..
                                } => Some((id.clone(), text.clone(), session.clone())),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(q);
                Vec::new()
            }
            Command::Session { reply } => {
                let _ = reply.send(self.paired.as_ref().map(|p| p.info.clone()));
                Vec::new()
            }
            Command::Pair { reply, .. } => {
                let name = self
                    .paired
                    .as_ref()
                    .map_or_else(String::new, |p| p.info.agent_name.clone());
                let _ = reply.send(Err(PairError::AlreadyPaired(name)));
                Vec::new()
            }
            // connection commands are handled by the caller before it gets here
            Command::ReconnectNow | Command::Shutdown | Command::Unpair { .. } => Vec::new(),
        }
    }

    /// Where a chat message with this id stands, if it waits in the outbox.
    fn waiting(&self, id: &str) -> Option<Sent> {
        let p = self.paired.as_ref()?;
        let queued = p
            .endpoint
            .delivery()
            .pending()
            .any(|(_, m)| matches!(m, ToAgent::Chat { id: i, .. } if i == id));
        queued.then(|| Sent {
            id: id.to_owned(),
            state: if p.endpoint.is_online() {
                MessageState::Sent
            } else {
                MessageState::Queued
            },
        })
    }

    fn enqueue_chat(
        &mut self,
        text: String,
        id: Option<String>,
        session: Option<String>,
        files: &[OutgoingFile],
    ) -> Result<(Sent, Vec<Event<ToDesktop>>), ClientError> {
        if text.len() > MAX_PLAINTEXT - 1024 {
            return Err(ClientError::MessageTooLong(text.len()));
        }
        let id = match id {
            None => new_message_id(),
            Some(id) if !valid_message_id(&id) => return Err(ClientError::BadMessageId(id.len())),
            Some(id) => {
                if let Some(sent) = self.waiting(&id) {
                    debug!(%id, "a message with this id is already queued; not queued again");
                    return Ok((sent, Vec::new()));
                }
                id
            }
        };
        let (attachments, file_parts) = prepare(files, &self.file_limits, new_message_id)
            .map_err(|e| ClientError::Files(e.to_string()))?;
        let mut events = Vec::new();
        for part in file_parts {
            // the message itself, synced, follows its parts and makes them durable too
            events.extend(self.enqueue_as(part, Durability::Written)?);
        }
        events.extend(self.enqueue(ToAgent::Chat {
            id: id.clone(),
            text,
            session,
            attachments,
        })?);
        let state = if events.iter().any(|e| matches!(e, Event::Transmit(_))) {
            MessageState::Sent
        } else {
            MessageState::Queued
        };
        Ok((Sent { id, state }, events))
    }

    /// Persist, then hand to the endpoint (which transmits at once when a meeting is live).
    fn enqueue(&mut self, msg: ToAgent) -> Result<Vec<Event<ToDesktop>>, ClientError> {
        self.enqueue_as(msg, Durability::Synced)
    }

    /// [`Self::enqueue`], persisted as durably as `d` says.
    fn enqueue_as(
        &mut self,
        msg: ToAgent,
        d: Durability,
    ) -> Result<Vec<Event<ToDesktop>>, ClientError> {
        let p = self.paired.as_mut().ok_or(ClientError::NotPaired)?;
        let seq = p.endpoint.delivery().next_seq();
        p.outbox
            .enqueue_as(seq, &msg, d)
            .map_err(|e| ClientError::Storage(e.to_string()))?;
        let id = match &msg {
            ToAgent::Chat { id, .. } => Some(id.clone()),
            _ => None,
        };
        let (got, events) = p.endpoint.send(msg).map_err(|e| match e {
            ProtoError::OutboxFull(n) => ClientError::OutboxFull(n),
            other => ClientError::Storage(other.to_string()),
        })?;
        debug_assert_eq!(got, seq);
        if let Some(id) = id {
            p.ids.insert(seq, id.clone());
            let state = if events.iter().any(|e| matches!(e, Event::Transmit(_))) {
                MessageState::Sent
            } else {
                MessageState::Queued
            };
            self.emit(ClientEvent::Message { id, state });
        }
        Ok(events)
    }
}
