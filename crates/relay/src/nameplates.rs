//! Live nameplates: handed to agents that `claim`, joined by one desktop, burned by any failure.
//!
//! A nameplate is unique among live ones, lives `ttl`, and allows exactly one pairing attempt:
//! once a desktop has joined, no other can; if the attempt fails or is abandoned the nameplate is
//! gone and the agent must claim a new one. Recently expired nameplates are remembered for a while
//! so a late desktop hears "expired" rather than "unknown".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clawtray_proto::control::ErrorCode;
use clawtray_proto::Role;

use crate::peer::PeerHandle;

/// Digits of the shortest nameplates: 8, so that live nameplates cannot be found by guessing
/// (about 9 × 10^7 numbers; at the per-address pairing limit of 30 a minute, one address needs
/// weeks to hit one of a thousand live nameplates — and a hit only burns it, it never pairs).
const MIN_DIGITS: u32 = 8;
/// Digits of the longest nameplates (the code parser accepts up to 8).
const MAX_DIGITS: u32 = 8;
/// Random tries per length before moving to a longer nameplate.
const TRIES_PER_LENGTH: usize = 16;
/// Expired nameplates remembered (for the "expired" answer) at most.
const MAX_TOMBSTONES: usize = 10_000;

/// Tries at a free nameplate before giving up (`TOO_MANY_CONNECTIONS`).
pub const CLAIM_TRIES: usize = TRIES_PER_LENGTH * (MAX_DIGITS - MIN_DIGITS + 1) as usize;

/// A nameplate candidate of `digits` digits (no leading zero) from `random`.
pub fn random_nameplate(digits: u32, random: &mut impl FnMut() -> u64) -> String {
    let low = 10u64.pow(digits - 1);
    let span = 10u64.pow(digits) - low;
    (low + random() % span).to_string()
}

/// A nameplate candidate of the usual length.
pub fn random_nameplate_of_usual_length(random: &mut impl FnMut() -> u64) -> String {
    random_nameplate(MIN_DIGITS, random)
}

#[derive(Debug)]
struct Slot {
    agent: PeerHandle,
    agent_instance: Option<String>,
    desktop: Option<PeerHandle>,
    expires_at: Instant,
    /// SHA-256 of the device token each end will get, once it confirmed.
    agent_hash: Option<[u8; 32]>,
    desktop_hash: Option<[u8; 32]>,
}

/// The outcome of a side confirming.
#[derive(Debug)]
pub enum Confirmation {
    /// The other side has not confirmed yet.
    Waiting,
    /// Both confirmed: the nameplate is consumed; create the session for these two.
    Both {
        agent: PeerHandle,
        agent_instance: Option<String>,
        desktop: PeerHandle,
        agent_hash: [u8; 32],
        desktop_hash: [u8; 32],
    },
}

/// The table of live nameplates.
#[derive(Debug)]
pub struct Nameplates {
    ttl: Duration,
    live: Mutex<HashMap<String, Slot>>,
    expired: Mutex<HashMap<String, Instant>>,
}

