//! Compaction: the snapshot and the overlay's changes folded into the next
//! generation, written by the snapshot builder.
//!
//! The output depends only on the input snapshot, the changes and the
//! generation number (the build time written is the newest change's time),
//! so a follower that compacts the same snapshot with the same changes gets
//! the same bytes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use dancu_engine::{BuildOptions, BuildSummary, Modality, Snapshot, SnapshotBuilder};

use crate::change::modality_bit;
use crate::error::Result;
use crate::overlay::Entry;

/// Writes `out`: every record of `snapshot` with `changes` applied, new
/// records added, as generation `generation` folding sequence `folded`.
pub fn compact<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    changes: &[Arc<Entry>],
    folded: u64,
    generation: u64,
    build_time_unix: i64,
    out: &Path,
) -> Result<BuildSummary> {
    let mut changed: HashMap<u64, &Entry> = HashMap::with_capacity(changes.len());
    for e in changes {
        changed.insert(e.record.view().raw_id(), e);
    }
    // Templates of changed records that only the snapshot holds, by file
    // position: one pass over the biometric index, then a merge with the
    // records in file order.
    let mut inherited: Vec<(u32, Modality, dancu_engine::TemplateDigest)> = snapshot
        .biometric_entries()
        .filter(|(_, _, rank)| *rank != u32::MAX)
        .map(|(m, d, rank)| (rank, m, d))
        .collect();
    inherited.sort_unstable_by_key(|(rank, ..)| *rank);
    let mut next_template = inherited.iter().peekable();

    let options = BuildOptions {
        generation,
        build_time_unix: Some(build_time_unix),
        folded_sequence: folded,
    };
    let mut builder = SnapshotBuilder::create(out, options)?;
    for (rank, view) in snapshot.iter().enumerate() {
        let mut templates = dancu_engine::BiometricTemplates::default();
        while let Some((r, m, d)) = next_template.peek() {
            if *r as usize > rank {
                break;
            }
            if *r as usize == rank {
                match m {
                    Modality::Face => templates.face = Some(*d),
                    Modality::Fingerprint => templates.fingerprint = Some(*d),
                }
            }
            next_template.next();
        }
        match changed.remove(&view.raw_id()) {
            None => {
                let mut c = view.to_citizen();
                c.biometric_templates = templates;
                builder.push(&c)?;
            }
            Some(e) => {
                let mut c = e.record.to_citizen();
                for m in Modality::ALL {
                    if e.inherited_templates & modality_bit(*m) != 0 {
                        match m {
                            Modality::Face => c.biometric_templates.face = templates.face,
                            Modality::Fingerprint => {
                                c.biometric_templates.fingerprint = templates.fingerprint
                            }
                        }
                    }
                }
                builder.push(&c)?;
            }
        }
    }
    // What is left is new: births and first registrations. In ID order, so
    // the build does not depend on the hash map's order.
    let mut born: Vec<&Entry> = changed.into_values().collect();
    born.sort_unstable_by_key(|e| e.record.view().raw_id());
    for e in born {
        builder.push(&e.record.to_citizen())?;
    }
    Ok(builder.finish()?)
}
