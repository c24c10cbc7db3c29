//! The relay behind a TLS proxy: only a trusted proxy's forwarding header names the client (for the
//! per-address limits), and `/metrics` lives on its own loopback listener, never the public one.

mod common;

use common::*;

use clawtray_proto::control::{ControlFrame, ErrorCode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open `/v1/agent` as if through a proxy that says the client is `client`.
async fn via_proxy(
    relay: &clawtray_testkit::relay::Relay,
    header: &str,
    client: &str,
) -> Result<Ws, u16> {
    let mut req = relay.url("/v1/agent").into_client_request().unwrap();
    req.headers_mut().insert(
        tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
        client.parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_trusted_proxy_names_each_client_for_the_limits() {
    // before: behind a proxy every client shared the proxy's address, and one cap held them all
    let relay = Relay::start(&[
        "--trusted-proxy",
        "127.0.0.1",
        "--max-connections-per-ip",
        "1",
    ])
    .await;
    let _a = via_proxy(&relay, "x-forwarded-for", "198.51.100.1")
        .await
        .unwrap();
    let _b = via_proxy(&relay, "forwarded", "for=198.51.100.2;proto=https")
        .await
        .unwrap();
    let _c = via_proxy(&relay, "x-forwarded-for", "2001:db8:1:2::1")
        .await
        .unwrap();
    // the same client again is over its own cap (an IPv6 client per /64)
    assert_eq!(
        via_proxy(&relay, "x-forwarded-for", "198.51.100.1")
            .await
            .err(),
        Some(503)
    );
    assert_eq!(
        via_proxy(&relay, "x-forwarded-for", "2001:db8:1:2::99")
            .await
            .err(),
        Some(503)
    );
}

#[tokio::test]
async fn the_pairing_limit_counts_each_client_behind_a_trusted_proxy() {
    let relay = Relay::start(&[
        "--trusted-proxy",
        "127.0.0.0/8",
        "--pairing-per-ip-per-min",
        "1",
    ])
    .await;
    let mut claims = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        let mut ws = End {
            ws: via_proxy(&relay, "x-forwarded-for", client).await.unwrap(),
        };
        ws.send(&ControlFrame::Claim).await;
        assert!(
            matches!(ws.control().await, ControlFrame::Claimed { .. }),
            "{client}"
        );
        claims.push(ws);
    }
    let mut again = End {
        ws: via_proxy(&relay, "x-forwarded-for", "203.0.113.1")
            .await
            .unwrap(),
    };
    again.send(&ControlFrame::Claim).await;
    again.expect_error_and_close(ErrorCode::RateLimited).await;
}

#[tokio::test]
async fn forwarding_headers_from_anyone_else_are_ignored() {
    let relay = Relay::start(&["--max-connections-per-ip", "1"]).await;
    let _a = via_proxy(&relay, "x-forwarded-for", "198.51.100.1")
        .await
        .unwrap();
    assert_eq!(
        via_proxy(&relay, "x-forwarded-for", "198.51.100.2")
            .await
            .err(),
        Some(503),
        "a client cannot name itself someone else"
    );
}

#[tokio::test]
async fn metrics_have_their_own_loopback_listener() {
    let relay = Relay::start(&[]).await;
    let public = clawtray_testkit::relay::Relay::http_get_at(relay.addr, "/metrics").await;
    assert!(public.starts_with("HTTP/1.1 404"), "{public}");
    assert!(!public.contains("clawtray_relay_"), "{public}");
    let metrics_addr = relay.metrics_addr.expect("a metrics listener");
    assert!(metrics_addr.ip().is_loopback());
    let m = relay.http_get("/metrics").await;
    assert!(
        m.starts_with("HTTP/1.1 200") && m.contains("clawtray_relay_connections_open"),
        "{m}"
    );
    // /healthz stays on the public listener for load balancers
    assert!(relay.http_get("/healthz").await.ends_with("ok\n"));
}

#[tokio::test]
async fn the_metrics_listener_defaults_to_loopback() {
    // the binary's own default (no --metrics-listen): parse its help, never guess
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawtray-relay"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: 127.0.0.1:9765]"), "{help}");
}
