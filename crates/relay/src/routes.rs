//! Which connection is each session's agent and desktop. [`LocalRoutes`] is the in-process table
//! of this relay's connections; [`Router`] adds, on a cluster node, where the ends on other nodes
//! are (`cluster::presence`). Frames between two ends of one node never touch Redis.
//!
//! Attaching a side reports whether the peer is online and whether the agent is a new process
//! (its `instance` changed): the caller then announces `peer_online` or `peer_restarted`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clawtray_proto::control::ErrorCode;
use clawtray_proto::Role;

use crate::cluster::Cluster;
use crate::peer::{Loc, PeerHandle, Target};

/// What attaching a connection found.
#[derive(Debug)]
pub struct Attached {
    /// The other side, if online (here or on another node).
    pub peer: Option<Target>,
    /// An older connection of the same side that this one replaces (to be closed).
    pub replaced: Option<Target>,
    /// The agent came back as a different process than last time.
    pub agent_restarted: bool,
}

/// A session's routes: this relay's connections, and on a cluster node the others' too.
pub struct Router {
    local: LocalRoutes,
    cluster: Option<Arc<Cluster>>,
    /// How long presence entries live in Redis (the session TTL).
    ttl_secs: u64,
}

impl Router {
    /// Routes of a relay on its own (`cluster` `None`) or of a cluster node.
    #[must_use]
    pub fn new(cluster: Option<Arc<Cluster>>, ttl_secs: u64) -> Self {
        Self {
            local: LocalRoutes::default(),
            cluster,
            ttl_secs,
        }
    }

    /// Make `handle` the `role` side of `session` on this relay only — for a node whose Redis
    /// does not answer; the caller records it in Redis once it does.
    pub fn attach_here(&self, session: &str, role: Role, handle: &PeerHandle) -> Attached {
        let l = self.local.attach(session, role, handle.clone(), None);
        Attached {
            peer: l.peer.map(Target::Local),
            replaced: l.replaced.map(Target::Local),
            agent_restarted: false,
        }
    }

    /// A location on a live other node, as a target.
    pub fn remote(cluster: &Cluster, loc: Option<Loc>) -> Option<Target> {
        loc.filter(|l| *l.node != *cluster.node && cluster.is_alive(&l.node))
            .map(Target::Remote)
    }

    /// Make `handle` the `role` side of `session`.
    pub async fn attach(
        &self,
        session: &str,
        role: Role,
        handle: &PeerHandle,
        instance: Option<&str>,
    ) -> Result<Attached, ErrorCode> {
        let Some(cluster) = &self.cluster else {
            let l = self.local.attach(session, role, handle.clone(), instance);
            return Ok(Attached {
                peer: l.peer.map(Target::Local),
                replaced: l.replaced.map(Target::Local),
                agent_restarted: l.agent_restarted,
            });
        };
        let me = cluster.loc(handle.conn_id);
        let found = cluster
            .attach(session, role, &me, instance, self.ttl_secs)
            .await?;
        let l = self.local.attach(session, role, handle.clone(), None);
        Ok(Attached {
            peer: l
                .peer
                .map(Target::Local)
                .or_else(|| Self::remote(cluster, found.peer)),
            replaced: l
                .replaced
                .map(Target::Local)
                .or_else(|| Self::remote(cluster, found.previous)),
            agent_restarted: found.agent_restarted,
        })
    }

    /// Route both ends of a session pairing just made (before either learns it is paired).
    pub async fn attach_pair(
        &self,
        session: &str,
        agent: &Target,
        agent_instance: Option<&str>,
        desktop: &Target,
    ) -> Result<(), ErrorCode> {
        if let Some(cluster) = &self.cluster {
            let loc = |t: &Target| match t {
                Target::Local(h) => cluster.loc(h.conn_id),
                Target::Remote(l) => l.clone(),
            };
            cluster
                .attach_both(
                    session,
                    &loc(agent),
                    agent_instance,
                    &loc(desktop),
                    self.ttl_secs,
                )
                .await?;
        }
        for (role, t) in [(Role::Agent, agent), (Role::Desktop, desktop)] {
            if let Target::Local(h) = t {
                let instance = (role == Role::Agent).then_some(agent_instance).flatten();
                self.local.attach(session, role, h.clone(), instance);
            }
        }
        Ok(())
    }

