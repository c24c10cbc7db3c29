//! Fuzz harnesses: each takes arbitrary bytes and drives one parser or state machine the network
//! feeds, checking it never panics and that what it accepts round-trips. `fuzz/` (cargo fuzz)
//! calls these; `tests/fuzz_corpus.rs` replays the committed corpora and every crash found, so
//! a regression fails the ordinary test command.

use crate::chat::{ToAgent, ToDesktop};
use crate::code::{Nameplate, PairingCode};
use crate::control::ControlFrame;
use crate::delivery::{Delivery, Envelope};
use crate::endpoint::{Endpoint, Event};
use crate::pairing::Pairing;
use crate::sealed::{Opener, Sealer};
use crate::secret::{SecretKey, StaticKeypair};
use crate::Role;

/// A harness: arbitrary bytes in, a panic on a bug.
pub type Harness = fn(&[u8]);

/// Every harness, by the name of its fuzz target and corpus folder.
pub const TARGETS: &[(&str, Harness)] = &[
    ("sealed_open", sealed_open),
    ("control_parse", control_parse),
    ("chat_parse", chat_parse),
    ("pairing_code", pairing_code),
    ("handshake", handshake),
];

fn keypair(byte: u8) -> StaticKeypair {
    StaticKeypair::from_secret(SecretKey::from_bytes([byte; 32]))
}

/// Opening arbitrary bytes as a sealed frame fails cleanly; sealing them opens to the same bytes.
pub fn sealed_open(data: &[u8]) {
    let key = SecretKey::from_bytes([7; 32]);
    let _ = Opener::new(&key).open(data);
    let mut sealer = Sealer::new(&key);
    if let Ok(frame) = sealer.seal(data) {
        let opened = Opener::new(&key).open(&frame);
        assert_eq!(
            opened.ok().as_deref(),
            Some(data),
            "seal → open round-trips"
        );
    }
}

/// A control frame that parses serialises back to the same frame.
pub fn control_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ControlFrame::from_json(text) {
        let again = ControlFrame::from_json(&frame.to_json());
        assert_eq!(again.ok(), Some(frame), "control frames round-trip");
    }
}

/// Chat messages and delivery envelopes parse or fail cleanly; accepted ones round-trip.
pub fn chat_parse(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<ToAgent>(data) {
        let back = serde_json::to_vec(&m).ok();
        let again = back.and_then(|b| serde_json::from_slice::<ToAgent>(&b).ok());
        assert_eq!(again, Some(m), "ToAgent round-trips");
    }
    if let Ok(m) = serde_json::from_slice::<ToDesktop>(data) {
        let back = serde_json::to_vec(&m).ok();
        let again = back.and_then(|b| serde_json::from_slice::<ToDesktop>(&b).ok());
        assert_eq!(again, Some(m), "ToDesktop round-trips");
    }
    let _ = Envelope::<ToAgent>::from_bytes(data);
    let _ = Envelope::<ToDesktop>::from_bytes(data);
}

/// A code that parses shows as a string that parses to the same code.
pub fn pairing_code(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Nameplate::parse(text);
    if let Ok(code) = PairingCode::parse(text) {
        let shown = code.display_string();
        let again = PairingCode::parse(&shown).ok();
        assert_eq!(
            again.as_ref().map(|c| c.nameplate().as_str().to_owned()),
            Some(code.nameplate().as_str().to_owned()),
            "a shown code parses back"
        );
        assert_eq!(
            again.map(|c| c.secret().expose().to_owned()),
            Some(code.secret().expose().to_owned())
        );
    }
}

/// Both ends' state machines fed a stream of arbitrary frames (each `len(1) ‖ bytes`): a desktop
/// in the middle of starting a meeting, an agent, and both pairing steps. Nothing panics and no
/// garbage is ever delivered.
pub fn handshake(data: &[u8]) {
    let (desktop_key, agent_key) = (keypair(1), keypair(2));
    let mut desktop: Endpoint<ToAgent, ToDesktop> = Endpoint::new(
        Role::Desktop,
        desktop_key.clone(),
        agent_key.public(),
        "fuzz-session".into(),
        Delivery::new(16),
    );
    let mut agent: Endpoint<ToDesktop, ToAgent> = Endpoint::new(
        Role::Agent,
        agent_key,
        desktop_key.public(),
        "fuzz-session".into(),
        Delivery::new(16),
    );
    let _ = desktop.start_meeting();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        for ev in desktop.on_frame(frame) {
            assert!(
                !matches!(ev, Event::Deliver { .. } | Event::Online),
                "forged input accepted by the desktop"
            );
        }
        for ev in agent.on_frame(frame) {
            assert!(
                !matches!(ev, Event::Deliver { .. } | Event::Online),
                "forged input accepted by the agent"
            );
        }
    }
    // pairing: an arbitrary SPAKE2 message, then an arbitrary confirmation
    if let (Ok(nameplate), Ok(kp)) = (Nameplate::parse("7351"), StaticKeypair::generate()) {
        if let Ok(code) = PairingCode::generate(nameplate) {
            if let Ok((p, _)) = Pairing::start(Role::Desktop, &code, kp, "fuzz") {
                let split = data.len().min(33);
                if let Ok((confirming, _)) = p.receive_pake(&data[..split]) {
                    let _ = confirming.receive_confirmation(&data[split..]);
                }
            }
        }
    }
}
