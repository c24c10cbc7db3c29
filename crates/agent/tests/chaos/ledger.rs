//! What was sent and what the desktop saw, and the verdict: every message sent answered exactly
//! once, in order, with the full text the fake model produced; every exec approval the desktop
//! was asked resolved exactly once (none lost, none answered twice).

use std::collections::HashMap;
use std::time::Instant;

use clawtray_client::{ClientEvent, ConnectionState};
use clawtray_proto::chat::{ApprovalDecision, ToDesktop};

/// One chat message the test sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub text: String,
    pub expected: String,
    /// An exec message: the command runs once allowed, or the gateway denies it when no
    /// approver was online as it started (an agent killed at that moment) — then the reply
    /// starts with this prefix and reports an "exec denied".
    pub denied: Option<String>,
}

impl Sent {
    /// Whether `reply` is the gateway's denial of this exec message.
    pub fn is_denial(&self, reply: &str) -> bool {
        self.denied.as_ref().is_some_and(|prefix| {
            reply.starts_with(prefix.as_str()) && reply.to_lowercase().contains("exec denied")
        })
    }
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// Messages the desktop accepted (its `send` returned an id), in order.
    pub sent: Vec<Sent>,
    /// Sends cut short by a desktop kill: text → expected reply. They count as sent if the
    /// restarted desktop still has them queued; otherwise they must never be answered.
    pub maybe: Vec<(String, String, Option<String>)>,
    /// run id → every reply text seen for it, and the order runs were first answered in.
    pub replies: HashMap<String, Vec<String>>,
    pub answer_order: Vec<String>,
    /// Run errors and aborts (none are expected: no gateway faults, no stops).
    pub run_errors: Vec<(String, String)>,
    pub aborted: Vec<String>,
    pub deltas: u64,
    pub notices: u64,
    /// What the agent said went wrong outside a run (a refused message, …); "kept" notes are fine.
    pub agent_errors: Vec<String>,
    /// Times the desktop gave up on its pairing (never acceptable: faults are not attacks).
    pub pairing_lost: Vec<String>,
    /// Exec approvals the desktop was asked, in first-seen order, and how often each was shown.
    pub approvals: Vec<String>,
    pub approval_shown: HashMap<String, u32>,
    /// approval id → every resolution shown for it.
    pub resolutions: HashMap<String, Vec<Option<ApprovalDecision>>>,
    /// Answers the agent refused, with its sentence.
    pub refused: Vec<(String, String)>,
    /// When the test last answered each approval.
    pub answered_at: HashMap<String, Instant>,
}

