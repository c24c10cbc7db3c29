//! Prints the chat events the real gateway emits for one streamed reply (developer aid).
use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use std::time::Duration;
#[tokio::main]
async fn main() {
    let model = clawtray_testkit::fake_model::start();
    let gw = clawtray_testkit::gateway::Gateway::start(model);
    let dir = tempfile::tempdir().unwrap();
    let (client, mut ev) = GatewayClient::start(GatewayConfig {
        url: gw.url(),
        token: Some(clawtray_proto::secret::SecretString::new(
            clawtray_testkit::gateway::TEST_GATEWAY_TOKEN.into(),
        )),
        identity_path: dir.path().join("id.json"),
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(15),
    })
    .unwrap();
    loop {
        if let Ok(GatewayEvent::Connected { .. }) = ev.recv().await {
            break;
        }
    }
    let msg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "hi #id=p# #words=4# #delay=120#".into());
    println!(
        "send: {:?}",
        client
            .request(
                "chat.send",
                serde_json::json!({"sessionKey":"probe","message":msg,"idempotencyKey":"probe-1"})
            )
            .await
    );
    let t = tokio::time::Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        if let Ok(Ok(GatewayEvent::Event { name, payload })) =
            tokio::time::timeout(Duration::from_secs(15), ev.recv()).await
        {
            let stream = payload.get("stream").and_then(|s| s.as_str()).unwrap_or("");
            if name == "chat" && payload.get("state").and_then(|s| s.as_str()) != Some("status")
                || name == "agent" && stream == "lifecycle"
            {
                println!("{name} {}", payload);
            }
            if name == "chat" && payload.get("state").and_then(|s| s.as_str()) == Some("final") {
                break;
            }
        }
    }
    println!(
        "history: {}",
        client
            .request(
                "chat.history",
                serde_json::json!({"sessionKey":"probe","limit":10})
            )
            .await
            .map(|v| v.get("messages").cloned().unwrap_or_default().to_string())
            .unwrap_or_default()
    );
}
