//! The API key format.
//!
//! ```text
//! scimd_XXXXXXXXXXXXXXXXXXXXXXXXXX_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSCCCCCC
//! └──────── public ID (32) ──────┘ └──────────── secret (44) ───────────────┘└ crc ┘
//! ```
//!
//! The public ID is `scimd_` plus 26 base62 characters; it holds no secret and
//! is what lists, logs and audit events show. The secret is 44 base62
//! characters (≈262 bits from the OS RNG). The last 6 characters are the
//! CRC-32 of everything before them in base62, so a mistyped or truncated key
//! is refused without touching the database, and secret scanners can match
//! the whole format.

use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;

pub const KEY_PREFIX: &str = "scimd_";
pub const KEY_ID_LEN: usize = 32;
const SECRET_LEN: usize = 44;
const CHECKSUM_LEN: usize = 6;
pub const KEY_LEN: usize = KEY_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key's public ID: safe to show anywhere.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts a string that has the shape of a key ID.
    pub fn parse(s: &str) -> Option<KeyId> {
        let ok = s.len() == KEY_ID_LEN
            && s.starts_with(KEY_PREFIX)
            && s[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| KeyId(s.to_string()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole key as presented or generated. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainKey(String);

impl PlainKey {
    /// The full key, to be shown once to whoever created or rotated it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn id(&self) -> KeyId {
        KeyId(self.0[..KEY_ID_LEN].to_string())
    }

    /// The part that is hashed and verified.
    pub fn secret(&self) -> &str {
        &self.0[KEY_ID_LEN + 1..KEY_ID_LEN + 1 + SECRET_LEN]
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainKey({}_<redacted>)", &self.0[..KEY_ID_LEN])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not an scimd API key")]
    Malformed,
    #[error("API key checksum mismatch (mistyped or truncated key)")]
    Checksum,
}

/// Generates a new key with a fresh ID.
pub fn generate() -> PlainKey {
    let id = format!("{KEY_PREFIX}{}", random_base62(KEY_ID_LEN - KEY_PREFIX.len()));
    with_new_secret(&KeyId(id))
}

/// A new secret for an existing ID (rotation keeps the public ID).
pub fn with_new_secret(id: &KeyId) -> PlainKey {
    let body = format!("{}_{}", id.0, random_base62(SECRET_LEN));
    let checksum = checksum(&body);
    PlainKey(format!("{body}{checksum}"))
}

/// Checks shape and checksum; no database involved.
pub fn parse(presented: &str) -> Result<PlainKey, KeyFormatError> {
    let bytes = presented.as_bytes();
    let shaped = bytes.len() == KEY_LEN
        && presented.starts_with(KEY_PREFIX)
        && bytes[KEY_ID_LEN] == b'_'
        && bytes[KEY_PREFIX.len()..KEY_ID_LEN]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        && bytes[KEY_ID_LEN + 1..].iter().all(u8::is_ascii_alphanumeric);
    if !shaped {
        return Err(KeyFormatError::Malformed);
    }
    let (body, sum) = presented.split_at(KEY_LEN - CHECKSUM_LEN);
    if checksum(body) != sum {
        return Err(KeyFormatError::Checksum);
    }
    Ok(PlainKey(presented.to_string()))
}

fn random_base62(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_and_exposes_its_id() {
        let key = generate();
        assert_eq!(key.expose().len(), KEY_LEN);
        let parsed = parse(key.expose()).expect("valid");
        assert_eq!(parsed.id().as_str().len(), 32);
        assert!(parsed.id().as_str().starts_with("scimd_"));
        assert_eq!(parsed.secret().len(), SECRET_LEN);
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = generate();
        let mut chars: Vec<char> = key.expose().chars().collect();
        chars[40] = if chars[40] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(parse(&typo), Err(KeyFormatError::Checksum));
    }

    #[test]
    fn truncated_or_foreign_keys_are_malformed() {
        let key = generate();
        assert_eq!(parse(&key.expose()[..KEY_LEN - 1]), Err(KeyFormatError::Malformed));
        assert_eq!(parse("ghp_abcdef"), Err(KeyFormatError::Malformed));
        assert_eq!(parse(""), Err(KeyFormatError::Malformed));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.secret()));
    }

    #[test]
    fn rotation_keeps_the_id_and_changes_the_secret() {
        let key = generate();
        let rotated = with_new_secret(&key.id());
        assert_eq!(key.id(), rotated.id());
        assert_ne!(key.secret(), rotated.secret());
        assert!(parse(rotated.expose()).is_ok());
    }
}
