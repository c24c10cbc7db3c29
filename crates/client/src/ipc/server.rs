//! The tray host's side of the local channel: accepts windows and launches (same user only),
//! answers their calls from the agents' [`RelayClient`]s (the agent a call names, else the first
//! paired one) in the order each peer made them, streams every agent's events, each marked with
//! its agent, to every window, and passes on what only the host can do (show the chat, a
//! pairing link, start at login after a pairing) as [`HostRequest`]s. A window that goes away
//! changes nothing in the core: the host carries on and the next window starts from `status`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, watch, Mutex};
use tracing::{debug, info, warn};

use super::endpoint::check_peer;
use super::wire::{
    Call, CallError, FromHost, Hello, Outcome, Queued, Request, Role, Status, MAX_LINE,
};
use crate::agents::Agents;
use crate::{ClientEvent, RelayClient, Sent};

/// A peer must say hello this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How many recent `send` keys are remembered (a window resends at most its calls in flight).
const SEND_KEYS: usize = 256;

/// What the host app must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRequest {
    /// Show the chat (a second launch); `link` is a pairing link to pre-fill.
    Show { link: Option<String> },
    /// A pairing succeeded (the host turns start-at-login on).
    Paired,
}

/// The host's handle on the server.
#[derive(Clone)]
pub struct ServerHandle {
    to_windows: broadcast::Sender<FromHost>,
    windows: watch::Receiver<usize>,
}

impl ServerHandle {
    /// Ask every connected window something ([`FromHost::Close`], [`FromHost::Raise`], …).
    pub fn tell_windows(&self, msg: FromHost) {
        let _ = self.to_windows.send(msg);
    }

    /// How many windows are connected right now, and its changes.
    #[must_use]
    pub fn windows(&self) -> watch::Receiver<usize> {
        self.windows.clone()
    }
}

struct Shared {
    agents: Arc<Mutex<Agents>>,
    events: broadcast::Sender<(String, ClientEvent)>,
    requests: mpsc::Sender<HostRequest>,
    to_windows: broadcast::Sender<FromHost>,
    windows: watch::Sender<usize>,
    /// `send` keys → what they produced, newest last.
    sends: Mutex<VecDeque<(String, Sent)>>,
}

/// Serve `agents` on `listener` until the listener fails. Returns the handle and the requests
/// the host must act on.
#[must_use]
pub fn spawn(
    listener: UnixListener,
    agents: Arc<Mutex<Agents>>,
    events: broadcast::Sender<(String, ClientEvent)>,
) -> (ServerHandle, mpsc::Receiver<HostRequest>) {
    let (requests, requests_rx) = mpsc::channel(64);
    let (to_windows, _) = broadcast::channel(64);
    let (windows, windows_rx) = watch::channel(0usize);
    let shared = Arc::new(Shared {
        agents,
        events,
        requests,
        to_windows: to_windows.clone(),
        windows,
        sends: Mutex::new(VecDeque::new()),
    });
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_peer(stream, shared).await {
                            warn!("a local connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("the local socket stopped accepting: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    (
        ServerHandle {
            to_windows,
            windows: windows_rx,
        },
        requests_rx,
    )
}

/// Read one line of at most [`MAX_LINE`] bytes; `None` at the end of the stream.
pub(crate) async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut String,
) -> std::io::Result<Option<()>> {
    buf.clear();
    let mut limited = (&mut *r).take(MAX_LINE as u64 + 1);
    let n = limited.read_line(buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(Some(()))
}

/// Write `msg` as one line.
pub(crate) async fn write_line<W: tokio::io::AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

async fn serve_peer(stream: UnixStream, shared: Arc<Shared>) -> std::io::Result<()> {
    check_peer(&stream)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let hello: Hello = match tokio::time::timeout(HELLO_TIMEOUT, read_line(&mut r, &mut line)).await
    {
        Ok(Ok(Some(()))) => serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a peer's hello could not be read ({})", shape(&e)),
            )
        })?,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "a peer said nothing",
            ))
        }
    };
    let window = hello.role == Role::Window;
    // subscribed before the first call is answered: a window that asks for `status` misses
    // no event that follows it
    let events = window.then(|| shared.events.subscribe());
    let host_msgs = window.then(|| shared.to_windows.subscribe());
    if window {
        shared.windows.send_modify(|n| *n += 1);
        info!(pid = hello.pid, "the chat window connected");
    } else {
        debug!(pid = hello.pid, "a launch connected");
    }
    let (out_tx, out_rx) = mpsc::channel::<FromHost>(256);
    let (calls_tx, calls_rx) = mpsc::channel::<Request>(256);
    let worker = tokio::spawn(answer_calls(calls_rx, out_tx, shared.clone()));
    let writer = tokio::spawn(async move {
        let r = write_loop(&mut w, out_rx, events, host_msgs).await;
        let _ = w.shutdown().await;
        r
    });
    let read = async {
        loop {
            match read_line(&mut r, &mut line).await? {
                None => return Ok::<(), std::io::Error>(()),
                Some(()) => match serde_json::from_str::<Request>(&line) {
                    Ok(req) => {
                        if calls_tx.send(req).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => warn!(
                        "a call from the {} could not be read ({}); skipped",
                        if window { "chat window" } else { "launch" },
                        shape(&e)
                    ),
                },
            }
        }
    }
    .await;
    drop(calls_tx);
    // calls already made are still answered (a launch's `show` may be its last line)
    let _ = worker.await;
    writer.abort();
    if window {
        shared.windows.send_modify(|n| *n = n.saturating_sub(1));
        info!(pid = hello.pid, "the chat window went away");
    }
    read
}

