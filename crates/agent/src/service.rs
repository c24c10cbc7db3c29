//! `clawtray-agent run`: the hub. Keeps a relay link per paired desktop (picking up new pairings
//! and dropping removed ones), runs the gateway client, turns desktop messages into gateway calls
//! (`chat.send` with the desktop's message id as idempotency key, `chat.abort`, `chat.history`),
//! and fans the bridged gateway stream out to every desktop (one conversation, several screens).
//!
//! A chat message is kept (sealed, in `pending.sealed`) from the moment it is delivered until the
//! gateway accepts it, so a dead gateway or an agent restart loses nothing; resending it is safe
//! because the gateway dedupes by idempotency key.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::{info, warn};

use clawtray_proto::chat::{GatewayStatus, ToAgent, ToDesktop};
use clawtray_proto::secret::fill_random;

use crate::bridge::{history_messages, Bridge};
use crate::gateway::{GatewayClient, GatewayConfig, GatewayError, GatewayEvent};
use crate::link::{self, HubEvent, LinkCmd, LinkConfig};
use crate::state::StateDir;

/// How often the pairings file is checked for new or removed desktops.
pub const PAIRINGS_POLL: Duration = Duration::from_secs(2);
/// Typing indicator safety: off after this long without news.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(60);

/// What `run` needs.
pub struct ServiceConfig {
    pub state: StateDir,
    pub gateway: GatewayConfig,
    pub session_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingSend {
    desktop: String,
    id: String,
    text: String,
    #[serde(skip)]
    in_flight: bool,
}

enum Done {
    Sent {
        id: String,
        run_id: String,
    },
    SendFailed {
        desktop: String,
        id: String,
        error: GatewayError,
    },
    Reply {
        desktop: String,
        msg: ToDesktop,
    },
}

fn instance_id() -> String {
    let mut b = [0u8; 12];
    let _ = fill_random(&mut b);
    hex::encode(b)
}

struct Hub {
    state: StateDir,
    gw: GatewayClient,
    bridge: Bridge,
    links: HashMap<String, mpsc::Sender<LinkCmd>>,
    hub_tx: mpsc::Sender<HubEvent>,
    done_tx: mpsc::Sender<Done>,
    pending: Vec<PendingSend>,
    instance: String,
}

impl Hub {
    fn to_all(&self, msgs: Vec<ToDesktop>) {
        for m in msgs {
            for tx in self.links.values() {
                if tx.try_send(LinkCmd::Send(m.clone())).is_err() {
                    warn!("a desktop link is not keeping up; a message was dropped");
                }
            }
        }
    }

    fn to_one(&self, desktop: &str, m: ToDesktop) {
        if let Some(tx) = self.links.get(desktop) {
            let _ = tx.try_send(LinkCmd::Send(m));
        }
    }

    fn gateway_status(&self) -> ToDesktop {
        ToDesktop::AgentStatus {
            gateway: if self.gw.is_connected() {
                GatewayStatus::Connected
            } else {
                GatewayStatus::Disconnected
            },
        }
    }

    fn save_pending(&self) {
        if let Err(e) = self.state.save_pending(&self.pending) {
            warn!("cannot persist pending messages: {e}");
        }
    }

