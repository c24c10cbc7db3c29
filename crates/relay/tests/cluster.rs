//! A relay cluster: real `clawtray-relay` nodes sharing one real Redis (a plain `redis-server`,
//! and a 3-master Redis Cluster with replicas), with protocol ends built on `clawtray-proto`.
//! Pairing across nodes, frames across nodes (and same-node frames that never touch Redis),
//! `REPLACED` and `peer_restarted` across nodes, a node SIGKILLed, Redis restarted, a Redis
//! master killed.

mod common;

use std::time::Duration;

use common::*;

use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::Role;
use clawtray_testkit::redis::{RedisCluster, RedisServer};
use clawtray_testkit::relay::Relay as RelayProc;

/// `n` relay nodes (this package's binary) on `urls`, named node-0…
async fn nodes(urls: &[String], n: usize, extra: &[&str]) -> Vec<RelayProc> {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_clawtray-relay"));
    RelayProc::start_cluster_bin(bin, urls, n, "node", extra).await
}

/// Prints the nodes' logs when the test fails (they live in temporary directories).
struct LogsOnPanic<'a>(&'a [RelayProc]);

impl Drop for LogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, r) in self.0.iter().enumerate() {
                let log = r.log();
                let tail: Vec<&str> = log.lines().rev().take(400).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("---- node-{i}'s log ends:\n{}", tail.join("\n"));
            }
        }
    }
}

