//! Clients, their keys, scopes and rate limits (`keys.toml`).
//!
//! A key is never stored: `keys.toml` holds its SHA-256, and a presented key
//! is hashed and compared with every client's hash in constant time, so
//! neither the comparison nor the position of the matching client shows in
//! the response time.
//!
//! ```toml
//! [[client]]
//! name = "social-insurance"
//! key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! scopes = ["citizen:verify"]
//! rate_limit_per_s = 2000   # optional; absent or 0 = unlimited
//! burst = 4000              # optional; default = one second's worth
//! class = "bulk"            # optional; "interactive" (default) or "bulk"
//! ```
//!
//! A client's [`Class`] decides who waits and who is shed first when the
//! server is over capacity ([`crate::admission`]): overnight and
//! re-verification jobs are `bulk`, gateways serving a person at a counter
//! are `interactive`.
//!
//! The file is read again on SIGHUP and `POST /v1/admin/reload`
//! ([`KeyStore::reloaded`]): keys can be changed or revoked (a client
//! removed) without a restart. A client keeps its number across reloads
//! (metrics and the audit log name clients by number), so a client whose
//! name was not in the file at start needs a restart.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::ratelimit::RateLimiter;
use crate::Error;

/// The key that has every scope in demo mode (loopback only).
pub const DEMO_KEY: &str = "dancu-demo-key";

/// A set of scopes, as bits (u16: the eight scopes before `statistics:read`
/// filled a u8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u16);

impl Scopes {
    /// No scope.
    pub const NONE: Scopes = Scopes(0);
    /// `citizen:read`: whole records.
    pub const READ: Scopes = Scopes(1);
    /// `citizen:read:basic`: ID, name, date of birth, sex, nationality.
    pub const READ_BASIC: Scopes = Scopes(2);
    /// `citizen:verify`: yes/no per claimed field.
    pub const VERIFY: Scopes = Scopes(4);
    /// `biometric:identify`: template hash → ID.
    pub const BIOMETRIC: Scopes = Scopes(8);
    /// `admin`: reload.
    pub const ADMIN: Scopes = Scopes(16);
    /// `citizen:verify:extended`: verification, also of fields that are not
    /// on the card (see [`dancu_engine::CARD_CLAIMS`]).
    pub const VERIFY_EXTENDED: Scopes = Scopes(32);
    /// `registrar`: births, deaths, moves, corrections, enrolments.
    pub const REGISTRAR: Scopes = Scopes(64);
    /// `changes:read`: the change feed (replicas, downstream systems).
    pub const CHANGES: Scopes = Scopes(128);
    /// `statistics:read`: population counts, never a person.
    pub const STATISTICS: Scopes = Scopes(256);
    /// `citizen:match`: bulk matching of a dataset, with candidate search
    /// by name and date of birth.
    pub const MATCH: Scopes = Scopes(512);
    /// Every scope (the demo key).
    pub const ALL: Scopes = Scopes(1023);

    /// The scope names of the API, with their bits.
    pub const NAMES: [(&'static str, Scopes); 10] = [
        ("citizen:read", Scopes::READ),
        ("citizen:read:basic", Scopes::READ_BASIC),
        ("citizen:verify", Scopes::VERIFY),
        ("citizen:verify:extended", Scopes::VERIFY_EXTENDED),
        ("biometric:identify", Scopes::BIOMETRIC),
        ("admin", Scopes::ADMIN),
        ("registrar", Scopes::REGISTRAR),
        ("changes:read", Scopes::CHANGES),
        ("statistics:read", Scopes::STATISTICS),
        ("citizen:match", Scopes::MATCH),
    ];

    /// The scope with this name.
    pub fn parse(name: &str) -> Option<Scopes> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, s)| s)
    }

    /// Whether any scope of `other` is in `self`.
    pub fn any(self, other: Scopes) -> bool {
        self.0 & other.0 != 0
    }

    /// The union.
    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }
}

