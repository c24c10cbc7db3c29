//! The gateway events the agent reads, typed: `chat` (a run's deltas and its ending) and `agent`
//! (a run's lifecycle), plus the message shape those events and `chat.history` share. Fields are
//! named as `../shared/openclaw-gateway.md` records them; fields the agent does not use are
//! ignored, and a value of a shape the agent does not know (a message part that is not text, a
//! stream other than `lifecycle`) is kept out of the way rather than failing the event.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::client::GatewayError;

/// A message as the gateway gives it: a bare string, or an object with `content`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Message {
    Bare(String),
    Object(MessageObject),
    Other(IgnoredAny),
}

/// A message object (`chat.history`'s entries, the `message` of `chat` events).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageObject {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<Content>,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: Option<serde_json::Number>,
    /// The gateway's own bookkeeping: which run wrote the message.
    #[serde(default, rename = "__openclaw")]
    pub openclaw: Option<MessageMeta>,
}

/// A message's content: text, a list of parts, or something the agent does not read.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
    Other(IgnoredAny),
}

/// One part of a message's content; only `text` parts (or parts without a type) are read.
#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<Value>,
}

/// `__openclaw` on a transcript message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageMeta {
    #[serde(default)]
    pub run_id: Option<String>,
    /// The transcript entry's id (stable across pages).
    #[serde(default)]
    pub id: Option<String>,
    /// Files the message carried: `{fileName, contentType, sizeBytes, url, kind}` each (read
    /// leniently: an entry of another shape is skipped, not an error).
    #[serde(default)]
    pub media: Vec<Value>,
}

impl MessageMeta {
    /// The files the message carried, as desktops show them.
    #[must_use]
    pub fn files(&self) -> Vec<clawtray_proto::files::FileSummary> {
        self.media
            .iter()
            .filter_map(|m| {
                let name = m
                    .get("fileName")
                    .and_then(Value::as_str)
                    .map(clawtray_proto::files::clean_name)?;
                Some(clawtray_proto::files::FileSummary {
                    name,
                    mime: m
                        .get("contentType")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    size: m.get("sizeBytes").and_then(Value::as_u64),
                })
            })
            .collect()
    }
}

impl Message {
    /// The message's text (text parts joined), or `None` when it has no readable content.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Bare(s) => Some(s.clone()),
            Self::Object(o) => o.text(),
            Self::Other(_) => None,
        }
    }
}

impl MessageObject {
    /// See [`Message::text`].
    #[must_use]
    pub fn text(&self) -> Option<String> {
        match self.content.as_ref()? {
            Content::Text(s) => Some(s.clone()),
            Content::Parts(parts) => Some(
                parts
                    .iter()
                    .filter(|p| p.kind.as_deref().is_none_or(|t| t == "text"))
                    .filter_map(|p| p.text.as_ref().and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
            ),
            Content::Other(_) => None,
        }
    }

    /// The run that wrote this message, if the gateway says.
    #[must_use]
    pub fn run_id(&self) -> Option<&str> {
        self.openclaw.as_ref()?.run_id.as_deref()
    }
}

/// `chat.history`'s answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryAnswer {
    #[serde(default)]
    pub messages: Vec<MessageObject>,
    /// There are older messages: ask again with `offset: next_offset`.
    #[serde(default)]
    pub has_more: Option<bool>,
    #[serde(default)]
    pub next_offset: Option<u64>,
}

/// Where a run is, in a `chat` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatState {
    Delta,
    Final,
    Aborted,
    Error,
    #[serde(other)]
    Other,
}

/// A `chat` event: a run's text so far, or its ending.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatEvent {
    #[serde(default)]
    pub run_id: Option<String>,
    /// Per-run, strictly increasing, with gaps (`agent` events share the counter).
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub session_key: Option<String>,
    #[serde(default)]
    pub state: Option<ChatState>,
    /// The increment since the last delta.
    #[serde(default)]
    pub delta_text: Option<String>,
    /// The accumulated text (deltas) or the final message.
    #[serde(default)]
    pub message: Option<Message>,
    /// The delta replaces the text so far instead of adding to it.
    #[serde(default)]
    pub replace: bool,
    /// Present on a real ending; a `final` without it and without a message is a queue marker.
    #[serde(default)]
    pub stop_reason: Option<IgnoredAny>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub error_kind: Option<String>,
}

/// A run's lifecycle phase, in an `agent` event of the `lifecycle` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    End,
    Error,
    #[serde(other)]
    Other,
}

/// The `data` of a `lifecycle` `agent` event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default)]
    pub phase: Option<Phase>,
    /// `reply-dispatch` for a run the gateway started from its queue of followups.
    #[serde(default)]
    pub completion_source: Option<String>,
}

/// An `agent` event; only the `lifecycle` stream is read.
#[derive(Debug, Clone)]
pub struct AgentEvent {
    pub run_id: Option<String>,
    pub session_key: Option<String>,
    /// `Some` for the `lifecycle` stream, `None` for the others.
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentEventWire {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    data: Value,
}

/// A gateway event about a session's runs.
// parsed, routed and dropped one at a time: the size of the larger variant costs nothing
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SessionEvent {
    Chat(ChatEvent),
    Agent(AgentEvent),
}

impl SessionEvent {
    /// Read the event `name` with `payload`: `Ok(None)` for events the agent does not read.
    ///
    /// # Errors
    /// [`GatewayError::MalformedEvent`] when a `chat` or `agent` event has fields of the wrong
    /// shape (the message says which, without quoting values).
    pub fn parse(name: &str, payload: Value) -> Result<Option<Self>, GatewayError> {
        match name {
            "chat" => serde_json::from_value(payload)
                .map(|e| Some(Self::Chat(e)))
                .map_err(|e| malformed("chat", &e)),
            "agent" => {
                let w: AgentEventWire =
                    serde_json::from_value(payload).map_err(|e| malformed("agent", &e))?;
                let lifecycle = match w.stream.as_deref() {
                    Some("lifecycle") => {
                        Some(serde_json::from_value(w.data).map_err(|e| malformed("agent", &e))?)
                    }
                    _ => None,
                };
                Ok(Some(Self::Agent(AgentEvent {
                    run_id: w.run_id,
                    session_key: w.session_key,
                    lifecycle,
                })))
            }
            _ => Ok(None),
        }
    }

