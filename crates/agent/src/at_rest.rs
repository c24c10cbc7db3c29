//! Sealing the state dir's files at rest: one AES-256-GCM key per purpose, derived (HKDF-SHA256)
//! from the agent's static key — which is not in the state dir when it lives in the OS keyring or
//! a systemd credential ([`crate::keys`]). A sealed file is `nonce(12) ‖ ciphertext ‖ tag(16)`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use clawtray_proto::secret::{fill_random, SecretKey, StaticKeypair};
use clawtray_proto::ProtoError;

/// What a sealing key is for; each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The per-desktop outboxes and `pending.sealed`.
    Outbox,
    /// The relay device tokens (`tokens.sealed`).
    Tokens,
    /// The gateway device identity and its device token.
    GatewayIdentity,
    /// Parts of files on their way from a desktop to the gateway.
    Files,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            // "outbox" is what existing installs sealed their outboxes with: keep it
            Purpose::Outbox => b"outbox",
            Purpose::Tokens => b"relay tokens",
            Purpose::GatewayIdentity => b"gateway identity",
            Purpose::Files => b"received files",
        }
    }
}

/// The sealing key for `purpose`.
#[must_use]
pub fn sealing_key(static_key: &StaticKeypair, purpose: Purpose) -> SecretKey {
    let hk = Hkdf::<Sha256>::new(
        Some(b"clawtray/1 agent at rest"),
        static_key.secret().expose(),
    );
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 × 32: expand cannot fail here
    let _ = hk.expand(purpose.info(), &mut okm);
    SecretKey::from_bytes(okm)
}

/// Seal `plain` under `key`.
pub fn seal(key: &SecretKey, plain: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let mut nonce = [0u8; 12];
    fill_random(&mut nonce)?;
    let ct = Aes256Gcm::new(key.expose().into())
        .encrypt(Nonce::from_slice(&nonce), plain)
        .map_err(|_| ProtoError::PlaintextTooLarge(plain.len()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open what [`seal`] made; `None` if it was not sealed under `key` or was altered.
#[must_use]
pub fn open(key: &SecretKey, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    Aes256Gcm::new(key.expose().into())
        .decrypt(Nonce::from_slice(&sealed[..12]), &sealed[12..])
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_has_its_own_key_and_only_it_opens() {
        let k = StaticKeypair::generate().unwrap();
        let tokens = sealing_key(&k, Purpose::Tokens);
        let outbox = sealing_key(&k, Purpose::Outbox);
        assert_ne!(tokens.expose(), outbox.expose());
        let sealed = seal(&tokens, b"MARKER").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(open(&tokens, &sealed).unwrap().as_slice(), b"MARKER");
        assert!(open(&outbox, &sealed).is_none());
        let other = sealing_key(&StaticKeypair::generate().unwrap(), Purpose::Tokens);
        assert!(open(&other, &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[14] ^= 1;
        assert!(open(&tokens, &flipped).is_none());
        assert!(open(&tokens, b"short").is_none());
    }
}
