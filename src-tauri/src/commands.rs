//! Commands the UI invokes: each one is a call to the tray host over the local channel, for the
//! agent (slot) the window shows (`agent`; absent: the first paired one). Errors cross as
//! `{ code, message }` so the UI can branch on `code` and show `message`.

use serde_json::Value;
use tauri::State;

use clawtray_client::ipc::wire::{Call, CallError, Sent, Status, WireFile};
use clawtray_proto::chat::ApprovalDecision;

use crate::events::PairLink;
use crate::Core;

#[tauri::command]
pub async fn status(core: State<'_, Core>, agent: Option<String>) -> Result<Status, CallError> {
    core.host.call_as_for(agent, Call::Status).await
}

/// Pair: with `agent`, again in that agent's slot (replacing a pairing the relay refuses);
/// without, another agent (a free slot or a new one). The answer is the pairing, with its
/// `slot`.
#[tauri::command]
pub async fn pair(
    core: State<'_, Core>,
    agent: Option<String>,
    code: String,
    relay: String,
) -> Result<Value, CallError> {
    core.host.call_for(agent, Call::Pair { code, relay }).await
}

/// Send a message to the agent's session `session` (absent: its default one), with the files
/// the person attached (base64: the window reads them with `FileReader`).
#[tauri::command]
pub async fn send(
    core: State<'_, Core>,
    agent: Option<String>,
    text: String,
    session: Option<String>,
    files: Option<Vec<WireFile>>,
) -> Result<Sent, CallError> {
    // the key makes a call resent after a lost host connection return the same message
    let key = uuid::Uuid::new_v4().to_string();
    let files = files.unwrap_or_default();
    core.host
        .call_as_for(
            agent,
            Call::Send {
                session,
                text,
                key,
                files,
            },
        )
        .await
}

#[tauri::command]
pub async fn abort(
    core: State<'_, Core>,
    agent: Option<String>,
    run_id: String,
    session: Option<String>,
) -> Result<(), CallError> {
    core.host
        .call_for(agent, Call::Abort { session, run_id })
        .await
        .map(drop)
}

/// Ask for a session's latest `limit` messages, or (with `before`) the page before one shown.
#[tauri::command]
pub async fn history(
    core: State<'_, Core>,
    agent: Option<String>,
    limit: u32,
    before: Option<String>,
    session: Option<String>,
) -> Result<(), CallError> {
    core.host
        .call_for(
            agent,
            Call::History {
                before,
                session,
                limit,
            },
        )
        .await
        .map(drop)
}

/// Ask for the agent's sessions (answered with a `sessions` chat event).
#[tauri::command]
pub async fn sessions(core: State<'_, Core>, agent: Option<String>) -> Result<(), CallError> {
    core.host
        .call_for(agent, Call::Sessions)
        .await
        .map(drop::<Value>)
}

#[tauri::command]
pub async fn unpair(core: State<'_, Core>, agent: Option<String>) -> Result<(), CallError> {
    core.host.call_for(agent, Call::Unpair).await.map(drop)
}

/// Answer an exec approval: `decision` is `allow-once`, `allow-always` or `deny`.
#[tauri::command]
pub async fn decide(
    core: State<'_, Core>,
    agent: Option<String>,
    id: String,
    decision: ApprovalDecision,
) -> Result<(), CallError> {
    core.host
        .call_for(agent, Call::Decide { id, decision })
        .await
        .map(drop::<Value>)
}

/// Ask which approvals wait (answered with an `approvals` chat event).
#[tauri::command]
pub async fn approvals(core: State<'_, Core>, agent: Option<String>) -> Result<(), CallError> {
    core.host
        .call_for(agent, Call::Approvals)
        .await
        .map(drop::<Value>)
}

#[tauri::command]
pub async fn reconnect(core: State<'_, Core>, agent: Option<String>) -> Result<(), CallError> {
    core.host
        .call_for(agent, Call::Reconnect)
        .await
        .map(drop::<Value>)
}

/// The pairing link the host handed over (a `clawtray://pair?…` link was opened), once.
#[tauri::command]
pub fn take_pair_link(core: State<'_, Core>) -> Option<PairLink> {
    core.pair_link.lock().ok().and_then(|mut l| l.take())
}
