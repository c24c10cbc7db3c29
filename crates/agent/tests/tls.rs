//! `wss://` everywhere the agent connects, with the OS trust store (here a test CA through
//! `SSL_CERT_FILE`, as an operator's own CA would be): the real OpenClaw gateway behind a real TLS
//! terminator (stunnel), and the relay's own TLS listener — pairing, chat and a streamed reply,
//! with no `--allow-insecure-*`. A certificate the trust store does not know is refused.
//!
//! One test in this file: `SSL_CERT_FILE` is set for the whole process (the desktop core in it
//! and every agent it starts).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;

use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::RelayClient;
use clawtray_testkit::agent::{AgentRun, Pairing};
use clawtray_testkit::fake_model::reply_for;
use clawtray_testkit::gateway::{Gateway, TEST_GATEWAY_TOKEN};
use clawtray_testkit::relay::Relay;
use clawtray_testkit::tls::{Stunnel, TestCa};

/// `clawtray-agent status` against `gateway`, trusting `ca_file`; its stdout.
async fn status(state: &std::path::Path, gateway: &str, ca_file: &std::path::Path) -> String {
    let out = tokio::process::Command::new(agent_bin())
        .arg("--state-dir")
        .arg(state)
        .args(["status", "--gateway", gateway])
        .env("OPENCLAW_GATEWAY_TOKEN", TEST_GATEWAY_TOKEN)
        .env("SSL_CERT_FILE", ca_file)
        .output()
        .await
        .expect("run clawtray-agent status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_speaks_wss_to_the_gateway_and_the_relay_with_the_os_trust_store() {
    let ca = TestCa::new();
    // the desktop core in this process and every agent it starts trust the test CA, as they
    // would an operator's CA installed in the system store
    std::env::set_var("SSL_CERT_FILE", &ca.ca);

    let gateway = Gateway::start(clawtray_testkit::fake_model::start());
    let backend = format!("127.0.0.1:{}", gateway.port).parse().unwrap();
    let tls_gateway = Stunnel::start(&ca, backend).await;
    let gateway_url = format!("wss://localhost:{}", tls_gateway.addr.port());
    let relay = Relay::start(&[
        "--tls-cert",
        ca.cert.to_str().unwrap(),
        "--tls-key",
        ca.key.to_str().unwrap(),
    ])
    .await;
    let relay_url = format!("wss://localhost:{}", relay.addr.port());

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    // before: the gateway connection had no root store at all, so wss:// always failed
    // (the gateway answers "starting" for its first seconds: ask again until it is up)
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reached = status(&state, &gateway_url, &ca.ca).await;
        if reached.contains("gateway: reachable at wss://") {
            break;
        }
        assert!(
            reached.contains("gateway starting") && tokio::time::Instant::now() < deadline,
            "{reached}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // a certificate the trust store does not know is refused, with the reason
    let other = TestCa::new();
    let refused = status(&state, &gateway_url, &other.ca).await;
    assert!(
        refused.contains("gateway: not reachable") && refused.contains("certificate"),
        "{refused}"
    );

    let _agent = AgentRun::start_at(agent_bin(), &state, &gateway_url, "tls-e2e", &[]);
    let pairing = Pairing::start(agent_bin(), &state, &relay_url, "tls-agent").await;
    let data = tempfile::tempdir().unwrap();
    let client = RelayClient::start(
        client_config(data.path()),
        Arc::new(MemorySessionStore::default()),
    );
    let mut seen = Seen::new(&client);
    client
        .pair(&pairing.code, &relay_url)
        .await
        .expect("pairing over wss://");
    pairing.finish().await;
    seen.until("online over wss://", online).await;
    let text = "hello over tls #id=tls1# #words=5# #delay=20#";
    let id = client.send(text).await.unwrap();
    seen.until("the reply through stunnel", |x| x.reply_of(&id).is_some())
        .await;
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![reply_for(text)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
}
