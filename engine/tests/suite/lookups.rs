//! Lookups against a `HashMap` oracle, on every backing store.

use std::collections::HashMap;

use dancu_engine::*;
use proptest::prelude::*;

use crate::common::{build, citizen, population};

/// The oracle: every key of `citizens` is found with the same record, and
/// keys that are not there are absent.
pub(crate) fn check_against_oracle<D: AsRef<[u8]>>(snap: &Snapshot<D>, citizens: &[Citizen]) {
    snap.verify_checksums().unwrap();
    assert_eq!(snap.len(), citizens.len());
    let by_id: HashMap<PersonalId, &Citizen> = citizens.iter().map(|c| (c.id, c)).collect();
    for c in citizens {
        let view = snap.get(c.id).expect("every ID is found");
        let mut expected = c.clone();
        expected.biometric_templates = BiometricTemplates::default();
        assert_eq!(view.to_citizen(), expected);
        if let Some(legacy) = c.legacy_id {
            assert_eq!(snap.get_legacy(legacy).map(|v| v.id()), Some(c.id));
        }
        for m in Modality::ALL {
            if let Some(d) = c.biometric_templates.get(*m) {
                assert_eq!(snap.identify(*m, &d).map(|v| v.id()), Some(c.id));
                let other = if *m == Modality::Face {
                    Modality::Fingerprint
                } else {
                    Modality::Face
                };
                if c.biometric_templates.get(other) != Some(d) {
                    assert!(
                        snap.identify(other, &d).is_none(),
                        "modality is part of the key"
                    );
                }
            }
        }
        let claims = Claims {
            full_name: Some(fold(&c.full_name).to_uppercase()),
            date_of_birth: Some(c.date_of_birth),
            sex: Some(c.sex),
            ..claims_for(c.id)
        };
        assert!(snap.verify_claims(&claims).unwrap().matched());
    }
    // Absent keys: IDs near the present ones, legacy IDs and digests not used.
    for c in citizens.iter().take(200) {
        for delta in [1u64, 2, 500_000] {
            let Ok(other) = PersonalId::from_u64(c.id.get() ^ delta) else {
                continue;
            };
            assert_eq!(
                snap.get(other).map(|v| v.id()),
                by_id.get(&other).map(|c| c.id)
            );
        }
    }
    assert!(snap
        .get_legacy(LegacyId::from_u32(999_999_999).unwrap())
        .is_none());
    assert!(snap
        .identify(Modality::Face, &TemplateDigest([0xEE; 16]))
        .is_none());
    // Batched lookups agree with single lookups, in order, duplicates included.
    let mut ids: Vec<PersonalId> = citizens.iter().map(|c| c.id).rev().collect();
    ids.extend(citizens.iter().take(5).map(|c| c.id));
    ids.push(PersonalId::parse("001000000000").unwrap());
    let mut out = Vec::new();
    snap.get_many(&ids, &mut out);
    assert_eq!(out.len(), ids.len());
    for (id, found) in ids.iter().zip(&out) {
        assert_eq!(found.map(|v| v.id()), snap.get(*id).map(|v| v.id()));
    }
    // Iteration visits every record once.
    let mut seen: Vec<PersonalId> = snap.iter().map(|v| v.id()).collect();
    seen.sort();
    let mut all: Vec<PersonalId> = citizens.iter().map(|c| c.id).collect();
    all.sort();
    assert_eq!(seen, all);
    let entries = snap.biometric_entries().count();
    let enrolled: usize = citizens.iter().map(|c| c.enrolled().count()).sum();
    assert_eq!(entries, enrolled);
}

