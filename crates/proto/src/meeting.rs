//! Meetings: a Noise KK handshake (`Noise_KK_25519_AESGCM_SHA256`) between two pinned static keys
//! with fresh ephemerals, run every time the two ends are online together. It yields one
//! [`Meeting`]: per-direction transport keys (forward secret per meeting) and the handshake hash.
//!
//! The desktop always initiates ([`MeetingInitiator`]), the agent always responds
//! ([`respond`]). The prologue binds the session id. Each handshake message carries a small
//! payload, [`MeetingHello`]: the highest sequence number the sender has delivered from its peer,
//! so each side knows what to resend.
//!
//! A responder should treat the meeting as *pending* until the first sealed frame from the
//! initiator opens under it: a replayed message 1 (from a malicious relay) produces a reply nobody
//! can use and must not replace a live meeting.

use std::fmt;

use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

use crate::frame::{self, FrameKind};
use crate::kdf::meeting_prologue;
use crate::sealed::{Opener, Sealer};
use crate::secret::{SecretKey, StaticKeypair};
use crate::ProtoError;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_KK_25519_AESGCM_SHA256";
/// Largest handshake message we accept (Noise caps messages at 65535 bytes).
pub const MAX_HANDSHAKE_MESSAGE: usize = 1024;

/// The payload of each handshake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeetingHello {
    /// Highest sequence number the sender has delivered from its peer (0 = none).
    pub delivered: u64,
}

impl MeetingHello {
    /// 8 bytes, big-endian.
    #[must_use]
    pub fn encode(self) -> [u8; 8] {
        self.delivered.to_be_bytes()
    }

    /// Parse a payload.
    pub fn decode(b: &[u8]) -> Result<Self, ProtoError> {
        let arr: [u8; 8] = b.try_into().map_err(|_| ProtoError::HandshakeMalformed)?;
        Ok(Self {
            delivered: u64::from_be_bytes(arr),
        })
    }
}

/// The result of a handshake: keys for both directions of this meeting.
pub struct Meeting {
    /// Seals what we send.
    pub sealer: Sealer,
    /// Opens what the peer sends.
    pub opener: Opener,
    /// Noise handshake hash: unique per meeting, usable for channel binding.
    pub handshake_hash: [u8; 32],
    /// What the peer said in its handshake message.
    pub peer_hello: MeetingHello,
}

impl fmt::Debug for Meeting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meeting")
            .field("handshake_hash", &hex::encode(&self.handshake_hash[..8]))
            .field("peer_hello", &self.peer_hello)
            .finish_non_exhaustive()
    }
}

fn builder<'a>(
    me: &'a StaticKeypair,
    peer: &'a [u8; 32],
    prologue: &'a [u8],
) -> Result<Builder<'a>, ProtoError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|_| ProtoError::HandshakeFailed)?;
    Builder::new(params)
        .local_private_key(me.secret().expose())
        .and_then(|b| b.remote_public_key(peer))
        .and_then(|b| b.prologue(prologue))
        .map_err(|_| ProtoError::HandshakeFailed)
}

fn into_meeting(
    mut hs: HandshakeState,
    initiator: bool,
    peer_hello: MeetingHello,
) -> Result<Meeting, ProtoError> {
    let mut handshake_hash = [0u8; 32];
    let h = hs.get_handshake_hash();
    if h.len() != 32 {
        return Err(ProtoError::HandshakeFailed);
    }
    handshake_hash.copy_from_slice(h);
    let (k1, k2) = hs.dangerously_get_raw_split();
    let (k1, k2) = (SecretKey::from_bytes(k1), SecretKey::from_bytes(k2));
    // Noise: k1 encrypts initiator → responder, k2 responder → initiator.
    let (send, recv) = if initiator { (&k1, &k2) } else { (&k2, &k1) };
    Ok(Meeting {
        sealer: Sealer::new(send),
        opener: Opener::new(recv),
        handshake_hash,
        peer_hello,
    })
}

/// The desktop's side of a meeting, after message 1 was sent.
pub struct MeetingInitiator {
    hs: HandshakeState,
}

impl fmt::Debug for MeetingInitiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MeetingInitiator")
    }
}

impl MeetingInitiator {
    /// Start a meeting with the pinned `peer` key. Returns the state and the frame to send
    /// (kind [`FrameKind::MeetingInit`]).
    pub fn start(
        me: &StaticKeypair,
        peer: &[u8; 32],
        session_id: &str,
        hello: MeetingHello,
    ) -> Result<(Self, Vec<u8>), ProtoError> {
        let prologue = meeting_prologue(session_id);
        let mut hs = builder(me, peer, &prologue)?
            .build_initiator()
            .map_err(|_| ProtoError::HandshakeFailed)?;
        let mut buf = Zeroizing::new(vec![0u8; MAX_HANDSHAKE_MESSAGE]);
        let n = hs
            .write_message(&hello.encode(), &mut buf)
            .map_err(|_| ProtoError::HandshakeFailed)?;
        Ok((
            Self { hs },
            frame::encode(FrameKind::MeetingInit, &buf[..n]),
        ))
    }

