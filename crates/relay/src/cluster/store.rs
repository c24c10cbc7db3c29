//! Sessions in Redis: the same record as the embedded store (token hashes, created / last-seen /
//! revoked times), as one hash per session that Redis itself expires after the session TTL, so
//! there is nothing to sweep. A node keeps the records it has verified, so a session it has seen
//! can resume on it while Redis is away (a revocation made meanwhile elsewhere cannot reach it
//! then either; it applies as soon as Redis answers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cluster::redis_conn::Mode;
use crate::cluster::{keys, scripts, Cluster};
use crate::store::{SessionRecord, StoreError};

/// How long pairing waits for a replica to hold a new session (Redis Cluster only). Under the
/// commands' response timeout; a master left without replicas (its own failed) costs each
/// pairing this much until one is back.
const REPLICA_WAIT_MS: u64 = 1000;
/// Records remembered for resumes while Redis is away, at most.
const MAX_CACHED: usize = 100_000;

/// The cluster's session store.
pub struct RedisStore {
    cluster: Arc<Cluster>,
    ttl_secs: u64,
    cache: Mutex<HashMap<String, SessionRecord>>,
}

fn unavailable(_: clawtray_proto::control::ErrorCode) -> StoreError {
    StoreError::Unavailable
}

impl RedisStore {
    /// Sessions in the cluster's Redis, living `ttl_secs` unused.
    #[must_use]
    pub fn new(cluster: Arc<Cluster>, ttl_secs: u64) -> Self {
        Self {
            cluster,
            ttl_secs,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionRecord>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, r: &SessionRecord) {
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(r.id.clone(), r.clone());
    }

    /// Insert a new session.
    pub async fn create(&self, r: &SessionRecord) -> Result<(), StoreError> {
        let key = keys::session(&r.id);
        self.remember(r);
        let mut p = redis::pipe();
        p.cmd("HSET")
            .arg(&key)
            .arg("a")
            .arg(&r.agent_token_hash[..])
            .arg("d")
            .arg(&r.desktop_token_hash[..])
            .arg("c")
            .arg(r.created_at)
            .arg("l")
            .arg(r.last_seen)
            .ignore()
            .expire(&key, i64::try_from(self.ttl_secs).unwrap_or(i64::MAX))
            .ignore();
        if self.cluster.mode() != Mode::Cluster {
            return self.cluster.pipe::<()>(&p).await.map_err(unavailable);
        }
        // Redis replicates after answering: wait (briefly) until a replica holds the new session
        // too, so a master that dies right after pairing does not take it along
        p.cmd("WAIT").arg(1).arg(REPLICA_WAIT_MS);
        let (replicas,): (u64,) = self.cluster.pipe(&p).await.map_err(unavailable)?;
        if replicas == 0 {
            tracing::warn!(
                "no Redis replica confirmed a new session within {REPLICA_WAIT_MS} ms: it is lost if its master dies before replicating"
            );
        }
        Ok(())
    }

    /// Look a session up; while Redis is away, a record this node verified before.
    pub async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let fields: HashMap<String, Vec<u8>> = match self
            .cluster
            .query(redis::cmd("HGETALL").arg(keys::session(id)))
            .await
        {
            Ok(f) => f,
            Err(_) => {
                return self
                    .cache()
                    .get(id)
                    .cloned()
                    .map(Some)
                    .ok_or(StoreError::Unavailable)
            }
        };
        if fields.is_empty() {
            self.cache().remove(id);
            return Ok(None);
        }
        let record = parse(id, &fields)?;
        self.remember(&record);
        Ok(Some(record))
    }

    /// Record that a side was seen at `now`.
    pub async fn touch(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.cluster
            .script::<i64>(
                scripts::TOUCH
                    .key(keys::session(id))
                    .arg(now)
                    .arg(self.ttl_secs),
            )
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Mark a session revoked. False if it did not exist or was revoked already.
    pub async fn revoke(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        self.cache().remove(id);
        self.cluster
            .script::<i64>(scripts::REVOKE.key(keys::session(id)).arg(now))
            .await
            .map(|n| n == 1)
            .map_err(unavailable)
    }
}

fn parse(id: &str, f: &HashMap<String, Vec<u8>>) -> Result<SessionRecord, StoreError> {
    let bad = |what: &str| StoreError::Failed(format!("session record in Redis has a bad {what}"));
    let hash = |k: &str| -> Result<[u8; 32], StoreError> {
        f.get(k)
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| bad("token hash"))
    };
    let int = |k: &str| -> Option<i64> {
        f.get(k)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
    };
    Ok(SessionRecord {
        id: id.to_owned(),
        agent_token_hash: hash("a")?,
        desktop_token_hash: hash("d")?,
        created_at: int("c").ok_or_else(|| bad("creation time"))?,
        last_seen: int("l").ok_or_else(|| bad("last-seen time"))?,
        revoked_at: int("r"),
    })
}
