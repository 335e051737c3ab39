//! Importers: bad lines are reported with their number and reason, and
//! `max_errors` decides between stopping and skipping.

use dancu_data::{build_from_file, build_from_reader, Error, Format, ImportOptions};

fn lines(n: u64, seed: u64) -> Vec<String> {
    dancu_data::generate(n, seed)
        .map(|c| serde_json::to_string(&c).unwrap())
        .collect()
}

#[test]
fn the_first_bad_line_stops_the_build_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = lines(20, 1);
    input[4] = "{not json".into();
    let out = dir.path().join("x.snap");
    let mut seen = Vec::new();
    let err = build_from_reader(
        input.join("\n").as_bytes(),
        Format::Ndjson,
        &out,
        &ImportOptions::default(),
        &mut |e| seen.push(e.clone()),
    )
    .unwrap_err();
    match err {
        Error::TooManyErrors {
            error,
            count: 1,
            max_errors: 0,
        } => assert_eq!(error.line, 5),
        other => panic!("{other}"),
    }
    assert_eq!(seen.len(), 1);
    assert!(!out.exists(), "no snapshot is left behind");
}

#[test]
fn bad_lines_are_skipped_and_counted_up_to_max_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = lines(50, 2);
    let good = input[0].clone();
    input[3] = input[3]
        .replacen("\"sex\":\"male\"", "\"sex\":\"female\"", 1)
        .replacen("\"sex\":\"female\"", "\"sex\":\"x\"", 1);
    input[10] = good.clone(); // duplicate ID
    input[20] = input[20].replacen("\"date_of_birth\":\"", "\"date_of_birth\":\"1", 1);
    input.push(String::new()); // a blank line is not an error
    let path = dir.path().join("people.ndjson");
    std::fs::write(&path, input.join("\n")).unwrap();
    let out = dir.path().join("x.snap");
    let mut seen = Vec::new();
    let options = ImportOptions {
        max_errors: 3,
        ..Default::default()
    };
    let report = build_from_file(&path, &out, &options, &mut |e| seen.push(e.clone())).unwrap();
    assert_eq!(report.skipped, 3);
    assert_eq!(report.summary.records, 47);
    let numbers: Vec<u64> = seen.iter().map(|e| e.line).collect();
    assert_eq!(numbers, [4, 11, 21]);
    assert!(seen[1].reason.contains("duplicate id"), "{}", seen[1]);
    assert!(seen[2].reason.contains("date"), "{}", seen[2]);
    let options = ImportOptions {
        max_errors: 2,
        ..Default::default()
    };
    assert!(matches!(
        build_from_file(&path, &out, &options, &mut |_| {}),
        Err(Error::TooManyErrors { count: 3, .. })
    ));
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(
        &path,
        "id,full_name,date_of_birth,sex,father_full_name,father_id\n\
         079089012345,Nguyễn Văn An,1989-03-14,male,,\n\
         079189012346,Trần Thị Bình,1989-03-14,male,,\n\
         079189012347,Lê Thị Cúc,1989-13-14,female,,\n\
         079189012348,Lê Thị Dung,1989-03-14,female,Lê Văn Em,0791\n\
         079189012349,Phạm Thị Gấm,1989-03-14,female\n",
    )
    .unwrap();
    let mut seen = Vec::new();
    let options = ImportOptions {
        max_errors: 10,
        ..Default::default()
    };
    let report = build_from_file(&path, &dir.path().join("x.snap"), &options, &mut |e| {
        seen.push(e.clone())
    })
    .unwrap();
    assert_eq!(report.summary.records, 1);
    let numbers: Vec<u64> = seen.iter().map(|e| e.line).collect();
    assert_eq!(numbers, [3, 4, 5, 6], "{seen:?}");
    assert!(seen[0].reason.contains("sex"), "{}", seen[0]);
    assert!(seen[1].reason.contains("date_of_birth"), "{}", seen[1]);
    assert!(seen[2].reason.contains("father_id"), "{}", seen[2]);
    assert!(seen[3].reason.contains("cells"), "{}", seen[3]);
}

#[test]
fn a_bad_csv_header_is_refused_before_any_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    std::fs::write(&path, "id,name\n").unwrap();
    let err = build_from_file(
        &path,
        &dir.path().join("x.snap"),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::BadHeader(_)), "{err}");
    let unknown = dir.path().join("people.txt");
    std::fs::write(&unknown, "").unwrap();
    let err = build_from_file(
        &unknown,
        &dir.path().join("x.snap"),
        &ImportOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
}
