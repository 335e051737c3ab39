//! The served snapshot and its hot swap.
//!
//! Requests `load` the current [`ServedSnapshot`] (a few atomic operations,
//! no lock) and keep it for as long as they run; a reload opens and verifies
//! the newest snapshot off the request path and swaps the pointer. A request
//! that started on the old snapshot finishes on it, and the old mapping is
//! unmapped when the last such request drops it.
//!
//! **Which snapshot is "newest"**: among the configured `--snapshot` file and
//! every `*.snap` file in its directory, the one with the highest generation
//! number in its header (ties go to the configured path, then to the most
//! recently modified file). A reload swaps it in when its generation is
//! higher than the served one's, or when it is the same generation but a
//! different file (e.g. a rebuild renamed over the configured path). Files
//! that do not open are skipped. A reload never goes back to an older
//! generation.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use dancu_engine::{Memory, Snapshot};
use parking_lot::Mutex;
use serde::Serialize;

use crate::statistics::Census;
use crate::Error;

/// A snapshot being served, with what is precomputed about it.
pub struct ServedSnapshot {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Its file.
    pub path: PathBuf,
    /// Generation number.
    pub generation: u64,
    /// Record count.
    pub records: u64,
    /// The `GET /v1/snapshot` body.
    pub info_json: Bytes,
    /// The population table of this generation, made by the first
    /// statistics request of each day (see [`crate::statistics`]).
    pub census: Mutex<Option<Arc<Census>>>,
    file_key: (u64, u64),
}

impl std::fmt::Debug for ServedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedSnapshot")
            .field("path", &self.path)
            .field("generation", &self.generation)
            .field("records", &self.records)
            .finish()
    }
}

/// The `GET /v1/snapshot` body: the file's name, never its directory (which
/// says how the server's disks are laid out to every client).
#[derive(Serialize)]
struct InfoBody<'a> {
    #[serde(flatten)]
    info: &'a dancu_engine::SnapshotInfo,
    file: &'a str,
    verified: bool,
}

fn file_name(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name().unwrap_or_default().to_string_lossy()
}

impl ServedSnapshot {
    /// Opens `path` (header and section table only; see
    /// [`Snapshot::open_file`]). `verified` is what `/v1/snapshot` reports.
    pub fn open(path: &Path, memory: Memory, verified: bool) -> Result<ServedSnapshot, Error> {
        let engine = |source| Error::Snapshot {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let snapshot = Snapshot::open_file(path, memory).map_err(engine)?;
        if memory != Memory::Map {
            // The pages were just read in, so checking that the text heap
            // is UTF-8 (a twentieth of the file) costs little, and every
            // string a request reads is then sliced instead of validated,
            // with or without `--no-verify`. A heap that is not UTF-8 is
            // served as before: each string checked as it is read.
            let _ = snapshot.check_text_heap();
        }
        let info = snapshot.info();
        let info_json = serde_json::to_vec(&InfoBody {
            info: &info,
            file: &file_name(path),
            verified,
        })
        .expect("snapshot info serializes");
        Ok(ServedSnapshot {
            generation: info.generation,
            records: info.record_count,
            snapshot,
            path: path.to_path_buf(),
            info_json: Bytes::from(info_json),
            census: Mutex::new(None),
            file_key: (meta.dev(), meta.ino()),
        })
    }

    /// Checks every section checksum.
    pub fn verify(mut self) -> Result<ServedSnapshot, Error> {
        self.snapshot.verify().map_err(|source| Error::Snapshot {
            path: self.path.clone(),
            source,
        })?;
        let info = self.snapshot.info();
        self.info_json = Bytes::from(
            serde_json::to_vec(&InfoBody {
                info: &info,
                file: &file_name(&self.path),
                verified: true,
            })
            .expect("snapshot info serializes"),
        );
        Ok(self)
    }
}

/// What a reload did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Whether a new snapshot was swapped in.
    pub reloaded: bool,
    /// Generation served now.
    pub generation: u64,
    /// Generation served before.
    pub previous_generation: u64,
    /// File served now.
    pub path: PathBuf,
    /// Records served now.
    pub records: u64,
    /// Milliseconds spent opening and verifying.
    pub elapsed_ms: u64,
}