async fn write_loop(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    mut out: mpsc::Receiver<FromHost>,
    mut events: Option<broadcast::Receiver<(String, ClientEvent)>>,
    mut host_msgs: Option<broadcast::Receiver<FromHost>>,
) -> std::io::Result<()> {
    loop {
        let msg = tokio::select! {
            m = out.recv() => match m {
                Some(m) => m,
                None => return Ok(()),
            },
            ev = recv_opt(&mut events) => match ev {
                Ok((agent, event)) => FromHost::Event { event, agent: Some(agent) },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(n, "the chat window fell behind the core's events");
                    FromHost::Event { event: ClientEvent::Notice { message: "Some updates were skipped; reopen the chat if something looks stale.".into() }, agent: None }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            m = recv_opt(&mut host_msgs) => match m {
                Ok(m) => m,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        };
        write_line(w, &msg).await?;
    }
}

async fn recv_opt<T: Clone>(
    rx: &mut Option<broadcast::Receiver<T>>,
) -> Result<T, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn answer_calls(
    mut calls: mpsc::Receiver<Request>,
    out: mpsc::Sender<FromHost>,
    shared: Arc<Shared>,
) {
    while let Some(Request { id, agent, call }) = calls.recv().await {
        let outcome = match answer(call, agent, &shared).await {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        };
        if out.send(FromHost::Reply { id, outcome }).await.is_err() {
            return;
        }
    }
}

fn json<T: Serialize>(v: &T) -> Result<Value, CallError> {
    serde_json::to_value(v).map_err(|e| CallError::new("INTERNAL", e.to_string()))
}

/// The agent a call is for: (slot, client).
async fn agent_for(
    shared: &Shared,
    agent: Option<&str>,
) -> Result<(String, Arc<RelayClient>), CallError> {
    let book = shared.agents.lock().await;
    match book.resolve(agent) {
        Some(a) => Ok((a.slot.clone(), a.client.clone())),
        None => Err(CallError::new(
            "AGENT_UNKNOWN",
            format!(
                "this desktop is not paired with that agent ({}); it may have been unpaired",
                agent.unwrap_or("none")
            ),
        )),
    }
}

/// Pair: agent `agent` again, in its slot (replacing a pairing the relay refuses), or — no agent
/// named — another agent, in a free slot or a new one (the book is not held while pairing).
/// The answer is the pairing with its `slot`.
async fn pair(
    shared: &Shared,
    agent: Option<&str>,
    code: &str,
    relay: &str,
) -> Result<Value, CallError> {
    let (slot, paired) = match agent {
        Some(_) => {
            let (slot, client) = agent_for(shared, agent).await?;
            (slot, client.pair(code, relay).await)
        }
        None => {
            let (new, fresh) = shared.agents.lock().await.pairing_slot().await;
            let r = new.client.pair(code, relay).await;
            let slot = new.slot.clone();
            shared
                .agents
                .lock()
                .await
                .pairing_done(new, fresh, r.is_ok())
                .await;
            (slot, r)
        }
    };
    let info = paired?;
    let _ = shared.requests.send(HostRequest::Paired).await;
    let mut v = json(&info)?;
    v["slot"] = Value::String(slot);
    Ok(v)
}

async fn answer(call: Call, agent: Option<String>, shared: &Shared) -> Result<Value, CallError> {
    if let Call::Pair { code, relay } = &call {
        return pair(shared, agent.as_deref(), code, relay).await;
    }
    let (slot, client) = agent_for(shared, agent.as_deref()).await?;
    match call {
        Call::Pair { .. } => Ok(Value::Null), // answered above, before any slot is resolved
        Call::Status => {
            let state = client.state().borrow().clone();
            let queued = client
                .queued_in_sessions()
                .await
                .into_iter()
                .map(|(id, text, session)| Queued { id, text, session })
                .collect();
            let agents = shared.agents.lock().await.views().await;
            let session = agents
                .iter()
                .find(|a| a.slot == slot)
                .and_then(|a| a.session.clone());
            json(&Status {
                state,
                session,
                queued,
                agent: slot,
                agents,
            })
        }
        Call::Send {
            text,
            key,
            session,
            files,
        } => {
            // one at a time per key: a resent call waits for the first and returns its id
            let mut sends = shared.sends.lock().await;
            if let Some((_, sent)) = sends.iter().find(|(k, _)| *k == key) {
                return json(sent);
            }
            // the key is the message's id: a host started after one that died mid-call finds
            // the message in the outbox, and the agent and the gateway dedupe it too
            let files = files
                .into_iter()
                .map(super::wire::WireFile::decode)
                .collect::<Result<Vec<_>, _>>()?;
            let sent = client
                .send_with_files(session.as_deref(), &text, Some(&key), files)
                .await?;
            sends.push_back((key, sent.clone()));
            while sends.len() > SEND_KEYS {
                sends.pop_front();
            }
            json(&sent)
        }
        Call::Abort { run_id, session } => {
            json(&client.abort_in(session.as_deref(), &run_id).await?)
        }
        Call::History {
            limit,
            before,
            session,
        } => json(
            &client
                .load_history_page(session.as_deref(), limit.clamp(1, 500), before.as_deref())
                .await?,
        ),
        Call::Sessions => json(&client.list_sessions().await?),
        Call::Unpair => json(&shared.agents.lock().await.unpair(&slot).await?),
        Call::Decide { id, decision } => json(&client.decide(&id, decision).await?),
        Call::Approvals => json(&client.list_approvals().await?),
        Call::Reconnect => {
            client.reconnect_now().await;
            Ok(Value::Null)
        }
        Call::Show { link } => {
            let _ = shared.requests.send(HostRequest::Show { link }).await;
            Ok(Value::Null)
        }
    }
}

/// The shape of a JSON error, never its content (a call may carry message text).
fn shape(e: &serde_json::Error) -> String {
    clawtray_proto::delivery::json_error_shape(e)
}
