//! Limits through the real relay binary: oversized frames, floods, slow readers, bad frames and
//! slowloris sockets are cut off with clear reasons while a second session carries on.

mod common;

use std::time::Duration;

use common::*;

use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::meeting::Meeting;
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

const LIMIT_ARGS: &[&str] = &[
    "--max-frame-bytes",
    "262144",
    "--frames-per-sec",
    "200",
    "--frame-burst",
    "400",
    "--bytes-per-sec",
    "100000000",
    "--byte-burst",
    "200000000",
    "--queue-frames",
    "1024",
    "--queue-bytes",
    "1048576",
    "--handshake-timeout-secs",
    "2",
];

/// A WebSocket upgrade to `relay` is answered 503.
async fn expect_503(relay: &clawtray_testkit::relay::Relay) {
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        relay.url("/v1/agent"),
    )
    .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
}

struct Bystander {
    p: Paired,
    am: Meeting,
    dm: Meeting,
    n: usize,
}

impl Bystander {
    async fn new(relay: &clawtray_testkit::relay::Relay) -> Self {
        let mut p = pair(relay).await;
        let (am, dm) = meet(
            &mut p.agent,
            &p.agent_key,
            &mut p.desktop,
            &p.desktop_key,
            &p.session,
        )
        .await;
        Self { p, am, dm, n: 0 }
    }

    /// The second session still works both ways.
    async fn still_fine(&mut self) {
        self.n += 1;
        let msg = format!("bystander {}", self.n);
        exchange(
            &mut self.p.desktop,
            &mut self.dm,
            &mut self.p.agent,
            &mut self.am,
            msg.as_bytes(),
        )
        .await;
        exchange(
            &mut self.p.agent,
            &mut self.am,
            &mut self.p.desktop,
            &mut self.dm,
            msg.as_bytes(),
        )
        .await;
    }
}

#[tokio::test]
async fn offenders_are_cut_off_without_hurting_a_second_session() {
    let relay = Relay::start(LIMIT_ARGS).await;
    let mut bystander = Bystander::new(&relay).await;

    // 1. an oversized frame
    let mut p = pair(&relay).await;
    p.desktop.send_bin(vec![0u8; 300 * 1024]).await;
    p.desktop
        .expect_error_and_close(ErrorCode::FrameTooLarge)
        .await;
    assert_eq!(p.agent.control().await, ControlFrame::PeerOffline);
    bystander.still_fine().await;

    // 2. a flood of small frames
    let mut p = pair(&relay).await;
    for _ in 0..1000 {
        if p.agent
            .ws
            .feed(Message::binary(vec![1u8; 8]))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = p.agent.ws.flush().await;
    p.agent.expect_error_and_close(ErrorCode::Flooding).await;
    bystander.still_fine().await;

    // 3. a slow reader: the desktop never reads while the agent streams to it
    let mut p = pair(&relay).await;
    let chunk = vec![7u8; 60 * 1024];
    let mut sent = 0;
    for _ in 0..300 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            p.agent.ws.send(Message::binary(chunk.clone())),
        )
        .await;
        if !matches!(r, Ok(Ok(()))) {
            break;
        }
        sent += 1;
        if sent % 50 == 0 {
            bystander.still_fine().await;
        }
    }
    // the desktop, reading at last, drains what was in flight and finds the reason
    p.desktop
        .expect_error_and_close(ErrorCode::SlowReader)
        .await;
    // the agent learns its peer is gone
    loop {
        match p.agent.next().await {
            Incoming::Control(ControlFrame::PeerOffline) => break,
            Incoming::Binary(_) => continue,
            other => panic!("agent expected peer_offline, got {other:?}"),
        }
    }
    bystander.still_fine().await;

    let m = relay.http_get("/metrics").await;
    for reason in ["FRAME_TOO_LARGE", "FLOODING", "SLOW_READER"] {
        assert!(
            m.contains(&format!(
                "clawtray_relay_rejected_total{{reason=\"{reason}\"}} 1\n"
            )),
            "{reason}: {m}"
        );
    }
}

