//! [`GatewayClient`]: one actor owning the gateway connection. Handshake: wait for
//! `connect.challenge`, send `connect` (negotiated protocol, token auth, signed device identity),
//! receive `hello-ok` (keep its device token). Then requests are correlated by id, events are
//! published to subscribers (subscribed before the first connect, so none is missed), `tick`
//! silence longer than twice the advertised interval counts as a dead connection, and every
//! pending request fails at once when the connection drops. Reconnects back off 1 s → 30 s,
//! honouring the gateway's `retryAfterMs`.

use crate::error::AgentError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use clawtray_proto::files::FileLimits;
use clawtray_proto::secret::{SecretKey, SecretString};

use super::frames::{self, ErrorShape, Incoming, Request};
use super::identity::{DeviceIdentity, SignedFields};

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u64 = 4;
/// Default time for a request's answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to connect and finish the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Reconnect backoff bounds.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The largest message taken from the gateway (history pages can be large).
const GATEWAY_MAX_MESSAGE: usize = 64 << 20;
const CLIENT_ID: &str = "cli";
const CLIENT_MODE: &str = "cli";
const ROLE: &str = "operator";
/// Read and write (chat), and approvals: the agent's chat connection must hold
/// `operator.approvals` or an exec fails at once, and it is the approver that is always online,
/// holding a request until a desktop answers.
const SCOPES: [&str; 3] = ["operator.read", "operator.write", "operator.approvals"];
/// With [`GatewayConfig::approve_all_devices`]: approvals of every device, channel and cron job.
const ADMIN_SCOPE: &str = "operator.admin";
/// The capability an approver must announce.
const CAPS: [&str; 1] = ["exec-approvals"];
const DEVICE_FAMILY: &str = "server";

type Ws = clawtray_transport::Ws;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `ws://127.0.0.1:18789` or a `wss://` URL.
    pub url: String,
    /// The gateway's shared token.
    pub token: Option<SecretString>,
    /// The device identity file (0600).
    pub identity_path: PathBuf,
    /// Seal the identity file under this key (the agent's [`crate::state::StateDir::gateway_identity_key`]);
    /// `None` keeps it in clear (tools and tests).
    pub identity_key: Option<SecretKey>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Ask for `operator.admin` so the agent sees (and desktops answer) approvals of runs started
    /// anywhere — other channels, cron, other devices — not only its own. Off by default.
    pub approve_all_devices: bool,
}

/// Errors of gateway requests and connections, each a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the OpenClaw gateway is not running at {0} (start it with `openclaw gateway run`)")]
    NotRunning(String),
    #[error(
        "the gateway rejected the token ({0}); check --gateway-token or OPENCLAW_GATEWAY_TOKEN"
    )]
    BadToken(String),
    #[error("the gateway refused: this device lacks a scope ({0})")]
    MissingScope(String),
    #[error(
        "the gateway speaks protocol {0}; this agent speaks {PROTOCOL_VERSION}: update one of them"
    )]
    ProtocolMismatch(u64),
    #[error("{method}: {code}: {message}")]
    Gateway {
        method: String,
        code: String,
        message: String,
        retryable: bool,
        retry_after_ms: Option<u64>,
    },
    #[error("{0}: no answer from the gateway in time")]
    Timeout(String),
    #[error("the gateway connection closed before the answer came")]
    Closed,
    #[error("not connected to the gateway right now")]
    NotConnected,
    #[error("gateway handshake failed: {0}")]
    Handshake(String),
    #[error("the gateway's answer to {method} could not be read ({detail}); update clawtray-agent or OpenClaw so they speak the same protocol")]
    Malformed {
        method: &'static str,
        detail: String,
    },
    #[error("the gateway's {event} event could not be read ({detail}); update clawtray-agent or OpenClaw so they speak the same protocol")]
    MalformedEvent { event: &'static str, detail: String },
}

/// What subscribers hear.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    /// `hello-ok` received (again): run state from before is gone.
    Connected {
        protocol: u64,
        server_version: String,
        /// The files it takes (`policy.attachments`, `policy.maxPayload`; its defaults where
        /// it does not say).
        files: FileLimits,
    },
    /// The connection ended.
    Disconnected { reason: String },
    /// A gateway event.
    Event { name: String, payload: Value },
}

enum Cmd {
    Request {
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, GatewayError>>,
    },
}

/// Where the gateway connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayLink {
    /// The first connection is being made: nothing has failed yet.
    Connecting,
    /// Connected and authenticated.
    Connected,
    /// A connection failed or ended; retrying.
    Down,
}