/// How a client's requests are treated under pressure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A person is waiting for the answer: served first, shed last.
    #[default]
    Interactive,
    /// Batch jobs (re-verification, overnight matching): their batches
    /// wait behind interactive ones and they are shed first.
    Bulk,
}

impl Class {
    /// Both classes, in priority order.
    pub const ALL: [Class; 2] = [Class::Interactive, Class::Bulk];

    /// The name in `keys.toml` and in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Class::Interactive => "interactive",
            Class::Bulk => "bulk",
        }
    }
}

/// One configured client.
#[derive(Debug)]
pub struct Client {
    /// Name, as shown in metrics and the audit log.
    pub name: String,
    key_sha256: [u8; 32],
    /// What the client may do.
    pub scopes: Scopes,
    /// Its request rate limit, if any.
    pub limiter: Option<RateLimiter>,
    /// Its priority class.
    pub class: Class,
    /// Removed from `keys.toml` by a reload: its key no longer
    /// authenticates, but its number stays taken.
    removed: bool,
}

/// A client number: 0 is "anonymous" (no valid key), `1..` index the clients
/// in file order. Metrics and the audit log use it instead of the name.
pub type ClientId = u16;

/// The client table.
#[derive(Debug)]
pub struct KeyStore {
    clients: Vec<Client>,
    demo: bool,
    /// 0 for the store read at start, one more for each reload: a
    /// connection's cached key is trusted only for the generation it was
    /// checked against.
    generation: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    client: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    name: String,
    key_sha256: String,
    scopes: Vec<String>,
    #[serde(default)]
    rate_limit_per_s: f64,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    class: Class,
}

/// The SHA-256 of a key as 64 lower-case hex digits: what `keys.toml` holds.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hex = |c: u8| (c as char).to_digit(16);
        out[i] = (hex(pair[0])? << 4 | hex(pair[1])?) as u8;
    }
    Some(out)
}

impl KeyStore {
    /// Demo mode: one client, `demo`, whose key is [`DEMO_KEY`], with every
    /// scope and no rate limit.
    pub fn demo() -> KeyStore {
        let key_sha256: [u8; 32] = Sha256::digest(DEMO_KEY.as_bytes()).into();
        KeyStore {
            clients: vec![Client {
                name: "demo".into(),
                key_sha256,
                scopes: Scopes::ALL,
                limiter: None,
                class: Class::Interactive,
                removed: false,
            }],
            demo: true,
            generation: 0,
        }
    }

