//! The desktop core end to end: the real `RelayClient`, the real relay binary, and a scripted
//! agent end (clawtray-testkit) speaking the real protocol. Sessions are kept in memory here; the
//! keyring store is tested against a real Secret Service in `keyring.rs`.

use std::sync::Arc;
use std::time::Duration;

use clawtray_client::session_store::{MemorySessionStore, SessionStore};
use clawtray_client::state::PeerPresence;
use clawtray_client::{ClientConfig, ClientError, ConnectionState, MessageState, RelayClient};
use clawtray_proto::chat::ToDesktop;
use clawtray_testkit::agent_end::{expected_reply, Script, TestAgent};
use clawtray_testkit::relay::Relay;

mod common;
use common::*;

struct Setup {
    relay: Relay,
    client: RelayClient,
    agent: TestAgent,
    store: Arc<MemorySessionStore>,
    seen: Seen,
    _dir: tempfile::TempDir,
}

async fn paired(script: Script) -> Setup {
    paired_with(script, |_| {}).await
}

async fn paired_with(script: Script, tweak: impl FnOnce(&mut ClientConfig)) -> Setup {
    let relay = Relay::start(&[]).await;
    let base = base(&relay);
    let PairedDesktop {
        client,
        agent,
        store,
        seen,
        dir,
    } = pair_desktop(&base, &base, script, tweak).await;
    Setup {
        relay,
        client,
        agent,
        store,
        seen,
        _dir: dir,
    }
}

fn base(relay: &Relay) -> String {
    format!("ws://{}", relay.addr)
}

#[tokio::test]
async fn pairs_then_streams_a_reply_and_aborts_a_second_one() {
    let mut s = paired(Script {
        words: 30,
        delta_delay: Duration::from_millis(20),
    })
    .await;
    let id = s.client.send("hello").await.unwrap();
    s.seen.conv.sent(&id, "hello", MessageState::Queued);
    s.seen.until("the reply", |x| x.answered(&id)).await;
    assert_eq!(
        s.seen.reply_text(&id).as_deref(),
        Some(expected_reply("hello", 30).as_str())
    );
    let states = &s.seen.message_states[&id];
    assert!(
        states.contains(&MessageState::Sent) && states.contains(&MessageState::Delivered),
        "{states:?}"
    );
    assert_eq!(s.seen.conv.entries()[0].state, Some(MessageState::Answered));
    s.seen.until("typing off", |x| !x.conv.typing()).await;

    let id2 = s.client.send("please stop").await.unwrap();
    s.seen
        .until("the second run to start streaming", |x| {
            x.reply_text(&id2).is_some_and(|t| t.contains(" w2"))
        })
        .await;
    let run = s.seen.acks[&id2].clone();
    s.client.abort(&run).await.unwrap();
    s.seen
        .until("the abort", |x| x.aborted.contains(&run))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(ev) = s.seen.rx.try_recv() {
        s.seen.apply(ev);
    }
    assert!(
        !s.seen.replies.contains_key(&run),
        "an aborted run must not finish"
    );
    assert_eq!(s.agent.disk.received(), vec!["hello", "please stop"]);
}

#[tokio::test]
async fn a_relay_restart_mid_stream_loses_and_doubles_nothing() {
    let mut s = paired(Script {
        words: 40,
        delta_delay: Duration::from_millis(25),
    })
    .await;
    let id = s.client.send("long one").await.unwrap();
    s.seen
        .until("a few deltas", |x| {
            x.reply_text(&id).is_some_and(|t| t.contains(" w3"))
        })
        .await;
    s.relay.kill().await;
    s.seen
        .until("the client notices", |x| {
            matches!(
                x.states.last(),
                Some(ConnectionState::WaitingToRetry { .. })
            )
        })
        .await;
    // sent while the relay is down: queued, then delivered after
    let queued = s.client.send("sent during the outage").await.unwrap();
    assert!(s
        .seen
        .message_states
        .get(&queued)
        .is_none_or(|v| !v.contains(&MessageState::Sent)));
    s.relay.start_again().await;
    s.client.reconnect_now().await;
    s.seen
        .until("both replies", |x| x.answered(&id) && x.answered(&queued))
        .await;
    assert_eq!(
        s.seen.reply_text(&id).as_deref(),
        Some(expected_reply("long one", 40).as_str())
    );
    assert_eq!(
        s.seen.reply_text(&queued).as_deref(),
        Some(expected_reply("sent during the outage", 40).as_str())
    );
    assert!(
        s.seen.replies.values().all(|n| *n == 1),
        "{:?}",
        s.seen.replies
    );
    assert_eq!(
        s.agent.disk.received(),
        vec!["long one", "sent during the outage"]
    );
}