    /// Start links for new pairings, stop links for removed ones.
    fn reconcile_links(&mut self) {
        let pairings = match self.state.pairings() {
            Ok(p) => p,
            Err(e) => {
                warn!("{e}");
                return;
            }
        };
        self.links.retain(|session, tx| {
            let keep = pairings.iter().any(|p| &p.session == session);
            if !keep {
                info!(%session, "pairing removed; stopping its link");
                let _ = tx.try_send(LinkCmd::Stop);
            }
            keep
        });
        for p in pairings {
            if self.links.contains_key(&p.session) {
                continue;
            }
            let token = match self.state.token(&p.session) {
                Ok(Some(t)) => t,
                Ok(None) => {
                    warn!(session = %p.session, "no device token for this pairing; pair again");
                    continue;
                }
                Err(e) => {
                    warn!("{e}");
                    continue;
                }
            };
            let cfg = match (self.state.static_key(), self.state.sealing_key()) {
                (Ok(key), Ok(sealing_key)) => LinkConfig {
                    outbox_path: self.state.outbox_path(&p.session),
                    pairing: p.clone(),
                    token,
                    key,
                    instance: self.instance.clone(),
                    sealing_key,
                },
                (Err(e), _) | (_, Err(e)) => {
                    warn!("{e}");
                    continue;
                }
            };
            match link::spawn(cfg, self.hub_tx.clone()) {
                Ok(tx) => {
                    info!(session = %p.session, desktop = %p.desktop_name, "serving paired desktop");
                    self.links.insert(p.session.clone(), tx);
                }
                Err(e) => warn!(session = %p.session, "cannot start the link: {e}"),
            }
        }
    }

    /// Send every pending chat not already in flight to the gateway.
    fn flush_pending(&mut self) {
        if !self.gw.is_connected() {
            return;
        }
        for p in self.pending.iter_mut().filter(|p| !p.in_flight) {
            p.in_flight = true;
            let (gw, done, key) = (
                self.gw.clone(),
                self.done_tx.clone(),
                self.bridge.session_key().to_owned(),
            );
            let (desktop, id, text) = (p.desktop.clone(), p.id.clone(), p.text.clone());
            tokio::spawn(async move {
                let r = gw
                    .request(
                        "chat.send",
                        json!({ "sessionKey": key, "message": text, "idempotencyKey": id, "queueMode": "followup" }),
                    )
                    .await;
                let _ = done
                    .send(match r {
                        Ok(v) => Done::Sent {
                            run_id: v
                                .get("runId")
                                .and_then(|r| r.as_str())
                                .unwrap_or(&id)
                                .to_owned(),
                            id,
                        },
                        Err(error) => Done::SendFailed { desktop, id, error },
                    })
                    .await;
            });
        }
    }

    fn request_then_reply(&self, desktop: String, method: &'static str, params: serde_json::Value) {
        let (gw, done) = (self.gw.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let msg = match gw.request(method, params).await {
                Ok(v) if method == "chat.history" => ToDesktop::History {
                    messages: history_messages(&v),
                },
                Ok(_) => return,
                Err(e) => ToDesktop::ChatError {
                    run_id: None,
                    message: format!(
                        "the agent could not {}: {e}",
                        if method == "chat.abort" {
                            "stop the reply"
                        } else {
                            "load the history"
                        }
                    ),
                },
            };
            let _ = done.send(Done::Reply { desktop, msg }).await;
        });
    }

    fn on_hub_event(&mut self, ev: HubEvent) {
        match ev {
            HubEvent::FromDesktop { session, msg } => match msg {
                ToAgent::Chat { id, text, .. } => {
                    if self.pending.iter().any(|p| p.id == id) {
                        return;
                    }
                    self.pending.push(PendingSend {
                        desktop: session.clone(),
                        id,
                        text,
                        in_flight: false,
                    });
                    self.save_pending();
                    if self.gw.is_connected() {
                        self.flush_pending();
                    } else {
                        let note = ToDesktop::ChatError { run_id: None, message: "the agent cannot reach its OpenClaw gateway right now; your message is kept and will be sent when it is back".into() };
                        self.to_one(&session, note);
                    }
                }
                ToAgent::ChatAbort { run_id } => {
                    let key = self.bridge.session_key().to_owned();
                    self.request_then_reply(
                        session,
                        "chat.abort",
                        json!({ "sessionKey": key, "runId": run_id }),
                    );
                }
                ToAgent::ChatHistory { limit, .. } => {
                    let key = self.bridge.session_key().to_owned();
                    self.request_then_reply(
                        session,
                        "chat.history",
                        json!({ "sessionKey": key, "limit": limit.clamp(1, 500) }),
                    );
                }
            },
            HubEvent::DesktopOnline { session } => self.to_one(&session, self.gateway_status()),
            HubEvent::PairingEnded { session, reason } => {
                info!(%session, %reason, "pairing ended by the relay; forgetting it");
                self.links.remove(&session);
                if let Err(e) = self.state.remove_pairing(&session) {
                    warn!("{e}");
                }
            }
        }
    }

