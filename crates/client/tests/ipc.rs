//! The local channel between the tray host and the chat window, over real Unix sockets: calls
//! answered from a real `RelayClient`, a launch's `show` handed to the host, the host's requests
//! reaching the window, a host that goes away and comes back (calls that may wait are resent with
//! the same key, calls that may not fail clearly), and a peer that sends garbage or an oversized
//! line is cut off without hurting anyone else.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use clawtray_client::agents::{Agents, StoreFor};
use clawtray_client::ipc::endpoint;
use clawtray_client::ipc::link::{HostLink, LinkEvent};
use clawtray_client::ipc::server::{self, HostRequest};
use clawtray_client::ipc::wire::{Call, FromHost, Role, Status, MAX_LINE};
use clawtray_client::session_store::{MemorySessionStore, SessionStore};
use clawtray_client::{ClientConfig, ConnectionState};

const WAIT: Duration = Duration::from_secs(10);

async fn next(rx: &mut tokio::sync::mpsc::Receiver<LinkEvent>) -> LinkEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a link event in time")
        .expect("the link is running")
}

type Book = Arc<tokio::sync::Mutex<Agents>>;
type Events = tokio::sync::broadcast::Sender<(String, clawtray_client::ClientEvent)>;

/// The host's core: its agents (one empty slot), their pairings in memory.
fn host(dir: &std::path::Path) -> (std::path::PathBuf, (Book, Events)) {
    let memory: StoreFor = Arc::new(|_: &std::path::Path| {
        Arc::new(MemorySessionStore::default()) as Arc<dyn SessionStore>
    });
    let agents = Agents::open(
        ClientConfig::new(dir.join("data"), "test".into()),
        dir.join("config"),
        memory,
    );
    let events = agents.events();
    (
        dir.join("rt/clawtray/host.sock"),
        (Arc::new(tokio::sync::Mutex::new(agents)), events),
    )
}

