//! The next generation of a snapshot (compaction's merge) against an oracle:
//! the same answers as a build from scratch of the changed population.

use std::collections::HashMap;

use dancu_engine::*;
use proptest::prelude::*;

use crate::common::{build, citizen, population};
use crate::lookups::check_against_oracle;

/// One change to an existing citizen: which one, and how.
#[derive(Clone, Debug)]
struct Change {
    who: prop::sample::Index,
    new_name: bool,
    moved: bool,
    died: bool,
    drop_legacy: bool,
    /// Keep the snapshot's templates (as the register does when a change
    /// leaves them alone), else enrol fresh ones.
    inherit: bool,
}

fn change() -> impl Strategy<Value = Change> {
    (any::<prop::sample::Index>(), any::<[bool; 5]>()).prop_map(|(who, b)| Change {
        who,
        new_name: b[0],
        moved: b[1],
        died: b[2],
        drop_legacy: b[3],
        inherit: b[4],
    })
}

fn options(generation: u64) -> BuildOptions {
    BuildOptions {
        generation,
        build_time_unix: Some(1_700_000_000),
        folded_sequence: 42,
    }
}

/// Applies `changes` and `births` to `base`: the replacements to write and
/// the population the next generation must hold.
fn apply(base: &[Citizen], changes: &[Change], births: &[u64]) -> (Vec<Replacement>, Vec<Citizen>) {
    let mut now: HashMap<PersonalId, Citizen> = base.iter().map(|c| (c.id, c.clone())).collect();
    let mut replaced: HashMap<PersonalId, Replacement> = HashMap::new();
    for (k, ch) in changes.iter().enumerate().filter(|_| !base.is_empty()) {
        let old = &base[ch.who.index(base.len())];
        let mut c = now[&old.id].clone();
        if ch.new_name {
            c.full_name = format!("Tên Mới {k}");
        }
        if ch.moved {
            c.permanent_residence = Some(format!("Số {k} Đường Mới, Huế"));
        }
        if ch.died {
            c.date_of_death = Some(Date::new(2025, 1, 2).unwrap());
        }
        if ch.drop_legacy {
            c.legacy_id = None;
        }
        let mut stored = c.clone();
        if ch.inherit {
            // The overlay's record marks inherited modalities with a zero
            // digest; the snapshot's digest is what the reader must find.
            let keep = |d: Option<TemplateDigest>| d.map(|_| TemplateDigest([0; 16]));
            stored.biometric_templates.face = keep(old.biometric_templates.face);
            stored.biometric_templates.fingerprint = keep(old.biometric_templates.fingerprint);
            c.biometric_templates = old.biometric_templates;
        } else {
            let mut d = [0xA0; 16];
            d[..8].copy_from_slice(&(k as u64).to_le_bytes());
            c.biometric_templates.face = Some(TemplateDigest(d));
            c.biometric_templates.fingerprint = None;
            stored.biometric_templates = c.biometric_templates;
        }
        now.insert(c.id, c);
        let inherit = Enrolled {
            face: ch.inherit,
            fingerprint: ch.inherit,
        };
        replaced.insert(
            old.id,
            Replacement {
                citizen: stored,
                inherit,
            },
        );
    }
    for (i, &variant) in births.iter().enumerate() {
        let born = citizen(100_003 + i as u32 * 13, variant);
        if now.contains_key(&born.id) {
            continue;
        }
        now.insert(born.id, born.clone());
        replaced.insert(
            born.id,
            Replacement {
                citizen: born,
                inherit: Enrolled::default(),
            },
        );
    }
    (
        replaced.into_values().collect(),
        now.into_values().collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn next_generation_answers_like_the_changed_population(
        base in population(200),
        changes in prop::collection::vec(change(), 0..40),
        births in prop::collection::vec(any::<u64>(), 0..20),
    ) {
        let (dir, path) = build(&base);
        let old = Snapshot::open_file(&path, Memory::Map).unwrap();
        let (replacements, expected) = apply(&base, &changes, &births);
        let next = dir.path().join("next.snap");
        let summary =
            write_next_generation(&old, replacements.clone(), options(8), &next).unwrap();
        prop_assert_eq!(summary.records, expected.len() as u64);
        let snap = Snapshot::open_file(&next, Memory::Map).unwrap();
        prop_assert_eq!(snap.generation(), 8);
        prop_assert_eq!(snap.folded_sequence(), 42);
        check_against_oracle(&snap, &expected);

        // Deterministic: the same inputs, in another order, give the same bytes.
        let again = dir.path().join("again.snap");
        let mut reversed = replacements;
        reversed.reverse();
        write_next_generation(&old, reversed, options(8), &again).unwrap();
        prop_assert!(std::fs::read(&next).unwrap() == std::fs::read(&again).unwrap());
    }
}

#[test]
fn a_replacement_taking_another_citizens_legacy_id_is_refused() {
    let base: Vec<Citizen> = (0..50).map(|n| citizen(n * 13 + 1, 0b10)).collect();
    let (dir, path) = build(&base);
    let old = Snapshot::open_file(&path, Memory::Map).unwrap();
    let mut c = base[3].clone();
    c.legacy_id = base[4].legacy_id;
    let replacement = Replacement {
        citizen: c,
        inherit: Enrolled::default(),
    };
    let next = dir.path().join("next.snap");
    let err = write_next_generation(&old, vec![replacement], options(2), &next).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DuplicateKey {
                kind: "legacy ID",
                ..
            }
        ),
        "{err}"
    );
    assert!(!next.exists(), "a failed merge leaves nothing behind");
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "only the old snapshot remains");
}
