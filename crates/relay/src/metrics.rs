//! Relay counters, rendered as Prometheus text at `GET /metrics`. Counts only: no session ids,
//! no addresses, no contents.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use clawtray_proto::control::ErrorCode;

/// Every code a connection can be closed or a frame rejected with.
const REASONS: [ErrorCode; 14] = [
    ErrorCode::BadFrame,
    ErrorCode::FrameTooLarge,
    ErrorCode::Flooding,
    ErrorCode::SlowReader,
    ErrorCode::IdleTimeout,
    ErrorCode::HandshakeTimeout,
    ErrorCode::TooManyConnections,
    ErrorCode::RateLimited,
    ErrorCode::Replaced,
    ErrorCode::ShuttingDown,
    ErrorCode::DeviceTokenMismatch,
    ErrorCode::SessionNotFound,
    ErrorCode::SessionRevoked,
    ErrorCode::Internal,
];

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    pub frames_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub frames_dropped_peer_away: AtomicU64,
    pub pairing_attempts: AtomicU64,
    pub pairing_failures: AtomicU64,
    pub pairings_completed: AtomicU64,
    pub resumes: AtomicU64,
    rejected: [AtomicU64; REASONS.len()],
}

impl Metrics {
    /// Count a connection closed or a frame rejected for `code`.
    pub fn rejected(&self, code: ErrorCode) {
        if let Some(i) = REASONS.iter().position(|c| *c == code) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Current count for `code`.
    #[must_use]
    pub fn rejected_count(&self, code: ErrorCode) -> u64 {
        REASONS
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.rejected[i].load(Ordering::Relaxed))
    }

    /// Prometheus text exposition.
    #[must_use]
    pub fn render(
        &self,
        sessions_stored: Option<u64>,
        sessions_online: usize,
        nameplates_live: Option<usize>,
    ) -> String {
        let mut s = String::with_capacity(2048);
        let mut line = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        line(
            "clawtray_relay_connections_open",
            "gauge",
            "WebSocket connections open now.",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        line(
            "clawtray_relay_connections_total",
            "counter",
            "Connections accepted.",
            get(&self.connections_total),
        );
        if let Some(n) = sessions_stored {
            line(
                "clawtray_relay_sessions",
                "gauge",
                "Sessions stored and not revoked.",
                n.to_string(),
            );
        }
        line(
            "clawtray_relay_sessions_online",
            "gauge",
            "Sessions with at least one end connected.",
            sessions_online.to_string(),
        );
        if let Some(n) = nameplates_live {
            line(
                "clawtray_relay_nameplates_live",
                "gauge",
                "Nameplates waiting for or in a pairing.",
                n.to_string(),
            );
        }
        line(
            "clawtray_relay_frames_forwarded_total",
            "counter",
            "Binary frames forwarded between ends.",
            get(&self.frames_forwarded),
        );
        line(
            "clawtray_relay_bytes_forwarded_total",
            "counter",
            "Bytes of binary frames forwarded.",
            get(&self.bytes_forwarded),
        );
        line(
            "clawtray_relay_frames_dropped_peer_away_total",
            "counter",
            "Binary frames dropped because the other end was not connected.",
            get(&self.frames_dropped_peer_away),
        );
        line(
            "clawtray_relay_pairing_attempts_total",
            "counter",
            "Desktops that joined a nameplate.",
            get(&self.pairing_attempts),
        );
        line(
            "clawtray_relay_pairing_failures_total",
            "counter",
            "Pairing attempts that failed or were abandoned.",
            get(&self.pairing_failures),
        );
        line(
            "clawtray_relay_pairings_total",
            "counter",
            "Pairings completed.",
            get(&self.pairings_completed),
        );
        line(
            "clawtray_relay_resumes_total",
            "counter",
            "Sessions resumed.",
            get(&self.resumes),
        );
        let _ = writeln!(s, "# HELP clawtray_relay_rejected_total Connections closed or frames rejected, by reason.\n# TYPE clawtray_relay_rejected_total counter");
        for (i, code) in REASONS.iter().enumerate() {
            let _ = writeln!(
                s,
                "clawtray_relay_rejected_total{{reason=\"{}\"}} {}",
                code.as_str(),
                self.rejected[i].load(Ordering::Relaxed)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.rejected(ErrorCode::Flooding);
        m.frames_forwarded.fetch_add(3, Ordering::Relaxed);
        let t = m.render(Some(2), 1, Some(0));
        assert!(t.contains("clawtray_relay_frames_forwarded_total 3\n"));
        assert!(t.contains("clawtray_relay_rejected_total{reason=\"FLOODING\"} 1\n"));
        assert!(t.contains("clawtray_relay_sessions 2\n"));
        assert_eq!(m.rejected_count(ErrorCode::Flooding), 1);
    }
}
