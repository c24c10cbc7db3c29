//! Gateway frames: `{"type":"req"|"res"|"event", …}` JSON text messages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request we send.
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub method: &'a str,
    pub params: &'a Value,
}

/// The gateway's error shape.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorShape {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: Option<Value>,
    #[serde(default)]
    pub retryable: Option<bool>,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// `details.code`, when the gateway gives one (e.g. `PROTOCOL_MISMATCH`, `MISSING_SCOPE`).
    #[must_use]
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }
}

/// Anything the gateway sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Incoming {
    Res {
        id: String,
        ok: bool,
        #[serde(default)]
        payload: Value,
        #[serde(default)]
        error: Option<ErrorShape>,
    },
    Event {
        event: String,
        #[serde(default)]
        payload: Value,
        #[serde(default)]
        seq: Option<u64>,
    },
}

/// Parse one text frame; `None` for frames of other types (ignored, forward compatible).
#[must_use]
pub fn parse(text: &str) -> Option<Incoming> {
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses_events_and_errors() {
        let r = parse(r#"{"type":"res","id":"1","ok":false,"error":{"code":"INVALID_REQUEST","message":"m","details":{"code":"PROTOCOL_MISMATCH","expectedProtocol":5},"retryable":false}}"#).unwrap();
        let Incoming::Res {
            ok, error: Some(e), ..
        } = r
        else {
            panic!()
        };
        assert!(!ok);
        assert_eq!(e.detail_code(), Some("PROTOCOL_MISMATCH"));
        let e = parse(r#"{"type":"event","event":"tick","payload":{"ts":1},"seq":3}"#).unwrap();
        assert!(matches!(e, Incoming::Event { seq: Some(3), .. }));
        assert!(parse(r#"{"type":"hello"}"#).is_none());
        assert!(parse("nope").is_none());
    }
}
