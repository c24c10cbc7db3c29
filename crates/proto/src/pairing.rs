//! First pairing: SPAKE2 on the pairing code's secret, key confirmation, and the exchange of
//! long-term static X25519 public keys that each side then pins.
//!
//! Type-state: [`Pairing::start`] → (send our SPAKE2 message) → [`Pairing::receive_pake`] →
//! (send our confirmation) → [`PairingConfirming::receive_confirmation`] → [`PairedPeer`].
//! Each step consumes the previous one, so steps cannot run out of order or twice.
//!
//! The confirmation a side sends is `MAC(32) ‖ AES-256-GCM(seal key, nonce 0, aad = transcript,
//! static public key(32) ‖ display name)`. Each seal key encrypts exactly one message. A wrong code
//! gives both sides different `K_pake`, so the MAC check fails: that is reported as
//! [`ProtoError::WrongCode`], never a crash. `K_pake` and the derived keys are zeroized when
//! the pairing value is dropped.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::Zeroizing;

use crate::code::PairingCode;
use crate::frame::{self, FrameKind};
use crate::kdf::{self, PairingKeys};
use crate::secret::StaticKeypair;
use crate::{ProtoError, Role};

/// SPAKE2 identity of the agent (side A).
pub const AGENT_IDENTITY: &[u8] = b"clawtray-agent";
/// SPAKE2 identity of the desktop (side B).
pub const DESKTOP_IDENTITY: &[u8] = b"clawtray-desktop";
/// Longest display name accepted from a peer, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Length of a SPAKE2 message for the Ed25519 group.
pub const PAKE_MESSAGE_LEN: usize = 33;

/// What pairing learns about the other side; pinned for every later meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedPeer {
    /// The peer's long-term X25519 public key.
    pub static_public: [u8; 32],
    /// The name the peer gave itself (e.g. a host name).
    pub name: String,
}

/// Pairing after our SPAKE2 message was made, waiting for the peer's.
pub struct Pairing {
    role: Role,
    spake: Spake2<Ed25519Group>,
    my_message: Vec<u8>,
    nameplate: String,
    identity: StaticKeypair,
    name: String,
}

impl fmt::Debug for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairing")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Pairing {
    /// Start pairing as `role` with `code`. Returns the state and the SPAKE2 message to send
    /// (as a `pake` control frame).
    pub fn start(
        role: Role,
        code: &PairingCode,
        identity: StaticKeypair,
        name: &str,
    ) -> Result<(Self, Vec<u8>), ProtoError> {
        let password = Password::new(code.secret().expose().as_bytes());
        let (a, b) = (
            Identity::new(AGENT_IDENTITY),
            Identity::new(DESKTOP_IDENTITY),
        );
        let (spake, my_message) = match role {
            Role::Agent => Spake2::<Ed25519Group>::start_a(&password, &a, &b),
            Role::Desktop => Spake2::<Ed25519Group>::start_b(&password, &a, &b),
        };
        let name: String = truncate_utf8(name, MAX_NAME_LEN).to_owned();
        Ok((
            Self {
                role,
                spake,
                my_message: my_message.clone(),
                nameplate: code.nameplate().as_str().to_owned(),
                identity,
                name,
            },
            my_message,
        ))
    }

    /// Take the peer's SPAKE2 message; returns the next state and our confirmation frame (binary,
    /// kind [`FrameKind::PairingConfirm`]).
    pub fn receive_pake(
        self,
        peer_message: &[u8],
    ) -> Result<(PairingConfirming, Vec<u8>), ProtoError> {
        if peer_message.len() != PAKE_MESSAGE_LEN {
            return Err(ProtoError::PakeMalformed);
        }
        let k_pake = Zeroizing::new(
            self.spake
                .finish(peer_message)
                .map_err(|_| ProtoError::PakeMalformed)?,
        );
        let keys = PairingKeys::derive(&k_pake);
        let (agent_msg, desktop_msg) = match self.role {
            Role::Agent => (&self.my_message[..], peer_message),
            Role::Desktop => (peer_message, &self.my_message[..]),
        };
        let transcript = kdf::pairing_transcript(&self.nameplate, agent_msg, desktop_msg);

        let mac = kdf::confirmation_mac(keys.confirm(self.role), &transcript);
        let mut inner = Zeroizing::new(Vec::with_capacity(32 + self.name.len()));
        inner.extend_from_slice(&self.identity.public());
        inner.extend_from_slice(self.name.as_bytes());
        let sealed = Aes256Gcm::new(keys.seal(self.role).expose().into())
            .encrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: &inner,
                    aad: &transcript,
                },
            )
            .map_err(|_| ProtoError::PairingPayloadMalformed)?;
        let mut body = Vec::with_capacity(32 + sealed.len());
        body.extend_from_slice(&mac);
        body.extend_from_slice(&sealed);
        Ok((
            PairingConfirming {
                role: self.role,
                keys,
                transcript,
            },
            frame::encode(FrameKind::PairingConfirm, &body),
        ))
    }
}

