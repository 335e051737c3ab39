//! Records outside a snapshot read exactly as records inside one.

use dancu_engine::*;
use proptest::prelude::*;

use crate::common::{build, citizen};

fn json(view: &CitizenView<'_>) -> String {
    let mut out = Vec::new();
    write_citizen_json(view, FieldSet::ALL, &mut out);
    String::from_utf8(out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn owned_record_round_trips_and_reads_like_the_snapshot(n in 1u32..5_000_000, variant: u64) {
        let c = citizen(n, variant);
        let owned = OwnedRecord::encode(&c).unwrap();
        prop_assert_eq!(owned.to_citizen(), c.clone());
        let again = OwnedRecord::from_bytes(&owned.to_bytes()).unwrap();
        prop_assert_eq!(again.to_citizen(), c.clone());

        let (_dir, path) = build(std::slice::from_ref(&c));
        let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
        let stored = snap.get(c.id).unwrap();
        prop_assert_eq!(json(&owned.view()), json(&stored));
        prop_assert!(!owned.view().is_from_snapshot());
        prop_assert!(stored.is_from_snapshot());
    }
}

#[test]
fn malformed_owned_bytes_are_refused() {
    let owned = OwnedRecord::encode(&citizen(7, 0xFFFF)).unwrap();
    let bytes = owned.to_bytes();
    assert!(OwnedRecord::from_bytes(&bytes[..10]).is_none());
    let mut bad_heap = bytes.clone();
    let last = bad_heap.len() - 1;
    bad_heap[last] = 0xFF;
    assert!(OwnedRecord::from_bytes(&bad_heap).is_none());
}
