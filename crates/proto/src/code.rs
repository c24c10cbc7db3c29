//! Pairing codes: `7351-K4Q7-2MXD`.
//!
//! The nameplate (`7351`) comes from the relay and only routes the two sides together. The secret
//! (`K4Q7-2MXD`, 40 bits, Crockford base32) is made by the agent and never leaves the two ends.
//! Parsing is lenient the way people type: any case, spaces and dashes ignored, `O`→`0`, `I`/`L`→`1`.

use std::fmt;

use zeroize::Zeroizing;

use crate::secret::{fill_random, SecretString};
use crate::ProtoError;

/// Crockford base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in the secret part: 8 × 5 bits = 40 bits.
pub const SECRET_SYMBOLS: usize = 8;
/// Longest nameplate we accept.
pub const MAX_NAMEPLATE_DIGITS: usize = 8;

/// The routing number handed out by the relay. Not secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nameplate(String);

impl Nameplate {
    /// Validate a nameplate: 1 to 8 ASCII digits.
    pub fn parse(s: &str) -> Result<Self, ProtoError> {
        if s.is_empty() || s.len() > MAX_NAMEPLATE_DIGITS || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ProtoError::CodeBadNameplate);
        }
        Ok(Self(s.to_owned()))
    }

    /// The digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Nameplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full pairing code: nameplate and secret. `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode {
    nameplate: Nameplate,
    /// Canonical secret: 8 upper-case Crockford symbols.
    secret: SecretString,
}

impl PairingCode {
    /// A new code for `nameplate` with 40 bits of fresh secret from the OS RNG.
    pub fn generate(nameplate: Nameplate) -> Result<Self, ProtoError> {
        let mut raw = Zeroizing::new([0u8; SECRET_SYMBOLS]);
        fill_random(&mut raw[..])?;
        let secret: String = raw
            .iter()
            .map(|b| ALPHABET[(b & 0x1f) as usize] as char)
            .collect();
        Ok(Self {
            nameplate,
            secret: SecretString::new(secret),
        })
    }

    /// Parse a code as a person typed or pasted it.
    pub fn parse(input: &str) -> Result<Self, ProtoError> {
        let mut symbols = Zeroizing::new(String::with_capacity(input.len()));
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            symbols.push(normalize_symbol(c)?);
        }
        if symbols.is_empty() {
            return Err(ProtoError::CodeEmpty);
        }
        // If the person kept the dashes and the first group is a number, trust them: that group is
        // the nameplate and the rest must be the whole secret.
        if input.contains('-') {
            let first: String = input
                .trim()
                .split('-')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if !first.is_empty()
                && first.len() < symbols.len()
                && first.bytes().all(|b| b.is_ascii_digit())
            {
                let secret = &symbols[first.len()..];
                if secret.len() != SECRET_SYMBOLS {
                    return Err(ProtoError::CodeBadSecretLength);
                }
                return Ok(Self {
                    nameplate: Nameplate::parse(&first)?,
                    secret: SecretString::new(secret.to_owned()),
                });
            }
        }
        if symbols.len() < SECRET_SYMBOLS {
            return Err(ProtoError::CodeTooShort);
        }
        let split = symbols.len() - SECRET_SYMBOLS;
        let (nameplate, secret) = symbols.split_at(split);
        if nameplate.is_empty() {
            return Err(ProtoError::CodeMissingNameplate);
        }
        Ok(Self {
            nameplate: Nameplate::parse(nameplate)?,
            secret: SecretString::new(secret.to_owned()),
        })
    }

    /// The routing part.
    #[must_use]
    pub fn nameplate(&self) -> &Nameplate {
        &self.nameplate
    }

    /// The canonical secret, used as the SPAKE2 password.
    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// The code as shown to people: `7351-K4Q7-2MXD`. This contains the secret: show it, never log it.
    #[must_use]
    pub fn display_string(&self) -> Zeroizing<String> {
        let s = self.secret.expose();
        Zeroizing::new(format!("{}-{}-{}", self.nameplate, &s[..4], &s[4..]))
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingCode({}-<redacted>)", self.nameplate)
    }
}

