//! Prints what the real gateway does with an exec that asks for approval: the events, the list,
//! the resolve answer and the reply after it (developer aid; `cargo run --example probe_approvals`).
use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use std::time::Duration;
#[tokio::main]
async fn main() {
    let model = clawtray_testkit::fake_model::start();
    let gw = clawtray_testkit::gateway::Gateway::start_asking_for_exec(model);
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
    println!(
        "LIST: {:?}",
        client
            .request("exec.approval.list", serde_json::json!({}))
            .await
    );
    let deny = std::env::args().nth(1).as_deref() == Some("deny");
    if std::env::args().nth(1).as_deref() == Some("expire") {
        let c = client.clone();
        tokio::spawn(async move {
            println!("REQUEST: {:?}", c.request("exec.approval.request", serde_json::json!({"command": "echo expiring", "host": "gateway", "timeoutMs": 2000})).await);
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, ev.recv()).await {
            if let GatewayEvent::Event { name, payload } = &e {
                if name.starts_with("exec.approval") {
                    println!("EVENT {name}: {payload}");
                    if name.ends_with("resolved") {
                        break;
                    }
                }
            }
        }
        return;
    }
    println!("SEND: {:?}", client.request("chat.send", serde_json::json!({"sessionKey":"main","message":"run it #id=X# #exec=cat /etc/hostname#","idempotencyKey":"run-X","queueMode":"followup"})).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, ev.recv()).await {
        if let GatewayEvent::Event { name, payload } = &e {
            if name == "tick" || name == "health" {
                continue;
            }
            println!("EVENT {name}: {payload}");
            if name == "exec.approval.requested" {
                let id = payload["id"].as_str().unwrap().to_owned();
                println!(
                    "LIST: {:?}",
                    client
                        .request("exec.approval.list", serde_json::json!({}))
                        .await
                );
                let c = client.clone();
                tokio::spawn(async move {
                    let d = if deny { "deny" } else { "allow-once" };
                    println!(
                        "RESOLVE: {:?}",
                        c.request(
                            "exec.approval.resolve",
                            serde_json::json!({"id": id, "decision": d})
                        )
                        .await
                    );
                    println!(
                        "RESOLVE AGAIN: {:?}",
                        c.request(
                            "exec.approval.resolve",
                            serde_json::json!({"id": id, "decision": d})
                        )
                        .await
                    );
                });
            }
            if name == "chat" && payload["state"] == "final" {
                break;
            }
        }
    }
    println!(
        "GATEWAY LOG TAIL: {}",
        gw.log()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
