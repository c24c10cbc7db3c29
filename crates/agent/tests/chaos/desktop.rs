//! The desktop end: the real client core, each incarnation on a runtime of its own so that a
//! "kill" tears it down mid-await with no goodbye — the outbox on disk and the session (the
//! keyring's stand-in) are all that survive, as after a crash.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::{ClientConfig, RelayClient};

use crate::ledger::Ledger;

/// One running incarnation.
pub struct Desktop {
    runtime: Option<tokio::runtime::Runtime>,
    pub client: Arc<RelayClient>,
    collector: tokio::task::JoinHandle<()>,
}

pub fn config(data: &Path) -> ClientConfig {
    let mut c = ClientConfig::new(PathBuf::from(data), "chaos-desktop".into());
    c.ping_interval = Duration::from_secs(1);
    c.pong_timeout = Duration::from_secs(2);
    c.ack_timeout = Duration::from_secs(5);
    c
}

impl Desktop {
    /// Start an incarnation on `data` with the pairing in `store`; what it shows goes to `ledger`.
    pub fn start(
        data: &Path,
        store: Arc<MemorySessionStore>,
        ledger: Arc<Mutex<Ledger>>,
    ) -> Desktop {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the desktop");
        let client = {
            let _inside = runtime.enter();
            Arc::new(RelayClient::start(config(data), store))
        };
        let mut rx = client.subscribe();
        // the collector runs on the test's runtime: it drains what the desktop showed even after
        // the desktop's runtime is gone
        let collector = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => ledger.lock().expect("ledger").apply(ev),
                    Err(RecvError::Closed) => return,
                    Err(RecvError::Lagged(n)) => {
                        panic!("the test fell {n} events behind the desktop")
                    }
                }
            }
        });
        Desktop {
            runtime: Some(runtime),
            client,
            collector,
        }
    }

    /// Tear it down abruptly; returns once everything it showed is in the ledger.
    pub async fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        drop(self.client);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.collector).await;
    }
}
