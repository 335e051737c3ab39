//! The command line as a user runs it.

use std::collections::HashSet;

use dancu_engine::{LegacyId, Modality, PersonalId, TemplateDigest};

use crate::common::*;

#[test]
fn every_command_explains_itself() {
    for cmd in [
        "build",
        "inspect",
        "verify",
        "export",
        "sample-keys",
        "compact",
    ] {
        let o = run(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd}");
        assert!(stdout(&o).contains("Usage"), "{cmd}");
    }
}

#[test]
fn build_inspect_verify() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("demo.snap");
    let snap_s = snap.to_str().unwrap();
    let o = run(&[
        "build",
        "--synthetic",
        "3000",
        "--seed",
        "5",
        "--out",
        snap_s,
        "--build-time",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for word in [
        "records         3,000",
        "file size",
        "bytes/citizen",
        "throughput",
    ] {
        assert!(text.contains(word), "{text}");
    }

    let o = run(&["inspect", snap_s, "--json", "--counts"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["info"]["record_count"], 3000);
    assert_eq!(v["counts"]["records"], 3000);
    assert!(v["info"]["sections"].as_array().unwrap().len() >= 4);
    let o = run(&["inspect", snap_s]);
    assert!(stdout(&o).contains("sections"), "{}", stdout(&o));

    let o = run(&["verify", snap_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("OK"));
}

#[test]
fn the_same_seed_builds_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = synthetic(dir.path(), "a.snap", 2_000, 9);
    let b = synthetic(dir.path(), "b.snap", 2_000, 9);
    let c = synthetic(dir.path(), "c.snap", 2_000, 10);
    let (a, b, c) = (
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        std::fs::read(c).unwrap(),
    );
    assert!(a == b, "same (n, seed), same bytes");
    assert!(a != c, "another seed, another population");
}

#[test]
fn verify_fails_on_damage_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path(), "a.snap", 2_000, 3);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let flipped = dir.path().join("flipped.snap");
    std::fs::write(&flipped, &bytes).unwrap();
    let o = run(&["verify", flipped.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).starts_with("error:"), "{}", stderr(&o));

    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &bytes[..middle]).unwrap();
    let o = run(&["verify", truncated.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("error:"), "{}", stderr(&o));

    let o = run(&["verify", dir.path().join("absent.snap").to_str().unwrap()]);
    assert!(!o.status.success());
}

#[test]
fn sample_keys_exist_or_are_missing_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path(), "a.snap", 3_000, 4);
    let p = path.to_str().unwrap();
    let snap = open(&path);
    let keys = |kind: &str, missing: bool| -> Vec<String> {
        let mut args = vec!["sample-keys", "--from", p, "--n", "100", "--kind", kind];
        if missing {
            args.push("--missing");
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines.iter().collect::<HashSet<_>>().len(), 100, "distinct");
        lines
    };
    for missing in [false, true] {
        for k in keys("id", missing) {
            assert_eq!(k.len(), 12);
            assert_eq!(
                snap.get(PersonalId::parse(&k).unwrap()).is_some(),
                !missing,
                "{k}"
            );
        }
        for k in keys("legacy", missing) {
            assert_eq!(k.len(), 9);
            assert_eq!(
                snap.get_legacy(LegacyId::parse(&k).unwrap()).is_some(),
                !missing,
                "{k}"
            );
        }
        for (kind, m) in [
            ("face", Modality::Face),
            ("fingerprint", Modality::Fingerprint),
        ] {
            for k in keys(kind, missing) {
                assert_eq!(k.len(), 32);
                let d = TemplateDigest::parse_hex(&k).unwrap();
                assert_eq!(snap.identify(m, &d).is_some(), !missing, "{k}");
            }
        }
    }
    let o = run(&["sample-keys", "--from", p, "--n", "5000", "--kind", "id"]);
    assert!(!o.status.success(), "more keys than records");
}

#[test]
fn build_from_a_file_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = dancu_data::generate(30, 8)
        .map(|c| serde_json::to_string(&c).unwrap())
        .collect();
    lines[6] = "[]".into();
    let input = dir.path().join("people.ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.path().join("x.snap");
    let args = [
        "build",
        "--from",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 7"), "{}", stderr(&o));
    let o = run(&[&args[..], &["--max-errors", "1"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("skipped lines   1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("records         29"), "{}", stdout(&o));
}

#[test]
fn export_writes_to_stdout_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path(), "a.snap", 300, 6);
    let p = path.to_str().unwrap();
    let o = run(&["export", "--from", p, "--format", "csv", "--limit", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 11);
    assert!(stdout(&o).starts_with("id,legacy_id,full_name,"));
    let out = dir.path().join("all.ndjson");
    let o = run(&[
        "export",
        "--from",
        p,
        "--format",
        "ndjson",
        "--with-templates",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = parse_ndjson(&std::fs::read(&out).unwrap());
    assert_eq!(records.len(), 300);
    assert!(records
        .iter()
        .any(|c| c.biometric_templates.fingerprint.is_some()));
}

#[test]
fn compact_folds_a_change_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("gen1.snap");
    let snap_s = snap.to_str().unwrap();
    let o = run(&[
        "build",
        "--synthetic",
        "500",
        "--out",
        snap_s,
        "--generation",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = dir.path().join("changes");
    let base = dancu_engine::Snapshot::open_file(&snap, dancu_engine::Memory::Map).unwrap();
    let subject = base.record(3).unwrap().id();
    {
        let register = dancu_register::Register::open(&base, &log).unwrap();
        let who = dancu_register::Provenance {
            client: "registrar".into(),
            reason: "death certificate".into(),
            idempotency_key: None,
        };
        let death = dancu_register::ChangeRequest::Death("2026-11-01".parse().unwrap());
        let a = register
            .submit(&base, Some(subject), death, who, 1_795_910_400)
            .unwrap();
        register.durable_blocking(a.sequence).unwrap();
    }
    let next = dir.path().join("gen2.snap");
    let o = run(&[
        "compact",
        "--snapshot",
        snap_s,
        "--log",
        log.to_str().unwrap(),
        "--out",
        next.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 changes folded"), "{}", stdout(&o));
    let next = dancu_engine::Snapshot::open_file(&next, dancu_engine::Memory::Map).unwrap();
    next.verify_checksums().unwrap();
    assert_eq!((next.generation(), next.folded_sequence()), (2, 1));
    assert_eq!(
        next.get(subject)
            .unwrap()
            .date_of_death()
            .unwrap()
            .to_string(),
        "2026-11-01"
    );
}
