//! One way to open a WebSocket for every program here — the desktop's relay connection, the
//! agent's relay links, its pairing and revoke connections, and its gateway connection — so they
//! cannot drift apart: TLS 1.2/1.3 with rustls (ring) and the OS trust store (which honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), an optional `Authorization: Bearer`, a message size limit,
//! Nagle off, and a deadline for the whole opening. And what both ends do on a relay connection
//! once it is open: [`paced`] sending, the [`heartbeat`], and reconnect [`backoff`].
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
pub mod heartbeat;
pub mod paced;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use clawtray_proto::sealed::MAX_SEALED_FRAME;

/// An open WebSocket (plain or TLS).
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest message a relay may send: one sealed frame and its envelope. Anything bigger is
/// refused before it is buffered (a relay is not trusted).
pub const RELAY_MAX_MESSAGE: usize = MAX_SEALED_FRAME + 1024;

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The URL or token cannot make a request.
    #[error("{0}")]
    Request(String),
    /// Nothing listens there.
    #[error("nothing is listening at {0}")]
    Refused(String),
    /// The server answered with an HTTP status instead of upgrading.
    #[error("the server answered HTTP {status}{detail}")]
    Http { status: u16, detail: String },
    /// TLS or the WebSocket handshake failed (e.g. a certificate not trusted).
    #[error("cannot connect to {url}: {reason}")]
    Handshake { url: String, reason: String },
    /// The deadline passed.
    #[error("connecting to {0} timed out")]
    Timeout(String),
}

/// The TLS settings every connection uses: built once, from the OS trust store.
#[must_use]
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| {
                // ring supports both safe versions; this branch only keeps us panic-free
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap_or_else(|_| unreachable!("ring supports TLS 1.3"))
            });
            Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
        })
        .clone()
}

/// Open a WebSocket to `url` (`ws://` or `wss://`), with `Authorization: Bearer` when `bearer`
/// is given, refusing messages over `max_message` bytes, within `within`.
pub async fn connect(
    url: &str,
    bearer: Option<&str>,
    max_message: usize,
    within: Duration,
) -> Result<Ws, ConnectError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| ConnectError::Request(format!("'{url}' cannot be opened: {e}")))?;
    if let Some(t) = bearer {
        let v = format!("Bearer {t}")
            .parse()
            .map_err(|_| ConnectError::Request("the token is not a valid header value".into()))?;
        req.headers_mut().insert("authorization", v);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let opening = tokio_tungstenite::connect_async_tls_with_config(
        req,
        Some(config),
        true,
        Some(Connector::Rustls(tls_config())),
    );
    match tokio::time::timeout(within, opening).await {
        Err(_) => Err(ConnectError::Timeout(url.to_owned())),
        Ok(Err(tungstenite::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(ConnectError::Refused(url.to_owned()))
        }
        Ok(Err(tungstenite::Error::Http(resp))) => Err(ConnectError::Http {
            status: resp.status().as_u16(),
            detail: resp
                .body()
                .as_ref()
                .map(|b| format!(": {}", String::from_utf8_lossy(b).trim()))
                .unwrap_or_default(),
        }),
        Ok(Err(e)) => Err(ConnectError::Handshake {
            url: url.to_owned(),
            reason: e.to_string(),
        }),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_say_what_went_wrong() {
        let e = connect("not a url", None, 1024, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::Request(_)), "{e}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = connect(
            &format!("ws://127.0.0.1:{port}/"),
            None,
            1024,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(e, ConnectError::Refused(format!("ws://127.0.0.1:{port}/")));
        let e = connect(
            "ws://127.0.0.1:1/",
            Some("bad\ntoken"),
            1024,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("not a valid header"), "{e}");
    }
}
