//! The agent's queue of desktop chat messages: one gateway run at a time, each followed to its
//! end. A message is kept (the hub persists [`Turns::entries`]) from the moment it is delivered
//! until its run has ended **and every desktop link has stored the ending in its outbox** — not
//! merely until the gateway accepted it, nor the moment the ending passed through the hub — so an
//! agent killed mid-run, or between a run's end and the write of its ending, asks the gateway
//! again after its restart (`chat.send` is idempotent by message id, `agent.wait` returns the
//! run's outcome) instead of losing the reply. A finished run whose ending is still on its way to
//! the outboxes is *settling*: the next message may start, but the entry stays persisted until
//! [`Turns::ending_stored`].
//!
//! One run at a time is what `queueMode: followup` would do inside the gateway anyway; doing it
//! here keeps every run id equal to the desktop's message id (the gateway runs queued messages
//! under ids of its own), which is what makes the reconciliation after a restart exact.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use clawtray_proto::files::Attachment;

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
    /// The gateway session it goes to (`None`: the agent's default session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Files it carries (kept in [`crate::received_files`] until the gateway has them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
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
    /// The session these messages go to (`None`: the default one), recorded in each entry.
    session: Option<String>,
    queue: VecDeque<PendingSend>,
    head: Head,
    finished: VecDeque<String>,
    /// Runs that ended here whose ending is not yet stored by every link, oldest first.
    settling: Vec<PendingSend>,
}

impl Turns {
    /// Resume with what a previous process persisted (for the default session).
    #[must_use]
    pub fn new(persisted: Vec<PendingSend>) -> Self {
        Self::for_session(None, persisted)
    }

    /// Resume session `session`'s queue with what a previous process persisted for it.
    #[must_use]
    pub fn for_session(session: Option<String>, persisted: Vec<PendingSend>) -> Self {
        Self {
            session,
            queue: persisted.into(),
            head: Head::Idle,
            finished: VecDeque::new(),
            settling: Vec::new(),
        }
    }

    /// What to persist: settling runs first (a restart asks the gateway for their outcome
    /// again), then the queue in order. Finishing a run moves it from the head of the queue to
    /// the end of the settling list, so the persisted list does not change until
    /// [`Turns::ending_stored`].
    #[must_use]
    pub fn entries(&self) -> Vec<PendingSend> {
        self.settling
            .iter()
            .chain(self.queue.iter())
            .cloned()
            .collect()
    }

    /// Messages waiting (the head included; not the settling ones).
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits and nothing settles.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.settling.is_empty()
    }

    /// Queue a delivered message; false if it is already queued (delivered again after a
    /// restart). A message whose run already ended is queued again on purpose: the gateway
    /// dedupes it and `agent.wait` gives its outcome, which the desktop dedupes by run id.
    pub fn push(&mut self, desktop: &str, id: &str, text: &str) -> bool {
        self.push_with_files(desktop, id, text, Vec::new())
    }

    /// [`Turns::push`] for a message that carries files.
    pub fn push_with_files(
        &mut self,
        desktop: &str,
        id: &str,
        text: &str,
        attachments: Vec<Attachment>,
    ) -> bool {
        if self
            .queue
            .iter()
            .chain(self.settling.iter())
            .any(|p| p.id == id)
        {
            return false;
        }
        self.queue.push_back(PendingSend {
            desktop: desktop.to_owned(),
            id: id.to_owned(),
            text: text.to_owned(),
            started: false,
            session: self.session.clone(),
            attachments,
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

    /// The gateway refused message `id` for good: it settles (its error on the way to the
    /// desktops) and the next may go.
    pub fn refused(&mut self, id: &str) -> Option<PendingSend> {
        if self.queue.front().is_some_and(|p| p.id == id) {
            self.head = Head::Idle;
            return self.settle_head();
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

    /// Run `run_id` ended; returns its message if it was the head's. It settles: tell the
    /// desktops, then call [`Turns::ending_stored`] once every link has stored the ending.
    pub fn finish(&mut self, run_id: &str) -> Option<PendingSend> {
        if self.running() != Some(run_id) {
            return None;
        }
        self.head = Head::Idle;
        self.remember_finished(run_id);
        self.settle_head()
    }

    fn settle_head(&mut self) -> Option<PendingSend> {
        let p = self.queue.pop_front()?;
        self.settling.push(p.clone());
        Some(p)
    }

    /// Every link stored the ending of message `id`: forget it (then persist). False if it was
    /// not settling.
    pub fn ending_stored(&mut self, id: &str) -> bool {
        let before = self.settling.len();
        self.settling.retain(|p| p.id != id);
        self.settling.len() != before
    }

    /// Whether `run_id` already ended here (a second ending is a duplicate).
    #[must_use]
    pub fn is_finished(&self, run_id: &str) -> bool {
        self.finished.iter().any(|r| r == run_id)
    }

    /// The gateway connection is gone: a run in progress died with it (returns its run id and
    /// message id; the message settles — it is answered with an error), a send in progress is
    /// retried.
    pub fn gateway_lost(&mut self) -> Option<(String, String)> {
        match std::mem::replace(&mut self.head, Head::Idle) {
            Head::Running(run) => {
                self.remember_finished(&run);
                let p = self.settle_head()?;
                Some((run, p.id))
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
            attachments: Vec::new(),
            desktop: "d".into(),
            id: "a".into(),
            text: "x".into(),
            started: true,
            session: None,
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
        assert_eq!(t.gateway_lost(), Some(("a".into(), "a".into())));
        assert_eq!(t.len(), 0);
        assert!(t.is_finished("a"));
        assert!(t.ending_stored("a"));
        assert!(t.is_empty());
    }

    #[test]
    fn a_refused_message_is_dropped_and_the_next_goes() {
        let mut t = Turns::new(Vec::new());
        t.push("d", "a", "x");
        t.push("d", "b", "y");
        t.next_to_send();
        assert_eq!(t.refused("a").unwrap().id, "a");
        assert_eq!(t.next_to_send().unwrap().id, "b");
        assert_eq!(t.entries().len(), 2, "a is kept until its error is stored");
        t.ending_stored("a");
        assert_eq!(t.entries().len(), 1);
    }

    /// The --long chaos run at 9287920 lost two replies: the run's ending passed the hub, the
    /// pending list was saved without the message, and the agent was killed before the link had
    /// written the ending to the desktop's outbox. A finished run stays persisted until every
    /// link has stored its ending.
    #[test]
    fn a_finished_run_stays_persisted_until_its_ending_is_stored() {
        let mut t = Turns::new(Vec::new());
        t.push("d", "a", "first");
        t.push("d", "b", "second");
        t.next_to_send();
        t.sent("a", "a");
        let before = t.entries();
        assert_eq!(t.finish("a").unwrap().id, "a");
        assert_eq!(
            t.entries(),
            before,
            "finishing a run changes nothing persisted"
        );
        assert!(
            !t.push("d", "a", "first"),
            "a settling message is kept once"
        );
        assert_eq!(t.next_to_send().unwrap().id, "b", "the next message may go");
        t.sent("b", "b");
        t.finish("b");
        assert!(t.ending_stored("b"), "endings may be stored out of order");
        assert_eq!(
            t.entries()
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert!(t.ending_stored("a"));
        assert!(!t.ending_stored("a"));
        assert!(t.is_empty());
    }
}
