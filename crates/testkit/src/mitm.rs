//! A hostile relay for tests: a WebSocket man-in-the-middle in front of the real relay. Each
//! connection made to it is carried on to the real relay with the same path, query and
//! `Authorization` header, and every message either way passes through a [`Tamper`] that may read,
//! drop, alter, hold back, replay, reorder or inject messages — with memory across connections,
//! so it can splice frames from one session into another. Everything it saw is kept for tests to
//! search (for plaintext, say).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From an end (desktop or agent) to the relay.
    ToRelay,
    /// From the relay to an end.
    ToEnd,
}

/// Which end a connection belongs to (from its path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// `/v1/desktop`
    Desktop,
    /// `/v1/agent`
    Agent,
    /// Anything else.
    Other,
}

/// One message passing through.
#[derive(Debug, Clone)]
pub struct Passing {
    /// The connection's number (0, 1, … in order of arrival).
    pub conn: usize,
    /// Whose connection it is.
    pub side: Side,
    /// The connection's path and query (e.g. `/v1/desktop?session=…`).
    pub path: String,
    /// Which way it goes.
    pub dir: Dir,
    /// The message.
    pub msg: Message,
}

/// What to do with a message.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this where the message was going.
    Forward(Message),
    /// Send this on connection `conn`, in direction `dir`.
    Inject {
        /// Target connection.
        conn: usize,
        /// Direction on it.
        dir: Dir,
        /// The message.
        msg: Message,
    },
}

/// The attacker's logic. Called for every message, in arrival order, under one lock.
pub trait Tamper: Send + 'static {
    /// Decide what becomes of `p`. Returning nothing drops it.
    fn on_message(&mut self, p: &Passing) -> Vec<Action>;
}

impl<F: FnMut(&Passing) -> Vec<Action> + Send + 'static> Tamper for F {
    fn on_message(&mut self, p: &Passing) -> Vec<Action> {
        self(p)
    }
}

/// Forwards everything unchanged.
pub struct PassThrough;

impl Tamper for PassThrough {
    fn on_message(&mut self, p: &Passing) -> Vec<Action> {
        vec![Action::Forward(p.msg.clone())]
    }
}

struct ConnPipes {
    to_relay: mpsc::UnboundedSender<Message>,
    to_end: mpsc::UnboundedSender<Message>,
}

struct Shared {
    tamper: Box<dyn Tamper>,
    conns: HashMap<usize, ConnPipes>,
    next: usize,
    seen: Vec<(Side, Dir, Vec<u8>)>,
}

/// A running man-in-the-middle.
pub struct Mitm {
    /// Where ends should connect (`ws://{addr}`).
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mitm {
    /// Listen on a free loopback port, carrying connections on to `relay`.
    pub async fn start(relay: SocketAddr, tamper: impl Tamper) -> Mitm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Mutex::new(Shared {
            tamper: Box::new(tamper),
            conns: HashMap::new(),
            next: 0,
            seen: Vec::new(),
        }));
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, relay, s.clone()));
            }
        });
        Mitm { addr, shared, task }
    }

    /// `ws://…` base URL of the hostile relay.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Whether any message it carried (either way, text or binary) contains `needle`.
    #[must_use]
    pub fn saw(&self, needle: &[u8]) -> bool {
        let shared = self.shared.lock().expect("mitm lock");
        shared
            .seen
            .iter()
            .any(|(_, _, b)| crate::scan::contains(b, needle))
    }

    /// How many messages it carried.
    #[must_use]
    pub fn seen_count(&self) -> usize {
        self.shared.lock().expect("mitm lock").seen.len()
    }

    /// Swap the attacker's logic (e.g. to start attacking once a session is up).
    pub fn set_tamper(&self, tamper: impl Tamper) {
        self.shared.lock().expect("mitm lock").tamper = Box::new(tamper);
    }
}

/// Whether `p` is a sealed data frame (binary, first byte 0x01).
#[must_use]
pub fn is_sealed(p: &Passing) -> bool {
    matches!(&p.msg, Message::Binary(b) if b.first() == Some(&0x01))
}

#[allow(clippy::result_large_err)] // the callback signature is tungstenite's
async fn serve(tcp: TcpStream, relay: SocketAddr, shared: Arc<Mutex<Shared>>) {
    let mut head: Option<(String, Option<String>)> = None;
    let callback = |req: &Request, resp: Response| {
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        head = Some((path, auth));
        Ok(resp)
    };
    let Ok(end) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let Some((path, auth)) = head else {
        return;
    };
    let side = if path.starts_with("/v1/desktop") {
        Side::Desktop
    } else if path.starts_with("/v1/agent") {
        Side::Agent
    } else {
        Side::Other
    };
    let Ok(mut req) = format!("ws://{relay}{path}").into_client_request() else {
        return;
    };
    if let Some(a) = auth.and_then(|a| a.parse().ok()) {
        req.headers_mut().insert("authorization", a);
    }
    let Ok((upstream, _)) = tokio_tungstenite::connect_async(req).await else {
        return;
    };
    let (mut end_tx, mut end_rx) = end.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let (to_relay, mut to_relay_rx) = mpsc::unbounded_channel::<Message>();
    let (to_end, mut to_end_rx) = mpsc::unbounded_channel::<Message>();
    let conn = {
        let mut s = shared.lock().expect("mitm lock");
        let n = s.next;
        s.next += 1;
        s.conns.insert(n, ConnPipes { to_relay, to_end });
        n
    };
    let writer_up = tokio::spawn(async move {
        while let Some(m) = to_relay_rx.recv().await {
            if up_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = up_tx.close().await;
    });
    let writer_end = tokio::spawn(async move {
        while let Some(m) = to_end_rx.recv().await {
            if end_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = end_tx.close().await;
    });
    let on = |dir: Dir, msg: Message| {
        let mut s = shared.lock().expect("mitm lock");
        let bytes = match &msg {
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Binary(b) => b.to_vec(),
            _ => Vec::new(),
        };
        s.seen.push((side, dir, bytes));
        let actions = s.tamper.on_message(&Passing {
            conn,
            side,
            path: path.clone(),
            dir,
            msg,
        });
        for a in actions {
            let (target, dir, msg) = match a {
                Action::Forward(m) => (conn, dir, m),
                Action::Inject { conn, dir, msg } => (conn, dir, msg),
            };
            if let Some(p) = s.conns.get(&target) {
                let _ = match dir {
                    Dir::ToRelay => p.to_relay.send(msg),
                    Dir::ToEnd => p.to_end.send(msg),
                };
            }
        }
    };
    loop {
        tokio::select! {
            m = end_rx.next() => match m {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => on(Dir::ToRelay, m),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            m = up_rx.next() => match m {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => on(Dir::ToEnd, m),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    shared.lock().expect("mitm lock").conns.remove(&conn);
    // dropping the senders ends both writers, which close both sockets
    let _ = writer_up.await;
    let _ = writer_end.await;
}
