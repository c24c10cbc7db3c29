//! Sealed frames onto a relay WebSocket through the pacer ([`clawtray_proto::pacer::Outgoing`]):
//! in order, never faster than the relay allows. Both ends' connection loops and their unpair
//! hand-offs use this one sender.

use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use clawtray_proto::pacer::Outgoing;

use crate::Ws;

/// The frames waiting for their turn.
#[derive(Debug)]
pub struct PacedSender {
    out: Outgoing,
}

impl Default for PacedSender {
    fn default() -> Self {
        Self::new()
    }
}

impl PacedSender {
    /// Nothing waiting; the pacer's budget starts now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            out: Outgoing::new(std::time::Instant::now()),
        }
    }

    /// Queue `frame` behind the others.
    pub fn push(&mut self, frame: Vec<u8>) {
        self.out.push(frame);
    }

    /// Send every frame whose turn has come.
    pub async fn send_ready(&mut self, ws: &mut Ws) -> Result<(), tungstenite::Error> {
        while let Some(f) = self.out.pop_ready(std::time::Instant::now()) {
            ws.send(Message::binary(f)).await?;
        }
        Ok(())
    }

    /// When the next held-back frame is due; `None` when nothing is held.
    #[must_use]
    pub fn next_due(&self) -> Option<Instant> {
        self.out.next_at().map(Instant::from_std)
    }

    /// Wait until the next held-back frame is due (for a `select!`; never ends when nothing is
    /// held).
    pub async fn due(&self) {
        match self.next_due() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Send everything queued, each frame in its turn, giving up at `deadline`. Returns whether
    /// everything went.
    pub async fn drain_until(
        &mut self,
        ws: &mut Ws,
        deadline: Instant,
    ) -> Result<bool, tungstenite::Error> {
        loop {
            self.send_ready(ws).await?;
            match self.next_due() {
                None => return Ok(true),
                Some(at) if at > deadline => return Ok(false),
                Some(at) => tokio::time::sleep_until(at).await,
            }
        }
    }
}
