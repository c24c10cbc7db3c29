//! The desktop's first pairing over one relay connection: join the nameplate, SPAKE2, key
//! confirmation, static-key exchange, and the relay's `paired`. Returns the open connection (the
//! first meeting runs on it right away) and the pairing to store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

use clawtray_proto::code::PairingCode;
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::pairing::Pairing;
use clawtray_proto::secret::{SecretKey, StaticKeypair};
use clawtray_proto::{ProtoError, Role};

use crate::error::PairError;
use crate::relay_url::RelayUrl;
use crate::session_store::{new_stored_session, SessionInfo, StoredSession};
use crate::wire::{self, Inbound, WireError, Ws};

/// Time allowed for each pairing step.
pub const PAIRING_STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn relay_error(code: ErrorCode, message: String) -> PairError {
    match code {
        ErrorCode::NameplateUnknown => PairError::UnknownCode,
        ErrorCode::NameplateExpired => PairError::ExpiredCode,
        ErrorCode::PairingFailed => PairError::WrongCode,
        _ => PairError::RelayRefused(message),
    }
}

async fn next(ws: &mut Ws) -> Result<Inbound, PairError> {
    match wire::recv_within(ws, PAIRING_STEP_TIMEOUT).await {
        Ok(Inbound::Control(ControlFrame::Error { code, message })) => {
            Err(relay_error(code, message))
        }
        Ok(Inbound::Closed(why)) => Err(PairError::RelayRefused(format!(
            "the relay closed the connection during pairing ({why})"
        ))),
        Ok(other) => Ok(other),
        Err(_) => Err(PairError::RelayRefused(
            "the agent did not answer in time; check it is still showing the code".into(),
        )),
    }
}

fn lost(e: WireError) -> PairError {
    PairError::RelayRefused(format!("connection lost during pairing: {e}"))
}

/// Pair with the agent showing `code` through `relay`.
pub async fn pair(
    relay: &RelayUrl,
    code: &str,
    device_name: &str,
    connect_timeout: Duration,
) -> Result<(Ws, StoredSession), PairError> {
    let code = PairingCode::parse(code).map_err(|e| PairError::BadCode(e.to_string()))?;
    let mut ws = wire::connect(&relay.endpoint("/v1/desktop", &[]), None, connect_timeout)
        .await
        .map_err(|e| PairError::RelayUnreachable {
            url: relay.as_str().to_owned(),
            reason: e.to_string(),
        })?;
    wire::send_control(
        &mut ws,
        &ControlFrame::Join {
            nameplate: code.nameplate().to_string(),
        },
    )
    .await
    .map_err(lost)?;
    match next(&mut ws).await? {
        Inbound::Control(ControlFrame::Linked) => {}
        other => {
            return Err(PairError::RelayRefused(format!(
                "unexpected answer to join: {other:?}"
            )))
        }
    }
    let identity = StaticKeypair::generate().map_err(|e| PairError::Storage(e.to_string()))?;
    let (pairing, my_msg) = Pairing::start(Role::Desktop, &code, identity.clone(), device_name)
        .map_err(|e| PairError::BadCode(e.to_string()))?;
    wire::send_control(
        &mut ws,
        &ControlFrame::Pake {
            msg: b64().encode(&my_msg),
        },
    )
    .await
    .map_err(lost)?;
    let peer_msg = loop {
        match next(&mut ws).await? {
            Inbound::Control(ControlFrame::Pake { msg }) => {
                break b64().decode(msg).map_err(|_| PairError::WrongCode)?
            }
            Inbound::Pong => continue,
            other => {
                return Err(PairError::RelayRefused(format!(
                    "unexpected frame during pairing: {other:?}"
                )))
            }
        }
    };
    let (confirming, confirm_frame) = match pairing.receive_pake(&peer_msg) {
        Ok(x) => x,
        Err(_) => {
            let _ = wire::send_control(
                &mut ws,
                &ControlFrame::Failed {
                    reason: Some("bad pairing message".into()),
                },
            )
            .await;
            return Err(PairError::WrongCode);
        }
    };
    wire::send_binary(&mut ws, confirm_frame)
        .await
        .map_err(lost)?;
    let peer_confirm = loop {
        match next(&mut ws).await? {
            Inbound::Binary(b) => break b,
            Inbound::Pong => continue,
            other => {
                return Err(PairError::RelayRefused(format!(
                    "unexpected frame during pairing: {other:?}"
                )))
            }
        }
    };
    let peer = match confirming.receive_confirmation(&peer_confirm) {
        Ok(p) => p,
        Err(e) => {
            let reason = if e == ProtoError::WrongCode {
                "wrong code"
            } else {
                "malformed confirmation"
            };
            let _ = wire::send_control(
                &mut ws,
                &ControlFrame::Failed {
                    reason: Some(reason.into()),
                },
            )
            .await;
            return Err(PairError::WrongCode);
        }
    };
    wire::send_control(&mut ws, &ControlFrame::Confirmed)
        .await
        .map_err(lost)?;
    let (session, token) = loop {
        match next(&mut ws).await? {
            Inbound::Control(ControlFrame::Paired { session, token }) => break (session, token),
            Inbound::Pong => continue,
            other => {
                return Err(PairError::RelayRefused(format!(
                    "unexpected frame while finishing pairing: {other:?}"
                )))
            }
        }
    };
    let paired_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let info = SessionInfo {
        relay_url: relay.as_str().to_owned(),
        session_id: session,
        agent_name: peer.name,
        paired_at_ms,
    };
    let outbox_key = SecretKey::random().map_err(|e| PairError::Storage(e.to_string()))?;
    Ok((
        ws,
        new_stored_session(info, identity, peer.static_public, token, outbox_key),
    ))
}
