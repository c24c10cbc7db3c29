//! The gateway client's liveness and ordering, against a scripted gateway on a real socket (the
//! real gateway ticks every 30 s and cannot be told otherwise, so silence detection would take a
//! minute there; the request timeout is tested against the real gateway in `gateway_e2e.rs`):
//! - the receiver `GatewayClient::start` returns hears an event sent right after `hello-ok`,
//!   before anyone made a request — handlers are subscribed before the first connection;
//! - while `tick`s flow the connection lives; when they stop for 2 × the advertised interval the
//!   connection counts as dead, a request waiting on it fails at once (not at its timeout), and
//!   the client reconnects.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;

use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayError, GatewayEvent};

const WAIT: Duration = Duration::from_secs(20);
/// What the scripted gateway advertises; the client treats 2 × this (at least 2 s) as dead.
const TICK_MS: u64 = 200;
/// Reported (as a method name) when the scripted gateway stops ticking.
const SILENCE: &str = "<silence begins>";

/// What the scripted gateway does after `hello-ok`, per connection.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Send one event at once, then tick for `ticks` intervals, then go silent (socket open).
    EventThenTicks { ticks: u32 },
}

/// A scripted gateway: challenge → `connect` → `hello-ok`, then `script`. Reports each
/// connection's number and the requests it received (never answered).
async fn scripted_gateway(script: Script) -> (String, mpsc::UnboundedReceiver<(usize, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            n += 1;
            tokio::spawn(serve(n, tcp, script, tx.clone()));
        }
    });
    (url, rx)
}

async fn serve(
    conn: usize,
    tcp: tokio::net::TcpStream,
    script: Script,
    requests: mpsc::UnboundedSender<(usize, String)>,
) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let event = |name: &str, payload: Value| {
        Message::text(json!({"type": "event", "event": name, "payload": payload}).to_string())
    };
    let _ = ws
        .send(event("connect.challenge", json!({"nonce": "n-1", "ts": 1})))
        .await;
    let connect_id = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                if v["method"] == "connect" {
                    break v["id"].as_str().unwrap_or_default().to_owned();
                }
            }
            Some(Ok(_)) => {}
            _ => return,
        }
    };
    let hello = json!({"type": "res", "id": connect_id, "ok": true, "payload": {
        "protocol": 4, "server": {"version": "scripted"},
        "policy": {"tickIntervalMs": TICK_MS}}});
    let _ = ws.send(Message::text(hello.to_string())).await;
    let Script::EventThenTicks { ticks } = script;
    let _ = ws
        .send(event(
            "chat",
            json!({"marker": "right after hello", "conn": conn}),
        ))
        .await;
    let (mut sink, mut stream) = ws.split();
    let requests_done = requests.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                let method = v["method"].as_str().unwrap_or_default().to_owned();
                let _ = requests.send((conn, method));
            }
        }
    });
    for _ in 0..ticks {
        tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
        if sink.send(event("tick", json!({"ts": 1}))).await.is_err() {
            return;
        }
    }
    // silent from here on, socket open, until the client leaves
    let _ = requests_done.send((conn, SILENCE.to_owned()));
    let _ = reader.await;
}

fn config(url: &str, dir: &tempfile::TempDir, request_timeout: Duration) -> GatewayConfig {
    GatewayConfig {
        url: url.to_owned(),
        token: None,
        identity_path: dir.path().join("device.json"),
        identity_key: None,
        request_timeout,
        connect_timeout: Duration::from_secs(10),
        approve_all_devices: false,
    }
}

async fn next_event(rx: &mut broadcast::Receiver<GatewayEvent>) -> GatewayEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the event stream is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_receiver_hears_an_event_sent_right_after_hello() {
    let (url, _requests) = scripted_gateway(Script::EventThenTicks { ticks: 1000 }).await;
    let dir = tempfile::tempdir().unwrap();
    let (_client, mut rx) =
        GatewayClient::start(config(&url, &dir, Duration::from_secs(30))).expect("start");
    assert!(matches!(
        next_event(&mut rx).await,
        GatewayEvent::Connected { protocol: 4, .. }
    ));
    match next_event(&mut rx).await {
        GatewayEvent::Event { name, payload } => {
            assert_eq!(name, "chat");
            assert_eq!(payload["marker"], "right after hello");
        }
        other => panic!("expected the first event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_silence_ends_the_connection_and_fails_the_waiting_request_at_once() {
    // ticks for ~3 s (longer than the 2 s dead interval: flowing ticks keep it alive), then silence
    let (url, mut requests) = scripted_gateway(Script::EventThenTicks { ticks: 15 }).await;
    let dir = tempfile::tempdir().unwrap();
    // a request timeout far beyond the test's patience: the request must end with the connection
    let (client, mut rx) =
        GatewayClient::start(config(&url, &dir, Duration::from_secs(600))).expect("start");
    assert!(matches!(
        next_event(&mut rx).await,
        GatewayEvent::Connected { .. }
    ));
    let asking = client.clone();
    let request = tokio::spawn(async move {
        asking
            .request("chat.history", json!({"sessionKey": "main"}))
            .await
    });
    let (conn, method) = tokio::time::timeout(WAIT, requests.recv())
        .await
        .expect("the request reached the gateway")
        .expect("open");
    assert_eq!((conn, method.as_str()), (1, "chat.history"));
    // everything until the disconnect: the first event, and nothing else (ticks are not published)
    let reason = loop {
        match next_event(&mut rx).await {
            GatewayEvent::Disconnected { reason } => break reason,
            GatewayEvent::Event { name, .. } => assert_eq!(name, "chat"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(reason.contains("no tick from the gateway"), "{reason}");
    assert_eq!(
        requests.try_recv().ok(),
        Some((1, SILENCE.to_owned())),
        "the connection lived while the ticks flowed (3 s, beyond the 2 s dead interval)"
    );
    let answer = tokio::time::timeout(WAIT, request)
        .await
        .expect("the waiting request ended with the connection")
        .expect("task");
    assert_eq!(answer, Err(GatewayError::Closed));
    // and the client comes back on a new connection
    assert!(matches!(
        next_event(&mut rx).await,
        GatewayEvent::Connected { .. }
    ));
    assert!(client.is_connected());
}
