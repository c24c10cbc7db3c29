//! One WebSocket connection's actor. It owns the socket and its state, reads frames, enforces the
//! per-connection limits, and talks to other connections only through their [`PeerHandle`]s.
//!
//! ```text
//!   Fresh ──claim──▶ Claimed ──desktop joins──▶ Linked ──both confirmed──▶ Session
//!   Fresh ──join───────────────────────────────▶ Linked
//!   (connect with Bearer + ?session=) ─────────────────────────────────────▶ Session
//! ```
//! The other connection of a pairing or a session is a [`Target`]: a handle on this relay, or on
//! a cluster node a location on another node (`cluster`), reached the same way.
//! It never logs frame contents, tokens or session secrets.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use clawtray_proto::control::{ControlFrame, ErrorCode, MAX_CONTROL_FRAME};
use clawtray_proto::secret::{fill_random, new_device_token, DeviceToken, SecretString};
use clawtray_proto::Role;

use crate::limits::TokenBucket;
use crate::pairing::{Both, Confirmation};
use crate::peer::{self, DeliverError, Loc, Mailbox, Outbound, PeerHandle, Target};
use crate::shared::Shared;
use crate::store::{token_hash, SessionRecord};

/// Time allowed to write the closing error and close frame (a slow reader must first drain what
/// its socket already holds, so this is generous).
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest base64 SPAKE2 message accepted in a `pake` frame.
const MAX_PAKE_B64: usize = 128;
/// Length of a session id: 16 random bytes, base64url.
const SESSION_ID_LEN: usize = 22;
/// Most frames written with one flush (one `write` to the socket) when the mailbox holds several.
const MAX_BATCH_FRAMES: usize = 64;
/// Most bytes written with one flush.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How a connection asked to start.
#[derive(Debug)]
pub struct ConnInfo {
    pub role: Role,
    pub ip: IpAddr,
    /// Present when the request carried `Authorization: Bearer` and/or `?session=`.
    pub resume: Option<Resume>,
    /// The agent process's instance id (`?instance=`), to detect restarts.
    pub instance: Option<String>,
}

/// Credentials to resume a session.
#[derive(Debug)]
pub struct Resume {
    pub session: Option<String>,
    pub token: Option<SecretString>,
}

#[derive(Debug)]
enum State {
    Fresh,
    Claimed {
        nameplate: String,
        expires: Instant,
    },
    Linked {
        nameplate: String,
        deadline: Instant,
        /// The other end of the pairing.
        partner: Target,
        /// The device token this end gets if pairing completes (made when it confirms; only
        /// its hash leaves this connection before `paired`).
        token: Option<DeviceToken>,
    },
    Session {
        session: String,
        /// The other end, while it is connected to another node of the cluster.
        remote_peer: Option<Loc>,
    },
}