#[tokio::test]
async fn a_window_and_a_launch_are_served_from_the_core() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, (agents, source)) = host(tmp.path());
    let (handle, mut requests) = server::spawn(endpoint::listen(&path).unwrap(), agents, source);
    let (link, mut events) = HostLink::start(path.clone(), Role::Window);
    assert_eq!(next(&mut events).await, LinkEvent::Connected);
    let status: Status = link.call_as(Call::Status).await.unwrap();
    assert_eq!(status.state, ConnectionState::Unpaired);
    assert!(status.session.is_none() && status.queued.is_empty());
    let err = link
        .call(Call::Send {
            files: Vec::new(),
            session: None,
            text: "hi".into(),
            key: "k1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "NOT_PAIRED", "{err:?}");
    let err = link
        .call(Call::Pair {
            code: "not a code".into(),
            relay: "ws://127.0.0.1:9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "BAD_CODE", "{err:?}");
    // the host counts its windows and can ask them things
    let mut windows = handle.windows();
    tokio::time::timeout(WAIT, windows.wait_for(|n| *n == 1))
        .await
        .unwrap()
        .unwrap();
    handle.tell_windows(FromHost::Close);
    let mut seen = Vec::new();
    loop {
        match next(&mut events).await {
            LinkEvent::Host(FromHost::Close) => break,
            other => seen.push(other),
        }
    }
    // the core's events reach the window: the pairing attempt was seen starting and ending
    assert!(
        seen.iter().any(|e| matches!(
            e,
            LinkEvent::Host(FromHost::Event {
                event: clawtray_client::ClientEvent::State {
                    state: ConnectionState::Pairing
                },
                agent: Some(_),
            })
        )),
        "{seen:?}"
    );

    // a second launch hands over and goes; it gets no events and is not a window
    let (launch, _launch_events) = HostLink::start(path.clone(), Role::Launch);
    launch
        .call(Call::Show {
            link: Some("clawtray://pair?code=7-a-b".into()),
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, requests.recv()).await.unwrap();
    assert_eq!(
        got,
        Some(HostRequest::Show {
            link: Some("clawtray://pair?code=7-a-b".into())
        })
    );
    assert_eq!(*handle.windows().borrow(), 1, "a launch is not a window");

    // the window goes: the host counts it
    drop(link);
    drop(events);
    tokio::time::timeout(WAIT, windows.wait_for(|n| *n == 0))
        .await
        .expect("the window's departure is seen")
        .unwrap();
}

#[tokio::test]
async fn garbage_and_oversized_lines_cut_off_only_their_sender() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, (agents, source)) = host(tmp.path());
    let _server = server::spawn(endpoint::listen(&path).unwrap(), agents, source);
    // no hello, just noise: the connection is closed
    let mut noise = tokio::net::UnixStream::connect(&path).await.unwrap();
    noise.write_all(b"{not json\n").await.unwrap();
    let mut buf = String::new();
    let n = tokio::time::timeout(WAIT, BufReader::new(&mut noise).read_line(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer: {buf}");
    // a window that sends one line too long is cut off
    let mut big = tokio::net::UnixStream::connect(&path).await.unwrap();
    big.write_all(b"{\"role\":\"window\",\"pid\":1}\n")
        .await
        .unwrap();
    let huge = vec![b'x'; MAX_LINE + 10];
    let _ = big.write_all(&huge).await;
    let mut buf = String::new();
    let n = tokio::time::timeout(WAIT, BufReader::new(&mut big).read_line(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed: {buf}");
    // and a proper window is still served
    let (link, mut events) = HostLink::start(path.clone(), Role::Window);
    assert_eq!(next(&mut events).await, LinkEvent::Connected);
    let status: Status = link.call_as(Call::Status).await.unwrap();
    assert_eq!(status.state, ConnectionState::Unpaired);
}

/// A host stand-in that reads the hello and hands back the requests it reads.
async fn accept_one(l: &UnixListener) -> (Vec<String>, tokio::net::UnixStream) {
    let (s, _) = tokio::time::timeout(WAIT, l.accept())
        .await
        .unwrap()
        .unwrap();
    (Vec::new(), s)
}

#[tokio::test]
async fn a_lost_host_is_reported_and_safe_calls_are_resent_with_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rt/clawtray/host.sock");
    let listener = endpoint::listen(&path).unwrap();
    let (link, mut events) = HostLink::start(path.clone(), Role::Window);
    let (_, s) = accept_one(&listener).await;
    let mut s = BufReader::new(s);
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    assert!(line.contains("\"window\""), "hello first: {line}");
    assert_eq!(next(&mut events).await, LinkEvent::Connected);
    // a send and an unpair in flight when the host dies
    let l1 = link.clone();
    let send = tokio::spawn(async move {
        l1.call(Call::Send {
            files: Vec::new(),
            session: None,
            text: "kept".into(),
            key: "key-1".into(),
        })
        .await
    });
    line.clear();
    s.read_line(&mut line).await.unwrap();
    let first: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(first["call"], "send");
    let l2 = link.clone();
    let unpair = tokio::spawn(async move { l2.call(Call::Unpair).await });
    line.clear();
    s.read_line(&mut line).await.unwrap();
    assert!(line.contains("unpair"), "{line}");
    drop(s);
    drop(listener);
    assert!(matches!(next(&mut events).await, LinkEvent::Lost { .. }));
    let err = tokio::time::timeout(WAIT, unpair)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, "HOST_LOST", "an unpair is not guessed about");
    // the host comes back: the send is made again, same id and key, and answered once
    let listener = endpoint::listen(&path).unwrap();
    let (_, s) = accept_one(&listener).await;
    let mut s = BufReader::new(s);
    line.clear();
    s.read_line(&mut line).await.unwrap();
    assert!(line.contains("\"window\""));
    assert_eq!(next(&mut events).await, LinkEvent::Connected);
    line.clear();
    s.read_line(&mut line).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(again["call"], "send");
    assert_eq!(again["key"], "key-1");
    assert_eq!(again["id"], first["id"]);
    let reply = format!(
        "{{\"type\":\"reply\",\"id\":{},\"outcome\":{{\"ok\":{{\"id\":\"m1\",\"state\":\"queued\"}}}}}}\n",
        again["id"]
    );
    s.get_mut().write_all(reply.as_bytes()).await.unwrap();
    let v = tokio::time::timeout(WAIT, send)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(v["id"], "m1");
}
