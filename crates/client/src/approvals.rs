//! The exec approvals waiting for this desktop's person, as the agent reports them: built from
//! `approval_requested` / `approval_resolved` / `approvals` chat events, pruned at each
//! approval's expiry. Pure; the tray host keeps one for its "needs you" icon and notifications,
//! the CLI one for `approvals`.

use clawtray_proto::chat::{ApprovalRequest, ToDesktop};

/// What an event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalChange {
    /// Nothing (not an approval event, or one already known).
    Nothing,
    /// A new approval waits.
    Added(Box<ApprovalRequest>),
    /// This approval no longer waits.
    Removed(String),
    /// The whole list was replaced (the agent's answer to `list_approvals`).
    Replaced,
}

/// The approvals waiting, oldest first.
#[derive(Debug, Default, Clone)]
pub struct ApprovalBook {
    pending: Vec<ApprovalRequest>,
}

impl ApprovalBook {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one message from the agent.
    pub fn apply(&mut self, msg: &ToDesktop) -> ApprovalChange {
        match msg {
            ToDesktop::ApprovalRequested { approval } => {
                if self.pending.iter().any(|a| a.id == approval.id) {
                    return ApprovalChange::Nothing;
                }
                self.pending.push((**approval).clone());
                self.pending.sort_by_key(|a| a.created_at_ms);
                ApprovalChange::Added(approval.clone())
            }
            ToDesktop::ApprovalResolved { id, .. } => self.remove(id),
            ToDesktop::Approvals { pending } => {
                self.pending.clone_from(pending);
                self.pending.sort_by_key(|a| a.created_at_ms);
                ApprovalChange::Replaced
            }
            _ => ApprovalChange::Nothing,
        }
    }

    fn remove(&mut self, id: &str) -> ApprovalChange {
        let before = self.pending.len();
        self.pending.retain(|a| a.id != id);
        if self.pending.len() == before {
            ApprovalChange::Nothing
        } else {
            ApprovalChange::Removed(id.to_owned())
        }
    }

    /// Drop approvals past their expiry; returns their ids.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|a| a.expires_at_ms <= now_ms);
        self.pending = kept;
        gone.into_iter().map(|a| a.id).collect()
    }

    /// The approvals waiting, oldest first.
    #[must_use]
    pub fn pending(&self) -> &[ApprovalRequest] {
        &self.pending
    }

    /// One of them, by id (or by a unique prefix of its id, as a person types it).
    #[must_use]
    pub fn find(&self, id: &str) -> Option<&ApprovalRequest> {
        if let Some(a) = self.pending.iter().find(|a| a.id == id) {
            return Some(a);
        }
        let mut matching = self.pending.iter().filter(|a| a.id.starts_with(id));
        match (matching.next(), matching.next()) {
            (Some(a), None) if !id.is_empty() => Some(a),
            _ => None,
        }
    }

    /// How many wait.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none wait.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawtray_proto::chat::ApprovalDecision;

    fn req(id: &str, created: u64) -> ApprovalRequest {
        ApprovalRequest {
            id: id.into(),
            command: "ls".into(),
            cwd: None,
            host: None,
            agent_id: None,
            session_key: None,
            warning: None,
            created_at_ms: created,
            expires_at_ms: created + 1000,
            allowed: vec![ApprovalDecision::AllowOnce, ApprovalDecision::Deny],
        }
    }

    fn requested(a: ApprovalRequest) -> ToDesktop {
        ToDesktop::ApprovalRequested {
            approval: Box::new(a),
        }
    }

    #[test]
    fn requests_add_once_resolutions_remove_a_list_replaces() {
        let mut b = ApprovalBook::new();
        assert!(matches!(
            b.apply(&requested(req("b", 20))),
            ApprovalChange::Added(_)
        ));
        assert!(matches!(
            b.apply(&requested(req("a", 10))),
            ApprovalChange::Added(_)
        ));
        assert_eq!(b.apply(&requested(req("a", 10))), ApprovalChange::Nothing);
        assert_eq!(
            b.pending()
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"],
            "oldest first"
        );
        let resolved = ToDesktop::ApprovalResolved {
            id: "a".into(),
            decision: None,
            by: None,
        };
        assert_eq!(b.apply(&resolved), ApprovalChange::Removed("a".into()));
        assert_eq!(b.apply(&resolved), ApprovalChange::Nothing);
        let list = ToDesktop::Approvals {
            pending: vec![req("c", 5)],
        };
        assert_eq!(b.apply(&list), ApprovalChange::Replaced);
        assert_eq!(b.len(), 1);
        assert_eq!(b.expire(1004), Vec::<String>::new());
        assert_eq!(b.expire(1005), vec!["c".to_owned()]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_approval_is_found_by_a_unique_prefix() {
        let mut b = ApprovalBook::new();
        b.apply(&requested(req("d36de82d-1", 1)));
        b.apply(&requested(req("d36de82d-2", 2)));
        b.apply(&requested(req("77aa", 3)));
        assert_eq!(b.find("77").map(|a| a.id.as_str()), Some("77aa"));
        assert!(b.find("d36").is_none(), "ambiguous");
        assert_eq!(
            b.find("d36de82d-2").map(|a| a.id.as_str()),
            Some("d36de82d-2")
        );
        assert!(b.find("").is_none());
    }
}
