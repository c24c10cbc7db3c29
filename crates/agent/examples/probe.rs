//! Prints what the real gateway answers and emits for a message queued behind an active run, a resent idempotency key and `agent.wait` (developer aid).
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
        identity_key: None,
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(15),
        approve_all_devices: false,
    })
    .unwrap();
    loop {
        if let Ok(GatewayEvent::Connected { .. }) = ev.recv().await {
            break;
        }
    }
    println!("A: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"probe","message":"first #id=A# #words=6# #delay=300#","idempotencyKey":"run-A","queueMode":"followup"})).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("B: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"probe","message":"second #id=B# #words=2#","idempotencyKey":"run-B","queueMode":"followup"})).await);
    println!("B again: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"probe","message":"second #id=B# #words=2#","idempotencyKey":"run-B","queueMode":"followup"})).await);
    let t = std::time::Instant::now();
    println!(
        "WAIT B: {:?} after {:?}",
        client
            .request(
                "agent.wait",
                serde_json::json!({"runId":"run-B","timeoutMs":15000})
            )
            .await,
        t.elapsed()
    );
    println!(
        "WAIT A: {:?}",
        client
            .request(
                "agent.wait",
                serde_json::json!({"runId":"run-A","timeoutMs":15000})
            )
            .await
    );
    println!("A again: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"probe","message":"first #id=A# #words=6# #delay=300#","idempotencyKey":"run-A","queueMode":"followup"})).await);
    while let Ok(Ok(GatewayEvent::Event { name, payload })) =
        tokio::time::timeout(Duration::from_secs(3), ev.recv()).await
    {
        if name == "chat" {
            println!(
                "EV {} {} {:?} {:?}",
                payload["runId"],
                payload["state"],
                payload.get("message").map(|m| m.to_string().len()),
                payload.get("completionSource")
            );
        }
        if name == "agent" && payload["stream"] == "lifecycle" {
            println!("LC {} {}", payload["runId"], payload["data"]);
        }
    }
}
