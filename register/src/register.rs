//! The register: the write path (validation, ID allocation, idempotency,
//! sequence numbers, the log) and the overlay readers consult.
//!
//! A change is numbered and queued under one lock, so the log's order is the
//! order in which changes were decided. It becomes visible to readers only
//! when the log thread has made it durable: until then it waits in
//! `pending`, where later changes to the same citizen find it. A writer is
//! answered ([`Register::durable`]) once the overlay holds its change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dancu_engine::{Modality, OwnedRecord, PersonalId, Snapshot};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::change::{invalid, modality_bit, ChangeRequest, LoggedChange, Provenance};
use crate::decide::{seed, Reader};
use crate::error::{Error, Rejection, Result};
use crate::idempotency::IdempotencyKeys;
use crate::log::{ChangeLog, Durable, Recovery};
use crate::overlay::{Entry, Overlay};

/// How far the log has come.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every change up to this sequence number is durable and visible.
    pub applied: u64,
    /// Why the log stopped taking writes, if it did.
    pub failed: Option<Arc<str>>,
}

/// A change the register took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The subject (for a registration: the new ID).
    pub id: PersonalId,
    /// The change's sequence number.
    pub sequence: u64,
    /// Whether this answers a retry of an earlier request (same
    /// idempotency key and body): nothing new was written.
    pub replayed: bool,
}

/// What a compaction folds into the next generation.
#[derive(Debug)]
pub struct Fold {
    /// The last sequence number folded.
    pub folded: u64,
    /// The newest version of every citizen changed in the fold.
    pub changes: Vec<Arc<Entry>>,
    /// The time of the last change folded (the new snapshot's build time).
    pub last_change_time: Option<i64>,
}

/// A change as the feed and audit show it.
#[derive(Debug)]
pub struct FeedItem {
    /// Its sequence number.
    pub sequence: u64,
    /// The change.
    pub change: LoggedChange,
}

/// What the write lock guards.
struct WriteState {
    next_sequence: u64,
    /// Changes queued in the log, not yet durable, by citizen.
    pending: HashMap<u64, Arc<Entry>>,
    /// `(client, key)` → the change that answered it.
    idempotency: IdempotencyKeys,
    rng: u64,
}

/// How far the log has come, for async waiters (a watch channel) and for
/// threads outside a runtime (a condition variable).
struct ProgressCell {
    watch: watch::Sender<Progress>,
    blocking: Mutex<Progress>,
    changed: parking_lot::Condvar,
}

impl ProgressCell {
    fn new() -> ProgressCell {
        ProgressCell {
            watch: watch::Sender::new(Progress::default()),
            blocking: Mutex::new(Progress::default()),
            changed: parking_lot::Condvar::new(),
        }
    }

    fn update(&self, f: impl Fn(&mut Progress)) {
        self.watch.send_modify(&f);
        f(&mut self.blocking.lock());
        self.changed.notify_all();
    }

    fn get(&self) -> Progress {
        self.watch.borrow().clone()
    }
}

/// Hands durable changes to the overlay (runs on the log thread).
struct Publisher {
    overlay: Arc<Overlay>,
    write: Arc<Mutex<WriteState>>,
    progress: Arc<ProgressCell>,
}

impl Publisher {
    fn forget_pending(&self, batch: &[(u64, Arc<Entry>)]) -> Option<u64> {
        let mut w = self.write.lock();
        for (sequence, entry) in batch {
            let id = entry.record.view().raw_id();
            if w.pending.get(&id).map(|e| e.sequence) == Some(*sequence) {
                w.pending.remove(&id);
            }
        }
        batch.last().map(|(s, _)| *s)
    }
}

impl Durable<Arc<Entry>> for Publisher {
    fn durable(&self, batch: Vec<(u64, Arc<Entry>)>) {
        for (_, entry) in &batch {
            self.overlay.insert(entry.clone());
        }
        if let Some(last) = self.forget_pending(&batch) {
            self.progress.update(|p| p.applied = last);
        }
    }

    fn failed(&self, error: &str, batch: Vec<(u64, Arc<Entry>)>) {
        self.forget_pending(&batch);
        let mut w = self.write.lock();
        let failed: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        w.idempotency.forget_sequences(&failed);
        drop(w);
        let error: Arc<str> = error.into();
        self.progress.update(|p| p.failed = Some(error.clone()));
    }
}

/// The live register on one machine. See the module docs.
pub struct Register {
    overlay: Arc<Overlay>,
    write: Arc<Mutex<WriteState>>,
    progress: Arc<ProgressCell>,
    log: ChangeLog<Arc<Entry>>,
    log_dir: PathBuf,
    recovery: Recovery,
}

