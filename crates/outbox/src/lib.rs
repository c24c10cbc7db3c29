//! The outbox of one end of a session: every message sent, kept until the peer acknowledges it,
//! plus the receive-side mark (highest message delivered from the peer). Generic over the message
//! type; the desktop keeps its `ToAgent` messages here, the agent its `ToDesktop` ones. SQLite
//! (WAL) in the platform data dir. Every write survives the process being killed; what must also
//! survive a power loss is written [`Durability::Synced`] (fsync), which makes everything written
//! before it durable too. Streaming progress (a reply's deltas) is written
//! [`Durability::Written`]: the reply's end, synced, follows it, and a power loss that takes the
//! last deltas first is recovered at the next meeting (`Delivery::catch_up`).
//!
//! Message bodies are sealed with AES-256-GCM under a key the caller keeps elsewhere (the desktop:
//! the OS keyring; the agent: its 0600 key file), with the sequence number as associated data: the data dir never holds a message in
//! clear. A row is written before its message is first transmitted, so a sequence number is never
//! reused for a different message after a crash.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use clawtray_proto::delivery::DeliveryState;
use clawtray_proto::secret::{fill_random, SecretKey};

/// How many idempotency keys [`Outbox::set_delivered_once`] remembers.
pub const SEEN_KEYS: usize = 4096;

/// File name inside the data dir.
pub const OUTBOX_FILE: &str = "outbox.db";

/// Outbox failures.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OutboxError {
    #[error("the outbox at {path} cannot be used: {reason}")]
    Storage { path: String, reason: String },
    #[error("an outbox entry could not be opened (wrong key or damaged); it was dropped")]
    Unreadable,
}

/// How durable a write is when the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsynced: survives a power loss, and so does everything written before it.
    Synced,
    /// Handed to the OS: survives the process being killed, not a power loss.
    Written,
}

