//! Sessions through the real relay binary: resume across a relay restart, wrong tokens, revoke,
//! agent restarts announced, presence, graceful shutdown.

mod common;

use common::*;

use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::Role;

#[tokio::test]
async fn resume_after_a_relay_restart_keeps_the_session() {
    let mut relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    let (mut am, mut dm) = meet(
        &mut p.agent,
        &p.agent_key,
        &mut p.desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(
        &mut p.desktop,
        &mut dm,
        &mut p.agent,
        &mut am,
        b"before restart",
    )
    .await;

    relay.restart().await; // SIGKILL + start on the same port and database
    assert!(matches!(p.agent.next().await, Incoming::Closed(_)));
    assert!(matches!(p.desktop.next().await, Incoming::Closed(_)));

    let (mut agent, peer_online) =
        resume(&relay, Role::Agent, &p.session, &p.agent_token, "proc-1").await;
    assert!(!peer_online);
    let (mut desktop, peer_online) =
        resume(&relay, Role::Desktop, &p.session, &p.desktop_token, "").await;
    assert!(peer_online);
    assert_eq!(agent.control().await, ControlFrame::PeerOnline);
    let (mut am, mut dm) = meet(
        &mut agent,
        &p.agent_key,
        &mut desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(&mut desktop, &mut dm, &mut agent, &mut am, b"after restart").await;
    exchange(&mut agent, &mut am, &mut desktop, &mut dm, b"and back").await;
}

#[tokio::test]
async fn a_wrong_token_gets_device_token_mismatch() {
    let relay = Relay::start(&[]).await;
    let p = pair(&relay).await;
    let url = relay.url(&format!("/v1/desktop?session={}", p.session));
    let mut end = End::connect(&url, Some("not-the-token")).await;
    end.expect_error_and_close(ErrorCode::DeviceTokenMismatch)
        .await;
    // the agent's token does not open the desktop side either
    let mut end = End::connect(&url, Some(&p.agent_token)).await;
    end.expect_error_and_close(ErrorCode::DeviceTokenMismatch)
        .await;
    // no token at all
    let mut end = End::connect(&url, None).await;
    end.expect_error_and_close(ErrorCode::DeviceTokenMismatch)
        .await;
}

#[tokio::test]
async fn unknown_and_malformed_sessions_are_permanent_errors() {
    let relay = Relay::start(&[]).await;
    let mut end = End::connect(
        &relay.url("/v1/desktop?session=AAAAAAAAAAAAAAAAAAAAAA"),
        Some("tok"),
    )
    .await;
    end.expect_error_and_close(ErrorCode::SessionNotFound).await;
    let mut end = End::connect(&relay.url("/v1/desktop?session=../../etc"), Some("tok")).await;
    end.expect_error_and_close(ErrorCode::InvalidSession).await;
    assert!(ErrorCode::SessionNotFound.is_permanent() && ErrorCode::InvalidSession.is_permanent());
}

#[tokio::test]
async fn guessing_sessions_and_tokens_is_rate_limited_per_address() {
    // before: every resume attempt was a free database lookup, as many as one liked
    let relay = Relay::start(&["--resume-failures-per-ip-per-min", "3"]).await;
    for _ in 0..3 {
        let mut end = End::connect(
            &relay.url("/v1/agent?session=AAAAAAAAAAAAAAAAAAAAAA"),
            Some("guess"),
        )
        .await;
        end.expect_error_and_close(ErrorCode::SessionNotFound).await;
    }
    let mut end = End::connect(
        &relay.url("/v1/agent?session=BBBBBBBBBBBBBBBBBBBBBB"),
        Some("guess"),
    )
    .await;
    end.expect_error_and_close(ErrorCode::RateLimited).await;
    assert!(
        !ErrorCode::RateLimited.is_permanent(),
        "the ends retry later"
    );
    // pairing (no resume) is not affected
    let mut fresh = End::connect(&relay.url("/v1/agent"), None).await;
    fresh
        .send(&clawtray_proto::control::ControlFrame::Claim)
        .await;
    assert!(matches!(
        fresh.control().await,
        clawtray_proto::control::ControlFrame::Claimed { .. }
    ));
}

#[tokio::test]
async fn revoke_ends_both_ends_and_the_session() {
    let relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    p.desktop.send(&ControlFrame::Revoke).await;
    p.desktop
        .expect_error_and_close(ErrorCode::SessionRevoked)
        .await;
    p.agent
        .expect_error_and_close(ErrorCode::SessionRevoked)
        .await;
    let url = relay.url(&format!("/v1/agent?session={}", p.session));
    let mut again = End::connect(&url, Some(&p.agent_token)).await;
    again
        .expect_error_and_close(ErrorCode::SessionRevoked)
        .await;
}

#[tokio::test]
async fn an_agent_restart_is_announced_to_the_desktop() {
    let relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    let (mut am, mut dm) = meet(
        &mut p.agent,
        &p.agent_key,
        &mut p.desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(
        &mut p.agent,
        &mut am,
        &mut p.desktop,
        &mut dm,
        b"first life",
    )
    .await;

    // the same process reconnecting (a network blip) is just "online again"
    drop(p.agent);
    assert_eq!(p.desktop.control().await, ControlFrame::PeerOffline);
    let (agent, _) = resume(&relay, Role::Agent, &p.session, &p.agent_token, "proc-1").await;
    assert_eq!(p.desktop.control().await, ControlFrame::PeerOnline);

    // a new process (new instance id), replacing the old connection at once
    let (mut agent2, peer_online) =
        resume(&relay, Role::Agent, &p.session, &p.agent_token, "proc-2").await;
    assert!(peer_online);
    assert_eq!(p.desktop.control().await, ControlFrame::PeerRestarted);
    let mut agent = agent;
    agent.expect_error_and_close(ErrorCode::Replaced).await;

    // the desktop re-keys: old keys are useless, the new meeting works
    let old_frame = dm.sealer.seal(b"old keys").unwrap();
    let (mut am2, mut dm2) = meet(
        &mut agent2,
        &p.agent_key,
        &mut p.desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    p.desktop.send_bin(old_frame).await;
    assert!(am2.opener.open(&agent2.binary().await).is_err());
    exchange(
        &mut p.desktop,
        &mut dm2,
        &mut agent2,
        &mut am2,
        b"second life",
    )
    .await;
}

#[tokio::test]
async fn frames_to_an_absent_peer_are_dropped_not_buffered() {
    let relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    drop(p.agent);
    assert_eq!(p.desktop.control().await, ControlFrame::PeerOffline);
    p.desktop.send_bin(vec![1, 2, 3]).await;
    // wait until the relay has handled (and dropped) it
    let mut dropped = false;
    for _ in 0..100 {
        if relay
            .http_get("/metrics")
            .await
            .contains("clawtray_relay_frames_dropped_peer_away_total 1\n")
        {
            dropped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(dropped, "the relay should count the dropped frame");
    let (mut agent, _) = resume(&relay, Role::Agent, &p.session, &p.agent_token, "proc-1").await;
    assert_eq!(p.desktop.control().await, ControlFrame::PeerOnline);
    // the agent sees nothing from before it came back: the ends resend after their next meeting
    p.desktop.send_bin(vec![9]).await;
    assert_eq!(agent.binary().await, vec![9]);
}

#[tokio::test]
async fn sigterm_closes_connections_with_a_reason_and_exits_cleanly() {
    let mut relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    let status = relay.terminate().await;
    assert!(status.success(), "{status:?}");
    p.agent
        .expect_error_and_close(ErrorCode::ShuttingDown)
        .await;
    p.desktop
        .expect_error_and_close(ErrorCode::ShuttingDown)
        .await;
}

#[tokio::test]
async fn health_and_metrics_answer_over_http() {
    let relay = Relay::start(&[]).await;
    let h = relay.http_get("/healthz").await;
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
    let m = relay.http_get("/metrics").await;
    assert!(
        m.contains("# TYPE clawtray_relay_connections_open gauge"),
        "{m}"
    );
    let nf = relay.http_get("/nope").await;
    assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
    let not_ws = relay.http_get("/v1/agent").await;
    assert!(not_ws.starts_with("HTTP/1.1 426"), "{not_ws}");
}

#[tokio::test]
async fn tls_listener_pairs_over_wss() {
    use std::sync::Arc;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let relay = Relay::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("wss://localhost:{}/v1/agent", relay.addr.port());
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url.into_client_request().unwrap(),
        None,
        true,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))),
    )
    .await
    .expect("wss connect");
    let mut agent = End { ws };
    agent.send(&ControlFrame::Claim).await;
    assert!(matches!(
        agent.control().await,
        ControlFrame::Claimed { .. }
    ));

    // plain ws:// to a TLS port is refused, not served
    let plain = tokio_tungstenite::connect_async(relay.url("/v1/agent")).await;
    assert!(plain.is_err());
}

#[tokio::test]
async fn a_burst_of_frames_arrives_whole_and_in_order_both_ways() {
    // the relay writes queued frames in batches (one flush per batch): nothing may be lost,
    // split, merged or reordered by it
    let relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    let frame = |from: u8, i: u16| {
        let len = 1 + usize::from(i % 97) * 37; // 1 B .. ~3.5 KiB, every size different
        let mut f = vec![from; len];
        f[..2.min(len)].copy_from_slice(&i.to_be_bytes()[..2.min(len)]);
        f
    };
    const N: u16 = 300;
    for i in 0..N {
        p.desktop.send_bin(frame(b'd', i)).await;
    }
    for i in 0..N {
        p.agent.send_bin(frame(b'a', i)).await;
    }
    for i in 0..N {
        assert_eq!(
            p.agent.binary().await,
            frame(b'd', i),
            "frame {i} to the agent"
        );
    }
    for i in 0..N {
        assert_eq!(
            p.desktop.binary().await,
            frame(b'a', i),
            "frame {i} to the desktop"
        );
    }
}