    fn on_done(&mut self, d: Done) {
        match d {
            Done::Sent { id, run_id } => {
                self.pending.retain(|p| p.id != id);
                self.save_pending();
                self.to_all(vec![ToDesktop::ChatAck { id, run_id }]);
            }
            Done::SendFailed { desktop, id, error } => {
                let retry_later = matches!(
                    error,
                    GatewayError::NotConnected | GatewayError::Closed | GatewayError::Timeout(_)
                ) || matches!(
                    &error,
                    GatewayError::Gateway {
                        retryable: true,
                        ..
                    }
                );
                if retry_later {
                    if let Some(p) = self.pending.iter_mut().find(|p| p.id == id) {
                        p.in_flight = false;
                    }
                    warn!(%error, "chat.send failed; will retry when the gateway is back");
                } else {
                    self.pending.retain(|p| p.id != id);
                    self.save_pending();
                    self.to_one(
                        &desktop,
                        ToDesktop::ChatError {
                            run_id: None,
                            message: format!("the gateway refused the message: {error}"),
                        },
                    );
                }
            }
            Done::Reply { desktop, msg } => self.to_one(&desktop, msg),
        }
    }
}

/// Run until `shutdown` resolves.
pub async fn run(
    cfg: ServiceConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    cfg.state.static_key()?; // create the key before anything else
    let (gw, mut gw_events) = GatewayClient::start(cfg.gateway)?;
    let (hub_tx, mut hub_rx) = mpsc::channel(4096);
    let (done_tx, mut done_rx) = mpsc::channel(1024);
    let pending: Vec<PendingSend> = cfg.state.load_pending()?;
    let mut hub = Hub {
        state: cfg.state,
        gw,
        bridge: Bridge::new(&cfg.session_key),
        links: HashMap::new(),
        hub_tx,
        done_tx,
        pending,
        instance: instance_id(),
    };
    hub.reconcile_links();
    info!(desktops = hub.links.len(), "clawtray-agent running");
    let mut poll = tokio::time::interval(PAIRINGS_POLL);
    let mut last_news = Instant::now();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            ev = gw_events.recv() => match ev {
                Ok(GatewayEvent::Connected { .. }) => {
                    let mut out = hub.bridge.reset("the agent reconnected to its gateway");
                    out.push(hub.gateway_status());
                    hub.to_all(out);
                    hub.flush_pending();
                }
                Ok(GatewayEvent::Disconnected { reason }) => {
                    let mut out = hub.bridge.reset(&format!("the agent lost its gateway ({reason})"));
                    out.push(ToDesktop::AgentStatus { gateway: GatewayStatus::Disconnected });
                    hub.to_all(out);
                    for p in &mut hub.pending {
                        p.in_flight = false;
                    }
                }
                Ok(GatewayEvent::Event { name, payload }) => {
                    let out = hub.bridge.on_event(&name, &payload);
                    if !out.is_empty() {
                        last_news = Instant::now();
                        hub.to_all(out);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => warn!(n, "gateway events were dropped (the agent fell behind)"),
                Err(broadcast::error::RecvError::Closed) => return Err("the gateway client stopped".into()),
            },
            Some(ev) = hub_rx.recv() => hub.on_hub_event(ev),
            Some(d) = done_rx.recv() => hub.on_done(d),
            _ = poll.tick() => {
                hub.reconcile_links();
                if hub.bridge.typing() && last_news.elapsed() > TYPING_TIMEOUT {
                    let out = hub.bridge.typing_timed_out();
                    hub.to_all(out);
                }
            }
        }
    }
    for tx in hub.links.values() {
        let _ = tx.try_send(LinkCmd::Stop);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
