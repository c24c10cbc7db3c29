//! Several relay nodes as one relay, sharing state through Redis (one server, or a Redis
//! Cluster): sessions and token hashes ([`store`]), nameplates and the pairing between two
//! connections ([`pairing`]), which node holds each end of a session ([`presence`]), and
//! frames for an end on another node (each node's inbox stream, [`wire`]). Only what crosses
//! nodes touches Redis: two ends on one node talk exactly as on a single relay.
//!
//! This module owns the node's part: its Redis connections, its lease in the set of live nodes,
//! the forwarder that writes other nodes' inboxes, the reader of its own inbox, the registry of
//! its connections (by id, for what arrives in the inbox), health and counters.
//!
//! Why inbox streams and not pub/sub: a stream entry waits for its reader, so a node whose Redis
//! connection blips reads on from where it stopped instead of losing what came meanwhile; the
//! same commands work on one server and on a Redis Cluster; and the length is capped (`MAXLEN`),
//! so a stuck reader costs bounded memory. Frames from one connection go through one forwarder
//! task and one stream, in order.

pub mod keys;
pub mod metrics;
pub mod pairing;
pub mod presence;
pub mod redis_conn;
pub mod scripts;
pub mod store;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::streams::StreamReadReply;
use redis::{FromRedisValue, Pipeline, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use clawtray_proto::control::ErrorCode;

use crate::peer::{DeliverError, Loc, Outbound, PeerHandle, Target};
use crate::RelayError;

pub use metrics::{ClusterMetrics, Health};
pub use redis_conn::RedisConn;

/// How often a node renews its lease and reads the set of live nodes.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose lease is this old is gone: its connections count as closed.
pub const LEASE: Duration = Duration::from_secs(4);
/// Most entries an inbox holds (approximately: `MAXLEN ~`) when its reader falls behind.
pub const INBOX_MAXLEN: u64 = 4096;
/// An inbox its node stopped renewing disappears after this.
const INBOX_TTL_SECS: u64 = 30;
/// How long the inbox reader waits in one `XREAD BLOCK`.
const READ_BLOCK: Duration = Duration::from_millis(1000);
/// Entries taken per `XREAD`.
const READ_COUNT: usize = 512;
/// Items queued for the forwarder before further cross-node items are dropped.
const OUT_QUEUE: usize = 65_536;
/// Items the forwarder writes with one round trip at most.
const OUT_BATCH: usize = 512;
/// Nodes whose lease ended this long ago are forgotten (until then, presence entries that name
/// them count as gone; a node never seen counts as new, hence live).
const FORGET_NODES_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;
/// Tries at writing one batch into an inbox (waits of 0.1, 0.2, 0.4, 0.8 s between).
const FORWARD_TRIES: usize = 5;
/// How long to wait before retrying after Redis failed.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Settings of a cluster node.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Redis URL(s): one for a server, several for Redis Cluster seed nodes.
    pub redis: Vec<String>,
    /// This node's id, unique in the cluster.
    pub node_id: String,
}

/// A node id: 1–64 of `A–Z a–z 0–9 . _ -`.
#[must_use]
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A random node id (`node-` and 8 hex digits).
#[must_use]
pub fn random_node_id() -> String {
    let mut b = [0u8; 4];
    let _ = clawtray_proto::secret::fill_random(&mut b);
    format!("node-{}", hex::encode(b))
}