impl Register {
    /// Opens the change log in `log_dir` beside `snapshot`: replays every
    /// change after the snapshot's folded sequence into the overlay.
    pub fn open<D: AsRef<[u8]>>(snapshot: &Snapshot<D>, log_dir: &Path) -> Result<Register> {
        let overlay = Arc::new(Overlay::default());
        let mut idempotency = IdempotencyKeys::load(log_dir)?;
        let folded = snapshot.folded_sequence();
        let write = Arc::new(Mutex::new(WriteState {
            next_sequence: 0,
            pending: HashMap::new(),
            idempotency: IdempotencyKeys::default(),
            rng: seed(),
        }));
        let progress = Arc::new(ProgressCell::new());
        let publisher = Publisher {
            overlay: overlay.clone(),
            write: write.clone(),
            progress: progress.clone(),
        };
        let replay_into = overlay.clone();
        let (log, recovery) = ChangeLog::open(
            log_dir,
            folded,
            |sequence, payload| {
                let change = LoggedChange::from_bytes(payload)?;
                let entry = entry_of(sequence, &change)?;
                idempotency.remember(&change, sequence);
                replay_into.insert(Arc::new(entry));
                Ok(())
            },
            publisher,
        )?;
        let last = recovery.last_sequence.max(folded);
        {
            let mut w = write.lock();
            w.next_sequence = last + 1;
            w.idempotency = idempotency;
        }
        progress.update(|p| p.applied = last);
        Ok(Register {
            overlay,
            write,
            progress,
            log,
            log_dir: log_dir.to_path_buf(),
            recovery,
        })
    }

    /// What opening found (records replayed, a cut tail).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The overlay every read consults.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// How far the log has come.
    pub fn progress(&self) -> Progress {
        self.progress.get()
    }

