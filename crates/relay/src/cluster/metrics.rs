//! A node's cluster counters: frames that crossed nodes, Redis commands, errors and round-trip
//! times (a Prometheus histogram), and whether Redis answers. Appended to `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the Redis round-trip histogram's buckets.
const RTT_BUCKETS: [f64; 9] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0];

/// Counters of one node.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Frames and notes this node put in other nodes' inboxes.
    pub cross_sent: AtomicU64,
    /// Frames and notes taken from this node's inbox and handed to a connection.
    pub cross_received: AtomicU64,
    /// Cross-node items dropped: the target node was gone, Redis failed, or the queue was full.
    pub cross_dropped: AtomicU64,
    /// Second copies of inbox entries (a batch retried after Redis ran it), dropped.
    pub cross_repeated: AtomicU64,
    /// Redis commands sent (a pipeline counts its commands).
    pub redis_commands: AtomicU64,
    /// Redis commands or pipelines that failed.
    pub redis_errors: AtomicU64,
    rtt_buckets: [AtomicU64; RTT_BUCKETS.len()],
    rtt_count: AtomicU64,
    rtt_sum_us: AtomicU64,
}

impl ClusterMetrics {
    /// Record one round trip to Redis.
    pub fn observe_rtt(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in RTT_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.rtt_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.rtt_count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.rtt_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Prometheus text for these counters.
    pub fn render(&self, out: &mut String, node: &str, health: &Health) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {v}"
            );
        };
        counter(
            "clawtray_relay_cross_node_sent_total",
            "Frames and notes sent to connections on other nodes (through Redis).",
            get(&self.cross_sent),
        );
        counter(
            "clawtray_relay_cross_node_received_total",
            "Frames and notes from other nodes handed to this node's connections.",
            get(&self.cross_received),
        );
        counter(
            "clawtray_relay_cross_node_dropped_total",
            "Cross-node frames and notes dropped (target node gone, Redis failing, queue full); the ends resend.",
            get(&self.cross_dropped),
        );
        counter(
            "clawtray_relay_cross_node_repeated_total",
            "Second copies of cross-node items (a write retried after Redis ran it) dropped.",
            get(&self.cross_repeated),
        );
        counter(
            "clawtray_relay_redis_commands_total",
            "Redis commands sent.",
            get(&self.redis_commands),
        );
        counter(
            "clawtray_relay_redis_errors_total",
            "Redis commands or pipelines that failed.",
            get(&self.redis_errors),
        );
        let _ = writeln!(
            out,
            "# HELP clawtray_relay_redis_up 1 while Redis answers this node, 0 while it does not.\n# TYPE clawtray_relay_redis_up gauge\nclawtray_relay_redis_up{{node=\"{node}\"}} {}",
            u8::from(health.is_up())
        );
        let _ = writeln!(out, "# HELP clawtray_relay_redis_rtt_seconds Round-trip time of Redis commands and pipelines.\n# TYPE clawtray_relay_redis_rtt_seconds histogram");
        for (i, bound) in RTT_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "clawtray_relay_redis_rtt_seconds_bucket{{node=\"{node}\",le=\"{bound}\"}} {}",
                get(&self.rtt_buckets[i])
            );
        }
        let count = get(&self.rtt_count);
        let _ = writeln!(
            out,
            "clawtray_relay_redis_rtt_seconds_bucket{{node=\"{node}\",le=\"+Inf\"}} {count}\nclawtray_relay_redis_rtt_seconds_sum{{node=\"{node}\"}} {}\nclawtray_relay_redis_rtt_seconds_count{{node=\"{node}\"}} {count}",
            get(&self.rtt_sum_us) as f64 / 1e6
        );
    }
}

/// Whether Redis answers this node, and since when it does not.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    state: Mutex<HealthState>,
}

#[derive(Debug)]
struct HealthState {
    /// When the current state (up or down) began.
    since: Instant,
    last_error: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            state: Mutex::new(HealthState {
                since: Instant::now(),
                last_error: None,
            }),
        }
    }
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Redis answered.
    pub fn ok(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            let mut s = self.state();
            s.since = Instant::now();
            tracing::info!("Redis answers again");
        }
    }

    /// Redis failed with `error`. Returns true when this is the first failure after a good spell.
    pub fn failed(&self, error: &str) -> bool {
        let mut s = self.state();
        s.last_error = Some(error.to_owned());
        if self.up.swap(false, Ordering::AcqRel) {
            s.since = Instant::now();
            return true;
        }
        false
    }

    /// Redis answers.
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// How long Redis has answered without a failure (zero while it does not).
    #[must_use]
    pub fn up_for(&self) -> Duration {
        if !self.is_up() {
            return Duration::ZERO;
        }
        self.state().since.elapsed()
    }

    /// The `/healthz` body: `ok`, or what is wrong and what still works.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.is_up() {
            return "ok\n".into();
        }
        let s = self.state();
        format!(
            "degraded: Redis has not answered for {} s ({}). Sessions whose two ends are on this node keep working; new pairings, resumes of sessions this node has not seen, and cross-node traffic wait for Redis and recover by themselves.\n",
            s.since.elapsed().as_secs(),
            s.last_error.as_deref().unwrap_or("no answer")
        )
    }
}
