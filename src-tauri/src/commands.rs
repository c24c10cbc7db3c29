//! Commands the UI invokes: each one delegates to `RelayClient`. Errors cross as
//! `{ code, message }` so the UI can branch on `code` and show `message`.

use serde::Serialize;
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt;

use clawtray_client::session_store::SessionInfo;
use clawtray_client::{ClientError, ConnectionState, PairError};

use crate::Core;

/// An error for the UI.
#[derive(Debug, Serialize, PartialEq, Eq, ts_rs::TS)]
#[ts(rename = "CommandError")]
pub struct CmdError {
    pub code: &'static str,
    pub message: String,
}

impl From<PairError> for CmdError {
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
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<ClientError> for CmdError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotPaired => "NOT_PAIRED",
            ClientError::MessageTooLong(_) => "MESSAGE_TOO_LONG",
            ClientError::OutboxFull(_) => "OUTBOX_FULL",
            ClientError::Storage(_) => "STORAGE",
            ClientError::Stopped => "STOPPED",
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

/// A message still waiting for the agent.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Queued {
    pub id: String,
    pub text: String,
}

/// Everything the UI needs to draw itself after (re)opening.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Status {
    pub state: ConnectionState,
    pub session: Option<SessionInfo>,
    pub queued: Vec<Queued>,
}

#[tauri::command]
pub async fn status(core: State<'_, Core>) -> Result<Status, CmdError> {
    let state = core.client.state().borrow().clone();
    let queued = core
        .client
        .queued()
        .await
        .into_iter()
        .map(|(id, text)| Queued { id, text })
        .collect();
    Ok(Status {
        state,
        session: core.client.session().await,
        queued,
    })
}

#[tauri::command]
pub async fn pair(
    app: AppHandle,
    core: State<'_, Core>,
    code: String,
    relay: String,
) -> Result<SessionInfo, CmdError> {
    let info = core.client.pair(&code, &relay).await?;
    // auto-resume at login is on by default once paired (the tray menu turns it off)
    if let Err(e) = app.autolaunch().enable() {
        tracing::warn!("cannot enable start at login: {e}");
    }
    Ok(info)
}

#[tauri::command]
pub async fn send(core: State<'_, Core>, text: String) -> Result<String, CmdError> {
    Ok(core.client.send(&text).await?)
}

#[tauri::command]
pub async fn abort(core: State<'_, Core>, run_id: String) -> Result<(), CmdError> {
    Ok(core.client.abort(&run_id).await?)
}

#[tauri::command]
pub async fn history(core: State<'_, Core>, limit: u32) -> Result<(), CmdError> {
    Ok(core.client.load_history(limit.clamp(1, 500)).await?)
}

#[tauri::command]
pub async fn unpair(core: State<'_, Core>) -> Result<(), CmdError> {
    Ok(core.client.unpair().await?)
}

#[tauri::command]
pub async fn reconnect(core: State<'_, Core>) -> Result<(), CmdError> {
    core.client.reconnect_now().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_as_code_and_message() {
        let e = CmdError::from(PairError::WrongCode);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "WRONG_CODE");
        assert!(json["message"].as_str().unwrap().contains("did not match"));
        assert_eq!(
            serde_json::to_value(CmdError::from(ClientError::NotPaired)).unwrap()["code"],
            "NOT_PAIRED"
        );
    }
}
