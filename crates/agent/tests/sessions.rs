//! Several conversations through the real OpenClaw gateway: two sessions streaming at once to
//! one desktop (each reply marked with its own session, neither waiting for the other), the
//! session list, and a 600-message history paged back to its first message with no duplicate
//! and no gap.

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use clawtray_proto::secret::SecretString;
use clawtray_testkit::fake_model::reply_for;
use clawtray_testkit::gateway::{Gateway, TEST_GATEWAY_TOKEN};

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| Gateway::start(clawtray_testkit::fake_model::start()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_stream_at_once_each_reply_in_its_own_session() {
    let mut s = setup(gateway(), "sessions-home").await;
    // slow replies, so that one run at a time per agent (the old rule) could not overlap them
    let home = "at home #id=h1# #words=12# #delay=120#";
    let work = "at work #id=w1# #words=12# #delay=120#";
    let h = s.client.send_to(None, home, None).await.unwrap().id;
    let w = s
        .client
        .send_to(Some("sessions-work"), work, None)
        .await
        .unwrap()
        .id;
    s.seen
        .until("both replies", |x| {
            x.reply_of(&h).is_some() && x.reply_of(&w).is_some()
        })
        .await;
    assert_eq!(s.seen.reply_of(&h).unwrap(), &vec![reply_for(home)]);
    assert_eq!(s.seen.reply_of(&w).unwrap(), &vec![reply_for(work)]);
    assert_eq!(s.seen.streamed_of(&h), Some(reply_for(home).as_str()));
    assert_eq!(s.seen.streamed_of(&w), Some(reply_for(work).as_str()));
    let (rh, rw) = (
        s.seen.run_of(&h).unwrap().clone(),
        s.seen.run_of(&w).unwrap().clone(),
    );
    // every message of a run is marked with its session (none: the default one)
    assert!(
        s.seen.run_sessions[&rh].iter().all(Option::is_none),
        "{:?}",
        s.seen.run_sessions[&rh]
    );
    assert!(
        s.seen.run_sessions[&rw]
            .iter()
            .all(|x| x.as_deref() == Some("sessions-work")),
        "{:?}",
        s.seen.run_sessions[&rw]
    );
    // both ran at once: each started before the other ended
    let at = |e: String| {
        s.seen
            .logged(&e)
            .unwrap_or_else(|| panic!("{e} in {:?}", s.seen.log))
    };
    assert!(
        at(format!("ack:{rw}")) < at(format!("end:{rh}")),
        "{:?}",
        s.seen.log
    );
    assert!(
        at(format!("ack:{rh}")) < at(format!("end:{rw}")),
        "{:?}",
        s.seen.log
    );

    // the session list names both, the agent's default one marked
    s.client.list_sessions().await.unwrap();
    s.seen
        .until("a session list with both", |x| {
            x.session_lists.last().is_some_and(|l| {
                l.iter().any(|s| s.key == "sessions-work")
                    && l.iter().any(|s| s.key == "sessions-home")
            })
        })
        .await;
    let list = s.seen.session_lists.last().unwrap();
    let home_row = list.iter().find(|x| x.key == "sessions-home").unwrap();
    let work_row = list.iter().find(|x| x.key == "sessions-work").unwrap();
    assert!(home_row.default && !work_row.default, "{list:?}");
    assert!(work_row.updated_at_ms.is_some(), "{list:?}");

    // each session's history is its own
    s.client
        .load_history_page(Some("sessions-work"), 20, None)
        .await
        .unwrap();
    s.seen
        .until("the work history", |x| {
            x.pages
                .iter()
                .any(|p| p.session.as_deref() == Some("sessions-work"))
        })
        .await;
    let page = s
        .seen
        .pages
        .iter()
        .find(|p| p.session.as_deref() == Some("sessions-work"))
        .unwrap();
    assert!(page.messages.iter().any(|m| m.text.contains("at work")));
    assert!(!page.messages.iter().any(|m| m.text.contains("at home")));
    assert!(page.before.is_none() && page.older.is_none(), "{page:?}");
}

/// An operator connection that may `chat.inject` (admin): fills a transcript fast.
async fn admin() -> (GatewayClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (gw, mut events) = GatewayClient::start(GatewayConfig {
        url: gateway().url(),
        token: Some(SecretString::new(TEST_GATEWAY_TOKEN.into())),
        identity_path: dir.path().join("id.json"),
        identity_key: None,
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(15),
        approve_all_devices: true,
    })
    .unwrap();
    while !matches!(events.recv().await, Ok(GatewayEvent::Connected { .. })) {}
    (gw, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_600_message_history_pages_back_to_its_first_message() {
    const SESSION: &str = "sessions-long";
    const NOTES: usize = 598;
    let mut s = setup(gateway(), "sessions-pages-home").await;
    // the session's first two messages: the person's and the reply
    let first = "the very first #id=p0#";
    let id = s
        .client
        .send_to(Some(SESSION), first, None)
        .await
        .unwrap()
        .id;
    s.seen
        .until("the reply", |x| x.reply_of(&id).is_some())
        .await;
    let (admin, _dir) = admin().await;
    for i in 0..NOTES {
        admin
            .request(
                "chat.inject",
                serde_json::json!({"sessionKey": SESSION, "message": format!("note {i}")}),
            )
            .await
            .unwrap();
    }

    let mut before: Option<String> = None;
    let mut shown: Vec<clawtray_proto::chat::HistoryMessage> = Vec::new();
    for asked in 1.. {
        assert!(asked < 40, "paging does not end");
        s.client
            .load_history_page(Some(SESSION), 50, before.as_deref())
            .await
            .unwrap();
        s.seen
            .until("a page", |x| {
                x.pages
                    .last()
                    .is_some_and(|p| p.session.as_deref() == Some(SESSION) && p.before == before)
            })
            .await;
        let page = s.seen.pages.last().unwrap().clone();
        assert!(page.messages.len() <= 50);
        // an older page goes above what is shown
        shown.splice(0..0, page.messages);
        match page.older {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(shown.len(), NOTES + 2, "every message once");
    let ids: HashSet<_> = shown.iter().filter_map(|m| m.id.clone()).collect();
    assert_eq!(
        ids.len(),
        shown.len(),
        "every message has an id, none twice"
    );
    assert_eq!(shown[0].role, "user");
    assert!(
        shown[0].text.starts_with("the very first"),
        "{:?}",
        shown[0]
    );
    assert_eq!(shown[1].text, reply_for(first));
    let notes: Vec<&str> = shown[2..].iter().map(|m| m.text.as_str()).collect();
    let expected: Vec<String> = (0..NOTES).map(|i| format!("note {i}")).collect();
    assert_eq!(notes, expected, "in order, no gap");
}