impl Nameplates {
    /// Nameplates that live `ttl`.
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            live: Mutex::new(HashMap::new()),
            expired: Mutex::new(HashMap::new()),
        }
    }

    /// How long a nameplate lives.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hand out a fresh nameplate to `agent`. `random` supplies random numbers (the OS RNG in
    /// production).
    pub fn claim(
        &self,
        agent: PeerHandle,
        agent_instance: Option<String>,
        now: Instant,
        mut random: impl FnMut() -> u64,
    ) -> Option<String> {
        let mut live = self.live();
        live.retain(|_, s| s.expires_at > now || s.desktop.is_some());
        for digits in MIN_DIGITS..=MAX_DIGITS {
            for _ in 0..TRIES_PER_LENGTH {
                let np = random_nameplate(digits, &mut random);
                if !live.contains_key(&np) {
                    live.insert(
                        np.clone(),
                        Slot {
                            agent,
                            agent_instance,
                            desktop: None,
                            expires_at: now + self.ttl,
                            agent_hash: None,
                            desktop_hash: None,
                        },
                    );
                    return Some(np);
                }
            }
        }
        None
    }

    /// Link `desktop` to the agent waiting on `nameplate`; returns the agent's handle.
    pub fn join(
        &self,
        nameplate: &str,
        desktop: PeerHandle,
        now: Instant,
    ) -> Result<PeerHandle, ErrorCode> {
        let mut live = self.live();
        let Some(slot) = live.get_mut(nameplate) else {
            drop(live);
            let expired = self
                .expired
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return Err(if expired.contains_key(nameplate) {
                ErrorCode::NameplateExpired
            } else {
                ErrorCode::NameplateUnknown
            });
        };
        if slot.expires_at <= now {
            live.remove(nameplate);
            drop(live);
            self.remember_expired(nameplate, now);
            return Err(ErrorCode::NameplateExpired);
        }
        if slot.desktop.is_some() {
            // one attempt per nameplate
            return Err(ErrorCode::NameplateUnknown);
        }
        slot.desktop = Some(desktop);
        Ok(slot.agent.clone())
    }

    /// The other side of a linked nameplate.
    #[must_use]
    pub fn partner(&self, nameplate: &str, me: Role) -> Option<PeerHandle> {
        let live = self.live();
        let slot = live.get(nameplate)?;
        match me {
            Role::Agent => slot.desktop.clone(),
            Role::Desktop => Some(slot.agent.clone()),
        }
    }

    /// Record that `role` confirmed the key on a linked nameplate; `hash` is the SHA-256 of the
    /// device token that end will get.
    pub fn confirm(&self, nameplate: &str, role: Role, hash: [u8; 32]) -> Option<Confirmation> {
        let mut live = self.live();
        let slot = live.get_mut(nameplate)?;
        slot.desktop.as_ref()?;
        match role {
            Role::Agent => slot.agent_hash = Some(hash),
            Role::Desktop => slot.desktop_hash = Some(hash),
        }
        let (Some(agent_hash), Some(desktop_hash)) = (slot.agent_hash, slot.desktop_hash) else {
            return Some(Confirmation::Waiting);
        };
        let slot = live.remove(nameplate)?;
        Some(Confirmation::Both {
            agent: slot.agent,
            agent_instance: slot.agent_instance,
            desktop: slot.desktop?,
            agent_hash,
            desktop_hash,
        })
    }

    /// Burn a nameplate (failed or abandoned attempt). Returns the handles that were on it.
    pub fn burn(&self, nameplate: &str) -> Vec<PeerHandle> {
        self.live()
            .remove(nameplate)
            .map(|s| std::iter::once(s.agent).chain(s.desktop).collect())
            .unwrap_or_default()
    }

    /// The agent's nameplate ran out unused: forget it, but remember it expired.
    pub fn expire(&self, nameplate: &str, conn_id: u64, now: Instant) {
        let mut live = self.live();
        let unused = live
            .get(nameplate)
            .is_some_and(|s| s.agent.conn_id == conn_id && s.desktop.is_none());
        if unused {
            live.remove(nameplate);
            drop(live);
            self.remember_expired(nameplate, now);
        }
    }

    fn remember_expired(&self, nameplate: &str, now: Instant) {
        let mut t = self
            .expired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ttl = self.ttl;
        if t.len() >= MAX_TOMBSTONES {
            t.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        }
        if t.len() < MAX_TOMBSTONES {
            t.insert(nameplate.to_owned(), now);
        }
    }

    /// Live nameplates (for metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.live().len()
    }

    /// No live nameplates.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::channel;

    fn handle(id: u64) -> PeerHandle {
        let (h, mb) = channel(id, 4, 1024);
        std::mem::forget(mb);
        h
    }

    #[test]
    fn one_attempt_per_nameplate() {
        let n = Nameplates::new(Duration::from_secs(600));
        let t = Instant::now();
        let np = n.claim(handle(1), None, t, || 42).unwrap();
        assert_eq!(np.len(), 8, "too long to find live ones by guessing");
        assert_eq!(n.join(&np, handle(2), t).map(|h| h.conn_id), Ok(1));
        assert_eq!(
            n.join(&np, handle(3), t).err(),
            Some(ErrorCode::NameplateUnknown)
        );
        assert!(matches!(
            n.confirm(&np, Role::Agent, [1; 32]),
            Some(Confirmation::Waiting)
        ));
        assert!(matches!(
            n.confirm(&np, Role::Desktop, [2; 32]),
            Some(Confirmation::Both { .. })
        ));
        assert_eq!(
            n.join(&np, handle(4), t).err(),
            Some(ErrorCode::NameplateUnknown)
        );
    }

    #[test]
    fn nameplates_are_unique() {
        let n = Nameplates::new(Duration::from_secs(600));
        let t = Instant::now();
        let mut r = 7u64;
        let a = n.claim(handle(1), None, t, || 7).unwrap();
        let b = n
            .claim(handle(2), None, t, || {
                r += 1;
                r
            })
            .unwrap();
        assert_ne!(a, b);
        // a random source that only ever repeats a live number finds no free one: refused, not reused
        assert_eq!(n.claim(handle(3), None, t, || 7), None);
    }

    #[test]
    fn expired_nameplates_say_so() {
        let n = Nameplates::new(Duration::from_secs(1));
        let t = Instant::now();
        let np = n.claim(handle(1), None, t, || 1).unwrap();
        assert_eq!(
            n.join(&np, handle(2), t + Duration::from_secs(2)).err(),
            Some(ErrorCode::NameplateExpired)
        );
        let np2 = n.claim(handle(3), None, t, || 2).unwrap();
        n.expire(&np2, 3, t + Duration::from_secs(2));
        assert_eq!(
            n.join(&np2, handle(4), t).err(),
            Some(ErrorCode::NameplateExpired)
        );
        assert_eq!(
            n.join("9999", handle(5), t).err(),
            Some(ErrorCode::NameplateUnknown)
        );
    }

    #[test]
    fn burning_returns_both_sides() {
        let n = Nameplates::new(Duration::from_secs(600));
        let t = Instant::now();
        let np = n.claim(handle(1), None, t, || 3).unwrap();
        n.join(&np, handle(2), t).unwrap();
        assert_eq!(n.burn(&np).len(), 2);
        assert!(n.is_empty());
    }
}
