//! `match_stream` against an oracle: the same rows parsed and matched one
//! at a time on this thread. Inputs of several blocks, so that blocks are
//! matched on several threads, finish out of order and reuse their
//! buffers; the results must come out in input order, byte for byte.

use dancu_data::match_sample::{read_expectations, write_sample, CheckReport};
use dancu_data::matching::{match_stream, next_record, MatchOptions, ResultWriter, RowParser};
use dancu_data::Format;
use dancu_engine::matching::{MatchRow, MatchSummary, Matcher};

use crate::common::{open, synthetic};

/// Matches `input` one record at a time: the obvious implementation.
fn oracle(
    snapshot: &dancu_engine::Snapshot,
    input: &[u8],
    options: MatchOptions,
) -> (Vec<u8>, MatchSummary) {
    let mut parser = RowParser::new(options.input);
    let mut writer = ResultWriter::new(options.output);
    let (mut out, mut summary, mut results) = (Vec::new(), MatchSummary::default(), Vec::new());
    let mut matcher = Matcher::new(options.candidates);
    let mut rest = input;
    while !rest.is_empty() {
        let end = next_record(rest, options.input).unwrap_or(rest.len());
        let record = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if parser.wants_header() {
            parser.read_header(record).unwrap();
            continue;
        }
        let mut row = MatchRow::default();
        parser.read_row(record, &mut row);
        matcher.match_rows(snapshot, std::slice::from_ref(&row), &mut results);
        results.iter().for_each(|r| summary.add(r));
        writer.write(&results, &mut out);
    }
    writer.write(&[], &mut out);
    (out, summary)
}

#[test]
fn blocks_matched_in_parallel_come_out_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = open(&synthetic(dir.path(), "a.snap", 3_000, 21));
    for (input, output) in [(Format::Ndjson, Format::Ndjson), (Format::Csv, Format::Csv)] {
        // About 200 bytes a row: 40,000 rows are eight blocks.
        let (mut rows, mut expect) = (Vec::new(), Vec::new());
        write_sample(&snapshot, 40_000, 5, input, &mut rows, &mut expect).unwrap();
        let expectations = read_expectations(&expect[..]).unwrap();
        for candidates in [false, true] {
            let options = MatchOptions {
                input,
                output,
                candidates,
            };
            let mut written = Vec::new();
            let mut check = CheckReport::default();
            let mut last_progress = (0, 0);
            let summary = match_stream(
                &snapshot,
                &rows[..],
                &mut written,
                options,
                |r| check.check(r, expectations.get(r.row)),
                |rows, bytes| last_progress = (rows, bytes),
            )
            .unwrap();
            let (expected, expected_summary) = oracle(&snapshot, &rows, options);
            assert!(
                written == expected,
                "{input:?} {candidates}: results differ"
            );
            assert_eq!(summary, expected_summary);
            assert_eq!((summary.rows, check.rows, check.wrong), (40_000, 40_000, 0));
            assert_eq!(last_progress, (40_000, rows.len() as u64));
            if candidates {
                assert!(check.id_less_found * 100 >= check.id_less * 95, "{check}");
            }
        }
    }
}

#[test]
fn an_empty_input_gives_no_rows_and_a_csv_header() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = open(&synthetic(dir.path(), "a.snap", 100, 22));
    for input in [&b""[..], b"id,full_name\n"] {
        let options = MatchOptions {
            input: Format::Csv,
            output: Format::Csv,
            candidates: false,
        };
        let mut written = Vec::new();
        let summary =
            match_stream(&snapshot, input, &mut written, options, |_| {}, |_, _| {}).unwrap();
        assert_eq!(summary.rows, 0);
        assert_eq!(written, b"row,id,status,mismatched,candidates,error\n");
    }
}

#[test]
fn expectations_are_found_by_row_and_a_foreign_row_number_is_refused() {
    let file = b"row,status,mismatched,true_id\n1,found,,1\n3,found,sex,3\n";
    let expectations = read_expectations(&file[..]).unwrap();
    assert_eq!(expectations.get(1).map(|e| e.true_id), Some(1));
    assert_eq!(expectations.get(3).map(|e| e.mismatched), Some("sex"));
    assert!(expectations.get(2).is_none());
    assert!(expectations.get(u64::MAX).is_none());
    // Not a match-sample file: refused, not a 10^12-entry allocation.
    let far = b"row,status,mismatched,true_id\n1000000000000,found,,1\n";
    assert!(read_expectations(&far[..]).is_err());
}
