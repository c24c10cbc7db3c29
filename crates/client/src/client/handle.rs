//! [`RelayClient`], the handle the app and the CLI hold: each call is a command to the actor task
//! ([`super::actor`]), answered on a oneshot channel where it has an answer.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::actor::Actor;
use super::config::ClientConfig;
use clawtray_proto::chat::ApprovalDecision;

use crate::error::{ClientError, PairError};
use crate::outgoing_files::OutgoingFile;
use crate::session_store::{SessionInfo, SessionStore};
use crate::state::{ClientEvent, ConnectionState, Sent};

/// What the handle asks of the actor.
pub(super) enum Command {
    Pair {
        code: String,
        relay: String,
        reply: oneshot::Sender<Result<SessionInfo, PairError>>,
    },
    Send {
        text: String,
        /// The caller's id for it (a retried call finds its message), or a new one.
        id: Option<String>,
        /// The agent's session (conversation) it goes to; `None`: its default one.
        session: Option<String>,
        /// Files it carries.
        files: Vec<OutgoingFile>,
        reply: oneshot::Sender<Result<Sent, ClientError>>,
    },
    Abort {
        run_id: String,
        session: Option<String>,
    },
    /// Answer an exec approval (persisted and delivered like a chat message).
    Decide {
        id: String,
        decision: ApprovalDecision,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Ask the agent for the approvals waiting (answered with an `approvals` chat event).
    ListApprovals,
    History {
        limit: u32,
        before: Option<String>,
        session: Option<String>,
    },
    /// Ask the agent for its sessions (answered with a `sessions` chat event).
    ListSessions,
    Queued {
        reply: oneshot::Sender<Vec<(String, String, Option<String>)>>,
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

/// A session key a desktop may name: 1 to 128 printable characters, no spaces.
#[must_use]
pub fn valid_session_key(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic())
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
        let actor = Actor::new(config, store, rx, events.clone(), state_tx);
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
        self.command_send(text, None, None, Vec::new()).await
    }

    /// Send a chat message under the caller's `id` (1 to 64 of `[A-Za-z0-9_-]`, e.g. a UUID).
    /// Idempotent: while a message with this id waits in the outbox, a second call queues
    /// nothing and answers where the first one is — so a caller that lost the answer (a window
    /// whose host died mid-call) can simply ask again. The agent and the gateway dedupe the id
    /// too, so a message already delivered is not run twice either.
    pub async fn send_message_as(&self, text: &str, id: &str) -> Result<Sent, ClientError> {
        self.command_send(text, Some(id.to_owned()), None, Vec::new())
            .await
    }

    /// Send a chat message to the agent's session `session` (`None`: its default one), under
    /// the caller's `id` when given (see [`Self::send_message_as`]). A session the gateway does
    /// not know yet starts with this message.
    pub async fn send_to(
        &self,
        session: Option<&str>,
        text: &str,
        id: Option<&str>,
    ) -> Result<Sent, ClientError> {
        if let Some(s) = session {
            if !valid_session_key(s) {
                return Err(ClientError::BadSessionKey);
            }
        }
        self.send_with_files(session, text, id, Vec::new()).await
    }

    /// [`Self::send_to`] with files. They are checked against the agent's gateway's limits
    /// first ([`ClientError::Files`] says what is wrong, and nothing is queued), then travel in
    /// parts ahead of the message — queued like it, resent after a broken link only where the
    /// agent has not acknowledged them.
    pub async fn send_with_files(
        &self,
        session: Option<&str>,
        text: &str,
        id: Option<&str>,
        files: Vec<OutgoingFile>,
    ) -> Result<Sent, ClientError> {
        if let Some(s) = session {
            if !valid_session_key(s) {
                return Err(ClientError::BadSessionKey);
            }
        }
        self.command_send(
            text,
            id.map(str::to_owned),
            session.map(str::to_owned),
            files,
        )
        .await
    }

    async fn command_send(
        &self,
        text: &str,
        id: Option<String>,
        session: Option<String>,
        files: Vec<OutgoingFile>,
    ) -> Result<Sent, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send {
                text: text.to_owned(),
                id,
                session,
                files,
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Ask the agent to stop a running reply.
    pub async fn abort(&self, run_id: &str) -> Result<(), ClientError> {
        self.abort_in(None, run_id).await
    }

    /// Ask the agent to stop a running reply of session `session` (`None`: the default one).
    pub async fn abort_in(&self, session: Option<&str>, run_id: &str) -> Result<(), ClientError> {
        self.tx
            .send(Command::Abort {
                run_id: run_id.to_owned(),
                session: session.map(str::to_owned),
            })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Answer exec approval `id`. Sealed, persisted in the outbox and delivered once, like a chat
    /// message: an answer given while the agent or the relay is away goes when they are back.
    /// The agent answers a late, second, expired or not-allowed one with an `approval_refused`
    /// chat event.
    pub async fn decide(&self, id: &str, decision: ApprovalDecision) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Decide {
                id: id.to_owned(),
                decision,
                reply,
            })
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Ask the agent for the approvals waiting now (they come back as an `approvals` chat event).
    pub async fn list_approvals(&self) -> Result<(), ClientError> {
        self.tx
            .send(Command::ListApprovals)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Ask the agent for the conversation so far (answered with a `history` chat event).
    pub async fn load_history(&self, limit: u32) -> Result<(), ClientError> {
        self.load_history_page(None, limit, None).await
    }

    /// Ask the agent for a page of session `session`'s conversation: the latest `limit`
    /// messages, or (with `before`, the `older` cursor of a page shown) the page before that
    /// one. Answered with a `history` chat event that names both.
    pub async fn load_history_page(
        &self,
        session: Option<&str>,
        limit: u32,
        before: Option<&str>,
    ) -> Result<(), ClientError> {
        self.tx
            .send(Command::History {
                limit,
                before: before.map(str::to_owned),
                session: session.map(str::to_owned),
            })
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Ask the agent for its sessions (answered with a `sessions` chat event; the agent sends
    /// the list again when it changes).
    pub async fn list_sessions(&self) -> Result<(), ClientError> {
        self.tx
            .send(Command::ListSessions)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    /// Chat messages waiting in the outbox: `(id, text)`.
    pub async fn queued(&self) -> Vec<(String, String)> {
        self.queued_in_sessions()
            .await
            .into_iter()
            .map(|(id, text, _)| (id, text))
            .collect()
    }

    /// Chat messages waiting in the outbox: `(id, text, session)` (`None`: the default session).
    pub async fn queued_in_sessions(&self) -> Vec<(String, String, Option<String>)> {
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

    /// Ask the client to stop, through a shared handle: its connection closes; calls made after
    /// it answer [`ClientError::Stopped`].
    pub async fn stop(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}
