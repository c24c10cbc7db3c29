//! `clawtray-relay`: command line, logging, signals. Everything else lives in the library.
// Nothing from the network, the disk or the person may panic the program: no unwrap/expect
// outside tests (tests may: a panic is how a test fails).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing::{error, info};

use clawtray_relay::config::{self, Limits, RelayConfig, StoreConfig, TlsConfig};

/// Relay for clawtray: links desktops with their agents and forwards end-to-end encrypted frames.
#[derive(Debug, Parser)]
#[command(name = "clawtray-relay", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = config::DEFAULT_LISTEN, env = "CLAWTRAY_RELAY_LISTEN")]
    listen: SocketAddr,
    /// Where to serve /metrics (and /healthz), apart from the public listener; `off` for none.
    /// Keep it on loopback or a private network: metrics are not for the public.
    #[arg(long, default_value = config::DEFAULT_METRICS_LISTEN, env = "CLAWTRAY_RELAY_METRICS_LISTEN")]
    metrics_listen: String,
    /// A proxy (address or range, e.g. 127.0.0.1 or 10.0.0.0/8) whose Forwarded /
    /// X-Forwarded-For header names the client, for the per-address limits. Repeat for several.
    /// Headers from anyone else are ignored.
    #[arg(long, value_name = "CIDR")]
    trusted_proxy: Vec<clawtray_relay::client_ip::Cidr>,
    /// Session database (SQLite). Default: the platform data dir, e.g. ~/.local/share/clawtray-relay/relay.db.
    #[arg(long, env = "CLAWTRAY_RELAY_DB")]
    db: Option<PathBuf>,
    /// Keep sessions in memory only (they die with the process).
    #[arg(long, conflicts_with = "db")]
    memory: bool,
    /// Run as a node of a relay cluster sharing sessions, pairing and traffic through Redis
    /// (e.g. redis://10.0.0.5:6379). Give it once for one Redis server; repeat it (or a comma
    /// list) for Redis Cluster seed nodes.
    #[arg(long, value_name = "URL", value_delimiter = ',', env = "CLAWTRAY_RELAY_REDIS", conflicts_with_all = ["db", "memory"])]
    redis: Vec<String>,
    /// This node's id in the cluster (letters, digits, `.`, `_`, `-`; at most 64). Default: a
    /// random one per start.
    #[arg(
        long,
        value_name = "ID",
        env = "CLAWTRAY_RELAY_NODE_ID",
        requires = "redis"
    )]
    node_id: Option<String>,
    /// TLS certificate chain (PEM). Without it the relay speaks plain ws:// (put it behind a TLS proxy).
    #[arg(long, requires = "tls_key", env = "CLAWTRAY_RELAY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert", env = "CLAWTRAY_RELAY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Largest WebSocket message in bytes.
    #[arg(long, default_value_t = config::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
    /// Sustained frames per second per connection.
    #[arg(long, default_value_t = config::DEFAULT_FRAMES_PER_SEC)]
    frames_per_sec: u32,
    /// Burst of frames per connection.
    #[arg(long, default_value_t = config::DEFAULT_FRAME_BURST)]
    frame_burst: u32,
    /// Sustained bytes per second per connection.
    #[arg(long, default_value_t = config::DEFAULT_BYTES_PER_SEC)]
    bytes_per_sec: u64,
    /// Burst of bytes per connection.
    #[arg(long, default_value_t = config::DEFAULT_BYTE_BURST)]
    byte_burst: u64,
    /// Pairing attempts (claims and joins) per IP address per minute.
    #[arg(long, default_value_t = config::DEFAULT_PAIRING_PER_IP_PER_MIN)]
    pairing_per_ip_per_min: u32,
    /// Failed resumes (unknown session, wrong token) per IP address per minute before that
    /// address's resumes are refused with RATE_LIMITED for the rest of the minute.
    #[arg(long, default_value_t = config::DEFAULT_RESUME_FAILURES_PER_IP_PER_MIN)]
    resume_failures_per_ip_per_min: u32,
    /// Seconds without any frame (pings count) before a connection is closed.
    #[arg(long, default_value_t = config::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,
    /// Seconds allowed for TLS and the HTTP upgrade.
    #[arg(long, default_value_t = config::DEFAULT_HANDSHAKE_TIMEOUT.as_secs())]
    handshake_timeout_secs: u64,
    /// Seconds allowed from linking two sides to both confirming the pairing.
    #[arg(long, default_value_t = config::DEFAULT_PAIRING_TIMEOUT.as_secs())]
    pairing_timeout_secs: u64,
    /// Seconds a nameplate lives.
    #[arg(long, default_value_t = config::DEFAULT_NAMEPLATE_TTL.as_secs())]
    nameplate_ttl_secs: u64,
    /// Simultaneous connections (each needs a file descriptor: keep the open-files limit above it).
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS, env = "CLAWTRAY_RELAY_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Simultaneous connections from one address (IPv6: one /64); 0 turns the cap off.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Seconds a connection may hold neither a session nor a live pairing code before it is
    /// closed (pings do not extend it).
    #[arg(long, default_value_t = config::DEFAULT_UNAUTHENTICATED_TIMEOUT.as_secs())]
    unauthenticated_timeout_secs: u64,
    /// Frames queued towards one connection before it is closed as a slow reader.
    #[arg(long, default_value_t = config::DEFAULT_QUEUE_FRAMES)]
    queue_frames: usize,
    /// Bytes queued towards one connection before it is closed as a slow reader.
    #[arg(long, default_value_t = config::DEFAULT_QUEUE_BYTES)]
    queue_bytes: usize,
    /// Days a session may stay unused before it expires.
    #[arg(long, default_value_t = config::DEFAULT_SESSION_TTL.as_secs() / 86_400)]
    session_ttl_days: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

