//! Which node holds each end of a session: `node|conn` under the session's hash tag, written when
//! an end attaches and removed when it leaves (a node that dies leaves its entries behind; its
//! lapsed lease makes them count as gone). Attaching also reports the agent's instance changing,
//! so `peer_restarted` works when the two ends sit on different nodes.

use clawtray_proto::control::ErrorCode;
use clawtray_proto::Role;

use crate::cluster::{keys, scripts, Cluster};
use crate::peer::Loc;

fn role_char(role: Role) -> char {
    match role {
        Role::Agent => 'a',
        Role::Desktop => 'd',
    }
}

/// What attaching found in Redis.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Where this end was before (a connection to replace), if anywhere.
    pub previous: Option<Loc>,
    /// Where the other end is, if anywhere.
    pub peer: Option<Loc>,
    /// The agent came back as a different process.
    pub agent_restarted: bool,
}

impl Cluster {
    /// Record that `role`'s end of `session` is now `me`.
    pub async fn attach(
        &self,
        session: &str,
        role: Role,
        me: &Loc,
        instance: Option<&str>,
        ttl_secs: u64,
    ) -> Result<Found, ErrorCode> {
        let (previous, peer, restarted): (String, String, i64) = self
            .script(
                scripts::ATTACH
                    .key(keys::presence(session, role_char(role)))
                    .key(keys::presence(session, role_char(role.peer())))
                    .key(keys::instance(session))
                    .arg(me.encode())
                    .arg(instance.unwrap_or(""))
                    .arg(role_char(role).to_string())
                    .arg(ttl_secs),
            )
            .await?;
        Ok(Found {
            previous: Loc::parse(&previous),
            peer: Loc::parse(&peer),
            agent_restarted: restarted == 1,
        })
    }

    /// Record both ends of a session that pairing just made.
    pub async fn attach_both(
        &self,
        session: &str,
        agent: &Loc,
        instance: Option<&str>,
        desktop: &Loc,
        ttl_secs: u64,
    ) -> Result<(), ErrorCode> {
        let mut p = redis::pipe();
        p.cmd("SET")
            .arg(keys::presence(session, 'a'))
            .arg(agent.encode())
            .arg("EX")
            .arg(ttl_secs)
            .ignore()
            .cmd("SET")
            .arg(keys::presence(session, 'd'))
            .arg(desktop.encode())
            .arg("EX")
            .arg(ttl_secs)
            .ignore();
        if let Some(i) = instance {
            p.cmd("SET")
                .arg(keys::instance(session))
                .arg(i)
                .arg("EX")
                .arg(ttl_secs)
                .ignore();
        }
        self.pipe(&p).await
    }

    /// `me` left `role`'s end of `session`. `Ok(None)` if a newer connection had taken over
    /// (nothing to announce); `Ok(Some(peer))` with where the other end is otherwise.
    pub async fn detach(
        &self,
        session: &str,
        role: Role,
        me: &Loc,
    ) -> Result<Option<Option<Loc>>, ErrorCode> {
        let peer: Option<String> = self
            .script(
                scripts::DETACH
                    .key(keys::presence(session, role_char(role)))
                    .key(keys::presence(session, role_char(role.peer())))
                    .arg(me.encode()),
            )
            .await?;
        Ok(peer.map(|p| Loc::parse(&p)))
    }

    /// The session ended: forget where its ends are; returns where they were.
    pub async fn remove(&self, session: &str) -> Result<Vec<Loc>, ErrorCode> {
        let (a, d): (String, String) = self
            .script(
                scripts::REMOVE
                    .key(keys::presence(session, 'a'))
                    .key(keys::presence(session, 'd')),
            )
            .await?;
        Ok([a, d].iter().filter_map(|s| Loc::parse(s)).collect())
    }
}
