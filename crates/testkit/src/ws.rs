//! A WebSocket client end for tests and benches: connect to a relay URL (Nagle off, like the
//! real ends) with an optional bearer device token.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connect to `url`, sending `Authorization: Bearer <bearer>` when given.
pub async fn connect(url: &str, bearer: Option<&str>) -> Result<Ws, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(t) = bearer {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}")
                .parse()
                .map_err(|_| "the token is not a valid header value".to_owned())?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}