#[tokio::test]
async fn bad_frames_are_refused_with_reasons() {
    let relay = Relay::start(LIMIT_ARGS).await;
    let mut bystander = Bystander::new(&relay).await;

    let mut e = End::connect(&relay.url("/v1/desktop"), None).await;
    e.send_bin(vec![1, 2, 3]).await; // binary before pairing
    e.expect_error_and_close(ErrorCode::BadFrame).await;

    let mut e = End::connect(&relay.url("/v1/agent"), None).await;
    e.ws.send(Message::text("{not json")).await.unwrap();
    e.expect_error_and_close(ErrorCode::BadFrame).await;

    let mut e = End::connect(&relay.url("/v1/agent"), None).await;
    e.ws.send(Message::text(r#"{"t":"teleport"}"#))
        .await
        .unwrap();
    e.expect_error_and_close(ErrorCode::BadFrame).await;

    // a desktop may not claim, an agent may not join
    let mut e = End::connect(&relay.url("/v1/desktop"), None).await;
    e.send(&ControlFrame::Claim).await;
    e.expect_error_and_close(ErrorCode::BadFrame).await;
    let mut e = End::connect(&relay.url("/v1/agent"), None).await;
    e.send(&ControlFrame::Join {
        nameplate: "1234".into(),
    })
    .await;
    e.expect_error_and_close(ErrorCode::BadFrame).await;

    // an oversized control frame
    let mut e = End::connect(&relay.url("/v1/agent"), None).await;
    e.ws.send(Message::text(format!(
        r#"{{"t":"join","nameplate":"{}"}}"#,
        "1".repeat(10_000)
    )))
    .await
    .unwrap();
    e.expect_error_and_close(ErrorCode::FrameTooLarge).await;

    bystander.still_fine().await;
}

#[tokio::test]
async fn slowloris_sockets_are_dropped_after_the_handshake_timeout() {
    let relay = Relay::start(LIMIT_ARGS).await;
    let mut bystander = Bystander::new(&relay).await;
    let mut lazy = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
        s.write_all(b"GET /v1/agent HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap(); // never finishes
        lazy.push(s);
    }
    bystander.still_fine().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for mut s in lazy {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "slowloris socket should be closed by the relay");
    }
    let m = relay.http_get("/metrics").await;
    assert!(
        m.contains("clawtray_relay_rejected_total{reason=\"HANDSHAKE_TIMEOUT\"} 50\n"),
        "{m}"
    );
    bystander.still_fine().await;
}

#[tokio::test]
async fn the_connection_cap_answers_503_and_others_carry_on() {
    let relay = Relay::start(&["--max-connections", "4"]).await;
    let mut bystander = Bystander::new(&relay).await; // 2 connections
    let _a = End::connect(&relay.url("/v1/agent"), None).await; // 3
    let _b = End::connect(&relay.url("/v1/agent"), None).await; // 4
    expect_503(&relay).await;
    bystander.still_fine().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let relay = Relay::start(&["--idle-timeout-secs", "1"]).await;
    let mut e = End::connect(&relay.url("/v1/agent"), None).await;
    e.expect_error_and_close(ErrorCode::IdleTimeout).await;
}

#[tokio::test]
async fn a_connection_that_never_pairs_or_resumes_is_closed_though_it_pings() {
    // before: pings extended the idle deadline, so a connection holding nothing could stay forever
    let relay = Relay::start(&[
        "--unauthenticated-timeout-secs",
        "1",
        "--idle-timeout-secs",
        "60",
    ])
    .await;
    let mut e = End::connect(&relay.url("/v1/agent"), None).await;
    let started = tokio::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(200));
    let closed = loop {
        tokio::select! {
            _ = every.tick() => {
                if e.ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break None;
                }
            }
            m = futures_util::StreamExt::next(&mut e.ws) => match m {
                Some(Ok(Message::Text(t))) => break Some(ControlFrame::from_json(t.as_str()).unwrap()),
                None | Some(Err(_)) => break None,
                Some(Ok(_)) => {} // pongs
            },
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still open after 20 s of pings"
        );
    };
    assert_eq!(
        closed,
        Some(ControlFrame::error(ErrorCode::HandshakeTimeout)),
        "closed with a reason"
    );
    // a paired session is not affected by that deadline
    let mut bystander = Bystander::new(&relay).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    bystander.still_fine().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let relay = Relay::start(&["--max-connections-per-ip", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(End::connect(&relay.url("/v1/agent"), None).await);
    }
    expect_503(&relay).await;
    // the reason, in words
    let raw = relay.http_get("/v1/agent").await;
    assert!(
        raw.starts_with("HTTP/1.1 503") && raw.contains("too many connections from this address"),
        "{raw}"
    );
    let m = relay.http_get("/metrics").await;
    assert!(
        m.contains("clawtray_relay_rejected_total{reason=\"TOO_MANY_CONNECTIONS\"} 2\n"),
        "{m}"
    );
    // a place given back can be taken again (retries while the relay lets go count too)
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            relay.url("/v1/agent"),
        )
        .unwrap();
        if tokio_tungstenite::connect_async(req).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
