//! The baselines, run as their own processes like the relay: a bare tokio-tungstenite forwarder
//! (the first two connections spliced together: no routing, no limits, no sessions) and a
//! direct echo server.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

async fn listen() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!(
        "baseline listening on {}",
        l.local_addr().expect("local address")
    );
    l
}

/// Splice the first two WebSocket connections, both ways, then exit when either ends.
pub async fn forwarder() {
    let l = listen().await;
    let mut ends = Vec::new();
    while ends.len() < 2 {
        let (tcp, _) = l.accept().await.expect("accept");
        let _ = tcp.set_nodelay(true);
        ends.push(tokio_tungstenite::accept_async(tcp).await.expect("upgrade"));
    }
    let b = ends.pop().expect("two ends");
    let a = ends.pop().expect("two ends");
    let (mut a_tx, mut a_rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    let ab = async {
        while let Some(Ok(m)) = a_rx.next().await {
            if m.is_binary() && b_tx.send(m).await.is_err() {
                break;
            }
        }
    };
    let ba = async {
        while let Some(Ok(m)) = b_rx.next().await {
            if m.is_binary() && a_tx.send(m).await.is_err() {
                break;
            }
        }
    };
    tokio::select! { () = ab => {}, () = ba => {} }
}

/// Echo binary frames on every connection.
pub async fn echo() {
    let l = listen().await;
    loop {
        let (tcp, _) = l.accept().await.expect("accept");
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(m)) = ws.next().await {
                if m.is_binary() && ws.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}
