//! Pairing brokerage as a connection sees it, whether the relay runs alone (nameplates in this
//! process, [`Nameplates`]) or as a cluster node (nameplates in Redis, so the agent and the
//! desktop may sit on different nodes). Either way: one attempt per nameplate, burned by any
//! failure, and each end's device token made by the node serving that end (only its hash is
//! shared), so no token ever travels between nodes or rests in Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawtray_proto::control::ErrorCode;
use clawtray_proto::Role;

use crate::cluster::pairing::Confirmed;
use crate::cluster::Cluster;
use crate::nameplates::{self, Nameplates};
use crate::peer::{PeerHandle, Target};

/// Both ends confirmed.
#[derive(Debug)]
pub struct Both {
    pub agent: Target,
    pub agent_instance: Option<String>,
    pub desktop: Target,
    pub agent_hash: [u8; 32],
    pub desktop_hash: [u8; 32],
}

/// The outcome of an end confirming.
#[derive(Debug)]
pub enum Confirmation {
    /// No linked pairing under that nameplate (any more).
    Gone,
    /// The other end has not confirmed yet.
    Waiting,
    /// Both confirmed: create the session.
    Both(Both),
}

/// Where nameplates live.
pub enum Pairing {
    /// In this process.
    Local(Nameplates),
    /// In the cluster's Redis.
    Cluster {
        cluster: Arc<Cluster>,
        ttl: Duration,
        /// How long a linked nameplate may wait for both confirmations (the pairing timeout
        /// and a margin; each end's own deadline ends it first).
        linked_ttl: Duration,
    },
}

impl Pairing {
    /// How long a nameplate lives.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        match self {
            Pairing::Local(n) => n.ttl(),
            Pairing::Cluster { ttl, .. } => *ttl,
        }
    }

    /// Hand a fresh nameplate to the agent `me`. `random` supplies random numbers.
    pub async fn claim(
        &self,
        me: &PeerHandle,
        instance: Option<String>,
        mut random: impl FnMut() -> u64,
    ) -> Result<String, ErrorCode> {
        match self {
            Pairing::Local(n) => n
                .claim(me.clone(), instance, Instant::now(), random)
                .ok_or(ErrorCode::TooManyConnections),
            Pairing::Cluster { cluster, ttl, .. } => {
                let loc = cluster.loc(me.conn_id);
                for _ in 0..nameplates::CLAIM_TRIES {
                    let np = nameplates::random_nameplate_of_usual_length(&mut random);
                    if cluster
                        .claim_nameplate(&np, &loc, instance.as_deref(), *ttl)
                        .await?
                    {
                        return Ok(np);
                    }
                }
                Err(ErrorCode::TooManyConnections)
            }
        }
    }

    /// Join `nameplate` as the desktop `me`; the agent, or why not.
    pub async fn join(&self, nameplate: &str, me: &PeerHandle) -> Result<Target, ErrorCode> {
        match self {
            Pairing::Local(n) => n
                .join(nameplate, me.clone(), Instant::now())
                .map(Target::Local),
            Pairing::Cluster {
                cluster,
                linked_ttl,
                ..
            } => {
                let agent = cluster
                    .join_nameplate(nameplate, &cluster.loc(me.conn_id), *linked_ttl)
                    .await?;
                Ok(cluster.target(agent))
            }
        }
    }

    /// `role` confirmed; `hash` is the SHA-256 of the token it will get.
    pub async fn confirm(
        &self,
        nameplate: &str,
        role: Role,
        hash: [u8; 32],
    ) -> Result<Confirmation, ErrorCode> {
        match self {
            Pairing::Local(n) => Ok(match n.confirm(nameplate, role, hash) {
                None => Confirmation::Gone,
                Some(nameplates::Confirmation::Waiting) => Confirmation::Waiting,
                Some(nameplates::Confirmation::Both {
                    agent,
                    agent_instance,
                    desktop,
                    agent_hash,
                    desktop_hash,
                }) => Confirmation::Both(Both {
                    agent: Target::Local(agent),
                    agent_instance,
                    desktop: Target::Local(desktop),
                    agent_hash,
                    desktop_hash,
                }),
            }),
            Pairing::Cluster { cluster, .. } => {
                let role = match role {
                    Role::Agent => 'a',
                    Role::Desktop => 'd',
                };
                Ok(
                    match cluster.confirm_nameplate(nameplate, role, &hash).await? {
                        Confirmed::Gone => Confirmation::Gone,
                        Confirmed::Waiting => Confirmation::Waiting,
                        Confirmed::Both(b) => Confirmation::Both(Both {
                            agent: cluster.target(b.agent),
                            agent_instance: b.agent_instance,
                            desktop: cluster.target(b.desktop),
                            agent_hash: b.agent_hash,
                            desktop_hash: b.desktop_hash,
                        }),
                    },
                )
            }
        }
    }

    /// Burn a nameplate (failed or abandoned attempt). True if it was live.
    pub async fn burn(&self, nameplate: &str) -> bool {
        match self {
            Pairing::Local(n) => !n.burn(nameplate).is_empty(),
            Pairing::Cluster { cluster, .. } => {
                cluster.burn_nameplate(nameplate).await.unwrap_or(false)
            }
        }
    }

    /// The agent `conn_id`'s nameplate ran out unused.
    pub async fn expire(&self, nameplate: &str, conn_id: u64) {
        match self {
            Pairing::Local(n) => n.expire(nameplate, conn_id, Instant::now()),
            Pairing::Cluster { cluster, ttl, .. } => {
                let _ = cluster
                    .expire_nameplate(nameplate, &cluster.loc(conn_id), *ttl)
                    .await;
            }
        }
    }

    /// Live nameplates, where this process knows them all (not in a cluster).
    #[must_use]
    pub fn live(&self) -> Option<usize> {
        match self {
            Pairing::Local(n) => Some(n.len()),
            Pairing::Cluster { .. } => None,
        }
    }
}
