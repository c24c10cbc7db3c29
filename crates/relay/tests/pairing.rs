//! Pairing through the real relay binary: the right code pairs and sealed frames flow both ways;
//! a wrong code fails and burns the nameplate; expired and unknown nameplates are refused.

mod common;

use common::*;

use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::secret::StaticKeypair;
use clawtray_proto::ProtoError;

#[tokio::test]
async fn pairs_with_the_right_code_and_exchanges_sealed_frames_both_ways() {
    let relay = Relay::start(&[]).await;
    let mut p = pair(&relay).await;
    let (mut am, mut dm) = meet(
        &mut p.agent,
        &p.agent_key,
        &mut p.desktop,
        &p.desktop_key,
        &p.session,
    )
    .await;
    for i in 0..20 {
        exchange(
            &mut p.desktop,
            &mut dm,
            &mut p.agent,
            &mut am,
            format!("hello agent {i}").as_bytes(),
        )
        .await;
        exchange(
            &mut p.agent,
            &mut am,
            &mut p.desktop,
            &mut dm,
            format!("hello desktop {i}").as_bytes(),
        )
        .await;
    }
    // a 1 MiB message passes the relay untouched
    let big = vec![0x5a; clawtray_proto::sealed::MAX_PLAINTEXT];
    exchange(&mut p.agent, &mut am, &mut p.desktop, &mut dm, &big).await;

    let metrics = relay.http_get("/metrics").await;
    assert!(
        metrics.contains("clawtray_relay_pairings_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("clawtray_relay_sessions 1\n"), "{metrics}");
    // the relay's log never holds the tokens
    let log = relay.log();
    assert!(log.contains("pairing completed"), "{log}");
    assert!(!log.contains(&p.agent_token) && !log.contains(&p.desktop_token));
}

#[tokio::test]
async fn a_wrong_secret_fails_and_burns_the_nameplate() {
    let relay = Relay::start(&[]).await;
    let (mut agent, nameplate) = claim(&relay, "p1").await;
    let np = Nameplate::parse(&nameplate).unwrap();
    let code = PairingCode::generate(np.clone()).unwrap();
    let wrong = PairingCode::generate(np).unwrap();
    let mut desktop = End::connect(&relay.url("/v1/desktop"), None).await;
    desktop
        .send(&ControlFrame::Join {
            nameplate: nameplate.clone(),
        })
        .await;
    assert_eq!(desktop.control().await, ControlFrame::Linked);
    assert_eq!(agent.control().await, ControlFrame::Linked);
    let (a, d) = run_pake(
        agent,
        &code,
        &StaticKeypair::generate().unwrap(),
        desktop,
        &wrong,
        &StaticKeypair::generate().unwrap(),
    )
    .await;
    assert_eq!(a.peer.unwrap_err(), ProtoError::WrongCode);
    assert_eq!(d.peer.unwrap_err(), ProtoError::WrongCode);
    let (mut agent, mut desktop) = (a.end, d.end);
    desktop
        .send(&ControlFrame::Failed {
            reason: Some("wrong code".into()),
        })
        .await;
    desktop
        .expect_error_and_close(ErrorCode::PairingFailed)
        .await;
    agent.expect_error_and_close(ErrorCode::PairingFailed).await;

    // the nameplate is burned — gone from the live set, not merely taken by the first desktop
    // (which the one-desktop rule would refuse anyway)
    let metrics = relay.http_get("/metrics").await;
    assert!(
        metrics.contains("clawtray_relay_nameplates_live 0\n"),
        "{metrics}"
    );
    // and a second guess is refused
    let mut again = End::connect(&relay.url("/v1/desktop"), None).await;
    again.send(&ControlFrame::Join { nameplate }).await;
    assert!(matches!(
        again.control().await,
        ControlFrame::Error {
            code: ErrorCode::NameplateUnknown,
            ..
        }
    ));
    let metrics = relay.http_get("/metrics").await;
    assert!(
        metrics.contains("clawtray_relay_pairing_failures_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_nameplate_allows_exactly_one_desktop() {
    let relay = Relay::start(&[]).await;
    let (_agent, nameplate) = claim(&relay, "p1").await;
    let mut first = End::connect(&relay.url("/v1/desktop"), None).await;
    first
        .send(&ControlFrame::Join {
            nameplate: nameplate.clone(),
        })
        .await;
    assert_eq!(first.control().await, ControlFrame::Linked);
    let mut second = End::connect(&relay.url("/v1/desktop"), None).await;
    second.send(&ControlFrame::Join { nameplate }).await;
    assert!(matches!(
        second.control().await,
        ControlFrame::Error {
            code: ErrorCode::NameplateUnknown,
            ..
        }
    ));
}

#[tokio::test]
async fn an_expired_nameplate_is_refused() {
    let relay = Relay::start(&["--nameplate-ttl-secs", "1"]).await;
    let (mut agent, nameplate) = claim(&relay, "p1").await;
    // the agent is told its code expired
    assert!(matches!(
        agent.control().await,
        ControlFrame::Error {
            code: ErrorCode::NameplateExpired,
            ..
        }
    ));
    let mut desktop = End::connect(&relay.url("/v1/desktop"), None).await;
    desktop.send(&ControlFrame::Join { nameplate }).await;
    assert!(matches!(
        desktop.control().await,
        ControlFrame::Error {
            code: ErrorCode::NameplateExpired,
            ..
        }
    ));
    // the agent can claim a fresh one on the same connection
    agent.send(&ControlFrame::Claim).await;
    assert!(matches!(
        agent.control().await,
        ControlFrame::Claimed { .. }
    ));
}

#[tokio::test]
async fn an_unknown_nameplate_is_a_clear_error_and_the_desktop_may_retry() {
    let relay = Relay::start(&[]).await;
    let (_agent, nameplate) = claim(&relay, "p1").await;
    let mut desktop = End::connect(&relay.url("/v1/desktop"), None).await;
    let wrong = if nameplate == "1234" { "4321" } else { "1234" };
    desktop
        .send(&ControlFrame::Join {
            nameplate: wrong.into(),
        })
        .await;
    let ControlFrame::Error { code, message } = desktop.control().await else {
        panic!("expected error")
    };
    assert_eq!(code, ErrorCode::NameplateUnknown);
    assert!(message.contains("No agent is waiting"), "{message}");
    desktop.send(&ControlFrame::Join { nameplate }).await;
    assert_eq!(desktop.control().await, ControlFrame::Linked);
}

#[tokio::test]
async fn a_desktop_leaving_mid_pairing_burns_the_nameplate_and_tells_the_agent() {
    let relay = Relay::start(&[]).await;
    let (mut agent, nameplate) = claim(&relay, "p1").await;
    let mut desktop = End::connect(&relay.url("/v1/desktop"), None).await;
    desktop
        .send(&ControlFrame::Join {
            nameplate: nameplate.clone(),
        })
        .await;
    assert_eq!(desktop.control().await, ControlFrame::Linked);
    assert_eq!(agent.control().await, ControlFrame::Linked);
    drop(desktop);
    agent.expect_error_and_close(ErrorCode::PeerGone).await;
    let mut late = End::connect(&relay.url("/v1/desktop"), None).await;
    late.send(&ControlFrame::Join { nameplate }).await;
    assert!(matches!(
        late.control().await,
        ControlFrame::Error {
            code: ErrorCode::NameplateUnknown,
            ..
        }
    ));
}

#[tokio::test]
async fn pairing_guesses_from_one_address_are_rate_limited() {
    let relay = Relay::start(&["--pairing-per-ip-per-min", "5"]).await;
    let mut desktop = End::connect(&relay.url("/v1/desktop"), None).await;
    for i in 0..5 {
        desktop
            .send(&ControlFrame::Join {
                nameplate: format!("{}", 1000 + i),
            })
            .await;
        assert!(matches!(
            desktop.control().await,
            ControlFrame::Error {
                code: ErrorCode::NameplateUnknown,
                ..
            }
        ));
    }
    desktop
        .send(&ControlFrame::Join {
            nameplate: "2000".into(),
        })
        .await;
    desktop.expect_error_and_close(ErrorCode::RateLimited).await;
}
