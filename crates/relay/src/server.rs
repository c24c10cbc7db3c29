//! The listener: accepts TCP (optionally TLS), enforces the connection cap, reads the HTTP head,
//! serves `/healthz` and `/metrics`, upgrades `/v1/agent` and `/v1/desktop`, and shuts down
//! gracefully (every connection is told `SHUTTING_DOWN` and given a few seconds).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use clawtray_proto::control::ErrorCode;
use clawtray_proto::secret::SecretString;
use clawtray_proto::Role;

use crate::client_ip::TrustedProxies;
use crate::cluster::store::RedisStore;
use crate::cluster::Cluster;
use crate::config::{RelayConfig, StoreConfig, TlsConfig, SHUTDOWN_GRACE};
use crate::conn::{self, ConnInfo, Resume};
use crate::http::{self, RequestHead};
use crate::limits::{ConnectionsPerIp, PerAddressLimiter};
use crate::metrics::Metrics;
use crate::nameplates::Nameplates;
use crate::pairing::Pairing;
use crate::routes::Router;
use crate::shared::Shared;
use crate::store::{SqliteStore, Store};
use crate::RelayError;

/// Longest agent instance id accepted.
const MAX_INSTANCE_LEN: usize = 64;

/// A running relay.
pub struct RelayHandle {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// Ask the relay to stop; [`RelayHandle::stopped`] waits for it.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Wait until the relay has stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }

    /// Live counters.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// This node's id, when the relay is a cluster node.
    #[must_use]
    pub fn node_id(&self) -> Option<&str> {
        self.shared.cluster.as_ref().map(|c| &*c.node)
    }
}