/// A counter or gauge from `/metrics` (the first line of that name, labels or not).
async fn metric(relay: &RelayProc, name: &str) -> f64 {
    let text = relay.http_get("/metrics").await;
    clawtray_testkit::relay::metric_value(&text, name)
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Wait until `/healthz` says (or stops saying) `degraded`.
async fn wait_health(relay: &RelayProc, degraded: bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let h = relay.http_get("/healthz").await;
        if h.contains("degraded") == degraded {
            return h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "healthz never became degraded={degraded}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Resume as a real end does: `UNAVAILABLE` is retried after a pause.
async fn resume_retrying(relay: &RelayProc, role: Role, session: &str, token: &str) -> End {
    let path = match role {
        Role::Agent => format!("/v1/agent?session={session}&instance=proc-1"),
        Role::Desktop => format!("/v1/desktop?session={session}"),
    };
    for _ in 0..60 {
        let mut end = End::connect(&relay.url(&path), Some(token)).await;
        match end.control().await {
            ControlFrame::Resumed { .. } => return end,
            ControlFrame::Error {
                code: ErrorCode::Unavailable,
                ..
            } => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("expected resumed, got {other:?}"),
        }
    }
    let log = relay.log();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    panic!(
        "still UNAVAILABLE after 30 s; the relay's log ends:\n{}",
        tail.join("\n")
    );
}

/// A new pairing, the agent on `agent_node` and the desktop on `desktop_node`, meets and
/// carries `text` from the agent to the desktop.
async fn pairing_across_nodes_talks(agent_node: &RelayProc, desktop_node: &RelayProc, text: &[u8]) {
    let mut p = pair_on(agent_node, desktop_node).await;
    let (mut am, mut dm) = p.meet().await;
    exchange(&mut p.agent, &mut am, &mut p.desktop, &mut dm, text).await;
}

#[tokio::test]
async fn ends_on_two_nodes_pair_and_talk_and_ends_on_one_node_never_touch_redis() {
    let redis = RedisServer::start().await;
    let n = nodes(&[redis.url()], 2, &[]).await;
    // the agent claims on node 0, the desktop joins on node 1
    let mut p = pair_on(&n[0], &n[1]).await;
    let (mut am, mut dm) = p.meet().await;
    for i in 0..20u8 {
        let text = [b"across nodes ".as_slice(), &[i]].concat();
        exchange(&mut p.desktop, &mut dm, &mut p.agent, &mut am, &text).await;
        exchange(&mut p.agent, &mut am, &mut p.desktop, &mut dm, &text).await;
    }
    let crossed = metric(&n[0], "clawtray_relay_cross_node_sent_total").await
        + metric(&n[1], "clawtray_relay_cross_node_sent_total").await;
    assert!(
        crossed >= 42.0,
        "40 frames and the meeting crossed: {crossed}"
    );
    assert!(metric(&n[1], "clawtray_relay_cross_node_received_total").await >= 21.0);

    // the desktop moves to the agent's node: from now on nothing crosses
    drop(p.desktop);
    assert_eq!(p.agent.control().await, ControlFrame::PeerOffline);
    let (mut desktop, online) =
        resume(&n[0], Role::Desktop, &p.session, &p.desktop_token, "").await;
    assert!(online);
    assert_eq!(p.agent.control().await, ControlFrame::PeerOnline);
    let (mut am, mut dm) = meet(
        &mut p.agent,
        &p.agent_key,
        &mut desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    let sent_before = metric(&n[0], "clawtray_relay_cross_node_sent_total").await;
    let forwarded_before = metric(&n[0], "clawtray_relay_frames_forwarded_total").await;
    for i in 0..50u8 {
        exchange(&mut desktop, &mut dm, &mut p.agent, &mut am, &[i; 32]).await;
    }
    assert_eq!(
        metric(&n[0], "clawtray_relay_cross_node_sent_total").await,
        sent_before,
        "same-node frames stay off Redis"
    );
    assert_eq!(
        metric(&n[0], "clawtray_relay_frames_forwarded_total").await - forwarded_before,
        50.0
    );
    // the session is in Redis, not in a file of a node: no node reports a SQLite count
    assert!(!n[0]
        .http_get("/metrics")
        .await
        .contains("clawtray_relay_sessions "));
}

#[tokio::test]
async fn one_attempt_per_nameplate_and_the_pairing_limit_hold_across_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&[redis.url()], 3, &["--pairing-per-ip-per-min", "6"]).await;
    let (_agent, nameplate) = claim(&n[0], "proc-1").await; // attempt 1
    let mut first = End::connect(&n[1].url("/v1/desktop"), None).await;
    first
        .send(&ControlFrame::Join {
            nameplate: nameplate.clone(),
        })
        .await; // attempt 2
    assert_eq!(first.control().await, ControlFrame::Linked);
    // a second desktop on a third node gets no second attempt
    let mut second = End::connect(&n[2].url("/v1/desktop"), None).await;
    second
        .send(&ControlFrame::Join {
            nameplate: nameplate.clone(),
        })
        .await; // attempt 3
    assert!(matches!(
        second.control().await,
        ControlFrame::Error {
            code: ErrorCode::NameplateUnknown,
            ..
        }
    ));
    // attempts 4–6 on any node are within the limit; the 7th, wherever it goes, is not
    for node in &n {
        let mut d = End::connect(&node.url("/v1/desktop"), None).await;
        d.send(&ControlFrame::Join {
            nameplate: "12345678".into(),
        })
        .await;
        assert!(matches!(
            d.control().await,
            ControlFrame::Error {
                code: ErrorCode::NameplateUnknown,
                ..
            }
        ));
    }
    let mut over = End::connect(&n[1].url("/v1/desktop"), None).await;
    over.send(&ControlFrame::Join {
        nameplate: "12345678".into(),
    })
    .await;
    over.expect_error_and_close(ErrorCode::RateLimited).await;
}

#[tokio::test]
async fn replaced_and_restarted_ends_are_announced_across_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&[redis.url()], 3, &[]).await;
    let mut p = pair_on(&n[0], &n[1]).await;
    // the desktop connects again through node 2: its old connection on node 1 is replaced
    let (mut desktop, online) =
        resume(&n[2], Role::Desktop, &p.session, &p.desktop_token, "").await;
    assert!(online);
    p.desktop.expect_error_and_close(ErrorCode::Replaced).await;
    assert_eq!(p.agent.control().await, ControlFrame::PeerOnline);
    let (mut am, mut dm) = meet(
        &mut p.agent,
        &p.agent_key,
        &mut desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(&mut desktop, &mut dm, &mut p.agent, &mut am, b"via node 2").await;
    // a new agent process resumes through node 1: the old one is replaced, the desktop hears
    // that the agent restarted (not merely reconnected)
    let (mut agent, online) =
        resume(&n[1], Role::Agent, &p.session, &p.agent_token, "proc-2").await;
    assert!(online);
    p.agent.expect_error_and_close(ErrorCode::Replaced).await;
    assert_eq!(desktop.control().await, ControlFrame::PeerRestarted);
    let (mut am, mut dm) = meet(
        &mut agent,
        &p.agent_key,
        &mut desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(&mut agent, &mut am, &mut desktop, &mut dm, b"new process").await;
    // revoking on one node closes the other end on another
    desktop.send(&ControlFrame::Revoke).await;
    agent
        .expect_error_and_close(ErrorCode::SessionRevoked)
        .await;
    let url = n[0].url(&format!("/v1/agent?session={}&instance=proc-2", p.session));
    let mut again = End::connect(&url, Some(&p.agent_token)).await;
    again
        .expect_error_and_close(ErrorCode::SessionRevoked)
        .await;
}

#[tokio::test]
async fn a_killed_nodes_ends_come_back_through_another() {
    let redis = RedisServer::start().await;
    let mut n = nodes(&[redis.url()], 3, &[]).await;
    let mut p = pair_on(&n[0], &n[1]).await;
    let (mut am, mut dm) = p.meet().await;
    exchange(&mut p.agent, &mut am, &mut p.desktop, &mut dm, b"before").await;
    n[0].kill().await; // the agent's node, without a goodbye
    assert!(matches!(p.agent.next().await, Incoming::Closed(_)));
    // its lease runs out: the desktop hears the agent is gone
    assert_eq!(p.desktop.control().await, ControlFrame::PeerOffline);
    let (mut agent, online) =
        resume(&n[2], Role::Agent, &p.session, &p.agent_token, "proc-1").await;
    assert!(online);
    assert_eq!(p.desktop.control().await, ControlFrame::PeerOnline);
    let (mut am, mut dm) = meet(
        &mut agent,
        &p.agent_key,
        &mut p.desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(&mut agent, &mut am, &mut p.desktop, &mut dm, b"after").await;
    exchange(&mut p.desktop, &mut dm, &mut agent, &mut am, b"and back").await;
}

#[tokio::test]
async fn redis_restarted_same_node_sessions_keep_talking_and_everything_recovers() {
    let mut redis = RedisServer::start().await;
    let n = nodes(&[redis.url()], 2, &[]).await;
    let _logs = LogsOnPanic(&n);
    let mut local = pair_on(&n[0], &n[0]).await;
    let (mut lam, mut ldm) = local.meet().await;
    let mut across = pair_on(&n[0], &n[1]).await;
    let (mut xam, mut xdm) = across.meet().await;

    redis.kill().await;
    let h = wait_health(&n[0], true).await;
    assert!(h.starts_with("HTTP/1.1 200"), "still serving: {h}");
    assert!(
        !h.contains("127.0.0.1"),
        "the public listener names no internal address: {h}"
    );
    // the metrics listener says what is wrong
    let detail = RelayProc::http_get_at(n[0].metrics_addr.expect("metrics"), "/healthz").await;
    assert!(detail.contains("Redis has not answered"), "{detail}");
    assert!(
        detail.contains("Sessions whose two ends are on this node keep working"),
        "{detail}"
    );
    assert_eq!(metric(&n[0], "clawtray_relay_redis_up").await, 0.0);
    // both ends on one node: as if nothing happened
    for i in 0..10u8 {
        exchange(
            &mut local.desktop,
            &mut ldm,
            &mut local.agent,
            &mut lam,
            &[i; 8],
        )
        .await;
        exchange(
            &mut local.agent,
            &mut lam,
            &mut local.desktop,
            &mut ldm,
            &[i; 8],
        )
        .await;
    }
    // a new pairing is refused with a retryable error that says why
    let mut agent = End::connect(&n[1].url("/v1/agent?instance=p9"), None).await;
    agent.send(&ControlFrame::Claim).await;
    agent.expect_error_and_close(ErrorCode::Unavailable).await;
    assert!(!ErrorCode::Unavailable.is_permanent());
    // an end of a session its node has seen may come back while Redis is away
    drop(local.desktop);
    assert_eq!(local.agent.control().await, ControlFrame::PeerOffline);
    let (mut desktop, online) = resume(
        &n[0],
        Role::Desktop,
        &local.session,
        &local.desktop_token,
        "",
    )
    .await;
    assert!(online);
    assert_eq!(local.agent.control().await, ControlFrame::PeerOnline);
    let (mut lam, mut ldm) = meet(
        &mut local.agent,
        &local.agent_key,
        &mut desktop,
        &local.desktop_key,
        &local.session,
    )
    .await;
    exchange(&mut desktop, &mut ldm, &mut local.agent, &mut lam, b"still").await;

    redis.start_again().await;
    wait_health(&n[0], false).await;
    wait_health(&n[1], false).await;
    // cross-node traffic flows again by itself (what was sent meanwhile, the ends resend)
    tokio::time::sleep(Duration::from_secs(2)).await;
    exchange(
        &mut across.desktop,
        &mut xdm,
        &mut across.agent,
        &mut xam,
        b"recovered",
    )
    .await;
    exchange(
        &mut across.agent,
        &mut xam,
        &mut across.desktop,
        &mut xdm,
        b"both ways",
    )
    .await;
    // and pairing across nodes works again
    pairing_across_nodes_talks(&n[1], &n[0], b"new pairing").await;
    assert!(metric(&n[0], "clawtray_relay_redis_errors_total").await > 0.0);
}

#[tokio::test]
async fn a_redis_cluster_spreads_the_keys_and_its_failover_is_followed() {
    let mut cluster = RedisCluster::start(3, 1).await;
    let n = nodes(&cluster.urls(), 2, &[]).await;
    let _logs = LogsOnPanic(&n);
    let mut p = pair_on(&n[0], &n[1]).await;
    let (mut am, mut dm) = p.meet().await;
    exchange(
        &mut p.desktop,
        &mut dm,
        &mut p.agent,
        &mut am,
        b"on the cluster",
    )
    .await;
    // the master holding this session's keys dies; its replica takes over
    // (Redis replicates after it answers: pairing waits for a replica, up to 1 s; on this busy
    // 2-core machine make sure it got there, so the test is about the failover, not the race)
    cluster
        .wait_replicated(&format!("ct:{{s:{}}}", p.session))
        .await;
    let master = cluster.master_of(&format!("ct:{{s:{}}}", p.session)).await;
    let started = std::time::Instant::now();
    cluster.kill_and_fail_over(master).await;
    eprintln!("the Redis Cluster failed over in {:?}", started.elapsed());
    wait_health(&n[0], false).await;
    wait_health(&n[1], false).await;
    // the session is still known (resume through the other node) and traffic flows
    let mut desktop = resume_retrying(&n[0], Role::Desktop, &p.session, &p.desktop_token).await;
    p.desktop.expect_error_and_close(ErrorCode::Replaced).await;
    assert_eq!(p.agent.control().await, ControlFrame::PeerOnline);
    let (mut am, mut dm) = meet(
        &mut p.agent,
        &p.agent_key,
        &mut desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    exchange(
        &mut desktop,
        &mut dm,
        &mut p.agent,
        &mut am,
        b"after failover",
    )
    .await;
    // and pairing across nodes works on the new master
    pairing_across_nodes_talks(&n[1], &n[0], b"new master").await;
}

#[tokio::test]
async fn a_bad_redis_url_a_bad_node_id_and_an_unreachable_redis_are_refused_with_a_sentence() {
    let bin = env!("CARGO_BIN_EXE_clawtray-relay");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .args(args)
            .output()
            .expect("run the relay");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--redis", "localhost:6379"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a Redis URL like redis://"), "{err}");
    let (code, err) = run(&["--redis", "redis://127.0.0.1:1", "--node-id", "a b"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--node-id 'a b' must be"), "{err}");
    let (code, err) = run(&["--redis", "redis://127.0.0.1:1", "--db", "/tmp/x.db"]);
    assert_eq!(code, Some(2), "--redis and --db are exclusive: {err}");
    // nothing listens on port 1
    let (code, err) = run(&["--redis", "redis://127.0.0.1:1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot use Redis at redis://127.0.0.1:1"),
        "names the URL: {err}"
    );
}
