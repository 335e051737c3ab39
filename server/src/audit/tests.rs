//! Unit tests of the audit log: chain, torn tail, rotation, index, failures.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dancu_engine::FieldSet;

use super::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// Waits for a ticket of `log`.
fn durable(log: &AuditLog, ticket: Durable) -> Result<(), AuditError> {
    block_on(log.wait(ticket))
}

fn entry(subject: u64, operation: Operation, outcome: Outcome) -> Entry {
    Entry {
        source: Some("10.1.2.3".parse().unwrap()),
        request_id: 0xabc,
        fields: FieldSet::BASIC,
        ..Entry::new(1_710_408_413_000_042, 1, operation, subject, outcome)
    }
}

fn names() -> Vec<String> {
    vec!["anonymous".into(), "bank \"A\"".into()]
}

fn options(durability: Durability) -> AuditOptions {
    // The entries carry a 2024 time: daily rotation would rotate at once.
    AuditOptions {
        durability,
        rotation: Rotation {
            daily: false,
            ..Rotation::default()
        },
        ..AuditOptions::default()
    }
}

/// [`options`] rotating every `max_bytes` (and never by day).
fn rotating(durability: Durability, max_bytes: u64) -> AuditOptions {
    AuditOptions {
        rotation: Rotation {
            max_bytes,
            daily: false,
        },
        ..options(durability)
    }
}