/// The persisted outbox of one pairing.
pub struct Outbox<M> {
    conn: Connection,
    /// The `synchronous` setting in force (changed only between transactions).
    sync: std::cell::Cell<Durability>,
    cipher: Aes256Gcm,
    path: PathBuf,
    _m: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for Outbox<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<M: Serialize + DeserializeOwned> Outbox<M> {
    /// Open (or create) the outbox at `path`, sealing with `key`.
    pub fn open(path: &Path, key: &SecretKey) -> Result<Self, OutboxError> {
        let err = |e: &dyn std::fmt::Display| OutboxError::Storage {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(|e| err(&e))?;
        }
        // the file exists, private, before SQLite writes a byte (its -wal and -shm take the
        // database file's mode)
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(&e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| err(&e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, nonce BLOB NOT NULL, body BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY);",
        )
        .map_err(|e| err(&e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(Self {
            conn,
            sync: std::cell::Cell::new(Durability::Synced),
            cipher: Aes256Gcm::new(key.expose().into()),
            path: path.to_owned(),
            _m: PhantomData,
        })
    }

    fn storage_err(&self, e: &dyn std::fmt::Display) -> OutboxError {
        OutboxError::Storage {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// Make the next transaction `d` (WAL: `FULL` syncs the log at commit, `NORMAL` leaves it to
    /// the OS until a later synced commit or checkpoint).
    fn durability(&self, d: Durability) -> Result<(), OutboxError> {
        if self.sync.get() != d {
            let mode = match d {
                Durability::Synced => "FULL",
                Durability::Written => "NORMAL",
            };
            self.conn
                .pragma_update(None, "synchronous", mode)
                .map_err(|e| self.storage_err(&e))?;
            self.sync.set(d);
        }
        Ok(())
    }

    fn mark(&self, name: &str) -> Result<u64, OutboxError> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM marks WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.storage_err(&e))?;
        Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    fn set_mark(&self, name: &str, value: u64) -> Result<(), OutboxError> {
        let v = i64::try_from(value).map_err(|e| self.storage_err(&e))?;
        self.conn
            .execute(
                "INSERT INTO marks (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, v],
            )
            .map(|_| ())
            .map_err(|e| self.storage_err(&e))
    }

    /// Everything persisted, as delivery state. Unreadable rows are dropped and reported.
    pub fn load(&self) -> Result<(DeliveryState<M>, usize), OutboxError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, nonce, body FROM outbox ORDER BY seq")
            .map_err(|e| self.storage_err(&e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| self.storage_err(&e))?;
        let mut unacked = Vec::new();
        let mut unreadable = 0;
        for row in rows {
            let (seq, nonce, body) = row.map_err(|e| self.storage_err(&e))?;
            let seq = u64::try_from(seq).unwrap_or(0);
            match self.open_body(seq, &nonce, &body) {
                Some(m) => unacked.push((seq, m)),
                None => unreadable += 1,
            }
        }
        let last_seq = unacked.last().map_or(0, |(s, _)| *s);
        let next_seq = self.mark("next_seq")?.max(last_seq + 1).max(1);
        Ok((
            DeliveryState {
                next_seq,
                peer_acked: self.mark("peer_acked")?,
                delivered: self.mark("delivered")?,
                unacked,
            },
            unreadable,
        ))
    }

    fn open_body(&self, seq: u64, nonce: &[u8], body: &[u8]) -> Option<M> {
        if nonce.len() != 12 {
            return None;
        }
        let plain = zeroize::Zeroizing::new(
            self.cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: body,
                        aad: &seq.to_be_bytes(),
                    },
                )
                .ok()?,
        );
        serde_json::from_slice(&plain).ok()
    }

    /// Persist message `seq` before it is first sent, synced.
    pub fn enqueue(&self, seq: u64, msg: &M) -> Result<(), OutboxError> {
        self.enqueue_as(seq, msg, Durability::Synced)
    }

    /// Persist message `seq` before it is first sent, as durable as `d`.
    pub fn enqueue_as(&self, seq: u64, msg: &M, d: Durability) -> Result<(), OutboxError> {
        self.durability(d)?;
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(msg).map_err(|e| self.storage_err(&e))?);
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce).map_err(|e| self.storage_err(&e))?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &seq.to_be_bytes(),
                },
            )
            .map_err(|_| OutboxError::Unreadable)?;
        let seq_i = i64::try_from(seq).map_err(|e| self.storage_err(&e))?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.storage_err(&e))?;
        tx.execute(
            "INSERT OR REPLACE INTO outbox (seq, nonce, body) VALUES (?1, ?2, ?3)",
            params![seq_i, &nonce[..], sealed],
        )
        .map_err(|e| self.storage_err(&e))?;
        self.set_mark("next_seq", seq + 1)?;
        tx.commit().map_err(|e| self.storage_err(&e))
    }

    /// The peer acknowledged everything up to `ack`. Written without waiting for the disk: a
    /// lost acknowledgement only means those messages are sent again after a crash, and the
    /// peer drops them by sequence number. (Synced, every acknowledged delta cost an fsync on
    /// the link's task, in front of the next delta: the agent's p99 in docs/benchmarks.md.)
    pub fn acked(&self, ack: u64) -> Result<(), OutboxError> {
        self.durability(Durability::Written)?;
        let a = i64::try_from(ack).map_err(|e| self.storage_err(&e))?;
        self.conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", params![a])
            .map_err(|e| self.storage_err(&e))?;
        self.set_mark("peer_acked", ack)
    }

    /// We delivered the peer's messages up to `seq`, synced.
    pub fn set_delivered(&self, seq: u64) -> Result<(), OutboxError> {
        self.set_delivered_as(seq, Durability::Synced)
    }

    /// We delivered the peer's messages up to `seq`, as durable as `d` (a lost mark only means
    /// the peer resends what came after it, and the receiver reconciles it).
    pub fn set_delivered_as(&self, seq: u64, d: Durability) -> Result<(), OutboxError> {
        self.durability(d)?;
        self.set_mark("delivered", seq)
    }

    /// We delivered the peer's message `seq`, which carries the application-level idempotency
    /// key `key` (e.g. the run a reply ends). Returns whether `key` is new; both are recorded in
    /// one transaction, so a key is never remembered for a message that counts as undelivered.
    /// The newest [`SEEN_KEYS`] keys are kept. Keys are stored in clear: they must not be secret.
    pub fn set_delivered_once(&self, seq: u64, key: &str) -> Result<bool, OutboxError> {
        self.durability(Durability::Synced)?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.storage_err(&e))?;
        let fresh = tx
            .execute("INSERT OR IGNORE INTO seen (key) VALUES (?1)", params![key])
            .map_err(|e| self.storage_err(&e))?
            == 1;
        let keep = i64::try_from(SEEN_KEYS).map_err(|e| self.storage_err(&e))?;
        tx.execute(
            "DELETE FROM seen WHERE rowid <= (SELECT MAX(rowid) FROM seen) - ?1",
            params![keep],
        )
        .map_err(|e| self.storage_err(&e))?;
        self.set_mark("delivered", seq)?;
        tx.commit().map_err(|e| self.storage_err(&e))?;
        Ok(fresh)
    }

    /// Delete the outbox file (after unpairing).
    pub fn destroy(self) {
        let path = self.path.clone();
        drop(self.conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

/// Create `dir` (and its parents) if missing, private (0700 on Unix), before anything is written
/// into it; an existing `dir` is made private too.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawtray_proto::chat::ToAgent;

    #[cfg(unix)]
    #[test]
    fn the_outbox_and_its_dir_are_private_from_the_first_write() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("fresh").join("data");
        let path = dir.join(OUTBOX_FILE);
        let key = SecretKey::from_bytes([7; 32]);
        let o: Outbox<ToAgent> = Outbox::open(&path, &key).unwrap();
        o.enqueue(1, &chat("a", "private")).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        let wal = dir.join(format!("{OUTBOX_FILE}-wal"));
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
    }

    fn chat(id: &str, text: &str) -> ToAgent {
        ToAgent::Chat {
            attachments: Vec::new(),
            id: id.into(),
            text: text.into(),
            session: None,
        }
    }

    /// Set in the child process of the test below.
    const KILLED_WRITER: &str = "CLAWTRAY_OUTBOX_KILLED_WRITER";

    #[test]
    fn unsynced_writes_survive_the_writer_being_killed_and_the_mode_goes_back() {
        if let Some(path) = std::env::var_os(KILLED_WRITER) {
            // the child: three synced messages, then streaming progress and a delivered mark
            // written without waiting for the disk, then killed before closing anything
            let o: Outbox<ToAgent> =
                Outbox::open(Path::new(&path), &SecretKey::from_bytes([3; 32])).unwrap();
            for seq in 1..=3 {
                o.enqueue(seq, &chat(&format!("s{seq}"), "synced")).unwrap();
            }
            for seq in 4..=40 {
                o.enqueue_as(seq, &chat(&format!("w{seq}"), "delta"), Durability::Written)
                    .unwrap();
            }
            o.set_delivered_as(17, Durability::Written).unwrap();
            std::process::abort();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE);
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "tests::unsynced_writes_survive_the_writer_being_killed_and_the_mode_goes_back",
                "--nocapture",
            ])
            .env(KILLED_WRITER, &path)
            .status()
            .unwrap();
        assert!(!status.success(), "the writer was killed");
        let o: Outbox<ToAgent> = Outbox::open(&path, &SecretKey::from_bytes([3; 32])).unwrap();
        let (state, unreadable) = o.load().unwrap();
        assert_eq!(unreadable, 0);
        assert_eq!(state.unacked.len(), 40, "every message is there");
        assert_eq!(state.next_seq, 41);
        assert_eq!(state.delivered, 17);
        // a synced write after unsynced ones syncs again (the setting is per transaction)
        o.enqueue_as(41, &chat("w41", "delta"), Durability::Written)
            .unwrap();
        o.enqueue(42, &chat("s42", "end")).unwrap();
        let mode: i64 = o
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "FULL again after a synced write");
    }

    #[test]
    fn survives_reopening_and_never_stores_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE);
        let key = SecretKey::random().unwrap();
        {
            let o: Outbox<ToAgent> = Outbox::open(&path, &key).unwrap();
            o.enqueue(1, &chat("a", "MARKER-one")).unwrap();
            o.enqueue(2, &chat("b", "MARKER-two")).unwrap();
            o.enqueue(3, &chat("c", "MARKER-three")).unwrap();
            o.acked(1).unwrap();
            o.set_delivered(7).unwrap();
        }
        let o: Outbox<ToAgent> = Outbox::open(&path, &key).unwrap();
        let (state, bad) = o.load().unwrap();
        assert_eq!(bad, 0);
        assert_eq!(state.next_seq, 4);
        assert_eq!(state.delivered, 7);
        assert_eq!(state.peer_acked, 1);
        assert_eq!(
            state.unacked,
            vec![(2, chat("b", "MARKER-two")), (3, chat("c", "MARKER-three"))]
        );
        drop(o);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains("MARKER"));
        }
    }

    #[test]
    fn a_key_delivered_twice_is_new_once_even_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE);
        let key = SecretKey::random().unwrap();
        {
            let o: Outbox<ToAgent> = Outbox::open(&path, &key).unwrap();
            assert!(o.set_delivered_once(3, "run-a").unwrap());
            assert!(!o.set_delivered_once(4, "run-a").unwrap());
        }
        let o: Outbox<ToAgent> = Outbox::open(&path, &key).unwrap();
        assert!(
            !o.set_delivered_once(5, "run-a").unwrap(),
            "remembered on disk"
        );
        assert_eq!(o.load().unwrap().0.delivered, 5);
        // only the newest keys are kept
        for i in 0..SEEN_KEYS {
            o.set_delivered_once(6, &format!("k{i}")).unwrap();
        }
        assert!(
            o.set_delivered_once(7, "run-a").unwrap(),
            "forgotten after SEEN_KEYS newer"
        );
    }

    #[test]
    fn a_wrong_key_drops_rows_instead_of_crashing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTBOX_FILE);
        Outbox::<ToAgent>::open(&path, &SecretKey::random().unwrap())
            .unwrap()
            .enqueue(1, &chat("a", "x"))
            .unwrap();
        let (state, bad) = Outbox::<ToAgent>::open(&path, &SecretKey::random().unwrap())
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(bad, 1);
        assert!(state.unacked.is_empty());
        assert_eq!(state.next_seq, 2, "a sequence number is never reused");
    }
}
