//! The exec approvals the agent holds for its desktops, as a pure book: what waits (from the
//! gateway's events and its `exec.approval.list` backfill), what was answered and how (so a late
//! or second answer gets a sentence, not silence), and which answer is on its way to the gateway
//! (the first answer wins). Fed the gateway's approvals and the desktops' decisions; returns the
//! messages for desktops. No I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};

use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest, ToDesktop};

/// Answered approvals remembered for late answers.
const REMEMBERED: usize = 256;
/// A `deny` this close to an approval's expiry, with no desktop's deny on its way, is the
/// gateway's timeout.
const EXPIRY_SLACK_MS: u64 = 2_000;

/// How an approval ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ended {
    decision: Option<ApprovalDecision>,
    by: Option<String>,
}

/// The book.
#[derive(Debug, Default)]
pub struct Approvals {
    /// Waiting, by id.
    pending: BTreeMap<String, ApprovalRequest>,
    /// An answer on its way to the gateway: id → (desktop, decision).
    deciding: HashMap<String, (String, ApprovalDecision)>,
    /// Recently ended, oldest first.
    ended: VecDeque<(String, Ended)>,
}

impl Approvals {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A book holding `pending` (what a previous run of the agent kept): announced to nobody
    /// again until the gateway's list says what became of them.
    #[must_use]
    pub fn restore(pending: Vec<ApprovalRequest>) -> Self {
        Self {
            pending: pending.into_iter().map(|a| (a.id.clone(), a)).collect(),
            ..Self::default()
        }
    }