fn claims_for(id: PersonalId) -> Claims {
    serde_json::from_str(&format!(r#"{{"id":"{id}"}}"#)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn in_memory_buffer_matches_oracle(citizens in population(300)) {
        let (_dir, path) = build(&citizens);
        let bytes = std::fs::read(&path).unwrap();
        check_against_oracle(&Snapshot::open_stable(&bytes[..]).unwrap(), &citizens);
        // A caller's own byte holder: text is checked on every read.
        check_against_oracle(&Snapshot::open(bytes).unwrap(), &citizens);
    }

    #[test]
    fn mapped_file_matches_oracle(citizens in population(300)) {
        let (_dir, path) = build(&citizens);
        for memory in [Memory::Map, Memory::Warm, Memory::HugePages] {
            assert_eq!(memory.to_string().parse::<Memory>(), Ok(memory));
            check_against_oracle(&Snapshot::open_file(&path, memory).unwrap(), &citizens);
        }
    }
}

#[test]
fn many_records_span_every_partition() {
    let citizens: Vec<Citizen> = (0..20_000)
        .map(|n| citizen(n * 3 + 1, u64::from(n) * 2_654_435_761))
        .collect();
    let (_dir, path) = build(&citizens);
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    check_against_oracle(&snap, &citizens);
    let info = snap.info();
    assert_eq!(
        (info.record_count, info.generation, info.build_time_unix),
        (20_000, 7, 1_700_000_000)
    );
    assert_eq!(info.sections.len(), 7);
    // Some home pages overflowed (about 6 % of records live in the page after
    // their home at this load), so the oracle above covered the overflow path.
    let records = &info.sections[0];
    let bytes = &snap.bytes()[records.offset as usize..][..records.length as usize];
    let overflowing = bytes
        .chunks_exact(format::PAGE_SIZE)
        .filter(|page| page[format::SLOTS_PER_PAGE + 1] & format::PAGE_OVERFLOW != 0)
        .count();
    assert!(overflowing > 0, "no page overflowed");
    assert_eq!(info.page_count as usize, bytes.len() / format::PAGE_SIZE);
    assert!(info.page_count >= info.home_pages);
    // File order and `index` agree, and cover every record once.
    for i in (0..snap.len() as u32).step_by(97) {
        assert_eq!(snap.record(i).map(|v| v.index()), Some(i));
    }
    assert!(snap.record(snap.len() as u32).is_none());
    for (i, v) in snap.iter().enumerate().step_by(89) {
        assert_eq!(v.index() as usize, i);
    }
}

#[test]
fn empty_snapshot_opens_and_finds_nothing() {
    let (_dir, path) = build(&[]);
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    snap.verify_checksums().unwrap();
    assert!(snap.is_empty());
    assert!(snap
        .get(PersonalId::parse("079089012345").unwrap())
        .is_none());
}

#[test]
fn duplicates_are_refused() {
    let a = citizen(5, 0b11_0000_0000_0010);
    let dir = tempfile::tempdir().unwrap();
    let err =
        build_snapshot(dir.path().join("x.snap"), BuildOptions::default(), [&a, &a]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DuplicateKey {
                kind: "personal ID",
                ..
            }
        ),
        "{err}"
    );
    let mut b = citizen(6, 0b11_0000_0000_0010);
    b.legacy_id = a.legacy_id;
    let err =
        build_snapshot(dir.path().join("x.snap"), BuildOptions::default(), [&a, &b]).unwrap_err();
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
    let mut c = citizen(7, 0);
    c.biometric_templates.face = a.biometric_templates.face;
    let err =
        build_snapshot(dir.path().join("x.snap"), BuildOptions::default(), [&a, &c]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DuplicateKey {
                kind: "biometric template",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !dir.path().join("x.snap").exists(),
        "a failed build leaves no file"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nor staging or temp files"
    );
}

#[test]
fn invalid_records_are_refused_with_their_position() {
    let mut c = citizen(5, 0);
    c.sex = if c.sex == Sex::Male {
        Sex::Female
    } else {
        Sex::Male
    };
    let dir = tempfile::tempdir().unwrap();
    let mut b =
        SnapshotBuilder::create(dir.path().join("x.snap"), BuildOptions::default()).unwrap();
    b.push(&citizen(1, 0)).unwrap();
    let err = b.push(&c).unwrap_err();
    assert!(
        matches!(err, Error::InvalidRecord { position: 1, .. }),
        "{err}"
    );
}

#[test]
fn a_new_build_replaces_the_file_while_the_old_mapping_stays_valid() {
    let first: Vec<Citizen> = (0..100).map(|n| citizen(n + 1, 0)).collect();
    let (dir, path) = build(&first);
    let old = Snapshot::open_file(&path, Memory::Map).unwrap();
    let second: Vec<Citizen> = (0..50).map(|n| citizen(n + 1000, 1)).collect();
    build_snapshot(
        &path,
        BuildOptions {
            generation: 8,
            ..Default::default()
        },
        &second,
    )
    .unwrap();
    old.verify_checksums().unwrap();
    assert_eq!(old.len(), 100);
    let new = Snapshot::open_file(&path, Memory::Map).unwrap();
    assert_eq!((new.len(), new.generation()), (50, 8));
    drop(dir);
}

#[test]
fn verification_reports_each_field() {
    let c = citizen(42, 0b1000_0000_0010);
    let (_dir, path) = build(std::slice::from_ref(&c));
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    let mut claims = claims_for(c.id);
    claims.full_name = Some("NGUYEN VAN AN".into());
    claims.date_of_birth = Some(Date::new(1800, 1, 1).unwrap());
    claims.alive = Some(false);
    let v = snap.verify_claims(&claims).unwrap();
    let fields: Vec<_> = v.fields().collect();
    assert!(!v.matched());
    assert_eq!(fields[1], ("date_of_birth", false));
    assert_eq!(fields[2], ("alive", true), "{fields:?}");
    let mut json = Vec::new();
    write_verification_json(&v, &mut json);
    let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(parsed["match"], false);
    assert_eq!(parsed["fields"]["date_of_birth"], false);
    assert!(snap
        .verify_claims(&claims_for(PersonalId::parse("001000000000").unwrap()))
        .is_none());
}

#[test]
fn json_projection_is_valid_json_with_nulls() {
    let citizens: Vec<Citizen> = (0..64)
        .map(|n| citizen(n + 1, u64::from(n) * 977))
        .collect();
    let (_dir, path) = build(&citizens);
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    for c in &citizens {
        let view = snap.get(c.id).unwrap();
        let mut out = Vec::new();
        write_citizen_json(&view, FieldSet::ALL, &mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value.as_object().unwrap().len(), FIELDS.len());
        let text = std::str::from_utf8(&out).unwrap();
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|f| text.find(&format!("\"{f}\":")).expect("every key"))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "keys in FIELDS order");
        assert_eq!(value["full_name"], c.full_name.as_str());
        let mut without_biometrics = value.clone();
        without_biometrics
            .as_object_mut()
            .unwrap()
            .remove("biometrics");
        let parsed: Citizen = serde_json::from_value(without_biometrics).unwrap();
        let mut expected = c.clone();
        expected.biometric_templates = BiometricTemplates::default();
        assert_eq!(parsed, expected, "the writer and serde agree");
        let enrolled: Vec<String> = c.enrolled().map(|m| m.to_string()).collect();
        assert_eq!(value["biometrics"], serde_json::json!(enrolled));
        out.clear();
        write_citizen_json(&view, FieldSet::BASIC, &mut out);
        let basic: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&str> = basic
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
    }
    assert!(FieldSet::parse_list("id,nope").is_err());
    assert_eq!(
        FieldSet::parse_list("id, full_name")
            .unwrap()
            .names()
            .count(),
        2
    );
}
