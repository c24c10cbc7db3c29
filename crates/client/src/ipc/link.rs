//! The chat window's side of the local channel: [`HostLink`], an actor that connects to the tray
//! host, says hello, sends calls and routes the answers back, and passes everything else the host
//! sends on as [`LinkEvent`]s. When the host goes away (restarted, crashed) it says so, keeps
//! trying every [`RETRY`], and on return resends the calls that cannot act twice (a `send` carries
//! its key, which the host remembers); a call that could act twice (`pair`, `unpair`) fails with
//! `HOST_LOST` instead of being guessed about.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::server::{read_line, write_line};
use super::wire::{Call, CallError, FromHost, Hello, Outcome, Request, Role};

/// How often a lost host is looked for again.
pub const RETRY: Duration = Duration::from_millis(250);

/// What the link reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// Connected to the host (again): redraw from `status`.
    Connected,
    /// The host is gone; calls wait (or fail, see the module doc) until it is back.
    Lost { reason: String },
    /// Something the host sent that is not an answer: an event, `close`, `raise`, a pair link.
    Host(FromHost),
}

struct Pending {
    call: Call,
    agent: Option<String>,
    reply: oneshot::Sender<Result<Value, CallError>>,
}

/// Handle to the link actor; dropping it ends the connection.
#[derive(Clone)]
pub struct HostLink {
    tx: mpsc::Sender<Pending>,
}

impl HostLink {
    /// Connect to the host at `path` as `role` (and keep doing so).
    #[must_use]
    pub fn start(path: PathBuf, role: Role) -> (HostLink, mpsc::Receiver<LinkEvent>) {
        let (tx, rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(4096);
        tokio::spawn(run(path, role, rx, ev_tx));
        (HostLink { tx }, ev_rx)
    }

    /// Make `call` and wait for its answer.
    ///
    /// # Errors
    /// The host's answer, or `HOST_LOST` when the call cannot be made safely.
    pub async fn call(&self, call: Call) -> Result<Value, CallError> {
        self.call_for(None, call).await
    }

    /// [`Self::call`] for agent (slot) `agent` (`None`: the first paired one).
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn call_for(&self, agent: Option<String>, call: Call) -> Result<Value, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { call, agent, reply })
            .await
            .map_err(|_| CallError::host_lost("the link has stopped"))?;
        rx.await
            .map_err(|_| CallError::host_lost("the link has stopped"))?
    }

    /// [`Self::call`], the answer read as `T`.
    ///
    /// # Errors
    /// As [`Self::call`]; `BAD_ANSWER` when the answer is not a `T`.
    pub async fn call_as<T: DeserializeOwned>(&self, call: Call) -> Result<T, CallError> {
        self.call_as_for(None, call).await
    }

    /// [`Self::call_as`] for agent (slot) `agent`.
    ///
    /// # Errors
    /// As [`Self::call_as`].
    pub async fn call_as_for<T: DeserializeOwned>(
        &self,
        agent: Option<String>,
        call: Call,
    ) -> Result<T, CallError> {
        let v = self.call_for(agent, call).await?;
        serde_json::from_value(v).map_err(|e| {
            CallError::new(
                "BAD_ANSWER",
                format!(
                    "the tray host's answer could not be read ({}); are both parts of clawtray the same version?",
                    clawtray_proto::delivery::json_error_shape(&e)
                ),
            )
        })
    }
}

async fn run(
    path: PathBuf,
    role: Role,
    mut calls: mpsc::Receiver<Pending>,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut next_id: u64 = 1;
    // calls to (re)send once connected, by id
    let mut waiting: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut lost_said = false;
    loop {
        let stream = match UnixStream::connect(&path).await {
            Ok(s) => s,
            Err(e) => {
                if !lost_said {
                    lost_said = true;
                    let _ = events
                        .send(LinkEvent::Lost {
                            reason: format!("cannot reach {} ({e})", path.display()),
                        })
                        .await;
                }
                // take calls while waiting: the ones that may wait, wait
                let retry = tokio::time::sleep(RETRY);
                tokio::pin!(retry);
                loop {
                    tokio::select! {
                        () = &mut retry => break,
                        c = calls.recv() => match c {
                            Some(p) => {
                                let id = next_id;
                                next_id += 1;
                                park(id, p, &mut waiting, "it is not running");
                            }
                            None => return,
                        },
                    }
                }
                continue;
            }
        };
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let hello = Hello {
            role,
            pid: std::process::id(),
        };
        if write_line(&mut w, &hello).await.is_err() {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        let _ = events.send(LinkEvent::Connected).await;
        let mut in_flight: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut broke = None;
        for (id, p) in std::mem::take(&mut waiting) {
            let req = Request {
                id,
                agent: p.agent.clone(),
                call: p.call.clone(),
            };
            in_flight.insert(id, p);
            if let Err(e) = write_line(&mut w, &req).await {
                broke = Some(e.to_string());
                break;
            }
        }
        let mut line = String::new();
        while broke.is_none() {
            tokio::select! {
                got = read_line(&mut r, &mut line) => match got {
                    Ok(Some(())) => match serde_json::from_str::<FromHost>(&line) {
                        Ok(FromHost::Reply { id, outcome }) => {
                            if let Some(p) = in_flight.remove(&id) {
                                let _ = p.reply.send(match outcome {
                                    Outcome::Ok(v) => Ok(v),
                                    Outcome::Err(e) => Err(e),
                                });
                            }
                        }
                        Ok(other) => {
                            if events.send(LinkEvent::Host(other)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(
                            "a line from the tray host could not be read ({}); skipped",
                            clawtray_proto::delivery::json_error_shape(&e)
                        ),
                    },
                    Ok(None) => broke = Some("the host closed the connection".to_owned()),
                    Err(e) => broke = Some(e.to_string()),
                },
                c = calls.recv() => match c {
                    Some(p) => {
                        let id = next_id;
                        next_id += 1;
                        let req = Request { id, agent: p.agent.clone(), call: p.call.clone() };
                        in_flight.insert(id, p);
                        if let Err(e) = write_line(&mut w, &req).await {
                            broke = Some(e.to_string());
                        }
                    }
                    None => return,
                },
            }
        }
        let reason = broke.unwrap_or_default();
        for (id, p) in in_flight {
            park(id, p, &mut waiting, &reason);
        }
        lost_said = true;
        let _ = events.send(LinkEvent::Lost { reason }).await;
        tokio::time::sleep(RETRY).await;
    }
}

/// While disconnected: keep call `id` to send again if it may wait, fail it if it may not.
fn park(id: u64, p: Pending, waiting: &mut BTreeMap<u64, Pending>, why: &str) {
    if p.call.may_resend() {
        waiting.insert(id, p);
    } else {
        let _ = p.reply.send(Err(CallError::host_lost(why)));
    }
}