    /// The approvals waiting, oldest first.
    #[must_use]
    pub fn pending(&self) -> Vec<ApprovalRequest> {
        let mut v: Vec<ApprovalRequest> = self.pending.values().cloned().collect();
        v.sort_by_key(|a| (a.created_at_ms, a.id.clone()));
        v
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

    /// A new approval: the message for desktops, unless it is already known (or already over).
    pub fn requested(&mut self, a: ApprovalRequest) -> Option<ToDesktop> {
        if self.pending.contains_key(&a.id) || self.ended(&a.id).is_some() {
            return None;
        }
        self.pending.insert(a.id.clone(), a.clone());
        Some(ToDesktop::ApprovalRequested {
            approval: Box::new(a),
        })
    }

    /// An approval was answered (anywhere) or went away: the message for desktops, once. The
    /// gateway ends an expired approval as a `deny` at its expiry; that is shown as expired.
    pub fn resolved(
        &mut self,
        id: &str,
        decision: Option<ApprovalDecision>,
        by: Option<String>,
        now_ms: u64,
    ) -> Option<ToDesktop> {
        let answering = self.deciding.remove(id);
        let was = self.pending.remove(id);
        let expired = was.as_ref().is_some_and(|a| {
            decision == Some(ApprovalDecision::Deny)
                && now_ms.saturating_add(EXPIRY_SLACK_MS) >= a.expires_at_ms
                && answering.is_none_or(|(_, d)| d != ApprovalDecision::Deny)
        });
        let (decision, by) = if expired {
            (None, Some("expiry".to_owned()))
        } else {
            (decision, by)
        };
        let was_waiting = was.is_some();
        if self.ended(id).is_some() {
            return None;
        }
        self.remember(id, decision, by.clone());
        was_waiting.then(|| ToDesktop::ApprovalResolved {
            id: id.to_owned(),
            decision,
            by,
        })
    }

    /// The gateway's list after a (re)connection: new approvals are announced, and those held
    /// here that the gateway no longer lists are over (answered or expired while the agent was
    /// away).
    pub fn backfill(&mut self, listed: Vec<ApprovalRequest>) -> Vec<ToDesktop> {
        let ids: std::collections::HashSet<String> = listed.iter().map(|a| a.id.clone()).collect();
        let gone: Vec<String> = self
            .pending
            .keys()
            .filter(|id| !ids.contains(*id))
            .cloned()
            .collect();
        let mut out: Vec<ToDesktop> = gone
            .iter()
            .filter_map(|id| self.resolved(id, None, None, 0))
            .collect();
        out.extend(listed.into_iter().filter_map(|a| self.requested(a)));
        out
    }

    /// Approvals past their expiry are over (the gateway denies them then): the messages.
    pub fn expire(&mut self, now_ms: u64) -> Vec<ToDesktop> {
        let over: Vec<String> = self
            .pending
            .values()
            .filter(|a| a.expires_at_ms <= now_ms)
            .map(|a| a.id.clone())
            .collect();
        over.iter()
            .filter_map(|id| self.resolved(id, None, Some("expiry".into()), now_ms))
            .collect()
    }

    /// A desktop's answer: `Ok` when it goes to the gateway (it is then the answer on its way),
    /// or the sentence that desktop gets back.
    ///
    /// # Errors
    /// Why the answer is not taken: too late, second, expired, or not allowed.
    pub fn decide(
        &mut self,
        desktop: &str,
        id: &str,
        decision: ApprovalDecision,
        now_ms: u64,
    ) -> Result<(), String> {
        let Some(a) = self.pending.get(id) else {
            return Err(self
                .refusal(id)
                .unwrap_or_else(|| "no approval is waiting with that id".into()));
        };
        if a.expires_at_ms <= now_ms {
            return Err(
                "that approval expired before the answer arrived; the command did not run".into(),
            );
        }
        if !a.allowed.contains(&decision) {
            let offered: Vec<&str> = a.allowed.iter().map(|d| d.as_str()).collect();
            return Err(format!(
                "the gateway's policy does not allow {} for this command; it allows {}",
                decision.as_str(),
                offered.join(" or ")
            ));
        }
        if let Some((other, d)) = self.deciding.get(id) {
            return Err(if other == desktop && *d == decision {
                "that answer is already on its way".into()
            } else {
                format!("another answer ({}) reached the agent first", d.as_str())
            });
        }
        self.deciding
            .insert(id.to_owned(), (desktop.to_owned(), decision));
        Ok(())
    }

    /// Why an answer to `id` cannot be taken any more, when it is not waiting: answered (how,
    /// by whom), expired, or unknown.
    #[must_use]
    pub fn refusal(&self, id: &str) -> Option<String> {
        if self.pending.contains_key(id) {
            return None;
        }
        Some(match self.ended(id) {
            Some(Ended {
                decision: Some(d),
                by,
            }) => format!(
                "that approval was already answered ({}{})",
                d.as_str(),
                by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default()
            ),
            Some(Ended { decision: None, .. }) => {
                "that approval expired before the answer arrived; the command did not run".into()
            }
            None => "no approval is waiting with that id (it may have expired, or been answered while the agent restarted)".into(),
        })
    }

    /// The gateway refused the answer on its way (or could not be asked): others may answer.
    pub fn decide_failed(&mut self, id: &str) {
        self.deciding.remove(id);
    }

    fn ended(&self, id: &str) -> Option<&Ended> {
        self.ended.iter().find(|(i, _)| i == id).map(|(_, e)| e)
    }

    fn remember(&mut self, id: &str, decision: Option<ApprovalDecision>, by: Option<String>) {
        self.ended
            .push_back((id.to_owned(), Ended { decision, by }));
        while self.ended.len() > REMEMBERED {
            self.ended.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, expires: u64) -> ApprovalRequest {
        ApprovalRequest {
            id: id.into(),
            command: "ls".into(),
            cwd: None,
            host: None,
            agent_id: None,
            session_key: None,
            warning: None,
            created_at_ms: 1,
            expires_at_ms: expires,
            allowed: vec![ApprovalDecision::AllowOnce, ApprovalDecision::Deny],
        }
    }

    #[test]
    fn a_request_is_announced_once_and_its_resolution_once() {
        let mut b = Approvals::new();
        assert!(b.requested(req("a", 100_000)).is_some());
        assert!(b.requested(req("a", 100_000)).is_none(), "a second event");
        assert_eq!(b.len(), 1);
        assert_eq!(
            b.resolved("a", Some(ApprovalDecision::Deny), Some("desk".into()), 10),
            Some(ToDesktop::ApprovalResolved {
                id: "a".into(),
                decision: Some(ApprovalDecision::Deny),
                by: Some("desk".into())
            })
        );
        assert!(b
            .resolved("a", Some(ApprovalDecision::Deny), None, 10)
            .is_none());
        assert!(
            b.requested(req("a", 100_000)).is_none(),
            "an old list entry"
        );
        assert!(b.is_empty());
    }

    #[test]
    fn the_first_answer_wins_and_every_other_gets_a_sentence() {
        let mut b = Approvals::new();
        b.requested(req("a", 100));
        assert_eq!(b.decide("d1", "a", ApprovalDecision::AllowOnce, 10), Ok(()));
        let second = b.decide("d2", "a", ApprovalDecision::Deny, 11).unwrap_err();
        assert!(second.contains("reached the agent first"), "{second}");
        let again = b
            .decide("d1", "a", ApprovalDecision::AllowOnce, 11)
            .unwrap_err();
        assert!(again.contains("already on its way"), "{again}");
        b.resolved(
            "a",
            Some(ApprovalDecision::AllowOnce),
            Some("d1".into()),
            11,
        );
        let late = b.decide("d2", "a", ApprovalDecision::Deny, 12).unwrap_err();
        assert!(
            late.contains("already answered (allow-once by d1)"),
            "{late}"
        );
        let unknown = b
            .decide("d2", "zz", ApprovalDecision::Deny, 12)
            .unwrap_err();
        assert!(unknown.contains("no approval is waiting"), "{unknown}");
    }

    #[test]
    fn expired_and_not_allowed_answers_are_refused_with_a_sentence() {
        let mut b = Approvals::new();
        b.requested(req("a", 100));
        let e = b
            .decide("d", "a", ApprovalDecision::AllowAlways, 10)
            .unwrap_err();
        assert!(
            e.contains("does not allow allow-always") && e.contains("allow-once or deny"),
            "{e}"
        );
        let e = b
            .decide("d", "a", ApprovalDecision::AllowOnce, 100)
            .unwrap_err();
        assert!(e.contains("expired"), "{e}");
        assert_eq!(b.expire(100).len(), 1);
        let e = b
            .decide("d", "a", ApprovalDecision::AllowOnce, 101)
            .unwrap_err();
        assert!(e.contains("expired"), "{e}");
        // a refused answer on its way lets another desktop answer
        b.requested(req("b", 1000));
        b.decide("d1", "b", ApprovalDecision::Deny, 10).unwrap();
        b.decide_failed("b");
        assert_eq!(b.decide("d2", "b", ApprovalDecision::Deny, 10), Ok(()));
    }

    #[test]
    fn the_gateways_deny_at_the_expiry_is_shown_as_expired() {
        let mut b = Approvals::new();
        b.requested(req("a", 10_000));
        let m = b.resolved("a", Some(ApprovalDecision::Deny), None, 10_050);
        assert_eq!(
            m,
            Some(ToDesktop::ApprovalResolved {
                id: "a".into(),
                decision: None,
                by: Some("expiry".into())
            })
        );
        let e = b
            .decide("d", "a", ApprovalDecision::AllowOnce, 10_100)
            .unwrap_err();
        assert!(e.contains("expired"), "{e}");
        // a person's deny well before the expiry is a deny
        b.requested(req("b", 100_000));
        b.decide("d", "b", ApprovalDecision::Deny, 99_500).unwrap();
        let m = b.resolved("b", Some(ApprovalDecision::Deny), None, 99_600);
        assert!(matches!(
            m,
            Some(ToDesktop::ApprovalResolved {
                decision: Some(ApprovalDecision::Deny),
                ..
            })
        ));
    }

    #[test]
    fn a_restored_book_ends_what_was_answered_while_the_agent_was_down() {
        // the agent answered, was killed before the gateway's `resolved` reached it, and the
        // next one starts from what the last one kept
        let mut b = Approvals::restore(vec![req("a", 100_000), req("b", 100_000)]);
        let out = b.backfill(vec![req("b", 100_000)]);
        assert_eq!(
            out,
            vec![ToDesktop::ApprovalResolved {
                id: "a".into(),
                decision: None,
                by: None
            }],
            "a ended meanwhile; b still waits and is not announced twice"
        );
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_backfill_announces_the_new_and_ends_the_gone() {
        let mut b = Approvals::new();
        b.requested(req("old", 100));
        let out = b.backfill(vec![req("new", 100)]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            matches!(&out[0], ToDesktop::ApprovalResolved { id, decision: None, .. } if id == "old")
        );
        assert!(
            matches!(&out[1], ToDesktop::ApprovalRequested { approval } if approval.id == "new")
        );
        assert!(b.backfill(vec![req("new", 100)]).is_empty(), "nothing new");
        assert_eq!(b.pending().len(), 1);
    }
}