#[tokio::test]
async fn an_agent_restart_re_keys_and_the_conversation_continues() {
    let mut s = paired(Script {
        words: 30,
        delta_delay: Duration::from_millis(25),
    })
    .await;
    let id = s.client.send("before restart").await.unwrap();
    s.seen
        .until("a few deltas", |x| {
            x.reply_text(&id).is_some_and(|t| t.contains(" w2"))
        })
        .await;
    let disk = s.agent.kill();
    s.seen
        .until("the agent is away", |x| {
            matches!(
                x.states.last(),
                Some(ConnectionState::Online {
                    peer: PeerPresence::Away
                })
            )
        })
        .await;
    let agent = TestAgent::start(
        &base(&s.relay),
        disk,
        "second-process",
        Script {
            words: 30,
            delta_delay: Duration::from_millis(25),
        },
    );
    s.seen.until("a new meeting", online).await;
    s.seen
        .until("the interrupted reply", |x| x.answered(&id))
        .await;
    assert_eq!(
        s.seen.reply_text(&id).as_deref(),
        Some(expected_reply("before restart", 30).as_str())
    );
    let id2 = s.client.send("after restart").await.unwrap();
    s.seen.until("the next reply", |x| x.answered(&id2)).await;
    assert!(
        s.seen.replies.values().all(|n| *n == 1),
        "{:?}",
        s.seen.replies
    );
    assert_eq!(
        agent.disk.received(),
        vec!["before restart", "after restart"]
    );
    assert!(
        s.seen
            .states
            .iter()
            .filter(|st| **st == ConnectionState::Handshaking)
            .count()
            >= 2,
        "re-keyed"
    );
}

#[tokio::test]
async fn messages_sent_while_the_agent_is_away_arrive_in_order() {
    let mut s = paired(Script {
        words: 2,
        delta_delay: Duration::from_millis(5),
    })
    .await;
    let disk = s.agent.kill();
    s.seen
        .until("the agent is away", |x| {
            matches!(
                x.states.last(),
                Some(ConnectionState::Online {
                    peer: PeerPresence::Away
                })
            )
        })
        .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        // the caller's id: asking twice (a window whose host died mid-call asks again) queues once
        let id = format!("window-key-{i}");
        let text = format!("queued {i}");
        let first = s.client.send_message_as(&text, &id).await.unwrap();
        let again = s.client.send_message_as(&text, &id).await.unwrap();
        assert_eq!(
            (first.id.as_str(), again.id.as_str()),
            (id.as_str(), id.as_str())
        );
        assert_eq!(again.state, MessageState::Queued);
        s.seen
            .until("queued state", |x| {
                x.message_states
                    .get(&id)
                    .is_some_and(|v| v.contains(&MessageState::Queued))
            })
            .await;
        ids.push(id);
    }
    assert_eq!(s.client.queued().await.len(), 5);
    for bad in ["", "has space", &"x".repeat(65)] {
        assert!(
            matches!(
                s.client.send_message_as("never queued", bad).await,
                Err(ClientError::BadMessageId(_))
            ),
            "{bad:?} is refused"
        );
    }
    assert_eq!(s.client.queued().await.len(), 5);
    let agent = TestAgent::start(
        &base(&s.relay),
        disk,
        "back",
        Script {
            words: 2,
            delta_delay: Duration::from_millis(5),
        },
    );
    s.seen
        .until("all answered", |x| ids.iter().all(|id| x.answered(id)))
        .await;
    assert_eq!(
        agent.disk.received(),
        (0..5).map(|i| format!("queued {i}")).collect::<Vec<_>>()
    );
    assert!(s.client.queued().await.is_empty());
}

/// The agent goes, its session revoked at the relay behind the desktop's back: the desktop is
/// told the relay refuses the pairing.
async fn revoked_at_the_relay(agent: TestAgent, relay: &Relay, seen: &mut Seen) {
    let disk = agent.kill();
    TestAgent::revoke(&base(relay), &disk).await;
    seen.until("refused", |x| {
        matches!(x.states.last(), Some(ConnectionState::Refused { .. }))
    })
    .await;
}