impl Args {
    fn into_config(self) -> Result<RelayConfig, String> {
        let store = if !self.redis.is_empty() {
            let node_id = self
                .node_id
                .unwrap_or_else(clawtray_relay::cluster::random_node_id);
            if !clawtray_relay::cluster::valid_node_id(&node_id) {
                return Err(format!(
                    "--node-id '{node_id}' must be 1 to 64 letters, digits, '.', '_' or '-'"
                ));
            }
            for url in &self.redis {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(format!(
                        "--redis '{url}' is not a Redis URL like redis://10.0.0.5:6379"
                    ));
                }
            }
            StoreConfig::Redis(clawtray_relay::cluster::ClusterConfig {
                redis: self.redis,
                node_id,
            })
        } else if self.memory {
            StoreConfig::Memory
        } else {
            let path = match self.db {
                Some(p) => p,
                None => directories::ProjectDirs::from("", "", "clawtray-relay")
                    .map(|d| d.data_dir().join("relay.db"))
                    .ok_or_else(|| {
                        "no data directory could be determined; pass --db PATH".to_owned()
                    })?,
            };
            StoreConfig::Sqlite(path)
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
            _ => None,
        };
        if self.max_frame_bytes < 1024 {
            return Err("--max-frame-bytes must be at least 1024".into());
        }
        if self.byte_burst < self.max_frame_bytes as u64 {
            return Err("--byte-burst must be at least --max-frame-bytes, or no large frame could ever pass".into());
        }
        if self.queue_frames <= self.frame_burst as usize {
            return Err("--queue-frames must exceed --frame-burst, or a burst within limits could close a healthy reader".into());
        }
        let metrics_listen = match self.metrics_listen.as_str() {
            "off" | "none" | "" => None,
            addr => Some(addr.parse::<SocketAddr>().map_err(|e| {
                format!(
                    "--metrics-listen '{addr}' is not an address like 127.0.0.1:9765 (or off): {e}"
                )
            })?),
        };
        Ok(RelayConfig {
            metrics_listen,
            trusted_proxies: self.trusted_proxy,
            listen: self.listen,
            store,
            tls,
            limits: Limits {
                max_frame_bytes: self.max_frame_bytes,
                frames_per_sec: self.frames_per_sec,
                frame_burst: self.frame_burst,
                bytes_per_sec: self.bytes_per_sec,
                byte_burst: self.byte_burst,
                pairing_per_ip_per_min: self.pairing_per_ip_per_min,
                resume_failures_per_ip_per_min: self.resume_failures_per_ip_per_min,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
                handshake_timeout: Duration::from_secs(self.handshake_timeout_secs.max(1)),
                pairing_timeout: Duration::from_secs(self.pairing_timeout_secs.max(1)),
                nameplate_ttl: Duration::from_secs(self.nameplate_ttl_secs.max(1)),
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                unauthenticated_timeout: Duration::from_secs(
                    self.unauthenticated_timeout_secs.max(1),
                ),
                queue_frames: self.queue_frames.max(1),
                queue_bytes: self.queue_bytes.max(self.max_frame_bytes),
                session_ttl: Duration::from_secs(self.session_ttl_days.max(1) * 86_400),
                read_buffer: config::DEFAULT_READ_BUFFER,
            },
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWTRAY_LOG")
        .unwrap_or_else(|_| "info".into());
    // colours only on a terminal: journald and log files get plain text
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let relay = match clawtray_relay::start(config).await {
            Ok(r) => r,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        // Tests and scripts read these lines to learn the ports.
        println!("clawtray-relay listening on {}", relay.addr);
        if let Some(node) = relay.node_id() {
            println!("clawtray-relay cluster node {node}");
        }
        if let Some(m) = relay.metrics_addr {
            println!("clawtray-relay metrics on {m}");
        }
        shutdown_signal().await;
        info!("signal received; shutting down");
        relay.shutdown();
        relay.stopped().await;
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
