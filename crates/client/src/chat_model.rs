//! The conversation as the UI shows it, built from the person's sends and the agent's chat
//! events. Pure and deterministic: deltas are reconciled by run id and `seq` (duplicates and
//! backward seqs ignored), the final reply's full text wins over the accumulated deltas.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use clawtray_proto::chat::{GatewayStatus, HistoryMessage, ToDesktop};

use crate::state::MessageState;

/// Who wrote an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    User,
    Assistant,
    System,
}

/// One bubble of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Message id (user) or run id (assistant).
    pub id: String,
    pub author: Author,
    pub text: String,
    /// For the person's messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<MessageState>,
    /// The run answering (user) or producing (assistant) this entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// An assistant reply still streaming.
    pub streaming: bool,
    pub aborted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    last_seq: Option<u64>,
}

impl Entry {
    fn user(id: String, text: String, state: MessageState) -> Self {
        Self {
            id,
            author: Author::User,
            text,
            state: Some(state),
            run_id: None,
            streaming: false,
            aborted: false,
            error: None,
            last_seq: None,
        }
    }

    fn assistant(run_id: String) -> Self {
        Self {
            id: run_id.clone(),
            author: Author::Assistant,
            text: String::new(),
            state: None,
            run_id: Some(run_id),
            streaming: true,
            aborted: false,
            error: None,
            last_seq: None,
        }
    }
}

/// What an applied event changed (so a UI can update one bubble instead of re-rendering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Nothing,
    /// The entry at this index changed or was added.
    Entry(usize),
    /// Text was appended to the entry at this index.
    Appended {
        index: usize,
        text: String,
    },
    /// Everything changed (history loaded).
    All,
    Typing(bool),
    Gateway(GatewayStatus),
}

/// One conversation (one gateway session: the default one unless made with
/// [`Conversation::of`]); chat messages of other sessions leave it unchanged.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    /// The session shown (`None`: the agent's default session).
    session: Option<String>,
    entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    typing: bool,
    gateway: Option<GatewayStatus>,
}

impl Conversation {
    /// The conversation of gateway session `session`.
    #[must_use]
    pub fn of(session: &str) -> Self {
        Self {
            session: Some(session.to_owned()),
            ..Self::default()
        }
    }

    /// All entries, oldest first.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether the agent is typing.
    #[must_use]
    pub fn typing(&self) -> bool {
        self.typing
    }

    /// The agent's gateway, as last reported.
    #[must_use]
    pub fn gateway(&self) -> Option<GatewayStatus> {
        self.gateway
    }

