//! Sealed frames: `version(1) ‖ counter(8, BE) ‖ AES-256-GCM ciphertext ‖ tag(16)`.
//!
//! One [`Sealer`] and one [`Opener`] per direction per meeting. The counter is the explicit nonce
//! (`0x00000000 ‖ counter`, as in Noise's AESGCM), starts at 0 and strictly increases; the header is
//! the AEAD's associated data, so the version byte cannot be changed without failing the tag.
//! A repeated or lower counter, a wrong tag or an unknown version is an error and never decrypts
//! twice. Keys are the raw Noise split of the meeting (snow's own transport caps messages at 64 KiB;
//! we allow 1 MiB).

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::frame::SEALED_V1;
use crate::secret::SecretKey;
use crate::ProtoError;

/// Largest plaintext one sealed frame may carry.
pub const MAX_PLAINTEXT: usize = 1024 * 1024;
/// Header bytes before the ciphertext.
pub const HEADER_LEN: usize = 1 + 8;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Largest sealed frame on the wire.
pub const MAX_SEALED_FRAME: usize = HEADER_LEN + MAX_PLAINTEXT + TAG_LEN;
/// After this many frames in one direction a meeting must be replaced.
pub const MAX_FRAMES_PER_MEETING: u64 = 1 << 32;

fn nonce_for(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Seals outgoing frames for one direction of one meeting.
pub struct Sealer {
    cipher: Aes256Gcm,
    next: u64,
}

impl Sealer {
    /// A sealer whose first frame has counter 0.
    #[must_use]
    pub fn new(key: &SecretKey) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.expose().into()),
            next: 0,
        }
    }

    /// Frames sealed so far.
    #[must_use]
    pub fn frames_sealed(&self) -> u64 {
        self.next
    }

    /// Tests: pretend `n` frames were sealed already (counters are never reused: only forward).
    #[cfg(test)]
    pub(crate) fn skip_to(&mut self, n: u64) {
        self.next = self.next.max(n);
    }

    /// True once the meeting has used up its frame budget and must be replaced.
    #[must_use]
    pub fn exhausted(&self) -> bool {
        self.next >= MAX_FRAMES_PER_MEETING
    }

    /// Seal `plaintext` into a frame. Every call uses a fresh counter: the same key never seals two
    /// frames under one nonce.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, ProtoError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(ProtoError::PlaintextTooLarge(plaintext.len()));
        }
        if self.exhausted() {
            return Err(ProtoError::MeetingExhausted);
        }
        let counter = self.next;
        self.next += 1;
        let mut header = [0u8; HEADER_LEN];
        header[0] = SEALED_V1;
        header[1..].copy_from_slice(&counter.to_be_bytes());
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_for(counter)),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .map_err(|_| ProtoError::PlaintextTooLarge(plaintext.len()))?;
        let mut frame = Vec::with_capacity(HEADER_LEN + ct.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&ct);
        Ok(frame)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Opens incoming frames for one direction of one meeting.
pub struct Opener {
    cipher: Aes256Gcm,
    last: Option<u64>,
}