    /// Take the agent's reply frame; on success the meeting is established.
    pub fn finish(mut self, reply_frame: &[u8]) -> Result<Meeting, ProtoError> {
        let body = frame::body_of(reply_frame, FrameKind::MeetingReply)
            .map_err(|_| ProtoError::HandshakeMalformed)?;
        if body.len() > MAX_HANDSHAKE_MESSAGE {
            return Err(ProtoError::HandshakeMalformed);
        }
        let mut payload = Zeroizing::new(vec![0u8; MAX_HANDSHAKE_MESSAGE]);
        let n = self
            .hs
            .read_message(body, &mut payload)
            .map_err(|_| ProtoError::HandshakeFailed)?;
        let hello = MeetingHello::decode(&payload[..n])?;
        if !self.hs.is_handshake_finished() {
            return Err(ProtoError::HandshakeFailed);
        }
        into_meeting(self.hs, true, hello)
    }
}

/// The agent's side: answer a meeting init frame. Returns the meeting (to be treated as pending
/// until a frame from the desktop opens under it) and the reply frame to send.
pub fn respond(
    me: &StaticKeypair,
    peer: &[u8; 32],
    session_id: &str,
    init_frame: &[u8],
    hello: MeetingHello,
) -> Result<(Meeting, Vec<u8>), ProtoError> {
    let body = frame::body_of(init_frame, FrameKind::MeetingInit)
        .map_err(|_| ProtoError::HandshakeMalformed)?;
    if body.len() > MAX_HANDSHAKE_MESSAGE {
        return Err(ProtoError::HandshakeMalformed);
    }
    let prologue = meeting_prologue(session_id);
    let mut hs = builder(me, peer, &prologue)?
        .build_responder()
        .map_err(|_| ProtoError::HandshakeFailed)?;
    let mut payload = Zeroizing::new(vec![0u8; MAX_HANDSHAKE_MESSAGE]);
    let n = hs
        .read_message(body, &mut payload)
        .map_err(|_| ProtoError::HandshakeFailed)?;
    let peer_hello = MeetingHello::decode(&payload[..n])?;
    let mut out = Zeroizing::new(vec![0u8; MAX_HANDSHAKE_MESSAGE]);
    let n = hs
        .write_message(&hello.encode(), &mut out)
        .map_err(|_| ProtoError::HandshakeFailed)?;
    let reply = frame::encode(FrameKind::MeetingReply, &out[..n]);
    Ok((into_meeting(hs, false, peer_hello)?, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ends {
        agent: StaticKeypair,
        desktop: StaticKeypair,
    }

    fn ends() -> Ends {
        Ends {
            agent: StaticKeypair::generate().unwrap(),
            desktop: StaticKeypair::generate().unwrap(),
        }
    }

    fn meet(e: &Ends, session: &str) -> (Meeting, Meeting) {
        let (init, m1) = MeetingInitiator::start(
            &e.desktop,
            &e.agent.public(),
            session,
            MeetingHello { delivered: 7 },
        )
        .unwrap();
        let (agent_side, m2) = respond(
            &e.agent,
            &e.desktop.public(),
            session,
            &m1,
            MeetingHello { delivered: 3 },
        )
        .unwrap();
        let desk_side = init.finish(&m2).unwrap();
        (desk_side, agent_side)
    }

    #[test]
    fn both_sides_get_matching_keys_and_hellos() {
        let e = ends();
        let (mut d, mut a) = meet(&e, "s1");
        assert_eq!(d.handshake_hash, a.handshake_hash);
        assert_eq!(d.peer_hello.delivered, 3);
        assert_eq!(a.peer_hello.delivered, 7);
        let f = d.sealer.seal(b"to agent").unwrap();
        assert_eq!(a.opener.open(&f).unwrap(), b"to agent");
        let f = a.sealer.seal(b"to desktop").unwrap();
        assert_eq!(d.opener.open(&f).unwrap(), b"to desktop");
    }

    #[test]
    fn cross_direction_frames_do_not_open() {
        let e = ends();
        let (mut d, _a) = meet(&e, "s1");
        let f = d.sealer.seal(b"mine").unwrap();
        // reflecting the desktop's own frame back at it must fail
        assert_eq!(d.opener.open(&f), Err(ProtoError::FrameAuthFailed));
    }

    #[test]
    fn every_meeting_has_fresh_keys() {
        let e = ends();
        let (mut d1, _a1) = meet(&e, "s1");
        let (d2, mut a2) = meet(&e, "s1");
        assert_ne!(d1.handshake_hash, d2.handshake_hash);
        let old = d1.sealer.seal(b"from an old meeting").unwrap();
        assert_eq!(a2.opener.open(&old), Err(ProtoError::FrameAuthFailed));
    }

    #[test]
    fn an_impostor_agent_with_another_static_key_fails_loudly() {
        let e = ends();
        let impostor = StaticKeypair::generate().unwrap();
        let (init, m1) =
            MeetingInitiator::start(&e.desktop, &e.agent.public(), "s1", MeetingHello::default())
                .unwrap();
        // The impostor does not hold the pinned agent key: it cannot even read message 1.
        assert_eq!(
            respond(
                &impostor,
                &e.desktop.public(),
                "s1",
                &m1,
                MeetingHello::default()
            )
            .err(),
            Some(ProtoError::HandshakeFailed)
        );
        // An impostor who answers as if the desktop's key were known still cannot produce a valid reply.
        let (other_init, _) = MeetingInitiator::start(
            &impostor,
            &e.desktop.public(),
            "s1",
            MeetingHello::default(),
        )
        .unwrap();
        drop(other_init);
        let (_, forged_reply) = respond(
            &impostor,
            &impostor.public(),
            "s1",
            &MeetingInitiator::start(&impostor, &impostor.public(), "s1", MeetingHello::default())
                .unwrap()
                .1,
            MeetingHello::default(),
        )
        .unwrap();
        assert_eq!(
            init.finish(&forged_reply).err(),
            Some(ProtoError::HandshakeFailed)
        );
    }

    #[test]
    fn a_desktop_with_an_unpinned_key_is_refused_by_the_agent() {
        let e = ends();
        let stranger = StaticKeypair::generate().unwrap();
        let (_, m1) =
            MeetingInitiator::start(&stranger, &e.agent.public(), "s1", MeetingHello::default())
                .unwrap();
        assert_eq!(
            respond(
                &e.agent,
                &e.desktop.public(),
                "s1",
                &m1,
                MeetingHello::default()
            )
            .err(),
            Some(ProtoError::HandshakeFailed)
        );
    }

    #[test]
    fn prologue_binds_the_session_id() {
        let e = ends();
        let (_, m1) = MeetingInitiator::start(
            &e.desktop,
            &e.agent.public(),
            "session-A",
            MeetingHello::default(),
        )
        .unwrap();
        assert_eq!(
            respond(
                &e.agent,
                &e.desktop.public(),
                "session-B",
                &m1,
                MeetingHello::default()
            )
            .err(),
            Some(ProtoError::HandshakeFailed)
        );
    }

    #[test]
    fn a_replayed_init_gives_a_meeting_the_real_desktop_never_uses() {
        let e = ends();
        let (init, m1) =
            MeetingInitiator::start(&e.desktop, &e.agent.public(), "s1", MeetingHello::default())
                .unwrap();
        let (_live_agent, m2) = respond(
            &e.agent,
            &e.desktop.public(),
            "s1",
            &m1,
            MeetingHello::default(),
        )
        .unwrap();
        let mut live_desktop = init.finish(&m2).unwrap();
        // The relay replays message 1: the agent answers, but the resulting keys differ (fresh ephemeral)
        let (mut replayed, m2_again) = respond(
            &e.agent,
            &e.desktop.public(),
            "s1",
            &m1,
            MeetingHello::default(),
        )
        .unwrap();
        assert_ne!(m2, m2_again);
        // frames the real desktop sends do not open under the replayed meeting
        let f = live_desktop.sealer.seal(b"hi").unwrap();
        assert_eq!(replayed.opener.open(&f), Err(ProtoError::FrameAuthFailed));
    }

    #[test]
    fn malformed_handshake_frames_are_errors() {
        let e = ends();
        assert_eq!(
            respond(
                &e.agent,
                &e.desktop.public(),
                "s",
                &[],
                MeetingHello::default()
            )
            .err(),
            Some(ProtoError::HandshakeMalformed)
        );
        assert_eq!(
            respond(
                &e.agent,
                &e.desktop.public(),
                "s",
                &[0x02, 1, 2, 3],
                MeetingHello::default()
            )
            .err(),
            Some(ProtoError::HandshakeFailed)
        );
        let (init, _) =
            MeetingInitiator::start(&e.desktop, &e.agent.public(), "s", MeetingHello::default())
                .unwrap();
        assert_eq!(
            init.finish(&[0x03; 2000]).err(),
            Some(ProtoError::HandshakeMalformed)
        );
        assert!(MeetingHello::decode(&[1, 2]).is_err());
    }
}
