//! Against a real Secret Service (gnome-keyring in a private D-Bus session): the keyring store,
//! and `clawtray-cli` as a real process — pair, chat, a SIGKILL with a message queued, exactly-once
//! delivery afterwards, unpair — then a scan of every file and log for secrets and message text.
//!
//! Run by `scripts/test` through `scripts/with-secret-service`; plain `cargo test` lists them as
//! ignored, because without a Secret Service they cannot prove anything.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;

use clawtray_client::session_store::{
    new_stored_session, KeyringSessionStore, SessionInfo, SessionStore, METADATA_FILE,
};
use clawtray_proto::secret::{SecretKey, SecretString, StaticKeypair};
use clawtray_testkit::agent_end::{expected_reply, Script, TestAgent};
use clawtray_testkit::relay::Relay;
use clawtray_testkit::scan::{contains, files_under};

const NEEDS: &str =
    "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)";

fn secret_tool_search(session_id: &str) -> String {
    clawtray_testkit::scan::secret_tool_search("clawtray", &format!("session:{session_id}"))
}

#[test]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)"]
fn the_keyring_store_keeps_secrets_in_the_real_secret_service() {
    assert!(std::env::var("CLAWTRAY_SECRET_SERVICE").is_ok(), "{NEEDS}");
    let dir = tempfile::tempdir().unwrap();
    let store = KeyringSessionStore::new(dir.path().to_owned());
    let key = StaticKeypair::generate().unwrap();
    let s = new_stored_session(
        SessionInfo {
            relay_url: "wss://relay.example.com".into(),
            session_id: "AAAAsessionIdForTest0".into(),
            agent_name: "agent".into(),
            paired_at_ms: 1,
        },
        key.clone(),
        [9; 32],
        SecretString::new("device-token-MARKER".into()),
        SecretKey::random().unwrap(),
    );
    store.save(&s).unwrap();
    // the entry is really in the Secret Service (not keyring's silent in-memory mock)
    let found = secret_tool_search(&s.info.session_id);
    assert!(found.contains("session:AAAAsessionIdForTest0"), "{found}");
    // a fresh store object (as in a new process) reads it back
    let loaded = KeyringSessionStore::new(dir.path().to_owned())
        .load()
        .unwrap()
        .expect("stored");
    assert_eq!(loaded.info, s.info);
    assert_eq!(loaded.secrets.device_token.expose(), "device-token-MARKER");
    assert_eq!(loaded.secrets.desktop_key.public(), key.public());
    // the metadata file holds no secret
    let meta = std::fs::read_to_string(dir.path().join(METADATA_FILE)).unwrap();
    assert!(
        !meta.contains("MARKER")
            && !meta
                .contains(&base64::engine::general_purpose::STANDARD.encode(key.secret().expose()))
    );
    store.clear().unwrap();
    assert!(
        !secret_tool_search(&s.info.session_id).contains("session:"),
        "entry removed"
    );
    assert!(store.load().unwrap().is_none());
}

fn cli(data: &Path, config: &Path, log: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_clawtray-cli"));
    c.arg("--data-dir")
        .arg(data)
        .arg("--config-dir")
        .arg(config);
    c.env("CLAWTRAY_LOG", "debug");
    c.stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap(),
    );
    c.stdout(Stdio::piped());
    c.kill_on_drop(true);
    c
}

/// Run the CLI; on failure, show its stdout and the end of its debug log (which holds no
/// secrets: the test scans it) so a rare failure can be understood from the CI log alone.
async fn run_ok(mut c: tokio::process::Command, log: &Path) -> String {
    let out = tokio::time::timeout(Duration::from_secs(60), c.output())
        .await
        .expect("cli finishes")
        .expect("cli runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "cli failed ({:?}): {stdout}\n--- the end of its log ---\n{}",
            out.status,
            tail.join("\n")
        );
    }
    stdout
}

