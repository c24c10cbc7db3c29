//! What crosses the local channel: one JSON object per line, at most [`MAX_LINE`] bytes. A window
//! or a launch says [`Hello`] first; then it makes [`Request`]s, each answered by a
//! [`FromHost::Reply`] with the same id; a window also gets every [`ClientEvent`] of the core and
//! the host's requests ([`FromHost::Close`], [`FromHost::PairLink`]).

pub use crate::agents::AgentView;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::session_store::SessionInfo;
pub use crate::state::Sent;
use crate::{ClientError, ClientEvent, ConnectionState, PairError};

/// The longest line either side accepts (a chat message is at most 64 KiB of text; an event
/// carries at most one message). A longer line ends the connection with a clear log line.
pub const MAX_LINE: usize = 32 * 1024 * 1024;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The chat window: gets events and the host's requests for as long as it is connected.
    Window,
    /// A second launch (or a deep link): makes a call or two and goes.
    Launch,
}

/// The first line a peer sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub role: Role,
    /// The peer's process id (for the host's logs and for the window it started).
    pub pid: u32,
}

/// What a window or a launch asks of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// Everything the UI needs to draw itself ([`Status`]).
    Status,
    /// Pair with a code from the agent.
    Pair { code: String, relay: String },
    /// Send a chat message. `key` (chosen by the window, e.g. a UUID) becomes the message's id:
    /// a call resent after a lost connection — to the same host, or to one started after it
    /// died — finds the first call's message instead of queueing the text twice.
    Send {
        text: String,
        key: String,
        /// The agent's session it goes to (absent: its default one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Files it carries.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<WireFile>,
    },
    /// Stop a running reply.
    Abort {
        run_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Ask the agent for the latest `limit` messages of a session, or (with `before`) the page
    /// before one shown (they come back as an event).
    History {
        limit: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Ask the agent for its sessions (they come back as a `sessions` event).
    Sessions,
    /// End the pairing.
    Unpair,
    /// Skip the reconnect wait.
    Reconnect,
    /// Answer an exec approval (sent again after a lost connection, the agent answers the
    /// second copy with "already answered").
    Decide {
        id: String,
        decision: clawtray_proto::chat::ApprovalDecision,
    },
    /// Ask the agent which approvals wait (they come back as an `approvals` event).
    Approvals,
    /// Show the chat (a second launch, a deep link): `link` is a `clawtray://` link to hand to
    /// the pairing dialog.
    Show {
        #[serde(default)]
        link: Option<String>,
    },
}

impl Call {
    /// Whether sending the call again after a lost connection cannot do anything twice.
    #[must_use]
    pub fn may_resend(&self) -> bool {
        !matches!(self, Call::Pair { .. } | Call::Unpair)
    }
}

/// A call with the id its answer will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    /// The agent (slot) the call is for; absent: the first paired one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(flatten)]
    pub call: Call,
}

/// A call's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(Value),
    Err(CallError),
}

/// What the host sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromHost {
    /// The answer to request `id`.
    Reply { id: u64, outcome: Outcome },
    /// An event of the core, in order; `agent`: the slot of the agent it is about.
    Event {
        event: ClientEvent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
    },
    /// The person toggled the chat off (tray click, hotkey): close the window.
    Close,
    /// Bring the window to the front (the chat was asked for while it is open).
    Raise,
    /// A pairing link was opened: pre-fill the pairing dialog and ask the person to confirm.
    PairLink { code: String, relay: Option<String> },
}

/// A failed call, for the UI: `code` to branch on, `message` to show.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ts_rs::TS)]
#[ts(rename = "CommandError")]
pub struct CallError {
    pub code: String,
    pub message: String,
}

impl CallError {
    /// An error with `code` and `message`.
    #[must_use]
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The host is not there (not running, or went away mid-call).
    #[must_use]
    pub fn host_lost(why: &str) -> Self {
        Self::new(
            "HOST_LOST",
            format!("the clawtray tray host is not answering ({why}); it is being reconnected — try again in a moment"),
        )
    }
}

impl From<PairError> for CallError {
    fn from(e: PairError) -> Self {
        let code = match &e {
            PairError::BadCode(_) => "BAD_CODE",
            PairError::WrongCode => "WRONG_CODE",
            PairError::ExpiredCode => "EXPIRED_CODE",
            PairError::UnknownCode => "UNKNOWN_CODE",
            PairError::RelayUnreachable { .. } => "RELAY_UNREACHABLE",
            PairError::RelayRefused(_) => "RELAY_REFUSED",
            PairError::AlreadyPaired(_) => "ALREADY_PAIRED",
            PairError::BadRelayUrl(_) => "BAD_RELAY_URL",
            PairError::Storage(_) => "STORAGE",
            PairError::Stopped => "STOPPED",
        };
        Self::new(code, e.to_string())
    }
}

