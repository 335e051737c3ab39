//! Compaction: the snapshot and the overlay's changes folded into the next
//! generation, written by the engine's merge of the two
//! ([`write_next_generation`]).
//!
//! The output depends only on the input snapshot, the changes and the
//! generation number (the build time written is the newest change's time),
//! so a follower that compacts the same snapshot with the same changes gets
//! the same bytes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use dancu_engine::{
    write_next_generation, BuildOptions, BuildSummary, Enrolled, Modality, Replacement, Snapshot,
};

use crate::change::modality_bit;
use crate::error::Result;
use crate::overlay::Entry;

/// Writes `out`: every record of `snapshot` with `changes` applied, new
/// records added, as generation `generation` folding sequence `folded`.
/// Where `changes` holds several entries of one ID, the last one counts.
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
    let replacements = changed
        .into_values()
        .map(|e| Replacement {
            citizen: e.record.to_citizen(),
            inherit: Enrolled {
                face: e.inherited_templates & modality_bit(Modality::Face) != 0,
                fingerprint: e.inherited_templates & modality_bit(Modality::Fingerprint) != 0,
            },
        })
        .collect();
    let options = BuildOptions {
        generation,
        build_time_unix: Some(build_time_unix),
        folded_sequence: folded,
    };
    Ok(write_next_generation(snapshot, replacements, options, out)?)
}
