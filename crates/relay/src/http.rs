//! The HTTP side of the one port: read a request head (bounded in size; the caller bounds it in
//! time), answer `/healthz`, `/metrics` and errors, and accept WebSocket upgrades on
//! `/v1/agent` and `/v1/desktop`.
//!
//! Reading the head ourselves (instead of a full HTTP stack) keeps an upgraded connection down to
//! the WebSocket's own small buffers.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("connection closed before the request head was complete")]
    Closed,
    #[error("i/o error reading the request head: {0}")]
    Io(#[from] std::io::Error),
    #[error("request head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("malformed request head")]
    Malformed,
}

/// A parsed request line and headers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Parse a complete head (used by [`read_head`] and by tests).
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(buf).map_err(|_| HeadError::Malformed)? {
            httparse::Status::Partial => return Ok(None),
            httparse::Status::Complete(n) => n,
        };
        let target = req.path.ok_or(HeadError::Malformed)?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Ok(Some((
            Self {
                method: req.method.ok_or(HeadError::Malformed)?.to_owned(),
                path: path.to_owned(),
                query: url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            },
            n,
        )))
    }

    /// A header's value (name case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter.
    #[must_use]
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer <token>` header.
    #[must_use]
    pub fn bearer_token(&self) -> Option<&str> {
        let v = self.header("authorization")?.trim();
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request, or why it is not one.
    pub fn websocket_key(&self) -> Result<&str, &'static str> {
        if self.method != "GET" {
            return Err("WebSocket upgrades must use GET");
        }
        let has_token = |h: &str, tok: &str| {
            self.header(h)
                .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(tok)))
        };
        if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
            return Err("this endpoint only speaks WebSocket (missing Upgrade: websocket)");
        }
        if self.header("sec-websocket-version") != Some("13") {
            return Err("unsupported WebSocket version (need 13)");
        }
        self.header("sec-websocket-key")
            .ok_or("missing Sec-WebSocket-Key")
    }
}

/// Read one request head. Returns it with any bytes that followed it (a client may pipeline
/// its first WebSocket frame).
pub async fn read_head<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        if let Some((head, used)) = RequestHead::parse(&buf)? {
            return Ok((head, buf.split_off(used)));
        }
    }
}

/// Write a complete, non-upgrade response and flush it.
pub async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.flush().await
}

/// Write the `101 Switching Protocols` answer for `key`.
pub async fn accept_upgrade<S: AsyncWrite + Unpin>(s: &mut S, key: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    s.write_all(head.as_bytes()).await?;
    s.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RequestHead {
        RequestHead::parse(s.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn parses_upgrade_with_bearer_and_query() {
        let h = parse("GET /v1/desktop?session=abc&x=1 HTTP/1.1\r\nHost: r\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer tok123\r\n\r\n");
        assert_eq!(h.path, "/v1/desktop");
        assert_eq!(h.query("session"), Some("abc"));
        assert_eq!(h.bearer_token(), Some("tok123"));
        assert_eq!(h.websocket_key(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
        // RFC 6455's example
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rejects_non_upgrades_and_partial_heads() {
        let h = parse("GET /v1/agent HTTP/1.1\r\n\r\n");
        assert!(h.websocket_key().is_err());
        assert!(h.bearer_token().is_none());
        assert!(RequestHead::parse(b"GET / HTTP/1.1\r\nHost")
            .unwrap()
            .is_none());
        assert!(RequestHead::parse(b"\x00\x01garbage\r\n\r\n").is_err());
    }
}
