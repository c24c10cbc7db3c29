//! The agent's queue of desktop chat messages: one gateway run at a time, each followed to its
//! end. A message is kept (the hub persists [`Turns::entries`]) from the moment it is delivered
//! until its run has ended and the ending was handed to the desktops — not merely until the
//! gateway accepted it — so an agent killed mid-run asks the gateway again after its restart
//! (`chat.send` is idempotent by message id, `agent.wait` returns the run's outcome) instead of
//! losing the reply.
//!
//! One run at a time is what `queueMode: followup` would do inside the gateway anyway; doing it
//! here keeps every run id equal to the desktop's message id (the gateway runs queued messages
//! under ids of its own), which is what makes the reconciliation after a restart exact.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How many finished run ids are remembered, to drop a late second ending of the same run.
const FINISHED_MEMORY: usize = 512;

/// A chat message waiting for, or in, its gateway run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSend {
    /// The desktop session it came from.
    pub desktop: String,
    /// The desktop's message id (the gateway's idempotency key and run id).
    pub id: String,
    pub text: String,
    /// The gateway accepted it once (its run may have ended while the agent was down).
    #[serde(default)]
    pub started: bool,
}

/// Where the message at the head of the queue is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Head {
    /// Nothing asked of the gateway yet (or it must be asked again).
    Idle,
    /// `chat.send` is on its way.
    Sending,
    /// The gateway runs it under this run id.
    Running(String),
}

/// The queue.
#[derive(Debug)]
pub struct Turns {
    queue: VecDeque<PendingSend>,
    head: Head,
    finished: VecDeque<String>,
}

impl Turns {
    /// Resume with what a previous process persisted.
    #[must_use]
    pub fn new(persisted: Vec<PendingSend>) -> Self {
        Self {
            queue: persisted.into(),
            head: Head::Idle,
            finished: VecDeque::new(),
        }
    }

    /// What to persist.
    #[must_use]
    pub fn entries(&self) -> Vec<PendingSend> {
        self.queue.iter().cloned().collect()
    }

    /// Messages waiting (the head included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue a delivered message; false if it is already queued (delivered again after a
    /// restart). A message whose run already ended is queued again on purpose: the gateway
    /// dedupes it and `agent.wait` gives its outcome, which the desktop dedupes by run id.
    pub fn push(&mut self, desktop: &str, id: &str, text: &str) -> bool {
        if self.queue.iter().any(|p| p.id == id) {
            return false;
        }
        self.queue.push_back(PendingSend {
            desktop: desktop.to_owned(),
            id: id.to_owned(),
            text: text.to_owned(),
            started: false,
        });
        true
    }

    /// The message to hand to the gateway now, if the head is waiting for that.
    pub fn next_to_send(&mut self) -> Option<PendingSend> {
        if self.head != Head::Idle {
            return None;
        }
        let p = self.queue.front()?.clone();
        self.head = Head::Sending;
        Some(p)
    }

    /// The gateway accepted message `id` as run `run_id`; true if that is the head (persist).
    pub fn sent(&mut self, id: &str, run_id: &str) -> bool {
        match self.queue.front_mut() {
            Some(p) if p.id == id && self.head == Head::Sending => {
                p.started = true;
                self.head = Head::Running(run_id.to_owned());
                true
            }
            _ => false,
        }
    }

    /// `chat.send` failed in a way worth retrying: ask again later.
    pub fn send_failed(&mut self, id: &str) {
        if self.queue.front().is_some_and(|p| p.id == id) && self.head == Head::Sending {
            self.head = Head::Idle;
        }
    }

    /// The gateway refused message `id` for good: drop it.
    pub fn refused(&mut self, id: &str) -> Option<PendingSend> {
        if self.queue.front().is_some_and(|p| p.id == id) {
            self.head = Head::Idle;
            return self.queue.pop_front();
        }
        None
    }

    /// The run in progress.
    #[must_use]
    pub fn running(&self) -> Option<&str> {
        match &self.head {
            Head::Running(r) => Some(r),
            _ => None,
        }
    }

    /// Run `run_id` ended; returns its message if it was the head's (persist, tell desktops).
    pub fn finish(&mut self, run_id: &str) -> Option<PendingSend> {
        if self.running() != Some(run_id) {
            return None;
        }
        self.head = Head::Idle;
        self.remember_finished(run_id);
        self.queue.pop_front()
    }

    /// Whether `run_id` already ended here (a second ending is a duplicate).
    #[must_use]
    pub fn is_finished(&self, run_id: &str) -> bool {
        self.finished.iter().any(|r| r == run_id)
    }

    /// The gateway connection is gone: a run in progress died with it (returns its id; the
    /// message is dropped — it was answered with an error), a send in progress is retried.
    pub fn gateway_lost(&mut self) -> Option<String> {
        match std::mem::replace(&mut self.head, Head::Idle) {
            Head::Running(run) => {
                self.remember_finished(&run);
                self.queue.pop_front();
                Some(run)
            }
            Head::Sending | Head::Idle => None,
        }
    }

    fn remember_finished(&mut self, run_id: &str) {
        if self.finished.len() == FINISHED_MEMORY {
            self.finished.pop_front();
        }
        self.finished.push_back(run_id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_at_a_time_in_order() {
        let mut t = Turns::new(Vec::new());
        assert!(t.push("d", "a", "first"));
        assert!(t.push("d", "b", "second"));
        assert!(
            !t.push("d", "a", "first"),
            "a redelivered message is kept once"
        );
        let a = t.next_to_send().unwrap();
        assert_eq!(a.id, "a");
        assert!(t.next_to_send().is_none(), "b waits for a's run");
        assert!(t.sent("a", "a"));
        assert!(t.next_to_send().is_none());
        assert_eq!(t.finish("a").unwrap().id, "a");
        assert!(t.is_finished("a"));
        assert!(t.finish("a").is_none(), "a second ending is ignored");
        assert_eq!(t.next_to_send().unwrap().id, "b");
    }

    #[test]
    fn a_restart_resends_the_started_head_and_a_lost_gateway_ends_its_run() {
        let mut t = Turns::new(vec![PendingSend {
            desktop: "d".into(),
            id: "a".into(),
            text: "x".into(),
            started: true,
        }]);
        assert_eq!(
            t.next_to_send().unwrap().id,
            "a",
            "asked again after a restart"
        );
        t.send_failed("a");
        assert_eq!(
            t.next_to_send().unwrap().id,
            "a",
            "and again after a failed send"
        );
        assert!(t.sent("a", "a"));
        assert_eq!(t.gateway_lost().as_deref(), Some("a"));
        assert!(t.is_empty());
        assert!(t.is_finished("a"));
    }

    #[test]
    fn a_refused_message_is_dropped_and_the_next_goes() {
        let mut t = Turns::new(Vec::new());
        t.push("d", "a", "x");
        t.push("d", "b", "y");
        t.next_to_send();
        assert_eq!(t.refused("a").unwrap().id, "a");
        assert_eq!(t.next_to_send().unwrap().id, "b");
        assert_eq!(t.entries().len(), 1);
    }
}
