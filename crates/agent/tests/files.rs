//! Files through the real OpenClaw gateway: a 5 MB image attached on the desktop travels in
//! sealed parts through a relay link broken twice mid-transfer and arrives at the gateway
//! byte-identical (the gateway stores an image this large for its model; its SHA-256 is checked),
//! no part reaching the agent twice; a file over the gateway's limits is refused with a
//! sentence before anything is queued.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;

use clawtray_client::outgoing_files::OutgoingFile;
use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::{ClientError, RelayClient};
use clawtray_proto::files::{sha256_hex, PART_BYTES};
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::bins::cli_output;
use clawtray_testkit::faulty_link::FaultyLink;
use clawtray_testkit::files::png_of_size;
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::relay::Relay;
use clawtray_testkit::scan::files_under;

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| Gateway::start(clawtray_testkit::fake_model::start()))
}

/// Parts of `file` the agent logged as kept: index → how many times.
fn parts_kept(log: &Path, file: &str) -> HashMap<u32, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut kept = HashMap::new();
    for line in text.lines() {
        if !line.contains("a file part is kept") || !line.contains(&format!("file={file}")) {
            continue;
        }
        if let Some(i) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("index="))
            .and_then(|i| i.parse::<u32>().ok())
        {
            *kept.entry(i).or_default() += 1;
        }
    }
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_image_through_a_link_broken_twice_arrives_byte_identical() {
    let gw = gateway();
    let relay = Relay::start(&[]).await;
    let link = FaultyLink::start(relay.addr).await;
    let state = tempfile::tempdir().unwrap();
    let agent_state = state.path().join("agent");
    let _agent = start_agent(&agent_state, gw, "files-main");
    let pairing = Pairing::start(
        agent_bin(),
        &agent_state,
        &format!("ws://{}", relay.addr),
        "files-agent",
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let client = RelayClient::start(
        client_config(data.path()),
        Arc::new(MemorySessionStore::default()),
    );
    let mut seen = Seen::new(&client);
    client
        .pair(&pairing.code, &format!("ws://{}", link.addr))
        .await
        .expect("pairing succeeds");
    pairing.finish().await;
    seen.until("the desktop online with the running agent", online)
        .await;

    let image = png_of_size(5 * 1024 * 1024, 0x5eed);
    let parts = image.len().div_ceil(PART_BYTES) as u32;
    let text = "what is in this picture? #id=img# #words=3#";
    let sent = client
        .send_with_files(
            None,
            text,
            None,
            vec![OutgoingFile {
                name: "holiday.png".into(),
                mime: "image/png".into(),
                bytes: image.clone(),
            }],
        )
        .await
        .expect("the image is queued");

    // break the desktop's link twice while the parts are on their way
    let log = agent_state.with_extension("log");
    let file_id = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(id) = text
                .lines()
                .filter(|l| l.contains("a file part is kept"))
                .find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("file="))
                        .map(str::to_owned)
                })
            {
                break id;
            }
            assert!(
                Instant::now() < deadline,
                "no part reached the agent; its log ends: {}",
                tail(&text)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let mut breaks = Vec::new();
    for (at, reset) in [(parts / 3, true), (parts * 2 / 3, false)] {
        let deadline = Instant::now() + Duration::from_secs(120);
        while (parts_kept(&log, &file_id).len() as u32) < at.max(1) {
            assert!(
                Instant::now() < deadline,
                "the transfer stalled before {at} parts"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let had = parts_kept(&log, &file_id).len();
        if reset {
            link.reset_current_mid_frame();
        } else {
            link.drop_current();
        }
        breaks.push(had);
    }
    println!("the link broke after {breaks:?} of {parts} parts reached the agent");
    // both breaks fell mid-transfer
    assert!(
        breaks.iter().all(|&b| (b as u32) < parts),
        "the link broke after {breaks:?} of {parts} parts: not mid-transfer"
    );

    seen.until("the reply to the picture", |s| {
        s.reply_of(&sent.id).is_some()
            || s.errors
                .iter()
                .any(|(run, _)| run.as_deref() == Some(sent.id.as_str()))
    })
    .await;
    let reply = seen
        .reply_of(&sent.id)
        .unwrap_or_else(|| panic!("a reply, not an error: {:?}", seen.errors));
    assert!(reply[0].starts_with("ok img:"), "{reply:?}");

    // every part reached the agent exactly once, despite two broken links
    let kept = parts_kept(&log, &file_id);
    assert_eq!(kept.len() as u32, parts, "parts kept: {}", kept.len());
    assert!(
        kept.values().all(|&n| n == 1),
        "a part reached the agent twice: {:?}",
        kept.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    // the gateway holds the very same bytes
    let want = sha256_hex(&image);
    let stored: Vec<_> = files_under(&gw.dir.path().join("state"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == image.len() as u64))
        .collect();
    assert!(
        stored
            .iter()
            .any(|p| sha256_hex(&std::fs::read(p).unwrap()) == want),
        "no file of {} bytes with SHA-256 {want} in the gateway's state: {stored:?}",
        image.len()
    );
    // the history names the file the message carried (its bytes stay with the gateway)
    client.load_history_page(None, 10, None).await.unwrap();
    seen.until("a history page", |s| !s.pages.is_empty()).await;
    let files: Vec<_> = seen.pages[0]
        .messages
        .iter()
        .flat_map(|m| m.files.clone())
        .collect();
    assert_eq!(files.len(), 1, "{:?}", seen.pages[0].messages);
    assert_eq!(files[0].name, "holiday.png");
    assert_eq!(files[0].mime.as_deref(), Some("image/png"));
    assert_eq!(files[0].size, Some(image.len() as u64));
    // and the agent removed its parts once the gateway had the file
    wait_until_empty(&agent_state.join("files")).await;
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

async fn wait_until_empty(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_under(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the agent kept parts after sending: {:?}",
            files_under(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_limits_get_a_sentence_and_nothing_is_queued() {
    let s = setup(gateway(), "files-limits").await;
    let big = OutgoingFile {
        name: "huge.png".into(),
        mime: "image/png".into(),
        bytes: vec![7; 7 * 1024 * 1024],
    };
    let e = s
        .client
        .send_with_files(None, "look", None, vec![big])
        .await
        .unwrap_err();
    match e {
        ClientError::Files(m) => {
            assert_eq!(m, "“huge.png” is 7.3 MB — images up to 6.3 MB can be sent")
        }
        other => panic!("{other:?}"),
    }
    let empty = OutgoingFile {
        name: "empty.txt".into(),
        mime: "text/plain".into(),
        bytes: Vec::new(),
    };
    let e = s
        .client
        .send_with_files(None, "look", None, vec![empty])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    assert!(s.client.queued().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_a_file_with_a_message() {
    let gw = gateway();
    let relay = Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let state = tempfile::tempdir().unwrap();
    let agent_state = state.path().join("agent");
    let _agent = start_agent(&agent_state, gw, "files-cli");
    let pairing = Pairing::start(agent_bin(), &agent_state, &base, "files-agent").await;
    let dirs = tempfile::tempdir().unwrap();
    let out = cli_output(dirs.path(), &["pair", &pairing.code, "--relay", &base]).await;
    assert!(out.status.success(), "{out:?}");
    pairing.finish().await;
    // a text file: the gateway keeps every non-image attachment for its model
    let notes: String = (0..3000)
        .map(|i| format!("line {i} of the notes\n"))
        .collect();
    let path = dirs.path().join("meeting-notes.txt");
    std::fs::write(&path, &notes).unwrap();
    let file = path.display().to_string();
    let out = cli_output(
        dirs.path(),
        &[
            "chat",
            "summarise these #id=clif# #words=2#",
            "--file",
            &file,
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{out:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok clif: w1 w2"), "{stdout}");
    let want = sha256_hex(notes.as_bytes());
    assert!(
        files_under(&gw.dir.path().join("state"))
            .iter()
            .any(|p| std::fs::read(p).is_ok_and(|b| sha256_hex(&b) == want)),
        "the gateway holds no copy of the notes"
    );
    // a file over the limits is refused by the CLI with the sentence, before anything is sent
    let big = dirs.path().join("big.png");
    std::fs::write(&big, vec![0u8; 7 * 1024 * 1024]).unwrap();
    let big = big.display().to_string();
    let out = cli_output(dirs.path(), &["chat", "look", "--file", &big]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("“big.png” is 7.3 MB — images up to 6.3 MB can be sent"),
        "{stderr}"
    );
}
