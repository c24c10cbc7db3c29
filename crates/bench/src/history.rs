//! Row 9 — opening a long conversation: the time from the desktop asking for a session's latest
//! page (50 messages) to the page arriving, for a 5,000-message session against a 50-message one
//! (same gateway, agent, relay and desktop, same run). The real gateway (its transcripts filled
//! with `chat.inject` by an admin connection), the release agent and relay, the real desktop
//! core. The chat window renders one page either way, so this is what a long history costs to
//! open.

use std::time::{Duration, Instant};

use clawtray_client::ClientEvent;
use clawtray_proto::chat::ToDesktop;

use crate::real_agent::RealAgent;
use crate::report::Row;
use crate::stats::percentile;

const LONG: usize = 5_000;
const SHORT: usize = 50;
const PAGE: u32 = 50;
const ROUNDS: usize = 15;

pub async fn run(rows: &mut Vec<Row>) {
    let mut real = RealAgent::start("bench-main").await;
    let (admin, _admin_events) = real.operator("admin", true).await;
    let (client, events) = (&real.client, &mut real.events);

    let mut medians = Vec::new();
    for (session, size) in [("bench-long", LONG), ("bench-short", SHORT)] {
        println!("bench: filling a {size}-message conversation");
        // the first exchange makes the session (2 messages), the rest is injected
        let sent = client
            .send_to(Some(session), &format!("start #id={session}#"), None)
            .await
            .expect("send");
        wait_for(
            events,
            |m| matches!(m, ToDesktop::ChatReply { run_id, .. } if *run_id == sent.id),
        )
        .await;
        for i in 0..size.saturating_sub(2) {
            admin
                .request(
                    "chat.inject",
                    serde_json::json!({"sessionKey": session, "message": format!("note {i}")}),
                )
                .await
                .expect("chat.inject");
        }
        let mut took = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t0 = Instant::now();
            client
                .load_history_page(Some(session), PAGE, None)
                .await
                .expect("ask for history");
            let page = wait_for(events, |m| {
                matches!(m, ToDesktop::History { session: Some(s), before: None, .. } if s == session)
            })
            .await;
            took.push(t0.elapsed());
            if let ToDesktop::History { messages, .. } = page {
                assert_eq!(messages.len(), PAGE as usize, "a full first page");
            }
        }
        medians.push(percentile(&mut took, 50.0));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    rows.push(
        Row::new(
            format!("open a {LONG}-message conversation: its latest {PAGE} messages, p50"),
            ms(medians[0]),
            "ms",
        )
        .against(format!("a {SHORT}-message one"), ms(medians[1])),
    );
}

async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    want: impl Fn(&ToDesktop) -> bool,
) -> ToDesktop {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ClientEvent::Chat { message })) if want(&message) => return message,
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            _ => panic!("no answer from the agent in time"),
        }
    }
}
