//! Which live connection is each session's agent and desktop. Behind a trait so routing can
//! later span several relays (e.g. over Redis pub/sub); [`LocalRoutes`] is the in-process table.
//!
//! Attaching a side reports whether the peer is online and whether the agent is a new process
//! (its `instance` changed): the caller then announces `peer_online` or `peer_restarted`.

use std::collections::HashMap;
use std::sync::Mutex;

use clawtray_proto::Role;

use crate::peer::PeerHandle;

/// What attaching a connection found.
#[derive(Debug)]
pub struct Attached {
    /// The other side's connection, if online.
    pub peer: Option<PeerHandle>,
    /// An older connection of the same side that this one replaces (to be closed).
    pub replaced: Option<PeerHandle>,
    /// The agent came back as a different process than last time.
    pub agent_restarted: bool,
}

/// Session routing table.
pub trait Routes: Send + Sync {
    /// Make `handle` the `role` side of `session`.
    fn attach(
        &self,
        session: &str,
        role: Role,
        handle: PeerHandle,
        instance: Option<&str>,
    ) -> Attached;
    /// Remove connection `conn_id` if it is still the `role` side; returns the peer to notify.
    fn detach(&self, session: &str, role: Role, conn_id: u64) -> Option<Option<PeerHandle>>;
    /// The `role` side of `session`, if connected.
    fn get(&self, session: &str, role: Role) -> Option<PeerHandle>;
    /// Forget the session; returns both sides' connections.
    fn remove(&self, session: &str) -> Vec<PeerHandle>;
    /// Sessions with at least one side connected.
    fn online_sessions(&self) -> usize;
}

#[derive(Debug, Default)]
struct Entry {
    agent: Option<PeerHandle>,
    desktop: Option<PeerHandle>,
    agent_instance: Option<String>,
}

impl Entry {
    fn side(&mut self, role: Role) -> &mut Option<PeerHandle> {
        match role {
            Role::Agent => &mut self.agent,
            Role::Desktop => &mut self.desktop,
        }
    }
}

/// The in-process routing table.
#[derive(Debug, Default)]
pub struct LocalRoutes {
    table: Mutex<HashMap<String, Entry>>,
}

impl LocalRoutes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (every update is a
        // single insert/remove), so recover the guard rather than take the relay down.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Routes for LocalRoutes {
    fn attach(
        &self,
        session: &str,
        role: Role,
        handle: PeerHandle,
        instance: Option<&str>,
    ) -> Attached {
        let mut t = self.lock();
        let e = t.entry(session.to_owned()).or_default();
        let mut agent_restarted = false;
        if role == Role::Agent {
            if let Some(new) = instance {
                agent_restarted = e.agent_instance.as_deref().is_some_and(|old| old != new);
                e.agent_instance = Some(new.to_owned());
            }
        }
        let replaced = e.side(role).replace(handle);
        let peer = e.side(role.peer()).clone();
        Attached {
            peer,
            replaced,
            agent_restarted,
        }
    }

    fn detach(&self, session: &str, role: Role, conn_id: u64) -> Option<Option<PeerHandle>> {
        let mut t = self.lock();
        let e = t.get_mut(session)?;
        if e.side(role).as_ref().map(|h| h.conn_id) != Some(conn_id) {
            return None;
        }
        *e.side(role) = None;
        let peer = e.side(role.peer()).clone();
        if e.agent.is_none() && e.desktop.is_none() {
            t.remove(session);
        }
        Some(peer)
    }

    fn get(&self, session: &str, role: Role) -> Option<PeerHandle> {
        let mut t = self.lock();
        t.get_mut(session).and_then(|e| e.side(role).clone())
    }

    fn remove(&self, session: &str) -> Vec<PeerHandle> {
        let mut t = self.lock();
        t.remove(session)
            .map(|e| e.agent.into_iter().chain(e.desktop).collect())
            .unwrap_or_default()
    }

    fn online_sessions(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::channel;

    #[test]
    fn attach_reports_peer_replacement_and_restart() {
        let r = LocalRoutes::default();
        let (a1, _m1) = channel(1, 4, 1024);
        let (d1, _m2) = channel(2, 4, 1024);
        let at = r.attach("s", Role::Agent, a1, Some("p1"));
        assert!(at.peer.is_none() && at.replaced.is_none() && !at.agent_restarted);
        let at = r.attach("s", Role::Desktop, d1, None);
        assert_eq!(at.peer.map(|h| h.conn_id), Some(1));
        // the same agent process reconnects: not a restart
        let (a2, _m3) = channel(3, 4, 1024);
        let at = r.attach("s", Role::Agent, a2, Some("p1"));
        assert_eq!(at.replaced.map(|h| h.conn_id), Some(1));
        assert!(!at.agent_restarted);
        // a new agent process: restart
        let (a3, _m4) = channel(4, 4, 1024);
        assert!(r.attach("s", Role::Agent, a3, Some("p2")).agent_restarted);
    }

    #[test]
    fn detach_only_removes_the_current_connection() {
        let r = LocalRoutes::default();
        let (a1, _m1) = channel(1, 4, 1024);
        let (a2, _m2) = channel(2, 4, 1024);
        r.attach("s", Role::Agent, a1, None);
        r.attach("s", Role::Agent, a2, None);
        assert!(
            r.detach("s", Role::Agent, 1).is_none(),
            "a replaced connection must not detach its successor"
        );
        assert_eq!(r.get("s", Role::Agent).map(|h| h.conn_id), Some(2));
        assert!(r.detach("s", Role::Agent, 2).is_some());
        assert_eq!(r.online_sessions(), 0);
    }
}
