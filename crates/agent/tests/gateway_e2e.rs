//! Through the real OpenClaw gateway: pairing, streamed replies matching what the model streamed,
//! abort, history, an agent restart mid-stream, and a desktop away during a reply. One gateway is
//! shared by the tests here; each test uses its own gateway session key, relay and agent.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;

use clawtray_client::{ConnectionState, RelayClient};
use clawtray_testkit::fake_model::reply_for;
use clawtray_testkit::gateway::Gateway;

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| Gateway::start(clawtray_testkit::fake_model::start()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_streams_a_reply_from_the_gateway_and_loads_history() {
    let mut s = setup(gateway(), "e2e-stream").await;
    let text = "hello gateway #id=s1# #words=6# #delay=80#";
    let id = s.client.send(text).await.unwrap();
    s.seen
        .until("the final reply", |x| x.reply_of(&id).is_some())
        .await;
    let expected = reply_for(text);
    assert_eq!(
        s.seen.reply_of(&id).unwrap(),
        &vec![expected.clone()],
        "exactly one final reply, the model's text"
    );
    assert_eq!(
        s.seen.streamed_of(&id),
        Some(expected.as_str()),
        "the deltas add up to the same text"
    );
    assert!(s.seen.streamed[s.seen.run_of(&id).unwrap()].0 > 1);
    assert!(s
        .seen
        .statuses
        .contains(&clawtray_proto::chat::GatewayStatus::Connected));

    s.client.load_history(20).await.unwrap();
    s.seen.until("history", |x| x.history.is_some()).await;
    let h = s.seen.history.clone().unwrap();
    assert!(
        h.iter()
            .any(|m| m.role == "user" && m.text.contains("hello gateway")),
        "{h:?}"
    );
    assert!(
        h.iter()
            .any(|m| m.role == "assistant" && m.text == expected),
        "{h:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_a_running_reply() {
    let mut s = setup(gateway(), "e2e-abort").await;
    let id = s
        .client
        .send("a long one #id=ab# #words=60# #delay=100#")
        .await
        .unwrap();
    s.seen
        .until("a few deltas", |x| {
            x.streamed_of(&id).is_some_and(|t| t.contains(" w3"))
        })
        .await;
    let run = s.seen.run_of(&id).unwrap().clone();
    s.client.abort(&run).await.unwrap();
    s.seen
        .until("the abort", |x| x.aborted.contains(&run))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    while let Ok(ev) = s.seen.rx.try_recv() {
        let _ = ev;
    }
    assert!(
        s.seen.reply_of(&id).is_none(),
        "an aborted run does not finish"
    );
    // the next message works
    let id2 = s
        .client
        .send("after the abort #id=ab2# #words=2# #delay=50#")
        .await
        .unwrap();
    s.seen
        .until("the next reply", |x| x.reply_of(&id2).is_some())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_mid_stream_re_keys_and_doubles_nothing() {
    let mut s = setup(gateway(), "e2e-agent-restart").await;
    let text = "survive a restart #id=rs# #words=40# #delay=100#";
    let id = s.client.send(text).await.unwrap();
    s.seen
        .until("a few deltas", |x| {
            x.streamed_of(&id).is_some_and(|t| t.contains(" w3"))
        })
        .await;
    s.agent.child.kill().await.unwrap();
    let handshakes_before = s
        .seen
        .states
        .iter()
        .filter(|st| **st == ConnectionState::Handshaking)
        .count();
    s.agent = start_agent(&s.state.path().join("agent"), gateway(), &s.session_key);
    s.seen
        .until("the final reply after the restart", |x| {
            x.reply_of(&id).is_some()
        })
        .await;
    let expected = reply_for(text);
    assert_eq!(s.seen.reply_of(&id).unwrap(), &vec![expected.clone()]);
    assert_eq!(
        s.seen.streamed_of(&id),
        Some(expected.as_str()),
        "nothing doubled in the stream"
    );
    assert!(
        s.seen
            .states
            .iter()
            .filter(|st| **st == ConnectionState::Handshaking)
            .count()
            > handshakes_before,
        "re-keyed"
    );
    let id2 = s
        .client
        .send("next one #id=rs2# #words=2# #delay=50#")
        .await
        .unwrap();
    s.seen
        .until("the next reply", |x| x.reply_of(&id2).is_some())
        .await;
    assert_eq!(
        s.seen.reply_of(&id2).unwrap(),
        &vec![reply_for("#id=rs2# #words=2#")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_away_during_a_reply_gets_all_of_it_when_back() {
    let mut s = setup(gateway(), "e2e-away").await;
    let text = "while you were away #id=aw# #words=15# #delay=80#";
    let id = s.client.send(text).await.unwrap();
    s.seen
        .until("the run started", |x| x.streamed_of(&id).is_some())
        .await;
    let run = s.seen.run_of(&id).unwrap().clone();
    s.client.shutdown().await;
    // the model finishes while the desktop is away
    tokio::time::sleep(Duration::from_secs(3)).await;
    let client = RelayClient::start(client_config(s.data.path()), s.store.clone());
    let mut seen = Seen::new(&client);
    seen.acks.insert(id.clone(), run.clone());
    seen.streamed
        .insert(run.clone(), s.seen.streamed[&run].clone());
    seen.until("the whole reply", |x| x.replies.contains_key(&run))
        .await;
    let expected = reply_for(text);
    assert_eq!(seen.replies[&run], vec![expected.clone()]);
    assert_eq!(
        seen.streamed[&run].1, expected,
        "every delta arrived, none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_started_agent_is_connecting_not_unreachable() {
    // before: a desktop that met a just-started agent was told "the agent cannot reach its
    // OpenClaw gateway" (and `clawtray-cli chat` gave up) before the first gateway connection
    // had even finished
    let mut s = setup(gateway(), "e2e-fresh-agent").await;
    // the shared gateway may still be starting up for the first test to reach it: wait until the
    // agent has it, so each round below measures an agent restart against a running gateway
    s.seen
        .until("the gateway reached", |x| {
            x.statuses.last() == Some(&clawtray_proto::chat::GatewayStatus::Connected)
        })
        .await;
    for round in 0..3 {
        s.agent.child.kill().await.unwrap();
        s.seen
            .until("the agent gone", |x| {
                matches!(
                    x.states.last(),
                    Some(ConnectionState::Online {
                        peer: clawtray_client::state::PeerPresence::Away
                    })
                )
            })
            .await;
        let statuses_before = s.seen.statuses.len();
        s.agent = start_agent(&s.state.path().join("agent"), gateway(), &s.session_key);
        let text = format!("right after a restart {round} #id=fresh{round}# #words=3#");
        let id = s.client.send(&text).await.unwrap();
        s.seen
            .until("the reply", |x| x.reply_of(&id).is_some())
            .await;
        assert_eq!(s.seen.reply_of(&id).unwrap(), &vec![reply_for(&text)]);
        assert!(
            s.seen.errors.is_empty(),
            "no error for a reply that came: {:?}",
            s.seen.errors
        );
        assert!(
            !s.seen.statuses[statuses_before..]
                .contains(&clawtray_proto::chat::GatewayStatus::Disconnected),
            "no flash of 'gateway unreachable' on an agent restart: {:?}",
            s.seen.statuses
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_real_gateway_never_answers_times_out_and_the_next_works() {
    use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayError, GatewayLink};
    use clawtray_testkit::faulty_link::FaultyLink;
    let link = FaultyLink::start(([127, 0, 0, 1], gateway().port).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let (client, _events) = GatewayClient::start(GatewayConfig {
        url: format!("ws://{}", link.addr),
        token: Some(clawtray_proto::secret::SecretString::new(
            clawtray_testkit::gateway::TEST_GATEWAY_TOKEN.to_owned(),
        )),
        identity_path: dir.path().join("device.json"),
        identity_key: None,
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(15),
        approve_all_devices: false,
    })
    .expect("start");
    let history = || {
        client.request(
            "chat.history",
            serde_json::json!({"sessionKey": "e2e-timeout", "limit": 1}),
        )
    };
    /// Ask until the gateway answers over a live connection.
    async fn answering(client: &GatewayClient, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let asked = client.request(
                "chat.history",
                serde_json::json!({"sessionKey": "e2e-timeout", "limit": 1}),
            );
            if client.link() == GatewayLink::Connected && asked.await.is_ok() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // the shared gateway may still be starting ("UNAVAILABLE"): ask until it answers
    answering(&client, "the gateway answers").await;
    // the connection stalls (a sleeping NAT): the gateway never sees the request
    link.stall_current();
    assert_eq!(
        history().await,
        Err(GatewayError::Timeout("chat.history".into())),
        "the request ends at its timeout with a sentence naming it"
    );
    // the stalled connection is dropped; the client reconnects and the next request works
    link.drop_current();
    answering(&client, "answers again after the reconnect").await;
}
