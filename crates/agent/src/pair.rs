//! `clawtray-agent pair`: claim a nameplate at the relay, show the pairing code (big, and as a
//! terminal QR code of a `clawtray://pair?code=…` link), wait for the desktop, run SPAKE2 and key
//! confirmation, store the pairing. A wrong code typed on the desktop burns the nameplate: a new
//! code is shown. The running service (`clawtray-agent run`) picks the new pairing up by itself.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::pairing::Pairing as Pake;
use clawtray_proto::Role;

use clawtray_proto::ProtoError;

use crate::error::{AgentError, Result};
use crate::state::{Pairing, StateDir};

/// The relay connection broke mid-pairing.
fn lost_relay(e: tokio_tungstenite::tungstenite::Error) -> AgentError {
    AgentError::Pairing(format!("the connection to the relay broke: {e}"))
}

type Ws = clawtray_transport::Ws;

enum Step {
    Control(ControlFrame),
    Binary(Vec<u8>),
}

async fn next(ws: &mut Ws, within: Duration) -> Result<Step> {
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => {
                return Err(AgentError::Pairing(
                    "timed out waiting for the desktop".into(),
                ))
            }
            Ok(None | Some(Err(_))) => {
                return Err(AgentError::Pairing(
                    "the relay closed the connection".into(),
                ))
            }
            Ok(Some(Ok(Message::Text(t)))) => match ControlFrame::from_json(t.as_str()) {
                Ok(f) => return Ok(Step::Control(f)),
                Err(_) => continue,
            },
            Ok(Some(Ok(Message::Binary(b)))) => return Ok(Step::Binary(b.to_vec())),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

fn show_code(out: &mut dyn Write, code: &str, relay: &str) {
    let link = format!("clawtray://pair?code={code}&relay={relay}");
    let _ = writeln!(
        out,
        "\n  Type this code into clawtray on your desktop (it works once, for 10 minutes):\n"
    );
    let _ = writeln!(out, "      ┌──────────────────┐");
    let _ = writeln!(out, "      │  {code:<16}│");
    let _ = writeln!(out, "      └──────────────────┘\n");
    if let Ok(qr) = qrcode::QrCode::new(link.as_bytes()) {
        let _ = writeln!(
            out,
            "{}",
            qr.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        );
    }
    // terminals make it clickable: opens the desktop app's pairing dialog, filled in
    let _ = writeln!(out, "  Or open this link on the desktop: {link}\n");
    // a line scripts and tests can read
    let _ = writeln!(out, "Pairing code: {code}");
    let _ = out.flush();
}

/// Pair one desktop through `relay` (a `ws`/`wss` base URL). Returns the stored pairing.
pub async fn pair(
    state: &StateDir,
    relay: &str,
    name: &str,
    out: &mut dyn Write,
) -> Result<Pairing> {
    let identity = state.static_key()?;
    let mut url = url::Url::parse(relay)
        .map_err(|e| AgentError::Config(format!("'{relay}' is not a valid relay URL: {e}")))?;
    url.set_path("/v1/agent");
    url.query_pairs_mut().append_pair("instance", "pairing");
    loop {
        let mut ws = clawtray_transport::connect(
            url.as_str(),
            None,
            clawtray_transport::RELAY_MAX_MESSAGE,
            Duration::from_secs(15),
        )
        .await
        .map_err(|e| AgentError::Pairing(format!("cannot reach the relay at {relay}: {e}")))?;
        let send = |f: ControlFrame| Message::text(f.to_json());
        ws.send(send(ControlFrame::Claim))
            .await
            .map_err(lost_relay)?;
        let (nameplate, ttl) = match next(&mut ws, Duration::from_secs(15)).await? {
            Step::Control(ControlFrame::Claimed {
                nameplate,
                expires_in,
            }) => (nameplate, expires_in),
            Step::Control(ControlFrame::Error { message, .. }) => {
                return Err(AgentError::Pairing(format!(
                    "the relay refused to hand out a code: {message}"
                )))
            }
            _ => {
                return Err(AgentError::Pairing(
                    "unexpected answer from the relay".into(),
                ))
            }
        };
        let code = PairingCode::generate(Nameplate::parse(&nameplate)?)?;
        show_code(out, &code.display_string(), relay);
        match next(&mut ws, Duration::from_secs(ttl + 5)).await? {
            Step::Control(ControlFrame::Linked) => {}
            Step::Control(ControlFrame::Error {
                code: ErrorCode::NameplateExpired,
                ..
            }) => {
                let _ = writeln!(out, "That code expired; here is a new one.");
                continue;
            }
            _ => {
                return Err(AgentError::Pairing(
                    "unexpected answer from the relay while waiting for the desktop".into(),
                ))
            }
        }
        let _ = writeln!(out, "A desktop joined; checking the code…");
        let (pake, msg) = Pake::start(Role::Agent, &code, identity.clone(), name)?;
        ws.send(send(ControlFrame::Pake {
            msg: base64::engine::general_purpose::STANDARD.encode(msg),
        }))
        .await
        .map_err(lost_relay)?;
        let peer_msg = match next(&mut ws, Duration::from_secs(60)).await? {
            Step::Control(ControlFrame::Pake { msg }) => base64::engine::general_purpose::STANDARD
                .decode(msg)
                .map_err(|_| ProtoError::PakeMalformed)?,
            Step::Control(ControlFrame::Error { message, .. }) => {
                let _ = writeln!(
                    out,
                    "Pairing was interrupted ({message}); here is a new code."
                );
                continue;
            }
            _ => {
                return Err(AgentError::Pairing(
                    "unexpected frame during pairing".into(),
                ))
            }
        };
        let Ok((confirming, confirm)) = pake.receive_pake(&peer_msg) else {
            let _ = ws
                .send(send(ControlFrame::Failed {
                    reason: Some("bad pairing message".into()),
                }))
                .await;
            let _ = writeln!(
                out,
                "The desktop's pairing message was malformed; here is a new code."
            );
            continue;
        };
        ws.send(Message::binary(confirm))
            .await
            .map_err(lost_relay)?;
        let peer_confirm = match next(&mut ws, Duration::from_secs(60)).await? {
            Step::Binary(b) => b,
            Step::Control(ControlFrame::Error { .. }) => {
                let _ = writeln!(
                    out,
                    "The code did not match on the desktop; here is a new one."
                );
                continue;
            }
            Step::Control(_) => {
                return Err(AgentError::Pairing(
                    "unexpected frame during pairing".into(),
                ))
            }
        };
        let peer = match confirming.receive_confirmation(&peer_confirm) {
            Ok(p) => p,
            Err(_) => {
                let _ = ws
                    .send(send(ControlFrame::Failed {
                        reason: Some("wrong code".into()),
                    }))
                    .await;
                let _ = writeln!(
                    out,
                    "The code was typed wrong on the desktop; here is a new one."
                );
                continue;
            }
        };
        ws.send(send(ControlFrame::Confirmed))
            .await
            .map_err(lost_relay)?;
        let (session, token) = match next(&mut ws, Duration::from_secs(30)).await? {
            Step::Control(ControlFrame::Paired { session, token }) => (session, token),
            _ => {
                return Err(AgentError::Pairing(
                    "the relay did not confirm the pairing".into(),
                ))
            }
        };
        let pairing = Pairing {
            session,
            relay_url: relay.trim_end_matches('/').to_owned(),
            desktop_public: base64::engine::general_purpose::STANDARD.encode(peer.static_public),
            desktop_name: peer.name.clone(),
            paired_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
            unpair_requested: false,
        };
        state.add_pairing(pairing.clone(), &token)?;
        let _ = ws.close(None).await;
        let _ = writeln!(out, "Paired with {}.", peer.name);
        return Ok(pairing);
    }
}
