//! Persistent session records: [`Store`] is the embedded SQLite database or, for a relay
//! cluster, the shared Redis ([`crate::cluster::store`]). An enum rather than a trait object, so
//! the embedded path stays a direct call while the Redis one can await its round trips.
//!
//! A record holds the session id, the SHA-256 of each side's device token (never a token), and
//! created / last-seen / revoked times. Nothing else about a session is ever stored.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use clawtray_proto::control::ErrorCode;
use clawtray_proto::Role;

use crate::cluster::store::RedisStore;

/// A store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Disk full, database corrupt, lock poisoned, a malformed record.
    #[error("session store failed: {0}")]
    Failed(String),
    /// The cluster's Redis does not answer (retryable).
    #[error("the cluster's shared store (Redis) does not answer")]
    Unavailable,
}

impl StoreError {
    /// What a connection is told when this stops it.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Failed(_) => ErrorCode::Internal,
            StoreError::Unavailable => ErrorCode::Unavailable,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Failed(e.to_string())
    }
}

/// SHA-256 of a device token: what the relay stores and compares.
#[must_use]
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// One session as the relay knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub agent_token_hash: [u8; 32],
    pub desktop_token_hash: [u8; 32],
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen: i64,
    /// Unix seconds, when one side revoked it.
    pub revoked_at: Option<i64>,
}

impl SessionRecord {
    /// Constant-time check that `token` is `role`'s device token for this session.
    #[must_use]
    pub fn token_matches(&self, role: Role, token: &str) -> bool {
        let expected = match role {
            Role::Agent => &self.agent_token_hash,
            Role::Desktop => &self.desktop_token_hash,
        };
        bool::from(token_hash(token).ct_eq(expected))
    }
}

/// Where sessions live.
pub enum Store {
    /// The embedded default (calls are short and synchronous).
    Sqlite(SqliteStore),
    /// A relay cluster's Redis.
    Redis(RedisStore),
}

impl Store {
    /// Insert a new session.
    pub async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.create(record),
            Store::Redis(s) => s.create(record).await,
        }
    }

    /// Look a session up by id.
    pub async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get(id),
            Store::Redis(s) => s.get(id).await,
        }
    }

    /// Record that a side was seen at `now`.
    pub async fn touch(&self, id: &str, now: i64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.touch(id, now),
            Store::Redis(s) => s.touch(id, now).await,
        }
    }

    /// Mark a session revoked. Returns false if it did not exist.
    pub async fn revoke(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke(id, now),
            Store::Redis(s) => s.revoke(id, now).await,
        }
    }

    /// Sessions not revoked, where the store can count them cheaply (not in Redis).
    #[must_use]
    /// Sessions not revoked.
    pub fn count_active(&self) -> Option<u64> {
        match self {
            Store::Sqlite(s) => s.count_active().ok(),
            Store::Redis(_) => None,
        }
    }

    /// Delete sessions unused since before `cutoff` (Redis expires them by itself).
    /// Delete sessions unused since before `cutoff` (revoked or not: a revoked one answers
    /// `SESSION_REVOKED` until then). Returns how many went.
    pub fn sweep(&self, cutoff: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.sweep(cutoff),
            Store::Redis(_) => Ok(0),
        }
    }
}

/// The embedded default: one SQLite database (WAL mode), or an in-memory one.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// A database that lives only in this process.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                id TEXT PRIMARY KEY,
                agent_token_hash BLOB NOT NULL,
                desktop_token_hash BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                last_seen INTEGER NOT NULL,
                revoked_at INTEGER
            );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let guard = self
            .conn
            .lock()
            .map_err(|_| StoreError::Failed("store lock poisoned".into()))?;
        f(&guard).map_err(StoreError::from)
    }
}

fn hash_from_blob(v: Vec<u8>) -> Result<[u8; 32], rusqlite::Error> {
    v.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "token hash is not 32 bytes".into(),
        )
    })
}

