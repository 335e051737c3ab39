//! Property test: random changes through the log and overlay answer like a
//! `HashMap` of records, after a simulated crash at every record boundary,
//! and after compaction.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use dancu_engine::{
    BiometricTemplates, Citizen, Date, Modality, PersonalId, Snapshot, TemplateDigest,
};
use dancu_register::{compact, ChangeRequest, Error, Register};
use proptest::prelude::*;
use serde_json::json;

use crate::common::*;

#[derive(Clone, Debug)]
enum Op {
    Register { female: bool },
    Move { who: usize, street: u8 },
    Death { who: usize },
    Enrol { who: usize, tag: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(|female| Op::Register { female }),
        (any::<usize>(), any::<u8>()).prop_map(|(who, street)| Op::Move { who, street }),
        any::<usize>().prop_map(|who| Op::Death { who }),
        (any::<usize>(), any::<u8>()).prop_map(|(who, tag)| Op::Enrol { who, tag }),
    ]
}

/// What a read must show, without templates (checked by identify).
fn comparable(mut c: Citizen) -> Citizen {
    c.biometric_templates = BiometricTemplates::default();
    c
}

fn check(register: &Register, snapshot: &Snapshot, oracle: &HashMap<u64, Citizen>) {
    for (id, expected) in oracle {
        let id = PersonalId::from_u64(*id).unwrap();
        let found = register
            .overlay()
            .get(snapshot, id)
            .expect("every known citizen is found");
        assert_eq!(
            comparable(found.view().to_citizen()),
            comparable(expected.clone())
        );
        for m in Modality::ALL {
            if let Some(d) = expected.biometric_templates.get(*m) {
                let who = register
                    .overlay()
                    .identify(snapshot, *m, &d)
                    .map(|f| f.view().id());
                assert_eq!(who, Some(id), "{m:?} template of {id}");
            }
        }
    }
}

/// Byte offsets where each record of the (single) segment ends.
fn record_ends(segment: &Path) -> Vec<u64> {
    let bytes = fs::read(segment).unwrap();
    let mut at = 32usize;
    let mut ends = vec![at as u64];
    while at + 20 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 20 + len;
        ends.push(at as u64);
    }
    ends
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn changes_match_an_oracle_through_crashes_and_compaction(ops in prop::collection::vec(op(), 1..24)) {
        let fx = Fixture::new(300);
        let snapshot = fx.snapshot();
        let mut oracle: HashMap<u64, Citizen> = fx.citizens.iter().map(|c| (c.id.get(), c.clone())).collect();
        let mut known: Vec<u64> = fx.citizens.iter().map(|c| c.id.get()).collect();
        let mut history = vec![oracle.clone()];
        let register = register(&snapshot, &fx.log_dir());
        for op in ops {
            let (subject, request) = match &op {
                Op::Register { female } => {
                    let sex = if *female { "female" } else { "male" };
                    (None, ChangeRequest::Register(newborn("Võ Bé", "2026-11-01", sex)))
                }
                Op::Move { who, street } => (Some(known[who % known.len()]), ChangeRequest::Update(json!({"current_residence": format!("Số {street} Lê Lợi, Huế")}))),
                Op::Death { who } => (Some(known[who % known.len()]), ChangeRequest::Death(Date::parse("2026-11-28").unwrap())),
                Op::Enrol { who, tag } => (Some(known[who % known.len()]), ChangeRequest::Biometric(Modality::Fingerprint, TemplateDigest([*tag; 16]))),
            };
            let subject = subject.map(|s| PersonalId::from_u64(s).unwrap());
            match register.submit(&snapshot, subject, request, registrar(None), NOW) {
                Ok(a) => {
                    register.durable_blocking(a.sequence).unwrap();
                    let c = match op {
                        Op::Register { .. } => {
                            known.push(a.id.get());
                            register.overlay().get(&snapshot, a.id).unwrap().view().to_citizen()
                        }
                        Op::Move { street, .. } => {
                            let mut c = oracle[&a.id.get()].clone();
                            c.current_residence = Some(format!("Số {street} Lê Lợi, Huế"));
                            c
                        }
                        Op::Death { .. } => {
                            let mut c = oracle[&a.id.get()].clone();
                            c.date_of_death = Some(Date::parse("2026-11-28").unwrap());
                            c
                        }
                        Op::Enrol { tag, .. } => {
                            let mut c = oracle[&a.id.get()].clone();
                            c.biometric_templates.fingerprint = Some(TemplateDigest([tag; 16]));
                            c
                        }
                    };
                    oracle.insert(a.id.get(), c);
                    history.push(oracle.clone());
                }
                // A second death or a template held by someone else.
                Err(Error::Rejected(_)) => {}
                Err(e) => panic!("{e}"),
            }
            check(&register, &snapshot, &oracle);
        }
        drop(register);

        // A crash after any record: the register holds exactly the prefix.
        let segment = fs::read_dir(fx.log_dir()).unwrap().next().unwrap().unwrap().path();
        let ends = record_ends(&segment);
        prop_assert_eq!(ends.len(), history.len());
        let full = fs::read(&segment).unwrap();
        for (k, end) in ends.iter().enumerate() {
            // Cut at the boundary, and also a few bytes into the next record.
            for extra in [0u64, 5] {
                let crashed = tempfile::tempdir().unwrap();
                let len = (*end + extra).min(full.len() as u64) as usize;
                fs::write(crashed.path().join(segment.file_name().unwrap()), &full[..len]).unwrap();
                let reopened = Register::open(&snapshot, crashed.path()).unwrap();
                prop_assert_eq!(reopened.progress().applied, k as u64);
                check(&reopened, &snapshot, &history[k]);
            }
        }

        // Compaction gives a snapshot that answers like the oracle alone.
        let register = Register::open(&snapshot, &fx.log_dir()).unwrap();
        let fold = register.begin_compaction(snapshot.folded_sequence()).unwrap();
        let (folded, entries) = (fold.folded, fold.changes);
        let out = fx.dir.path().join("gen2.snap");
        compact(&snapshot, &entries, folded, 2, NOW, &out).unwrap();
        let next = open(&out);
        next.verify_checksums().unwrap();
        let empty = tempfile::tempdir().unwrap();
        let fresh = Register::open(&next, empty.path()).unwrap();
        prop_assert!(fresh.overlay().is_empty());
        check(&fresh, &next, &oracle);
    }
}