fn load_tls(cfg: &TlsConfig) -> Result<TlsAcceptor, RelayError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| RelayError::Tls(format!("{}: {e}", p.display())))
    };
    let cert_pem = read(&cfg.cert)?;
    let key_pem = read(&cfg.key)?;
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RelayError::Tls(format!("{}: {e}", cfg.cert.display())))?;
    if certs.is_empty() {
        return Err(RelayError::Tls(format!(
            "{}: no certificate found",
            cfg.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| RelayError::Tls(format!("{}: {e}", cfg.key.display())))?
        .ok_or_else(|| RelayError::Tls(format!("{}: no private key found", cfg.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RelayError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Bind and start serving in the background.
pub async fn start(config: RelayConfig) -> Result<RelayHandle, RelayError> {
    let shutdown = CancellationToken::new();
    let l = &config.limits;
    let ttl_secs = l.session_ttl.as_secs();
    let (store, cluster) = match &config.store {
        StoreConfig::Sqlite(path) => (
            Store::Sqlite(SqliteStore::open(path).map_err(|e| RelayError::Store {
                path: path.display().to_string(),
                message: e.to_string(),
            })?),
            None,
        ),
        StoreConfig::Memory => (
            Store::Sqlite(SqliteStore::in_memory().map_err(|e| RelayError::Store {
                path: ":memory:".into(),
                message: e.to_string(),
            })?),
            None,
        ),
        StoreConfig::Redis(c) => {
            let cluster = Cluster::start(c, shutdown.clone()).await?;
            (
                Store::Redis(RedisStore::new(cluster.clone(), ttl_secs)),
                Some(cluster),
            )
        }
    };
    let cluster_mode = cluster.is_some();
    let pairing = match &cluster {
        None => Pairing::Local(Nameplates::new(l.nameplate_ttl)),
        Some(c) => Pairing::Cluster {
            cluster: c.clone(),
            ttl: l.nameplate_ttl,
            linked_ttl: l.pairing_timeout + std::time::Duration::from_secs(10),
        },
    };
    let tls = config.tls.as_ref().map(load_tls).transpose()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RelayError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RelayError::Bind {
        addr: config.listen.to_string(),
        source,
    })?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| RelayError::Bind {
                    addr: a.to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(l.read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(l.queue_bytes.max(l.max_frame_bytes * 2))
        .max_message_size(Some(l.max_frame_bytes))
        .max_frame_size(Some(l.max_frame_bytes));
    let shared = Arc::new(Shared {
        pairing,
        routes: Router::new(cluster.clone(), ttl_secs),
        cluster,
        pairing_limiter: PerAddressLimiter::new(l.pairing_per_ip_per_min),
        resume_limiter: PerAddressLimiter::new(l.resume_failures_per_ip_per_min),
        per_ip: ConnectionsPerIp::new(l.max_connections_per_ip),
        trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
        limits: config.limits.clone(),
        store,
        metrics: Metrics::default(),
        shutdown,
        next_conn_id: AtomicU64::new(first_conn_id(cluster_mode)),
        ws_config,
    });
    info!(%addr, tls = tls.is_some(), "relay listening");
    let task = tokio::spawn(accept_loop(listener, tls, shared.clone()));
    tokio::spawn(sweep_loop(shared.clone()));
    let metrics_addr = match metrics_listener {
        Some(l) => {
            let bound = l.local_addr().map_err(|source| RelayError::Bind {
                addr: format!("{:?}", config.metrics_listen),
                source,
            })?;
            tokio::spawn(metrics_loop(l, shared.clone()));
            info!(addr = %bound, "metrics listening");
            Some(bound)
        }
        None => None,
    };
    Ok(RelayHandle {
        addr,
        metrics_addr,
        shared,
        task,
    })
}

/// The first connection id. A cluster node starts somewhere random: other nodes name its
/// connections by id, and an item still on its way to the previous process of this node must
/// not reach a new connection that happens to have the same number.
fn first_conn_id(cluster: bool) -> u64 {
    if !cluster {
        return 1;
    }
    let mut b = [0u8; 8];
    if clawtray_proto::secret::fill_random(&mut b).is_err() {
        return 1;
    }
    // 48 random bits: room for 2^16 × 2^48 connections before wrapping
    (u64::from_le_bytes(b) >> 16).max(1)
}

/// How often sessions past their TTL are deleted.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Delete sessions unused for longer than the session TTL: at start, then hourly. (Their ends
/// already get `SESSION_EXPIRED`; this keeps the database from growing with the dead.)
async fn sweep_loop(shared: Arc<Shared>) {
    let ttl = i64::try_from(shared.limits.session_ttl.as_secs()).unwrap_or(i64::MAX);
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = every.tick() => {
                match shared.store.sweep(conn::unix_now().saturating_sub(ttl)) {
                    Ok(0) => {}
                    Ok(n) => info!(sessions = n, "swept sessions past their TTL"),
                    Err(e) => warn!(error = %e, "could not sweep expired sessions"),
                }
            }
        }
    }
}

/// The metrics listener: `/metrics` and `/healthz` only, one request per connection.
async fn metrics_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => {
                let Ok((mut tcp, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let Ok(Ok((head, _))) = timeout(shared.limits.handshake_timeout, http::read_head(&mut tcp)).await else {
                        return;
                    };
                    let _ = match (head.method.as_str(), head.path.as_str()) {
                        ("GET", "/metrics") => {
                            let body = render_metrics(&shared);
                            http::respond(&mut tcp, 200, "OK", "text/plain; version=0.0.4", &body).await
                        }
                        ("GET", "/healthz") => http::respond(&mut tcp, 200, "OK", "text/plain", &health(&shared)).await,
                        _ => http::respond(&mut tcp, 404, "Not Found", "text/plain", "not found: try /metrics or /healthz\n").await,
                    };
                });
            }
        }
    }
}

fn render_metrics(shared: &Shared) -> String {
    let mut text = shared.metrics.render(
        shared.store.count_active(),
        shared.routes.online_sessions(),
        shared.pairing.live(),
    );
    if let Some(c) = &shared.cluster {
        c.metrics.render(&mut text, &c.node, &c.health);
    }
    text
}

/// The public listener's `/healthz` body: `ok`, or that the node is degraded — without the
/// Redis error, which may name internal addresses (the metrics listener's `/healthz` has it).
fn public_health(shared: &Shared) -> String {
    match &shared.cluster {
        Some(c) if !c.health.is_up() => {
            "degraded: this relay node cannot reach its cluster's shared store; the sessions it holds keep working\n".to_owned()
        }
        _ => "ok\n".to_owned(),
    }
}

/// The metrics listener's `/healthz` body: `ok`, or (a cluster node whose Redis does not
/// answer) what is wrong and what still works. Always 200: a node without Redis still serves the sessions it holds, so a
/// load balancer should keep sending their ends to it.
fn health(shared: &Shared) -> String {
    shared
        .cluster
        .as_ref()
        .map_or_else(|| "ok\n".to_owned(), |c| c.health.describe())
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // e.g. out of file descriptors: back off briefly instead of spinning
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                shared.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
                let open = shared.metrics.connections_open.fetch_add(1, Ordering::Relaxed) + 1;
                let over_limit = usize::try_from(open).unwrap_or(usize::MAX) > shared.limits.max_connections;
                tracker.spawn(handle_socket(tcp, peer, tls.clone(), shared.clone(), over_limit));
            }
        }
    }
    drop(listener);
    tracker.close();
    info!(connections = tracker.len(), "relay shutting down");
    if timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        warn!("some connections did not close within the grace period");
    }
    info!("relay stopped");
}

