//! Every Redis key the cluster uses, in one place. A session's keys share the hash tag
//! `{s:<id>}` and a nameplate's `{np:<n>}`, so each lives in one Redis Cluster slot and its Lua
//! scripts touch one slot only. Each node's inbox stream has its own tag, so inboxes spread over
//! the cluster's masters.

/// Prefix of every key (so a Redis shared with other programs stays readable).
const PREFIX: &str = "ct";

/// A session's record: token hashes and times.
#[must_use]
pub fn session(id: &str) -> String {
    format!("{PREFIX}:{{s:{id}}}")
}

/// Where the session's `role` end is connected (`a` agent, `d` desktop): `node|conn`.
#[must_use]
pub fn presence(id: &str, role: char) -> String {
    format!("{PREFIX}:{{s:{id}}}:{role}")
}

/// The agent's last process instance, to tell a restart from a reconnect.
#[must_use]
pub fn instance(id: &str) -> String {
    format!("{PREFIX}:{{s:{id}}}:i")
}

/// A live nameplate.
#[must_use]
pub fn nameplate(n: &str) -> String {
    format!("{PREFIX}:{{np:{n}}}")
}

/// A recently expired nameplate (for the "expired" answer).
#[must_use]
pub fn nameplate_tombstone(n: &str) -> String {
    format!("{PREFIX}:{{np:{n}}}:x")
}

/// A node's inbox: frames and notes for its connections, from the other nodes.
#[must_use]
pub fn inbox(node: &str) -> String {
    format!("{PREFIX}:{{n:{node}}}:in")
}

/// Live nodes: a sorted set of node ids scored by when their lease ends (Unix ms).
#[must_use]
pub fn nodes() -> String {
    format!("{PREFIX}:nodes")
}

/// Pairing attempts from one address (bucket) in one minute, counted across the cluster.
#[must_use]
pub fn pairing_attempts(ip_bucket: &str, minute: u64) -> String {
    format!("{PREFIX}:pl:{ip_bucket}:{minute}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of a key Redis Cluster hashes.
    fn tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open..].find('}').unwrap() + open;
        &key[open + 1..close]
    }

    #[test]
    fn a_sessions_keys_share_one_slot_and_nameplates_theirs() {
        let id = "AAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(tag(&session(id)), tag(&presence(id, 'a')));
        assert_eq!(tag(&session(id)), tag(&presence(id, 'd')));
        assert_eq!(tag(&session(id)), tag(&instance(id)));
        assert_eq!(
            tag(&nameplate("12345678")),
            tag(&nameplate_tombstone("12345678"))
        );
        assert_ne!(tag(&inbox("a")), tag(&inbox("b")));
    }
}
