//! What the agent rows share: the real OpenClaw gateway (fake model), the release relay and
//! agent, and the real desktop core paired with that agent and online; plus a second operator
//! connection to the same gateway for the bench's own use (a tap, or an admin that fills
//! transcripts).

use std::sync::Arc;
use std::time::Duration;

use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::{ClientConfig, ClientEvent, RelayClient};
use clawtray_proto::secret::SecretString;
use clawtray_testkit::agent::{AgentRun, Pairing};
use clawtray_testkit::gateway::{Gateway, TEST_GATEWAY_TOKEN};

use crate::ws::{self, sibling_bin, Server};

/// A desktop paired with a real agent on a real gateway, online.
pub struct RealAgent {
    pub gateway: Gateway,
    pub client: RelayClient,
    /// The desktop's events, subscribed before pairing.
    pub events: tokio::sync::broadcast::Receiver<ClientEvent>,
    pub dir: tempfile::TempDir,
    _relay: Server,
    _agent: AgentRun,
}

impl RealAgent {
    /// Start it all; the agent's default gateway session is `session_key`.
    pub async fn start(session_key: &str) -> RealAgent {
        let gateway =
            tokio::task::block_in_place(|| Gateway::start(clawtray_testkit::fake_model::start()));
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("relay.db");
        ws::seed_sessions(&db, 0);
        let relay = Server::relay(&db).await;
        let url = format!("ws://{}", relay.addr);
        let agent_bin = sibling_bin("clawtray-agent");
        let state = dir.path().join("agent");
        let agent = AgentRun::start(&agent_bin, &state, &gateway, session_key);
        let pairing = Pairing::start(&agent_bin, &state, &url, "bench-agent").await;
        let client = RelayClient::start(
            ClientConfig::new(dir.path().join("desktop"), "bench-desktop".into()),
            Arc::new(MemorySessionStore::default()),
        );
        let events = client.subscribe();
        client.pair(&pairing.code, &url).await.expect("pairing");
        pairing.finish().await;
        crate::pairing::until(&client, crate::pairing::online, Duration::from_secs(60)).await;
        RealAgent {
            gateway,
            client,
            events,
            dir,
            _relay: relay,
            _agent: agent,
        }
    }

    /// Another operator connection to the gateway (`admin`: with `operator.admin`), connected.
    pub async fn operator(
        &self,
        name: &str,
        admin: bool,
    ) -> (
        GatewayClient,
        tokio::sync::broadcast::Receiver<GatewayEvent>,
    ) {
        let (gw, mut events) = GatewayClient::start(GatewayConfig {
            url: self.gateway.url(),
            token: Some(SecretString::new(TEST_GATEWAY_TOKEN.into())),
            identity_path: self.dir.path().join(format!("{name}-identity.json")),
            identity_key: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            approve_all_devices: admin,
        })
        .expect("an operator connection");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !gw.is_connected() && tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(GatewayEvent::Connected { .. })) | Err(_) => break,
                _ => {}
            }
        }
        (gw, events)
    }
}