impl Opener {
    /// An opener that accepts any first counter, then only higher ones.
    #[must_use]
    pub fn new(key: &SecretKey) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.expose().into()),
            last: None,
        }
    }

    /// The counter of the last frame accepted, if any.
    #[must_use]
    pub fn last_counter(&self) -> Option<u64> {
        self.last
    }

    /// Authenticate and decrypt `frame`. Only a frame that opens moves the counter forward, so a
    /// forged frame cannot block later genuine ones.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let Some(&version) = frame.first() else {
            return Err(ProtoError::FrameTruncated);
        };
        if version != SEALED_V1 {
            return Err(ProtoError::UnknownFrameKind(version));
        }
        if frame.len() < HEADER_LEN + TAG_LEN {
            return Err(ProtoError::FrameTruncated);
        }
        if frame.len() > MAX_SEALED_FRAME {
            return Err(ProtoError::PlaintextTooLarge(
                frame.len() - HEADER_LEN - TAG_LEN,
            ));
        }
        let (header, body) = frame.split_at(HEADER_LEN);
        let mut counter_bytes = [0u8; 8];
        counter_bytes.copy_from_slice(&header[1..]);
        let counter = u64::from_be_bytes(counter_bytes);
        if let Some(last) = self.last {
            if counter <= last {
                return Err(ProtoError::CounterNotIncreasing { got: counter, last });
            }
        }
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce_for(counter)),
                Payload {
                    msg: body,
                    aad: header,
                },
            )
            .map_err(|_| ProtoError::FrameAuthFailed)?;
        self.last = Some(counter);
        Ok(plaintext)
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair() -> (Sealer, Opener) {
        let k = SecretKey::from_bytes([7; 32]);
        (Sealer::new(&k), Opener::new(&k))
    }

    #[test]
    fn round_trip_and_layout() {
        let (mut s, mut o) = pair();
        let f = s.seal(b"hello").unwrap();
        assert_eq!(f[0], SEALED_V1);
        assert_eq!(&f[1..9], &0u64.to_be_bytes());
        assert_eq!(f.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(o.open(&f).unwrap(), b"hello");
    }

    #[test]
    fn known_answer_matches_aes_gcm_with_noise_nonce() {
        // Independent check: AES-256-GCM(key=07*32, nonce=0^12, aad=01 ‖ 0^8, "hello"),
        // computed with Python's `cryptography` package.
        let (mut s, _) = pair();
        let f = s.seal(b"hello").unwrap();
        assert_eq!(hex::encode(&f[HEADER_LEN..]), KAT_SEALED_HELLO);
    }

    #[test]
    fn replayed_and_reordered_frames_are_rejected() {
        let (mut s, mut o) = pair();
        let f0 = s.seal(b"a").unwrap();
        let f1 = s.seal(b"b").unwrap();
        assert!(o.open(&f1).is_ok());
        assert_eq!(
            o.open(&f0),
            Err(ProtoError::CounterNotIncreasing { got: 0, last: 1 })
        );
        assert_eq!(
            o.open(&f1),
            Err(ProtoError::CounterNotIncreasing { got: 1, last: 1 })
        );
    }

    #[test]
    fn tampered_truncated_and_downgraded_frames_are_rejected() {
        let (mut s, mut o) = pair();
        let f = s.seal(b"secret message").unwrap();
        for i in 0..f.len() {
            let mut t = f.clone();
            t[i] ^= 0x01;
            assert!(o.open(&t).is_err(), "bit flip at {i} accepted");
        }
        assert_eq!(
            o.open(&f[..HEADER_LEN + TAG_LEN - 1]),
            Err(ProtoError::FrameTruncated)
        );
        assert_eq!(o.open(&f[..f.len() - 1]), Err(ProtoError::FrameAuthFailed));
        let mut down = f.clone();
        down[0] = 0x00;
        assert_eq!(o.open(&down), Err(ProtoError::UnknownFrameKind(0)));
        assert_eq!(o.open(&[]), Err(ProtoError::FrameTruncated));
        // a forged frame with a huge counter must not block the genuine one
        let mut forged = f.clone();
        forged[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(o.open(&forged).is_err());
        assert_eq!(o.open(&f).unwrap(), b"secret message");
    }

    #[test]
    fn other_keys_cannot_open() {
        let (mut s, _) = pair();
        let mut other = Opener::new(&SecretKey::from_bytes([8; 32]));
        assert_eq!(
            other.open(&s.seal(b"x").unwrap()),
            Err(ProtoError::FrameAuthFailed)
        );
    }

    #[test]
    fn nonces_never_repeat() {
        let (mut s, _) = pair();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let f = s.seal(b"same").unwrap();
            assert!(seen.insert(f[1..9].to_vec()));
        }
    }

    #[test]
    fn size_limit_is_enforced() {
        let (mut s, mut o) = pair();
        let big = vec![0u8; MAX_PLAINTEXT];
        let f = s.seal(&big).unwrap();
        assert_eq!(o.open(&f).unwrap().len(), MAX_PLAINTEXT);
        assert_eq!(
            s.seal(&vec![0u8; MAX_PLAINTEXT + 1]),
            Err(ProtoError::PlaintextTooLarge(MAX_PLAINTEXT + 1))
        );
    }

    #[test]
    fn exhausted_meeting_refuses_to_seal() {
        let (mut s, _) = pair();
        s.next = MAX_FRAMES_PER_MEETING;
        assert_eq!(s.seal(b"x"), Err(ProtoError::MeetingExhausted));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 1..20)) {
            let (mut s, mut o) = pair();
            for m in &msgs {
                let f = s.seal(m).unwrap();
                prop_assert_eq!(&o.open(&f).unwrap(), m);
            }
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (_, mut o) = pair();
            let _ = o.open(&bytes);
        }
    }

    include!("sealed_kat.rs");
}
