//! Nameplates in Redis, so an agent that claims on one node and a desktop that joins on another
//! pair as on one relay: the one attempt per nameplate, burning, expiry and the "both confirmed"
//! moment are Lua scripts (atomic across the cluster); the per-address pairing limit is a counter
//! per address and minute that every node increments.

use std::net::IpAddr;
use std::time::Duration;

use clawtray_proto::control::ErrorCode;

use crate::cluster::{keys, scripts, Cluster};
use crate::limits::ip_bucket;
use crate::peer::Loc;

/// Both ends confirmed, as Redis saw it.
#[derive(Debug)]
pub struct BothConfirmed {
    pub agent: Loc,
    pub agent_instance: Option<String>,
    pub desktop: Loc,
    pub agent_hash: [u8; 32],
    pub desktop_hash: [u8; 32],
}

/// A confirmation's outcome.
#[derive(Debug)]
pub enum Confirmed {
    /// No linked pairing under that nameplate (any more).
    Gone,
    /// The other end has not confirmed yet.
    Waiting,
    /// Both have: the nameplate is consumed.
    Both(BothConfirmed),
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn hash_of(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text).ok()?.try_into().ok()
}

impl Cluster {
    /// Take `nameplate` for the agent at `me` if no one holds it. False if taken.
    pub async fn claim_nameplate(
        &self,
        nameplate: &str,
        me: &Loc,
        instance: Option<&str>,
        ttl: Duration,
    ) -> Result<bool, ErrorCode> {
        let n: i64 = self
            .script(
                scripts::CLAIM
                    .key(keys::nameplate(nameplate))
                    .arg(me.encode())
                    .arg(instance.unwrap_or(""))
                    .arg(ms(ttl)),
            )
            .await?;
        Ok(n == 1)
    }

    /// Join `nameplate` as the desktop at `me`; the agent's location, or why not.
    pub async fn join_nameplate(
        &self,
        nameplate: &str,
        me: &Loc,
        linked_ttl: Duration,
    ) -> Result<Loc, ErrorCode> {
        let reply: Vec<String> = self
            .script(
                scripts::JOIN
                    .key(keys::nameplate(nameplate))
                    .key(keys::nameplate_tombstone(nameplate))
                    .arg(me.encode())
                    .arg(ms(linked_ttl)),
            )
            .await?;
        match reply.as_slice() {
            [ok, agent] if ok == "ok" => Loc::parse(agent).ok_or(ErrorCode::NameplateUnknown),
            [expired] if expired == "expired" => Err(ErrorCode::NameplateExpired),
            _ => Err(ErrorCode::NameplateUnknown),
        }
    }

    /// The end `role` (`'a'` / `'d'`) confirmed; `hash` is the SHA-256 of the token it will get.
    pub async fn confirm_nameplate(
        &self,
        nameplate: &str,
        role: char,
        hash: &[u8; 32],
    ) -> Result<Confirmed, ErrorCode> {
        let reply: Vec<String> = self
            .script(
                scripts::CONFIRM
                    .key(keys::nameplate(nameplate))
                    .arg(role.to_string())
                    .arg(hex::encode(hash)),
            )
            .await?;
        Ok(match reply.as_slice() {
            [w] if w == "waiting" => Confirmed::Waiting,
            [both, agent, instance, desktop, ha, hd] if both == "both" => {
                let parsed = (
                    Loc::parse(agent),
                    Loc::parse(desktop),
                    hash_of(ha),
                    hash_of(hd),
                );
                let (Some(agent), Some(desktop), Some(agent_hash), Some(desktop_hash)) = parsed
                else {
                    return Err(ErrorCode::Internal);
                };
                Confirmed::Both(BothConfirmed {
                    agent,
                    agent_instance: (!instance.is_empty()).then(|| instance.clone()),
                    desktop,
                    agent_hash,
                    desktop_hash,
                })
            }
            _ => Confirmed::Gone,
        })
    }

    /// Burn a nameplate (a failed or abandoned attempt). True if it was live.
    pub async fn burn_nameplate(&self, nameplate: &str) -> Result<bool, ErrorCode> {
        let n: i64 = self
            .query(redis::cmd("DEL").arg(keys::nameplate(nameplate)))
            .await?;
        Ok(n > 0)
    }

    /// The agent at `me`'s nameplate ran out unused: forget it, remember it expired.
    pub async fn expire_nameplate(
        &self,
        nameplate: &str,
        me: &Loc,
        ttl: Duration,
    ) -> Result<(), ErrorCode> {
        let _: i64 = self
            .script(
                scripts::EXPIRE
                    .key(keys::nameplate(nameplate))
                    .key(keys::nameplate_tombstone(nameplate))
                    .arg(me.encode())
                    .arg(ms(ttl)),
            )
            .await?;
        Ok(())
    }

    /// Count one pairing attempt from `ip` across the cluster; false once the address has made
    /// more than `per_minute` this minute.
    pub async fn pairing_allowed(&self, ip: IpAddr, per_minute: u32) -> Result<bool, ErrorCode> {
        let minute = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / 60)
            .unwrap_or(0);
        let key = keys::pairing_attempts(&ip_bucket(ip).to_string(), minute);
        let (n,): (u64,) = self
            .pipe(redis::pipe().incr(&key, 1).expire(&key, 120).ignore())
            .await?;
        Ok(n <= u64::from(per_minute))
    }
}
