//! Row 10 — files: a 5 MB file attached on the real desktop core, from `send_with_files` to the
//! real agent having kept (sealed, fsynced) every part and acknowledged the message, against the
//! relay's own one-way throughput of plain 64 KiB frames measured in the same run. The file
//! travels as 48 KiB parts (64 KiB of base64) in sealed frames, paced like every backlog (a
//! 4 MiB burst, then 2 MiB/s: what keeps an end inside the relay's flood limits), so the pacer,
//! not the relay, sets its speed.

use std::time::{Duration, Instant};

use clawtray_client::outgoing_files::OutgoingFile;
use clawtray_client::{ClientEvent, MessageState};

use crate::real_agent::RealAgent;
use crate::report::Row;
use crate::ws::{self, Server};

const FILE_BYTES: usize = 5 * 1024 * 1024;
const ROUNDS: usize = 3;

pub async fn run(rows: &mut Vec<Row>) {
    // the relay alone: plain 64 KiB frames one way
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relay.db");
    let sessions = ws::seed_sessions(&db, 1);
    let relay = Server::relay(&db).await;
    let mut desk = ws::resume(&relay.addr, &sessions[0], false).await;
    let agent = ws::resume(&relay.addr, &sessions[0], true).await;
    let (relay_mibs, _) = ws::throughput(&mut desk, agent, 64 * 1024, 2_000).await;
    drop(relay);

    let mut real = RealAgent::start("bench-files").await;
    let mut took = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let bytes = clawtray_testkit::files::noise(FILE_BYTES, 0x9e37_79b9 ^ round as u64);
        let t0 = Instant::now();
        let sent = real
            .client
            .send_with_files(
                Some("bench-files"),
                &format!("a file #id=f{round}# #words=1#"),
                None,
                vec![OutgoingFile {
                    name: format!("data-{round}.bin"),
                    mime: "application/octet-stream".into(),
                    bytes,
                }],
            )
            .await
            .expect("send the file");
        // the agent acknowledges the message once every part before it is kept
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, real.events.recv()).await {
                Ok(Ok(ClientEvent::Message { id, state }))
                    if id == sent.id && state == MessageState::Delivered =>
                {
                    break
                }
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("the desktop's events ended: {e}"),
                Err(_) => panic!("the file was not delivered within 120 s"),
            }
        }
        took.push(t0.elapsed());
        // let the run finish before the next file
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    took.sort();
    let median = took[ROUNDS / 2];
    let mibs = FILE_BYTES as f64 / (1024.0 * 1024.0) / median.as_secs_f64();
    rows.push(
        Row::new(
            "a 5 MiB file, desktop → agent (parts sealed, paced, kept), throughput",
            mibs,
            "MiB/s",
        )
        .against("relay, plain 64 KiB frames", relay_mibs),
    );
    rows.push(Row::new(
        "a 5 MiB file, desktop → agent, time to delivered (median of 3)",
        median.as_secs_f64() * 1e3,
        "ms",
    ));
}