fn outbox_rows(data: &Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open_with_flags(
        data.join("outbox.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return -1;
    };
    c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap_or(-1)
}

#[tokio::test]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)"]
async fn the_cli_pairs_chats_and_a_killed_process_loses_nothing() {
    assert!(std::env::var("CLAWTRAY_SECRET_SERVICE").is_ok(), "{NEEDS}");
    let relay = Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let dir = tempfile::tempdir().unwrap();
    let (data, config, log) = (
        dir.path().join("data"),
        dir.path().join("config"),
        dir.path().join("cli.log"),
    );
    let script = Script {
        words: 3,
        delta_delay: Duration::from_millis(10),
    };

    let (code, agent) = TestAgent::pair(&base, script.clone()).await;
    let mut c = cli(&data, &config, &log);
    c.args(["pair", &code, "--relay", &base]);
    let out = run_ok(c, &log).await;
    assert!(out.contains("paired with test-agent"), "{out}");
    let agent = agent.await.unwrap();

    let mut c = cli(&data, &config, &log);
    c.args(["chat", "hello MARKER-one"]);
    assert_eq!(
        run_ok(c, &log).await,
        format!("{}\n", expected_reply("hello MARKER-one", 3))
    );

    // the agent goes away; a message is queued; the CLI is killed before it can be delivered
    let disk = agent.kill();
    let mut c = cli(&data, &config, &log);
    c.args(["chat", "queued MARKER-two"]);
    let mut child = c.spawn().unwrap();
    let mut waited = 0;
    while outbox_rows(&data) != 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 400, "the message never reached the outbox");
    }
    child.kill().await.unwrap();
    assert_eq!(outbox_rows(&data), 1, "the message survives the kill");

    // the agent comes back (a new process); the next CLI run delivers the queued message first
    let agent = TestAgent::start(&base, disk, "second", script);
    let mut c = cli(&data, &config, &log);
    c.args(["chat", "after MARKER-three"]);
    assert_eq!(
        run_ok(c, &log).await,
        format!("{}\n", expected_reply("after MARKER-three", 3))
    );
    assert_eq!(
        agent.disk.received(),
        vec![
            "hello MARKER-one",
            "queued MARKER-two",
            "after MARKER-three"
        ]
    );
    assert_eq!(outbox_rows(&data), 0);

    let mut c = cli(&data, &config, &log);
    c.args(["history"]);
    let history = run_ok(c, &log).await;
    assert!(history.contains("user: queued MARKER-two"), "{history}");

    // no secret and no message text in the data dir, the config dir or any log
    let stored = KeyringSessionStore::new(config.clone())
        .load()
        .unwrap()
        .expect("paired");
    let secret_key = stored.secrets.desktop_key.secret().expose().to_vec();
    let compact_code = code.replace('-', "");
    let pairing_secret = compact_code[compact_code.len() - 8..].to_owned();
    let needles: Vec<(String, Vec<u8>)> = vec![
        (
            "device token".into(),
            stored.secrets.device_token.expose().as_bytes().to_vec(),
        ),
        ("private key (raw)".into(), secret_key.clone()),
        (
            "private key (base64)".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&secret_key)
                .into_bytes(),
        ),
        (
            "private key (hex)".into(),
            hex_lower(&secret_key).into_bytes(),
        ),
        (
            "outbox key (raw)".into(),
            stored.secrets.outbox_key.expose().to_vec(),
        ),
        ("pairing secret".into(), pairing_secret.into_bytes()),
        ("pairing code".into(), code.as_bytes().to_vec()),
        ("message text".into(), b"MARKER".to_vec()),
    ];
    let mut files = files_under(&data);
    files.extend(files_under(&config));
    files.push(log.clone());
    files.push(relay.dir.path().join("relay.log"));
    files.push(relay.db());
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        for (what, needle) in &needles {
            assert!(!contains(&bytes, needle), "{what} found in {}", f.display());
        }
    }
    assert!(
        std::fs::metadata(&log).unwrap().len() > 0,
        "the CLI logged something at debug level"
    );

    let mut c = cli(&data, &config, &log);
    c.arg("unpair");
    assert!(run_ok(c, &log).await.contains("unpaired"));
    assert!(
        !secret_tool_search(&stored.info.session_id).contains("session:"),
        "keyring entry removed"
    );
    assert!(!config.join(METADATA_FILE).exists());
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
