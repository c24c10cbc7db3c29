//! Shared by the desktop-core integration tests: a desktop paired with a scripted agent, what the
//! client told us (folded into the chat model, with counters for the checks), and small
//! predicates.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use clawtray_client::chat_model::Conversation;
use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ClientEvent, ConnectionState, MessageState, RelayClient};
use clawtray_proto::chat::ToDesktop;
use clawtray_testkit::agent_end::{Script, TestAgent};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn config(dir: &tempfile::TempDir) -> ClientConfig {
    ClientConfig::new(dir.path().join("data"), "test-desktop".into())
}

/// The real desktop core (sessions kept in memory) paired with a scripted agent, online.
pub struct PairedDesktop {
    pub client: RelayClient,
    pub agent: TestAgent,
    pub store: Arc<MemorySessionStore>,
    pub seen: Seen,
    pub dir: tempfile::TempDir,
}

/// Pair a desktop with a scripted agent and wait until both are online. The agent reaches the
/// relay at `agent_relay`, the desktop at `desktop_relay` (the same relay, or a proxy in front of
/// it); `tweak` adjusts the desktop's settings.
pub async fn pair_desktop(
    agent_relay: &str,
    desktop_relay: &str,
    script: Script,
    tweak: impl FnOnce(&mut ClientConfig),
) -> PairedDesktop {
    let (code, agent) = TestAgent::pair(agent_relay, script).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(MemorySessionStore::default());
    let mut cfg = config(&dir);
    tweak(&mut cfg);
    let client = RelayClient::start(cfg, store.clone());
    let mut seen = Seen::new(&client);
    let info = client
        .pair(&code, desktop_relay)
        .await
        .expect("pairing succeeds");
    assert_eq!(info.agent_name, "test-agent");
    let agent = agent.await.expect("the agent paired");
    seen.until("online after pairing", online).await;
    PairedDesktop {
        client,
        agent,
        store,
        seen,
        dir,
    }
}

/// Everything the client told us, folded into the chat model, with counters for the checks.
pub struct Seen {
    pub rx: broadcast::Receiver<ClientEvent>,
    pub conv: Conversation,
    pub replies: HashMap<String, usize>,
    pub aborted: Vec<String>,
    pub states: Vec<ConnectionState>,
    pub message_states: HashMap<String, Vec<MessageState>>,
    pub acks: HashMap<String, String>,
    pub notices: Vec<String>,
}

impl Seen {
    pub fn new(client: &RelayClient) -> Self {
        Self {
            rx: client.subscribe(),
            conv: Conversation::default(),
            replies: HashMap::new(),
            aborted: Vec::new(),
            states: Vec::new(),
            message_states: HashMap::new(),
            acks: HashMap::new(),
            notices: Vec::new(),
        }
    }

    pub fn apply(&mut self, ev: ClientEvent) {
        if let ClientEvent::Notice { message } = &ev {
            self.notices.push(message.clone());
        }
        match ev {
            ClientEvent::Chat { message } => {
                match &message {
                    ToDesktop::ChatReply { run_id, .. } => {
                        *self.replies.entry(run_id.clone()).or_default() += 1
                    }
                    ToDesktop::ChatAborted { run_id, .. } => self.aborted.push(run_id.clone()),
                    ToDesktop::ChatAck { id, run_id, .. } => {
                        self.acks.insert(id.clone(), run_id.clone());
                    }
                    _ => {}
                }
                self.conv.apply(&message);
            }
            ClientEvent::State { state } => self.states.push(state),
            ClientEvent::Message { id, state } => {
                self.message_states
                    .entry(id.clone())
                    .or_default()
                    .push(state);
                self.conv.message_state(&id, state);
            }
            ClientEvent::Notice { .. } => {}
        }
    }

    pub async fn until(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pred(self) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Ok(ev)) => self.apply(ev),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("lagged {n} events"),
                Ok(Err(e)) => panic!("events closed: {e}"),
                Err(_) => panic!("timed out waiting for {what}; states: {:?}", self.states),
            }
        }
    }

    pub fn reply_text(&self, id: &str) -> Option<String> {
        let run = self.acks.get(id)?;
        self.conv
            .entries()
            .iter()
            .find(|e| {
                e.run_id.as_deref() == Some(run)
                    && e.author == clawtray_client::chat_model::Author::Assistant
            })
            .map(|e| e.text.clone())
    }

    pub fn answered(&self, id: &str) -> bool {
        self.acks
            .get(id)
            .is_some_and(|run| self.replies.contains_key(run))
    }
}

pub fn online(s: &Seen) -> bool {
    matches!(
        s.states.last(),
        Some(ConnectionState::Online {
            peer: PeerPresence::Online
        })
    )
}