fn lines(path: &Path) -> Vec<String> {
    // An open log's file ends in preallocated zeros.
    std::fs::read_to_string(path)
        .unwrap()
        .trim_end_matches('\0')
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn time_of_an_instant_is_wall_clock_time() {
    anchor_wall_clock();
    let before = now_us();
    let t = time_of(Instant::now());
    let after = now_us();
    assert!(
        before <= t + 1000 && t <= after + 1000,
        "{before} {t} {after}"
    );
}

#[test]
fn durable_appends_resolve_after_their_fsync_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.audit");
    let log = AuditLog::open(&path, options(Durability::Durable), names()).unwrap();
    let e = entry(79_089_012_345, Operation::Get, Outcome::Found);
    let ticket = log.append(&[e]).unwrap();
    assert!(!ticket.is_ready());
    durable(&log, ticket).unwrap();
    assert!(log.stats().syncs >= 1, "answered before any fsync");
    // Durable means on disk before the ticket resolves: the line is there
    // without closing the log.
    assert_eq!(lines(&path).len(), 1);
    let batch = [
        entry(79_089_012_345, Operation::BatchGet, Outcome::Found),
        entry(1_089_000_007, Operation::BatchGet, Outcome::NotFound),
    ];
    durable(&log, log.append(&batch).unwrap()).unwrap();
    log.append_one(Entry {
        legacy_id: 12_345,
        subject: 0,
        ..entry(0, Operation::Legacy, Outcome::NotFound)
    })
    .map(|t| durable(&log, t))
    .unwrap()
    .unwrap();
    log.close().unwrap();
    assert_eq!(log.append(&[e]).unwrap_err(), AuditError::Closed);
    let text = lines(&path);
    assert_eq!(text.len(), 3);
    assert!(text[0].starts_with(&format!("{{\"seq\":1,\"prev\":\"{}\",", "0".repeat(64))));
    assert!(
        text[0].ends_with(r#""time":"2024-03-14T09:26:53.000042Z","client":"bank \"A\"","operation":"get","source":"10.1.2.3","request":"0000000000000abc","fields":["id","full_name","date_of_birth","sex","nationality"],"subject":"079089012345","legacy_id":null,"outcome":"found"}"#),
        "{}",
        text[0]
    );
    assert!(text[1].contains(r#""found":["079089012345"],"not_found":["001089000007"]}"#));
    let report = verify(&[&path]).unwrap();
    assert_eq!(report.broken, None);
    assert_eq!((report.lines, report.last_seq), (3, Some(3)));
    let mut seen = Vec::new();
    let (n, bad) = query(&path, "079089012345", |l| seen.push(l.clone())).unwrap();
    assert_eq!((n, bad), (2, 0));
    assert_eq!(seen[1].operation, "batch_get");
    assert_eq!(seen[0].source.as_deref(), Some("10.1.2.3"));
    assert_eq!(query(&path, "000012345", |_| {}).unwrap().0, 1);
    assert_eq!(query(&path, "001089000007", |_| {}).unwrap().0, 1);
}

#[test]
fn query_reads_bulk_match_lines_whose_rows_had_no_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.audit");
    let log = AuditLog::open(&path, options(Durability::Durable), names()).unwrap();
    // A match row without an ID is audited with no subject: `null`.
    let batch = [
        entry(0, Operation::Match, Outcome::NotFound),
        entry(79_089_012_345, Operation::Match, Outcome::Found),
        entry(0, Operation::Match, Outcome::NotFound),
    ];
    durable(&log, log.append(&batch).unwrap()).unwrap();
    log.close().unwrap();
    assert!(lines(&path)[0].contains(r#""not_found":[null,null]"#));
    let (n, bad) = query(&path, "079089012345", |l| {
        assert_eq!(
            (l.operation.as_str(), l.outcome.as_str()),
            ("match", "found")
        );
    })
    .unwrap();
    assert_eq!((n, bad), (1, 0), "the line is read, not skipped");
}

#[test]
fn buffered_tickets_are_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.audit");
    let log = AuditLog::open(&path, options(Durability::Buffered), names()).unwrap();
    let t = log
        .append(&[entry(1, Operation::Get, Outcome::Found)])
        .unwrap();
    assert!(t.is_ready());
    log.close().unwrap();
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn a_full_queue_refuses_the_whole_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.audit");
    let opts = AuditOptions {
        capacity: 10,
        ..options(Durability::Buffered)
    };
    let log = AuditLog::open(&path, opts, names()).unwrap();
    let items = vec![entry(1, Operation::BatchGet, Outcome::Found); 11];
    assert_eq!(log.append(&items).unwrap_err(), AuditError::Backlogged);
    assert_eq!(log.stats().refused, 1);
}

#[test]
fn tampering_breaks_the_chain_at_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.audit");
    let log = AuditLog::open(&path, options(Durability::Buffered), names()).unwrap();
    for s in 1..=5 {
        assert!(log
            .append(&[entry(s, Operation::Get, Outcome::Found)])
            .unwrap()
            .is_ready());
    }
    log.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let forged = text.replacen(
        "\"subject\":\"000000000003\"",
        "\"subject\":\"000000000009\"",
        1,
    );
    std::fs::write(&path, &forged).unwrap();
    let broken = verify(&[&path]).unwrap().broken.unwrap();
    assert_eq!(broken.line, 4, "{broken:?}");
    // Dropping a line breaks the numbering.
    let dropped: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("000000000002"))
        .collect();
    std::fs::write(&path, dropped.join("\n") + "\n").unwrap();
    let broken = verify(&[&path]).unwrap().broken.unwrap();
    assert_eq!(broken.line, 2);
    assert!(
        broken.reason.contains("sequence number 3"),
        "{}",
        broken.reason
    );
}

#[test]
fn a_torn_tail_is_cut_on_open_and_the_cut_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.audit");
    let log = AuditLog::open(&path, options(Durability::Durable), names()).unwrap();
    for s in 1..=3 {
        durable(
            &log,
            log.append(&[entry(s, Operation::Get, Outcome::Found)])
                .unwrap(),
        )
        .unwrap();
    }
    log.close().unwrap();
    drop(log);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":4,\"prev\":\"ab");
    std::fs::write(&path, &text).unwrap();
    assert!(verify(&[&path])
        .unwrap()
        .broken
        .unwrap()
        .reason
        .contains("torn"));
    let log = AuditLog::open(&path, options(Durability::Durable), names()).unwrap();
    durable(
        &log,
        log.append(&[entry(4, Operation::Get, Outcome::Found)])
            .unwrap(),
    )
    .unwrap();
    log.close().unwrap();
    let text = lines(&path);
    assert_eq!(text.len(), 5);
    assert!(
        text[3].contains(r#""event":"torn_tail_cut""#),
        "{}",
        text[3]
    );
    assert!(text[3].contains("cut 19 bytes"), "{}", text[3]);
    let report = verify(&[&path]).unwrap();
    assert_eq!((report.broken, report.last_seq), (None, Some(5)));
}

