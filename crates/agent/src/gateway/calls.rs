//! The gateway methods the agent calls, typed: each one's parameters as a struct (camelCase on the
//! wire, as `../shared/openclaw-gateway.md` records them) and its answer read into a struct, so
//! the service never builds or digs through JSON by hand. An answer that cannot be read is a
//! [`GatewayError::Malformed`] naming the method.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{GatewayClient, GatewayError};
use super::events::HistoryAnswer;

/// `chat.send`: start a run (or, with an idempotency key seen before, start none).
pub const CHAT_SEND: &str = "chat.send";
/// `chat.abort`: stop a run.
pub const CHAT_ABORT: &str = "chat.abort";
/// `chat.history`: the session's transcript, newest last.
pub const CHAT_HISTORY: &str = "chat.history";
/// `agent.wait`: wait (a while) for a run to end.
pub const AGENT_WAIT: &str = "agent.wait";
/// `sessions.list`: the sessions, most recently updated first.
pub const SESSIONS_LIST: &str = "sessions.list";
/// `sessions.subscribe`: `sessions.changed` events for this connection.
pub const SESSIONS_SUBSCRIBE: &str = "sessions.subscribe";

/// `chat.send` parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSend<'a> {
    pub session_key: &'a str,
    pub message: &'a str,
    /// The desktop's message id: a resent message never starts a second run.
    pub idempotency_key: &'a str,
    /// `followup`: a message sent while a run goes on waits for it.
    pub queue_mode: &'a str,
    /// Files the message carries.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub attachments: &'a [ChatAttachment],
}

/// One file of a `chat.send`, as the gateway takes it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAttachment {
    /// `image` or `file`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub mime_type: String,
    pub file_name: String,
    /// The bytes, base64.
    pub content: String,
    pub size_bytes: u64,
}

/// `chat.send`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSent {
    /// The run started (the idempotency key, on the pinned gateway).
    #[serde(default)]
    pub run_id: Option<String>,
}

/// `chat.abort` parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatAbort<'a> {
    pub session_key: &'a str,
    pub run_id: &'a str,
}

/// `chat.history` parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatHistory<'a> {
    pub session_key: &'a str,
    pub limit: u32,
    /// Skip this many of the newest messages (the previous page's `nextOffset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// `sessions.list` parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsList {
    pub limit: u32,
}

/// `sessions.list`'s answer.
#[derive(Debug, Default, Deserialize)]
pub struct SessionsListed {
    #[serde(default)]
    pub sessions: Vec<SessionRow>,
}

/// One row of `sessions.list` (the fields the desktops show).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    pub key: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub derived_title: Option<String>,
    #[serde(default)]
    pub updated_at: Option<u64>,
    #[serde(default)]
    pub has_active_run: Option<bool>,
    #[serde(default)]
    pub archived: Option<bool>,
}

/// `agent.wait` parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentWait<'a> {
    pub run_id: &'a str,
    pub timeout_ms: u64,
}

/// `agent.wait`'s answer.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WaitAnswer {
    /// `ok`, `pending`, `timeout`, `aborted`, `cancelled`, `killed`, `error`, …
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub terminal_reply: Option<TerminalReply>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The reply a finished run left.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct TerminalReply {
    #[serde(default)]
    pub text: Option<String>,
}

impl GatewayClient {
    /// Call `method` with `params` and read its answer as `R`.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: &P,
    ) -> Result<R, GatewayError> {
        let params = serde_json::to_value(params).map_err(|e| malformed(method, &e))?;
        let answer = self.request(method, params).await?;
        serde_json::from_value(answer).map_err(|e| malformed(method, &e))
    }

    /// `chat.send`.
    pub async fn chat_send(&self, p: &ChatSend<'_>) -> Result<ChatSent, GatewayError> {
        self.call(CHAT_SEND, p).await
    }

    /// `chat.abort` (its answer is not needed: the run's ending comes as an event).
    pub async fn chat_abort(&self, p: &ChatAbort<'_>) -> Result<(), GatewayError> {
        self.call::<_, Value>(CHAT_ABORT, p).await.map(|_| ())
    }

    /// `chat.history`: the transcript (see `bridge::history_messages`).
    pub async fn chat_history(&self, p: &ChatHistory<'_>) -> Result<HistoryAnswer, GatewayError> {
        self.call(CHAT_HISTORY, p).await
    }

    /// `sessions.list`.
    pub async fn sessions_list(&self, p: &SessionsList) -> Result<SessionsListed, GatewayError> {
        self.call(SESSIONS_LIST, p).await
    }

    /// `sessions.subscribe` (no initial list: `sessions_list` gives it).
    pub async fn sessions_subscribe(&self) -> Result<(), GatewayError> {
        self.call::<_, Value>(SESSIONS_SUBSCRIBE, &serde_json::json!({}))
            .await
            .map(|_| ())
    }

    /// `agent.wait`.
    pub async fn agent_wait(&self, p: &AgentWait<'_>) -> Result<WaitAnswer, GatewayError> {
        self.call(AGENT_WAIT, p).await
    }
}

fn malformed(method: &'static str, e: &serde_json::Error) -> GatewayError {
    GatewayError::Malformed {
        method,
        // the shape only: serde would quote the gateway's values (message text)
        detail: clawtray_proto::delivery::json_error_shape(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_out_as_the_gateway_names_them() {
        let send = ChatSend {
            attachments: &[],
            session_key: "main",
            message: "hi",
            idempotency_key: "m1",
            queue_mode: "followup",
        };
        assert_eq!(
            serde_json::to_value(&send).unwrap(),
            serde_json::json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "m1", "queueMode": "followup"})
        );
        let wait = AgentWait {
            run_id: "r",
            timeout_ms: 5,
        };
        assert_eq!(
            serde_json::to_value(&wait).unwrap(),
            serde_json::json!({"runId": "r", "timeoutMs": 5})
        );
        let answer: WaitAnswer = serde_json::from_value(serde_json::json!(
            {"runId": "r", "status": "ok", "terminalReply": {"disposition": "visible", "text": "ok"}}
        ))
        .unwrap();
        assert_eq!(answer.status.as_deref(), Some("ok"));
        assert_eq!(
            answer.terminal_reply.and_then(|t| t.text).as_deref(),
            Some("ok")
        );
        let bad = serde_json::from_value::<WaitAnswer>(serde_json::json!({"status": "SECRET-7"}));
        assert!(bad.is_ok(), "unknown statuses are read, not refused");
        let e = malformed(
            AGENT_WAIT,
            &serde_json::from_value::<WaitAnswer>(serde_json::json!({"status": ["SECRET-8"]}))
                .unwrap_err(),
        );
        assert!(!e.to_string().contains("SECRET-8"), "{e}");
        assert!(e.to_string().contains("agent.wait"), "{e}");
    }
}
