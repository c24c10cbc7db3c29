//! Secret values: private keys, transport keys, device tokens, the pairing secret.
//!
//! Every type here redacts itself in `Debug` (and has no `Display`), and zeroizes its bytes on drop,
//! so a secret cannot leak through a log line, a panic message or an error chain by accident.

use std::fmt;

use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ProtoError;

/// Fill `buf` from the operating system's random number generator.
pub fn fill_random(buf: &mut [u8]) -> Result<(), ProtoError> {
    OsRng.try_fill_bytes(buf).map_err(|_| ProtoError::Rng)
}

/// 32 secret bytes (an X25519 private key, an AEAD key, a PAKE result).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Wrap existing bytes (the caller's copy should be zeroized by the caller).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the OS RNG.
    pub fn random() -> Result<Self, ProtoError> {
        let mut b = [0u8; 32];
        fill_random(&mut b)?;
        Ok(Self(b))
    }

    /// Borrow the bytes — only to hand them to a cipher or a keystore.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A long-term X25519 identity: the private key (secret) and its public key.
#[derive(Clone)]
pub struct StaticKeypair {
    secret: SecretKey,
    public: [u8; 32],
}

impl StaticKeypair {
    /// Generate a new identity from the OS RNG.
    pub fn generate() -> Result<Self, ProtoError> {
        Ok(Self::from_secret(SecretKey::random()?))
    }

    /// Rebuild an identity from its stored private key.
    #[must_use]
    pub fn from_secret(secret: SecretKey) -> Self {
        let sk = x25519_dalek::StaticSecret::from(*secret.expose());
        let public = x25519_dalek::PublicKey::from(&sk).to_bytes();
        Self { secret, public }
    }

    /// The public half, safe to share and to log (as a fingerprint).
    #[must_use]
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The private half.
    #[must_use]
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &hex::encode(self.public))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A secret string (a device token, a pairing secret, a gateway token).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap a string.
    #[must_use]
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// Borrow the secret — only to send it where it belongs or to store it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A zeroizing copy of the bytes.
    #[must_use]
    pub fn to_zeroizing_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

/// A relay device token: 256 random bits, base64url. Proves to the relay that a connection may
/// resume a session; the relay stores only its SHA-256.
pub type DeviceToken = SecretString;

/// Make a new device token (256 bits from the OS RNG, base64url without padding).
pub fn new_device_token() -> Result<DeviceToken, ProtoError> {
    use base64::Engine;
    let mut b = Zeroizing::new([0u8; 32]);
    fill_random(&mut b[..])?;
    Ok(SecretString::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b[..]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_secret_material() {
        let kp = StaticKeypair::generate().unwrap();
        let secret_hex = hex::encode(kp.secret().expose());
        let dbg = format!("{kp:?} {:?}", kp.secret());
        assert!(!dbg.contains(&secret_hex), "{dbg}");
        assert!(dbg.contains("redacted"));
        let tok = new_device_token().unwrap();
        let dbg = format!("{tok:?}");
        assert!(!dbg.contains(tok.expose()));
    }

    #[test]
    fn secret_strings_serialize_plainly_but_never_debug() {
        let s = SecretString::new("tok-XYZ".into());
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"tok-XYZ\"");
        let back: SecretString = serde_json::from_str("\"tok-XYZ\"").unwrap();
        assert_eq!(back, s);
        assert!(!format!("{back:?}").contains("XYZ"));
    }

    #[test]
    fn device_tokens_are_256_bit_and_unique() {
        let a = new_device_token().unwrap();
        let b = new_device_token().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn static_keypair_round_trips_from_secret() {
        let kp = StaticKeypair::generate().unwrap();
        let again = StaticKeypair::from_secret(kp.secret().clone());
        assert_eq!(kp.public(), again.public());
    }
}