    /// The session the event is about (`main` comes back as `agent:main:main`).
    #[must_use]
    pub fn session_key(&self) -> Option<&str> {
        match self {
            Self::Chat(e) => e.session_key.as_deref(),
            Self::Agent(e) => e.session_key.as_deref(),
        }
    }
}

fn malformed(event: &'static str, e: &serde_json::Error) -> GatewayError {
    GatewayError::MalformedEvent {
        event,
        // the shape only: serde would quote the gateway's values (message text)
        detail: clawtray_proto::delivery::json_error_shape(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_recorded_delta_reads_with_its_increment_and_snapshot() {
        let p = json!({"runId":"r","seq":7,"sessionKey":"agent:main:main","state":"delta","deltaText":" w1",
                       "message":{"content":[{"text":"ok: w1","type":"text"}],"role":"assistant"}});
        let Some(SessionEvent::Chat(e)) = SessionEvent::parse("chat", p).unwrap() else {
            panic!("a chat event")
        };
        assert_eq!(e.state, Some(ChatState::Delta));
        assert_eq!(e.seq, Some(7));
        assert_eq!(e.delta_text.as_deref(), Some(" w1"));
        assert_eq!(e.message.and_then(|m| m.text()).as_deref(), Some("ok: w1"));
        assert!(!e.replace && e.stop_reason.is_none());
    }

    #[test]
    fn content_of_every_known_shape_gives_its_text() {
        let text = |v: Value| serde_json::from_value::<Message>(v).unwrap().text();
        assert_eq!(text(json!("plain")).as_deref(), Some("plain"));
        assert_eq!(text(json!({"content":"s"})).as_deref(), Some("s"));
        let parts =
            json!({"content":[{"type":"text","text":"a"},{"type":"image","url":"x"},{"text":"b"}]});
        assert_eq!(text(parts).as_deref(), Some("ab"));
        assert_eq!(
            text(json!({"content": 5})),
            None,
            "unknown content is no text, not an error"
        );
        assert_eq!(text(json!({"role":"assistant"})), None);
    }

    #[test]
    fn the_files_a_history_message_carried_are_read_leniently() {
        // as the pinned gateway lists them (observed): name, type, size, a media:// reference
        let h: HistoryAnswer = serde_json::from_value(json!({"messages": [
            {"role":"user","content":"look","__openclaw":{"id":"m1","media":[
                {"contentType":"image/png","fileName":"pic.png","kind":"image","sizeBytes":100000,"url":"media://inbound/pic---1.png"},
                {"fileName":"../../n.txt","kind":"document"},
                {"contentType":"image/png"},
                7
            ]}}
        ]}))
        .unwrap();
        let files = h.messages[0].openclaw.as_ref().unwrap().files();
        assert_eq!(files.len(), 2, "nameless and odd entries are skipped");
        assert_eq!(files[0].name, "pic.png");
        assert_eq!(files[0].mime.as_deref(), Some("image/png"));
        assert_eq!(files[0].size, Some(100_000));
        assert_eq!(files[1].name, "n.txt");
        assert_eq!(files[1].size, None);
    }

    #[test]
    fn only_the_lifecycle_stream_is_read_and_unknown_states_are_kept_apart() {
        let tool = json!({"runId":"r","stream":"tool","data":{"phase":{"odd":1}}});
        let Some(SessionEvent::Agent(e)) = SessionEvent::parse("agent", tool).unwrap() else {
            panic!("an agent event")
        };
        assert!(e.lifecycle.is_none(), "another stream's data is not read");
        let start = json!({"runId":"r","stream":"lifecycle","data":{"phase":"start","completionSource":"reply-dispatch"}});
        let Some(SessionEvent::Agent(e)) = SessionEvent::parse("agent", start).unwrap() else {
            panic!("an agent event")
        };
        let l = e.lifecycle.unwrap();
        assert_eq!(l.phase, Some(Phase::Start));
        assert_eq!(l.completion_source.as_deref(), Some("reply-dispatch"));
        let odd = json!({"runId":"r","state":"paused"});
        let Some(SessionEvent::Chat(e)) = SessionEvent::parse("chat", odd).unwrap() else {
            panic!("a chat event")
        };
        assert_eq!(e.state, Some(ChatState::Other));
        assert!(SessionEvent::parse("tick", json!({})).unwrap().is_none());
    }

    #[test]
    fn a_wrongly_shaped_event_is_an_error_that_quotes_no_text() {
        let bad = json!({"runId":"r","state":"delta","seq":"secret words"});
        let err = SessionEvent::parse("chat", bad).unwrap_err();
        assert!(matches!(
            err,
            GatewayError::MalformedEvent { event: "chat", .. }
        ));
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn history_entries_carry_their_run() {
        let h: HistoryAnswer = serde_json::from_value(json!({"messages":[
            {"role":"assistant","__openclaw":{"runId":"r"},"content":[{"type":"text","text":"hi"}],"timestamp":5}
        ]}))
        .unwrap();
        assert_eq!(h.messages[0].run_id(), Some("r"));
        assert_eq!(h.messages[0].text().as_deref(), Some("hi"));
    }
}