impl From<ClientError> for CallError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotPaired => "NOT_PAIRED",
            ClientError::MessageTooLong(_) => "MESSAGE_TOO_LONG",
            ClientError::OutboxFull(_) => "OUTBOX_FULL",
            ClientError::BadMessageId(_) => "BAD_MESSAGE_ID",
            ClientError::BadSessionKey => "BAD_SESSION",
            ClientError::Files(_) => "FILES_REFUSED",
            ClientError::Storage(_) => "STORAGE",
            ClientError::Stopped => "STOPPED",
        };
        Self::new(code, e.to_string())
    }
}

/// A file the window attaches to a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ts_rs::TS)]
pub struct WireFile {
    /// Its name.
    pub name: String,
    /// Its MIME type.
    pub mime: String,
    /// Its bytes, base64 (standard alphabet, padded).
    pub data: String,
}

impl WireFile {
    /// The file, decoded.
    pub fn decode(self) -> Result<crate::outgoing_files::OutgoingFile, CallError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .map_err(|_| {
                CallError::new(
                    "FILES_REFUSED",
                    format!(
                        "“{}” could not be read (its content is not base64)",
                        self.name
                    ),
                )
            })?;
        Ok(crate::outgoing_files::OutgoingFile {
            name: self.name,
            mime: self.mime,
            bytes,
        })
    }
}

/// A message still waiting for the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ts_rs::TS)]
pub struct Queued {
    pub id: String,
    pub text: String,
    /// The agent's session it goes to (absent: its default one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub session: Option<String>,
}

/// Everything the UI needs to draw itself after (re)opening: the state, pairing and queue of one
/// agent (`agent`, the one asked for or the first paired), and every agent for the switcher.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ts_rs::TS)]
pub struct Status {
    pub state: ConnectionState,
    pub session: Option<SessionInfo>,
    pub queued: Vec<Queued>,
    /// The slot this status is about.
    #[serde(default)]
    pub agent: String,
    /// Every agent, the first slot first.
    #[serde(default)]
    pub agents: Vec<AgentView>,
}

/// A `clawtray://pair?code=…&relay=…` link, read. `None` when it is not one.
#[must_use]
pub fn parse_pair_link(link: &str) -> Option<(String, Option<String>)> {
    let url = url::Url::parse(link).ok()?;
    if url.scheme() != "clawtray" || url.host_str() != Some("pair") {
        return None;
    }
    let mut code = None;
    let mut relay = None;
    for (k, v) in url.query_pairs() {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "relay" => relay = Some(v.into_owned()),
            _ => {}
        }
    }
    Some((code?, relay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_and_answers_cross_as_one_flat_object() {
        let r = Request {
            agent: None,
            id: 7,
            call: Call::Send {
                files: Vec::new(),
                session: None,
                text: "hi".into(),
                key: "k1".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"id": 7, "call": "send", "text": "hi", "key": "k1"})
        );
        let back: Request = serde_json::from_value(json!({"id": 8, "call": "show"})).unwrap();
        assert_eq!(back.call, Call::Show { link: None });
        let reply = FromHost::Reply {
            id: 7,
            outcome: Outcome::Err(CallError::from(PairError::WrongCode)),
        };
        let v = serde_json::to_value(&reply).unwrap();
        assert_eq!(v["type"], "reply");
        assert_eq!(v["outcome"]["err"]["code"], "WRONG_CODE");
    }

    #[test]
    fn only_calls_that_cannot_act_twice_are_resent() {
        assert!(Call::Status.may_resend());
        assert!(Call::Send {
            files: Vec::new(),
            session: None,
            text: "x".into(),
            key: "k".into()
        }
        .may_resend());
        assert!(!Call::Unpair.may_resend());
        assert!(!Call::Pair {
            code: "c".into(),
            relay: "r".into()
        }
        .may_resend());
    }

    #[test]
    fn pair_links_are_read_and_other_links_are_not() {
        assert_eq!(
            parse_pair_link("clawtray://pair?code=7-nice-words&relay=wss%3A%2F%2Frelay.example"),
            Some(("7-nice-words".into(), Some("wss://relay.example".into())))
        );
        assert_eq!(
            parse_pair_link("clawtray://pair?code=7-a-b"),
            Some(("7-a-b".into(), None))
        );
        assert_eq!(parse_pair_link("clawtray://pair?relay=x"), None);
        assert_eq!(parse_pair_link("https://pair?code=1"), None);
        assert_eq!(parse_pair_link("not a link"), None);
    }
}
