//! Writes the fuzz targets' seed corpora (`fuzz/corpus/<target>/seed-*`): real frames, control
//! frames, chat messages, codes and a real meeting start, so the fuzzer begins from valid input.
//! Run: `cargo run -p clawtray-proto --example fuzz_seeds`.

use std::path::Path;

use clawtray_proto::chat::{HistoryMessage, ToAgent, ToDesktop};
use clawtray_proto::code::{Nameplate, PairingCode};
use clawtray_proto::control::{ControlFrame, ErrorCode};
use clawtray_proto::delivery::{Delivery, Envelope};
use clawtray_proto::endpoint::{Endpoint, Event};
use clawtray_proto::sealed::Sealer;
use clawtray_proto::secret::{SecretKey, SecretString, StaticKeypair};
use clawtray_proto::Role;

fn write(target: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus folder");
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).expect("write a seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

fn main() {
    let key = SecretKey::from_bytes([7; 32]);
    let mut sealer = Sealer::new(&key);
    let sealed: Vec<Vec<u8>> = [
        &b""[..],
        b"hello",
        br#"{"ack":0,"seq":1,"body":{"type":"chat","id":"a","text":"hi"}}"#,
    ]
    .iter()
    .filter_map(|p| sealer.seal(p).ok())
    .collect();
    write("sealed_open", &sealed);

    let controls = [
        ControlFrame::Claim,
        ControlFrame::Claimed {
            nameplate: "7351".into(),
            expires_in: 600,
        },
        ControlFrame::Join {
            nameplate: "7351".into(),
        },
        ControlFrame::Linked,
        ControlFrame::Pake { msg: "AAAA".into() },
        ControlFrame::Confirmed,
        ControlFrame::Failed {
            reason: Some("mismatch".into()),
        },
        ControlFrame::Paired {
            session: "s1".into(),
            token: SecretString::new("t".into()),
        },
        ControlFrame::Resumed { peer_online: true },
        ControlFrame::PeerOnline,
        ControlFrame::PeerOffline,
        ControlFrame::error(ErrorCode::DeviceTokenMismatch),
    ];
    write(
        "control_parse",
        &controls
            .iter()
            .map(|c| c.to_json().into_bytes())
            .collect::<Vec<_>>(),
    );

    let mut chats: Vec<Vec<u8>> = Vec::new();
    let to_agent = [
        ToAgent::Chat {
            attachments: Vec::new(),
            id: "m1".into(),
            text: "hello".into(),
            session: None,
        },
        ToAgent::ChatAbort {
            session: None,
            run_id: "r1".into(),
        },
        ToAgent::ChatHistory {
            session: None,
            limit: 20,
            before: None,
        },
    ];
    let to_desktop = [
        ToDesktop::ChatAck {
            session: None,
            id: "m1".into(),
            run_id: "r1".into(),
        },
        ToDesktop::ChatDelta {
            session: None,
            run_id: "r1".into(),
            seq: 1,
            text: "he".into(),
            replace: false,
        },
        ToDesktop::ChatReply {
            session: None,
            run_id: "r1".into(),
            text: "hello".into(),
        },
        ToDesktop::ChatTyping {
            session: None,
            on: true,
        },
        ToDesktop::ChatAborted {
            session: None,
            run_id: "r1".into(),
        },
        ToDesktop::ChatError {
            session: None,
            run_id: None,
            message: "down".into(),
        },
        ToDesktop::History {
            before: None,
            older: None,
            session: None,
            messages: vec![HistoryMessage {
                files: Vec::new(),
                id: None,
                role: "user".into(),
                text: "x".into(),
                timestamp: Some(1),
            }],
        },
    ];
    chats.extend(to_agent.iter().filter_map(|m| serde_json::to_vec(m).ok()));
    chats.extend(to_desktop.iter().filter_map(|m| serde_json::to_vec(m).ok()));
    chats.extend(to_agent.iter().filter_map(|m| {
        Envelope {
            ack: 3,
            seq: Some(4),
            body: Some(m.clone()),
        }
        .to_bytes()
        .ok()
    }));
    write("chat_parse", &chats);

    let mut codes: Vec<Vec<u8>> = vec![
        b"7351-K4Q7-2MXD".to_vec(),
        b"7351 k4q7 2mxd".to_vec(),
        b"73-51K4-Q72M-XD".to_vec(),
    ];
    if let Ok(c) = Nameplate::parse("7351").and_then(PairingCode::generate) {
        codes.push(c.display_string().as_bytes().to_vec());
    }
    write("pairing_code", &codes);

    // a real meeting init from the desktop, as the handshake harness frames it (len ‖ bytes)
    let (dk, ak) = (
        StaticKeypair::from_secret(SecretKey::from_bytes([1; 32])),
        StaticKeypair::from_secret(SecretKey::from_bytes([2; 32])),
    );
    let mut desktop: Endpoint<ToAgent, ToDesktop> = Endpoint::new(
        Role::Desktop,
        dk,
        ak.public(),
        "fuzz-session".into(),
        Delivery::new(16),
    );
    let mut hs = Vec::new();
    if let Ok(events) = desktop.start_meeting() {
        for e in events {
            if let Event::Transmit(f) = e {
                if let Ok(len) = u8::try_from(f.len()) {
                    let mut framed = vec![len];
                    framed.extend(&f);
                    hs.push(framed);
                }
            }
        }
    }
    hs.push(vec![3, 0x01, 0x00, 0x00]);
    hs.push(vec![0x21; 64]);
    write("handshake", &hs);
}