/// Pairing after our confirmation was sent, waiting for the peer's.
pub struct PairingConfirming {
    role: Role,
    keys: PairingKeys,
    transcript: [u8; 32],
}

impl fmt::Debug for PairingConfirming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingConfirming")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl PairingConfirming {
    /// Check the peer's confirmation frame in constant time and learn its static key and name.
    pub fn receive_confirmation(self, frame_bytes: &[u8]) -> Result<PairedPeer, ProtoError> {
        let body = frame::body_of(frame_bytes, FrameKind::PairingConfirm)
            .map_err(|_| ProtoError::PairingPayloadMalformed)?;
        if body.len() < 32 + 32 + 16 {
            return Err(ProtoError::PairingPayloadMalformed);
        }
        let peer = self.role.peer();
        let (mac, sealed) = body.split_at(32);
        if !kdf::verify_confirmation_mac(self.keys.confirm(peer), &self.transcript, mac) {
            return Err(ProtoError::WrongCode);
        }
        let inner = Zeroizing::new(
            Aes256Gcm::new(self.keys.seal(peer).expose().into())
                .decrypt(
                    Nonce::from_slice(&[0u8; 12]),
                    Payload {
                        msg: sealed,
                        aad: &self.transcript,
                    },
                )
                .map_err(|_| ProtoError::WrongCode)?,
        );
        let (key, name) = inner.split_at(32);
        if name.len() > MAX_NAME_LEN {
            return Err(ProtoError::PairingPayloadMalformed);
        }
        let name = std::str::from_utf8(name).map_err(|_| ProtoError::PairingPayloadMalformed)?;
        let mut static_public = [0u8; 32];
        static_public.copy_from_slice(key);
        Ok(PairedPeer {
            static_public,
            name: name.to_owned(),
        })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> PairingCode {
        PairingCode::parse(s).unwrap()
    }

    type Outcome = Result<PairedPeer, ProtoError>;

    /// Run a whole pairing between two honest sides with their own codes.
    fn run(agent_code: &str, desktop_code: &str) -> (Outcome, Outcome, [u8; 32], [u8; 32]) {
        let a_id = StaticKeypair::generate().unwrap();
        let d_id = StaticKeypair::generate().unwrap();
        let (a_pub, d_pub) = (a_id.public(), d_id.public());
        let (a, a_msg) =
            Pairing::start(Role::Agent, &code(agent_code), a_id, "agent-host").unwrap();
        let (d, d_msg) =
            Pairing::start(Role::Desktop, &code(desktop_code), d_id, "my laptop").unwrap();
        let (a, a_conf) = a.receive_pake(&d_msg).unwrap();
        let (d, d_conf) = d.receive_pake(&a_msg).unwrap();
        (
            a.receive_confirmation(&d_conf),
            d.receive_confirmation(&a_conf),
            a_pub,
            d_pub,
        )
    }

    #[test]
    fn honest_sides_pin_each_others_static_keys() {
        let (a, d, a_pub, d_pub) = run("7351-K4Q7-2MXD", "7351-k4q7-2mxd");
        let a = a.unwrap();
        let d = d.unwrap();
        assert_eq!(a.static_public, d_pub);
        assert_eq!(a.name, "my laptop");
        assert_eq!(d.static_public, a_pub);
        assert_eq!(d.name, "agent-host");
    }

    #[test]
    fn wrong_secret_is_reported_as_wrong_code_on_both_sides() {
        let (a, d, _, _) = run("7351-K4Q7-2MXD", "7351-K4Q7-2MXE");
        assert_eq!(a, Err(ProtoError::WrongCode));
        assert_eq!(d, Err(ProtoError::WrongCode));
    }

    #[test]
    fn different_nameplate_fails_confirmation() {
        let (a, d, _, _) = run("7351-K4Q7-2MXD", "7352-K4Q7-2MXD");
        assert_eq!(a, Err(ProtoError::WrongCode));
        assert_eq!(d, Err(ProtoError::WrongCode));
    }

    #[test]
    fn man_in_the_middle_without_the_secret_is_detected() {
        // Mallory runs one SPAKE2 with each side using a guessed secret.
        let guess = "7351-AAAA-AAAA";
        let a_id = StaticKeypair::generate().unwrap();
        let d_id = StaticKeypair::generate().unwrap();
        let (a, a_msg) =
            Pairing::start(Role::Agent, &code("7351-K4Q7-2MXD"), a_id, "agent").unwrap();
        let (d, d_msg) =
            Pairing::start(Role::Desktop, &code("7351-K4Q7-2MXD"), d_id, "desk").unwrap();
        let (m_as_d, m_d_msg) = Pairing::start(
            Role::Desktop,
            &code(guess),
            StaticKeypair::generate().unwrap(),
            "desk",
        )
        .unwrap();
        let (m_as_a, m_a_msg) = Pairing::start(
            Role::Agent,
            &code(guess),
            StaticKeypair::generate().unwrap(),
            "agent",
        )
        .unwrap();
        let (a, _a_conf) = a.receive_pake(&m_d_msg).unwrap();
        let (d, _d_conf) = d.receive_pake(&m_a_msg).unwrap();
        let (_, m_conf_to_a) = m_as_d.receive_pake(&a_msg).unwrap();
        let (_, m_conf_to_d) = m_as_a.receive_pake(&d_msg).unwrap();
        assert_eq!(
            a.receive_confirmation(&m_conf_to_a),
            Err(ProtoError::WrongCode)
        );
        assert_eq!(
            d.receive_confirmation(&m_conf_to_d),
            Err(ProtoError::WrongCode)
        );
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        let (a, _) = Pairing::start(
            Role::Agent,
            &code("1-K4Q7-2MXD"),
            StaticKeypair::generate().unwrap(),
            "a",
        )
        .unwrap();
        assert_eq!(
            a.receive_pake(&[0u8; 5]).err(),
            Some(ProtoError::PakeMalformed)
        );
        let (a, _) = Pairing::start(
            Role::Agent,
            &code("1-K4Q7-2MXD"),
            StaticKeypair::generate().unwrap(),
            "a",
        )
        .unwrap();
        let (_, d_msg) = Pairing::start(
            Role::Desktop,
            &code("1-K4Q7-2MXD"),
            StaticKeypair::generate().unwrap(),
            "d",
        )
        .unwrap();
        let (a, _) = a.receive_pake(&d_msg).unwrap();
        assert_eq!(
            a.receive_confirmation(&[0x10, 1, 2]),
            Err(ProtoError::PairingPayloadMalformed)
        );
    }

    #[test]
    fn names_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