/// Decrements the open-connection gauge however the task ends.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle_socket(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    over_limit: bool,
) {
    let _guard = OpenGuard(shared.clone());
    match tls {
        None => serve(tcp, peer.ip(), shared, over_limit).await,
        Some(acceptor) => {
            match timeout(shared.limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve(stream, peer.ip(), shared, over_limit).await,
                Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                Err(_) => shared.metrics.rejected(ErrorCode::HandshakeTimeout),
            }
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    ip: IpAddr,
    shared: Arc<Shared>,
    over_limit: bool,
) {
    let (head, leftover) = match timeout(
        shared.limits.handshake_timeout,
        http::read_head(&mut stream),
    )
    .await
    {
        Err(_) => {
            shared.metrics.rejected(ErrorCode::HandshakeTimeout);
            return;
        }
        Ok(Err(http::HeadError::Closed)) => return,
        Ok(Err(e)) => {
            shared.metrics.rejected(ErrorCode::BadFrame);
            let _ = http::respond(
                &mut stream,
                400,
                "Bad Request",
                "text/plain",
                &format!("{e}\n"),
            )
            .await;
            return;
        }
        Ok(Ok(x)) => x,
    };
    let role = match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/healthz") => {
            let _ = http::respond(
                &mut stream,
                200,
                "OK",
                "text/plain",
                &public_health(&shared),
            )
            .await;
            return;
        }
        ("GET", "/metrics") => {
            // never on the public listener: metrics have their own (loopback by default)
            let _ = http::respond(
                &mut stream,
                404,
                "Not Found",
                "text/plain",
                "metrics are served on the relay's metrics listener (--metrics-listen), not here\n",
            )
            .await;
            return;
        }
        (_, "/v1/agent") => Role::Agent,
        (_, "/v1/desktop") => Role::Desktop,
        _ => {
            let _ = http::respond(
                &mut stream,
                404,
                "Not Found",
                "text/plain",
                "not found: try /v1/agent, /v1/desktop or /healthz\n",
            )
            .await;
            return;
        }
    };
    if over_limit {
        shared.metrics.rejected(ErrorCode::TooManyConnections);
        let msg = format!(
            "{}: {}\n",
            ErrorCode::TooManyConnections,
            ErrorCode::TooManyConnections.describe()
        );
        let _ = http::respond(&mut stream, 503, "Service Unavailable", "text/plain", &msg).await;
        return;
    }
    // behind a trusted proxy the client is named in its forwarding header
    let ip = shared.trusted_proxies.client_ip(ip, &head);
    let Some(_ip_slot) = shared.per_ip.acquire(ip) else {
        shared.metrics.rejected(ErrorCode::TooManyConnections);
        let msg = format!(
            "{}: too many connections from this address; close some and try again.\n",
            ErrorCode::TooManyConnections
        );
        let _ = http::respond(&mut stream, 503, "Service Unavailable", "text/plain", &msg).await;
        return;
    };
    let key = match head.websocket_key() {
        Ok(k) => k.to_owned(),
        Err(why) => {
            let _ = http::respond(
                &mut stream,
                426,
                "Upgrade Required",
                "text/plain",
                &format!("{why}\n"),
            )
            .await;
            return;
        }
    };
    let info = conn_info(&head, role, ip);
    if http::accept_upgrade(&mut stream, &key).await.is_err() {
        return;
    }
    let ws = WebSocketStream::from_partially_read(
        stream,
        leftover,
        WsRole::Server,
        Some(shared.ws_config),
    )
    .await;
    conn::run(ws, info, shared.clone()).await;
}

fn conn_info(head: &RequestHead, role: Role, ip: IpAddr) -> ConnInfo {
    let session = head.query("session").map(str::to_owned);
    let token = head.bearer_token().map(|t| SecretString::new(t.to_owned()));
    let resume = (session.is_some() || token.is_some()).then_some(Resume { session, token });
    let instance = head
        .query("instance")
        .filter(|i| {
            i.len() <= MAX_INSTANCE_LEN
                && i.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned);
    ConnInfo {
        role,
        ip,
        resume,
        instance,
    }
}