/// Map one typed character to its canonical Crockford symbol.
fn normalize_symbol(c: char) -> Result<char, ProtoError> {
    let up = c.to_ascii_uppercase();
    let mapped = match up {
        'O' => '0',
        'I' | 'L' => '1',
        other => other,
    };
    if mapped.is_ascii() && ALPHABET.contains(&(mapped as u8)) {
        Ok(mapped)
    } else {
        Err(ProtoError::CodeBadCharacter(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn np(s: &str) -> Nameplate {
        Nameplate::parse(s).unwrap()
    }

    #[test]
    fn parses_the_canonical_form() {
        let c = PairingCode::parse("7351-K4Q7-2MXD").unwrap();
        assert_eq!(c.nameplate().as_str(), "7351");
        assert_eq!(c.secret().expose(), "K4Q72MXD");
        assert_eq!(&*c.display_string(), "7351-K4Q7-2MXD");
    }

    #[test]
    fn parsing_is_lenient_about_case_spaces_and_lookalikes() {
        for typed in [
            "7351-k4q7-2mxd",
            " 7351 K4Q7 2MXD ",
            "7351K4Q72MXD",
            "7351-K4Q7-2MXD\n",
        ] {
            let c = PairingCode::parse(typed).unwrap();
            assert_eq!(&*c.display_string(), "7351-K4Q7-2MXD", "{typed}");
        }
        let c = PairingCode::parse("12-oIlA-BCDE").unwrap();
        assert_eq!(c.secret().expose(), "011ABCDE");
    }

    #[test]
    fn gives_clear_errors() {
        assert_eq!(PairingCode::parse("  "), Err(ProtoError::CodeEmpty));
        assert_eq!(
            PairingCode::parse("7351-K4Q"),
            Err(ProtoError::CodeBadSecretLength)
        );
        assert_eq!(PairingCode::parse("K4Q"), Err(ProtoError::CodeTooShort));
        assert_eq!(
            PairingCode::parse("K4Q72MXD"),
            Err(ProtoError::CodeMissingNameplate)
        );
        assert_eq!(
            PairingCode::parse("7351-K4Q7-2MU0"),
            Err(ProtoError::CodeBadCharacter('U'))
        );
        assert_eq!(
            PairingCode::parse("7351-K4Q7-2M!D"),
            Err(ProtoError::CodeBadCharacter('!'))
        );
        assert_eq!(
            PairingCode::parse("73A1K4Q72MXD"),
            Err(ProtoError::CodeBadNameplate)
        );
        assert_eq!(
            PairingCode::parse("7351-K4Q7-2MX"),
            Err(ProtoError::CodeBadSecretLength)
        );
        assert_eq!(
            PairingCode::parse("7A51K4Q72MXD"),
            Err(ProtoError::CodeBadNameplate)
        );
        assert_eq!(
            PairingCode::parse("123456789-K4Q7-2MXD"),
            Err(ProtoError::CodeBadNameplate)
        );
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = PairingCode::parse("7351-K4Q7-2MXD").unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("7351") && !d.contains("K4Q7"), "{d}");
    }

    #[test]
    fn generated_codes_have_40_bits_and_differ() {
        let a = PairingCode::generate(np("42")).unwrap();
        let b = PairingCode::generate(np("42")).unwrap();
        assert_eq!(a.secret().expose().len(), SECRET_SYMBOLS);
        assert_ne!(a.secret(), b.secret());
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(nameplate in 0u32..100_000_000, raw in proptest::array::uniform8(0u8..32)) {
            let secret: String = raw.iter().map(|b| ALPHABET[*b as usize] as char).collect();
            let code = PairingCode { nameplate: np(&nameplate.to_string()), secret: SecretString::new(secret) };
            let shown = code.display_string();
            prop_assert_eq!(PairingCode::parse(&shown).unwrap(), code.clone());
            prop_assert_eq!(PairingCode::parse(&shown.to_lowercase()).unwrap(), code);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = PairingCode::parse(&s);
        }
    }
}
