//! The hub's part in exec approvals: the gateway's approval events and its list (asked after
//! every (re)connection) go into the [`crate::approvals::Approvals`] book and out to every desktop;
//! a desktop's decision is checked against the book (the first answer wins; a late, second,
//! expired or not-allowed one gets a sentence back) and carried to `exec.approval.resolve`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracing::{info, warn};

use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest, ToDesktop};

use super::{Done, Hub};
use crate::gateway::approvals::{ApprovalEvent, REQUESTED, RESOLVED};
use crate::gateway::GatewayError;

/// Whether a gateway event is about exec approvals.
pub(super) fn is_approval_event(name: &str) -> bool {
    name == REQUESTED || name == RESOLVED
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Hub {
    pub(super) fn on_approval_event(&mut self, name: &str, payload: &Value) {
        let out = match ApprovalEvent::parse(name, payload) {
            Ok(Some(ApprovalEvent::Requested(a))) => {
                info!(id = %a.id, "an exec waits for a person's approval");
                self.approvals.requested(a)
            }
            Ok(Some(ApprovalEvent::Resolved { id, decision, by })) => {
                info!(%id, decision = decision.map_or("none", ApprovalDecision::as_str), "an exec approval was answered");
                self.approvals.resolved(&id, decision, by, now_ms())
            }
            Ok(None) => None,
            Err(error) => {
                warn!(%error, "a gateway approval event was skipped");
                None
            }
        };
        if let Some(m) = out {
            self.save_approvals();
            self.to_all(vec![m]);
        }
    }

    /// Keep the waiting approvals on disk (sealed), for the next run of the agent.
    fn save_approvals(&self) {
        if let Err(e) = self.state.save_approvals(&self.approvals.pending()) {
            warn!("cannot persist the waiting approvals: {e}");
        }
    }

    /// Ask the gateway which approvals wait (they survive the agent's disconnection).
    pub(super) fn backfill_approvals(&self) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let listed = gw.approvals().await;
            let _ = done.send(Done::ApprovalsListed(listed)).await;
        });
    }

    pub(super) fn on_approvals_listed(
        &mut self,
        listed: Result<Vec<ApprovalRequest>, GatewayError>,
    ) {
        match listed {
            Ok(list) => {
                let out = self.approvals.backfill(list);
                if !out.is_empty() {
                    info!(
                        waiting = self.approvals.len(),
                        "exec approvals backfilled from the gateway"
                    );
                    self.save_approvals();
                }
                self.to_all(out);
            }
            Err(error) => warn!(%error, "the gateway's waiting exec approvals could not be listed"),
        }
        // answers given while the gateway was away: pass on those whose approval still waits
        for (desktop, id, decision) in std::mem::take(&mut self.held_decisions) {
            match self.approvals.refusal(&id) {
                None => self.resolve_at_gateway(desktop, id, decision),
                Some(message) => {
                    self.approvals.decide_failed(&id);
                    self.to_one(&desktop, ToDesktop::ApprovalRefused { id, message });
                }
            }
        }
    }

    /// Approvals past their expiry end (the gateway denies them then).
    pub(super) fn expire_approvals(&mut self) {
        let out = self.approvals.expire(now_ms());
        if !out.is_empty() {
            self.save_approvals();
        }
        self.to_all(out);
    }

    pub(super) fn on_decision(&mut self, desktop: String, id: String, decision: ApprovalDecision) {
        let refuse = |hub: &Hub, id: String, message: String| {
            info!(%id, "a desktop's approval answer was refused: {message}");
            hub.to_one(&desktop, ToDesktop::ApprovalRefused { id, message });
        };
        if let Err(message) = self.approvals.decide(&desktop, &id, decision, now_ms()) {
            refuse(self, id, message);
            return;
        }
        info!(%id, decision = decision.as_str(), "a desktop answered an exec approval");
        if !self.gw.is_connected() {
            // held (as the answer on its way) until the gateway is back and its list says the
            // approval still waits
            info!(%id, "the gateway is away: the answer is held until it is back");
            self.held_decisions.push((desktop, id, decision));
            return;
        }
        self.resolve_at_gateway(desktop, id, decision);
    }

    fn resolve_at_gateway(&self, desktop: String, id: String, decision: ApprovalDecision) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let result = gw.resolve_approval(&id, decision).await;
            let _ = done
                .send(Done::ApprovalDecided {
                    desktop,
                    id,
                    result,
                })
                .await;
        });
    }

    pub(super) fn on_decided(&mut self, desktop: &str, id: &str, result: Result<(), GatewayError>) {
        if let Err(error) = result {
            // the `resolved` event may have come first (another answer, the expiry): then the
            // book already says so, and this answer gets that sentence
            self.approvals.decide_failed(id);
            let message = self
                .approvals
                .refusal(id)
                .unwrap_or_else(|| format!("the gateway did not take the answer: {error}"));
            warn!(%id, %error, "exec.approval.resolve failed");
            self.to_one(
                desktop,
                ToDesktop::ApprovalRefused {
                    id: id.to_owned(),
                    message,
                },
            );
        }
    }
}
