//! A synthetic audit log, written through the real writer, for measuring
//! `audit-query` on large logs (`dancu-server audit-gen`).

use std::path::Path;

use dancu_engine::FieldSet;

use super::{now_us, AuditError, AuditLog, AuditOptions, Durability, Entry, Operation, Outcome};
use crate::Error;

/// The subject that appears in one round of every thousand, so a query has
/// a few hundred accesses to report.
pub const POPULAR_SUBJECT: u64 = 79_089_012_345;

/// The random subjects are `SUBJECT_BASE + 0..100 M`.
const SUBJECT_BASE: u64 = 79_000_000_000;

/// Items per batch request, and single accesses per batch request: about
/// 9 % of the entries are single-access lines, the rest batch items.
const BATCH: usize = 100;
const SINGLES: usize = 10;

/// Appends about `entries` accesses to the log at `path`: rounds of one
/// 100-item `batch_get` and ten `get`s of random subjects among 100 M,
/// with [`POPULAR_SUBJECT`] in every thousandth round. Buffered; the log is
/// closed (and every rotated file indexed) on return. Returns the entries
/// written. Subjects are valid IDs of province 079 (`0790YYSSSSSS`).
pub fn generate(path: &Path, entries: u64, options: AuditOptions) -> Result<u64, Error> {
    let options = AuditOptions {
        durability: Durability::Buffered,
        ..options
    };
    let log = AuditLog::open(path, options, vec!["anonymous".into(), "bank".into()])?;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64*: enough to spread subjects.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut written = 0;
    let mut round = 0u64;
    let source = Some(std::net::IpAddr::from([10, 0, 0, 7]));
    while written < entries {
        let time_us = now_us();
        let make = |op, subject, request_id| Entry {
            source,
            request_id,
            fields: FieldSet::BASIC,
            ..Entry::new(time_us, 1, op, subject, Outcome::Found)
        };
        let mut batch: Vec<Entry> = (0..BATCH)
            .map(|_| {
                make(
                    Operation::BatchGet,
                    SUBJECT_BASE + next() % 100_000_000,
                    round,
                )
            })
            .collect();
        if round % 1000 == 0 {
            batch[0].subject = POPULAR_SUBJECT;
        }
        append_retrying(&log, &batch)?;
        for i in 0..SINGLES {
            let e = make(
                Operation::Get,
                SUBJECT_BASE + next() % 100_000_000,
                round + i as u64,
            );
            append_retrying(&log, &[e])?;
        }
        written += (BATCH + SINGLES) as u64;
        round += 1;
    }
    log.close()?;
    // The background builder is paced and stops at close: build what it
    // had not reached, at full speed.
    super::index::build_missing(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(written)
}

fn append_retrying(log: &AuditLog, entries: &[Entry]) -> Result<(), Error> {
    loop {
        match log.append(entries) {
            Ok(_) => return Ok(()),
            Err(AuditError::Backlogged) => std::thread::yield_now(),
            Err(e) => return Err(Error::Internal(e.to_string())),
        }
    }
}
