//! What every connection of a relay shares: its limits, store, routes, pairing brokerage,
//! limiters, metrics, shutdown signal and, on a cluster node, the cluster. Its own module, so the
//! connection actor (`conn`) and the listener (`server`) both depend on it instead of on each
//! other.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use clawtray_proto::control::ErrorCode;

use crate::client_ip::TrustedProxies;
use crate::cluster::Cluster;
use crate::config::Limits;
use crate::limits::{ConnectionsPerIp, PerAddressLimiter};
use crate::metrics::Metrics;
use crate::pairing::Pairing;
use crate::peer::{DeliverError, Loc, Outbound, Target};
use crate::routes::Router;
use crate::store::Store;

/// State shared by all connections.
pub struct Shared {
    pub limits: Limits,
    pub store: Store,
    pub routes: Router,
    pub pairing: Pairing,
    pub pairing_limiter: PerAddressLimiter,
    /// Counts failed resumes per address.
    pub resume_limiter: PerAddressLimiter,
    pub per_ip: ConnectionsPerIp,
    pub trusted_proxies: TrustedProxies,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
    pub next_conn_id: AtomicU64,
    /// This node's part of a relay cluster (`--redis`), if it is one.
    pub cluster: Option<Arc<Cluster>>,
    pub(crate) ws_config: WebSocketConfig,
}

impl Shared {
    /// Hand `item` to `target`, here or on another node. Never waits.
    pub fn deliver(&self, target: &Target, item: Outbound) -> Result<(), DeliverError> {
        match (target, &self.cluster) {
            (Target::Local(h), _) => h.deliver(item),
            (Target::Remote(loc), Some(c)) => c.send(loc, item),
            (Target::Remote(_), None) => Err(DeliverError::Away),
        }
    }

    /// Close `target` with `code`, here or on another node.
    pub fn close(&self, target: &Target, code: ErrorCode) {
        match target {
            Target::Local(h) => h.close(code),
            Target::Remote(_) => {
                let _ = self.deliver(target, Outbound::CloseWith(code));
            }
        }
    }

    /// Where connection `conn_id` of this relay is, as the other nodes name it (`None` on a
    /// relay on its own).
    #[must_use]
    pub fn loc(&self, conn_id: u64) -> Option<Loc> {
        self.cluster.as_ref().map(|c| c.loc(conn_id))
    }

    /// How `target` names where a note about `conn_id` comes from: its location when the target
    /// is on another node (so it can send back), nothing when it is here.
    #[must_use]
    pub fn from_for(&self, target: &Target, conn_id: u64) -> Option<Loc> {
        match target {
            Target::Local(_) => None,
            Target::Remote(_) => self.loc(conn_id),
        }
    }
}