/// The slot that holds the served snapshot and swaps in newer ones; see the
/// module docs.
pub struct SnapshotSwap {
    current: ArcSwapOption<ServedSnapshot>,
    source: PathBuf,
    memory: Memory,
    verify: bool,
    reload_lock: Mutex<()>,
    reloads: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for SnapshotSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSwap")
            .field("source", &self.source)
            .finish()
    }
}

impl SnapshotSwap {
    /// An empty slot for snapshots at `source` (and its directory).
    pub fn new(source: PathBuf, memory: Memory, verify: bool) -> SnapshotSwap {
        SnapshotSwap {
            current: ArcSwapOption::empty(),
            source,
            memory,
            verify,
            reload_lock: Mutex::new(()),
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The served snapshot, if one is ready. Cheap; keep the guard only for
    /// the duration of one request (never across an `.await`).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<ServedSnapshot>>> {
        self.current.load()
    }

    /// The served snapshot as an owned `Arc`.
    pub fn current(&self) -> Option<Arc<ServedSnapshot>> {
        self.current.load_full()
    }

    /// Serves `served` from now on, unless a snapshot of the same or a
    /// newer generation is served already (a reload got there first, e.g.
    /// while the start-up snapshot was being verified): a generation never
    /// goes backwards. Waits for a reload in progress. Whether it was
    /// installed.
    pub fn install_if_newer(&self, served: ServedSnapshot) -> bool {
        let _one_at_a_time = self.reload_lock.lock();
        let current = self.current.load();
        if current
            .as_ref()
            .is_some_and(|c| c.generation >= served.generation)
        {
            return false;
        }
        self.current.store(Some(Arc::new(served)));
        true
    }

    /// (successful reloads, failed reloads).
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Finds the newest snapshot and swaps it in (blocking: opens and
    /// verifies a file). Reloads are serialized.
    pub fn reload(&self) -> Result<ReloadOutcome, Error> {
        let _one_at_a_time = self.reload_lock.lock();
        let started = Instant::now();
        let result = self.reload_locked(started);
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn reload_locked(&self, started: Instant) -> Result<ReloadOutcome, Error> {
        let current = self.current.load_full();
        let (newest, generation, key) = newest_snapshot(&self.source)?;
        let previous_generation = current.as_ref().map_or(0, |c| c.generation);
        let unchanged = current.as_ref().is_some_and(|c| {
            generation < c.generation || (generation == c.generation && key == c.file_key)
        });
        if unchanged {
            let c = current.expect("unchanged implies a current snapshot");
            return Ok(ReloadOutcome {
                reloaded: false,
                generation: c.generation,
                previous_generation,
                path: c.path.clone(),
                records: c.records,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
        let mut served = ServedSnapshot::open(&newest, self.memory, false)?;
        if self.verify {
            served = served.verify()?;
        }
        let outcome = ReloadOutcome {
            reloaded: true,
            generation: served.generation,
            previous_generation,
            path: served.path.clone(),
            records: served.records,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        // Under the reload lock, and only a newer generation or another
        // file of the same one (checked above): never backwards.
        self.current.store(Some(Arc::new(served)));
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(outcome)
    }
}

/// The newest snapshot for `source` (see the module docs): its path,
/// generation and file identity.
pub fn newest_snapshot(source: &Path) -> Result<(PathBuf, u64, (u64, u64)), Error> {
    let dir = match source.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut candidates = vec![source.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "snap")
                && path.file_name() != source.file_name()
            {
                candidates.push(path);
            }
        }
    }
    // (generation, is the configured path, modified): the greatest wins.
    type Rank = (u64, bool, std::time::SystemTime);
    let mut best: Option<(Rank, PathBuf, (u64, u64))> = None;
    let mut first_error = None;
    for path in candidates {
        let opened = std::fs::metadata(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })
            .and_then(|meta| {
                let snapshot =
                    Snapshot::open_file(&path, Memory::Map).map_err(|source| Error::Snapshot {
                        path: path.clone(),
                        source,
                    })?;
                Ok((snapshot.generation(), meta))
            });
        let (generation, meta) = match opened {
            Ok(x) => x,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let is_source = path == source;
        let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let rank = (generation, is_source, modified);
        if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
            best = Some((rank, path, (meta.dev(), meta.ino())));
        }
    }
    match best {
        Some(((generation, _, _), path, key)) => Ok((path, generation, key)),
        None => Err(first_error.unwrap_or_else(|| Error::Io {
            path: source.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })),
    }
}
