//! Key derivations and their labels, in one place so that a reader (or a compatible peer) finds
//! every constant here. All derivations are HKDF-SHA256 / HMAC-SHA256.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::secret::SecretKey;
use crate::{Role, PROTOCOL_LABEL};

/// HKDF salt for keys derived from the SPAKE2 result.
pub const PAIRING_SALT: &[u8] = b"clawtray/1 pairing";

/// Keys derived from `K_pake` for one pairing.
#[derive(Debug)]
pub struct PairingKeys {
    /// MAC key for the agent's key-confirmation.
    pub confirm_agent: SecretKey,
    /// MAC key for the desktop's key-confirmation.
    pub confirm_desktop: SecretKey,
    /// AEAD key sealing the agent's static key and name.
    pub seal_agent: SecretKey,
    /// AEAD key sealing the desktop's static key and name.
    pub seal_desktop: SecretKey,
}

impl PairingKeys {
    /// Derive all four keys from the SPAKE2 output.
    #[must_use]
    pub fn derive(k_pake: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(PAIRING_SALT), k_pake);
        let expand = |label: &str| {
            let mut okm = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
            hk.expand(label.as_bytes(), &mut okm)
                .unwrap_or_else(|_| unreachable!("32-byte HKDF output is always valid"));
            SecretKey::from_bytes(okm)
        };
        Self {
            confirm_agent: expand("confirm-agent"),
            confirm_desktop: expand("confirm-desktop"),
            seal_agent: expand("seal-agent"),
            seal_desktop: expand("seal-desktop"),
        }
    }

    /// The confirmation key of `role`.
    #[must_use]
    pub fn confirm(&self, role: Role) -> &SecretKey {
        match role {
            Role::Agent => &self.confirm_agent,
            Role::Desktop => &self.confirm_desktop,
        }
    }

    /// The sealing key of `role`.
    #[must_use]
    pub fn seal(&self, role: Role) -> &SecretKey {
        match role {
            Role::Agent => &self.seal_agent,
            Role::Desktop => &self.seal_desktop,
        }
    }
}

/// The pairing transcript: binds the nameplate and both SPAKE2 messages.
/// `SHA-256("clawtray/1" ‖ "pairing" ‖ u8(len nameplate) ‖ nameplate ‖ agent_msg ‖ desktop_msg)`.
#[must_use]
pub fn pairing_transcript(nameplate: &str, agent_msg: &[u8], desktop_msg: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PROTOCOL_LABEL);
    h.update(b"pairing");
    h.update([u8::try_from(nameplate.len()).unwrap_or(u8::MAX)]);
    h.update(nameplate.as_bytes());
    h.update(agent_msg);
    h.update(desktop_msg);
    h.finalize().into()
}

/// Key-confirmation MAC: `HMAC-SHA256(confirm key, transcript)`.
#[must_use]
pub fn confirmation_mac(key: &SecretKey, transcript: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

/// Constant-time check of a peer's confirmation MAC.
#[must_use]
pub fn verify_confirmation_mac(key: &SecretKey, transcript: &[u8; 32], mac: &[u8]) -> bool {
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()) else {
        return false;
    };
    m.update(transcript);
    m.verify_slice(mac).is_ok()
}

/// The Noise prologue of every meeting of a session: `"clawtray/1" ‖ session id`.
#[must_use]
pub fn meeting_prologue(session_id: &str) -> Vec<u8> {
    let mut p = PROTOCOL_LABEL.to_vec();
    p.extend_from_slice(session_id.as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers computed independently with Python's hmac/hashlib (RFC 5869 HKDF).
    #[test]
    fn pairing_keys_match_known_answers() {
        let keys = PairingKeys::derive(&[0x11; 32]);
        assert_eq!(hex::encode(keys.confirm_agent.expose()), KAT_CONFIRM_AGENT);
        assert_eq!(
            hex::encode(keys.confirm_desktop.expose()),
            KAT_CONFIRM_DESKTOP
        );
        assert_eq!(hex::encode(keys.seal_agent.expose()), KAT_SEAL_AGENT);
        assert_eq!(hex::encode(keys.seal_desktop.expose()), KAT_SEAL_DESKTOP);
    }

    #[test]
    fn transcript_and_mac_match_known_answers() {
        let t = pairing_transcript("7351", &[0xaa; 33], &[0xbb; 33]);
        assert_eq!(hex::encode(t), KAT_TRANSCRIPT);
        let mac = confirmation_mac(&SecretKey::from_bytes([0x22; 32]), &t);
        assert_eq!(hex::encode(mac), KAT_MAC);
        assert!(verify_confirmation_mac(
            &SecretKey::from_bytes([0x22; 32]),
            &t,
            &mac
        ));
        let mut bad = mac;
        bad[31] ^= 1;
        assert!(!verify_confirmation_mac(
            &SecretKey::from_bytes([0x22; 32]),
            &t,
            &bad
        ));
        assert!(!verify_confirmation_mac(
            &SecretKey::from_bytes([0x22; 32]),
            &t,
            &mac[..31]
        ));
    }

    #[test]
    fn prologue_binds_the_session() {
        assert_eq!(meeting_prologue("abc"), b"clawtray/1abc".to_vec());
    }

    include!("kdf_kat.rs");
}