    /// Reads `keys.toml`.
    pub fn load(path: &Path) -> Result<KeyStore, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        KeyStore::parse(&text).map_err(|message| Error::Keys {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the text of a `keys.toml`.
    pub fn parse(text: &str) -> Result<KeyStore, String> {
        let file: KeysFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.client.is_empty() {
            return Err("no [[client]] entries".into());
        }
        if file.client.len() >= usize::from(u16::MAX) {
            return Err("too many clients".into());
        }
        let mut clients: Vec<Client> = Vec::with_capacity(file.client.len());
        for entry in file.client {
            let name = entry.name.trim().to_string();
            if name.is_empty() || name == "anonymous" {
                return Err(format!("client name {:?} is not allowed", entry.name));
            }
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return Err(format!(
                    "client name {name:?}: use letters, digits and - _ . : only"
                ));
            }
            if clients.iter().any(|c| c.name == name) {
                return Err(format!("client {name:?} appears twice"));
            }
            let key_sha256 = parse_hex32(&entry.key_sha256).ok_or_else(|| {
                format!("client {name:?}: key_sha256 must be 64 hex digits (see `dancu-server hash-key`)")
            })?;
            if clients
                .iter()
                .any(|c| bool::from(c.key_sha256.ct_eq(&key_sha256)))
            {
                return Err(format!(
                    "client {name:?} has the same key as another client"
                ));
            }
            let mut scopes = Scopes::NONE;
            for s in &entry.scopes {
                let scope = Scopes::parse(s).ok_or_else(|| {
                    format!(
                        "client {name:?}: unknown scope {s:?} (known: {})",
                        Scopes::NAMES.map(|(n, _)| n).join(", ")
                    )
                })?;
                scopes = scopes.union(scope);
            }
            if !(entry.rate_limit_per_s.is_finite() && entry.rate_limit_per_s >= 0.0) {
                return Err(format!("client {name:?}: rate_limit_per_s must be ≥ 0"));
            }
            let limiter = (entry.rate_limit_per_s > 0.0).then(|| {
                let burst = entry
                    .burst
                    .unwrap_or_else(|| {
                        entry.rate_limit_per_s.ceil().min(f64::from(u32::MAX)) as u32
                    })
                    .max(1);
                RateLimiter::new(entry.rate_limit_per_s, burst)
            });
            clients.push(Client {
                name,
                key_sha256,
                scopes,
                limiter,
                class: entry.class,
                removed: false,
            });
        }
        Ok(KeyStore {
            clients,
            demo: false,
            generation: 0,
        })
    }

    /// `keys.toml` read again for a running server: its clients keep their
    /// numbers (a client missing from the file is kept as removed, whose
    /// key no longer authenticates), and a client whose rate limit did not
    /// change keeps what it has used of it. A client name that this store
    /// has never had is an error: it needs a restart.
    pub fn reloaded(&self, path: &Path) -> Result<KeyStore, Error> {
        let mut fresh = KeyStore::load(path)?;
        let keys_error = |message: String| Error::Keys {
            path: path.to_path_buf(),
            message,
        };
        let mut clients = Vec::with_capacity(self.clients.len());
        for old in &self.clients {
            match fresh.clients.iter().position(|c| c.name == old.name) {
                Some(i) => {
                    let client = fresh.clients.swap_remove(i);
                    if let (Some(new), Some(old)) = (&client.limiter, &old.limiter) {
                        new.carry_over(old);
                    }
                    clients.push(client);
                }
                None => clients.push(Client {
                    name: old.name.clone(),
                    key_sha256: old.key_sha256,
                    scopes: Scopes::NONE,
                    limiter: None,
                    class: old.class,
                    removed: true,
                }),
            }
        }
        if let Some(new) = fresh.clients.first() {
            return Err(keys_error(format!(
                "client {:?} was not in the file at start; adding a client needs a restart \
                 (the file was not reloaded)",
                new.name
            )));
        }
        Ok(KeyStore {
            clients,
            demo: false,
            generation: self.generation + 1,
        })
    }

    /// 0 at start, one more for each reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this is the demo key store.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// Client names by [`ClientId`]: `["anonymous", first, second, ...]`.
    pub fn client_names(&self) -> Vec<String> {
        std::iter::once("anonymous".to_string())
            .chain(self.clients.iter().map(|c| c.name.clone()))
            .collect()
    }

    /// The client of a [`ClientId`] (`None` for 0, anonymous).
    pub fn client(&self, id: ClientId) -> Option<&Client> {
        let client = self.clients.get(usize::from(id).checked_sub(1)?)?;
        (!client.removed).then_some(client)
    }

    /// The class of a client (interactive for anonymous and removed ones).
    pub fn class(&self, id: ClientId) -> Class {
        self.client(id).map_or(Class::Interactive, |c| c.class)
    }

    /// The client whose key is in this `Authorization` header value
    /// (`Bearer <key>`), compared in constant time with every client's hash.
    pub fn authenticate(&self, authorization: &[u8]) -> Option<ClientId> {
        let key = strip_bearer(authorization)?;
        let digest: [u8; 32] = Sha256::digest(key).into();
        let mut found = 0u16;
        for (i, client) in self.clients.iter().enumerate() {
            let id = (i + 1) as u16;
            let present = subtle::Choice::from(u8::from(!client.removed));
            found.conditional_assign(&id, client.key_sha256.ct_eq(&digest) & present);
        }
        (found != 0).then_some(found)
    }
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let key = rest.trim_ascii();
    (!key.is_empty()).then_some(key)
}

/// How long a client over its rate should wait, in whole seconds (at least
/// 1), for `Retry-After`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_every_named_scope_and_names_are_distinct_bits() {
        let mut union = Scopes::NONE;
        for (_, s) in Scopes::NAMES {
            assert_eq!(s.0.count_ones(), 1);
            assert!(!union.any(s));
            union = union.union(s);
        }
        assert_eq!(union, Scopes::ALL);
        assert_eq!(Scopes::parse("statistics:read"), Some(Scopes::STATISTICS));
    }

    fn file(extra: &str) -> String {
        format!(
            r#"
[[client]]
name = "bank"
key_sha256 = "{}"
scopes = ["citizen:read:basic", "citizen:verify"]
rate_limit_per_s = 5
{extra}

[[client]]
name = "ops"
key_sha256 = "{}"
scopes = ["admin"]
"#,
            hash_key("bank-key"),
            hash_key("ops-key")
        )
    }

    #[test]
    fn authenticates_by_hash() {
        let keys = KeyStore::parse(&file("")).unwrap();
        assert_eq!(keys.authenticate(b"Bearer bank-key"), Some(1));
        assert_eq!(keys.authenticate(b"bearer   ops-key "), Some(2));
        assert_eq!(keys.authenticate(b"Bearer bank-ke"), None);
        assert_eq!(keys.authenticate(b"Basic bank-key"), None);
        assert_eq!(keys.authenticate(b"Bearer "), None);
        assert_eq!(keys.authenticate(b""), None);
        let bank = keys.client(1).unwrap();
        assert!(bank.scopes.any(Scopes::VERIFY));
        assert!(!bank.scopes.any(Scopes::READ));
        assert!(bank.limiter.is_some());
        assert!(keys.client(2).unwrap().limiter.is_none());
        assert_eq!(keys.class(1), Class::Interactive);
        let bulk = KeyStore::parse(&file("class = \"bulk\"")).unwrap();
        assert_eq!(bulk.class(1), Class::Bulk);
        assert_eq!(bulk.class(2), Class::Interactive);
        assert!(KeyStore::parse(&file("class = \"urgent\"")).is_err());
        assert!(keys.client(0).is_none());
        assert_eq!(keys.client_names(), ["anonymous", "bank", "ops"]);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(KeyStore::parse("").is_err());
        assert!(KeyStore::parse(&file("").replace("admin", "root")).is_err());
        assert!(KeyStore::parse(&file("").replace("\"ops\"", "\"bank\"")).is_err());
        assert!(KeyStore::parse(&file("colour = 1")).is_err());
        assert!(KeyStore::parse(&file("").replace(&hash_key("ops-key"), "abc")).is_err());
    }

    #[test]
    fn reloads_keep_client_numbers_and_revoke_removed_clients() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, file("")).unwrap();
        let keys = KeyStore::load(&path).unwrap();
        // `bank` removed, `ops` rekeyed.
        let ops_only = format!(
            "[[client]]\nname = \"ops\"\nkey_sha256 = \"{}\"\nscopes = [\"admin\"]\n",
            hash_key("new-ops-key")
        );
        std::fs::write(&path, &ops_only).unwrap();
        let reloaded = keys.reloaded(&path).unwrap();
        assert_eq!(reloaded.generation(), 1);
        assert_eq!(reloaded.authenticate(b"Bearer bank-key"), None);
        assert_eq!(reloaded.authenticate(b"Bearer ops-key"), None);
        assert_eq!(reloaded.authenticate(b"Bearer new-ops-key"), Some(2));
        assert!(reloaded.client(1).is_none());
        assert_eq!(reloaded.client_names(), keys.client_names());
        // A new name needs a restart.
        std::fs::write(&path, ops_only.replace("\"ops\"", "\"newcomer\"")).unwrap();
        assert!(reloaded.reloaded(&path).is_err());
    }

    #[test]
    fn demo_key_has_every_scope() {
        let keys = KeyStore::demo();
        let id = keys
            .authenticate(format!("Bearer {DEMO_KEY}").as_bytes())
            .unwrap();
        assert_eq!(keys.client(id).unwrap().scopes, Scopes::ALL);
        assert_eq!(
            hash_key("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