#[test]
fn garbage_after_the_last_line_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.audit");
    let log = AuditLog::open(&path, options(Durability::Buffered), names()).unwrap();
    assert!(log
        .append(&[entry(1, Operation::Get, Outcome::Found)])
        .unwrap()
        .is_ready());
    log.close().unwrap();
    drop(log);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0; 100]);
    bytes.push(b'\n');
    bytes.extend_from_slice(&[0; 50]);
    std::fs::write(&path, &bytes).unwrap();
    drop(AuditLog::open(&path, options(Durability::Buffered), names()).unwrap());
    let text = lines(&path);
    assert_eq!(text.len(), 2);
    // The 50 zeros at the very end look like preallocated space: not counted.
    assert!(text[1].contains("cut 101 bytes"), "{}", text[1]);
    assert_eq!(verify(&[&path]).unwrap().broken, None);
}

#[test]
fn rotation_keeps_the_chain_indexes_files_and_makes_them_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.audit");
    let opts = rotating(Durability::Durable, 2000);
    let log = AuditLog::open(&path, opts.clone(), names()).unwrap();
    for s in 0..60u64 {
        let e = entry(100 + s % 7, Operation::Get, Outcome::Found);
        durable(&log, log.append(&[e]).unwrap()).unwrap();
    }
    log.close().unwrap();
    let rotated = index::rotated_files(&path).unwrap();
    assert!(rotated.len() >= 5, "{rotated:?}");
    for file in rotated.iter().chain([&path]) {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    // A close may leave builds pending; an open has them done.
    let log = AuditLog::open(&path, opts.clone(), names()).unwrap();
    wait_until_indexed(&path, 0);
    log.close().unwrap();
    for file in &rotated {
        let idx = index::index_name(file);
        assert!(idx.exists(), "{}", idx.display());
        assert_eq!(
            std::fs::metadata(&idx).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let files = index::log_files(&path).unwrap();
    let report = verify(&files).unwrap();
    assert_eq!((report.broken, report.lines), (None, 60));
    // Every access is found, in order, through the indexes and the scan.
    let mut seqs = Vec::new();
    let (n, bad) = query(&path, "000000000103", |l| seqs.push(l.seq)).unwrap();
    assert_eq!((n, bad), (9, 0)); // s = 3, 10, ..., 59
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // A restart after a rotation continues the chain from the rotated file.
    std::fs::remove_file(&path).unwrap();
    let log = AuditLog::open(&path, opts, names()).unwrap();
    durable(
        &log,
        log.append(&[entry(1, Operation::Get, Outcome::Found)])
            .unwrap(),
    )
    .unwrap();
    log.close().unwrap();
    let report = verify(&index::log_files(&path).unwrap()).unwrap();
    assert_eq!(report.broken, None);
}

/// Storage whose writes or fsyncs fail on demand (a full disk, an EIO).
struct Faulty {
    inner: FileStorage,
    fail_write: Arc<AtomicBool>,
    fail_sync: Arc<AtomicBool>,
}

impl Storage for Faulty {
    fn open(&mut self) -> io::Result<storage::Opened> {
        self.inner.open()
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.fail_write.load(Ordering::Relaxed) {
            // Half the bytes reach the file, as when a disk fills up.
            let _ = self.inner.write_all(&buf[..buf.len() / 2]);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.fail_sync.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.inner.sync()
    }
    fn wants_rotation(&self, now_us: u64) -> bool {
        self.inner.wants_rotation(now_us)
    }
    fn rotate(&mut self, next_seq: u64, now_us: u64) -> io::Result<()> {
        self.inner.rotate(next_seq, now_us)
    }
}

fn faulty_log(path: &Path, durability: Durability) -> (AuditLog, Arc<AtomicBool>, Arc<AtomicBool>) {
    let fail_write = Arc::new(AtomicBool::new(false));
    let fail_sync = Arc::new(AtomicBool::new(false));
    let storage = Faulty {
        inner: FileStorage::new(path, options(durability).rotation),
        fail_write: Arc::clone(&fail_write),
        fail_sync: Arc::clone(&fail_sync),
    };
    let log = AuditLog::with_storage(path, options(durability), names(), storage).unwrap();
    (log, fail_write, fail_sync)
}

#[test]
fn an_fsync_error_fails_closed_until_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eio.audit");
    let (log, _, fail_sync) = faulty_log(&path, Durability::Durable);
    let e = entry(7, Operation::Get, Outcome::Found);
    durable(&log, log.append(&[e]).unwrap()).unwrap();
    fail_sync.store(true, Ordering::Relaxed);
    let err = durable(&log, log.append(&[e]).unwrap()).unwrap_err();
    assert!(
        matches!(&err, AuditError::Failing(cause) if cause.contains("fsync") || cause.contains("I/O")),
        "{err}"
    );
    assert!(err.to_string().contains("audit log is failing"), "{err}");
    // Every later access is refused at once, the failure is visible.
    assert!(matches!(log.append(&[e]), Err(AuditError::Failing(_))));
    let stats = log.stats();
    assert_eq!(stats.failures, 1);
    assert!(stats.failure.unwrap().contains("Input/output error"));
    // Recovery fails while the disk is still broken…
    assert!(log.recover().is_err());
    assert!(log.failure().is_some());
    // …and works once it is fixed.
    fail_sync.store(false, Ordering::Relaxed);
    log.recover().unwrap();
    assert_eq!(log.failure(), None);
    durable(&log, log.append(&[e]).unwrap()).unwrap();
    log.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(r#""event":"recovered""#), "{text}");
    assert_eq!(verify(&[&path]).unwrap().broken, None);
}

#[test]
fn a_write_error_cuts_the_half_line_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enospc.audit");
    let (log, fail_write, _) = faulty_log(&path, Durability::Durable);
    let e = entry(7, Operation::Get, Outcome::Found);
    durable(&log, log.append(&[e]).unwrap()).unwrap();
    fail_write.store(true, Ordering::Relaxed);
    let err = durable(&log, log.append(&[e]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    fail_write.store(false, Ordering::Relaxed);
    log.recover().unwrap();
    durable(&log, log.append(&[e]).unwrap()).unwrap();
    log.close().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(r#""event":"torn_tail_cut""#), "{text}");
    assert_eq!(verify(&[&path]).unwrap().broken, None);
}

#[test]
fn a_crash_at_every_line_boundary_keeps_a_verifiable_prefix() {
    // "Crash" after every byte count: whatever prefix survives, reopening
    // cuts it to whole lines and the chain verifies.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.audit");
    let log = AuditLog::open(&path, options(Durability::Buffered), names()).unwrap();
    for s in 1..=4 {
        assert!(log
            .append(&[entry(s, Operation::Get, Outcome::Found)])
            .unwrap()
            .is_ready());
    }
    log.close().unwrap();
    let full = std::fs::read(&path).unwrap();
    let crash = dir.path().join("crash.audit");
    for len in (0..=full.len()).step_by(37) {
        std::fs::write(&crash, &full[..len]).unwrap();
        drop(AuditLog::open(&crash, options(Durability::Buffered), names()).unwrap());
        let report = verify(&[&crash]).unwrap();
        assert_eq!(report.broken, None, "prefix of {len} bytes");
        let whole = full[..len].iter().filter(|&&b| b == b'\n').count() as u64;
        let torn = u64::from(!(len == 0 || full[len - 1] == b'\n'));
        assert_eq!(report.lines, whole + torn, "prefix of {len} bytes");
    }
}

/// A closed log of `n` gets of subjects `100 + s % 7`, rotated every
/// 2,000 bytes (buffered mode may write them in one commit, so rotate
/// once), then two more in its live file: its rotated files.
fn rotated_log(path: &Path, durability: Durability, n: u64) -> Vec<PathBuf> {
    let opts = rotating(durability, 2000);
    // The second round does not rotate: its lines stay in the live file.
    for (from, to, opts) in [(0, n, opts), (n, n + 2, options(durability))] {
        let log = AuditLog::open(path, opts, names()).unwrap();
        for s in from..to {
            let ticket = log
                .append(&[entry(100 + s % 7, Operation::Get, Outcome::Found)])
                .unwrap();
            durable(&log, ticket).unwrap();
        }
        log.close().unwrap();
    }
    assert!(
        !index::next_name(path).exists(),
        "an unused spare is removed"
    );
    let rotated = index::rotated_files(path).unwrap();
    assert!(!rotated.is_empty());
    rotated
}

fn append_zeros(path: &Path, n: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&vec![0; n]).unwrap();
}

/// The accesses `audit-query` finds for subject 103, by sequence number.
fn seqs_of_103(path: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    let (_, bad) = query(path, "000000000103", |l| seqs.push(l.seq)).unwrap();
    assert_eq!(bad, 0);
    seqs
}

/// Where a crash can leave a rotation (see `rotator`), made from a log
/// that rotated cleanly by undoing the last rotation's steps.
#[derive(Clone, Copy, Debug)]
enum CrashPoint {
    /// The writer switched to the spare: the old file is still the live
    /// one, zeros not cut, the next file holds lines.
    Switched,
    /// The old file is renamed; the next file is not yet the live one.
    OldRenamed,
    /// Before a switch: a spare of zeros beside the live file.
    SpareReady,
    /// A switch whose first commit was torn before its fsync (never
    /// acknowledged): the spare holds part of a line.
    FirstCommitTorn,
}

#[test]
fn a_crash_at_every_step_of_a_rotation_keeps_every_line_and_the_chain() {
    for point in [
        CrashPoint::Switched,
        CrashPoint::OldRenamed,
        CrashPoint::SpareReady,
        CrashPoint::FirstCommitTorn,
    ] {
        for durability in [Durability::Durable, Durability::Buffered] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.audit");
            let rotated = rotated_log(&path, durability, 40);
            let all_lines = verify(&index::log_files(&path).unwrap()).unwrap().lines;
            let expected = seqs_of_103(&path);
            let next = index::next_name(&path);
            let newest = rotated.last().unwrap().clone();
            match point {
                CrashPoint::Switched | CrashPoint::OldRenamed => {
                    std::fs::rename(&path, &next).unwrap();
                    append_zeros(&next, 3000);
                    // Its index, if built (a close may leave it to the
                    // next open).
                    let _ = std::fs::remove_file(index::index_name(&newest));
                    if let CrashPoint::Switched = point {
                        std::fs::rename(&newest, &path).unwrap();
                        append_zeros(&path, 5000);
                    }
                }
                CrashPoint::SpareReady => std::fs::write(&next, vec![0; 8192]).unwrap(),
                CrashPoint::FirstCommitTorn => {
                    let mut torn = br#"{"seq":99,"prev":"00"#.to_vec();
                    torn.resize(8192, 0);
                    std::fs::write(&next, torn).unwrap();
                }
            }
            // Readers find every line, in order, before any repair.
            let files = index::log_files(&path).unwrap();
            let report = verify(&files).unwrap();
            if let CrashPoint::FirstCommitTorn = point {
                assert!(report.broken.unwrap().reason.contains("torn"), "{point:?}");
            } else {
                assert_eq!(
                    (report.broken, report.lines),
                    (None, all_lines),
                    "{point:?}"
                );
                assert_eq!(seqs_of_103(&path), expected, "{point:?}");
            }
            // Opening completes the rotation; the chain goes on.
            let log = AuditLog::open(&path, options(durability), names()).unwrap();
            let ticket = log
                .append(&[entry(103, Operation::Get, Outcome::Found)])
                .unwrap();
            durable(&log, ticket).unwrap();
            log.close().unwrap();
            assert!(!next.exists(), "{point:?}");
            assert!(newest.exists(), "{point:?}");
            assert_eq!(index::rotated_files(&path).unwrap(), rotated, "{point:?}");
            let report = verify(&index::log_files(&path).unwrap()).unwrap();
            let cut_line = u64::from(matches!(point, CrashPoint::FirstCommitTorn));
            assert_eq!(
                (report.broken, report.lines),
                (None, all_lines + 1 + cut_line),
                "{point:?}"
            );
            let seqs = seqs_of_103(&path);
            assert_eq!(&seqs[..expected.len()], expected, "{point:?}");
            assert_eq!(seqs.len(), expected.len() + 1, "{point:?}");
            if cut_line == 1 {
                let text = lines(&path).join("\n");
                assert!(text.contains("torn before its fsync"), "{text}");
            }
        }
    }
}

#[test]
fn an_interrupted_rotation_never_renames_over_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.audit");
    let rotated = rotated_log(&path, Durability::Durable, 40);
    let newest = rotated.last().unwrap();
    // A next file with lines, and a live file whose rotated name is taken:
    // not ours to guess; the open fails and nothing is lost.
    std::fs::rename(&path, index::next_name(&path)).unwrap();
    std::fs::copy(newest, &path).unwrap();
    let before: Vec<_> = index::log_files(&path)
        .unwrap()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let err = AuditLog::open(&path, options(Durability::Durable), names()).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    let after: Vec<_> = index::log_files(&path)
        .unwrap()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after);
}

/// Waits (a bounded while) until at most `left` rotated files of the log
/// at `path` have no index, and returns those that have none.
fn wait_until_indexed(path: &Path, left: usize) -> Vec<PathBuf> {
    for _ in 0..6000 {
        let unindexed = index::unindexed_files(path).unwrap();
        if unindexed.len() <= left {
            return unindexed;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let unindexed = index::unindexed_files(path).unwrap();
    panic!("still without an index: {unindexed:?}");
}

/// Sheds a request every few milliseconds, as a server in a peak does,
/// until dropped.
struct Shedding {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shedding {
    fn start(pressure: &Arc<Pressure>) -> Shedding {
        // One now: the builder sees the server busy from its first look.
        pressure.note_shed();
        let stop = Arc::new(AtomicBool::new(false));
        let (pressure, theirs) = (Arc::clone(pressure), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !theirs.load(Ordering::Relaxed) {
                pressure.note_shed();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Shedding {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Shedding {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends `n` gets of subjects `100 + s % 7` (from `from`) to `log`.
fn append_gets(log: &AuditLog, from: u64, n: u64) {
    for s in from..from + n {
        let e = entry(100 + s % 7, Operation::Get, Outcome::Found);
        durable(log, log.append(&[e]).unwrap()).unwrap();
    }
}

fn small_rotations(pressure: &Arc<Pressure>) -> AuditOptions {
    AuditOptions {
        pressure: Arc::clone(pressure),
        ..rotating(Durability::Durable, 2000)
    }
}

#[test]
fn indexes_wait_while_the_server_sheds_and_a_close_leaves_them_to_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.audit");
    let pressure = Arc::new(Pressure::default());
    let shedding = Shedding::start(&pressure);
    let log = AuditLog::open(&path, small_rotations(&pressure), names()).unwrap();
    // About four rotations: fewer than the bound, so all of them wait.
    append_gets(&log, 0, 40);
    log.close().unwrap();
    let rotated = index::rotated_files(&path).unwrap();
    assert!(
        (2..=indexer::MAX_UNINDEXED).contains(&rotated.len()),
        "{rotated:?}"
    );
    assert_eq!(index::unindexed_files(&path).unwrap(), rotated);
    // Nothing half-written is left, the chain is whole, and a query scans
    // the unindexed files.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".next"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let report = verify(&index::log_files(&path).unwrap()).unwrap();
    assert_eq!((report.broken, report.lines), (None, 40));
    let scanned = seqs_of_103(&path);
    assert_eq!(scanned.len(), 6); // s = 3, 10, ..., 38
                                  // Still shedding: an open queues them, and they still wait.
    let log = AuditLog::open(&path, small_rotations(&pressure), names()).unwrap();
    assert_eq!(index::unindexed_files(&path).unwrap(), rotated);
    // The peak passes: the builder indexes every one of them.
    drop(shedding);
    wait_until_indexed(&path, 0);
    log.close().unwrap();
    assert_eq!(seqs_of_103(&path), scanned);
}

#[test]
fn past_the_bound_the_oldest_files_are_indexed_while_the_server_sheds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.audit");
    let pressure = Arc::new(Pressure::default());
    let _shedding = Shedding::start(&pressure);
    let log = AuditLog::open(&path, small_rotations(&pressure), names()).unwrap();
    append_gets(&log, 0, 140);
    wait_until_indexed(&path, indexer::MAX_UNINDEXED);
    log.close().unwrap();
    // Both listed after the close: until then the rotator may still be
    // renaming the last file, not yet sent to the builder (this test failed
    // once in a full workspace run with the lists taken before the close).
    let rotated = index::rotated_files(&path).unwrap();
    assert!(rotated.len() > indexer::MAX_UNINDEXED + 2, "{rotated:?}");
    let unindexed = index::unindexed_files(&path).unwrap();
    assert!(
        unindexed.len() <= indexer::MAX_UNINDEXED + 1,
        "{unindexed:?}"
    );
    // Oldest first: what waits is the newest files.
    assert_eq!(unindexed, rotated[rotated.len() - unindexed.len()..]);
}

#[test]
fn audit_gen_leaves_every_rotated_file_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.audit");
    let opts = rotating(Durability::Durable, 16 << 10);
    generate::generate(&path, 20_000, opts).unwrap();
    // Buffered: a commit holds whatever arrived in a millisecond, and the
    // log rotates between commits.
    assert!(!index::rotated_files(&path).unwrap().is_empty());
    assert_eq!(
        index::unindexed_files(&path).unwrap(),
        Vec::<PathBuf>::new()
    );
}
