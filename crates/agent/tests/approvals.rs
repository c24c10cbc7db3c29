//! Exec approvals end to end, with the real OpenClaw gateway (exec on the gateway host, asking
//! every time), the real `clawtray-agent`, the real relay and the desktop core: the fake model
//! calls the gateway's `exec` tool; the gateway asks; the agent tells every desktop; a desktop's
//! answer decides. Allow-once runs the command for real (it reads a file only this test wrote);
//! deny refuses it; a second desktop sees the request and its resolution; an answer given while
//! the relay is down arrives once; an answer to an expired approval gets its sentence; an agent
//! restarted while an approval waits backfills it and the answer still decides.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;

use clawtray_agent::gateway::{GatewayClient, GatewayConfig, GatewayEvent};
use clawtray_client::session_store::MemorySessionStore;
use clawtray_client::RelayClient;
use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest};
use clawtray_proto::secret::SecretString;
use clawtray_testkit::agent::Pairing;
use clawtray_testkit::gateway::{Gateway, TEST_GATEWAY_TOKEN};

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| Gateway::start_asking_for_exec(clawtray_testkit::fake_model::start()))
}

/// A file holding a secret only this test knows: `cat` of it proves the command really ran.
fn token_file() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let token = format!("ran-{}", uuid::Uuid::new_v4().simple());
    let path = dir.path().join("token.txt");
    std::fs::write(&path, &token).unwrap();
    (dir, path, token)
}

/// Wait for the approval of exactly `command` (the tests tell theirs apart by trailing spaces).
async fn approval_for(seen: &mut Seen, command: &str) -> ApprovalRequest {
    seen.until("the approval request", |s| {
        s.approvals.iter().any(|a| a.command == command)
    })
    .await;
    seen.approvals
        .iter()
        .find(|a| a.command == command)
        .cloned()
        .unwrap()
}

fn resolved_as(s: &Seen, id: &str) -> Option<Option<ApprovalDecision>> {
    s.resolved
        .iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, d, _)| *d)
}

fn reply_containing<'a>(s: &'a Seen, needle: &str) -> Option<&'a String> {
    s.replies.values().flatten().find(|r| r.contains(needle))
}

