//! Where the gateway is and how to authenticate: flags, then `OPENCLAW_GATEWAY_TOKEN`, then the
//! local OpenClaw config (`OPENCLAW_CONFIG_PATH` or `~/.openclaw/openclaw.json`), so a typical
//! install needs no flags. URLs are `ws`/`wss` only; a token is never sent in clear to a
//! non-loopback host without an explicit opt-in.

use crate::error::{AgentError, Result};
use std::path::PathBuf;

use serde_json::Value;

use clawtray_proto::secret::SecretString;

/// The gateway's default port.
pub const DEFAULT_GATEWAY_PORT: u64 = 18789;

/// Inputs to the resolution (flags and environment).
#[derive(Debug, Default)]
pub struct GatewayInputs {
    pub url: Option<String>,
    pub token: Option<String>,
    pub env_token: Option<String>,
    pub config_path: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub allow_insecure: bool,
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Validate a `ws`/`wss` URL; `ws` to another host needs `allow_insecure` when a secret travels.
pub fn check_ws_url(s: &str, carries_secret: bool, allow_insecure: bool) -> Result<url::Url> {
    let u = url::Url::parse(s)
        .map_err(|e| AgentError::Config(format!("'{s}' is not a valid URL: {e}")))?;
    match u.scheme() {
        "wss" => Ok(u),
        "ws" if is_loopback(&u) || !carries_secret || allow_insecure => Ok(u),
        "ws" => Err(AgentError::Config(format!("'{s}' is unencrypted (ws://) to another machine and the token would travel in clear; use wss:// or pass --allow-insecure"))),
        other => Err(AgentError::Config(format!("'{s}': only ws:// and wss:// URLs are supported, not {other}://"))),
    }
}

/// The gateway URL and token to use.
pub fn resolve_gateway(i: &GatewayInputs) -> Result<(String, Option<SecretString>)> {
    let config_path = i
        .config_path
        .clone()
        .or_else(|| i.home.as_ref().map(|h| h.join(".openclaw/openclaw.json")));
    let config: Option<Value> = config_path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let port = config
        .as_ref()
        .and_then(|c| c.pointer("/gateway/port"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_GATEWAY_PORT);
    let url = i
        .url
        .clone()
        .unwrap_or_else(|| format!("ws://127.0.0.1:{port}"));
    let token = i
        .token
        .clone()
        .or_else(|| i.env_token.clone())
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.pointer("/gateway/auth/token"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|t| !t.is_empty());
    // a secret always travels: the shared token, or else the device token the gateway issued
    // (kept in gateway-identity.json) and the device's signed proof
    check_ws_url(&url, true, i.allow_insecure)?;
    Ok((url, token.map(SecretString::new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_port_and_token_from_the_openclaw_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".openclaw")).unwrap();
        std::fs::write(
            dir.path().join(".openclaw/openclaw.json"),
            r#"{"gateway":{"port":19999,"auth":{"token":"from-config"}}}"#,
        )
        .unwrap();
        let (url, token) = resolve_gateway(&GatewayInputs {
            home: Some(dir.path().to_owned()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(url, "ws://127.0.0.1:19999");
        assert_eq!(token.unwrap().expose(), "from-config");
        let (_, token) = resolve_gateway(&GatewayInputs {
            home: Some(dir.path().to_owned()),
            env_token: Some("env".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(token.unwrap().expose(), "env");
        let (_, token) = resolve_gateway(&GatewayInputs {
            home: Some(dir.path().to_owned()),
            env_token: Some("env".into()),
            token: Some("flag".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(token.unwrap().expose(), "flag");
    }

    #[test]
    fn refuses_cleartext_tokens_to_other_hosts_and_other_schemes() {
        let i = GatewayInputs {
            url: Some("ws://gateway.example.com:18789".into()),
            token: Some("t".into()),
            ..Default::default()
        };
        assert!(resolve_gateway(&i)
            .unwrap_err()
            .to_string()
            .contains("in clear"));
        assert!(resolve_gateway(&GatewayInputs {
            allow_insecure: true,
            ..i
        })
        .is_ok());
        assert!(resolve_gateway(&GatewayInputs {
            url: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
        .contains("only ws://"));
        assert!(check_ws_url("wss://r.example.com", true, false).is_ok());
    }

    #[test]
    fn without_a_shared_token_the_device_token_still_never_travels_in_clear() {
        // before: no shared token made a ws:// gateway on another host acceptable, and the stored
        // gateway device token went there in clear
        let e = resolve_gateway(&GatewayInputs {
            url: Some("ws://gateway.example.com:18789".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("in clear"), "{e}");
        assert!(resolve_gateway(&GatewayInputs {
            url: Some("ws://127.0.0.1:18789".into()),
            ..Default::default()
        })
        .is_ok());
    }
}
