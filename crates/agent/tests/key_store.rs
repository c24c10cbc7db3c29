//! Where the agent's static key lives, with the real `clawtray-agent` and — for the keyring — a
//! real Secret Service (gnome-keyring in a private D-Bus session), checked from outside with
//! `secret-tool`:
//! - paired with the keyring, a copy of the state dir holds neither the key nor a relay token,
//!   and an agent started on the copy finds no key and makes none;
//! - an older agent's key file (key and tokens in clear) moves into the keyring, tokens sealed;
//! - a systemd credential wins, and the other copies are removed;
//! - a keyring emptied (or locked) never costs the pairings a new key; two different keys are an
//!   error; `--key-store keyring` without a keyring says so.
//!
//! The keyring tests are run by `scripts/test` through `scripts/with-secret-service`; plain
//! `cargo test` lists them as ignored, because without a Secret Service they cannot prove anything.

mod common;

use std::path::Path;
use std::sync::Arc;

use base64::Engine;

use clawtray_agent::at_rest::{self, Purpose};
use clawtray_agent::keys::{CREDENTIAL_NAME, KEYRING_SERVICE};
use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::RelayClient;
use clawtray_proto::secret::{SecretKey, StaticKeypair};
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::relay::Relay;
use clawtray_testkit::scan::{contains, files_under};
use common::*;

const NEEDS: &str =
    "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// `clawtray-agent --state-dir STATE ARGS…` with extra environment; (success, stdout, stderr).
