//! Links that die without saying so: a TCP proxy (`clawtray_testkit::faulty_link`) between the
//! desktop and the real relay freezes the connection (bytes stop, sockets stay open) or resets it
//! in the middle of a frame. The desktop notices through its heartbeats, reconnects, and every
//! message and reply arrives exactly once.

mod common;

use std::time::Duration;

use clawtray_client::ConnectionState;
use clawtray_testkit::agent_end::{expected_reply, Script};
use clawtray_testkit::faulty_link::FaultyLink;
use clawtray_testkit::relay::Relay;
use common::*;

/// The real relay, a faulty link in front of it for the desktop, and a paired desktop and
/// scripted agent (straight to the relay), online.
async fn through_a_faulty_link(script: Script) -> (Relay, FaultyLink, PairedDesktop) {
    let relay = Relay::start(&[]).await;
    let link = FaultyLink::start(relay.addr).await;
    let paired = pair_desktop(
        &format!("ws://{}", relay.addr),
        &format!("ws://{}", link.addr),
        script,
        |cfg| {
            cfg.ping_interval = Duration::from_millis(500);
            cfg.pong_timeout = Duration::from_secs(1);
        },
    )
    .await;
    (relay, link, paired)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_link_is_noticed_and_nothing_is_lost() {
    let (_relay, link, mut s) = through_a_faulty_link(Script::default()).await;
    let first = s.client.send("before the stall").await.unwrap();
    s.seen
        .until("the first reply", |x| x.answered(&first))
        .await;

    link.stall_current();
    let mark = s.seen.states.len();
    let during = s.client.send("during the stall").await.unwrap();
    s.seen
        .until("the dead link noticed by the heartbeat", move |x| {
            x.states[mark.min(x.states.len())..].iter().any(|st| {
                matches!(st, ConnectionState::WaitingToRetry { last_error, .. } if last_error.contains("dead link"))
            })
        })
        .await;
    s.seen
        .until("the stalled message answered", |x| x.answered(&during))
        .await;
    assert_eq!(
        s.agent.disk.received(),
        vec!["before the stall", "during the stall"],
        "each message once, in order"
    );
    for (id, text) in [(&first, "before the stall"), (&during, "during the stall")] {
        assert_eq!(s.seen.replies[&s.seen.acks[id]], 1);
        assert_eq!(
            s.seen.reply_text(id).as_deref(),
            Some(expected_reply(text, 5).as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_in_the_middle_of_a_frame_loses_and_doubles_nothing() {
    let script = Script {
        words: 40,
        delta_delay: Duration::from_millis(20),
    };
    let (_relay, link, mut s) = through_a_faulty_link(script).await;
    let id = s.client.send("a long reply, cut").await.unwrap();
    // the reply's next frame towards the desktop arrives half, then the link resets
    let mark = s.seen.states.len();
    link.reset_current_mid_frame();
    s.seen
        .until("the reply after the reset", |x| x.answered(&id))
        .await;
    assert!(
        s.seen.states[mark..].iter().any(|st| matches!(
            st,
            ConnectionState::WaitingToRetry { .. } | ConnectionState::Connecting
        )),
        "the reset was noticed: {:?}",
        &s.seen.states[mark..]
    );
    assert_eq!(s.agent.disk.received(), vec!["a long reply, cut"]);
    assert_eq!(s.seen.replies[&s.seen.acks[&id]], 1, "one reply");
    assert_eq!(
        s.seen.reply_text(&id).as_deref(),
        Some(expected_reply("a long reply, cut", 40).as_str()),
        "intact"
    );
}
