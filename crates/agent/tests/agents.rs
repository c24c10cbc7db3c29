//! Several agents on one desktop, against the real OpenClaw gateway: a desktop pairs with two
//! real agents (two sessions of one gateway) through two relays, each pairing in its own slot
//! (its own keyring entry, metadata and outbox); it chats with both; one agent killed → only its
//! state changes; the pairings come back from the keyring after a restart; unpairing one leaves
//! the other paired and online; `clawtray-cli --agent NAME` talks to the one named and refuses
//! to guess when there are two. Needs a Secret Service (the test command runs it under
//! `scripts/with-secret-service`).

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;

use clawtray_client::agents::{Agents, StoreFor, FIRST_SLOT};
use clawtray_client::session_store::{KeyringSessionStore, SessionStore};
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ConnectionState, RelayClient};
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::bins::cli_output as cli;
use clawtray_testkit::fake_model::reply_for;
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::relay::Relay;

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| Gateway::start(clawtray_testkit::fake_model::start()))
}

fn keyring() -> StoreFor {
    Arc::new(|dir: &Path| {
        Arc::new(KeyringSessionStore::new(dir.to_owned())) as Arc<dyn SessionStore>
    })
}

async fn wait_state(c: &RelayClient, what: &str, ok: impl Fn(&ConnectionState) -> bool) {
    let mut st = c.state();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok(&st.borrow().clone()) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            tokio::time::timeout(left, st.changed()).await.is_ok(),
            "{what}: still {:?}",
            st.borrow().clone()
        );
    }
}

fn peer_online(s: &ConnectionState) -> bool {
    matches!(
        s,
        ConnectionState::Online {
            peer: PeerPresence::Online
        }
    )
}

fn peer_away(s: &ConnectionState) -> bool {
    matches!(
        s,
        ConnectionState::Online {
            peer: PeerPresence::Away
        }
    )
}

/// Send `text` with `client` and wait for the reply.
async fn chat(client: &RelayClient, text: &str) -> String {
    let mut seen = Seen::new(client);
    let id = client.send_to(None, text, None).await.unwrap().id;
    seen.until("the reply", |s| s.reply_of(&id).is_some()).await;
    seen.reply_of(&id).unwrap()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Secret Service: run under scripts/with-secret-service (the test command does)"]
async fn one_desktop_two_agents_each_in_its_own_slot() {
    let gw = gateway();
    let (relay_home, relay_work) = (Relay::start(&[]).await, Relay::start(&[]).await);
    let (home_url, work_url) = (
        format!("ws://{}", relay_home.addr),
        format!("ws://{}", relay_work.addr),
    );
    let state = tempfile::tempdir().unwrap();
    let (home_state, work_state) = (state.path().join("home"), state.path().join("work"));
    let _home = start_agent(&home_state, gw, "agents-home");
    let mut work = start_agent(&work_state, gw, "agents-work");

    let desk = tempfile::tempdir().unwrap();
    let base = ClientConfig::new(desk.path().join("data"), "two-agents-desktop".into());
    let mut agents = Agents::open(base.clone(), desk.path().join("config"), keyring());
    assert_eq!(agents.list().len(), 1, "one empty slot to start with");

    // pair the first, then a second without unpairing the first — on another relay
    let p = Pairing::start(agent_bin(), &home_state, &home_url, "Home").await;
    let (home_slot, info) = agents.pair(&p.code, &home_url).await.unwrap();
    p.finish().await;
    assert_eq!(
        (home_slot.as_str(), info.agent_name.as_str()),
        (FIRST_SLOT, "Home")
    );
    let p = Pairing::start(agent_bin(), &work_state, &work_url, "Work").await;
    let (work_slot, info) = agents.pair(&p.code, &work_url).await.unwrap();
    p.finish().await;
    assert_ne!(work_slot, FIRST_SLOT);
    assert_eq!(info.relay_url, work_url);
    let names: Vec<_> = agents
        .paired()
        .await
        .into_iter()
        .map(|(_, i)| i.agent_name)
        .collect();
    assert_eq!(names, ["Home", "Work"]);
    // each pairing is its own keyring entry, metadata file and outbox
    assert!(desk.path().join("config/pairing.json").exists());
    assert!(desk
        .path()
        .join("config/agents")
        .join(&work_slot)
        .join("pairing.json")
        .exists());
    assert!(desk
        .path()
        .join("data/agents")
        .join(&work_slot)
        .join("outbox.db")
        .exists());

    let home_c = agents.get(&home_slot).unwrap().client.clone();
    let work_c = agents.get(&work_slot).unwrap().client.clone();
    wait_state(&home_c, "Home online", peer_online).await;
    wait_state(&work_c, "Work online", peer_online).await;
    let (h, w) = ("for home #id=h# #words=2#", "for work #id=w# #words=3#");
    let (rh, rw) = tokio::join!(chat(&home_c, h), chat(&work_c, w));
    assert_eq!((rh, rw), (reply_for(h), reply_for(w)));

    // the work agent dies: only its state changes
    work.kill().await;
    wait_state(&work_c, "Work away", peer_away).await;
    assert!(
        peer_online(&home_c.state().borrow()),
        "{:?}",
        home_c.state().borrow()
    );
    let again = "still here? #id=h2# #words=1#";
    assert_eq!(chat(&home_c, again).await, reply_for(again));
    assert!(peer_away(&work_c.state().borrow()));

    // a restart finds both pairings (in the keyring, by slot)
    agents.shutdown().await;
    let agents = Agents::open(base.clone(), desk.path().join("config"), keyring());
    let names: Vec<_> = agents
        .paired()
        .await
        .into_iter()
        .map(|(s, i)| (s, i.agent_name))
        .collect();
    assert_eq!(
        names,
        [
            (FIRST_SLOT.to_owned(), "Home".to_owned()),
            (work_slot.clone(), "Work".to_owned())
        ]
    );
    let home_c = agents.get(FIRST_SLOT).unwrap().client.clone();
    wait_state(&home_c, "Home online after the restart", peer_online).await;
    agents.shutdown().await;

    // the CLI: --agent picks one; without it, two agents are a question, not a guess
    let out = cli(desk.path(), &["agents"]).await;
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("Home") && listed.contains("Work"),
        "{listed}"
    );
    let out = cli(desk.path(), &["chat", "which one?"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("paired with several agents (Home, Work): say which with --agent NAME"),
        "{out:?}"
    );
    let text = "from the terminal #id=t# #words=2#";
    let out = cli(desk.path(), &["--agent", "home", "chat", text]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&reply_for(text)));
    let out = cli(desk.path(), &["--agent", "home", "sessions"]).await;
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(listed.contains("agents-home  (default)"), "{listed}");

    // unpairing Work leaves Home paired, in its slot, and talking
    let out = cli(desk.path(), &["--agent", "Work", "unpair"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(!desk.path().join("config/agents").join(&work_slot).exists());
    let agents = Agents::open(base, desk.path().join("config"), keyring());
    let left: Vec<_> = agents
        .paired()
        .await
        .into_iter()
        .map(|(_, i)| i.agent_name)
        .collect();
    assert_eq!(left, ["Home"]);
    let home_c = agents.get(FIRST_SLOT).unwrap().client.clone();
    wait_state(&home_c, "Home online after Work went", peer_online).await;
    let last = "just us #id=l# #words=1#";
    assert_eq!(chat(&home_c, last).await, reply_for(last));
    agents.shutdown().await;
}