    /// Route a connection that pairing made an end on this node, unless it already is.
    pub fn attach_entered(&self, session: &str, role: Role, handle: &PeerHandle) {
        if self.local.get(session, role).map(|h| h.conn_id) != Some(handle.conn_id) {
            self.local.attach(session, role, handle.clone(), None);
        }
    }

    /// Remove connection `conn_id` if it is still the `role` side; returns the peer to notify.
    pub async fn detach(&self, session: &str, role: Role, conn_id: u64) -> Option<Option<Target>> {
        let local_peer = self.local.detach(session, role, conn_id)?;
        let Some(cluster) = &self.cluster else {
            return Some(local_peer.map(Target::Local));
        };
        let found = cluster.detach(session, role, &cluster.loc(conn_id)).await;
        if let Some(p) = local_peer {
            return Some(Some(Target::Local(p)));
        }
        match found {
            Ok(Some(peer)) => Some(Self::remote(cluster, peer)),
            // a newer connection of this side took over elsewhere: nothing to announce
            Ok(None) => None,
            Err(_) => Some(None),
        }
    }

    /// This relay's connection for the `role` side of `session`, if it has it.
    #[must_use]
    pub fn local(&self, session: &str, role: Role) -> Option<PeerHandle> {
        self.local.get(session, role)
    }

    /// Forget the session; returns both sides' connections, wherever they are.
    pub async fn remove(&self, session: &str) -> Vec<Target> {
        let mut all: Vec<Target> = self
            .local
            .remove(session)
            .into_iter()
            .map(Target::Local)
            .collect();
        if let Some(cluster) = &self.cluster {
            for loc in cluster.remove(session).await.unwrap_or_default() {
                if let Some(t) = Self::remote(cluster, Some(loc)) {
                    all.push(t);
                }
            }
        }
        all
    }

    /// Sessions with at least one side connected to this relay.
    #[must_use]
    pub fn online_sessions(&self) -> usize {
        self.local.online_sessions()
    }
}

/// What attaching a connection to the in-process table found.
#[derive(Debug)]
pub struct LocalAttached {
    /// The other side's connection, if online.
    pub peer: Option<PeerHandle>,
    /// An older connection of the same side that this one replaces (to be closed).
    pub replaced: Option<PeerHandle>,
    /// The agent came back as a different process than last time.
    pub agent_restarted: bool,
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

impl LocalRoutes {
    /// Make `handle` the `role` side of `session`.
    pub fn attach(
        &self,
        session: &str,
        role: Role,
        handle: PeerHandle,
        instance: Option<&str>,
    ) -> LocalAttached {
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
        LocalAttached {
            peer,
            replaced,
            agent_restarted,
        }
    }

    /// Remove connection `conn_id` if it is still the `role` side; returns the peer to notify.
    pub fn detach(&self, session: &str, role: Role, conn_id: u64) -> Option<Option<PeerHandle>> {
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

    /// The `role` side of `session`, if connected.
    pub fn get(&self, session: &str, role: Role) -> Option<PeerHandle> {
        let mut t = self.lock();
        t.get_mut(session).and_then(|e| e.side(role).clone())
    }

    /// Forget the session; returns both sides' connections.
    pub fn remove(&self, session: &str) -> Vec<PeerHandle> {
        let mut t = self.lock();
        t.remove(session)
            .map(|e| e.agent.into_iter().chain(e.desktop).collect())
            .unwrap_or_default()
    }

    /// Sessions with at least one side connected.
    pub fn online_sessions(&self) -> usize {
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