    /// A receiver that wakes at every durable batch (long-polls wait on it).
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.watch.subscribe()
    }

    /// Bytes of the log's files.
    pub fn log_bytes(&self) -> u64 {
        self.log.bytes()
    }

    /// Decides, numbers and queues one change. The change is not durable
    /// yet: await [`Register::durable`] with the sequence before answering.
    pub fn submit<D: AsRef<[u8]>>(
        &self,
        snapshot: &Snapshot<D>,
        subject: Option<PersonalId>,
        request: ChangeRequest,
        provenance: Provenance,
        now_unix: i64,
    ) -> Result<Accepted> {
        if let Some(e) = &self.progress.get().failed {
            return Err(Error::LogFailed(e.to_string()));
        }
        let digest = request.digest(subject);
        let mut w = self.write.lock();
        if let Some(key) = &provenance.idempotency_key {
            if let Some(r) = w.idempotency.get(&provenance.client, key) {
                if r.digest != digest {
                    return Err(Rejection::IdempotencyMismatch(key.clone()).into());
                }
                return Ok(Accepted {
                    id: PersonalId::from_u64(r.subject).expect("remembered IDs are valid"),
                    sequence: r.sequence,
                    replayed: true,
                });
            }
        }
        let kind = request.kind();
        let (citizen, inherited) = {
            let reader = Reader {
                snapshot,
                overlay: &self.overlay,
                pending: &w.pending,
            };
            let mut rng = w.rng;
            let decided = reader.decide(subject, request, &mut rng, now_unix);
            w.rng = rng;
            decided?
        };
        let mut record =
            OwnedRecord::encode(&citizen).map_err(|e| invalid("record", e.to_string()))?;
        for m in Modality::ALL {
            if inherited & modality_bit(*m) != 0 {
                record.mark_enrolled(*m);
            }
        }
        let sequence = w.next_sequence;
        let change = LoggedChange {
            kind,
            subject: citizen.id.get(),
            time_unix: now_unix,
            client: provenance.client,
            reason: provenance.reason,
            idempotency_key: provenance.idempotency_key,
            request_digest: digest,
            inherited_templates: inherited,
            image: record.to_bytes(),
        };
        let payload = change.to_bytes();
        w.next_sequence += 1;
        w.idempotency.remember(&change, sequence);
        let entry = Arc::new(Entry {
            sequence,
            record,
            inherited_templates: inherited,
        });
        w.pending.insert(citizen.id.get(), entry.clone());
        // Queued under the lock: the log's order is the order of decisions.
        self.log.append(sequence, &payload, entry);
        Ok(Accepted {
            id: citizen.id,
            sequence,
            replayed: false,
        })
    }

    /// Applies a change another register decided (a follower replaying its
    /// primary's feed): the same payload under the same sequence number goes
    /// to this register's own log, so that a restart replays it from there
    /// and the follower's log, fold and compaction match the primary's.
    /// Returns false for a change already applied (a repeated poll); a
    /// sequence that skips ahead is refused ([`Error::OutOfOrder`]). Like
    /// [`Register::submit`], the change is visible once durable.
    pub fn apply_replicated(&self, sequence: u64, payload: &[u8]) -> Result<bool> {
        if let Some(e) = &self.progress.get().failed {
            return Err(Error::LogFailed(e.to_string()));
        }
        let change = LoggedChange::from_bytes(payload)?;
        let entry = Arc::new(entry_of(sequence, &change)?);
        let mut w = self.write.lock();
        if sequence < w.next_sequence {
            return Ok(false);
        }
        if sequence > w.next_sequence {
            return Err(Error::OutOfOrder {
                expected: w.next_sequence,
                got: sequence,
            });
        }
        w.next_sequence = sequence + 1;
        w.idempotency.remember(&change, sequence);
        w.pending.insert(change.subject, entry.clone());
        self.log.append(sequence, payload, entry);
        Ok(true)
    }

    /// Waits until change `sequence` is durable and visible.
    pub async fn durable(&self, sequence: u64) -> Result<()> {
        let mut rx = self.progress.watch.subscribe();
        let progress = rx
            .wait_for(|p| p.applied >= sequence || p.failed.is_some())
            .await
            .map_err(|_| Error::LogFailed("the register is closing".into()))?;
        if progress.applied >= sequence {
            Ok(())
        } else {
            Err(Error::LogFailed(
                progress.failed.as_deref().unwrap_or("").to_string(),
            ))
        }
    }

    /// The same wait, for threads outside an async runtime.
    pub fn durable_blocking(&self, sequence: u64) -> Result<()> {
        let mut progress = self.progress.blocking.lock();
        loop {
            if progress.applied >= sequence {
                return Ok(());
            }
            if let Some(e) = &progress.failed {
                return Err(Error::LogFailed(e.to_string()));
            }
            self.progress.changed.wait(&mut progress);
        }
    }

    /// Up to `limit` durable changes after `after`; `None` if change
    /// `after + 1` was folded into a snapshot and trimmed from the log.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<Option<Vec<FeedItem>>> {
        let until = self.progress.get().applied;
        // A caller at (or, with a made-up number, past) the head gets nothing
        // without a read: the log counts from `after + 1`, which
        // `after = u64::MAX` would overflow.
        if after >= until {
            return Ok(Some(Vec::new()));
        }
        let Some(records) = self.log.read_after(after, until, limit)? else {
            return Ok(None);
        };
        records
            .into_iter()
            .map(|(sequence, payload)| {
                Ok(FeedItem {
                    sequence,
                    change: LoggedChange::from_bytes(&payload)?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The first sequence number the log still holds.
    pub fn first_logged_sequence(&self) -> u64 {
        self.log.first_sequence()
    }

    /// Starts a compaction of the snapshot whose folded sequence is
    /// `base_folded`: ends the log segment after the last numbered change
    /// and returns what the next generation folds, read back from the log.
    pub fn begin_compaction(&self, base_folded: u64) -> Result<Fold> {
        let (folded, rotated) = {
            let w = self.write.lock();
            let folded = w.next_sequence - 1;
            (folded, self.log.rotate_async(folded + 1))
        };
        rotated
            .recv()
            .map_err(|_| Error::LogFailed("the log thread has stopped".into()))??;
        self.durable_blocking(folded)?;
        self.fold(base_folded, folded)
    }

    /// The changes with sequence numbers in `after + 1 ..= until`, read
    /// from the log (not the overlay, which may already hold newer ones):
    /// the newest after-image of each citizen. The same log gives the same
    /// fold on every machine, so compactions are deterministic.
    pub fn fold(&self, after: u64, until: u64) -> Result<Fold> {
        let mut latest: HashMap<u64, Arc<Entry>> = HashMap::new();
        let mut last_change_time = None;
        let mut next = after;
        while next < until {
            let Some(chunk) = self.log.read_after(next, until, 65_536)? else {
                return Err(Error::Gap {
                    log_first: self.log.first_sequence(),
                    folded: after,
                    missing: format!("{}..{}", next + 1, self.log.first_sequence() - 1),
                });
            };
            let Some((last, _)) = chunk.last() else { break };
            next = *last;
            for (sequence, payload) in chunk {
                let change = LoggedChange::from_bytes(&payload)?;
                last_change_time = Some(change.time_unix);
                latest.insert(change.subject, Arc::new(entry_of(sequence, &change)?));
            }
        }
        Ok(Fold {
            folded: until,
            changes: latest.into_values().collect(),
            last_change_time,
        })
    }

    /// Ends a compaction once the snapshot folding `folded` is served and no
    /// reader uses the one before: drops what it holds from the overlay and
    /// the log. Returns (entries dropped, segments deleted).
    pub fn end_compaction(&self, folded: u64) -> Result<(usize, u64)> {
        // The keys of the folded changes outlive their log records.
        self.write
            .lock()
            .idempotency
            .prune_and_save(&self.log_dir, folded)?;
        let dropped = self.overlay.prune(folded);
        let deleted = self.log.trim(folded)?;
        Ok((dropped, deleted))
    }
}

/// The overlay entry a logged change leaves.
pub(crate) fn entry_of(sequence: u64, change: &LoggedChange) -> Result<Entry> {
    let record = OwnedRecord::from_bytes(&change.image)
        .ok_or_else(|| Error::LogFailed(format!("change {sequence} holds a malformed record")))?;
    Ok(Entry {
        sequence,
        record,
        inherited_templates: change.inherited_templates,
    })
}
