//! A gateway restart mid-run: the desktop hears an error for the run (never a hang), the agent
//! reports its gateway down and up again, and the next message works. Its own gateway, because
//! restarting it would disturb other tests.

mod common;

use common::*;

use clawtray_proto::chat::GatewayStatus;
use clawtray_testkit::fake_model::reply_for;
use clawtray_testkit::gateway::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_mid_run_errors_the_run_and_the_next_message_works() {
    let mut gateway = Gateway::start(clawtray_testkit::fake_model::start());
    let mut s = setup(&gateway, "e2e-gw-restart").await;
    let id = s
        .client
        .send("interrupted #id=gr# #words=80# #delay=100#")
        .await
        .unwrap();
    s.seen
        .until("a few deltas", |x| {
            x.streamed_of(&id).is_some_and(|t| t.contains(" w3"))
        })
        .await;
    let run = s.seen.run_of(&id).unwrap().clone();
    tokio::task::block_in_place(|| gateway.stop());
    s.seen
        .until("an error for the run, not a hang", |x| {
            x.errors
                .iter()
                .any(|(r, _)| r.as_deref() == Some(run.as_str()))
        })
        .await;
    s.seen
        .until("the agent reports its gateway down", |x| {
            x.statuses.contains(&GatewayStatus::Disconnected)
        })
        .await;
    // a message sent while the gateway is down is kept and sent when it is back
    let id2 = s
        .client
        .send("after the restart #id=gr2# #words=3# #delay=50#")
        .await
        .unwrap();
    tokio::task::block_in_place(|| gateway.restart());
    s.seen
        .until("the gateway back", |x| {
            x.statuses.last() == Some(&GatewayStatus::Connected)
        })
        .await;
    s.seen
        .until("the next reply", |x| x.reply_of(&id2).is_some())
        .await;
    assert_eq!(
        s.seen.reply_of(&id2).unwrap(),
        &vec![reply_for("#id=gr2# #words=3#")]
    );
    assert!(
        s.seen.reply_of(&id).is_none(),
        "the interrupted run is reported, not silently finished"
    );
}