fn agent(state: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(agent_bin())
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run clawtray-agent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn key_where(state: &Path, env: &[(&str, &str)]) -> String {
    let (ok, out, err) = agent(state, &["key", "where"], env);
    assert!(ok, "key where failed: {err}");
    out
}

fn export(state: &Path) -> StaticKeypair {
    export_with(state, &[])
}

/// What `secret-tool` finds for the agent of `state` (an independent look at the keyring).
fn keyring_entry(state: &Path) -> String {
    let who = format!(
        "static-key:{}",
        state.canonicalize().unwrap_or(state.to_owned()).display()
    );
    clawtray_testkit::scan::secret_tool_search(KEYRING_SERVICE, &who)
}

fn tokens_in(state: &Path, key: &StaticKeypair) -> serde_json::Map<String, serde_json::Value> {
    let sealed = std::fs::read(state.join("tokens.sealed")).expect("tokens.sealed");
    let plain = at_rest::open(&at_rest::sealing_key(key, Purpose::Tokens), &sealed)
        .expect("the tokens open with the agent's key");
    serde_json::from_slice(&plain).expect("json")
}

/// Every spelling of `secret` a scan looks for.
fn spellings(secret: &[u8]) -> Vec<Vec<u8>> {
    vec![
        secret.to_vec(),
        b64().encode(secret).into_bytes(),
        hex::encode(secret).into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(secret)
            .into_bytes(),
    ]
}

fn files_holding(dir: &Path, secret: &[u8]) -> Vec<std::path::PathBuf> {
    let needles = spellings(secret);
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap_or_default();
            needles.iter().any(|n| contains(&bytes, n))
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in files_under(from) {
        let rel = f.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, dest).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)"]
async fn with_a_keyring_a_copy_of_the_state_dir_holds_no_key_and_no_token() {
    assert!(std::env::var("CLAWTRAY_SECRET_SERVICE").is_ok(), "{NEEDS}");
    let relay = Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let pairing = Pairing::start(agent_bin(), &state, &base, "keyring-agent").await;
    let data = tempfile::tempdir().unwrap();
    let client = RelayClient::start(
        client_config(data.path()),
        Arc::new(MemorySessionStore::default()),
    );
    let mut seen = Seen::new(&client);
    client.pair(&pairing.code, &base).await.expect("paired");
    pairing.finish().await;
    assert!(key_where(&state, &[]).contains("OS keyring"));
    assert!(
        keyring_entry(&state).contains("secret"),
        "secret-tool sees the key in the keyring: {}",
        keyring_entry(&state)
    );
    assert!(!state.join("agent-key.json").exists());

    // the running agent serves the desktop with the key and token it keeps there
    let mut run = clawtray_testkit::agent::AgentRun::start_at(
        agent_bin(),
        &state,
        "ws://127.0.0.1:9",
        "main",
        &[],
    );
    seen.until("the desktop online with the agent", online)
        .await;
    run.kill().await;

    // positive controls: the key from the keyring opens the sealed tokens, and the scan finds a
    // planted copy of each secret
    let key = export(&state);
    let tokens = tokens_in(&state, &key);
    assert_eq!(tokens.len(), 1, "one pairing, one token");
    let token = tokens.values().next().unwrap().as_str().unwrap().to_owned();
    let plant = dir.path().join("planted");
    std::fs::create_dir_all(&plant).unwrap();
    std::fs::write(plant.join("k"), b64().encode(key.secret().expose())).unwrap();
    std::fs::write(plant.join("t"), &token).unwrap();
    assert_eq!(files_holding(&plant, key.secret().expose()).len(), 1);
    assert_eq!(files_holding(&plant, token.as_bytes()).len(), 1);

    let copy = dir.path().join("copy");
    copy_dir(&state, &copy);
    assert!(
        files_holding(&copy, key.secret().expose()).is_empty(),
        "the static key is in no file of the state dir"
    );
    assert!(
        files_holding(&copy, token.as_bytes()).is_empty(),
        "nor is the relay token"
    );
    // a thief's agent on the copy finds no key, and makes none (that would orphan the pairing)
    let (ok, _, err) = agent(&copy, &["key", "where"], &[]);
    assert!(!ok && err.contains("in none of its homes"), "{err}");
    assert!(!copy.join("agent-key.json").exists());
    assert!(!keyring_entry(&copy).contains("secret"));
}

#[test]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)"]
fn an_older_agents_key_file_moves_into_the_keyring_with_its_tokens_sealed() {
    assert!(std::env::var("CLAWTRAY_SECRET_SERVICE").is_ok(), "{NEEDS}");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    std::fs::create_dir_all(&state).unwrap();
    let key = StaticKeypair::generate().unwrap();
    let legacy = serde_json::json!({
        "static_secret": b64().encode(key.secret().expose()),
        "tokens": {"sess-1": "TOKEN-legacy-marker"},
    });
    std::fs::write(state.join("agent-key.json"), legacy.to_string()).unwrap();
    write_one_pairing(&state);

    assert!(key_where(&state, &[]).contains("OS keyring"));
    assert!(
        !state.join("agent-key.json").exists(),
        "the old file is gone"
    );
    assert_eq!(export(&state).public(), key.public(), "the same key, moved");
    assert_eq!(tokens_in(&state, &key)["sess-1"], "TOKEN-legacy-marker");
    assert!(files_holding(&state, b"TOKEN-legacy-marker").is_empty());
    assert!(files_holding(&state, key.secret().expose()).is_empty());
}

#[test]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)"]
fn a_systemd_credential_wins_and_the_other_copies_go() {
    assert!(std::env::var("CLAWTRAY_SECRET_SERVICE").is_ok(), "{NEEDS}");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    assert!(key_where(&state, &[]).contains("OS keyring"));
    let key = export(&state);
    // what systemd does for LoadCredentialEncrypted=: the decrypted credential in a private dir
    let creds = dir.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(
        creds.join(CREDENTIAL_NAME),
        format!("{}\n", b64().encode(key.secret().expose())),
    )
    .unwrap();
    let env = [("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())];
    assert!(key_where(&state, &env).contains("systemd credential"));
    assert!(
        !keyring_entry(&state).contains("secret"),
        "the keyring copy was removed: {}",
        keyring_entry(&state)
    );
    assert_eq!(export_with(&state, &env).public(), key.public());
    // a service told to use the credential and not given one says how to give it
    let (ok, _, err) = agent(&state, &["--key-store", "credential", "key", "where"], &[]);
    assert!(!ok && err.contains("LoadCredentialEncrypted"), "{err}");
}

fn export_with(state: &Path, env: &[(&str, &str)]) -> StaticKeypair {
    let (ok, out, err) = agent(state, &["key", "export"], env);
    assert!(ok, "key export failed: {err}");
    let raw: [u8; 32] = b64()
        .decode(out.trim())
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    StaticKeypair::from_secret(SecretKey::from_bytes(raw))
}

/// A `pairings.json` with one desktop (session `sess-1`), as the agent writes it.
fn write_one_pairing(state: &Path) {
    let pairing = serde_json::json!([{
        "session": "sess-1", "relay_url": "ws://127.0.0.1:1",
        "desktop_public": b64().encode([7u8; 32]), "desktop_name": "laptop", "paired_at_ms": 1,
    }]);
    std::fs::write(state.join("pairings.json"), pairing.to_string()).unwrap();
}

#[test]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (scripts/test does)"]
fn an_emptied_keyring_never_costs_the_pairings_a_new_key_and_two_keys_are_an_error() {
    assert!(std::env::var("CLAWTRAY_SECRET_SERVICE").is_ok(), "{NEEDS}");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    assert!(key_where(&state, &[]).contains("OS keyring"));
    write_one_pairing(&state);

    // a second, different key beside the keyring's: refused, nothing chosen silently
    let other = StaticKeypair::generate().unwrap();
    let file = serde_json::json!({"static_secret": b64().encode(other.secret().expose())});
    std::fs::write(state.join("agent-key.json"), file.to_string()).unwrap();
    let (ok, _, err) = agent(&state, &["key", "where"], &[]);
    assert!(!ok && err.contains("two different agent keys"), "{err}");
    std::fs::remove_file(state.join("agent-key.json")).unwrap();

    // the keyring loses the key (a reset, another session): the agent says so and makes none
    let who = format!("static-key:{}", state.canonicalize().unwrap().display());
    let cleared = std::process::Command::new("secret-tool")
        .args(["clear", "service", KEYRING_SERVICE, "username", &who])
        .status()
        .unwrap();
    assert!(cleared.success());
    let (ok, _, err) = agent(&state, &["key", "where"], &[]);
    assert!(!ok && err.contains("in none of its homes"), "{err}");
    assert!(!state.join("agent-key.json").exists(), "no new key file");
    assert!(
        !keyring_entry(&state).contains("secret"),
        "no new keyring entry"
    );

    // no keyring at all (no D-Bus session): `--key-store keyring` says so
    let (ok, _, err) = agent(
        &state,
        &["--key-store", "keyring", "key", "where"],
        &[("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")],
    );
    assert!(!ok && err.contains("keyring does not answer"), "{err}");
}

#[test]
fn without_a_keyring_the_key_lives_in_a_private_file_and_tokens_stay_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent");
    let no_keyring = [("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")];
    let home = key_where(&state, &no_keyring);
    assert!(
        home.contains("agent-key.json") && home.contains("0600"),
        "{home}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("agent-key.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
