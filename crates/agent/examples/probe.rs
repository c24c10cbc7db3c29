//! Prints what the real gateway emits when a message is queued behind an active run (developer aid).
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
    println!("A: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"probe","message":"first #id=A# #words=8# #delay=150#","idempotencyKey":"run-A","queueMode":"followup"})).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    println!("B: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"probe","message":"second #id=B# #words=2#","idempotencyKey":"run-B","queueMode":"followup"})).await);
    let t = tokio::time::Instant::now();
    while t.elapsed() < Duration::from_secs(12) {
        if let Ok(Ok(GatewayEvent::Event { name, payload })) =
            tokio::time::timeout(Duration::from_secs(12), ev.recv()).await
        {
            let state = payload.get("state").and_then(|s| s.as_str()).unwrap_or("");
            let stream = payload.get("stream").and_then(|s| s.as_str()).unwrap_or("");
            if state == "delta" {
                continue;
            }
            if name == "agent" && stream != "lifecycle" && stream != "run_status" {
                continue;
            }
            let mut p = payload.clone();
            if let Some(o) = p.as_object_mut() {
                o.remove("message");
                o.remove("agentId");
                if let Some(d) = o.get_mut("data").and_then(|d| d.as_object_mut()) {
                    d.remove("terminalReceipt");
                    d.remove("terminalReply");
                }
            }
            println!(
                "{name} {}",
                p.to_string().chars().take(330).collect::<String>()
            );
        }
    }
}
