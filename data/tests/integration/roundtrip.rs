//! export → import round trips, NDJSON and CSV, with and without templates.

use dancu_data::{build_from_reader, export, ExportOptions, Format, ImportOptions};
use dancu_engine::{BiometricTemplates, Citizen};

use crate::common::*;

fn export_all(path: &std::path::Path, format: Format, with_templates: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let options = ExportOptions {
        format,
        limit: None,
        with_templates,
    };
    let n = export(&open(path), &options, &mut out).unwrap();
    assert_eq!(n as usize, open(path).len());
    out
}

fn import(bytes: &[u8], format: Format, out: &std::path::Path) {
    let mut errors = Vec::new();
    let report = build_from_reader(bytes, format, out, &ImportOptions::default(), &mut |e| {
        errors.push(e.clone())
    })
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(report.skipped, 0);
}

#[test]
fn a_snapshot_holds_exactly_the_generated_records() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5_000;
    let path = synthetic(dir.path(), "a.snap", n, 11);
    let generated = sorted(dancu_data::generate(n, 11).collect());
    let exported = sorted(parse_ndjson(&export_all(&path, Format::Ndjson, true)));
    assert_eq!(exported.len(), generated.len());
    for (e, g) in exported.iter().zip(&generated) {
        assert_eq!(
            e, g,
            "record {} changed on its way through the snapshot",
            g.id
        );
    }
}

#[test]
fn ndjson_and_csv_round_trip_with_templates() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path(), "a.snap", 4_000, 12);
    for format in [Format::Ndjson, Format::Csv] {
        let first = export_all(&path, format, true);
        let again = dir.path().join(format!("{format:?}.snap"));
        import(&first, format, &again);
        let second = export_all(&again, format, true);
        let (a, b) = match format {
            Format::Ndjson => (parse_ndjson(&first), parse_ndjson(&second)),
            Format::Csv => (parse_csv(&first), parse_csv(&second)),
        };
        assert_eq!(sorted(a.clone()), sorted(b), "{format:?}");
        assert!(a.iter().any(|c| c.biometric_templates.face.is_some()));
        // The re-imported snapshot answers the same biometric lookups.
        let snap = open(&again);
        for c in a
            .iter()
            .filter(|c| c.biometric_templates.face.is_some())
            .take(50)
        {
            let face = c.biometric_templates.face.unwrap();
            assert_eq!(
                snap.identify(dancu_engine::Modality::Face, &face)
                    .map(|v| v.id()),
                Some(c.id)
            );
        }
    }
}

#[test]
fn without_templates_the_enrolment_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path(), "a.snap", 1_000, 13);
    let bytes = export_all(&path, Format::Ndjson, false);
    let records = parse_ndjson(&bytes);
    assert!(records
        .iter()
        .all(|c| c.biometric_templates == BiometricTemplates::default()));
    let again = dir.path().join("b.snap");
    import(&bytes, Format::Ndjson, &again);
    assert_eq!(open(&again).biometric_entries().count(), 0);
    assert_eq!(open(&again).len(), 1_000);
}

#[test]
fn limit_cuts_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path(), "a.snap", 500, 14);
    let mut out = Vec::new();
    let options = ExportOptions {
        format: Format::Csv,
        limit: Some(7),
        with_templates: true,
    };
    assert_eq!(export(&open(&path), &options, &mut out).unwrap(), 7);
    assert_eq!(
        String::from_utf8(out).unwrap().lines().count(),
        8,
        "header and 7 rows"
    );
}

pub fn parse_csv(bytes: &[u8]) -> Vec<Citizen> {
    dancu_data::Records::new(bytes, Format::Csv)
        .unwrap()
        .map(|r| r.unwrap().1.unwrap())
        .collect()
}
