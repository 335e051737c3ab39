//! Idempotency keys: which change answered a client's `Idempotency-Key`,
//! kept for [`RETENTION_S`] after that change, across restarts and
//! compactions.
//!
//! Every logged change carries its key, so replaying the log restores the
//! keys of the changes still in it. A compaction trims the changes it folds;
//! before it does, their keys are saved to [`KEYS_FILE`] in the log
//! directory, which opening reads before the log. The file is one rkyv
//! archive behind a magic, a length and an xxh3 checksum, replaced whole
//! (written beside, synced, renamed, directory synced), so it is either the
//! old or the new set, never half of one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::change::LoggedChange;
use crate::error::{Error, Result};

/// How long a key is remembered, counted back from the newest change the
/// register has seen (not the wall clock, so replay and tests agree):
/// seven days, longer than any gateway retries.
pub const RETENTION_S: i64 = 7 * 86_400;

/// The saved keys' file name in the log directory.
pub const KEYS_FILE: &str = "idempotency.keys";

const MAGIC: [u8; 8] = *b"DANCUIK1";

/// The change that answered one key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remembered {
    /// [`crate::ChangeRequest::digest`] of the request.
    pub(crate) digest: u64,
    pub(crate) sequence: u64,
    pub(crate) subject: u64,
    pub(crate) time_unix: i64,
}

/// One saved key, as archived.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SavedKey {
    client: String,
    key: String,
    digest: u64,
    sequence: u64,
    subject: u64,
    time_unix: i64,
}

/// `(client, key)` → the change that answered it.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyKeys {
    keys: HashMap<(String, String), Remembered>,
    newest_time: i64,
}

impl IdempotencyKeys {
    /// The keys saved in `dir` by the last compaction (none if it never
    /// saved any).
    pub(crate) fn load(dir: &Path) -> Result<IdempotencyKeys> {
        let path = dir.join(KEYS_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(&path)(e)),
        };
        let damaged = |why: &str| Error::LogFailed(format!("{} is damaged: {why}", path.display()));
        if bytes.len() < 24 || bytes[..8] != MAGIC {
            return Err(damaged("not an idempotency-key file"));
        }
        let length = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let checksum = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let payload = &bytes[24..];
        if payload.len() as u64 != length || xxhash_rust::xxh3::xxh3_64(payload) != checksum {
            return Err(damaged("length or checksum does not match"));
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        let saved = rkyv::from_bytes::<Vec<SavedKey>, rkyv::rancor::Error>(&aligned)
            .map_err(|e| damaged(&e.to_string()))?;
        let mut keys = Self::default();
        for k in saved {
            keys.insert(
                (k.client, k.key),
                Remembered {
                    digest: k.digest,
                    sequence: k.sequence,
                    subject: k.subject,
                    time_unix: k.time_unix,
                },
            );
        }
        Ok(keys)
    }

    /// The change that answered `key` of `client`.
    pub(crate) fn get(&self, client: &str, key: &str) -> Option<Remembered> {
        // One lookup per keyed write: the tuple of owned strings is cheaper
        // to build than a borrowed-key map is to write.
        self.keys.get(&(client.to_owned(), key.to_owned())).copied()
    }

    /// Remembers `change`'s key, if it has one.
    pub(crate) fn remember(&mut self, change: &LoggedChange, sequence: u64) {
        if let Some(key) = &change.idempotency_key {
            self.insert(
                (change.client.clone(), key.clone()),
                Remembered {
                    digest: change.request_digest,
                    sequence,
                    subject: change.subject,
                    time_unix: change.time_unix,
                },
            );
        }
    }

    fn insert(&mut self, key: (String, String), r: Remembered) {
        self.newest_time = self.newest_time.max(r.time_unix);
        self.keys.insert(key, r);
    }

    /// Forgets the keys of changes that never became durable.
    pub(crate) fn forget_sequences(&mut self, failed: &[u64]) {
        self.keys.retain(|_, r| !failed.contains(&r.sequence));
    }

    /// Forgets keys older than the retention, then saves those of changes
    /// up to `folded` (the ones about to leave the log) to `dir`.
    pub(crate) fn prune_and_save(&mut self, dir: &Path, folded: u64) -> Result<usize> {
        let oldest = self.newest_time.saturating_sub(RETENTION_S);
        self.keys.retain(|_, r| r.time_unix >= oldest);
        let mut saved: Vec<SavedKey> = self
            .keys
            .iter()
            .filter(|(_, r)| r.sequence <= folded)
            .map(|((client, key), r)| SavedKey {
                client: client.clone(),
                key: key.clone(),
                digest: r.digest,
                sequence: r.sequence,
                subject: r.subject,
                time_unix: r.time_unix,
            })
            .collect();
        saved.sort_unstable_by_key(|k| k.sequence);
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&saved)
            .expect("serializing to memory cannot fail");
        let path = dir.join(KEYS_FILE);
        let tmp = dir.join(format!("{KEYS_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&MAGIC)?;
            f.write_all(&(payload.len() as u64).to_le_bytes())?;
            f.write_all(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes())?;
            f.write_all(&payload)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(Error::io(&path))?;
        Ok(saved.len())
    }
}