#[tokio::test]
async fn a_relay_that_says_revoked_cannot_make_the_desktop_forget() {
    // before: any "permanent" relay code made the desktop delete its pairing and its outbox
    let mut s = paired_with(Script::default(), |c| {
        c.refused_retry = Duration::from_millis(500)
    })
    .await;
    assert!(s.store.load().unwrap().is_some());
    revoked_at_the_relay(s.agent, &s.relay, &mut s.seen).await;
    let Some(ConnectionState::Refused { reason, .. }) = s.seen.states.last() else {
        unreachable!()
    };
    assert!(reason.contains("SESSION_REVOKED"), "{reason}");
    // messages still queue, and everything is kept across the slow retries
    let id = s.client.send("written while refused").await.unwrap();
    s.seen
        .until("a second refusal after a retry", |x| {
            x.states
                .iter()
                .filter(|st| matches!(st, ConnectionState::Refused { .. }))
                .count()
                >= 2
        })
        .await;
    assert!(s.store.load().unwrap().is_some(), "the pairing is kept");
    assert!(s.client.session().await.is_some());
    assert_eq!(
        s.client.queued().await,
        vec![(id, "written while refused".to_owned())]
    );
    // the person decides: unpair removes it all
    s.client.unpair().await.unwrap();
    assert!(s.store.load().unwrap().is_none());
    assert_eq!(
        s.client.send("x").await,
        Err(clawtray_client::ClientError::NotPaired)
    );
}

#[tokio::test]
async fn pairing_again_replaces_a_refused_pairing() {
    let mut s = paired_with(Script::default(), |c| {
        c.refused_retry = Duration::from_secs(30)
    })
    .await;
    let old = s.client.session().await.unwrap();
    revoked_at_the_relay(s.agent, &s.relay, &mut s.seen).await;
    let (code, agent) = TestAgent::pair(&base(&s.relay), Script::default()).await;
    let info = s.client.pair(&code, &base(&s.relay)).await.unwrap();
    let _agent = agent.await.unwrap();
    assert_ne!(info.session_id, old.session_id);
    s.seen.until("online with the new agent", online).await;
    assert_eq!(
        s.store.load().unwrap().unwrap().info.session_id,
        info.session_id
    );
}

#[tokio::test]
async fn a_meeting_is_renewed_when_its_keys_age_out_and_nothing_is_lost() {
    // before: a meeting lived as long as its connection, however long that was
    let mut s = paired_with(Script::default(), |c| {
        c.rekey_after = Duration::from_millis(700)
    })
    .await;
    let meetings = |x: &Seen| {
        x.states
            .iter()
            .filter(|st| **st == ConnectionState::Handshaking)
            .count()
    };
    let before = meetings(&s.seen);
    s.seen
        .until("two renewals", |x| meetings(x) >= before + 2)
        .await;
    assert!(
        !s.seen.states.contains(&ConnectionState::Connecting),
        "renewed on the same connection: {:?}",
        s.seen.states
    );
    s.seen.until("online", online).await;
    let id = s.client.send("after a renewal").await.unwrap();
    s.seen.until("answered", |x| x.answered(&id)).await;
    assert_eq!(s.agent.disk.received(), vec!["after a renewal".to_owned()]);
}

#[tokio::test]
async fn the_agents_sealed_unpair_ends_the_pairing() {
    let mut s = paired(Script::default()).await;
    s.agent.send(ToDesktop::Unpair);
    s.seen
        .until("unpaired", |x| {
            x.states.last() == Some(&ConnectionState::Unpaired)
        })
        .await;
    assert!(s.store.load().unwrap().is_none());
    assert!(
        s.seen
            .notices
            .iter()
            .any(|n| n.contains("The agent ended this pairing")),
        "{:?}",
        s.seen.notices
    );
}

#[tokio::test]
async fn the_desktops_unpair_is_sent_sealed_to_the_agent() {
    let s = paired(Script::default()).await;
    s.client.unpair().await.unwrap();
    assert!(
        s.agent.disk.0.lock().unwrap().unpaired_by_desktop,
        "the agent got the sealed unpair before the relay was told"
    );
    assert!(s.store.load().unwrap().is_none());
}

