//! WebSocket plumbing for the client: connect (TLS with the OS trust store, optional bearer
//! token), and read/write control and binary frames with timeouts.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use clawtray_proto::control::ControlFrame;

/// The client's WebSocket.
pub type Ws = clawtray_transport::Ws;

/// A frame from the relay.
#[derive(Debug)]
pub enum Inbound {
    Control(ControlFrame),
    Binary(Vec<u8>),
    /// Anything else worth noting (pong).
    Pong,
    Closed(String),
}

/// Why talking to the relay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("the relay sent something unexpected: {0}")]
    Unexpected(String),
}

/// Open a WebSocket to `url`, with `Authorization: Bearer` when `bearer` is given (the one
/// transport every program here uses: [`clawtray_transport`]).
pub async fn connect(url: &str, bearer: Option<&str>, within: Duration) -> Result<Ws, WireError> {
    clawtray_transport::connect(url, bearer, clawtray_transport::RELAY_MAX_MESSAGE, within)
        .await
        .map_err(|e| match e {
            clawtray_transport::ConnectError::Timeout(_) => WireError::Timeout,
            clawtray_transport::ConnectError::Http { status, detail } => {
                WireError::Connect(format!("the relay answered HTTP {status}{detail}"))
            }
            other => WireError::Connect(other.to_string()),
        })
}

/// Send a control frame.
pub async fn send_control(ws: &mut Ws, f: &ControlFrame) -> Result<(), WireError> {
    ws.send(Message::text(f.to_json()))
        .await
        .map_err(|e| WireError::Lost(e.to_string()))
}

/// Send a binary frame.
pub async fn send_binary(ws: &mut Ws, b: Vec<u8>) -> Result<(), WireError> {
    ws.send(Message::binary(b))
        .await
        .map_err(|e| WireError::Lost(e.to_string()))
}

/// Read the next meaningful frame.
pub async fn recv(ws: &mut Ws) -> Inbound {
    loop {
        return match ws.next().await {
            None => Inbound::Closed("the relay closed the connection".into()),
            Some(Err(e)) => Inbound::Closed(e.to_string()),
            Some(Ok(Message::Text(t))) => match ControlFrame::from_json(t.as_str()) {
                Ok(f) => Inbound::Control(f),
                Err(_) => continue, // unknown control frames from a newer relay are ignored
            },
            Some(Ok(Message::Binary(b))) => Inbound::Binary(b.to_vec()),
            Some(Ok(Message::Pong(_))) => Inbound::Pong,
            Some(Ok(Message::Close(c))) => {
                Inbound::Closed(c.map_or_else(|| "closed".into(), |c| c.reason.to_string()))
            }
            Some(Ok(_)) => continue,
        };
    }
}

/// Read the next frame within `within`.
pub async fn recv_within(ws: &mut Ws, within: Duration) -> Result<Inbound, WireError> {
    tokio::time::timeout(within, recv(ws))
        .await
        .map_err(|_| WireError::Timeout)
}

/// Send a WebSocket ping (heartbeat).
pub async fn send_ping(ws: &mut Ws) -> Result<(), WireError> {
    ws.send(Message::Ping(Vec::new().into()))
        .await
        .map_err(|e| WireError::Lost(e.to_string()))
}