/// Handle to the gateway actor.
#[derive(Clone)]
pub struct GatewayClient {
    tx: mpsc::Sender<Cmd>,
    events: broadcast::Sender<GatewayEvent>,
    connected: watch::Receiver<GatewayLink>,
    request_timeout: Duration,
}

impl GatewayClient {
    /// Start connecting. The returned receiver is subscribed before the first connection.
    pub fn start(
        config: GatewayConfig,
    ) -> Result<(Self, broadcast::Receiver<GatewayEvent>), AgentError> {
        let identity =
            DeviceIdentity::load_or_create(&config.identity_path, config.identity_key.clone())?;
        let (tx, rx) = mpsc::channel(256);
        let (events, first_rx) = broadcast::channel(8192);
        let (connected_tx, connected) = watch::channel(GatewayLink::Connecting);
        let request_timeout = config.request_timeout;
        let actor = Actor {
            config,
            identity,
            rx,
            events: events.clone(),
            connected: connected_tx,
            protocol: PROTOCOL_VERSION,
        };
        tokio::spawn(actor.run());
        Ok((
            Self {
                tx,
                events,
                connected,
                request_timeout,
            },
            first_rx,
        ))
    }

    /// Another subscriber.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.events.subscribe()
    }

    /// Whether the handshake is done right now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow() == GatewayLink::Connected
    }

    /// Where the connection stands (a fresh client is `Connecting`, not `Down`).
    #[must_use]
    pub fn link(&self) -> GatewayLink {
        *self.connected.borrow()
    }

    /// Call `method` and wait for its answer.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, GatewayError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Request {
                method: method.to_owned(),
                params,
                reply,
            })
            .await
            .map_err(|_| GatewayError::Closed)?;
        match timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(GatewayError::Closed),
            Err(_) => Err(GatewayError::Timeout(method.to_owned())),
        }
    }
}

