//! Chat messages, carried as the body of an [`crate::delivery::Envelope`] inside sealed frames.
//! JSON, `{"type": ...}`-tagged, one enum per direction.

use serde::{Deserialize, Serialize};

use crate::files::{Attachment, FileLimits, FileSummary};

/// desktop → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    /// Send a chat message. `id` is a UUID made once by the desktop; the agent passes it to the
    /// gateway as the idempotency key, so a resend never runs twice.
    Chat {
        /// Client-made message id.
        id: String,
        /// What the person typed.
        text: String,
        /// Gateway session key (default `main`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Files it carries; their parts ([`ToAgent::FilePart`]) travel before it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// One part of a file a later chat message carries (see [`crate::files`]). Parts travel in
    /// order, before their message, as ordinary numbered messages: a broken link resends only
    /// those the agent has not acknowledged.
    FilePart {
        /// The file's id ([`Attachment::file`]).
        file: String,
        /// Which part, from 0.
        index: u32,
        /// Up to [`crate::files::PART_BYTES`] of the file, base64.
        data: String,
    },
    /// Stop a running reply.
    ChatAbort {
        /// The run to stop.
        run_id: String,
        /// The gateway session (conversation); absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Ask for the conversation so far: its latest page, or (with `before`) the page before a
    /// page already shown. Answered with [`ToDesktop::History`].
    ChatHistory {
        /// How many messages at most.
        limit: u32,
        /// The `older` cursor of a page already shown: the page just before it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// The gateway session (conversation); absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Ask for the agent's sessions (answered with [`ToDesktop::Sessions`]).
    SessionList,
    /// The desktop ends the pairing. Sealed end to end, so only the paired desktop can say it:
    /// the agent forgets this desktop (its pairing, token and outbox) when it arrives. A relay's
    /// word (an error code) never makes an end forget anything.
    Unpair,
    /// The person's answer to an exec approval. The agent passes it to the gateway; the first
    /// answer wins, and one that comes too late, twice, after the expiry or with a decision the
    /// approval does not allow is answered with [`ToDesktop::ApprovalRefused`].
    ApprovalDecide {
        /// The gateway's approval id.
        id: String,
        /// What the person chose.
        decision: ApprovalDecision,
    },
    /// Ask for the approvals waiting now (answered with [`ToDesktop::Approvals`]).
    ApprovalList,
    /// A kind of message this build does not know (sent by a newer desktop): delivered,
    /// acknowledged and ignored — refusing it would stop every message after it.
    #[serde(other)]
    Unknown,
}

/// An answer to an exec approval, as the gateway names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalDecision {
    /// Run this command, this once.
    AllowOnce,
    /// Run it, and commands like it from now on (only where the gateway's policy allows).
    AllowAlways,
    /// Do not run it.
    Deny,
}

impl ApprovalDecision {
    /// The gateway's name for it (`allow-once`, `allow-always`, `deny`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDecision::AllowOnce => "allow-once",
            ApprovalDecision::AllowAlways => "allow-always",
            ApprovalDecision::Deny => "deny",
        }
    }

    /// Parse the gateway's (or the command line's) name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow-once" => Some(ApprovalDecision::AllowOnce),
            "allow-always" => Some(ApprovalDecision::AllowAlways),
            "deny" => Some(ApprovalDecision::Deny),
            _ => None,
        }
    }
}

/// A command the agent's gateway wants a person to approve before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ApprovalRequest {
    /// The gateway's approval id.
    pub id: String,
    /// The command line, exactly as it will run (show it as text, never as markup).
    pub command: String,
    /// Its working directory, when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cwd: Option<String>,
    /// Where it runs (`gateway`, a node's name), when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub host: Option<String>,
    /// The OpenClaw agent that asks, when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub agent_id: Option<String>,
    /// The conversation (gateway session key) it belongs to, when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub session_key: Option<String>,
    /// The gateway's warning about the command (risky parts), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub warning: Option<String>,
    /// When it was asked, milliseconds since the epoch.
    #[ts(type = "number")]
    pub created_at_ms: u64,
    /// When it expires (the gateway denies it then), milliseconds since the epoch.
    #[ts(type = "number")]
    pub expires_at_ms: u64,
    /// The answers the gateway accepts for it (offer only these).
    pub allowed: Vec<ApprovalDecision>,
}

/// One conversation (gateway session) of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct SessionSummary {
    /// The session key to send to (`main`, `work`, …).
    pub key: String,
    /// A title, when the gateway has one (a label or a generated title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub title: Option<String>,
    /// Last activity, milliseconds since the epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub updated_at_ms: Option<u64>,
    /// A reply is being written in it now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub running: bool,
    /// The agent's default session: its chat messages carry no `session`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub default: bool,
}

