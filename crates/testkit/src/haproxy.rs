//! HAProxy from the package manager in front of relay nodes, configured by the example the
//! project ships (`packaging/haproxy/clawtray-relay.cfg`) with only its listen address and server
//! lines swapped for loopback ones — so the tests run the file operators copy.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::relay::STEP;

/// A running `haproxy`.
pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The shipped example configuration.
#[must_use]
pub fn example_config() -> String {
    let path = crate::bins::workspace_root().join("packaging/haproxy/clawtray-relay.cfg");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example with `bind` on `listen` and one server per relay address.
#[must_use]
pub fn config_for(listen: SocketAddr, relays: &[SocketAddr]) -> String {
    let example = example_config();
    let (head, rest) = example
        .split_once("    # CLUSTER-NODES-BEGIN\n")
        .expect("the example marks its server lines");
    let (_, tail) = rest
        .split_once("    # CLUSTER-NODES-END\n")
        .expect("the example marks its server lines");
    let servers: String = relays
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server relay-{i} {a}\n"))
        .collect();
    let head = head.replace("    bind :8765\n", &format!("    bind {listen}\n"));
    assert!(
        head.contains(&format!("bind {listen}")),
        "the example binds :8765"
    );
    format!("{head}{servers}{tail}")
}

impl Haproxy {
    /// Start HAProxy on a free loopback port in front of `relays`.
    pub async fn start(relays: &[SocketAddr]) -> Haproxy {
        Self::start_with(relays, |cfg| cfg).await
    }

    /// [`Haproxy::start`] with the configuration changed by `edit` (e.g. another `balance`).
    pub async fn start_with(relays: &[SocketAddr], edit: impl FnOnce(String) -> String) -> Haproxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen: SocketAddr = format!("127.0.0.1:{}", crate::free_port())
            .parse()
            .expect("addr");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, edit(config_for(listen, relays))).expect("write config");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy (apt-get install haproxy; scripts/setup-system does)");
        let deadline = tokio::time::Instant::now() + STEP;
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "haproxy did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Haproxy {
            child,
            addr: listen,
            _dir: dir,
        }
    }

    /// `ws://addr`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
