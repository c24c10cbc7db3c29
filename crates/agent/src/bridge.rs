//! The chat bridge's pure core: turns the gateway's `chat` and `agent` events into the messages
//! desktops get. Reconciles by run id and gateway `seq` (repeated or backward seqs are dropped;
//! seqs have gaps because `agent` events share them), prefers the accumulated snapshot over the
//! increment so merged bursts and missed deltas come out right, honours `replace`, and uses the
//! text it accumulated when `final` carries no message. Clearing run state whenever the gateway
//! connection changes tells desktops the truth instead of leaving a reply spinning.
//!
//! Deltas carry the gateway's own per-run seq (strictly increasing, gaps allowed), so a restarted
//! agent process continues the numbering a desktop already has; the first delta a process forwards
//! for a run replaces the text wholesale, so a desktop that saw part of the run converges.

use std::collections::HashMap;

use clawtray_proto::chat::{HistoryMessage, ToDesktop};

use crate::gateway::events::{
    AgentEvent, ChatEvent, ChatState, HistoryAnswer, MessageMeta, Phase, SessionEvent,
};

#[derive(Debug, Default)]
struct Run {
    /// Text forwarded to desktops so far.
    forwarded: String,
    /// Last gateway seq seen for this run.
    last_seq: Option<u64>,
    /// The seq of the last delta forwarded (the gateway's, or our own when it gives none).
    out_seq: u64,
    /// Whether this process forwarded anything for the run yet.
    started: bool,
}

/// Run state for one gateway session.
#[derive(Debug)]
pub struct Bridge {
    session_key: String,
    runs: HashMap<String, Run>,
    typing: bool,
    /// Our runs the gateway queued behind an active run (it answers `final` with no message and
    /// no stop reason, then runs the message later under a new run id), oldest first.
    queued: std::collections::VecDeque<String>,
    /// gateway run id → the run id desktops know.
    aliases: HashMap<String, String>,
}

/// `completionSource` of a run the gateway started from its queue of followup messages.
const QUEUE_DISPATCH: &str = "reply-dispatch";

/// A `final` with neither a message nor a stop reason: the gateway queued the message behind an
/// active run and will answer it later under another run id.
fn is_queue_marker(e: &ChatEvent) -> bool {
    e.state == Some(ChatState::Final) && e.message.is_none() && e.stop_reason.is_none()
}

/// The short form of a session key: the gateway's `agent:main:<key>` (the main agent's sessions)
/// is `<key>`, which is also what `chat.send` takes. Keys of other agents stay whole.
#[must_use]
pub fn canonical_session(key: &str) -> &str {
    key.strip_prefix("agent:main:").unwrap_or(key)
}