#[tokio::test]
async fn a_relay_down_at_start_up_waits_to_retry_without_a_loop() {
    // a pairing whose relay is not running
    let relay = Relay::start(&[]).await;
    let (code, agent) = TestAgent::pair(&base(&relay), Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemorySessionStore::default());
    let client = RelayClient::start(config(&dir), store.clone());
    client.pair(&code, &base(&relay)).await.unwrap();
    let _agent = agent.await.unwrap();
    client.shutdown().await;
    let mut relay = relay;
    relay.kill().await;

    let client = RelayClient::start(config(&dir), store);
    let mut seen = Seen::new(&client);
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    while let Ok(ev) = seen.rx.try_recv() {
        seen.apply(ev);
    }
    let attempts = seen
        .states
        .iter()
        .filter(|s| **s == ConnectionState::Connecting)
        .count();
    assert!(
        (1..=4).contains(&attempts),
        "backoff 1 s, 2 s, …: {attempts} attempts in {:?}: {:?}",
        started.elapsed(),
        seen.states
    );
    let Some(ConnectionState::WaitingToRetry { last_error, .. }) = seen.states.last() else {
        panic!("{:?}", seen.states)
    };
    assert!(last_error.contains("unreachable"), "{last_error}");
    // reconnect-now skips the wait
    client.reconnect_now().await;
    seen.until("an immediate attempt", |x| {
        x.states
            .iter()
            .filter(|s| **s == ConnectionState::Connecting)
            .count()
            > attempts
    })
    .await;
}

#[tokio::test]
async fn pairing_errors_are_sentences() {
    let relay = Relay::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let client = RelayClient::start(config(&dir), Arc::new(MemorySessionStore::default()));
    let e = client.pair("7351-K4Q7", &base(&relay)).await.unwrap_err();
    assert!(e.to_string().contains("exactly 8"), "{e}");
    let e = client
        .pair("7351-K4Q7-2MXD", &base(&relay))
        .await
        .unwrap_err();
    assert_eq!(e, clawtray_client::PairError::UnknownCode);
    let e = client
        .pair("7351-K4Q7-2MXD", "ws://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(
        matches!(e, clawtray_client::PairError::RelayUnreachable { .. }),
        "{e}"
    );
    let e = client
        .pair("7351-K4Q7-2MXD", "ws://relay.example.com")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("in clear"), "{e}");
    // a wrong secret for a live nameplate
    let (code, _agent) = TestAgent::pair(&base(&relay), Script::default()).await;
    let mut wrong = code.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let e = client.pair(&wrong, &base(&relay)).await.unwrap_err();
    assert_eq!(e, clawtray_client::PairError::WrongCode);
    assert_eq!(*client.state().borrow(), ConnectionState::Unpaired);
}

#[tokio::test]
async fn failed_meetings_never_make_the_desktop_forget() {
    // before: 15 failed meetings (forged or dropped replies count the same) deleted the pairing
    let mut s = paired_with(Script::default(), |c| {
        c.handshake_timeout = Duration::from_millis(300)
    })
    .await;
    // the agent comes back without its key (reinstalled): it cannot answer our meetings
    let disk = s.agent.kill();
    disk.0.lock().unwrap().key = clawtray_proto::secret::StaticKeypair::generate().unwrap();
    let _agent = TestAgent::start(&base(&s.relay), disk, "reinstalled", Script::default());
    s.seen
        .until("the person told after three breaker trips", |x| {
            matches!(x.states.last(), Some(ConnectionState::WaitingToRetry { last_error, .. }) if last_error.contains("has not recognised"))
        })
        .await;
    let trips = s
        .seen
        .notices
        .iter()
        .filter(|n| n.contains("handshakes with the agent failed"))
        .count();
    assert_eq!(trips, 3, "{:?}", s.seen.notices);
    // never a hot loop: a backoff wait after each trip
    let waits = s
        .seen
        .states
        .iter()
        .filter(|st| matches!(st, ConnectionState::WaitingToRetry { .. }))
        .count();
    assert_eq!(waits, 3, "{:?}", s.seen.states);
    assert!(s.store.load().unwrap().is_some(), "the pairing is kept");
    assert!(
        !s.seen
            .states
            .iter()
            .any(|st| matches!(st, ConnectionState::NeedsRepairing { .. })),
        "{:?}",
        s.seen.states
    );
}
