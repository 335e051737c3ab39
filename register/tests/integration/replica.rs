//! A follower's register: the primary's changes applied under their own
//! sequence numbers, replayed from the follower's own log after a restart,
//! and compacted into the same bytes as the primary's compaction.

use dancu_engine::{Date, Modality, PersonalId, TemplateDigest};
use dancu_register::{compact, ChangeRequest, Error, Found, Register};
use serde_json::json;

use crate::common::*;

/// Applies every change of `primary`'s feed after `after` to `follower`;
/// the last sequence applied.
fn replicate(primary: &Register, follower: &Register, after: u64) -> u64 {
    let feed = primary.changes_after(after, 1000).unwrap().unwrap();
    let mut last = after;
    for item in feed {
        assert!(follower
            .apply_replicated(item.sequence, &item.change.to_bytes())
            .unwrap());
        last = item.sequence;
    }
    follower.durable_blocking(last).unwrap();
    last
}

#[test]
fn a_follower_replays_the_feed_and_compacts_into_the_primarys_bytes() {
    let fx = Fixture::new(3_000);
    let snapshot = fx.snapshot();
    let follower_dir = fx.dir.path().join("follower-changes");
    let primary = register(&snapshot, &fx.log_dir());
    let follower = register(&snapshot, &follower_dir);
    let with_face = fx
        .citizens
        .iter()
        .find(|c| c.biometric_templates.face.is_some())
        .unwrap();
    let submit = |subject: Option<PersonalId>, request| {
        let a = primary
            .submit(&snapshot, subject, request, registrar(None), NOW)
            .unwrap();
        primary.durable_blocking(a.sequence).unwrap();
        a
    };
    let born = submit(
        None,
        ChangeRequest::Register(newborn("Phạm Bé", "2026-11-21", "female")),
    );
    let last = replicate(&primary, &follower, 0);
    assert_eq!(last, 1);
    // A repeated poll is harmless; a gap is refused.
    let feed = primary.changes_after(0, 10).unwrap().unwrap();
    assert!(!follower
        .apply_replicated(1, &feed[0].change.to_bytes())
        .unwrap());
    assert!(matches!(
        follower.apply_replicated(5, &feed[0].change.to_bytes()),
        Err(Error::OutOfOrder {
            expected: 2,
            got: 5
        })
    ));
    // Templates inherited from the snapshot travel with the change.
    let _ = submit(
        Some(with_face.id),
        ChangeRequest::Update(json!({"religion": null})),
    );
    let _ = submit(
        Some(fx.citizens[10].id),
        ChangeRequest::Death(Date::parse("2026-11-28").unwrap()),
    );
    let without_print = fx
        .citizens
        .iter()
        .find(|c| c.biometric_templates.fingerprint.is_none())
        .unwrap()
        .id;
    let _ = submit(
        Some(without_print),
        ChangeRequest::Biometric(Modality::Fingerprint, TemplateDigest([7; 16])),
    );
    let last = replicate(&primary, &follower, last);
    assert_eq!(last, 4);
    for id in [born.id, with_face.id, fx.citizens[10].id, without_print] {
        let changed = |r: &Register| match r.overlay().get(&snapshot, id) {
            Some(Found::Changed(e)) => (e.sequence, e.record.to_bytes(), e.inherited_templates),
            _ => panic!("{id} is not in the overlay"),
        };
        assert_eq!(changed(&primary), changed(&follower), "{id}");
    }

    // A restart replays the follower's own log and continues after it.
    drop(follower);
    let follower = register(&snapshot, &follower_dir);
    assert_eq!(follower.recovery().replayed, 4);
    assert_eq!(follower.progress().applied, 4);

    // Deterministic compaction: byte-identical generations.
    let generation = |r: &Register, name: &str| {
        let fold = r.begin_compaction(snapshot.folded_sequence()).unwrap();
        let out = fx.dir.path().join(name);
        let time = fold.last_change_time.unwrap();
        compact(&snapshot, &fold.changes, fold.folded, 2, time, &out).unwrap();
        std::fs::read(out).unwrap()
    };
    let on_primary = generation(&primary, "primary-gen2.snap");
    let on_follower = generation(&follower, "follower-gen2.snap");
    assert!(on_primary == on_follower, "the generations differ");
}
