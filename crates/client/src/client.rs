//! [`RelayClient`]: one actor task that owns the relay connection and all session state. The app
//! and the CLI drive it with commands and watch its [`ConnectionState`] and [`ClientEvent`]s.
//!
//! ```text
//!             pair ok                 resumed                meeting done
//! Unpaired ──────────▶ (paired) ──▶ Connecting ──▶ Handshaking ──▶ Online{peer}
//!    ▲                    ▲             │ error          │ 5 failed handshakes (circuit breaker)
//!    │ unpair             │ timer /     ▼                ▼
//!    │                    └──── WaitingToRetry{next, last_error}  (1 s doubling to 30 s, jitter)
//!    │                    │ timer (slow) / reconnect now
//!    │ unpair / pair      │   relay says the pairing is gone (revoked, unknown, expired, …)
//!    ├──────────────── Refused{reason, next} ◀──────────────────────
//!    │ sealed `unpair` from the agent
//!    └────────────────────────────────── (any connected state)
//! NeedsRepairing{reason}: the stored pairing itself is unreadable (keyring damaged).
//! ```
//!
//! Nothing the person sends is lost: every message is written to the outbox before it is first
//! transmitted, waits there while the agent is away, and is resent after each meeting until the
//! agent acknowledges it. Nothing is sealed with an old meeting's keys.
//!
//! Nothing the relay says destroys what this end holds: a relay error, however permanent it claims
//! to be, and any number of failed or unanswered meetings only change the state; the pairing and
//! the outbox go only when the person unpairs or pairs again, or when the agent says `unpair`
//! inside a meeting (sealed with the pinned keys, so no relay can forge it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use clawtray_proto::chat::{ToAgent, ToDesktop};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::delivery::Delivery;
use clawtray_proto::endpoint::{Endpoint, Event};
use clawtray_proto::sealed::MAX_PLAINTEXT;
use clawtray_proto::secret::SecretString;
use clawtray_proto::{ProtoError, Role};

use crate::error::{ClientError, PairError};
use crate::pairing_flow;
use crate::relay_url::RelayUrl;
use crate::session_store::{SessionInfo, SessionStore, StoreError, StoredSession};
use crate::state::{ClientEvent, ConnectionState, MessageState, PeerPresence, Sent};
use crate::wire::{self, Inbound, Ws};
use clawtray_outbox::{Durability, Outbox, OUTBOX_FILE};
use clawtray_transport::backoff::{unit_random, Backoff};
use clawtray_transport::heartbeat::{Beat, Heartbeat};
use clawtray_transport::paced::PacedSender;

/// Messages that may wait for the agent at once.
pub const OUTBOX_CAPACITY: usize = 10_000;
/// Failed handshakes on one connection before it is dropped (circuit breaker).
pub const MAX_HANDSHAKE_FAILURES: u32 = 5;
/// Circuit-breaker trips in a row (with no successful meeting) before the person is told the agent
/// may no longer know this device. The pairing is kept all the same: a relay can forge or drop
/// meeting replies, so failed meetings never count towards forgetting.
pub const MAX_BREAKER_TRIPS: u32 = 3;
/// How long an unpair waits for the agent to acknowledge the sealed `unpair` before it goes on.
pub const UNPAIR_ACK_WAIT: Duration = Duration::from_secs(3);

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the outbox lives.
    pub data_dir: PathBuf,
    /// The name shown to the agent at pairing.
    pub device_name: String,
    /// Allow `ws://` relays on other hosts (the token would travel in clear).
    pub allow_insecure_relay: bool,
    /// WebSocket ping period while connected.
    pub ping_interval: Duration,
    /// A ping unanswered this long means the link is dead.
    pub pong_timeout: Duration,
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time for the agent to answer a meeting.
    pub handshake_timeout: Duration,
    /// Sent messages unacknowledged this long, with the agent there, start a new meeting (which
    /// resends them): a frame lost or dropped on the way is not waited for forever.
    pub ack_timeout: Duration,
    /// After a frame fails to open (tampered, replayed, out of order), wait this long for more of
    /// the same, then start one new meeting so both ends resend what was lost.
    pub resync_delay: Duration,
    /// While the relay refuses the pairing, try it again this often (the pairing is kept).
    pub refused_retry: Duration,
    /// A live meeting's keys retire after this long (and after 2^31 frames either way): a new
    /// meeting starts on the same connection.
    pub rekey_after: Duration,
}