impl SqliteStore {
    /// Insert a new session.
    pub fn create(&self, r: &SessionRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id, agent_token_hash, desktop_token_hash, created_at, last_seen, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.id, &r.agent_token_hash[..], &r.desktop_token_hash[..], r.created_at, r.last_seen, r.revoked_at],
            )
            .map(|_| ())
        })
    }

    /// Look a session up by id.
    pub fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, agent_token_hash, desktop_token_hash, created_at, last_seen, revoked_at FROM sessions WHERE id = ?1",
                params![id],
                |row| {
                    Ok(SessionRecord {
                        id: row.get(0)?,
                        agent_token_hash: hash_from_blob(row.get(1)?)?,
                        desktop_token_hash: hash_from_blob(row.get(2)?)?,
                        created_at: row.get(3)?,
                        last_seen: row.get(4)?,
                        revoked_at: row.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Record that a side was seen at `now`.
    pub fn touch(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE sessions SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2",
                params![id, now],
            )
            .map(|_| ())
        })
    }

    /// Mark a session revoked. Returns false if it did not exist.
    pub fn revoke(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )
            .map(|n| n > 0)
        })
    }

    /// Sessions not revoked.
    pub fn count_active(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
        })
    }

    /// Delete sessions unused since before `cutoff` (revoked or not: a revoked one answers
    /// `SESSION_REVOKED` until then). Returns how many went.
    pub fn sweep(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE last_seen < ?1", params![cutoff])
                .map(|n| u64::try_from(n).unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            agent_token_hash: token_hash("agent-token"),
            desktop_token_hash: token_hash("desktop-token"),
            created_at: 100,
            last_seen: 100,
            revoked_at: None,
        }
    }

    #[test]
    fn sessions_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.create(&record("s1")).unwrap();
            s.touch("s1", 200).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let r = s.get("s1").unwrap().unwrap();
        assert_eq!(r.last_seen, 200);
        assert!(r.token_matches(Role::Agent, "agent-token"));
        assert!(r.token_matches(Role::Desktop, "desktop-token"));
        assert!(!r.token_matches(Role::Desktop, "agent-token"));
        assert_eq!(s.count_active().unwrap(), 1);
    }

    #[test]
    fn the_file_holds_no_token() {
        // real tokens, as the relay hands them out; the store gets only what the relay keeps
        let agent = clawtray_proto::secret::new_device_token().unwrap();
        let desktop = clawtray_proto::secret::new_device_token().unwrap();
        let rec = SessionRecord {
            id: "session-marker-1".into(),
            agent_token_hash: token_hash(agent.expose()),
            desktop_token_hash: token_hash(desktop.expose()),
            created_at: 100,
            last_seen: 100,
            revoked_at: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let s = SqliteStore::open(&path).unwrap();
        s.create(&rec).unwrap();
        drop(s);
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        // positive controls: the scan sees what the file does hold
        assert!(
            has(b"session-marker-1"),
            "the scan reads the stored session"
        );
        assert!(has(&rec.agent_token_hash), "the hash is what is kept");
        for token in [&agent, &desktop] {
            assert!(!has(token.expose().as_bytes()), "a token in clear");
        }
    }

    #[test]
    fn sessions_unused_past_their_ttl_are_swept_and_live_ones_stay() {
        let s = SqliteStore::in_memory().unwrap();
        let mut old = record("old");
        old.last_seen = 100;
        let mut revoked_old = record("revoked-old");
        revoked_old.last_seen = 150;
        let mut fresh = record("fresh");
        fresh.last_seen = 1_000;
        for r in [&old, &revoked_old, &fresh] {
            s.create(r).unwrap();
        }
        s.revoke("revoked-old", 160).unwrap();
        s.touch("fresh", 2_000).unwrap();
        assert_eq!(s.sweep(500).unwrap(), 2);
        assert!(s.get("old").unwrap().is_none() && s.get("revoked-old").unwrap().is_none());
        assert!(s.get("fresh").unwrap().is_some());
        assert_eq!(s.sweep(500).unwrap(), 0);
    }

    #[test]
    fn revoke_is_recorded_once() {
        let s = SqliteStore::in_memory().unwrap();
        s.create(&record("s1")).unwrap();
        assert!(s.revoke("s1", 300).unwrap());
        assert!(!s.revoke("s1", 301).unwrap());
        assert_eq!(s.get("s1").unwrap().unwrap().revoked_at, Some(300));
        assert_eq!(s.count_active().unwrap(), 0);
        assert!(s.get("nope").unwrap().is_none());
    }
}
