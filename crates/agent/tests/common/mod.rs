//! End-to-end harness: the real OpenClaw gateway (pinned, offline, fake model), the real relay
//! binary, real `clawtray-agent` processes, and the real desktop core (`RelayClient`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ClientEvent, ConnectionState, RelayClient};
use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest, GatewayStatus, ToDesktop};
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::relay::Relay;

pub const WAIT: Duration = Duration::from_secs(60);

/// A `clawtray-agent run` process.
pub type AgentProc = clawtray_testkit::agent::AgentRun;

pub fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_clawtray-agent"))
}

pub fn start_agent(state: &Path, gateway: &Gateway, session_key: &str) -> AgentProc {
    AgentProc::start(agent_bin(), state, gateway, session_key)
}

/// What the desktop saw.
pub struct Seen {
    pub rx: broadcast::Receiver<ClientEvent>,
    pub states: Vec<ConnectionState>,
    /// message id → run id
    pub acks: HashMap<String, String>,
    /// run id → text built from deltas alone (seq-deduped, replace honoured)
    pub streamed: HashMap<String, (u64, String)>,
    pub replies: HashMap<String, Vec<String>>,
    pub aborted: Vec<String>,
    pub errors: Vec<(Option<String>, String)>,
    pub statuses: Vec<GatewayStatus>,
    pub history: Option<Vec<clawtray_proto::chat::HistoryMessage>>,
    /// Notices, in order.
    pub notices: Vec<String>,
    /// Exec approvals announced, in order.
    pub approvals: Vec<ApprovalRequest>,
    /// Approvals resolved: (id, decision, by).
    pub resolved: Vec<(String, Option<ApprovalDecision>, Option<String>)>,
    /// This desktop's answers refused: (id, sentence).
    pub refused: Vec<(String, String)>,
    /// Answers to `approval_list`.
    pub approval_lists: Vec<Vec<ApprovalRequest>>,
    /// run id → the session its messages were marked with (every message of a run agrees)
    pub run_sessions: HashMap<String, Vec<Option<String>>>,
    /// History pages, in order of arrival.
    pub pages: Vec<HistoryPage>,
    /// Session lists, in order of arrival.
    pub session_lists: Vec<Vec<clawtray_proto::chat::SessionSummary>>,
    /// Acks and endings in order of arrival: `ack:RUN`, `end:RUN`.
    pub log: Vec<String>,
}

/// One `history` answer.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub session: Option<String>,
    pub before: Option<String>,
    pub older: Option<String>,
    pub messages: Vec<clawtray_proto::chat::HistoryMessage>,
}

impl Seen {
    pub fn new(client: &RelayClient) -> Self {
        Self {
            rx: client.subscribe(),
            states: Vec::new(),
            acks: HashMap::new(),
            streamed: HashMap::new(),
            replies: HashMap::new(),
            aborted: Vec::new(),
            errors: Vec::new(),
            statuses: Vec::new(),
            history: None,
            notices: Vec::new(),
            approvals: Vec::new(),
            resolved: Vec::new(),
            refused: Vec::new(),
            approval_lists: Vec::new(),
            run_sessions: HashMap::new(),
            pages: Vec::new(),
            session_lists: Vec::new(),
            log: Vec::new(),
        }
    }