/// One message of the history, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct HistoryMessage {
    /// The gateway's id for it, when it gives one (pages that overlap are deduplicated by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub id: Option<String>,
    /// `user` or `assistant` (or another gateway role).
    pub role: String,
    /// Plain text.
    pub text: String,
    /// Milliseconds since the epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub timestamp: Option<i64>,
    /// Files it carried (what they were; their bytes stay with the gateway).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<FileSummary>>", optional)]
    pub files: Vec<FileSummary>,
}

/// Whether the agent reaches its OpenClaw gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum GatewayStatus {
    /// Connected and authenticated.
    Connected,
    /// Not reachable right now.
    Disconnected,
}

/// agent → desktop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDesktop {
    /// The gateway accepted message `id` as run `run_id`.
    ChatAck {
        /// The desktop's message id.
        id: String,
        /// The gateway's run id.
        run_id: String,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
    },
    /// Incremental reply text.
    ChatDelta {
        /// The run.
        run_id: String,
        /// Per-run, strictly increasing (gaps allowed).
        #[ts(type = "number")]
        seq: u64,
        /// Text to append (or, with `replace`, the whole new text).
        text: String,
        /// The gateway replaced the reply so far: `text` is the whole text, not an increment.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        #[ts(as = "Option<bool>", optional)]
        replace: bool,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
    },
    /// The final, full reply.
    ChatReply {
        /// The run.
        run_id: String,
        /// The whole reply text.
        text: String,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
    },
    /// The agent is (or stopped) working on a reply.
    ChatTyping {
        /// On or off.
        on: bool,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
    },
    /// A run was aborted.
    ChatAborted {
        /// The run.
        run_id: String,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
    },
    /// Something failed.
    ChatError {
        /// The run, when the error belongs to one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        run_id: Option<String>,
        /// A sentence for people.
        message: String,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
    },
    /// A page of the conversation, oldest first.
    History {
        /// Oldest first.
        messages: Vec<HistoryMessage>,
        /// The gateway session (conversation) it belongs to; absent: the agent's default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        session: Option<String>,
        /// The request's `before`: absent for the latest page (which replaces what is shown),
        /// present for an older page (which goes above it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        before: Option<String>,
        /// Pass this as `before` for the page before this one; absent: this page starts at the
        /// conversation's first message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        older: Option<String>,
    },
    /// The agent's sessions, most recently active first (the answer to [`ToAgent::SessionList`],
    /// and sent again when they change).
    Sessions {
        /// The sessions.
        sessions: Vec<SessionSummary>,
    },
    /// The agent's view of its gateway.
    AgentStatus {
        /// Connected or not.
        gateway: GatewayStatus,
        /// The files the agent's gateway takes, when it said (older agents: absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        files: Option<FileLimits>,
    },
    /// The agent ends the pairing (its operator ran `clawtray-agent unpair`). Sealed end to end:
    /// the desktop forgets the pairing and its queued messages when it arrives, and only then.
    Unpair,
    /// A command waits for a person's approval.
    ApprovalRequested {
        /// What, where, for whom, until when.
        approval: Box<ApprovalRequest>,
    },
    /// An approval was answered (here, on another desktop, or in the gateway's own UI) or
    /// expired; it is no longer waiting.
    ApprovalResolved {
        /// The approval id.
        id: String,
        /// How it was answered (`None` when it expired or went away unanswered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        decision: Option<ApprovalDecision>,
        /// Who answered, as the gateway names them, when it says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        by: Option<String>,
    },
    /// This desktop's answer was not taken, and why (too late, twice, expired, not allowed).
    ApprovalRefused {
        /// The approval id.
        id: String,
        /// A sentence for people.
        message: String,
    },
    /// The approvals waiting now (the answer to [`ToAgent::ApprovalList`]).
    Approvals {
        /// Oldest first.
        pending: Vec<ApprovalRequest>,
    },
    /// A kind of message this build does not know (sent by a newer agent): delivered,
    /// acknowledged and ignored — refusing it would stop every message after it.
    #[serde(other)]
    #[ts(skip)]
    Unknown,
}

impl ToDesktop {
    /// The run this message ends (its reply, abort or error), if it ends one. A run ends once;
    /// receivers drop a second ending of the same run.
    #[must_use]
    pub fn ended_run(&self) -> Option<&str> {
        match self {
            ToDesktop::ChatReply { run_id, .. }
            | ToDesktop::ChatAborted { run_id, .. }
            | ToDesktop::ChatError {
                run_id: Some(run_id),
                ..
            } => Some(run_id),
            _ => None,
        }
    }