impl ClientConfig {
    /// Defaults: ping every 15 s, dead after 15 s more (a dead link is noticed within ~30 s).
    #[must_use]
    pub fn new(data_dir: PathBuf, device_name: String) -> Self {
        Self {
            data_dir,
            device_name,
            allow_insecure_relay: false,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(10),
            resync_delay: Duration::from_millis(500),
            refused_retry: Duration::from_secs(300),
            rekey_after: clawtray_proto::endpoint::REKEY_AFTER,
        }
    }
}

enum Command {
    Pair {
        code: String,
        relay: String,
        reply: oneshot::Sender<Result<SessionInfo, PairError>>,
    },
    Send {
        text: String,
        reply: oneshot::Sender<Result<Sent, ClientError>>,
    },
    Abort {
        run_id: String,
    },
    History {
        limit: u32,
    },
    Queued {
        reply: oneshot::Sender<Vec<(String, String)>>,
    },
    Session {
        reply: oneshot::Sender<Option<SessionInfo>>,
    },
    Unpair {
        reply: oneshot::Sender<()>,
    },
    ReconnectNow,
    Shutdown,
}

/// Handle to a running client.
pub struct RelayClient {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<ClientEvent>,
    state: watch::Receiver<ConnectionState>,
    task: JoinHandle<()>,
}

impl RelayClient {
    /// Start the client: loads the pairing from `store` and resumes silently if there is one.
    #[must_use]
    pub fn start(config: ClientConfig, store: Arc<dyn SessionStore>) -> Self {
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(4096);
        let (state_tx, state) = watch::channel(ConnectionState::Unpaired);
        let actor = Actor {
            config,
            store,
            rx,
            events: events.clone(),
            state_tx,
            paired: None,
            backoff: Backoff::default(),
            breaker_trips: 0,
        };
        let task = tokio::spawn(actor.run());
        Self {
            tx,
            events,
            state,
            task,
        }
    }

    /// Events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// The current state, and a way to wait for changes.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Pair with the code the agent shows, through `relay_url`.
    pub async fn pair(&self, code: &str, relay_url: &str) -> Result<SessionInfo, PairError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Pair {
                code: code.to_owned(),
                relay: relay_url.to_owned(),
                reply,
            })
            .await
            .map_err(|_| PairError::Stopped)?;
        rx.await.map_err(|_| PairError::Stopped)?
    }

    /// Send a chat message; returns its id. It is queued if the agent is away.
    pub async fn send(&self, text: &str) -> Result<String, ClientError> {
        self.send_message(text).await.map(|s| s.id)
    }

    /// Send a chat message; returns its id and where it is (sealed and sent, or queued): the
    /// core decides, so no UI has to guess from the connection state.
    pub async fn send_message(&self, text: &str) -> Result<Sent, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send {
                text: text.to_owned(),
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Ask the agent to stop a running reply.
    pub async fn abort(&self, run_id: &str) -> Result<(), ClientError> {
        self.tx
            .send(Command::Abort {
                run_id: run_id.to_owned(),
            })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Ask the agent for the conversation so far (answered with a `history` chat event).
    pub async fn load_history(&self, limit: u32) -> Result<(), ClientError> {
        self.tx
            .send(Command::History { limit })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Chat messages waiting in the outbox: `(id, text)`.
    pub async fn queued(&self) -> Vec<(String, String)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Queued { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The current pairing's metadata.
    pub async fn session(&self) -> Option<SessionInfo> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Session { reply }).await.ok()?;
        rx.await.ok().flatten()
    }

    /// End the pairing (tells the relay when connected) and forget it.
    pub async fn unpair(&self) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Unpair { reply })
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Skip the retry wait and connect now.
    pub async fn reconnect_now(&self) {
        let _ = self.tx.send(Command::ReconnectNow).await;
    }

    /// Stop the client and wait for it.
    pub async fn shutdown(self) {
        let _ = self.tx.send(Command::Shutdown).await;
        let _ = self.task.await;
    }
}