    fn apply(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::State { state } => self.states.push(state),
            ClientEvent::Chat { message } => {
                if let Some(run) = message
                    .ended_run()
                    .or(match &message {
                        ToDesktop::ChatDelta { run_id, .. } | ToDesktop::ChatAck { run_id, .. } => {
                            Some(run_id.as_str())
                        }
                        _ => None,
                    })
                    .map(str::to_owned)
                {
                    let s = message.session().map(str::to_owned);
                    let kind = if message.ended_run().is_some() {
                        "end"
                    } else if matches!(message, ToDesktop::ChatAck { .. }) {
                        "ack"
                    } else {
                        "delta"
                    };
                    if kind != "delta" {
                        self.log.push(format!("{kind}:{run}"));
                    }
                    self.run_sessions.entry(run).or_default().push(s);
                }
                self.apply_chat(message)
            }
            ClientEvent::Notice { message } => self.notices.push(message),
            ClientEvent::Message { .. } => {}
        }
    }

    fn apply_chat(&mut self, message: ToDesktop) {
        match message {
            ToDesktop::ChatAck { id, run_id, .. } => {
                self.acks.insert(id, run_id);
            }
            ToDesktop::ChatDelta {
                run_id,
                seq,
                text,
                replace,
                ..
            } => {
                let e = self.streamed.entry(run_id).or_insert((0, String::new()));
                if seq > e.0 {
                    e.0 = seq;
                    if replace {
                        e.1 = text;
                    } else {
                        e.1.push_str(&text);
                    }
                }
            }
            ToDesktop::ChatReply { run_id, text, .. } => {
                self.replies.entry(run_id).or_default().push(text)
            }
            ToDesktop::ChatAborted { run_id, .. } => self.aborted.push(run_id),
            ToDesktop::ChatError {
                run_id, message, ..
            } => self.errors.push((run_id, message)),
            ToDesktop::AgentStatus { gateway, .. } => self.statuses.push(gateway),
            ToDesktop::History {
                messages,
                session,
                before,
                older,
            } => {
                self.pages.push(HistoryPage {
                    session,
                    before,
                    older,
                    messages: messages.clone(),
                });
                self.history = Some(messages);
            }
            ToDesktop::Sessions { sessions } => self.session_lists.push(sessions),
            ToDesktop::Unpair => {
                panic!("the client acts on a sealed unpair; it never passes it on")
            }
            ToDesktop::ChatTyping { .. } => {}
            ToDesktop::ApprovalRequested { approval } => self.approvals.push(*approval),
            ToDesktop::ApprovalResolved { id, decision, by } => {
                self.resolved.push((id, decision, by))
            }
            ToDesktop::ApprovalRefused { id, message } => self.refused.push((id, message)),
            ToDesktop::Approvals { pending } => self.approval_lists.push(pending),
            ToDesktop::Unknown => {
                panic!("the agent sent a kind of message this build does not know")
            }
        }
    }

    pub async fn until(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pred(self) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Ok(ev)) => self.apply(ev),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("lagged {n}"),
                Ok(Err(e)) => panic!("events closed: {e}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; states {:?}; errors {:?}",
                    self.states, self.errors
                ),
            }
        }
    }

    /// Where `entry` first is in the log.
    pub fn logged(&self, entry: &str) -> Option<usize> {
        self.log.iter().position(|e| e == entry)
    }

    pub fn run_of(&self, id: &str) -> Option<&String> {
        self.acks.get(id)
    }

    pub fn reply_of(&self, id: &str) -> Option<&Vec<String>> {
        self.replies.get(self.acks.get(id)?)
    }

    pub fn streamed_of(&self, id: &str) -> Option<&str> {
        self.streamed
            .get(self.acks.get(id)?)
            .map(|(_, t)| t.as_str())
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

/// A paired desktop + agent through a fresh relay.
pub struct Setup {
    pub relay: Relay,
    pub agent: AgentProc,
    pub state: tempfile::TempDir,
    pub data: tempfile::TempDir,
    pub store: Arc<MemorySessionStore>,
    pub client: RelayClient,
    pub seen: Seen,
    pub session_key: String,
}

pub fn client_config(data: &Path) -> ClientConfig {
    ClientConfig::new(data.to_owned(), "e2e-desktop".into())
}

pub async fn setup(gateway: &Gateway, session_key: &str) -> Setup {
    let relay = Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(&state.path().join("agent"), gateway, session_key);
    // `clawtray-agent pair` prints the code; the person types it on the desktop
    let pairing =
        Pairing::start(agent_bin(), &state.path().join("agent"), &base, "e2e-agent").await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(MemorySessionStore::default());
    let client = RelayClient::start(client_config(data.path()), store.clone());
    let mut seen = Seen::new(&client);
    let info = client
        .pair(&pairing.code, &base)
        .await
        .expect("pairing succeeds");
    assert_eq!(info.agent_name, "e2e-agent");
    let rest = pairing.finish().await;
    assert!(rest.contains("Paired with e2e-desktop"), "{rest}");
    seen.until("the desktop online with the running agent", online)
        .await;
    Setup {
        relay,
        agent,
        state,
        data,
        store,
        client,
        seen,
        session_key: session_key.to_owned(),
    }
}
