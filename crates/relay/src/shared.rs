//! What every connection of a relay shares: its limits, store, routes, nameplates, limiters,
//! metrics and shutdown signal. Its own module, so the connection actor (`conn`) and the listener
//! (`server`) both depend on it instead of on each other.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::client_ip::TrustedProxies;
use crate::config::Limits;
use crate::limits::{ConnectionsPerIp, PerAddressLimiter};
use crate::metrics::Metrics;
use crate::nameplates::Nameplates;
use crate::routes::Routes;
use crate::store::SessionStore;

/// State shared by all connections.
pub struct Shared {
    pub limits: Limits,
    pub store: Arc<dyn SessionStore>,
    pub routes: Arc<dyn Routes>,
    pub nameplates: Nameplates,
    pub pairing_limiter: PerAddressLimiter,
    /// Counts failed resumes per address.
    pub resume_limiter: PerAddressLimiter,
    pub per_ip: ConnectionsPerIp,
    pub trusted_proxies: TrustedProxies,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    pub next_conn_id: AtomicU64,
    pub(crate) ws_config: WebSocketConfig,
}
