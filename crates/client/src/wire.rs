//! WebSocket plumbing for the client: connect (TLS with the OS trust store, optional bearer
//! token), and read/write control and binary frames with timeouts.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use clawtray_proto::control::ControlFrame;
use clawtray_proto::sealed::MAX_SEALED_FRAME;

/// The client's WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            Arc::new(config.unwrap_or_else(|_| {
                // Only reachable if ring lacks TLS 1.2/1.3, which it does not.
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                })
                .unwrap_or_else(|_| unreachable!("TLS 1.3 is supported by ring"))
            }))
        })
        .clone()
}

/// Open a WebSocket to `url`, with `Authorization: Bearer` when `bearer` is given.
pub async fn connect(url: &str, bearer: Option<&str>, within: Duration) -> Result<Ws, WireError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| WireError::Connect(e.to_string()))?;
    if let Some(t) = bearer {
        let v = format!("Bearer {t}")
            .parse()
            .map_err(|_| WireError::Connect("token is not a valid header value".into()))?;
        req.headers_mut().insert("authorization", v);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(MAX_SEALED_FRAME + 1024))
        .max_frame_size(Some(MAX_SEALED_FRAME + 1024));
    let connector = Some(Connector::Rustls(tls_config()));
    match tokio::time::timeout(
        within,
        tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, connector),
    )
    .await
    {
        Err(_) => Err(WireError::Timeout),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(WireError::Connect(format!(
            "the relay answered HTTP {}{}",
            resp.status(),
            resp.body()
                .as_ref()
                .map(|b| format!(": {}", String::from_utf8_lossy(b).trim()))
                .unwrap_or_default()
        ))),
        Ok(Err(e)) => Err(WireError::Connect(e.to_string())),
        Ok(Ok((ws, _))) => Ok(ws),
    }
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