    /// The runs still streaming (what an abort button would stop).
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| e.streaming)
            .filter_map(|e| e.run_id.as_deref())
    }

    fn push(&mut self, e: Entry) -> usize {
        let i = self.entries.len();
        self.by_id.insert(e.id.clone(), i);
        self.entries.push(e);
        i
    }

    fn assistant_index(&mut self, run_id: &str) -> usize {
        match self.by_id.get(run_id) {
            Some(&i) if self.entries[i].author == Author::Assistant => i,
            _ => self.push(Entry::assistant(run_id.to_owned())),
        }
    }

    /// The person sent a message (shown at once, marked queued or sent).
    pub fn sent(&mut self, id: &str, text: &str, state: MessageState) -> Change {
        if let Some(&i) = self.by_id.get(id) {
            return Change::Entry(i);
        }
        Change::Entry(self.push(Entry::user(id.to_owned(), text.to_owned(), state)))
    }

    /// A sent message moved on. States only move forward.
    pub fn message_state(&mut self, id: &str, state: MessageState) -> Change {
        match self.by_id.get(id) {
            Some(&i) if self.entries[i].state.is_some_and(|s| s < state) => {
                self.entries[i].state = Some(state);
                Change::Entry(i)
            }
            _ => Change::Nothing,
        }
    }

    fn mark_answered(&mut self, run_id: &str) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.author == Author::User && e.run_id.as_deref() == Some(run_id))
        {
            e.state = Some(MessageState::Answered);
        }
    }

    /// Apply one message from the agent.
    pub fn apply(&mut self, msg: &ToDesktop) -> Change {
        if msg.session() != self.session.as_deref() && !matches!(msg, ToDesktop::AgentStatus { .. })
        {
            return Change::Nothing;
        }
        match msg {
            ToDesktop::ChatAck { id, run_id, .. } => {
                if let Some(&i) = self.by_id.get(id) {
                    let e = &mut self.entries[i];
                    e.run_id = Some(run_id.clone());
                    if e.state.is_some_and(|s| s < MessageState::Delivered) {
                        e.state = Some(MessageState::Delivered);
                    }
                }
                let i = self.assistant_index(run_id);
                Change::Entry(i)
            }
            ToDesktop::ChatDelta {
                run_id,
                seq,
                text,
                replace,
.. } => {
                let i = self.assistant_index(run_id);
                let e = &mut self.entries[i];
                if !e.streaming || e.last_seq.is_some_and(|last| *seq <= last) {
                    return Change::Nothing;
                }
                e.last_seq = Some(*seq);
                if *replace {
                    e.text.clone_from(text);
                    return Change::Entry(i);
                }
                e.text.push_str(text);
                Change::Appended {
                    index: i,
                    text: text.clone(),
                }
            }
            ToDesktop::ChatReply { run_id, text, .. } => {
                let i = self.assistant_index(run_id);
                let e = &mut self.entries[i];
                e.text.clone_from(text);
                e.streaming = false;
                self.mark_answered(run_id);
                Change::Entry(i)
            }
            ToDesktop::ChatAborted { run_id, .. } => {
                let i = self.assistant_index(run_id);
                self.entries[i].streaming = false;
                self.entries[i].aborted = true;
                self.mark_answered(run_id);
                Change::Entry(i)
            }
            ToDesktop::ChatError {
                run_id: Some(run_id),
                message,
.. } => {
                let i = self.assistant_index(run_id);
                self.entries[i].streaming = false;
                self.entries[i].error = Some(message.clone());
                Change::Entry(i)
            }
            ToDesktop::ChatError {
                run_id: None,
                message,
.. } => {
                let id = format!("notice-{}", self.entries.len());
                let mut e = Entry::assistant(id);
                e.author = Author::System;
                e.streaming = false;
                e.run_id = None;
                e.error = Some(message.clone());
                Change::Entry(self.push(e))
            }
            ToDesktop::ChatTyping { on, .. } => {
                self.typing = *on;
                Change::Typing(*on)
            }
            ToDesktop::AgentStatus { gateway, .. } => {
                self.gateway = Some(*gateway);
                if *gateway == GatewayStatus::Disconnected {
                    // a run cannot survive its gateway: never leave a bubble spinning
                    for e in &mut self.entries {
                        e.streaming = false;
                    }
                    self.typing = false;
                }
                Change::Gateway(*gateway)
            }
            ToDesktop::History { messages, .. } => {
                self.load_history(messages);
                Change::All
            }
            // the client acts on it (forgets the pairing); it never reaches a conversation
            ToDesktop::Unpair | ToDesktop::Unknown => Change::Nothing,
            // approvals are kept apart from the conversation (`crate::approvals`)
            ToDesktop::ApprovalRequested { .. }
            | ToDesktop::ApprovalResolved { .. }
            | ToDesktop::ApprovalRefused { .. }
            | ToDesktop::Approvals { .. }
            // the session list is the window's, not a conversation's
            | ToDesktop::Sessions { .. } => Change::Nothing,
        }
    }

    /// Replace the conversation with the agent's history, keeping our not-yet-answered messages.
    fn load_history(&mut self, messages: &[HistoryMessage]) {
        let keep: Vec<Entry> = self
            .entries
            .drain(..)
            .filter(|e| {
                e.author == Author::User && e.state.is_some_and(|s| s < MessageState::Delivered)
                    || e.streaming
            })
            .collect();
        self.by_id.clear();
        for (n, m) in messages.iter().enumerate() {
            let author = match m.role.as_str() {
                "user" => Author::User,
                "assistant" => Author::Assistant,
                _ => Author::System,
            };
            let mut e = Entry::user(
                format!("history-{n}"),
                m.text.clone(),
                MessageState::Answered,
            );
            e.author = author;
            if author != Author::User {
                e.state = None;
            }
            self.push(e);
        }
        for e in keep {
            self.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(run: &str, seq: u64, text: &str) -> ToDesktop {
        ToDesktop::ChatDelta {
            session: None,
            run_id: run.into(),
            seq,
            text: text.into(),
            replace: false,
        }
    }

    #[test]
    fn a_streamed_reply_grows_and_the_final_text_wins() {
        let mut c = Conversation::default();
        c.sent("m1", "hi", MessageState::Sent);
        c.apply(&ToDesktop::ChatAck {
            session: None,
            id: "m1".into(),
            run_id: "r1".into(),
        });
        assert_eq!(c.entries()[0].state, Some(MessageState::Delivered));
        assert_eq!(
            c.apply(&delta("r1", 1, "Hel")),
            Change::Appended {
                index: 1,
                text: "Hel".into()
            }
        );
        c.apply(&delta("r1", 3, "lo"));
        assert_eq!(
            c.apply(&delta("r1", 3, "lo")),
            Change::Nothing,
            "duplicate seq"
        );
        assert_eq!(
            c.apply(&delta("r1", 2, "xx")),
            Change::Nothing,
            "backward seq"
        );
        assert_eq!(c.entries()[1].text, "Hello");
        let replaced = ToDesktop::ChatDelta {
            session: None,
            run_id: "r1".into(),
            seq: 4,
            text: "Hi".into(),
            replace: true,
        };
        assert_eq!(c.apply(&replaced), Change::Entry(1));
        assert_eq!(c.entries()[1].text, "Hi");
        c.apply(&delta("r1", 5, "llo"));
        assert_eq!(c.entries()[1].text, "Hillo");
        assert_eq!(c.running().collect::<Vec<_>>(), vec!["r1"]);
        c.apply(&ToDesktop::ChatReply {
            session: None,
            run_id: "r1".into(),
            text: "Hello!".into(),
        });
        assert_eq!(c.entries()[1].text, "Hello!");
        assert!(!c.entries()[1].streaming);
        assert_eq!(c.entries()[0].state, Some(MessageState::Answered));
        assert_eq!(
            c.apply(&delta("r1", 9, "late")),
            Change::Nothing,
            "no deltas after the final"
        );
    }

    #[test]
    fn states_only_move_forward_and_aborts_and_errors_stop_streaming() {
        let mut c = Conversation::default();
        c.sent("m1", "hi", MessageState::Queued);
        c.message_state("m1", MessageState::Delivered);
        assert_eq!(c.message_state("m1", MessageState::Sent), Change::Nothing);
        c.apply(&ToDesktop::ChatAck {
            session: None,
            id: "m1".into(),
            run_id: "r1".into(),
        });
        c.apply(&ToDesktop::ChatAborted {
            session: None,
            run_id: "r1".into(),
        });
        assert!(c.entries()[1].aborted && !c.entries()[1].streaming);
        c.apply(&delta("r2", 1, "x"));
        c.apply(&ToDesktop::ChatError {
            session: None,
            run_id: Some("r2".into()),
            message: "model failed".into(),
        });
        assert_eq!(c.entries()[2].error.as_deref(), Some("model failed"));
        assert_eq!(c.running().count(), 0);
    }

    #[test]
    fn a_gateway_drop_never_leaves_a_reply_spinning() {
        let mut c = Conversation::default();
        c.apply(&ToDesktop::ChatTyping {
            session: None,
            on: true,
        });
        c.apply(&delta("r1", 1, "x"));
        c.apply(&ToDesktop::AgentStatus {
            files: None,
            gateway: GatewayStatus::Disconnected,
        });
        assert!(!c.typing());
        assert_eq!(c.running().count(), 0);
    }

    #[test]
    fn history_replaces_the_past_and_keeps_queued_messages() {
        let mut c = Conversation::default();
        c.sent("old", "old", MessageState::Answered);
        c.sent("q", "queued one", MessageState::Queued);
        c.apply(&ToDesktop::History {
            before: None,
            older: None,
            session: None,
            messages: vec![
                HistoryMessage {
                    files: Vec::new(),
                    id: None,
                    role: "user".into(),
                    text: "hello".into(),
                    timestamp: None,
                },
                HistoryMessage {
                    files: Vec::new(),
                    id: None,
                    role: "assistant".into(),
                    text: "hi there".into(),
                    timestamp: Some(1),
                },
            ],
        });
        let texts: Vec<_> = c
            .entries()
            .iter()
            .map(|e| (e.author, e.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                (Author::User, "hello"),
                (Author::Assistant, "hi there"),
                (Author::User, "queued one")
            ]
        );
    }
}
