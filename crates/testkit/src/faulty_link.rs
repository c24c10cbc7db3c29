//! A TCP proxy that breaks links on command, for dead-link and chaos tests: stall the connections
//! it carries (bytes stop, sockets stay open — a dead NAT or a sleeping laptop), for good or for a
//! while; make them half-open (one direction silently swallowed); drop them (a clean close); or
//! reset them in the middle of a frame. New connections after a fault pass normally.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the connections opened before the last command should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Stop forwarding, keep the sockets open.
    Stall,
    /// Stop forwarding until then, keep the sockets open, then carry on.
    StallUntil(tokio::time::Instant),
    /// Keep forwarding towards the server; swallow everything towards the end.
    HalfOpen,
    /// Close both sockets cleanly (FIN), as a NAT or proxy that gives up politely.
    Drop,
    /// Forward half of the next chunk towards the end, then reset both sockets.
    ResetMidFrame,
}

/// A running faulty link.
pub struct FaultyLink {
    /// Where the end should connect instead of the real server.
    pub addr: SocketAddr,
    /// (generation, fault): a fault applies to connections of earlier generations.
    control: watch::Sender<(u64, Fault)>,
    generation: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for FaultyLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultyLink {
    /// Listen on a free loopback port, carrying connections on to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultyLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (control, _) = watch::channel((0, Fault::None));
        let generation = Arc::new(AtomicU64::new(0));
        let (ctl, gen) = (control.clone(), generation.clone());
        let task = tokio::spawn(async move {
            while let Ok((end, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let born = gen.load(Ordering::SeqCst);
                tokio::spawn(carry(end, server, born, ctl.subscribe()));
            }
        });
        FaultyLink {
            addr,
            control,
            generation,
            task,
        }
    }

    fn fault(&self, f: Fault) {
        let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.control.send_replace((g, f));
    }

    /// Freeze every connection open now: nothing more passes either way; sockets stay open.
    pub fn stall_current(&self) {
        self.fault(Fault::Stall);
    }

    /// Freeze every connection open now for `d`, then let it carry on (if its ends still want it).
    pub fn stall_current_for(&self, d: std::time::Duration) {
        self.fault(Fault::StallUntil(tokio::time::Instant::now() + d));
    }

    /// Make every connection open now half-open: what the end sends still arrives, nothing
    /// comes back to it, and neither socket is closed.
    pub fn half_open_current(&self) {
        self.fault(Fault::HalfOpen);
    }

    /// Close every connection open now, cleanly.
    pub fn drop_current(&self) {
        self.fault(Fault::Drop);
    }

    /// Reset every connection open now, in the middle of the next chunk towards the end.
    pub fn reset_current_mid_frame(&self) {
        self.fault(Fault::ResetMidFrame);
    }
}

/// The fault that applies to a connection born in generation `born`.
fn applies(ctl: &watch::Receiver<(u64, Fault)>, born: u64) -> Fault {
    let (g, f) = *ctl.borrow();
    if g > born {
        f
    } else {
        Fault::None
    }
}

async fn carry(
    end: TcpStream,
    server: TcpStream,
    born: u64,
    mut ctl: watch::Receiver<(u64, Fault)>,
) {
    let _ = end.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut end_r, mut end_w) = end.into_split();
    let (mut srv_r, mut srv_w) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        match applies(&ctl, born) {
            Fault::Stall => {
                // hold everything until the test ends; the sockets stay open
                std::future::pending::<()>().await;
            }
            Fault::StallUntil(t) if t > tokio::time::Instant::now() => {
                tokio::time::sleep_until(t).await;
            }
            Fault::Drop => {
                let _ = end_w.shutdown().await;
                let _ = srv_w.shutdown().await;
                return;
            }
            _ => {}
        }
        tokio::select! {
            n = end_r.read(&mut up) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => if srv_w.write_all(&up[..n]).await.is_err() { break },
            },
            n = srv_r.read(&mut down) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => match applies(&ctl, born) {
                    Fault::ResetMidFrame => {
                        let _ = end_w.write_all(&down[..n.div_ceil(2)]).await;
                        break;
                    }
                    Fault::HalfOpen => {} // swallowed
                    _ => if end_w.write_all(&down[..n]).await.is_err() { break },
                }
            },
            // a new command: look at it before the next chunk
            r = ctl.changed() => if r.is_err() { break },
        }
    }
    // reset, not a clean close: RST both ways (a zero linger never blocks on drop, which is what
    // the deprecation warns about)
    #[allow(deprecated)]
    if let (Ok(end), Ok(server)) = (end_r.reunite(end_w), srv_r.reunite(srv_w)) {
        let _ = end.set_linger(Some(std::time::Duration::ZERO));
        let _ = server.set_linger(Some(std::time::Duration::ZERO));
    }
}