struct Actor {
    config: GatewayConfig,
    identity: DeviceIdentity,
    rx: mpsc::Receiver<Cmd>,
    events: broadcast::Sender<GatewayEvent>,
    connected: watch::Sender<GatewayLink>,
    protocol: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn gateway_error(method: &str, e: ErrorShape) -> GatewayError {
    let detail = e.detail_code().unwrap_or_default().to_owned();
    if detail == "MISSING_SCOPE" || e.code == "FORBIDDEN" && e.message.contains("scope") {
        return GatewayError::MissingScope(e.message);
    }
    GatewayError::Gateway {
        method: method.to_owned(),
        code: e.code,
        message: e.message,
        retryable: e.retryable.unwrap_or(false),
        retry_after_ms: e.retry_after_ms,
    }
}

/// Why a session ended, and how long to wait before the next one.
struct Ended {
    reason: String,
    retry_after: Option<Duration>,
    handshake_done: bool,
}

impl Actor {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let ended = self.session().await;
            self.connected.send_replace(GatewayLink::Down);
            if ended.reason == "stopped" {
                return;
            }
            let _ = self.events.send(GatewayEvent::Disconnected {
                reason: ended.reason.clone(),
            });
            if ended.handshake_done {
                backoff = BACKOFF_MIN;
            }
            let wait = ended
                .retry_after
                .unwrap_or(backoff)
                .clamp(Duration::from_millis(100), BACKOFF_MAX);
            warn!(reason = %ended.reason, retry_in_ms = wait.as_millis() as u64, "gateway connection ended");
            backoff = (backoff * 2).min(BACKOFF_MAX);
            // answer requests at once while disconnected
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = sleep_until(deadline) => break,
                    cmd = self.rx.recv() => match cmd {
                        None => return,
                        Some(Cmd::Request { reply, .. }) => { let _ = reply.send(Err(GatewayError::NotConnected)); }
                    },
                }
            }
        }
    }

    async fn connect_ws(&self) -> Result<Ws, GatewayError> {
        // the same transport as the relay links: the OS trust store for wss://
        clawtray_transport::connect(
            self.config.url.as_str(),
            None,
            GATEWAY_MAX_MESSAGE,
            self.config.connect_timeout,
        )
        .await
        .map_err(|e| match e {
            clawtray_transport::ConnectError::Refused(_) => {
                GatewayError::NotRunning(self.config.url.clone())
            }
            other => GatewayError::Handshake(other.to_string()),
        })
    }

    async fn session(&mut self) -> Ended {
        let fail = |e: GatewayError, retry_after: Option<Duration>| Ended {
            reason: e.to_string(),
            retry_after,
            handshake_done: false,
        };
        let mut ws = match self.connect_ws().await {
            Ok(ws) => ws,
            Err(e) => return fail(e, None),
        };
        let hello = match timeout(self.config.connect_timeout, self.handshake(&mut ws)).await {
            Err(_) => {
                return fail(
                    GatewayError::Handshake("no hello from the gateway in time".into()),
                    None,
                )
            }
            Ok(Err((e, retry))) => return fail(e, retry),
            Ok(Ok(h)) => h,
        };
        let tick = hello
            .get("policy")
            .and_then(|p| p.get("tickIntervalMs"))
            .and_then(Value::as_u64)
            .unwrap_or(30_000);
        let dead_after = Duration::from_millis(tick.saturating_mul(2).max(2_000));
        let protocol = hello
            .get("protocol")
            .and_then(Value::as_u64)
            .unwrap_or(self.protocol);
        let server_version = hello
            .pointer("/server/version")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        if let Some(token) = hello.pointer("/auth/deviceToken").and_then(Value::as_str) {
            if let Err(e) = self.identity.set_device_token(Some(token.to_owned())) {
                warn!("could not keep the gateway's device token: {e}");
            }
        }
        let files = file_limits(&hello);
        info!(protocol, %server_version, "connected to the OpenClaw gateway");
        self.connected.send_replace(GatewayLink::Connected);
        let _ = self.events.send(GatewayEvent::Connected {
            protocol,
            server_version,
            files,
        });

        let mut pending: HashMap<String, (String, oneshot::Sender<Result<Value, GatewayError>>)> =
            HashMap::new();
        let mut last_rx = Instant::now();
        let ended = loop {
            tokio::select! {
                msg = ws.next() => {
                    last_rx = Instant::now();
                    match msg {
                        None => break "the gateway closed the connection".to_owned(),
                        Some(Err(e)) => break format!("gateway connection error: {e}"),
                        Some(Ok(Message::Text(t))) => match frames::parse(t.as_str()) {
                            Some(Incoming::Res { id, ok, payload, error }) => {
                                if let Some((method, reply)) = pending.remove(&id) {
                                    let r = if ok { Ok(payload) } else { Err(error.map_or(GatewayError::Closed, |e| gateway_error(&method, e))) };
                                    let _ = reply.send(r);
                                }
                            }
                            Some(Incoming::Event { event, payload, .. }) => {
                                if event != "tick" {
                                    let _ = self.events.send(GatewayEvent::Event { name: event, payload });
                                }
                            }
                            None => debug!("ignored an unknown gateway frame"),
                        },
                        Some(Ok(Message::Close(c))) => break format!("the gateway closed the connection{}", c.map(|c| format!(" ({})", c.reason)).unwrap_or_default()),
                        Some(Ok(_)) => {}
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    None => break "stopped".to_owned(),
                    Some(Cmd::Request { method, params, reply }) => {
                        let id = uuid::Uuid::new_v4().to_string();
                        let text = serde_json::to_string(&Request { kind: "req", id: &id, method: &method, params: &params }).unwrap_or_default();
                        if ws.send(Message::text(text)).await.is_err() {
                            let _ = reply.send(Err(GatewayError::Closed));
                            break "cannot write to the gateway".to_owned();
                        }
                        pending.insert(id, (method, reply));
                    }
                },
                () = sleep(dead_after.saturating_sub(last_rx.elapsed())) => {
                    if last_rx.elapsed() >= dead_after {
                        break format!("no tick from the gateway for {} s (dead connection)", dead_after.as_secs());
                    }
                }
            }
        };
        for (_, (_, reply)) in pending.drain() {
            let _ = reply.send(Err(GatewayError::Closed));
        }
        Ended {
            reason: ended,
            retry_after: None,
            handshake_done: true,
        }
    }

    /// challenge → connect → hello-ok. Retries once with the gateway's protocol on a mismatch.
    async fn handshake(&mut self, ws: &mut Ws) -> Result<Value, (GatewayError, Option<Duration>)> {
        let challenge = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if let Some(Incoming::Event { event, payload, .. }) = frames::parse(t.as_str())
                    {
                        if event == "connect.challenge" {
                            break payload;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    return Err((
                        GatewayError::Handshake("the gateway closed before its challenge".into()),
                        None,
                    ))
                }
            }
        };
        let nonce = challenge
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ts = challenge
            .get("ts")
            .and_then(Value::as_u64)
            .unwrap_or_else(now_ms);
        let (auth, sig_token) = match (&self.config.token, self.identity.device_token()) {
            (Some(t), _) => (json!({ "token": t.expose() }), t.expose().to_owned()),
            (None, Some(d)) => (json!({ "deviceToken": d }), d.to_owned()),
            (None, None) => (json!({}), String::new()),
        };
        let mut scopes: Vec<&str> = SCOPES.to_vec();
        if self.config.approve_all_devices {
            scopes.push(ADMIN_SCOPE);
        }
        let fields = SignedFields {
            client_id: CLIENT_ID,
            client_mode: CLIENT_MODE,
            role: ROLE,
            scopes: &scopes,
            signed_at_ms: ts,
            token: &sig_token,
            nonce: &nonce,
            platform: std::env::consts::OS,
            device_family: DEVICE_FAMILY,
        };
        let params = json!({
            "minProtocol": self.protocol, "maxProtocol": self.protocol,
            "client": { "id": CLIENT_ID, "version": env!("CARGO_PKG_VERSION"), "platform": std::env::consts::OS, "deviceFamily": DEVICE_FAMILY, "mode": CLIENT_MODE },
            "role": ROLE, "scopes": scopes, "caps": CAPS, "commands": [], "permissions": {},
            "auth": auth,
            "userAgent": concat!("clawtray-agent/", env!("CARGO_PKG_VERSION")),
            "device": { "id": self.identity.id(), "publicKey": self.identity.public_key(), "signature": self.identity.sign_v3(&fields), "signedAt": ts, "nonce": nonce },
        });
        let id = uuid::Uuid::new_v4().to_string();
        let text = serde_json::to_string(&Request {
            kind: "req",
            id: &id,
            method: "connect",
            params: &params,
        })
        .unwrap_or_default();
        ws.send(Message::text(text))
            .await
            .map_err(|e| (GatewayError::Handshake(e.to_string()), None))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match frames::parse(t.as_str()) {
                    Some(Incoming::Res {
                        id: rid,
                        ok: true,
                        payload,
                        ..
                    }) if rid == id => return Ok(payload),
                    Some(Incoming::Res {
                        id: rid,
                        ok: false,
                        error,
                        ..
                    }) if rid == id => {
                        let e = error.unwrap_or(ErrorShape {
                            code: "UNKNOWN".into(),
                            message: "connect refused".into(),
                            details: None,
                            retryable: None,
                            retry_after_ms: None,
                        });
                        let retry = e.retry_after_ms.map(Duration::from_millis);
                        if e.detail_code() == Some("PROTOCOL_MISMATCH") {
                            let expected = e
                                .details
                                .as_ref()
                                .and_then(|d| d.get("expectedProtocol"))
                                .and_then(Value::as_u64)
                                .unwrap_or(0);
                            if expected != 0
                                && expected != self.protocol
                                && self.protocol == PROTOCOL_VERSION
                            {
                                warn!(expected, "gateway asks for another protocol version; retrying once with it");
                                self.protocol = expected;
                                return Err((
                                    GatewayError::ProtocolMismatch(expected),
                                    Some(Duration::from_millis(100)),
                                ));
                            }
                            return Err((GatewayError::ProtocolMismatch(expected), None));
                        }
                        let auth_problem = e.code.contains("AUTH")
                            || e.code == "UNAUTHORIZED"
                            || e.detail_code().is_some_and(|c| c.starts_with("AUTH_"));
                        if auth_problem {
                            return Err((GatewayError::BadToken(e.message), None));
                        }
                        return Err((gateway_error("connect", e), retry));
                    }
                    _ => {}
                },
                Some(Ok(_)) => {}
                _ => {
                    return Err((
                        GatewayError::Handshake("the gateway closed during the handshake".into()),
                        None,
                    ))
                }
            }
        }
    }
}

/// The files a gateway takes, from its `hello-ok` (its documented defaults where it is silent).
fn file_limits(hello: &Value) -> FileLimits {
    use clawtray_proto::files as f;
    let n = |p: &str, d: u64| hello.pointer(p).and_then(Value::as_u64).unwrap_or(d);
    FileLimits::from_gateway(
        n("/policy/attachments/maxBytes", f::DEFAULT_MAX_FILE_BYTES),
        n(
            "/policy/attachments/maxImageBytes",
            f::DEFAULT_MAX_IMAGE_BYTES,
        ),
        n("/policy/maxPayload", f::DEFAULT_MAX_PAYLOAD),
    )
}
