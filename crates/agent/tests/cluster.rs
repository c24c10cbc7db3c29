//! A relay cluster carrying a real conversation: three real relay nodes sharing one real Redis,
//! HAProxy (the shipped example configuration) in front of two of them for the agent, the
//! desktop core talking to the third directly, the real agent and the real OpenClaw gateway.
//! The node holding the agent is SIGKILLed mid-reply: the agent comes back through the other
//! node behind HAProxy and the reply completes, nothing lost or doubled. Then Redis itself is
//! SIGKILLed and started again mid-reply (the two ends on different nodes: every frame between
//! them crosses through Redis): the reply completes all the same.

mod common;

use std::sync::Arc;

use common::*;

use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::RelayClient;
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::fake_model::{reply_for, start as fake_model};
use clawtray_testkit::gateway::Gateway;
use clawtray_testkit::haproxy::Haproxy;
use clawtray_testkit::redis::RedisServer;
use clawtray_testkit::relay::Relay;

/// `clawtray_relay_sessions_online` of a node (sessions with an end connected to it).
async fn sessions_online(relay: &Relay) -> u64 {
    let text = relay.http_get("/metrics").await;
    let n = clawtray_testkit::relay::metric_value(&text, "clawtray_relay_sessions_online")
        .unwrap_or_else(|| panic!("no sessions_online in\n{text}"));
    // a count, printed as an integer
    n as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_completes_when_the_node_holding_the_agent_dies() {
    let gateway = Gateway::start(fake_model());
    let mut redis = RedisServer::start().await;
    let mut nodes =
        Relay::start_cluster(&[redis.url()], 3, "node", &["--trusted-proxy", "127.0.0.1"]).await;
    let lb = Haproxy::start(&[nodes[0].addr, nodes[2].addr]).await;

    let state = tempfile::tempdir().unwrap();
    let agent_state = state.path().join("agent");
    let _agent = start_agent(&agent_state, &gateway, "cluster-e2e");
    // the agent pairs (and later resumes) through HAProxy; the desktop talks to node 1
    let pairing = Pairing::start(agent_bin(), &agent_state, &lb.base_url(), "cluster-agent").await;
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(MemorySessionStore::default());
    let client = RelayClient::start(client_config(data.path()), store.clone());
    let mut seen = Seen::new(&client);
    client
        .pair(&pairing.code, &format!("ws://{}", nodes[1].addr))
        .await
        .expect("pairing across nodes succeeds");
    let rest = pairing.finish().await;
    assert!(rest.contains("Paired with"), "{rest}");
    seen.until("the desktop online with the agent", online)
        .await;

    // a conversation across nodes
    let first = "across nodes #id=c1# #words=5# #delay=30#";
    let id = client.send(first).await.unwrap();
    seen.until("the first reply", |x| x.reply_of(&id).is_some())
        .await;
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![reply_for(first)]);
    assert_eq!(sessions_online(&nodes[1]).await, 1, "the desktop's node");
    let holder = if sessions_online(&nodes[0]).await == 1 {
        0
    } else {
        2
    };
    let other = 2 - holder;
    assert_eq!(sessions_online(&nodes[holder]).await, 1, "the agent's node");

    // a long reply; the node holding the agent dies in the middle of it
    let text = "survive a node #id=c2# #words=40# #delay=100#";
    let id = client.send(text).await.unwrap();
    seen.until("a few deltas", |x| {
        x.streamed_of(&id).is_some_and(|t| t.contains(" w3"))
    })
    .await;
    nodes[holder].kill().await;
    seen.until("the final reply after the node died", |x| {
        x.reply_of(&id).is_some()
    })
    .await;
    let expected = reply_for(text);
    assert_eq!(
        seen.reply_of(&id).unwrap(),
        &vec![expected.clone()],
        "exactly one final reply"
    );
    assert_eq!(
        seen.streamed_of(&id),
        Some(expected.as_str()),
        "the deltas add up to the reply, nothing lost or doubled"
    );
    assert_eq!(
        sessions_online(&nodes[other]).await,
        1,
        "the agent came back through the other node behind HAProxy"
    );
    // and the conversation goes on
    let next = "after the node #id=c3# #words=3# #delay=30#";
    let id = client.send(next).await.unwrap();
    seen.until("the next reply", |x| x.reply_of(&id).is_some())
        .await;
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![reply_for(next)]);

    // Redis dies mid-reply and comes back (its append-only file keeps the session)
    let text = "survive redis #id=c4# #words=40# #delay=100#";
    let id = client.send(text).await.unwrap();
    seen.until("a few deltas", |x| {
        x.streamed_of(&id).is_some_and(|t| t.contains(" w3"))
    })
    .await;
    redis.kill().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    redis.start_again().await;
    seen.until("the final reply after Redis came back", |x| {
        x.reply_of(&id).is_some()
    })
    .await;
    let expected = reply_for(text);
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![expected.clone()]);
    assert_eq!(seen.streamed_of(&id), Some(expected.as_str()));
    let last = "after redis #id=c5# #words=3# #delay=30#";
    let id = client.send(last).await.unwrap();
    seen.until("a reply after Redis came back", |x| {
        x.reply_of(&id).is_some()
    })
    .await;
    assert_eq!(seen.reply_of(&id).unwrap(), &vec![reply_for(last)]);
}
