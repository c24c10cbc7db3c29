//! Prints what the real gateway does with several sessions and paged history: events of two
//! sessions at once, `sessions.list`, `sessions.subscribe`, and `chat.history` pages by offset
//! (developer aid; `cargo run --example probe_sessions`).
use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use serde_json::json;
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
        approve_all_devices: true,
    })
    .unwrap();
    loop {
        if let Ok(GatewayEvent::Connected { .. }) = ev.recv().await {
            break;
        }
    }
    println!(
        "SUBSCRIBE: {:?}",
        client.request("sessions.subscribe", json!({})).await
    );
    println!(
        "LIST0: {:?}",
        client.request("sessions.list", json!({})).await
    );
    for (s, id) in [("main", "m-1"), ("work", "w-1")] {
        println!("SEND {s}: {:?}", client.request("chat.send", json!({"sessionKey":s,"message":format!("hello #id={id}#"),"idempotencyKey":id,"queueMode":"followup"})).await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut finals = 0;
    while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, ev.recv()).await {
        if let GatewayEvent::Event { name, payload } = &e {
            if name == "tick" || name == "health" {
                continue;
            }
            let p = payload.to_string();
            println!("EVENT {name}: {}", &p[..p.len().min(400)]);
            if name == "chat" && payload.get("state").and_then(|s| s.as_str()) == Some("final") {
                finals += 1;
                if finals == 2 {
                    break;
                }
            }
        }
    }
    let l = client.request("sessions.list", json!({})).await.unwrap();
    if let Some(row) = l["sessions"].as_array().unwrap().first() {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        println!("ROW key={} label={} displayName={} derivedTitle={} updatedAt={} hasActiveRun={} kind={} lastMessagePreview={}", row["key"], row["label"], row["displayName"], row["derivedTitle"], row["updatedAt"], row["hasActiveRun"], row["kind"], row["lastMessagePreview"]);
        println!("ROWKEYS {keys:?}");
    }
    for i in 0..30u32 {
        let r = client
            .request(
                "chat.inject",
                json!({"sessionKey":"work","message":format!("note {i}")}),
            )
            .await;
        if i == 0 {
            println!("INJECT: {r:?}");
        }
    }
    let mut offset: Option<u64> = None;
    for _ in 0..6 {
        let mut p = json!({"sessionKey":"work","limit":8});
        if let Some(o) = offset {
            p["offset"] = json!(o);
        }
        let r = client.request("chat.history", p).await.unwrap();
        let texts: Vec<String> = r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}:{}", m["role"], m["content"]))
            .collect();
        println!("PAGE offset={offset:?} -> n={} hasMore={} nextOffset={} offset={} first={:?} last={:?}", texts.len(), r["hasMore"], r["nextOffset"], r["offset"], texts.first(), texts.last());
        if r["hasMore"] != json!(true) {
            break;
        }
        offset = r["nextOffset"].as_u64();
    }
    let r = client
        .request("chat.history", json!({"sessionKey":"work","limit":2}))
        .await
        .unwrap();
    let mut r2 = r.clone();
    r2["messages"] = json!([]);
    println!("HISTORY KEYS: {r2}");
    println!("MSG0: {}", r["messages"][0]);
    let _ = ev.try_recv();
}
