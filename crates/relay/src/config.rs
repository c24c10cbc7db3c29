//! Relay settings. Every default is a named constant here, so a reader sees the numbers in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";
/// Where `/metrics` is served by default: loopback only, apart from the public listener.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9765";
/// Largest WebSocket message: a full sealed frame (1 MiB plaintext) plus headroom.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1024 * 1024 + 1024;
/// Sustained frames per second per connection.
pub const DEFAULT_FRAMES_PER_SEC: u32 = 200;
/// Burst of frames per connection.
pub const DEFAULT_FRAME_BURST: u32 = 2_000;
/// Sustained bytes per second per connection.
pub const DEFAULT_BYTES_PER_SEC: u64 = 4 * 1024 * 1024;
/// Burst of bytes per connection (must exceed one max frame).
pub const DEFAULT_BYTE_BURST: u64 = 8 * 1024 * 1024;
/// Pairing attempts (claims and joins) per IP address per minute.
pub const DEFAULT_PAIRING_PER_IP_PER_MIN: u32 = 30;
/// A connection that sends nothing (not even a ping) for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Time allowed for TLS + the HTTP upgrade.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed from linking two pairing sides to both confirming.
pub const DEFAULT_PAIRING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a nameplate lives.
pub const DEFAULT_NAMEPLATE_TTL: Duration = Duration::from_secs(600);
/// Simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Failed resumes (unknown session, wrong token) per address per minute before further resumes
/// from it are refused with `RATE_LIMITED` for the rest of the minute.
pub const DEFAULT_RESUME_FAILURES_PER_IP_PER_MIN: u32 = 60;
/// Simultaneous connections from one address (IPv6: one /64); 0 = no per-address cap.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// A connection that holds neither a session nor a live nameplate is closed after this, whatever
/// it sends (pings do not extend it).
pub const DEFAULT_UNAUTHENTICATED_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued towards one connection before it counts as a slow reader. Larger than the frame
/// burst, so a sender within its limits cannot make a healthy reader look slow. (The queue's
/// memory is allocated as it fills, so an idle connection pays nothing for this.)
pub const DEFAULT_QUEUE_FRAMES: usize = 4096;
/// Bytes queued towards one connection before it counts as a slow reader (above the byte burst).
pub const DEFAULT_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// A session unused for this long expires.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// WebSocket read buffer per connection: sized for chat, not bulk transfer (tungstenite's default is 128 KiB).
pub const DEFAULT_READ_BUFFER: usize = 4 * 1024;
/// Grace period for connections to close on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Limits enforced per connection and per address.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub frames_per_sec: u32,
    pub frame_burst: u32,
    pub bytes_per_sec: u64,
    pub byte_burst: u64,
    pub pairing_per_ip_per_min: u32,
    pub resume_failures_per_ip_per_min: u32,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub pairing_timeout: Duration,
    pub nameplate_ttl: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub unauthenticated_timeout: Duration,
    pub queue_frames: usize,
    pub queue_bytes: usize,
    pub session_ttl: Duration,
    pub read_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            frames_per_sec: DEFAULT_FRAMES_PER_SEC,
            frame_burst: DEFAULT_FRAME_BURST,
            bytes_per_sec: DEFAULT_BYTES_PER_SEC,
            byte_burst: DEFAULT_BYTE_BURST,
            pairing_per_ip_per_min: DEFAULT_PAIRING_PER_IP_PER_MIN,
            resume_failures_per_ip_per_min: DEFAULT_RESUME_FAILURES_PER_IP_PER_MIN,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            pairing_timeout: DEFAULT_PAIRING_TIMEOUT,
            nameplate_ttl: DEFAULT_NAMEPLATE_TTL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            unauthenticated_timeout: DEFAULT_UNAUTHENTICATED_TIMEOUT,
            queue_frames: DEFAULT_QUEUE_FRAMES,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            session_ttl: DEFAULT_SESSION_TTL,
            read_buffer: DEFAULT_READ_BUFFER,
        }
    }
}

/// Where the relay keeps its sessions.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// SQLite file (WAL).
    Sqlite(PathBuf),
    /// In memory only: sessions die with the process (tests, throwaway relays).
    Memory,
    /// A relay cluster's Redis (`--redis`): sessions, nameplates, presence and cross-node frames
    /// are shared with the other nodes.
    Redis(crate::cluster::ClusterConfig),
}

/// TLS certificate chain and key (PEM files).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub tls: Option<TlsConfig>,
    pub limits: Limits,
    /// Where `/metrics` (and `/healthz`) are served, apart from the public listener; `None`: no
    /// metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers name the client.
    pub trusted_proxies: Vec<crate::client_ip::Cidr>,
}

impl RelayConfig {
    /// In-memory relay on `listen` with default limits.
    #[must_use]
    pub fn ephemeral(listen: SocketAddr) -> Self {
        Self {
            listen,
            store: StoreConfig::Memory,
            tls: None,
            limits: Limits::default(),
            metrics_listen: None,
            trusted_proxies: Vec::new(),
        }
    }
}
