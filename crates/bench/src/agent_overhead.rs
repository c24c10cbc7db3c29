//! Row 7 — agent overhead: from the gateway's `chat` delta event to the desktop's delta, p50/p99.
//! The real gateway (fake model), the release agent and relay, the real desktop core; a second
//! operator connection to the gateway (a tap, in this process) timestamps each delta as the
//! gateway sends it, and the desktop timestamps the same delta (same run, same gateway seq) on
//! arrival — one clock. Baseline: the tap's own arrival spread is zero by construction, so the
//! row compares against the relay's one-way time (half a 1 KiB round trip through the relay).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clawtray_agent::gateway::GatewayEvent;
use clawtray_client::ClientEvent;
use clawtray_proto::chat::ToDesktop;

use crate::real_agent::RealAgent;
use crate::report::Row;
use crate::stats::{percentile, us};

const MESSAGES: usize = 3;

pub async fn run(rows: &mut Vec<Row>, relay_one_way: Option<Duration>) {
    let mut real = RealAgent::start("bench").await;
    let (tap, mut tapped) = real.operator("tap", false).await;
    let (client, events) = (&real.client, &mut real.events);
    let at_gateway: Arc<std::sync::Mutex<HashMap<(String, u64), Instant>>> = Arc::default();
    let seen = at_gateway.clone();
    let tapping = tokio::spawn(async move {
        while let Ok(ev) = tapped.recv().await {
            if let GatewayEvent::Event { name, payload } = ev {
                let delta = payload.get("state").and_then(|s| s.as_str()) == Some("delta");
                if name == "chat" && delta {
                    if let (Some(run), Some(seq)) = (
                        payload.get("runId").and_then(|r| r.as_str()),
                        payload.get("seq").and_then(serde_json::Value::as_u64),
                    ) {
                        seen.lock()
                            .expect("tap")
                            .insert((run.to_owned(), seq), Instant::now());
                    }
                }
            }
        }
    });
    // the gateway sends a session's chat events to connections that asked about that session
    let ready = tokio::time::Instant::now() + Duration::from_secs(30);
    while !tap.is_connected() && tokio::time::Instant::now() < ready {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tap.request(
        "chat.history",
        serde_json::json!({ "sessionKey": "bench", "limit": 1 }),
    )
    .await
    .expect("the tap joins the session");
    let mut at_desktop: Vec<((String, u64), Instant)> = Vec::new();
    for i in 0..MESSAGES {
        client
            .send(&format!("bench {i} #id=b{i}# #words=120# #delay=40#"))
            .await
            .expect("send");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(ClientEvent::Chat {
                    message: ToDesktop::ChatDelta { run_id, seq, .. },
                })) => at_desktop.push(((run_id, seq), Instant::now())),
                Ok(Ok(ClientEvent::Chat {
                    message: ToDesktop::ChatReply { .. },
                })) => break,
                Ok(Ok(_)) => {}
                _ => panic!("no reply from the agent in time"),
            }
        }
    }
    tapping.abort();
    drop(tap);
    let tapped = at_gateway.lock().expect("tap").clone();
    let mut lat: Vec<Duration> = at_desktop
        .iter()
        .filter_map(|(k, t)| tapped.get(k).map(|g| t.saturating_duration_since(*g)))
        .collect();
    let matched = lat.len();
    if matched == 0 {
        eprintln!(
            "bench: no delta matched: the tap saw {} deltas ({:?}…), the desktop {} ({:?}…)",
            tapped.len(),
            tapped.keys().next(),
            at_desktop.len(),
            at_desktop.first().map(|(k, _)| k)
        );
    }
    let p50 = percentile(&mut lat, 50.0);
    let p99 = percentile(&mut lat, 99.0);
    let base = relay_one_way.map(us);
    let mut r50 = Row::new(
        format!("agent: gateway delta → desktop delta, p50 ({matched} deltas)"),
        us(p50),
        "µs",
    );
    let mut r99 = Row::new("agent: gateway delta → desktop delta, p99", us(p99), "µs");
    if let Some(b) = base {
        r50 = r50.against("relay one way", b);
        r99 = r99.against("relay one way", b);
    }
    rows.push(r50);
    rows.push(r99);
}
