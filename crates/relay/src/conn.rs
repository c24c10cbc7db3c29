//! One WebSocket connection's actor. It owns the socket and its state, reads frames, enforces the
//! per-connection limits, and talks to other connections only through their [`PeerHandle`]s.
//!
//! ```text
//!   Fresh ──claim──▶ Claimed ──desktop joins──▶ Linked ──both confirmed──▶ Session
//!   Fresh ──join───────────────────────────────▶ Linked
//!   (connect with Bearer + ?session=) ─────────────────────────────────────▶ Session
//! ```
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
use clawtray_proto::secret::{fill_random, new_device_token, SecretString};
use clawtray_proto::Role;

use crate::limits::TokenBucket;
use crate::nameplates::Confirmation;
use crate::peer::{self, DeliverError, Mailbox, Outbound, PeerHandle};
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
    },
    Session {
        session: String,
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
    let end = match info.resume {
        Some(r) => match conn.limited_resume(r) {
            Ok(()) => conn.event_loop().await,
            Err(code) => End::Close(code),
        },
        None => conn.event_loop().await,
    };
    if let End::Close(code) = end {
        conn.close(code).await;
    }
    conn.cleanup();
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
                            if let Err(end) = self.on_message(m) {
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

    fn cleanup(&mut self) {
        match std::mem::replace(&mut self.state, State::Fresh) {
            State::Fresh => {}
            State::Claimed { nameplate, .. } => {
                self.shared.nameplates.burn(&nameplate);
            }
            State::Linked { nameplate, .. } => {
                // Still live means this side abandoned the attempt (a failure already burned it).
                let burned = self.shared.nameplates.burn(&nameplate);
                if !burned.is_empty() {
                    self.shared
                        .metrics
                        .pairing_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                for h in burned {
                    if h.conn_id != self.handle.conn_id {
                        h.close(ErrorCode::PeerGone);
                    }
                }
            }
            State::Session { session } => {
                if let Some(Some(peer)) =
                    self.shared
                        .routes
                        .detach(&session, self.role, self.handle.conn_id)
                {
                    let _ = peer.deliver(Outbound::Control(ControlFrame::PeerOffline));
                }
                if let Err(e) = self.shared.store.touch(&session, unix_now()) {
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

    fn on_message(&mut self, msg: Message) -> Result<(), End> {
        match msg {
            Message::Text(t) => {
                self.check_rate(t.len())?;
                if t.len() > MAX_CONTROL_FRAME {
                    return Err(End::Close(ErrorCode::FrameTooLarge));
                }
                let frame = ControlFrame::from_json(t.as_str())
                    .map_err(|_| End::Close(ErrorCode::BadFrame))?;
                self.on_control(frame)
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

    fn pairing_allowed(&self) -> bool {
        self.shared
            .pairing_limiter
            .allow(self.ip, std::time::Instant::now())
    }

    fn on_control(&mut self, frame: ControlFrame) -> Result<(), End> {
        match (&self.state, self.role, frame) {
            (State::Fresh, Role::Agent, ControlFrame::Claim) => {
                if !self.pairing_allowed() {
                    return Err(End::Close(ErrorCode::RateLimited));
                }
                let now = Instant::now();
                let nameplate = self
                    .shared
                    .nameplates
                    .claim(
                        self.handle.clone(),
                        self.instance.clone(),
                        now.into_std(),
                        random_u64,
                    )
                    .ok_or(End::Close(ErrorCode::TooManyConnections))?;
                let ttl = self.shared.nameplates.ttl();
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
                if !self.pairing_allowed() {
                    return Err(End::Close(ErrorCode::RateLimited));
                }
                self.shared
                    .metrics
                    .pairing_attempts
                    .fetch_add(1, Ordering::Relaxed);
                match self.shared.nameplates.join(
                    &nameplate,
                    self.handle.clone(),
                    std::time::Instant::now(),
                ) {
                    Err(code) => self.reply(ControlFrame::error(code)),
                    Ok(agent) => {
                        if agent
                            .deliver(Outbound::Control(ControlFrame::Linked))
                            .is_err()
                        {
                            self.shared.nameplates.burn(&nameplate);
                            return self.reply(ControlFrame::error(ErrorCode::PeerGone));
                        }
                        self.state = State::Linked {
                            nameplate,
                            deadline: Instant::now() + self.shared.limits.pairing_timeout,
                        };
                        self.reply(ControlFrame::Linked)
                    }
                }
            }
            (State::Linked { nameplate, .. }, role, ControlFrame::Pake { msg }) => {
                if msg.len() > MAX_PAKE_B64
                    || base64::engine::general_purpose::STANDARD
                        .decode(&msg)
                        .is_err()
                {
                    return Err(End::Close(ErrorCode::BadFrame));
                }
                let partner = self
                    .shared
                    .nameplates
                    .partner(nameplate, role)
                    .ok_or(End::Close(ErrorCode::PeerGone))?;
                partner
                    .deliver(Outbound::Control(ControlFrame::Pake { msg }))
                    .map_err(|_| End::Close(ErrorCode::PeerGone))
            }
            (State::Linked { nameplate, .. }, role, ControlFrame::Confirmed) => {
                let nameplate = nameplate.clone();
                match self.shared.nameplates.confirm(&nameplate, role) {
                    None => Err(End::Close(ErrorCode::PeerGone)),
                    Some(Confirmation::Waiting) => Ok(()),
                    Some(Confirmation::Both {
                        agent,
                        agent_instance,
                        desktop,
                    }) => self.create_session(agent, agent_instance, desktop),
                }
            }
            (State::Linked { nameplate, .. }, _, ControlFrame::Failed { .. }) => {
                self.shared
                    .metrics
                    .pairing_failures
                    .fetch_add(1, Ordering::Relaxed);
                for h in self.shared.nameplates.burn(&nameplate.clone()) {
                    h.close(ErrorCode::PairingFailed);
                }
                self.state = State::Fresh;
                Err(End::Close(ErrorCode::PairingFailed))
            }
            (State::Session { session }, _, ControlFrame::Revoke) => {
                let session = session.clone();
                if let Err(e) = self.shared.store.revoke(&session, unix_now()) {
                    warn!(error = %e, "could not record revocation");
                    return Err(End::Close(ErrorCode::Internal));
                }
                info!(conn = self.handle.conn_id, role = %self.role, "session revoked");
                for h in self.shared.routes.remove(&session) {
                    h.close(ErrorCode::SessionRevoked);
                }
                self.state = State::Fresh;
                Err(End::Close(ErrorCode::SessionRevoked))
            }
            _ => Err(End::Close(ErrorCode::BadFrame)),
        }
    }

    /// Both sides confirmed: store the session, route both connections, hand each its token.
    fn create_session(
        &mut self,
        agent: PeerHandle,
        agent_instance: Option<String>,
        desktop: PeerHandle,
    ) -> Result<(), End> {
        let fail = |code: ErrorCode, a: &PeerHandle, d: &PeerHandle| {
            a.close(code);
            d.close(code);
            Err(End::Close(code))
        };
        let (Ok(session), Ok(agent_token), Ok(desktop_token)) =
            (new_session_id(), new_device_token(), new_device_token())
        else {
            return fail(ErrorCode::Internal, &agent, &desktop);
        };
        let now = unix_now();
        let record = SessionRecord {
            id: session.clone(),
            agent_token_hash: token_hash(agent_token.expose()),
            desktop_token_hash: token_hash(desktop_token.expose()),
            created_at: now,
            last_seen: now,
            revoked_at: None,
        };
        if let Err(e) = self.shared.store.create(&record) {
            warn!(error = %e, "could not store a new session");
            return fail(ErrorCode::Internal, &agent, &desktop);
        }
        // Route both before either learns it is paired, so the first meeting's frames find their way.
        self.shared.routes.attach(
            &session,
            Role::Agent,
            agent.clone(),
            agent_instance.as_deref(),
        );
        self.shared
            .routes
            .attach(&session, Role::Desktop, desktop.clone(), None);
        self.shared
            .metrics
            .pairings_completed
            .fetch_add(1, Ordering::Relaxed);
        info!("pairing completed; session created");
        for (h, token) in [(&agent, agent_token), (&desktop, desktop_token)] {
            // A failure here closes that side; the other notices through peer_offline.
            let _ = h.deliver(Outbound::EnterSession {
                session: session.clone(),
                token,
            });
        }
        Ok(())
    }

    fn on_binary(&mut self, frame: Bytes) -> Result<(), End> {
        let target = match &self.state {
            State::Linked { nameplate, .. } => self.shared.nameplates.partner(nameplate, self.role),
            State::Session { session } => self.shared.routes.get(session, self.role.peer()),
            State::Fresh | State::Claimed { .. } => return Err(End::Close(ErrorCode::BadFrame)),
        };
        let len = frame.len() as u64;
        match target.map(|t| t.deliver(Outbound::Binary(frame))) {
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
            Outbound::Control(ControlFrame::Linked) => {
                if let State::Claimed { nameplate, .. } = &self.state {
                    self.state = State::Linked {
                        nameplate: nameplate.clone(),
                        deadline: Instant::now() + self.shared.limits.pairing_timeout,
                    };
                }
                self.send_control(&ControlFrame::Linked).await
            }
            Outbound::Control(c) => self.send_control(&c).await,
            Outbound::EnterSession { session, token } => {
                self.state = State::Session {
                    session: session.clone(),
                };
                self.send_control(&ControlFrame::Paired { session, token })
                    .await
            }
            Outbound::CloseWith(code) => Err(End::Close(code)),
        }
    }

    async fn on_deadline(&mut self) -> Result<(), End> {
        match std::mem::replace(&mut self.state, State::Fresh) {
            State::Claimed { nameplate, .. } => {
                self.shared.nameplates.expire(
                    &nameplate,
                    self.handle.conn_id,
                    std::time::Instant::now(),
                );
                self.send_control(&ControlFrame::error(ErrorCode::NameplateExpired))
                    .await
            }
            State::Linked { nameplate, .. } => {
                self.shared
                    .metrics
                    .pairing_failures
                    .fetch_add(1, Ordering::Relaxed);
                for h in self.shared.nameplates.burn(&nameplate) {
                    h.close(ErrorCode::HandshakeTimeout);
                }
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
    fn limited_resume(&mut self, r: Resume) -> Result<(), ErrorCode> {
        let now = std::time::Instant::now();
        if self.shared.resume_limiter.is_over(self.ip, now) {
            return Err(ErrorCode::RateLimited);
        }
        let result = self.resume(r);
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

    fn resume(&mut self, r: Resume) -> Result<(), ErrorCode> {
        let session = r.session.ok_or(ErrorCode::InvalidSession)?;
        if !valid_session_id(&session) {
            return Err(ErrorCode::InvalidSession);
        }
        let token = r.token.ok_or(ErrorCode::DeviceTokenMismatch)?;
        let record = self
            .shared
            .store
            .get(&session)
            .map_err(|e| {
                warn!(error = %e, "session lookup failed");
                ErrorCode::Internal
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
        if let Err(e) = self.shared.store.touch(&session, now) {
            warn!(error = %e, "could not record last-seen time");
        }
        let attached = self.shared.routes.attach(
            &session,
            self.role,
            self.handle.clone(),
            self.instance.as_deref(),
        );
        if let Some(old) = attached.replaced {
            old.close(ErrorCode::Replaced);
        }
        self.shared.metrics.resumes.fetch_add(1, Ordering::Relaxed);
        self.state = State::Session { session };
        let peer_online = attached.peer.is_some();
        if let Some(peer) = attached.peer {
            let note = if attached.agent_restarted {
                ControlFrame::PeerRestarted
            } else {
                ControlFrame::PeerOnline
            };
            let _ = peer.deliver(Outbound::Control(note));
        }
        debug!(conn = self.handle.conn_id, role = %self.role, peer_online, "session resumed");
        self.reply(ControlFrame::Resumed { peer_online })
            .map_err(|_| ErrorCode::Internal)
    }
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