/// This node's part of the cluster.
pub struct Cluster {
    /// This node's id.
    pub node: Arc<str>,
    redis: RedisConn,
    out: mpsc::Sender<(Arc<str>, Vec<u8>)>,
    conns: Mutex<HashMap<u64, PeerHandle>>,
    /// When each node's lease ends (Unix ms), and when this node read them (its last heartbeat
    /// that Redis answered).
    leases: RwLock<(HashMap<Arc<str>, u64>, u64)>,
    /// Whether Redis answers.
    pub health: Health,
    /// Counters.
    pub metrics: ClusterMetrics,
    /// Random per process: with `seq`, names each item this process sends, so a reader drops a
    /// second copy (a batch retried after Redis ran it but its answer was lost).
    incarnation: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Cluster {
    /// Connect to Redis, take this node's place among the live nodes, and start the node's
    /// background tasks (until `shutdown`).
    pub async fn start(
        config: &ClusterConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, RelayError> {
        let unreachable = |e: redis::RedisError| RelayError::Redis {
            urls: config.redis.join(","),
            message: e.to_string(),
        };
        let redis = redis_conn::connect(&config.redis, Duration::ZERO)
            .await
            .map_err(unreachable)?;
        let reader = redis_conn::connect(&config.redis, READ_BLOCK)
            .await
            .map_err(unreachable)?;
        let node: Arc<str> = config.node_id.as_str().into();
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let cluster = Arc::new(Self {
            node: node.clone(),
            redis,
            out,
            conns: Mutex::new(HashMap::new()),
            leases: RwLock::new((HashMap::new(), 0)),
            health: Health::default(),
            metrics: ClusterMetrics::default(),
            incarnation: {
                let mut b = [0u8; 8];
                let _ = clawtray_proto::secret::fill_random(&mut b);
                u64::from_le_bytes(b)
            },
        });
        // A fresh inbox: whatever an earlier process of this node left is for connections gone.
        let first_id: String = cluster
            .pipe(
                redis::pipe()
                    .del(keys::inbox(&node))
                    .ignore()
                    .cmd("XADD")
                    .arg(keys::inbox(&node))
                    .arg("*")
                    .arg("m")
                    .arg("")
                    .expire(keys::inbox(&node), INBOX_TTL_SECS as i64)
                    .ignore(),
            )
            .await
            .map(|(id,): (String,)| id)
            .map_err(|_| RelayError::Redis {
                urls: config.redis.join(","),
                message: "could not create this node's inbox".into(),
            })?;
        cluster
            .heartbeat(&mut HashSet::new(), true)
            .await
            .map_err(|_| RelayError::Redis {
                urls: config.redis.join(","),
                message: "could not register this node".into(),
            })?;
        info!(node = %node, mode = ?cluster.redis.mode(), "relay node joined the cluster");
        tokio::spawn(cluster.clone().heartbeat_loop(shutdown.clone()));
        tokio::spawn(cluster.clone().forward_loop(out_rx, shutdown.clone()));
        tokio::spawn(cluster.clone().read_loop(reader, first_id, shutdown));
        Ok(cluster)
    }

    /// Run one command, timing it and noting failures. A failure is `UNAVAILABLE` for the caller.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ErrorCode> {
        let mut conn = self.redis.clone();
        let started = Instant::now();
        self.metrics.redis_commands.fetch_add(1, Ordering::Relaxed);
        let r = cmd.query_async(&mut conn).await;
        self.note_result(r, started)
    }

    /// Run a pipeline (its commands count one by one).
    pub async fn pipe<T: FromRedisValue>(&self, p: &Pipeline) -> Result<T, ErrorCode> {
        let mut conn = self.redis.clone();
        let started = Instant::now();
        self.metrics
            .redis_commands
            .fetch_add(p.len() as u64, Ordering::Relaxed);
        let r = p.query_async(&mut conn).await;
        self.note_result(r, started)
    }

    /// Run a script.
    pub async fn script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ErrorCode> {
        let mut conn = self.redis.clone();
        let started = Instant::now();
        self.metrics.redis_commands.fetch_add(1, Ordering::Relaxed);
        let r = invocation.invoke_async(&mut conn).await;
        self.note_result(r, started)
    }

    fn note_result<T>(&self, r: redis::RedisResult<T>, started: Instant) -> Result<T, ErrorCode> {
        self.metrics.observe_rtt(started.elapsed());
        match r {
            Ok(v) => {
                self.health.ok();
                Ok(v)
            }
            Err(e) => {
                self.metrics.redis_errors.fetch_add(1, Ordering::Relaxed);
                if self.health.failed(&e.to_string()) {
                    warn!(error = %e, "Redis failed; cross-node traffic and new pairings wait for it");
                } else {
                    debug!(error = %e, "Redis still failing");
                }
                Err(ErrorCode::Unavailable)
            }
        }
    }

    /// One Redis server or a Redis Cluster.
    #[must_use]
    pub fn mode(&self) -> redis_conn::Mode {
        self.redis.mode()
    }

    /// This node's name for its connection `conn`.
    #[must_use]
    pub fn loc(&self, conn: u64) -> Loc {
        Loc {
            node: self.node.clone(),
            conn,
        }
    }

    /// `node` counts as live: it is this one, its lease had not run out when this node last
    /// read the leases, or it is newer than that look (every node registers before it serves
    /// anyone). While Redis does not answer, that last look stands: no node is written off for
    /// an outage that silenced every node alike.
    #[must_use]
    pub fn is_alive(&self, node: &str) -> bool {
        // Until Redis has answered for a whole lease, the leases read may be from before an
        // outage that kept every node from renewing: judge no one by them.
        if *node == *self.node || self.health.up_for() < LEASE + HEARTBEAT {
            return true;
        }
        let leases = self
            .leases
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ends, read_at) = &*leases;
        ends.get(node).is_none_or(|end| end > read_at)
    }