impl State {
    fn deadline(&self) -> Option<Instant> {
        match self {
            State::Claimed { expires, .. } => Some(*expires),
            State::Linked { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }
}

/// Why the read loop ended.
enum End {
    /// The client closed or the socket died: nothing to send.
    Gone,
    /// We close with this code.
    Close(ErrorCode),
}

/// Why a guarded socket write stopped short.
enum WriteStop {
    /// The socket failed.
    Failed,
    /// The peer did not take the bytes within the write limit.
    TooSlow,
    /// Another actor closed this connection.
    Killed,
    /// The relay is shutting down.
    ShuttingDown,
}

/// Run a socket write, giving up when it takes longer than `limit` (a slow reader) or when the
/// connection is killed (`kill`) or the relay shuts down meanwhile.
async fn guarded_write<T>(
    write: impl std::future::Future<Output = Result<T, tungstenite::Error>>,
    limit: Duration,
    kill: &tokio_util::sync::CancellationToken,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<T, WriteStop> {
    tokio::select! {
        r = timeout(limit, write) => match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(WriteStop::Failed),
            Err(_) => Err(WriteStop::TooSlow),
        },
        () = kill.cancelled() => Err(WriteStop::Killed),
        () = shutdown.cancelled() => Err(WriteStop::ShuttingDown),
    }
}

struct Conn<S> {
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    role: Role,
    ip: IpAddr,
    instance: Option<String>,
    handle: PeerHandle,
    mailbox: Mailbox,
    state: State,
    frames: TokenBucket,
    bytes: TokenBucket,
    /// Since when this connection has held neither a session nor a live nameplate.
    unauthenticated_since: Option<Instant>,
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn new_session_id() -> Result<String, ErrorCode> {
    let mut b = [0u8; 16];
    fill_random(&mut b).map_err(|_| ErrorCode::Internal)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

fn valid_session_id(s: &str) -> bool {
    s.len() == SESSION_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn close_code_for(code: ErrorCode) -> CloseCode {
    match code {
        ErrorCode::FrameTooLarge => CloseCode::Size,
        ErrorCode::ShuttingDown => CloseCode::Restart,
        ErrorCode::Internal => CloseCode::Error,
        ErrorCode::TooManyConnections | ErrorCode::RateLimited => CloseCode::Again,
        ErrorCode::SessionRevoked | ErrorCode::Replaced => CloseCode::Normal,
        _ => CloseCode::Policy,
    }
}

/// Serve one upgraded connection until it ends.
pub async fn run<S>(ws: WebSocketStream<S>, info: ConnInfo, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let conn_id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (handle, mailbox) = peer::channel(
        conn_id,
        shared.limits.queue_frames,
        shared.limits.queue_bytes,
    );
    let now = std::time::Instant::now();
    let l = &shared.limits;
    let mut conn = Conn {
        frames: TokenBucket::new(f64::from(l.frames_per_sec), f64::from(l.frame_burst), now),
        bytes: TokenBucket::new(l.bytes_per_sec as f64, l.byte_burst as f64, now),
        ws,
        role: info.role,
        ip: info.ip,
        instance: info.instance,
        handle,
        mailbox,
        state: State::Fresh,
        shared: shared.clone(),
        unauthenticated_since: None,
    };
    debug!(conn = conn_id, role = %conn.role, "connection open");
    if let Some(c) = &shared.cluster {
        c.register(&conn.handle);
    }
    let end = match info.resume {
        Some(r) => match conn.limited_resume(r).await {
            Ok(()) => conn.event_loop().await,
            Err(code) => End::Close(code),
        },
        None => conn.event_loop().await,
    };
    if let End::Close(code) = end {
        conn.close(code).await;
    }
    conn.cleanup().await;
    if let Some(c) = &shared.cluster {
        c.unregister(conn_id);
    }
    debug!(conn = conn_id, "connection closed");
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn event_loop(&mut self) -> End {
        let idle_timeout = self.shared.limits.idle_timeout;
        let mut idle_deadline = Instant::now() + idle_timeout;
        loop {
            let state_deadline = self.state.deadline();
            // holding nothing (no session, no nameplate) has a deadline that pings do not extend
            let unauth_deadline = if matches!(self.state, State::Fresh) {
                let since = *self.unauthenticated_since.get_or_insert_with(Instant::now);
                Some(since + self.shared.limits.unauthenticated_timeout)
            } else {
                self.unauthenticated_since = None;
                None
            };
            tokio::select! {
                biased;
                () = self.mailbox.kill.cancelled() => return End::Close(self.mailbox.kill_reason()),
                () = self.shared.shutdown.cancelled() => return End::Close(ErrorCode::ShuttingDown),
                out = self.mailbox.rx.recv() => {
                    let Some(out) = out else { return End::Close(ErrorCode::Internal) };
                    if let Err(end) = self.on_outbound(out).await {
                        return end;
                    }
                }
                msg = self.ws.next() => {
                    match msg {
                        None => return End::Gone,
                        Some(Err(tungstenite::Error::Capacity(_))) => return End::Close(ErrorCode::FrameTooLarge),
                        Some(Err(e)) => {
                            debug!(conn = self.handle.conn_id, error = %e, "socket error");
                            return End::Gone;
                        }
                        Some(Ok(m)) => {
                            idle_deadline = Instant::now() + idle_timeout;
                            if let Err(end) = self.on_message(m).await {
                                return end;
                            }
                        }
                    }
                }
                () = sleep_until(idle_deadline) => return End::Close(ErrorCode::IdleTimeout),
                () = sleep_until(unauth_deadline.unwrap_or(idle_deadline)), if unauth_deadline.is_some() => {
                    return End::Close(ErrorCode::HandshakeTimeout);
                }
                () = sleep_until(state_deadline.unwrap_or(idle_deadline)), if state_deadline.is_some() => {
                    if let Err(end) = self.on_deadline().await {
                        return end;
                    }
                }
            }
        }
    }

    /// Send one message, giving up if this connection is killed or shut down meanwhile.
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        let limit = self.shared.limits.idle_timeout;
        let written = guarded_write(
            self.ws.send(msg),
            limit,
            &self.mailbox.kill,
            &self.shared.shutdown,
        )
        .await;
        written.map_err(|stop| self.end_for(stop))
    }

    /// How this connection ends after a write stopped short.
    fn end_for(&self, stop: WriteStop) -> End {
        match stop {
            WriteStop::Failed => End::Gone,
            WriteStop::TooSlow => End::Close(ErrorCode::SlowReader),
            WriteStop::Killed => End::Close(self.mailbox.kill_reason()),
            WriteStop::ShuttingDown => End::Close(ErrorCode::ShuttingDown),
        }
    }

    async fn send_control(&mut self, frame: &ControlFrame) -> Result<(), End> {
        self.send(Message::text(frame.to_json())).await
    }

    async fn close(&mut self, code: ErrorCode) {
        self.shared.metrics.rejected(code);
        if !matches!(
            code,
            ErrorCode::SessionRevoked | ErrorCode::ShuttingDown | ErrorCode::Replaced
        ) {
            info!(conn = self.handle.conn_id, role = %self.role, reason = code.as_str(), "closing connection");
        }
        let frame = ControlFrame::error(code);
        let close = CloseFrame {
            code: close_code_for(code),
            reason: code.as_str().into(),
        };
        let _ = timeout(CLOSE_WRITE_TIMEOUT, async {
            self.ws.send(Message::text(frame.to_json())).await?;
            self.ws.close(Some(close)).await
        })
        .await;
    }

    async fn cleanup(&mut self) {
        match std::mem::replace(&mut self.state, State::Fresh) {
            State::Fresh => {}
            State::Claimed { nameplate, .. } => {
                self.shared.pairing.burn(&nameplate).await;
            }
            State::Linked {
                nameplate, partner, ..
            } => {
                // Still live means this side abandoned the attempt (a failure already burned it).
                if self.shared.pairing.burn(&nameplate).await {
                    self.shared
                        .metrics
                        .pairing_failures
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.close(&partner, ErrorCode::PeerGone);
                }
            }
            State::Session { session, .. } => {
                let conn_id = self.handle.conn_id;
                if let Some(Some(peer)) = self
                    .shared
                    .routes
                    .detach(&session, self.role, conn_id)
                    .await
                {
                    let note = Outbound::PeerNote {
                        frame: ControlFrame::PeerOffline,
                        from: self.shared.from_for(&peer, conn_id),
                    };
                    let _ = self.shared.deliver(&peer, note);
                }
                if let Err(e) = self.shared.store.touch(&session, unix_now()).await {
                    warn!(error = %e, "could not record last-seen time");
                }
            }
        }
    }

    fn check_rate(&mut self, len: usize) -> Result<(), End> {
        let now = std::time::Instant::now();
        if !self.frames.try_take(1.0, now) || !self.bytes.try_take(len as f64, now) {
            return Err(End::Close(ErrorCode::Flooding));
        }
        Ok(())
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), End> {
        match msg {
            Message::Text(t) => {
                self.check_rate(t.len())?;
                if t.len() > MAX_CONTROL_FRAME {
                    return Err(End::Close(ErrorCode::FrameTooLarge));
                }
                let frame = ControlFrame::from_json(t.as_str())
                    .map_err(|_| End::Close(ErrorCode::BadFrame))?;
                self.on_control(frame).await
            }
            Message::Binary(b) => {
                self.check_rate(b.len())?;
                self.on_binary(b)
            }
            Message::Ping(_) | Message::Pong(_) => self.check_rate(0),
            Message::Close(_) => Err(End::Gone),
            Message::Frame(_) => Ok(()),
        }
    }

    /// Queue a control frame to ourselves (so all socket writes happen in one place).
    fn reply(&self, frame: ControlFrame) -> Result<(), End> {
        self.handle
            .deliver(Outbound::Control(frame))
            .map_err(|_| End::Close(ErrorCode::SlowReader))
    }

    /// One more pairing attempt from this address: within the per-address limit (across the
    /// cluster, on a cluster node)?
    async fn pairing_allowed(&self) -> Result<(), End> {
        if !self
            .shared
            .pairing_limiter
            .allow(self.ip, std::time::Instant::now())
        {
            return Err(End::Close(ErrorCode::RateLimited));
        }
        if let Some(c) = &self.shared.cluster {
            let per_minute = self.shared.limits.pairing_per_ip_per_min;
            match c.pairing_allowed(self.ip, per_minute).await {
                Ok(true) => {}
                Ok(false) => return Err(End::Close(ErrorCode::RateLimited)),
                Err(code) => return Err(End::Close(code)),
            }
        }
        Ok(())
    }

    async fn on_control(&mut self, frame: ControlFrame) -> Result<(), End> {
        match (&self.state, self.role, frame) {
            (State::Fresh, Role::Agent, ControlFrame::Claim) => {
                self.pairing_allowed().await?;
                let now = Instant::now();
                let nameplate = self
                    .shared
                    .pairing
                    .claim(&self.handle, self.instance.clone(), random_u64)
                    .await
                    .map_err(End::Close)?;
                let ttl = self.shared.pairing.ttl();
                self.state = State::Claimed {
                    nameplate: nameplate.clone(),
                    expires: now + ttl,
                };
                self.reply(ControlFrame::Claimed {
                    nameplate,
                    expires_in: ttl.as_secs(),
                })
            }
            (State::Fresh, Role::Desktop, ControlFrame::Join { nameplate }) => {
                self.pairing_allowed().await?;
                self.shared
                    .metrics
                    .pairing_attempts
                    .fetch_add(1, Ordering::Relaxed);
                match self.shared.pairing.join(&nameplate, &self.handle).await {
                    Err(code) => self.reply(ControlFrame::error(code)),
                    Ok(agent) => {
                        let linked = Outbound::Linked {
                            partner: Target::Local(self.handle.clone()),
                        };
                        if self.shared.deliver(&agent, linked).is_err() {
                            self.shared.pairing.burn(&nameplate).await;
                            return self.reply(ControlFrame::error(ErrorCode::PeerGone));
                        }
                        self.state = State::Linked {
                            nameplate,
                            deadline: Instant::now() + self.shared.limits.pairing_timeout,
                            partner: agent,
                            token: None,
                        };
                        self.reply(ControlFrame::Linked)
                    }
                }
            }
            (State::Linked { partner, .. }, _, ControlFrame::Pake { msg }) => {
                if msg.len() > MAX_PAKE_B64
                    || base64::engine::general_purpose::STANDARD
                        .decode(&msg)
                        .is_err()
                {
                    return Err(End::Close(ErrorCode::BadFrame));
                }
                self.shared
                    .deliver(partner, Outbound::Control(ControlFrame::Pake { msg }))
                    .map_err(|_| End::Close(ErrorCode::PeerGone))
            }
            (State::Linked { nameplate, .. }, role, ControlFrame::Confirmed) => {
                let nameplate = nameplate.clone();
                let token = new_device_token().map_err(|_| End::Close(ErrorCode::Internal))?;
                let hash = token_hash(token.expose());
                if let State::Linked { token: kept, .. } = &mut self.state {
                    *kept = Some(token);
                }
                match self.shared.pairing.confirm(&nameplate, role, hash).await {
                    Err(code) => Err(End::Close(code)),
                    Ok(Confirmation::Gone) => Err(End::Close(ErrorCode::PeerGone)),
                    Ok(Confirmation::Waiting) => Ok(()),
                    Ok(Confirmation::Both(both)) => self.create_session(both).await,
                }
            }
            (
                State::Linked {
                    nameplate, partner, ..
                },
                _,
                ControlFrame::Failed { .. },
            ) => {
                self.shared
                    .metrics
                    .pairing_failures
                    .fetch_add(1, Ordering::Relaxed);
                let (nameplate, partner) = (nameplate.clone(), partner.clone());
                self.shared.pairing.burn(&nameplate).await;
                self.shared.close(&partner, ErrorCode::PairingFailed);
                self.state = State::Fresh;
                Err(End::Close(ErrorCode::PairingFailed))
            }
            (State::Session { session, .. }, _, ControlFrame::Revoke) => {
                let session = session.clone();
                if let Err(e) = self.shared.store.revoke(&session, unix_now()).await {
                    warn!(error = %e, "could not record revocation");
                    return Err(End::Close(e.code()));
                }
                info!(conn = self.handle.conn_id, role = %self.role, "session revoked");
                for t in self.shared.routes.remove(&session).await {
                    self.shared.close(&t, ErrorCode::SessionRevoked);
                }
                self.state = State::Fresh;
                Err(End::Close(ErrorCode::SessionRevoked))
            }
            _ => Err(End::Close(ErrorCode::BadFrame)),
        }
    }

    /// Both sides confirmed: store the session, route both connections, tell each it is paired
    /// (each with the token it made when it confirmed).
    async fn create_session(&mut self, both: Both) -> Result<(), End> {
        let Both {
            agent,
            agent_instance,
            desktop,
            agent_hash,
            desktop_hash,
        } = both;
        let shared = self.shared.clone();
        let fail = |code: ErrorCode| {
            shared.close(&agent, code);
            shared.close(&desktop, code);
            Err(End::Close(code))
        };
        let Ok(session) = new_session_id() else {
            return fail(ErrorCode::Internal);
        };
        let now = unix_now();
        let record = SessionRecord {
            id: session.clone(),
            agent_token_hash: agent_hash,
            desktop_token_hash: desktop_hash,
            created_at: now,
            last_seen: now,
            revoked_at: None,
        };
        if let Err(e) = shared.store.create(&record).await {
            warn!(error = %e, "could not store a new session");
            return fail(e.code());
        }
        // Route both before either learns it is paired, so the first meeting's frames find their way.
        if let Err(code) = shared
            .routes
            .attach_pair(&session, &agent, agent_instance.as_deref(), &desktop)
            .await
        {
            return fail(code);
        }
        shared
            .metrics
            .pairings_completed
            .fetch_add(1, Ordering::Relaxed);
        info!("pairing completed; session created");
        // each end learns where the other is when that is another node
        let loc_of = |t: &Target| match t {
            Target::Local(h) => shared.loc(h.conn_id),
            Target::Remote(l) => Some(l.clone()),
        };
        let apart = !matches!((&agent, &desktop), (Target::Local(_), Target::Local(_)));
        for (to, other) in [(&agent, &desktop), (&desktop, &agent)] {
            let enter = Outbound::EnterSession {
                session: session.clone(),
                peer: if apart { loc_of(other) } else { None },
            };
            // A failure here closes that side; the other notices through peer_offline.
            let _ = shared.deliver(to, enter);
        }
        Ok(())
    }

    fn on_binary(&mut self, frame: Bytes) -> Result<(), End> {
        let target = match &self.state {
            State::Linked { partner, .. } => Some(partner.clone()),
            State::Session {
                session,
                remote_peer,
            } => self
                .shared
                .routes
                .local(session, self.role.peer())
                .map(Target::Local)
                .or_else(|| remote_peer.clone().map(Target::Remote)),
            State::Fresh | State::Claimed { .. } => return Err(End::Close(ErrorCode::BadFrame)),
        };
        let len = frame.len() as u64;
        match target.map(|t| self.shared.deliver(&t, Outbound::Binary(frame))) {
            Some(Ok(())) => {
                self.shared
                    .metrics
                    .frames_forwarded
                    .fetch_add(1, Ordering::Relaxed);
                self.shared
                    .metrics
                    .bytes_forwarded
                    .fetch_add(len, Ordering::Relaxed);
            }
            None | Some(Err(DeliverError::Away | DeliverError::Slow)) => {
                self.shared
                    .metrics
                    .frames_dropped_peer_away
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Forward `first` and whatever binary frames already wait behind it (up to a batch) with one
    /// flush, so a busy session costs one socket write per batch instead of per frame. Returns
    /// the first queued item that is not a binary frame, for the caller to handle next.
    async fn forward_batch(&mut self, first: Bytes) -> Result<Option<Outbound>, End> {
        let limit = self.shared.limits.idle_timeout;
        // the batch drains the mailbox, so it cannot also lend out the mailbox's kill token
        let kill = self.mailbox.kill.clone();
        let (ws, mailbox) = (&mut self.ws, &mut self.mailbox);
        let write = async {
            let mut next = None;
            let (mut frames, mut bytes) = (1, first.len());
            mailbox.dequeued(first.len());
            ws.feed(Message::Binary(first)).await?;
            while frames < MAX_BATCH_FRAMES && bytes < MAX_BATCH_BYTES {
                match mailbox.rx.try_recv() {
                    Ok(Outbound::Binary(b)) => {
                        frames += 1;
                        bytes += b.len();
                        mailbox.dequeued(b.len());
                        ws.feed(Message::Binary(b)).await?;
                    }
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            ws.flush().await.map(|()| next)
        };
        let written = guarded_write(write, limit, &kill, &self.shared.shutdown).await;
        written.map_err(|stop| self.end_for(stop))
    }

    async fn on_outbound(&mut self, out: Outbound) -> Result<(), End> {
        match out {
            Outbound::Binary(b) => match self.forward_batch(b).await? {
                Some(next) => Box::pin(self.on_outbound(next)).await,
                None => Ok(()),
            },
            Outbound::Linked { partner } => {
                if let State::Claimed { nameplate, .. } = &self.state {
                    self.state = State::Linked {
                        nameplate: nameplate.clone(),
                        deadline: Instant::now() + self.shared.limits.pairing_timeout,
                        partner,
                        token: None,
                    };
                }
                self.send_control(&ControlFrame::Linked).await
            }
            Outbound::Control(c) => self.send_control(&c).await,
            Outbound::EnterSession { session, peer } => {
                let State::Linked { token, .. } = &mut self.state else {
                    return Err(End::Close(ErrorCode::Internal));
                };
                let Some(token) = token.take() else {
                    return Err(End::Close(ErrorCode::Internal));
                };
                self.shared
                    .routes
                    .attach_entered(&session, self.role, &self.handle);
                self.state = State::Session {
                    session: session.clone(),
                    remote_peer: peer,
                };
                self.send_control(&ControlFrame::Paired { session, token })
                    .await
            }
            Outbound::PeerNote { frame, from } => self.on_peer_note(frame, from).await,
            Outbound::NodeGone(node) => self.on_node_gone(&node).await,
            Outbound::CloseWith(code) => Err(End::Close(code)),
        }
    }

    /// The other end came, went, or came back as a new process. A note that an end left is
    /// passed on only if it is about the end this connection knows (ends may move between nodes
    /// faster than notes travel).
    async fn on_peer_note(&mut self, frame: ControlFrame, from: Option<Loc>) -> Result<(), End> {
        let State::Session { remote_peer, .. } = &mut self.state else {
            return Ok(());
        };
        if frame == ControlFrame::PeerOffline {
            if *remote_peer != from {
                return Ok(());
            }
            *remote_peer = None;
        } else {
            *remote_peer = from;
        }
        self.send_control(&frame).await
    }

    /// A node left the cluster: an other end there is gone. When the node is this one (its lease
    /// ran out while Redis was away, so the others may have written it off), an end with a
    /// partner on another node is closed to reconnect and be announced afresh.
    async fn on_node_gone(&mut self, node: &str) -> Result<(), End> {
        let me = self.shared.cluster.as_ref().map(|c| c.node.clone());
        let remote_node = match &self.state {
            State::Session {
                remote_peer: Some(l),
                ..
            } => Some(l.node.clone()),
            State::Linked {
                partner: Target::Remote(l),
                ..
            } => Some(l.node.clone()),
            _ => None,
        };
        let Some(remote_node) = remote_node else {
            return Ok(());
        };
        if me.as_deref() == Some(node) {
            return Err(End::Close(ErrorCode::Unavailable));
        }
        if *remote_node != *node {
            return Ok(());
        }
        match &mut self.state {
            State::Session { remote_peer, .. } => {
                *remote_peer = None;
                self.send_control(&ControlFrame::PeerOffline).await
            }
            _ => Err(End::Close(ErrorCode::PeerGone)),
        }
    }

    async fn on_deadline(&mut self) -> Result<(), End> {
        match std::mem::replace(&mut self.state, State::Fresh) {
            State::Claimed { nameplate, .. } => {
                self.shared
                    .pairing
                    .expire(&nameplate, self.handle.conn_id)
                    .await;
                self.send_control(&ControlFrame::error(ErrorCode::NameplateExpired))
                    .await
            }
            State::Linked {
                nameplate, partner, ..
            } => {
                self.shared
                    .metrics
                    .pairing_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.pairing.burn(&nameplate).await;
                self.shared.close(&partner, ErrorCode::HandshakeTimeout);
                Err(End::Close(ErrorCode::HandshakeTimeout))
            }
            other => {
                self.state = other;
                Ok(())
            }
        }
    }

    /// Check credentials and join the session's route.
    /// [`Conn::resume`], refusing an address whose resumes failed too often this minute (a
    /// guesser of session ids or tokens gets nowhere and costs no lookups).
    async fn limited_resume(&mut self, r: Resume) -> Result<(), ErrorCode> {
        let now = std::time::Instant::now();
        if self.shared.resume_limiter.is_over(self.ip, now) {
            return Err(ErrorCode::RateLimited);
        }
        let result = self.resume(r).await;
        if matches!(
            result,
            Err(ErrorCode::SessionNotFound
                | ErrorCode::InvalidSession
                | ErrorCode::DeviceTokenMismatch)
        ) {
            let _ = self.shared.resume_limiter.allow(self.ip, now);
        }
        result
    }

    async fn resume(&mut self, r: Resume) -> Result<(), ErrorCode> {
        let session = r.session.ok_or(ErrorCode::InvalidSession)?;
        if !valid_session_id(&session) {
            return Err(ErrorCode::InvalidSession);
        }
        let token = r.token.ok_or(ErrorCode::DeviceTokenMismatch)?;
        let record = self
            .shared
            .store
            .get(&session)
            .await
            .map_err(|e| {
                warn!(error = %e, "session lookup failed");
                e.code()
            })?
            .ok_or(ErrorCode::SessionNotFound)?;
        if record.revoked_at.is_some() {
            return Err(ErrorCode::SessionRevoked);
        }
        let ttl = i64::try_from(self.shared.limits.session_ttl.as_secs()).unwrap_or(i64::MAX);
        let now = unix_now();
        if record.last_seen.saturating_add(ttl) < now {
            return Err(ErrorCode::SessionExpired);
        }
        if !record.token_matches(self.role, token.expose()) {
            return Err(ErrorCode::DeviceTokenMismatch);
        }
        if let Err(e) = self.shared.store.touch(&session, now).await {
            warn!(error = %e, "could not record last-seen time");
        }
        let attached = match self
            .shared
            .routes
            .attach(&session, self.role, &self.handle, self.instance.as_deref())
            .await
        {
            Ok(a) => a,
            Err(ErrorCode::Unavailable) => {
                // A cluster node whose Redis is away: the record was verified (from this node's
                // memory of it), so serve the end here and tell the cluster once Redis answers.
                let a = self
                    .shared
                    .routes
                    .attach_here(&session, self.role, &self.handle);
                announce_when_redis_answers(
                    self.shared.clone(),
                    session.clone(),
                    self.role,
                    self.handle.clone(),
                    self.instance.clone(),
                );
                a
            }
            Err(code) => return Err(code),
        };
        if let Some(old) = &attached.replaced {
            self.shared.close(old, ErrorCode::Replaced);
        }
        self.shared.metrics.resumes.fetch_add(1, Ordering::Relaxed);
        let remote_peer = match &attached.peer {
            Some(Target::Remote(l)) => Some(l.clone()),
            _ => None,
        };
        self.state = State::Session {
            session,
            remote_peer,
        };
        let peer_online = attached.peer.is_some();
        if let Some(peer) = attached.peer {
            let frame = if attached.agent_restarted {
                ControlFrame::PeerRestarted
            } else {
                ControlFrame::PeerOnline
            };
            let from = self.shared.from_for(&peer, self.handle.conn_id);
            let _ = self
                .shared
                .deliver(&peer, Outbound::PeerNote { frame, from });
        }
        debug!(conn = self.handle.conn_id, role = %self.role, peer_online, "session resumed");
        self.reply(ControlFrame::Resumed { peer_online })
            .map_err(|_| ErrorCode::Internal)
    }
}

/// How often a connection served while Redis was away tries to record itself there.
const ANNOUNCE_RETRY: Duration = Duration::from_secs(1);

/// Record in Redis an end that resumed on this node while Redis was away, once Redis answers
/// (until the connection ends): replace an older connection elsewhere, and introduce the two ends
/// to each other when the other one sits on another node.
fn announce_when_redis_answers(
    shared: Arc<Shared>,
    session: String,
    role: Role,
    handle: PeerHandle,
    instance: Option<String>,
) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let ttl = shared.limits.session_ttl.as_secs();
    tokio::spawn(async move {
        let me = cluster.loc(handle.conn_id);
        loop {
            tokio::time::sleep(ANNOUNCE_RETRY).await;
            if handle.is_closed() || shared.shutdown.is_cancelled() {
                return;
            }
            let Ok(found) = cluster
                .attach(&session, role, &me, instance.as_deref(), ttl)
                .await
            else {
                continue;
            };
            if let Some(old) = crate::routes::Router::remote(&cluster, found.previous) {
                shared.close(&old, ErrorCode::Replaced);
            }
            let peer_here = shared.routes.local(&session, role.peer()).is_some();
            if let (false, Some(Target::Remote(peer))) = (
                peer_here,
                crate::routes::Router::remote(&cluster, found.peer),
            ) {
                let frame = if found.agent_restarted {
                    ControlFrame::PeerRestarted
                } else {
                    ControlFrame::PeerOnline
                };
                let to_peer = Outbound::PeerNote {
                    frame,
                    from: Some(me.clone()),
                };
                let _ = cluster.send(&peer, to_peer);
                let to_me = Outbound::PeerNote {
                    frame: ControlFrame::PeerOnline,
                    from: Some(peer),
                };
                let _ = handle.deliver(to_me);
            }
            return;
        }
    });
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // On RNG failure fall back to the clock: nameplates are routing numbers, not secrets.
    if fill_random(&mut b).is_err() {
        return SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos().into())
            .unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_well_formed() {
        let id = new_session_id().unwrap();
        assert!(valid_session_id(&id), "{id}");
        assert!(!valid_session_id("short"));
        assert!(!valid_session_id("aaaaaaaaaaaaaaaaaaaa/="));
    }
}
