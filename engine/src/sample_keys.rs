//! The kinds of lookup key and their names in sample-keys files.
//!
//! `dancu-data sample-keys --kind KIND` writes one key of a kind per line;
//! the load generator reads such files (`--keys-id`, `--keys-legacy`,
//! `--keys-face`, `--keys-fingerprint`) and names the kind in messages.
//! Both use this one enum, so a kind's name cannot drift between writer
//! and reader.

use std::fmt;
use std::str::FromStr;

/// A kind of lookup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// Personal ID, 12 digits.
    Id,
    /// Legacy ID (CMND), 9 digits.
    Legacy,
    /// Face template hash, 32 hex digits.
    Face,
    /// Fingerprint template hash, 32 hex digits.
    Fingerprint,
}

impl KeyKind {
    /// Every kind, in declaration order.
    pub const ALL: [KeyKind; 4] = [
        KeyKind::Id,
        KeyKind::Legacy,
        KeyKind::Face,
        KeyKind::Fingerprint,
    ];

    /// The name in flags, files and messages: `id`, `legacy`, `face`,
    /// `fingerprint`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Id => "id",
            KeyKind::Legacy => "legacy",
            KeyKind::Face => "face",
            KeyKind::Fingerprint => "fingerprint",
        }
    }

    /// What a key of this kind is, for help texts.
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::Id => "Personal ID, 12 digits",
            KeyKind::Legacy => "Legacy ID, 9 digits",
            KeyKind::Face => "Face template hash, 32 hex digits",
            KeyKind::Fingerprint => "Fingerprint template hash, 32 hex digits",
        }
    }

    /// The biometric modality of a template-hash kind.
    pub fn modality(self) -> Option<crate::Modality> {
        match self {
            KeyKind::Face => Some(crate::Modality::Face),
            KeyKind::Fingerprint => Some(crate::Modality::Fingerprint),
            KeyKind::Id | KeyKind::Legacy => None,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not a key kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKeyKind(pub String);

impl fmt::Display for UnknownKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a key kind (id, legacy, face, fingerprint)",
            self.0
        )
    }
}

impl std::error::Error for UnknownKeyKind {}

impl FromStr for KeyKind {
    type Err = UnknownKeyKind;
    fn from_str(s: &str) -> Result<KeyKind, UnknownKeyKind> {
        KeyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKeyKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in KeyKind::ALL {
            assert_eq!(k.as_str().parse::<KeyKind>(), Ok(k));
        }
        assert!("passport".parse::<KeyKind>().is_err());
    }
}
