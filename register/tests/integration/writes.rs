//! Each change kind, ID allocation, idempotency, the read rules of the
//! overlay, and compaction.

use std::collections::HashSet;
use std::sync::Arc;

use dancu_engine::{Date, LegacyId, Modality, PersonalId, Snapshot, TemplateDigest};
use dancu_register::{compact, ChangeRequest, Error, Register, Rejection};
use serde_json::json;

use crate::common::*;

fn submit(
    register: &Register,
    snapshot: &Snapshot,
    subject: Option<PersonalId>,
    request: ChangeRequest,
) -> Result<dancu_register::Accepted, Error> {
    let accepted = register.submit(snapshot, subject, request, registrar(None), NOW)?;
    register.durable_blocking(accepted.sequence)?;
    Ok(accepted)
}

fn rejection(result: Result<dancu_register::Accepted, Error>) -> Rejection {
    match result {
        Err(Error::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_thousand_concurrent_registrations_get_a_thousand_distinct_valid_ids() {
    let fx = Fixture::new(2_000);
    let snapshot = Arc::new(fx.snapshot());
    let register = Arc::new(register(&snapshot, &fx.log_dir()));
    let ids: Vec<PersonalId> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (register, snapshot) = (register.clone(), snapshot.clone());
                s.spawn(move || {
                    (0..125)
                        .map(|i| {
                            let sex = if i % 2 == 0 { "male" } else { "female" };
                            let body =
                                newborn(&format!("Nguyễn Văn Sinh {t} {i}"), "2026-11-20", sex);
                            submit(&register, &snapshot, None, ChangeRequest::Register(body))
                                .unwrap()
                                .id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: HashSet<u64> = ids.iter().map(|i| i.get()).collect();
    assert_eq!(distinct.len(), 1000);
    for id in &ids {
        assert_eq!(id.place_code(), 1, "Hà Nội");
        assert_eq!(id.birth_year(), 2026);
        assert!(snapshot.get(*id).is_none(), "never a snapshot ID");
        let found = register
            .overlay()
            .get(&snapshot, *id)
            .expect("readable at once");
        assert_eq!(found.view().id(), *id);
        assert_eq!(found.view().sex(), id.sex());
    }
    // And none is issued again after a restart.
    drop(register);
    let register = dancu_register::Register::open(&*snapshot, &fx.log_dir()).unwrap();
    assert_eq!(register.overlay().len(), 1000);
}

#[test]
fn an_idempotency_key_gives_the_same_answer_also_after_a_restart() {
    let fx = Fixture::new(500);
    let snapshot = fx.snapshot();
    let body = newborn("Trần Thị Mai", "2026-11-25", "female");
    let first = {
        let register = register(&snapshot, &fx.log_dir());
        let a = register
            .submit(
                &snapshot,
                None,
                ChangeRequest::Register(body.clone()),
                registrar(Some("birth-1")),
                NOW,
            )
            .unwrap();
        register.durable_blocking(a.sequence).unwrap();
        let b = register
            .submit(
                &snapshot,
                None,
                ChangeRequest::Register(body.clone()),
                registrar(Some("birth-1")),
                NOW,
            )
            .unwrap();
        assert_eq!((b.id, b.sequence, b.replayed), (a.id, a.sequence, true));
        let other = newborn("Trần Thị Lan", "2026-11-25", "female");
        let reused = register.submit(
            &snapshot,
            None,
            ChangeRequest::Register(other),
            registrar(Some("birth-1")),
            NOW,
        );
        assert!(matches!(
            reused,
            Err(Error::Rejected(Rejection::IdempotencyMismatch(_)))
        ));
        a
    };
    let register = register(&snapshot, &fx.log_dir());
    let again = register
        .submit(
            &snapshot,
            None,
            ChangeRequest::Register(body),
            registrar(Some("birth-1")),
            NOW,
        )
        .unwrap();
    assert_eq!((again.id, again.replayed), (first.id, true));
    assert_eq!(register.overlay().len(), 1);
}

#[test]
fn bad_registrations_name_the_field() {
    let fx = Fixture::new(200);
    let snapshot = fx.snapshot();
    let register = register(&snapshot, &fx.log_dir());
    let parent = fx.citizens[0].id;
    let cases = [
        (json!({"id": "001226000001"}), "id"),
        (
            json!({"full_name": "A", "date_of_birth": "2026-11-20", "sex": "x", "birth_registration_place": "Hà Nội"}),
            "sex",
        ),
        (
            json!({"full_name": "A", "date_of_birth": "2026-13-20", "sex": "male", "birth_registration_place": "Hà Nội"}),
            "date_of_birth",
        ),
        (
            json!({"full_name": "A", "date_of_birth": "2026-11-20", "sex": "male", "birth_registration_place": "Atlantis"}),
            "birth_registration_place",
        ),
        (
            json!({"full_name": "A", "date_of_birth": "2026-11-20", "sex": "male", "birth_registration_place": "Hà Nội", "religion": "sun"}),
            "religion",
        ),
        (
            json!({"full_name": "A", "date_of_birth": "2026-11-20", "sex": "male", "birth_registration_place": "Hà Nội", "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let r = rejection(submit(
            &register,
            &snapshot,
            None,
            ChangeRequest::Register(body.clone()),
        ));
        assert!(r.to_string().contains(field), "{body}: {r}");
        assert!(matches!(r, Rejection::Invalid { .. }), "{body}: {r:?}");
    }
    // Well-formed, but the calendar says no: 422, not 400.
    let unborn = json!({"full_name": "A", "date_of_birth": "2099-01-01", "sex": "male", "birth_registration_place": "Hà Nội"});
    let r = rejection(submit(
        &register,
        &snapshot,
        None,
        ChangeRequest::Register(unborn),
    ));
    assert!(
        matches!(&r, Rejection::Inconsistent { field, .. } if field == "date_of_birth"),
        "{r:?}"
    );
    let mut orphan = newborn("Lê Văn Con", "2026-11-20", "male");
    orphan["father"] = json!({"full_name": "Lê Văn Bố", "id": "001090999999", "nationality": "VN"});
    let r = rejection(submit(
        &register,
        &snapshot,
        None,
        ChangeRequest::Register(orphan),
    ));
    assert!(
        matches!(&r, Rejection::UnknownReference { field, .. } if field == "father.id"),
        "{r:?}"
    );
    let mut child = newborn("Lê Văn Con", "2026-11-20", "male");
    child["father"] = json!({"full_name": "Bố", "id": parent.to_string(), "nationality": "VN"});
    submit(&register, &snapshot, None, ChangeRequest::Register(child)).unwrap();
}

#[test]
fn patches_deaths_and_enrolments_show_in_every_read() {
    let fx = Fixture::new(3_000);
    let snapshot = fx.snapshot();
    let register = register(&snapshot, &fx.log_dir());
    let with_legacy = fx.citizens.iter().find(|c| c.legacy_id.is_some()).unwrap();
    let with_face = fx
        .citizens
        .iter()
        .find(|c| c.biometric_templates.face.is_some() && c.id != with_legacy.id)
        .unwrap();
    let id = with_legacy.id;

    // A move and a name correction.
    let patch =
        json!({"permanent_residence": "Số 9 Tràng Tiền, Hà Nội", "full_name": "Nguyễn Văn Mới"});
    submit(&register, &snapshot, Some(id), ChangeRequest::Update(patch)).unwrap();
    let view_name = |id| {
        register
            .overlay()
            .get(&snapshot, id)
            .unwrap()
            .view()
            .full_name()
            .to_owned()
    };
    assert_eq!(view_name(id), "Nguyễn Văn Mới");
    // Not changeable, or not a field: 400 naming it.
    for field in [
        "date_of_birth",
        "sex",
        "ethnicity",
        "id",
        "biometric_templates",
    ] {
        let mut patch = serde_json::Map::new();
        patch.insert(field.into(), serde_json::Value::Null);
        let patch = serde_json::Value::Object(patch);
        let r = rejection(submit(
            &register,
            &snapshot,
            Some(id),
            ChangeRequest::Update(patch),
        ));
        assert!(
            matches!(&r, Rejection::Invalid { field: f, .. } if f == field),
            "{r:?}"
        );
    }
    // A corrected legacy ID is found under the new number, not the old one.
    let old = with_legacy.legacy_id.unwrap();
    let new = LegacyId::parse("999000111").unwrap();
    submit(
        &register,
        &snapshot,
        Some(id),
        ChangeRequest::Update(json!({"legacy_id": "999000111"})),
    )
    .unwrap();
    assert!(register.overlay().get_legacy(&snapshot, old).is_none());
    assert_eq!(
        register
            .overlay()
            .get_legacy(&snapshot, new)
            .unwrap()
            .view()
            .id(),
        id
    );
    // Taking someone else's legacy ID is a conflict.
    let other = fx
        .citizens
        .iter()
        .find(|c| c.legacy_id.is_some() && c.id != id)
        .unwrap();
    let taken = json!({"legacy_id": other.legacy_id.unwrap().to_string()});
    assert!(matches!(
        rejection(submit(
            &register,
            &snapshot,
            Some(id),
            ChangeRequest::Update(taken)
        )),
        Rejection::Conflict(_)
    ));

    // A death: readable, marked; a second one is a conflict.
    let died = Date::parse("2026-11-27").unwrap();
    submit(&register, &snapshot, Some(id), ChangeRequest::Death(died)).unwrap();
    assert_eq!(
        register
            .overlay()
            .get(&snapshot, id)
            .unwrap()
            .view()
            .date_of_death(),
        Some(died)
    );
    assert!(matches!(
        rejection(submit(
            &register,
            &snapshot,
            Some(id),
            ChangeRequest::Death(died)
        )),
        Rejection::Conflict(_)
    ));

    // A replaced face template: the new digest finds the person, the old
    // one finds nobody; the fingerprint (inherited) still works.
    let old_face = with_face.biometric_templates.face.unwrap();
    let new_face = TemplateDigest([0xAB; 16]);
    submit(
        &register,
        &snapshot,
        Some(with_face.id),
        ChangeRequest::Biometric(Modality::Face, new_face),
    )
    .unwrap();
    assert_eq!(
        register
            .overlay()
            .identify(&snapshot, Modality::Face, &new_face)
            .unwrap()
            .view()
            .id(),
        with_face.id
    );
    assert!(register
        .overlay()
        .identify(&snapshot, Modality::Face, &old_face)
        .is_none());
    if let Some(fp) = with_face.biometric_templates.fingerprint {
        assert_eq!(
            register
                .overlay()
                .identify(&snapshot, Modality::Fingerprint, &fp)
                .unwrap()
                .view()
                .id(),
            with_face.id
        );
    }
    // Enrolling someone else's template is a conflict.
    let r = rejection(submit(
        &register,
        &snapshot,
        Some(id),
        ChangeRequest::Biometric(Modality::Face, new_face),
    ));
    assert!(matches!(r, Rejection::Conflict(_)));
    // Unknown subject.
    let nobody = PersonalId::parse("001090999999").unwrap();
    assert!(matches!(
        rejection(submit(
            &register,
            &snapshot,
            Some(nobody),
            ChangeRequest::Death(died)
        )),
        Rejection::UnknownCitizen(_)
    ));
}

#[test]
fn compaction_folds_changes_and_a_restart_replays_only_the_rest() {
    let fx = Fixture::new(3_000);
    let snapshot = fx.snapshot();
    let with_face = fx
        .citizens
        .iter()
        .find(|c| {
            c.biometric_templates.face.is_some() && c.biometric_templates.fingerprint.is_some()
        })
        .unwrap();
    let register = register(&snapshot, &fx.log_dir());
    let born = submit(
        &register,
        &snapshot,
        None,
        ChangeRequest::Register(newborn("Phạm Bé", "2026-11-21", "female")),
    )
    .unwrap();
    let moved = fx.citizens[10].id;
    submit(
        &register,
        &snapshot,
        Some(moved),
        ChangeRequest::Update(json!({"current_residence": "Đà Lạt, Lâm Đồng"})),
    )
    .unwrap();
    // An update that keeps the snapshot's templates (inherited).
    submit(
        &register,
        &snapshot,
        Some(with_face.id),
        ChangeRequest::Update(json!({"religion": null})),
    )
    .unwrap();

    let fold = register
        .begin_compaction(snapshot.folded_sequence())
        .unwrap();
    let (folded, entries) = (fold.folded, fold.changes);
    assert_eq!(folded, 3);
    // A change after the fold point goes to the new segment.
    let later = submit(
        &register,
        &snapshot,
        Some(fx.citizens[11].id),
        ChangeRequest::Death(Date::parse("2026-11-28").unwrap()),
    )
    .unwrap();
    let out = fx.dir.path().join("gen2.snap");
    compact(&snapshot, &entries, folded, 2, NOW, &out).unwrap();
    let next = open(&out);
    next.verify_checksums().unwrap();
    assert_eq!(next.folded_sequence(), 3);
    assert_eq!(next.len(), snapshot.len() + 1);
    assert_eq!(next.get(born.id).unwrap().full_name(), "Phạm Bé");
    assert_eq!(
        next.get(moved).unwrap().current_residence(),
        Some("Đà Lạt, Lâm Đồng")
    );
    // Inherited templates were carried over from the old snapshot.
    let face = with_face.biometric_templates.face.unwrap();
    assert_eq!(
        next.identify(Modality::Face, &face).unwrap().id(),
        with_face.id
    );
    assert_eq!(next.get(with_face.id).unwrap().religion(), None);
    // Deterministic: the same inputs give the same bytes.
    let again = fx.dir.path().join("gen2-again.snap");
    compact(&snapshot, &entries, folded, 2, NOW, &again).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    let (dropped, deleted) = register.end_compaction(folded).unwrap();
    assert_eq!((dropped, deleted), (3, 1));
    assert_eq!(register.overlay().len(), 1);
    drop(register);
    // A restart on the new generation replays only change 4.
    let register = dancu_register::Register::open(&next, &fx.log_dir()).unwrap();
    assert_eq!(register.recovery().replayed, 1);
    assert_eq!(register.progress().applied, later.sequence);
    assert!(register
        .overlay()
        .get(&next, fx.citizens[11].id)
        .unwrap()
        .view()
        .date_of_death()
        .is_some());
    // The feed starts after the fold now.
    assert!(register.changes_after(0, 10).unwrap().is_none());
    let feed = register.changes_after(3, 10).unwrap().unwrap();
    assert_eq!(feed.iter().map(|f| f.sequence).collect::<Vec<_>>(), vec![4]);
}

#[test]
fn an_idempotency_key_outlives_the_compaction_that_trims_its_change() {
    let fx = Fixture::new(500);
    let snapshot = fx.snapshot();
    let keyed = |register: &Register, snapshot: &Snapshot, key: &str, name: &str, now: i64| {
        let body = newborn(name, "2026-10-01", "female");
        let a = register
            .submit(
                snapshot,
                None,
                ChangeRequest::Register(body),
                registrar(Some(key)),
                now,
            )
            .unwrap();
        register.durable_blocking(a.sequence).unwrap();
        a
    };
    let register = register(&snapshot, &fx.log_dir());
    // A key from longer ago than the retention, then two recent ones.
    let old = keyed(
        &register,
        &snapshot,
        "birth-old",
        "Lê Thị Cũ",
        NOW - dancu_register::RETENTION_S - 1,
    );
    let first = keyed(&register, &snapshot, "birth-1", "Trần Thị Mai", NOW);
    keyed(&register, &snapshot, "birth-2", "Trần Thị Lan", NOW);

    let fold = register
        .begin_compaction(snapshot.folded_sequence())
        .unwrap();
    let out = fx.dir.path().join("gen2.snap");
    compact(&snapshot, &fold.changes, fold.folded, 2, NOW, &out).unwrap();
    let next = open(&out);
    let (_, deleted) = register.end_compaction(fold.folded).unwrap();
    assert_eq!(deleted, 1, "the folded changes left the log");
    assert!(fx.log_dir().join(dancu_register::KEYS_FILE).exists());
    drop(register);

    let register = Register::open(&next, &fx.log_dir()).unwrap();
    assert_eq!(register.recovery().replayed, 0);
    let again = keyed(&register, &next, "birth-1", "Trần Thị Mai", NOW + 60);
    assert_eq!(
        (again.id, again.sequence, again.replayed),
        (first.id, first.sequence, true)
    );
    let reused = register.submit(
        &next,
        None,
        ChangeRequest::Register(newborn("Khác", "2026-11-25", "male")),
        registrar(Some("birth-2")),
        NOW,
    );
    assert!(matches!(
        reused,
        Err(Error::Rejected(Rejection::IdempotencyMismatch(_)))
    ));
    // Past the retention the key is forgotten: a retry is a new request.
    let late = keyed(&register, &next, "birth-old", "Lê Thị Cũ", NOW + 60);
    assert!(!late.replayed);
    assert_ne!(late.id, old.id);
}

#[test]
fn a_damaged_idempotency_key_file_is_a_clear_error() {
    let fx = Fixture::new(50);
    let snapshot = fx.snapshot();
    std::fs::create_dir_all(fx.log_dir()).unwrap();
    std::fs::write(
        fx.log_dir().join(dancu_register::KEYS_FILE),
        b"DANCUIK1 not really",
    )
    .unwrap();
    let err = Register::open(&snapshot, &fx.log_dir())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn a_batch_read_gives_what_single_reads_give_in_order() {
    let fx = Fixture::new(2_000);
    let snapshot = fx.snapshot();
    let register = register(&snapshot, &fx.log_dir());
    // Every third citizen moves; one newborn; one ID nobody holds.
    for c in fx.citizens.iter().step_by(3).take(200) {
        let patch =
            json!({"permanent_residence": format!("Số {} Tràng Tiền, Hà Nội", c.id.get() % 97)});
        submit(
            &register,
            &snapshot,
            Some(c.id),
            ChangeRequest::Update(patch),
        )
        .unwrap();
    }
    let born = submit(
        &register,
        &snapshot,
        None,
        ChangeRequest::Register(newborn("Trần Thị Mới", "2026-11-20", "female")),
    )
    .unwrap()
    .id;
    let nobody = PersonalId::parse("001099999999").unwrap();
    let mut ids: Vec<PersonalId> = fx.citizens.iter().take(700).map(|c| c.id).collect();
    ids.insert(350, born);
    ids.insert(10, nobody);
    ids.push(ids[5]); // a repeat

    let mut batch = Vec::new();
    register.overlay().get_many(&snapshot, &ids, &mut batch);
    assert_eq!(batch.len(), ids.len());
    for (id, got) in ids.iter().zip(&batch) {
        let single = register.overlay().get(&snapshot, *id);
        assert_eq!(
            got.as_ref()
                .map(|f| f.view().permanent_residence().to_owned()),
            single
                .as_ref()
                .map(|f| f.view().permanent_residence().to_owned()),
            "{id}"
        );
        assert_eq!(
            got.as_ref().map(|f| f.view().id()),
            single.as_ref().map(|f| f.view().id())
        );
    }
    assert!(batch[10].is_none());
    assert!(matches!(
        batch[351],
        Some(dancu_register::Found::Changed(_))
    ));
}
