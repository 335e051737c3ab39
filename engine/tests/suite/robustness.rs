//! Any bytes given to `open` + `verify` + lookups give an error or an answer,
//! never a panic. The same property runs longer under `fuzz/`.

use dancu_engine::*;
use proptest::prelude::*;

use crate::common::{build, citizen};
use crate::exercise::{exercise, reseal};

fn seed_file() -> Vec<u8> {
    let citizens: Vec<Citizen> = (0..40)
        .map(|n| citizen(n + 1, u64::from(n) * 0x9E37_79B9))
        .collect();
    let (_dir, path) = build(&citizens);
    std::fs::read(path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_snapshots_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate: bool,
    ) {
        thread_local!(static SEED: Vec<u8> = seed_file());
        let mut bytes = SEED.with(|s| s.clone());
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        reseal(&mut bytes);
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        exercise(&bytes);
    }
}