/// How one connection ended.
enum Outcome {
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
struct Paired {
    info: SessionInfo,
    token: SecretString,
    endpoint: Endpoint<ToAgent, ToDesktop>,
    outbox: Outbox<ToAgent>,
    ids: HashMap<u64, String>,
}

struct Actor {
    config: ClientConfig,
    store: Arc<dyn SessionStore>,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<ClientEvent>,
    state_tx: watch::Sender<ConnectionState>,
    paired: Option<Paired>,
    backoff: Backoff,
    breaker_trips: u32,
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

impl Actor {
    fn set_state(&self, s: ConnectionState) {
        if *self.state_tx.borrow() == s {
            return;
        }
        debug!(state = ?s, "state");
        self.state_tx.send_replace(s.clone());
        let _ = self.events.send(ClientEvent::State { state: s });
    }

    fn emit(&self, e: ClientEvent) {
        let _ = self.events.send(e);
    }

    fn notice(&self, message: String) {
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

    async fn run(mut self) {
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
            Command::Abort { .. }
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
        self.breaker_trips = 0;
        Ok((ws, info))
    }

    async fn forget(&mut self) {
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
    fn queue_command(&mut self, cmd: Command) -> Vec<Event<ToDesktop>> {
        match cmd {
            Command::Send { text, reply } => match self.enqueue_chat(text) {
                Ok((sent, events)) => {
                    let _ = reply.send(Ok(sent));
                    events
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Vec::new()
                }
            },
            Command::Abort { run_id } => self
                .enqueue(ToAgent::ChatAbort { run_id })
                .unwrap_or_default(),
            Command::History { limit } => self
                .enqueue(ToAgent::ChatHistory {
                    limit,
                    before: None,
                })
                .unwrap_or_default(),
            Command::Queued { reply } => {
                let q = self
                    .paired
                    .as_ref()
                    .map(|p| {
                        p.endpoint
                            .delivery()
                            .pending()
                            .filter_map(|(_, m)| match m {
                                ToAgent::Chat { id, text, .. } => Some((id.clone(), text.clone())),
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

    fn enqueue_chat(&mut self, text: String) -> Result<(Sent, Vec<Event<ToDesktop>>), ClientError> {
        if text.len() > MAX_PLAINTEXT - 1024 {
            return Err(ClientError::MessageTooLong(text.len()));
        }
        let id = new_message_id();
        let events = self.enqueue(ToAgent::Chat {
            id: id.clone(),
            text,
            session: None,
        })?;
        let state = if events.iter().any(|e| matches!(e, Event::Transmit(_))) {
            MessageState::Sent
        } else {
            MessageState::Queued
        };
        Ok((Sent { id, state }, events))
    }

    /// Persist, then hand to the endpoint (which transmits at once when a meeting is live).
    fn enqueue(&mut self, msg: ToAgent) -> Result<Vec<Event<ToDesktop>>, ClientError> {
        let p = self.paired.as_mut().ok_or(ClientError::NotPaired)?;
        let seq = p.endpoint.delivery().next_seq();
        p.outbox
            .enqueue(seq, &msg)
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

    /// Run one relay connection until it ends.
    async fn connection(&mut self, preopened: Option<Ws>) -> Outcome {
        let Some(p) = self.paired.as_ref() else {
            return Outcome::Unpaired;
        };
        let (mut ws, peer_online) = match preopened {
            Some(ws) => (ws, true),
            None => {
                self.set_state(ConnectionState::Connecting);
                let relay =
                    match RelayUrl::parse(&p.info.relay_url, self.config.allow_insecure_relay) {
                        Ok(r) => r,
                        Err(e) => return Outcome::Refused(e),
                    };
                let url = relay.endpoint("/v1/desktop", &[("session", &p.info.session_id)]);
                let mut ws =
                    match wire::connect(&url, Some(p.token.expose()), self.config.connect_timeout)
                        .await
                    {
                        Ok(ws) => ws,
                        Err(e) => return Outcome::Transient(format!("relay unreachable: {e}")),
                    };
                match wire::recv_within(&mut ws, self.config.connect_timeout).await {
                    Ok(Inbound::Control(ControlFrame::Resumed { peer_online })) => {
                        (ws, peer_online)
                    }
                    Ok(Inbound::Control(ControlFrame::Error { code, message })) => {
                        return relay_error(code, message)
                    }
                    Ok(other) => {
                        return Outcome::Transient(format!(
                            "unexpected answer from the relay: {other:?}"
                        ))
                    }
                    Err(e) => return Outcome::Transient(format!("the relay did not answer: {e}")),
                }
            }
        };
        self.backoff.reset();
        let mut conn = Conn {
            handshake_deadline: None,
            handshake_failures: 0,
            rejected: 0,
            resync_at: None,
            ack_wait_since: None,
            rekey_at: None,
            out: PacedSender::new(),
        };
        if peer_online {
            if let Err(o) = self.start_meeting(&mut ws, &mut conn).await {
                return o;
            }
        } else {
            self.set_state(ConnectionState::Online {
                peer: PeerPresence::Away,
            });
        }
        let mut heartbeat = Heartbeat::new(self.config.ping_interval, self.config.pong_timeout);
        loop {
            if let Err(e) = conn.out.send_ready(&mut ws).await {
                return Outcome::Transient(format!("connection lost: {e}"));
            }
            let hs_deadline = conn.handshake_deadline;
            let resync_at = conn.resync_at;
            let ack_deadline = conn.ack_wait_since.map(|t| t + self.config.ack_timeout);
            let rekey_at = conn.rekey_at;
            tokio::select! {
                () = conn.out.due() => {}
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return Outcome::Shutdown };
                    if let Some(o) = self.online_command(cmd, &mut ws, &mut conn).await {
                        return o;
                    }
                    self.watch_acks(&mut conn, false);
                }
                inbound = wire::recv(&mut ws) => {
                    heartbeat.heard();
                    if let Err(o) = self.on_inbound(inbound, &mut ws, &mut conn).await {
                        return o;
                    }
                    if let Err(o) = self.rekey_if_worn(&mut ws, &mut conn).await {
                        return o;
                    }
                }
                () = sleep_until(rekey_at.unwrap_or_else(Instant::now)), if rekey_at.is_some() => {
                    conn.rekey_at = None;
                    info!("the meeting's keys are a day old; starting a new secure meeting");
                    if let Err(o) = self.start_meeting(&mut ws, &mut conn).await {
                        return o;
                    }
                }
                beat = heartbeat.tick() => {
                    if beat == Beat::Dead {
                        return Outcome::Transient("the relay stopped answering (dead link)".into());
                    }
                    if wire::send_ping(&mut ws).await.is_err() {
                        return Outcome::Transient("connection lost".into());
                    }
                }
                () = sleep_until(resync_at.unwrap_or_else(Instant::now)), if resync_at.is_some() => {
                    conn.resync_at = None;
                    if let Err(o) = self.start_meeting(&mut ws, &mut conn).await {
                        return o;
                    }
                }
                () = sleep_until(ack_deadline.unwrap_or_else(Instant::now)), if ack_deadline.is_some() => {
                    conn.ack_wait_since = None;
                    self.notice(format!(
                        "the agent has not confirmed a message for {} s; starting a new secure meeting to resend it",
                        self.config.ack_timeout.as_secs()
                    ));
                    if let Err(o) = self.start_meeting(&mut ws, &mut conn).await {
                        return o;
                    }
                }
                () = sleep_until(hs_deadline.unwrap_or_else(Instant::now)), if hs_deadline.is_some() => {
                    if let Err(o) = self.handshake_failed(&mut ws, &mut conn, "the agent did not answer the handshake in time".into()).await {
                        return o;
                    }
                }
            }
        }
    }

    async fn start_meeting(&mut self, ws: &mut Ws, conn: &mut Conn) -> Result<(), Outcome> {
        let Some(p) = self.paired.as_mut() else {
            return Err(Outcome::Unpaired);
        };
        let events = p
            .endpoint
            .start_meeting()
            .map_err(|e| Outcome::Transient(e.to_string()))?;
        conn.handshake_deadline = Some(Instant::now() + self.config.handshake_timeout);
        conn.resync_at = None;
        conn.ack_wait_since = None;
        conn.rekey_at = None;
        self.set_state(ConnectionState::Handshaking);
        self.handle_events(events, ws, conn).await
    }

    /// Start a new meeting when the live one has carried 2^31 frames either way.
    async fn rekey_if_worn(&mut self, ws: &mut Ws, conn: &mut Conn) -> Result<(), Outcome> {
        let worn = self
            .paired
            .as_ref()
            .is_some_and(|p| p.endpoint.wants_rekey());
        if worn {
            info!("the meeting carried 2^31 frames; starting a new secure meeting");
            self.start_meeting(ws, conn).await?;
        }
        Ok(())
    }

    async fn handshake_failed(
        &mut self,
        ws: &mut Ws,
        conn: &mut Conn,
        why: String,
    ) -> Result<(), Outcome> {
        conn.handshake_failures += 1;
        conn.handshake_deadline = None;
        warn!(
            failures = conn.handshake_failures,
            "handshake with the agent failed: {why}"
        );
        if conn.handshake_failures >= MAX_HANDSHAKE_FAILURES {
            self.breaker_trips = self.breaker_trips.saturating_add(1);
            self.notice(format!("{MAX_HANDSHAKE_FAILURES} handshakes with the agent failed in a row ({why}); reconnecting with backoff"));
            if self.breaker_trips >= MAX_BREAKER_TRIPS {
                // a relay can forge or drop meeting replies: this never forgets the pairing
                return Err(Outcome::Transient(format!(
                    "the agent has not recognised this device in {} handshakes — it may have been reinstalled or unpaired while this device was away. The pairing and queued messages are kept: pair again to replace it, or unpair ({why})",
                    MAX_HANDSHAKE_FAILURES * self.breaker_trips
                )));
            }
            return Err(Outcome::Transient(format!(
                "secure handshake failed: {why}"
            )));
        }
        self.start_meeting(ws, conn).await
    }

    async fn on_inbound(
        &mut self,
        inbound: Inbound,
        ws: &mut Ws,
        conn: &mut Conn,
    ) -> Result<(), Outcome> {
        match inbound {
            Inbound::Control(ControlFrame::PeerOnline | ControlFrame::PeerRestarted) => {
                // a fresh agent connection: earlier silence (a dead link, an agent mid-restart)
                // says nothing about whether this one knows us
                conn.handshake_failures = 0;
                self.breaker_trips = 0;
                self.start_meeting(ws, conn).await
            }
            Inbound::Control(ControlFrame::PeerOffline) => {
                if let Some(p) = self.paired.as_mut() {
                    p.endpoint.peer_left();
                }
                conn.handshake_deadline = None;
                conn.resync_at = None;
                conn.ack_wait_since = None;
                conn.rekey_at = None;
                self.set_state(ConnectionState::Online {
                    peer: PeerPresence::Away,
                });
                Ok(())
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
                self.handle_events(events, ws, conn).await?;
                let ack = self.paired.as_mut().and_then(|p| p.endpoint.flush_ack());
                if let Some(f) = ack {
                    conn.out.push(f);
                }
                Ok(())
            }
            Inbound::Pong => Ok(()),
            Inbound::Closed(why) => Err(Outcome::Transient(format!(
                "connection to the relay lost: {why}"
            ))),
        }
    }

    async fn handle_events(
        &mut self,
        events: Vec<Event<ToDesktop>>,
        ws: &mut Ws,
        conn: &mut Conn,
    ) -> Result<(), Outcome> {
        let mut acked = false;
        for e in events {
            match e {
                Event::Transmit(f) => conn.out.push(f),
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
                Event::Deliver { seq, body } => {
                    let mut fresh = true;
                    if let Some(p) = self.paired.as_ref() {
                        // a run's ending can come twice (an agent killed after queueing it asks
                        // the gateway again after its restart): show it once
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
                    if fresh {
                        self.emit(ClientEvent::Chat { message: body });
                    } else {
                        debug!("a run's ending arrived again; dropped");
                    }
                }
                Event::Acked(seqs) => {
                    acked = true;
                    let Some(p) = self.paired.as_mut() else {
                        continue;
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
                Event::Online => {
                    conn.rekey_at = Some(Instant::now() + self.config.rekey_after);
                    conn.handshake_deadline = None;
                    conn.handshake_failures = 0;
                    self.breaker_trips = 0;
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
                }
                Event::Rejected(e) => {
                    conn.rejected += 1;
                    if conn.rejected == 1 {
                        self.notice(format!("a frame from the relay was refused ({e}): it was altered, replayed or reordered on the way; nothing it carried was shown, and a new secure meeting will resend what was lost"));
                    } else {
                        debug!(error = %e, "frame rejected");
                    }
                    let live = self.paired.as_ref().is_some_and(|p| p.endpoint.is_online());
                    if live && conn.resync_at.is_none() {
                        conn.resync_at = Some(Instant::now() + self.config.resync_delay);
                    }
                }
                Event::HandshakeFailed(e) => {
                    Box::pin(self.handshake_failed(ws, conn, e.to_string())).await?
                }
                Event::MeetingBroken => {
                    self.notice("too many frames from the agent failed to open; starting a new secure meeting".into());
                    Box::pin(self.start_meeting(ws, conn)).await?;
                }
            }
        }
        self.watch_acks(conn, acked);
        Ok(())
    }

    /// Arm (or disarm) the ack watchdog: it runs while the meeting is live and sent messages
    /// wait for an ack, restarting whenever acks make progress.
    fn watch_acks(&self, conn: &mut Conn, progressed: bool) {
        let waiting = self
            .paired
            .as_ref()
            .is_some_and(|p| p.endpoint.is_online() && p.endpoint.delivery().unacked_len() > 0);
        if !waiting {
            conn.ack_wait_since = None;
        } else if progressed || conn.ack_wait_since.is_none() {
            conn.ack_wait_since = Some(Instant::now());
        }
    }

    async fn online_command(
        &mut self,
        cmd: Command,
        ws: &mut Ws,
        conn: &mut Conn,
    ) -> Option<Outcome> {
        match cmd {
            Command::Shutdown => {
                let _ = futures_util::SinkExt::close(ws).await;
                Some(Outcome::Shutdown)
            }
            Command::ReconnectNow => Some(Outcome::Reconnect),
            Command::Unpair { reply } => {
                self.tell_agent_unpair(ws, conn).await;
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
                        conn.out.push(f); // a broken connection loses nothing: the outbox keeps it
                    }
                }
                None
            }
        }
    }
}

impl Actor {
    /// When a meeting is live, send the sealed `unpair` and wait a little for the agent to
    /// acknowledge it, so the agent forgets this desktop too. (When the agent is away it is not
    /// told end to end; the relay's revocation makes it stop using the pairing, and its operator
    /// removes it with `clawtray-agent unpair`.)
    async fn tell_agent_unpair(&mut self, ws: &mut Ws, conn: &mut Conn) {
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
                conn.out.push(f);
            }
        }
        let deadline = Instant::now() + UNPAIR_ACK_WAIT;
        // the pacer may hold frames back: wait for their turn, within the deadline
        if !matches!(conn.out.drain_until(ws, deadline).await, Ok(true)) {
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

/// Per-connection bookkeeping.
struct Conn {
    handshake_deadline: Option<Instant>,
    handshake_failures: u32,
    /// Frames refused on this connection (the first one is reported).
    rejected: u32,
    /// A new meeting is due then (after refused frames).
    resync_at: Option<Instant>,
    /// Since when sent messages have been waiting for an ack in a live meeting.
    ack_wait_since: Option<Instant>,
    /// When the live meeting's keys retire.
    rekey_at: Option<Instant>,
    /// Frames waiting to go out, paced so a backlog never trips the relay's flood limits.
    out: PacedSender,
}

fn relay_error(code: ErrorCode, message: String) -> Outcome {
    if code.is_permanent() {
        // the relay's word only: keep everything (see the module docs)
        Outcome::Refused(format!("{message} (the relay says {code})"))
    } else {
        Outcome::Transient(format!("{code}: {message}"))
    }
}