    /// The session a chat message belongs to (`None`: the agent's default session, or not a
    /// chat message).
    #[must_use]
    pub fn session(&self) -> Option<&str> {
        match self {
            ToDesktop::ChatAck { session, .. }
            | ToDesktop::ChatDelta { session, .. }
            | ToDesktop::ChatReply { session, .. }
            | ToDesktop::ChatTyping { session, .. }
            | ToDesktop::ChatAborted { session, .. }
            | ToDesktop::ChatError { session, .. }
            | ToDesktop::History { session, .. } => session.as_deref(),
            _ => None,
        }
    }

    /// This message, marked as belonging to session `to` (`None`: the default session). Messages
    /// that are not about a conversation are returned unchanged.
    #[must_use]
    pub fn in_session(mut self, to: Option<&str>) -> Self {
        match &mut self {
            ToDesktop::ChatAck { session, .. }
            | ToDesktop::ChatDelta { session, .. }
            | ToDesktop::ChatReply { session, .. }
            | ToDesktop::ChatTyping { session, .. }
            | ToDesktop::ChatAborted { session, .. }
            | ToDesktop::ChatError { session, .. }
            | ToDesktop::History { session, .. } => *session = to.map(str::to_owned),
            _ => {}
        }
        self
    }

    /// Progress of a streaming reply (a delta, the typing indicator): superseded by the run's
    /// ending, which carries the whole reply. Both ends persist these without waiting for the
    /// disk (the ending that follows is synced), which keeps the per-delta cost off the reply path.
    #[must_use]
    pub fn is_stream_progress(&self) -> bool {
        matches!(
            self,
            ToDesktop::ChatDelta { .. } | ToDesktop::ChatTyping { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_match_the_design() {
        let m = ToAgent::Chat {
            attachments: Vec::new(),
            id: "u1".into(),
            text: "hi".into(),
            session: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"chat","id":"u1","text":"hi"}"#
        );
        let d = ToDesktop::ChatDelta {
            session: None,
            run_id: "r".into(),
            seq: 2,
            text: "lo".into(),
            replace: false,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"type":"chat_delta","run_id":"r","seq":2,"text":"lo"}"#
        );
        let s = ToDesktop::AgentStatus {
            files: None,
            gateway: GatewayStatus::Connected,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"type":"agent_status","gateway":"connected"}"#
        );
        let back: ToAgent = serde_json::from_str(r#"{"type":"chat_history","limit":50}"#).unwrap();
        assert_eq!(
            back,
            ToAgent::ChatHistory {
                session: None,
                limit: 50,
                before: None
            }
        );
    }

    #[test]
    fn unpair_is_a_bare_tag_both_ways() {
        assert_eq!(
            serde_json::to_string(&ToAgent::Unpair).unwrap(),
            r#"{"type":"unpair"}"#
        );
        assert_eq!(
            serde_json::to_string(&ToDesktop::Unpair).unwrap(),
            r#"{"type":"unpair"}"#
        );
        let back: ToDesktop = serde_json::from_str(r#"{"type":"unpair"}"#).unwrap();
        assert_eq!(back, ToDesktop::Unpair);
    }

    #[test]
    fn approval_messages_have_their_wire_shapes() {
        let d = ToAgent::ApprovalDecide {
            id: "a1".into(),
            decision: ApprovalDecision::AllowOnce,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"type":"approval_decide","id":"a1","decision":"allow-once"}"#
        );
        let r = ToDesktop::ApprovalResolved {
            id: "a1".into(),
            decision: Some(ApprovalDecision::Deny),
            by: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"approval_resolved","id":"a1","decision":"deny"}"#
        );
        for d in [
            ApprovalDecision::AllowOnce,
            ApprovalDecision::AllowAlways,
            ApprovalDecision::Deny,
        ] {
            assert_eq!(ApprovalDecision::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        assert_eq!(ApprovalDecision::parse("allow"), None);
        assert!(serde_json::from_str::<ToAgent>(
            r#"{"type":"approval_decide","id":"a1","decision":"yes"}"#
        )
        .is_err());
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(serde_json::from_str::<ToAgent>(r#"{"type":"chat","id":"x"}"#).is_err());
        assert!(serde_json::from_str::<ToDesktop>(r#"{"type":"chat_reply"}"#).is_err());
        assert!(serde_json::from_str::<ToDesktop>("[]").is_err());
        assert!(serde_json::from_str::<ToDesktop>(r#"{"text":"no type"}"#).is_err());
    }

    #[test]
    fn a_kind_from_a_newer_end_is_known_as_unknown_not_refused() {
        // refusing it would leave a gap that stops every later message of the pairing
        assert_eq!(
            serde_json::from_str::<ToDesktop>(r#"{"type":"nope","x":1}"#).unwrap(),
            ToDesktop::Unknown
        );
        assert_eq!(
            serde_json::from_str::<ToAgent>(r#"{"type":"file_chunk_v9","data":"…"}"#).unwrap(),
            ToAgent::Unknown
        );
    }
}
