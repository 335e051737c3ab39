//! The change log's own promises: torn tails are cut, damage in the middle
//! is refused, nothing acknowledged is lost.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use dancu_register::{ChangeLog, Durable, Error, RawRecord};
use parking_lot::Mutex;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u64>>>);

impl Durable<()> for Collect {
    fn durable(&self, batch: Vec<(u64, ())>) {
        self.0.lock().extend(batch.iter().map(|(s, _)| *s));
    }
    fn failed(&self, _: &str, _: Vec<(u64, ())>) {}
}

fn payload(seq: u64) -> Vec<u8> {
    format!("change number {seq} {}", "x".repeat(seq as usize % 50)).into_bytes()
}

/// Writes records 1..=n and returns the segment's path.
fn write(dir: &Path, n: u64) -> std::path::PathBuf {
    let done = Collect::default();
    let (log, _) = ChangeLog::open(dir, 0, |_, _| Ok(()), done.clone()).unwrap();
    for seq in 1..=n {
        log.append(seq, &payload(seq), ());
    }
    drop(log); // writes and syncs what is queued
    assert_eq!(done.0.lock().len() as u64, n);
    fs::read_dir(dir).unwrap().next().unwrap().unwrap().path()
}

fn reopen(dir: &Path) -> dancu_register::Result<(Vec<RawRecord>, dancu_register::Recovery)> {
    let mut seen = Vec::new();
    let (log, recovery) = ChangeLog::<()>::open(
        dir,
        0,
        |s, p| {
            seen.push((s, p.to_vec()));
            Ok(())
        },
        Collect::default(),
    )?;
    drop(log);
    Ok((seen, recovery))
}

#[test]
fn every_record_comes_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 500);
    let (seen, recovery) = reopen(dir.path()).unwrap();
    assert_eq!(seen.len(), 500);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, (s, p))| *s == i as u64 + 1 && *p == payload(*s)));
    assert_eq!(recovery.cut, None);
    assert_eq!(recovery.last_sequence, 500);
}

#[test]
fn truncation_mid_record_is_cut_and_reported_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write(dir.path(), 100);
    let len = fs::metadata(&segment).unwrap().len();
    for cut in [1u64, 7, 19, 25] {
        let f = fs::OpenOptions::new().write(true).open(&segment).unwrap();
        f.set_len(len - cut).unwrap();
        drop(f);
        let (seen, recovery) = reopen(dir.path()).unwrap();
        assert_eq!(seen.len(), 99, "cut {cut}");
        let tail = recovery.cut.expect("the cut is reported");
        assert!(tail.bytes > 0);
        // The cut is on disk: a second reopen finds nothing to cut, and the
        // log appends after record 99.
        let (seen, recovery) = reopen(dir.path()).unwrap();
        assert_eq!((seen.len(), recovery.cut), (99, None));
        // Restore 100 records for the next round.
        fs::remove_dir_all(dir.path()).unwrap();
        fs::create_dir(dir.path()).unwrap();
        write(dir.path(), 100);
    }
}

#[test]
fn a_flipped_byte_in_the_middle_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write(dir.path(), 100);
    let mut bytes = fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&segment, &bytes).unwrap();
    match reopen(dir.path()) {
        Err(Error::Corrupt { offset, .. }) => assert!(offset > 0 && offset <= middle as u64),
        other => panic!("expected a corruption error, got {:?}", other.map(|r| r.1)),
    }
}

#[test]
fn a_flipped_byte_in_the_last_record_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write(dir.path(), 100);
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let (seen, recovery) = reopen(dir.path()).unwrap();
    assert_eq!(seen.len(), 99);
    assert!(recovery.cut.unwrap().reason.contains("checksum"));
}

#[test]
fn a_foreign_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("changes-00000000000000000001.log"),
        b"hello world, not a log at all",
    )
    .unwrap();
    let err = reopen(dir.path()).map(|_| ()).unwrap_err();
    assert!(
        err.to_string().contains("not a dancu change-log segment"),
        "{err}"
    );
}