    /// How to reach the connection at `loc`: its handle when it is this node's.
    #[must_use]
    pub fn target(&self, loc: Loc) -> Target {
        if *loc.node == *self.node {
            if let Some(h) = self.conns().get(&loc.conn).cloned() {
                return Target::Local(h);
            }
        }
        Target::Remote(loc)
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, PeerHandle>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Make a connection of this node reachable from the others.
    pub fn register(&self, handle: &PeerHandle) {
        self.conns().insert(handle.conn_id, handle.clone());
    }

    /// The connection ended.
    pub fn unregister(&self, conn_id: u64) {
        self.conns().remove(&conn_id);
    }

    /// Hand `item` to the connection at `loc`: through the registry when it is this node's,
    /// through its node's inbox otherwise. Never waits.
    pub fn send(&self, loc: &Loc, item: Outbound) -> Result<(), DeliverError> {
        if *loc.node == *self.node {
            let handle = self.conns().get(&loc.conn).cloned();
            return handle.map_or(Err(DeliverError::Away), |h| h.deliver(item));
        }
        if !self.is_alive(&loc.node) {
            self.metrics.cross_dropped.fetch_add(1, Ordering::Relaxed);
            return Err(DeliverError::Away);
        }
        let Some(bytes) = wire::encode(loc.conn, &item, &self.node) else {
            return Err(DeliverError::Away);
        };
        match self.out.try_send((loc.node.clone(), bytes)) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.metrics.cross_dropped.fetch_add(1, Ordering::Relaxed);
                Err(DeliverError::Away)
            }
        }
    }

    /// Renew this node's lease and inbox, and learn which nodes live. Nodes that were live and
    /// are not any more are announced to every connection here (`NodeGone`) — but only after
    /// Redis has answered for a whole lease, so an outage that every node saw does not make them
    /// declare each other dead. `first`: the node's registration at start.
    async fn heartbeat(&self, known: &mut HashSet<Arc<str>>, first: bool) -> Result<(), ErrorCode> {
        let now = unix_ms();
        let lease_end = now + u64::try_from(LEASE.as_millis()).unwrap_or(4000);
        // (two round trips: in a Redis Cluster the set of nodes and this inbox sit in different
        // slots, and a pipeline must stay in one)
        let inbox_there: u64 = self
            .query(
                redis::cmd("EXPIRE")
                    .arg(keys::inbox(&self.node))
                    .arg(INBOX_TTL_SECS),
            )
            .await?;
        let (added, leases, _): (u64, Vec<(String, u64)>, Value) = self
            .pipe(
                redis::pipe()
                    .zadd(keys::nodes(), &*self.node, lease_end)
                    .cmd("ZRANGE")
                    .arg(keys::nodes())
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(keys::nodes())
                    .arg("-inf")
                    .arg(now.saturating_sub(FORGET_NODES_AFTER_MS)),
            )
            .await?;
        if inbox_there == 0 {
            // the inbox expired while Redis was away (or was lost in a failover): make it again
            let _: Value = self
                .pipe(
                    redis::pipe()
                        .cmd("XADD")
                        .arg(keys::inbox(&self.node))
                        .arg("*")
                        .arg("m")
                        .arg("")
                        .expire(keys::inbox(&self.node), INBOX_TTL_SECS as i64),
                )
                .await?;
        }
        let leases: HashMap<Arc<str>, u64> = leases
            .into_iter()
            .map(|(n, end)| (Arc::from(n.as_str()), end))
            .collect();
        let live: HashSet<Arc<str>> = leases
            .iter()
            .filter(|(_, end)| **end > now)
            .map(|(n, _)| n.clone())
            .collect();
        if added == 1 && !first {
            // Our lease ran out while Redis was away: the others may have written us off. Ends
            // with a partner on another node reconnect, which announces them afresh.
            warn!(
                "this node's lease ran out (Redis was away); reconnecting its cross-node sessions"
            );
            self.broadcast(&self.node);
        }
        let trusted = self.health.up_for() >= LEASE + HEARTBEAT;
        if trusted && !first {
            for gone in known.difference(&live) {
                if **gone != *self.node {
                    info!(node = %gone, "node gone from the cluster (lease ran out)");
                    self.broadcast(gone);
                }
            }
        }
        *self
            .leases
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (leases, now);
        if trusted {
            *known = live;
        } else {
            // keep the nodes known before, so one that left meanwhile is noticed once trusted
            known.extend(live);
        }
        Ok(())
    }

    fn broadcast(&self, node: &Arc<str>) {
        let handles: Vec<PeerHandle> = self.conns().values().cloned().collect();
        for h in handles {
            let _ = h.deliver(Outbound::NodeGone(node.clone()));
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut known = HashSet::new();
        let mut every = tokio::time::interval(HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => { let _ = self.heartbeat(&mut known, false).await; }
            }
        }
        // leave at once, so the others need not wait for the lease: a lease that ended now
        // (removing the entry instead would make this node look new, hence live, to the others)
        let ended = unix_ms().saturating_sub(1);
        let _: Result<Value, _> = self
            .query(
                redis::cmd("ZADD")
                    .arg(keys::nodes())
                    .arg(ended)
                    .arg(&*self.node),
            )
            .await;
    }

    /// Write queued items into their nodes' inboxes, a batch per round trip per node, in order.
    async fn forward_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<(Arc<str>, Vec<u8>)>,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(OUT_BATCH);
        // one sequence per process, assigned here (one task) so it rises in every inbox's order
        let mut seq: u64 = 0;
        loop {
            batch.clear();
            tokio::select! {
                () = shutdown.cancelled() => return,
                n = rx.recv_many(&mut batch, OUT_BATCH) => if n == 0 { return },
            }
            // group by node, keeping each node's order
            let mut by_node: Vec<(Arc<str>, Pipeline, u64)> = Vec::new();
            for (node, bytes) in batch.drain(..) {
                let i = match by_node.iter().position(|(n, _, _)| *n == node) {
                    Some(i) => i,
                    None => {
                        by_node.push((node.clone(), redis::pipe(), 0));
                        by_node.len() - 1
                    }
                };
                let (_, p, count) = &mut by_node[i];
                seq += 1;
                p.cmd("XADD")
                    .arg(keys::inbox(&node))
                    .arg("NOMKSTREAM")
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(INBOX_MAXLEN)
                    .arg("*")
                    .arg("m")
                    .arg(bytes)
                    .arg("s")
                    .arg(format!("{:x}:{seq:x}", self.incarnation))
                    .ignore();
                *count += 1;
            }
            for (_, p, count) in by_node {
                let counter = match self.pipe_retrying(&p, &shutdown).await {
                    Ok(()) => &self.metrics.cross_sent,
                    Err(_) => &self.metrics.cross_dropped,
                };
                counter.fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    /// Write a batch, trying again a few times over about a second and a half when Redis fails
    /// (a failover, a reconnect): notes and closes that cross nodes are not resent by anyone.
    /// Later batches wait meanwhile, so order holds. A batch Redis ran but whose answer was lost
    /// is written twice; the reader drops the second copy by its sequence.
    async fn pipe_retrying(
        &self,
        p: &Pipeline,
        shutdown: &CancellationToken,
    ) -> Result<(), ErrorCode> {
        let mut wait = Duration::from_millis(100);
        let mut tries = 1;
        loop {
            let r = self.pipe::<()>(p).await;
            if r.is_ok() || tries >= FORWARD_TRIES {
                return r;
            }
            tries += 1;
            tokio::select! {
                () = shutdown.cancelled() => return Err(ErrorCode::ShuttingDown),
                () = tokio::time::sleep(wait) => {}
            }
            wait *= 2;
        }
    }

    /// Read this node's inbox and hand each item to its connection.
    async fn read_loop(
        self: Arc<Self>,
        mut reader: RedisConn,
        mut last_id: String,
        shutdown: CancellationToken,
    ) {
        let inbox = keys::inbox(&self.node);
        let block_ms = usize::try_from(READ_BLOCK.as_millis()).unwrap_or(1000);
        let mut trimmed_at = Instant::now();
        // the last sequence seen from each sending process
        let mut seen: HashMap<u64, u64> = HashMap::new();
        loop {
            let opts = redis::streams::StreamReadOptions::default()
                .count(READ_COUNT)
                .block(block_ms);
            let read = tokio::select! {
                () = shutdown.cancelled() => return,
                r = async {
                    let started = Instant::now();
                    self.metrics.redis_commands.fetch_add(1, Ordering::Relaxed);
                    let r: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
                        .arg(&opts)
                        .arg("STREAMS")
                        .arg(&inbox)
                        .arg(&last_id)
                        .query_async(&mut reader)
                        .await;
                    (r, started)
                } => r,
            };
            let reply = match read {
                (Ok(reply), _) => reply,
                (Err(e), started) => {
                    let _ = self.note_result::<()>(Err(e), started);
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    last_id = entry.id.clone();
                    let Some(Value::BulkString(bytes)) = entry.map.get("m") else {
                        continue;
                    };
                    if bytes.is_empty() {
                        continue; // the inbox's first entry
                    }
                    if let Some(Value::BulkString(tag)) = entry.map.get("s") {
                        if !first_copy(&mut seen, tag) {
                            self.metrics.cross_repeated.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    tracing::trace!(id = %entry.id, kind = bytes[0], "inbox entry");
                    self.hand_over(bytes);
                }
            }
            if trimmed_at.elapsed() >= Duration::from_millis(200) {
                trimmed_at = Instant::now();
                let _: Result<Value, _> = self
                    .query(redis::cmd("XTRIM").arg(&inbox).arg("MINID").arg(&last_id))
                    .await;
            }
        }
    }

    fn hand_over(&self, bytes: &[u8]) {
        let Some((conn, item)) = wire::decode(bytes) else {
            self.metrics.cross_dropped.fetch_add(1, Ordering::Relaxed);
            debug!("dropped a malformed inbox entry");
            return;
        };
        let handle = self.conns().get(&conn).cloned();
        match handle.map(|h| h.deliver(item)) {
            Some(Ok(())) => {
                self.metrics.cross_received.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.metrics.cross_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Senders remembered for dropping repeats, at most (a sender's restarts each count).
const MAX_SENDERS: usize = 4096;

/// Whether an inbox entry tagged `incarnation:seq` (hex) is the first copy: its sequence is above
/// the last one seen from that sending process. An untagged or malformed tag passes.
fn first_copy(seen: &mut HashMap<u64, u64>, tag: &[u8]) -> bool {
    let Some((inc, seq)) = std::str::from_utf8(tag)
        .ok()
        .and_then(|t| t.split_once(':'))
        .and_then(|(i, s)| {
            Some((
                u64::from_str_radix(i, 16).ok()?,
                u64::from_str_radix(s, 16).ok()?,
            ))
        })
    else {
        return true;
    };
    if seen.len() >= MAX_SENDERS && !seen.contains_key(&inc) {
        seen.clear();
    }
    let last = seen.entry(inc).or_insert(0);
    if seq <= *last {
        return false;
    }
    *last = seq;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_batch_is_delivered_once() {
        let mut seen = HashMap::new();
        assert!(first_copy(&mut seen, b"a1:1"));
        assert!(first_copy(&mut seen, b"a1:2"));
        // the batch with 1 and 2 written again after Redis lost its answer
        assert!(!first_copy(&mut seen, b"a1:1"));
        assert!(!first_copy(&mut seen, b"a1:2"));
        assert!(first_copy(&mut seen, b"a1:3"));
        // another process of the same node (restarted) starts its own count
        assert!(first_copy(&mut seen, b"ff:1"));
        // gaps are fine (a batch given up on), junk passes
        assert!(first_copy(&mut seen, b"a1:9"));
        assert!(first_copy(&mut seen, b"junk"));
    }
}