/// Map a `chat.history` answer to the simple list desktops get.
#[must_use]
pub fn history_messages(answer: &HistoryAnswer) -> Vec<HistoryMessage> {
    answer
        .messages
        .iter()
        .filter_map(|m| {
            Some(HistoryMessage {
                id: m.openclaw.as_ref().and_then(|o| o.id.clone()),
                role: m.role.clone()?,
                text: m.text()?,
                timestamp: m.timestamp.as_ref().and_then(serde_json::Number::as_i64),
                files: m
                    .openclaw
                    .as_ref()
                    .map(MessageMeta::files)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

impl Bridge {
    /// A bridge for the gateway session `session_key` (e.g. `main`).
    #[must_use]
    pub fn new(session_key: &str) -> Self {
        Self {
            session_key: session_key.to_owned(),
            runs: HashMap::new(),
            typing: false,
            queued: std::collections::VecDeque::new(),
            aliases: HashMap::new(),
        }
    }

    /// The session key used for requests.
    #[must_use]
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// Whether an event's `sessionKey` (`main` comes back as `agent:main:main`) is ours.
    #[must_use]
    pub fn is_ours(&self, key: Option<&str>) -> bool {
        key.is_some_and(|k| canonical_session(k) == canonical_session(&self.session_key))
    }

    /// Runs still streaming.
    #[must_use]
    pub fn runs_in_flight(&self) -> usize {
        self.runs.len()
    }

    fn set_typing(&mut self, on: bool, out: &mut Vec<ToDesktop>) {
        if self.typing != on {
            self.typing = on;
            out.push(ToDesktop::ChatTyping { session: None, on });
        }
    }

    /// Feed one gateway event.
    pub fn on_event(&mut self, ev: &SessionEvent) -> Vec<ToDesktop> {
        if !self.is_ours(ev.session_key()) {
            return Vec::new();
        }
        match ev {
            SessionEvent::Chat(e) => self.on_chat(e),
            SessionEvent::Agent(e) => self.on_agent(e),
        }
    }

    fn on_agent(&mut self, e: &AgentEvent) -> Vec<ToDesktop> {
        let mut out = Vec::new();
        let Some(life) = &e.lifecycle else {
            return out;
        };
        // A run the gateway dispatches from its queue answers the oldest message it queued.
        let dispatched = life.completion_source.as_deref() == Some(QUEUE_DISPATCH);
        if dispatched && life.phase == Some(Phase::Start) {
            if let Some(run) = e.run_id.as_deref() {
                if !self.aliases.contains_key(run) && !self.runs.contains_key(run) {
                    if let Some(ours) = self.queued.pop_front() {
                        self.aliases.insert(run.to_owned(), ours);
                    }
                }
            }
        }
        match life.phase {
            Some(Phase::Start) => self.set_typing(true, &mut out),
            Some(Phase::End | Phase::Error) => self.set_typing(false, &mut out),
            _ => {}
        }
        out
    }

    fn on_chat(&mut self, e: &ChatEvent) -> Vec<ToDesktop> {
        let mut out = Vec::new();
        let Some(gateway_run) = e.run_id.clone() else {
            return out;
        };
        let seq = e.seq;
        let run_id = self
            .aliases
            .get(&gateway_run)
            .cloned()
            .unwrap_or_else(|| gateway_run.clone());
        match e.state {
            Some(ChatState::Delta) => {
                let run = self.runs.entry(run_id.clone()).or_default();
                if let (Some(s), Some(last)) = (seq, run.last_seq) {
                    if s <= last {
                        return out; // repeated or backward: a duplicate
                    }
                }
                if seq.is_some() {
                    run.last_seq = seq;
                }
                let delta = e.delta_text.as_deref();
                let snapshot = e.message.as_ref().and_then(|m| m.text());
                let replace = e.replace;
                let target = if replace {
                    match delta.map(str::to_owned).or(snapshot) {
                        Some(t) => t,
                        None => return out,
                    }
                } else if let Some(s) = snapshot {
                    s
                } else if let Some(d) = delta {
                    format!("{}{d}", run.forwarded)
                } else {
                    return out;
                };
                run.out_seq = seq.unwrap_or(run.out_seq + 1).max(run.out_seq + 1);
                let out_seq = run.out_seq;
                let increment = target
                    .strip_prefix(run.forwarded.as_str())
                    .filter(|_| !replace && run.started);
                match increment {
                    Some("") => {}
                    Some(inc) => out.push(ToDesktop::ChatDelta {
                        session: None,
                        run_id,
                        seq: out_seq,
                        text: inc.to_owned(),
                        replace: false,
                    }),
                    None => out.push(ToDesktop::ChatDelta {
                        session: None,
                        run_id,
                        seq: out_seq,
                        text: target.clone(),
                        replace: true,
                    }),
                }
                run.started = true;
                run.forwarded = target;
            }
            Some(ChatState::Final)
                if is_queue_marker(e) && !self.runs.get(&run_id).is_some_and(|r| r.started) =>
            {
                self.runs.remove(&run_id);
                self.queued.push_back(run_id);
            }
            Some(ChatState::Final) => {
                self.aliases.remove(&gateway_run);
                let run = self.runs.remove(&run_id).unwrap_or_default();
                let text = e
                    .message
                    .as_ref()
                    .and_then(|m| m.text())
                    .unwrap_or(run.forwarded);
                out.push(ToDesktop::ChatReply {
                    session: None,
                    run_id,
                    text,
                });
                if self.runs.is_empty() {
                    self.set_typing(false, &mut out);
                }
            }
            Some(ChatState::Aborted) => {
                self.aliases.remove(&gateway_run);
                self.queued.retain(|q| q != &run_id);
                self.runs.remove(&run_id);
                out.push(ToDesktop::ChatAborted {
                    session: None,
                    run_id,
                });
                if self.runs.is_empty() {
                    self.set_typing(false, &mut out);
                }
            }
            Some(ChatState::Error) => {
                self.aliases.remove(&gateway_run);
                self.queued.retain(|q| q != &run_id);
                self.runs.remove(&run_id);
                let message = e
                    .error_message
                    .as_deref()
                    .unwrap_or("the agent's run failed");
                let message = match e.error_kind.as_deref() {
                    Some(k) => format!("{message} ({k})"),
                    None => message.to_owned(),
                };
                out.push(ToDesktop::ChatError {
                    session: None,
                    run_id: Some(run_id),
                    message,
                });
                if self.runs.is_empty() {
                    self.set_typing(false, &mut out);
                }
            }
            Some(ChatState::Other) | None => {}
        }
        out
    }

    /// The gateway connection was (re-)established or lost: runs in flight are gone.
    pub fn reset(&mut self, why: &str) -> Vec<ToDesktop> {
        self.aliases.clear();
        let queued: Vec<String> = self.queued.drain(..).collect();
        let mut out: Vec<ToDesktop> = self
            .runs
            .drain()
            .map(|(run_id, _)| run_id)
            .chain(queued)
            .map(|run_id| ToDesktop::ChatError {
                session: None,
                run_id: Some(run_id),
                message: format!("the reply was interrupted: {why}"),
            })
            .collect();
        self.set_typing(false, &mut out);
        out
    }

    /// Typing has been on with no news for too long: turn it off so it never sticks.
    pub fn typing_timed_out(&mut self) -> Vec<ToDesktop> {
        let mut out = Vec::new();
        self.set_typing(false, &mut out);
        out
    }

    /// Whether the typing indicator is on.
    #[must_use]
    pub fn typing(&self) -> bool {
        self.typing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn history(v: Value) -> HistoryAnswer {
        serde_json::from_value(v).unwrap()
    }

    /// Feed `name` with `payload` as the service does: parsed, then bridged.
    fn feed(b: &mut Bridge, name: &str, payload: &Value) -> Vec<ToDesktop> {
        match SessionEvent::parse(name, payload.clone()) {
            Ok(Some(ev)) => b.on_event(&ev),
            Ok(None) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    fn delta(seq: u64, delta: &str, snapshot: &str) -> Value {
        json!({"runId":"r","seq":seq,"sessionKey":"agent:main:main","state":"delta","deltaText":delta,
               "message":{"content":[{"text":snapshot,"type":"text"}],"role":"assistant"}})
    }

    fn texts(out: &[ToDesktop]) -> Vec<String> {
        out.iter()
            .filter_map(|m| match m {
                ToDesktop::ChatDelta { text, replace, .. } => Some(if *replace {
                    format!("={text}")
                } else {
                    text.clone()
                }),
                ToDesktop::ChatReply { text, .. } => Some(format!("final:{text}")),
                _ => None,
            })
            .collect()
    }

    /// The sequence recorded from openclaw 2026.9.6 for a 5-word reply (trimmed).
    #[test]
    fn a_recorded_stream_becomes_increments_then_the_final_text() {
        let mut b = Bridge::new("main");
        let mut out = feed(
            &mut b,
            "agent",
            &json!({"runId":"r","seq":3,"sessionKey":"agent:main:main","stream":"lifecycle","data":{"phase":"start"}}),
        );
        out.extend(feed(&mut b, "chat", &delta(6, "ok:", "ok:")));
        out.extend(feed(&mut b, "chat", &delta(7, " w1", "ok: w1")));
        out.extend(feed(&mut b, "chat", &delta(8, " w2", "ok: w1 w2")));
        out.extend(feed(&mut b, "chat", &json!({"runId":"r","seq":15,"sessionKey":"agent:main:main","state":"final","message":{"content":[{"text":"ok: w1 w2","type":"text"}],"role":"assistant"}})));
        out.extend(feed(&mut b, "agent", &json!({"runId":"r","seq":16,"sessionKey":"agent:main:main","stream":"lifecycle","data":{"phase":"end"}})));
        assert_eq!(
            out.first(),
            Some(&ToDesktop::ChatTyping {
                session: None,
                on: true
            })
        );
        assert_eq!(texts(&out), vec!["=ok:", " w1", " w2", "final:ok: w1 w2"]);
        assert_eq!(
            out.last(),
            Some(&ToDesktop::ChatTyping {
                session: None,
                on: false
            })
        );
        let seqs: Vec<u64> = out
            .iter()
            .filter_map(|m| {
                if let ToDesktop::ChatDelta { seq, .. } = m {
                    Some(*seq)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            seqs,
            vec![6, 7, 8],
            "the gateway's per-run seq, so a restarted agent continues it"
        );
    }

    #[test]
    fn merged_bursts_gaps_and_duplicates_reconcile_by_snapshot() {
        let mut b = Bridge::new("main");
        let mut out = feed(&mut b, "chat", &delta(2, "ok:", "ok:"));
        // a merged burst: the increment covers two chunks; seq jumps
        out.extend(feed(&mut b, "chat", &delta(9, " w1 w2", "ok: w1 w2")));
        // a repeated and a backward seq are duplicates
        out.extend(feed(&mut b, "chat", &delta(9, " w1 w2", "ok: w1 w2")));
        out.extend(feed(&mut b, "chat", &delta(5, " w1", "ok: w1")));
        // a missed delta: the snapshot carries what was missed
        out.extend(feed(&mut b, "chat", &delta(12, " w4", "ok: w1 w2 w3 w4")));
        assert_eq!(texts(&out), vec!["=ok:", " w1 w2", " w3 w4"]);
    }

    #[test]
    fn a_restarted_agent_joining_mid_run_replaces_the_text_and_continues_the_seq() {
        let mut b = Bridge::new("main");
        let out = feed(
            &mut b,
            "chat",
            &delta(40, " w7", "ok: w1 w2 w3 w4 w5 w6 w7"),
        );
        assert_eq!(
            out,
            vec![ToDesktop::ChatDelta {
                session: None,
                run_id: "r".into(),
                seq: 40,
                text: "ok: w1 w2 w3 w4 w5 w6 w7".into(),
                replace: true
            }]
        );
        let out = feed(
            &mut b,
            "chat",
            &delta(41, " w8", "ok: w1 w2 w3 w4 w5 w6 w7 w8"),
        );
        assert_eq!(texts(&out), vec![" w8"]);
    }

    /// Recorded from openclaw 2026.9.6: a message sent while a run is active gets an empty
    /// `final` at once, and its real answer later under a new run id.
    #[test]
    fn a_queued_message_gets_its_answer_from_the_next_new_run() {
        let mut b = Bridge::new("main");
        // an active run the desktop did not start (e.g. the gateway's own recovery turn)
        let busy = json!({"runId":"busy","seq":5,"sessionKey":"agent:main:main","state":"delta","deltaText":"x","message":{"content":[{"text":"x","type":"text"}]}});
        feed(&mut b, "chat", &busy);
        // our message is queued: an empty final for our run id — no reply yet
        let marker = feed(
            &mut b,
            "chat",
            &json!({"runId":"ours","seq":1,"sessionKey":"agent:main:main","state":"final"}),
        );
        assert!(
            marker
                .iter()
                .all(|m| !matches!(m, ToDesktop::ChatReply { .. })),
            "{marker:?}"
        );
        // the busy run goes on and ends under its own id
        let out = feed(
            &mut b,
            "chat",
            &json!({"runId":"busy","seq":6,"sessionKey":"agent:main:main","state":"final","stopReason":"stop","message":{"content":[{"text":"x!","type":"text"}]}}),
        );
        assert!(out.contains(&ToDesktop::ChatReply {
            session: None,
            run_id: "busy".into(),
            text: "x!".into()
        }));
        // a new run that is not a queue dispatch (e.g. a recovery turn) is not our answer
        let other = feed(
            &mut b,
            "chat",
            &json!({"runId":"recovery","seq":2,"sessionKey":"agent:main:main","state":"delta","deltaText":"r","message":{"content":[{"text":"r","type":"text"}]}}),
        );
        assert!(other
            .iter()
            .all(|m| !matches!(m, ToDesktop::ChatDelta { run_id, .. } if run_id == "ours")));
        // then the gateway dispatches our queued message: it comes out under our run id
        feed(
            &mut b,
            "agent",
            &json!({"runId":"new","seq":3,"sessionKey":"agent:main:main","stream":"lifecycle","data":{"phase":"start","completionSource":"reply-dispatch"}}),
        );
        let mut out = feed(
            &mut b,
            "chat",
            &json!({"runId":"new","seq":12,"sessionKey":"agent:main:main","state":"delta","deltaText":"ok","message":{"content":[{"text":"ok","type":"text"}]}}),
        );
        out.extend(feed(&mut b, "chat", &json!({"runId":"new","seq":14,"sessionKey":"agent:main:main","state":"final","stopReason":"stop","message":{"content":[{"text":"ok!","type":"text"}]}})));
        assert!(
            out.contains(&ToDesktop::ChatDelta {
                session: None,
                run_id: "ours".into(),
                seq: 12,
                text: "ok".into(),
                replace: true
            }),
            "{out:?}"
        );
        assert!(
            out.contains(&ToDesktop::ChatReply {
                session: None,
                run_id: "ours".into(),
                text: "ok!".into()
            }),
            "{out:?}"
        );
        // a reset reports still-queued runs too
        feed(
            &mut b,
            "chat",
            &json!({"runId":"q2","seq":1,"sessionKey":"agent:main:main","state":"final"}),
        );
        let out = b.reset("gateway lost");
        assert!(out
            .iter()
            .any(|m| matches!(m, ToDesktop::ChatError { run_id: Some(r), .. } if r == "q2")));
    }

    #[test]
    fn replace_sends_the_whole_text_and_final_without_message_uses_what_was_accumulated() {
        let mut b = Bridge::new("main");
        let mut out = feed(&mut b, "chat", &delta(1, "draft", "draft"));
        out.extend(feed(&mut b, "chat", &json!({"runId":"r","seq":2,"sessionKey":"agent:main:main","state":"delta","deltaText":"Better","replace":true,"message":{"content":[{"text":"Better","type":"text"}]}})));
        out.extend(feed(&mut b, "chat", &json!({"runId":"r","seq":3,"sessionKey":"agent:main:main","state":"delta","deltaText":" text"})));
        out.extend(feed(
            &mut b,
            "chat",
            &json!({"runId":"r","seq":4,"sessionKey":"agent:main:main","state":"final"}),
        ));
        assert_eq!(
            texts(&out),
            vec!["=draft", "=Better", " text", "final:Better text"]
        );
    }

    #[test]
    fn aborts_errors_and_resets_end_runs_and_typing() {
        let mut b = Bridge::new("main");
        feed(
            &mut b,
            "agent",
            &json!({"runId":"r","sessionKey":"agent:main:main","stream":"lifecycle","data":{"phase":"start"}}),
        );
        feed(&mut b, "chat", &delta(1, "x", "x"));
        let out = feed(
            &mut b,
            "chat",
            &json!({"runId":"r","seq":2,"sessionKey":"agent:main:main","state":"aborted"}),
        );
        assert!(out.contains(&ToDesktop::ChatAborted {
            session: None,
            run_id: "r".into()
        }));
        assert!(out.contains(&ToDesktop::ChatTyping {
            session: None,
            on: false
        }));
        feed(
            &mut b,
            "chat",
            &json!({"runId":"e","seq":1,"sessionKey":"agent:main:main","state":"delta","deltaText":"y"}),
        );
        let out = feed(
            &mut b,
            "chat",
            &json!({"runId":"e","seq":2,"sessionKey":"agent:main:main","state":"error","errorMessage":"model failed","errorKind":"provider"}),
        );
        assert_eq!(
            out[0],
            ToDesktop::ChatError {
                session: None,
                run_id: Some("e".into()),
                message: "model failed (provider)".into()
            }
        );
        feed(
            &mut b,
            "agent",
            &json!({"runId":"z","sessionKey":"agent:main:main","stream":"lifecycle","data":{"phase":"start"}}),
        );
        feed(&mut b, "chat", &delta(1, "z", "z"));
        let out = b.reset("the gateway restarted");
        assert!(
            matches!(&out[0], ToDesktop::ChatError { run_id: Some(r), message, .. } if r == "r" && message.contains("restarted"))
        );
        assert_eq!(
            out.last(),
            Some(&ToDesktop::ChatTyping {
                session: None,
                on: false
            })
        );
        assert_eq!(b.runs_in_flight(), 0);
    }

    #[test]
    fn other_sessions_are_ignored_and_history_maps_simply() {
        let mut b = Bridge::new("main");
        let other = json!({"runId":"r","seq":1,"sessionKey":"agent:main:other","state":"delta","deltaText":"x"});
        assert!(feed(&mut b, "chat", &other).is_empty());
        assert!(b.is_ours(Some("main")) && b.is_ours(Some("agent:main:main")) && !b.is_ours(None));
        let h = history_messages(&history(json!({"messages":[
            {"role":"user","content":"hi","timestamp":5},
            {"role":"assistant","content":[{"type":"text","text":"hello"},{"type":"tool_use","text":"ignored"},{"type":"text","text":"!"}]},
            {"no":"role"}
        ]})));
        assert_eq!(
            h,
            vec![
                HistoryMessage {
                    files: Vec::new(),
                    id: None,
                    role: "user".into(),
                    text: "hi".into(),
                    timestamp: Some(5)
                },
                HistoryMessage {
                    files: Vec::new(),
                    id: None,
                    role: "assistant".into(),
                    text: "hello!".into(),
                    timestamp: None
                },
            ]
        );
    }
}