impl Ledger {
    pub fn apply(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Chat { message } => match message {
                ToDesktop::ChatReply { run_id, text, .. } => {
                    let seen = self.replies.entry(run_id.clone()).or_default();
                    if seen.is_empty() {
                        self.answer_order.push(run_id);
                    }
                    seen.push(text);
                }
                ToDesktop::ChatDelta { .. } => self.deltas += 1,
                ToDesktop::ChatAborted { run_id, .. } => self.aborted.push(run_id),
                ToDesktop::ChatError {
                    run_id: Some(run_id),
                    message,
                    ..
                } => self.run_errors.push((run_id, message)),
                ToDesktop::ChatError {
                    run_id: None,
                    message,
                    ..
                } if !message.contains("is kept") => self.agent_errors.push(message),
                ToDesktop::ApprovalRequested { approval } => {
                    let n = self.approval_shown.entry(approval.id.clone()).or_default();
                    if *n == 0 {
                        self.approvals.push(approval.id);
                    }
                    *n += 1;
                }
                ToDesktop::ApprovalResolved { id, decision, .. } => {
                    self.resolutions.entry(id).or_default().push(decision)
                }
                ToDesktop::ApprovalRefused { id, message } => {
                    // the agent could not pass it on now: the test answers again later
                    if message.contains("cannot reach its OpenClaw gateway") {
                        self.answered_at.remove(&id);
                    }
                    self.refused.push((id, message));
                }
                _ => {}
            },
            ClientEvent::Notice { .. } => self.notices += 1,
            ClientEvent::State {
                state: ConnectionState::NeedsRepairing { reason },
            } => self.pairing_lost.push(reason),
            _ => {}
        }
    }

    /// A maybe-sent message the restarted desktop still had queued: it was sent after all.
    pub fn resolve_maybe(&mut self, queued: &[(String, String)]) {
        let maybe = std::mem::take(&mut self.maybe);
        for (text, expected, denied) in maybe {
            match queued.iter().find(|(_, t)| *t == text) {
                Some((id, _)) => self.sent.push(Sent {
                    id: id.clone(),
                    text,
                    expected,
                    denied,
                }),
                None => self.maybe.push((text, expected, denied)),
            }
        }
    }

    /// Approvals to answer now: shown, not resolved, not answered in the last 30 s (an answer
    /// is kept in the outbox and delivered once; a second one is refused by the agent, which
    /// is part of what the run checks).
    pub fn to_answer(&self) -> Vec<String> {
        self.approvals
            .iter()
            .filter(|id| !self.resolutions.contains_key(*id))
            .filter(|id| {
                self.answered_at
                    .get(*id)
                    .is_none_or(|t| t.elapsed().as_secs() >= 30)
            })
            .cloned()
            .collect()
    }

    /// Messages not answered yet.
    pub fn unanswered(&self) -> usize {
        self.sent
            .iter()
            .filter(|s| !self.replies.contains_key(&s.id))
            .count()
    }

    /// Everything wrong, counted: (lost, doubled, wrong text, out of order, strays).
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict::default();
        for s in &self.sent {
            match self.replies.get(&s.id).map(Vec::as_slice) {
                None | Some([]) => {
                    v.lost += 1;
                    v.problems.push(format!("lost: {} ({})", s.id, s.text));
                }
                Some(texts) => {
                    if texts.len() > 1 {
                        v.doubled += 1;
                        v.problems
                            .push(format!("doubled ×{}: {} ({})", texts.len(), s.id, s.text));
                    }
                    if texts.iter().any(|t| *t != s.expected && !s.is_denial(t)) {
                        v.damaged += 1;
                        v.problems.push(format!(
                            "damaged: {} got {:?}, want {:?}",
                            s.id, texts, s.expected
                        ));
                    }
                }
            }
        }
        let order: Vec<&String> = self.sent.iter().map(|s| &s.id).collect();
        let answered: Vec<&String> = self
            .answer_order
            .iter()
            .filter(|r| order.contains(r))
            .collect();
        let expected: Vec<&String> = order
            .iter()
            .copied()
            .filter(|id| self.replies.contains_key(*id))
            .collect();
        if answered != expected {
            v.out_of_order = answered
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .count();
            // name the first places that differ, with each message's tag (m<i>), to read the
            // logs by
            let tag = |id: &String| {
                self.sent
                    .iter()
                    .find(|s| &s.id == id)
                    .and_then(|s| s.text.split("#id=").nth(1))
                    .and_then(|t| t.split('#').next())
                    .unwrap_or("?")
                    .to_owned()
            };
            let first: Vec<String> = answered
                .iter()
                .zip(&expected)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(6)
                .map(|(i, (a, b))| {
                    format!("#{i}: answered {} ({a}), expected {} ({b})", tag(a), tag(b))
                })
                .collect();
            v.problems.push(format!(
                "answered out of order ({} positions differ): {}",
                v.out_of_order,
                first.join("; ")
            ));
        }
        for run in self.answer_order.iter().filter(|r| !order.contains(r)) {
            v.strays += 1;
            v.problems
                .push(format!("a reply to a message never sent: {run}"));
        }
        for (run, why) in &self.run_errors {
            v.problems.push(format!("run {run} failed: {why}"));
        }
        for run in &self.aborted {
            v.problems.push(format!("run {run} aborted"));
        }
        v.failed_runs = self.run_errors.len() + self.aborted.len();
        for why in &self.agent_errors {
            v.problems.push(format!("the agent reported: {why}"));
        }
        for id in &self.approvals {
            match self.resolutions.get(id).map(Vec::as_slice) {
                None | Some([]) => {
                    v.approvals_lost += 1;
                    v.problems.push(format!("an approval never resolved: {id}"));
                }
                Some([_]) => {}
                Some(more) => {
                    v.approvals_doubled += 1;
                    v.problems.push(format!(
                        "an approval resolved ×{}: {id} {more:?}",
                        more.len()
                    ));
                }
            }
        }
        for why in &self.pairing_lost {
            v.problems
                .push(format!("the desktop gave up its pairing: {why}"));
        }
        v
    }
}

#[derive(Debug, Default)]
pub struct Verdict {
    pub lost: usize,
    pub doubled: usize,
    pub damaged: usize,
    pub out_of_order: usize,
    pub strays: usize,
    pub failed_runs: usize,
    pub approvals_lost: usize,
    pub approvals_doubled: usize,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}