/// Run `clawtray-cli` with its pairing in `dir` (the keyring of the test's Secret Service);
/// its stdout, after it succeeded.
async fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = clawtray_testkit::bins::cli_output(dir, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "clawtray-cli {args:?}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Pair a desktop (the core, its pairing in memory) with the agent whose state is in
/// `agent_state`, through the relay at `base`; returns it once it is online.
async fn pair_desktop(
    agent_state: &std::path::Path,
    base: &str,
) -> (RelayClient, Seen, tempfile::TempDir) {
    let pairing = Pairing::start(agent_bin(), agent_state, base, "e2e-agent").await;
    let data = tempfile::tempdir().unwrap();
    let client = RelayClient::start(
        client_config(data.path()),
        Arc::new(MemorySessionStore::default()),
    );
    let mut seen = Seen::new(&client);
    client.pair(&pairing.code, base).await.unwrap();
    pairing.finish().await;
    seen.until("the desktop online", online).await;
    (client, seen, data)
}

/// Pair one more desktop with the agent of `s`.
async fn second_desktop(s: &Setup) -> (RelayClient, Seen, tempfile::TempDir) {
    let base = format!("ws://{}", s.relay.addr);
    pair_desktop(&s.state.path().join("agent"), &base).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_reach_every_desktop_and_the_first_answer_decides() {
    let (_dir, file, token) = token_file();
    let mut s = setup(gateway(), "main").await;
    let (second, mut seen2, _data2) = second_desktop(&s).await;

    // ── (1) allow once: the command really runs, its output comes back in the reply ───────
    let cmd = format!("cat {}", file.display());
    let text = format!("read my file #id=ap1# #exec={cmd}#");
    s.client.send(&text).await.unwrap();
    let a = approval_for(&mut s.seen, &cmd).await;
    assert_eq!(a.command, cmd);
    assert_eq!(a.host.as_deref(), Some("gateway"));
    assert!(a.cwd.is_some(), "the working directory is shown: {a:?}");
    assert!(
        a.session_key.as_deref().is_some_and(|k| k.contains("main")),
        "{a:?}"
    );
    assert_eq!(
        a.allowed,
        vec![ApprovalDecision::AllowOnce, ApprovalDecision::Deny],
        "ask=always offers no allow-always"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        a.expires_at_ms > now_ms + 60_000,
        "expires in the future: {a:?}"
    );
    // ── (3) the second desktop sees it too ──
    let a2 = approval_for(&mut seen2, &cmd).await;
    assert_eq!(a2.id, a.id);
    // a decision the policy does not allow is refused with a sentence, and decides nothing
    s.client
        .decide(&a.id, ApprovalDecision::AllowAlways)
        .await
        .unwrap();
    s.seen
        .until("allow-always refused", |x| {
            x.refused.iter().any(|(i, _)| *i == a.id)
        })
        .await;
    assert!(
        s.seen.refused[0].1.contains("does not allow allow-always"),
        "{:?}",
        s.seen.refused
    );
    s.client
        .decide(&a.id, ApprovalDecision::AllowOnce)
        .await
        .unwrap();
    s.seen
        .until("the reply with the file's content", |x| {
            reply_containing(x, &token).is_some()
        })
        .await;
    let reply = reply_containing(&s.seen, &token).unwrap().clone();
    assert!(reply.contains("exec said:"), "{reply}");
    s.seen
        .until("the approval resolved", |x| resolved_as(x, &a.id).is_some())
        .await;
    assert_eq!(
        resolved_as(&s.seen, &a.id),
        Some(Some(ApprovalDecision::AllowOnce))
    );
    // the second desktop sees it resolved by the first; its late answer gets a sentence
    seen2
        .until("resolved on the second desktop", |x| {
            resolved_as(x, &a.id).is_some()
        })
        .await;
    assert_eq!(
        resolved_as(&seen2, &a.id),
        Some(Some(ApprovalDecision::AllowOnce))
    );
    second.decide(&a.id, ApprovalDecision::Deny).await.unwrap();
    seen2
        .until("the late answer refused", |x| {
            x.refused.iter().any(|(i, _)| *i == a.id)
        })
        .await;
    let late = &seen2.refused.iter().find(|(i, _)| *i == a.id).unwrap().1;
    assert!(late.contains("already answered (allow-once"), "{late}");

    // ── (2) deny, from a terminal: `clawtray-cli approvals` lists it, `approve ID deny` ────
    //    answers (by a unique start of its id); the reply reports the refusal, the file is
    //    never read
    let cli_dirs = tempfile::tempdir().unwrap();
    let base = format!("ws://{}", s.relay.addr);
    let pairing = Pairing::start(
        agent_bin(),
        &s.state.path().join("agent"),
        &base,
        "e2e-agent",
    )
    .await;
    let out = cli(cli_dirs.path(), &["pair", &pairing.code, "--relay", &base]).await;
    assert!(out.contains("paired with e2e-agent"), "{out}");
    pairing.finish().await;
    // `clawtray-cli chat` prints a request that arrives during its reply (answered elsewhere)
    let mut chat = clawtray_testkit::bins::cli_command(cli_dirs.path())
        .args([
            "chat",
            &format!("from the terminal #id=ap2t# #exec={cmd}    #"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run clawtray-cli chat");
    let t = approval_for(&mut s.seen, &format!("{cmd}    ")).await;
    second.decide(&t.id, ApprovalDecision::Deny).await.unwrap();
    let done = tokio::time::timeout(WAIT, async {
        let mut out = String::new();
        let mut err = String::new();
        let (mut o, mut e) = (chat.stdout.take().unwrap(), chat.stderr.take().unwrap());
        let _ = tokio::join!(
            tokio::io::AsyncReadExt::read_to_string(&mut o, &mut out),
            tokio::io::AsyncReadExt::read_to_string(&mut e, &mut err)
        );
        (chat.wait().await.unwrap(), out, err)
    })
    .await
    .expect("the terminal chat ends with the reply");
    let (status, out, err) = done;
    assert!(status.success(), "{status:?}\n{out}\n{err}");
    assert!(
        err.contains("the agent asks to run a command")
            && err.contains(&t.id)
            && err.contains(&format!("command: {cmd}")),
        "the request is printed: {err}"
    );
    assert!(err.contains(&format!("[approval {}: deny]", t.id)), "{err}");
    assert!(out.contains("ok ap2t: exec said: Exec denied"), "{out}");

    let text = format!("read it again #id=ap2# #exec={cmd} #");
    s.client.send(&text).await.unwrap();
    let needle = format!("{cmd} ");
    let b = approval_for(&mut s.seen, &needle).await;
    assert_ne!(b.id, a.id);
    let listed = cli(cli_dirs.path(), &["approvals"]).await;
    assert!(
        listed.contains(&b.id) && listed.contains(&format!("command: {needle}")),
        "{listed}"
    );
    assert!(listed.contains("allow-once|deny"), "{listed}");
    let answered = cli(cli_dirs.path(), &["approve", &b.id[..8], "deny"]).await;
    assert!(answered.contains(&format!("{}: deny", b.id)), "{answered}");
    s.seen
        .until("the reply after the denial", |x| {
            x.replies
                .values()
                .flatten()
                .any(|r| r.contains("ap2") && r.contains("denied"))
        })
        .await;
    assert_eq!(
        s.seen
            .replies
            .values()
            .flatten()
            .filter(|r| r.contains(&token))
            .count(),
        1,
        "the denied command did not run (only the first reply holds the file's content)"
    );
    s.seen
        .until("resolved as denied", |x| resolved_as(x, &b.id).is_some())
        .await;
    assert_eq!(
        resolved_as(&s.seen, &b.id),
        Some(Some(ApprovalDecision::Deny))
    );

    // ── (4) an answer given while the relay is down arrives once when it is back ───────────
    let text = format!("and once more #id=ap3# #exec={cmd}  #");
    s.client.send(&text).await.unwrap();
    let needle = format!("{cmd}  ");
    let c = approval_for(&mut s.seen, &needle).await;
    s.relay.kill().await;
    s.client
        .decide(&c.id, ApprovalDecision::AllowOnce)
        .await
        .unwrap();
    assert!(
        s.client.queued().await.is_empty(),
        "queued() lists chat messages only; the answer waits in the outbox all the same"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.relay.start_again().await;
    s.seen
        .until("the answer delivered after the relay came back", |x| {
            resolved_as(x, &c.id).is_some()
        })
        .await;
    assert_eq!(
        resolved_as(&s.seen, &c.id),
        Some(Some(ApprovalDecision::AllowOnce))
    );
    s.seen
        .until("the reply with the file's content again", |x| {
            x.replies
                .values()
                .flatten()
                .any(|r| r.contains("ap3") && r.contains(&token))
        })
        .await;
    assert!(
        !s.seen.refused.iter().any(|(i, _)| *i == c.id),
        "delivered once: no second copy was refused as a duplicate: {:?}",
        s.seen.refused
    );

    // ── (6) the agent restarted while an approval waits: backfilled, still answerable ──────
    let text = format!("after a restart #id=ap4# #exec={cmd}   #");
    s.client.send(&text).await.unwrap();
    let needle = format!("{cmd}   ");
    let d = approval_for(&mut s.seen, &needle).await;
    s.agent.kill().await;
    s.agent = start_agent(&s.state.path().join("agent"), gateway(), &s.session_key);
    s.seen.until("online again", online).await;
    // the restarted agent knows it from the gateway's list (its backfill may still be on its
    // way when the desktop first asks: ask until it is there)
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let asked = s.seen.approval_lists.len();
        s.client.list_approvals().await.unwrap();
        s.seen
            .until("the agent's list", |x| x.approval_lists.len() > asked)
            .await;
        if s.seen.approval_lists[asked].iter().any(|a| a.id == d.id) {
            break;
        }
        assert!(
            resolved_as(&s.seen, &d.id).is_none(),
            "the approval ended while the agent restarted: {:?}",
            s.seen.resolved
        );
        assert!(tokio::time::Instant::now() < deadline, "never backfilled");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    s.client
        .decide(&d.id, ApprovalDecision::AllowOnce)
        .await
        .unwrap();
    s.seen
        .until("resolved after the restart", |x| {
            resolved_as(x, &d.id).is_some()
        })
        .await;
    assert_eq!(
        resolved_as(&s.seen, &d.id),
        Some(Some(ApprovalDecision::AllowOnce))
    );
    second.shutdown().await;
}

/// An approval of another device (made by a second gateway client with a 3 s lifetime), seen by
/// an agent started with `--approve-all-devices`; the desktop's answer arrives after it expired
/// and gets its sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_an_expired_approval_gets_its_sentence() {
    let gw = gateway();
    let mut relay = clawtray_testkit::relay::Relay::start(&[]).await;
    let base = format!("ws://{}", relay.addr);
    let state = tempfile::tempdir().unwrap();
    let agent_state = state.path().join("agent");
    let _agent = clawtray_testkit::agent::AgentRun::start_with(
        agent_bin(),
        &agent_state,
        gw,
        "expiry",
        &["--approve-all-devices"],
    );
    let (client, mut seen, _data) = pair_desktop(&agent_state, &base).await;

    // the agent must be at its gateway (the approver online) before the short approval starts
    seen.until("the agent at its gateway", |x| {
        x.statuses.last() == Some(&clawtray_proto::chat::GatewayStatus::Connected)
    })
    .await;
    // another operator device asks for an approval that lives 3 s
    let id_dir = tempfile::tempdir().unwrap();
    let (other, mut events) = GatewayClient::start(GatewayConfig {
        url: gw.url(),
        token: Some(SecretString::new(TEST_GATEWAY_TOKEN.into())),
        identity_path: id_dir.path().join("id.json"),
        identity_key: None,
        request_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(15),
        approve_all_devices: false,
    })
    .unwrap();
    while !matches!(events.recv().await, Ok(GatewayEvent::Connected { .. })) {}
    let asked = tokio::spawn(async move {
        other
            .request(
                "exec.approval.request",
                serde_json::json!({"command": "echo expiring", "host": "gateway", "timeoutMs": 3000}),
            )
            .await
    });
    let a = approval_for(&mut seen, "echo expiring").await;
    // the person answers after the expiry (the relay holds the answer back meanwhile)
    relay.kill().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    client
        .decide(&a.id, ApprovalDecision::AllowOnce)
        .await
        .unwrap();
    relay.start_again().await;
    seen.until("the answer refused with its sentence", |x| {
        x.refused.iter().any(|(i, _)| *i == a.id)
    })
    .await;
    let why = &seen.refused.iter().find(|(i, _)| *i == a.id).unwrap().1;
    assert!(why.contains("expired"), "{why}");
    let _ = asked.await;
    client.shutdown().await;
}
