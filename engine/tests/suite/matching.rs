//! The name + date-of-birth index and bulk matching, against a `Vec` scan.

use std::collections::BTreeSet;

use dancu_engine::format::{self, SectionKind};
use dancu_engine::matching::*;
use dancu_engine::*;

use zerocopy::{FromBytes, IntoBytes};

use crate::common::{build, citizen};

fn population(n: u32) -> Vec<Citizen> {
    (0..n)
        .map(|i| citizen(i * 7 + 3, u64::from(i) * 0x9E37_79B9))
        .collect()
}

fn oracle(citizens: &[Citizen], name: &str, dob: Date) -> BTreeSet<u64> {
    citizens
        .iter()
        .filter(|c| c.date_of_birth == dob && fold(&c.full_name) == fold(name))
        .map(|c| c.id.get())
        .collect()
}

#[test]
fn name_index_finds_exactly_the_people_with_that_name_and_birthday() {
    let citizens = population(6000);
    let (_dir, path) = build(&citizens);
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    snap.verify_checksums().unwrap();
    assert!(snap.has_name_index());
    let mut sizes = BTreeSet::new();
    for c in citizens.iter().step_by(13) {
        // The gateway's spelling: upper case, no diacritics.
        let shouted = fold(&c.full_name).to_uppercase();
        let mut found = BTreeSet::new();
        snap.find_by_name_dob(&NameDob::new(&shouted, c.date_of_birth), |v| {
            found.insert(v.raw_id());
            true
        });
        let expected = oracle(&citizens, &c.full_name, c.date_of_birth);
        assert!(expected.contains(&c.id.get()));
        sizes.insert(expected.len());
        assert_eq!(found, expected, "{shouted} {}", c.date_of_birth);
    }
    assert!(
        sizes.iter().any(|&n| n > 1),
        "no shared name and birthday tested"
    );
    let nobody = NameDob::new("Không Ai Cả", Date::new(1950, 1, 1).unwrap());
    snap.find_by_name_dob(&nobody, |_| panic!("nobody has this name"));
}

/// Rewrites a version 5 file as version 4 wrote it: no name index.
fn downgrade_to_version_4(bytes: &mut Vec<u8>) {
    let (mut header, _) = format::Header::read_from_prefix(bytes).unwrap();
    let name_index = header.sections[SectionKind::NameIndex as usize - 1];
    bytes.truncate(
        header.sections[5].offset.get() as usize + header.sections[5].length.get() as usize,
    );
    assert!(name_index.offset.get() as usize >= bytes.len());
    header.format_version = 4.into();
    header.section_count = 6.into();
    header.sections[6] = format::SectionEntry::default();
    header.name_home_slots = 0.into();
    let without_checksum = &header.as_bytes()[..format::HEADER_SIZE - 8];
    header.header_checksum = xxhash_rust::xxh3::xxh3_64(without_checksum).into();
    bytes[..format::HEADER_SIZE].copy_from_slice(header.as_bytes());
}

#[test]
fn a_version_4_file_reads_without_candidates() {
    let citizens = population(500);
    let (_dir, path) = build(&citizens);
    let mut bytes = std::fs::read(&path).unwrap();
    downgrade_to_version_4(&mut bytes);
    let snap = Snapshot::open(bytes).unwrap();
    snap.verify_checksums().unwrap();
    assert_eq!(snap.info().format_version, 4);
    assert_eq!(snap.info().sections.len(), 6);
    assert!(!snap.has_name_index());
    let c = &citizens[17];
    assert_eq!(snap.get(c.id).unwrap().full_name(), c.full_name);
    snap.find_by_name_dob(&NameDob::new(&c.full_name, c.date_of_birth), |_| {
        panic!("no index, no candidates")
    });
}

fn row(n: u64, c: &Citizen) -> MatchRow {
    MatchRow {
        row: n,
        id: IdClaim::Given(c.id),
        full_name: fold(&c.full_name).to_uppercase(),
        date_of_birth: Some(c.date_of_birth),
        sex: Some(c.sex),
        permanent_residence: c.permanent_residence.clone().unwrap_or_default(),
        ..MatchRow::default()
    }
}

#[test]
fn matcher_reports_each_planted_kind_of_row() {
    let citizens = population(3000);
    let (_dir, path) = build(&citizens);
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    let alive = citizens.iter().find(|c| c.date_of_death.is_none()).unwrap();
    let dead = citizens.iter().find(|c| c.date_of_death.is_some()).unwrap();
    let mut rows = vec![row(1, alive), row(2, dead), row(3, dead), row(4, alive)];
    rows[2].sex = Some(if dead.sex == Sex::Male {
        Sex::Female
    } else {
        Sex::Male
    });
    rows[3].full_name = "Tên Khác Hẳn".into();
    rows[3].permanent_residence = "somewhere else".into();
    let mut missing = row(5, alive);
    missing.id = IdClaim::Missing;
    missing.province = Some(alive.id.place_code());
    let mut malformed = row(6, alive);
    malformed.id = IdClaim::Malformed(PersonalId::parse("07908901234").unwrap_err());
    let mut unknown = row(7, alive);
    unknown.id = IdClaim::Given(PersonalId::parse("001099999999").unwrap());
    let mut empty = MatchRow {
        row: 8,
        id: IdClaim::Given(alive.id),
        ..MatchRow::default()
    };
    empty.check_claims();
    rows.extend([missing, malformed, unknown, empty]);

    let mut results = Vec::new();
    Matcher::new(true).match_rows(&snap, &rows, &mut results);
    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    use MatchStatus::*;
    assert_eq!(
        statuses,
        [
            Found,
            Deceased,
            Found,
            Found,
            MissingId,
            MalformedId,
            NotFound,
            Invalid
        ]
    );
    assert!(results[0].matched() && results[0].candidates().is_empty());
    // A death is not told to a row whose claims do not all hold.
    assert_eq!(
        results[2].mismatched_fields().collect::<Vec<_>>(),
        [MatchField::Sex]
    );
    assert_eq!(
        results[3].mismatched_fields().collect::<Vec<_>>(),
        [MatchField::FullName, MatchField::PermanentResidence]
    );
    for r in &results[5..7] {
        let expected = oracle(&citizens, &alive.full_name, alive.date_of_birth);
        assert!(r.candidates().iter().all(|c| expected.contains(c)));
        assert!(r.candidate_count as usize == expected.len().min(MAX_CANDIDATES));
    }
    // With the province given, the true ID is among the candidates.
    assert!(results[4].candidates().contains(&alive.id.get()));
    assert!(results[4]
        .candidates()
        .iter()
        .all(|&c| PersonalId::from_u64(c).unwrap().place_code() == alive.id.place_code()));

    let mut line = Vec::new();
    write_ndjson(&results[3], &mut line);
    let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(json["status"], "found");
    assert_eq!(json["mismatched"][0], "full_name");
    let mut summary = MatchSummary::default();
    results.iter().for_each(|r| summary.add(r));
    assert_eq!(summary.count(Found), 3);
    assert_eq!(summary.mismatched[0], 1);

    let mut plain = Vec::new();
    Matcher::new(false).match_rows(&snap, &rows, &mut plain);
    assert!(plain.iter().all(|r| r.candidate_count == 0));
}

/// A source that searches one key at a time: the trait's default
/// `find_many_by_name_dob`, the row-at-a-time path the batched one must
/// equal.
struct OneKeyAtATime<'a>(&'a Snapshot);

impl MatchSource for OneKeyAtATime<'_> {
    fn lookup_many(
        &self,
        ids: &[PersonalId],
        visit: &mut dyn FnMut(usize, Option<CitizenView<'_>>),
    ) {
        for (i, &id) in ids.iter().enumerate() {
            visit(i, self.0.get(id));
        }
    }

    fn find_by_name_dob(&self, key: &NameDob, visit: &mut dyn FnMut(CitizenView<'_>) -> bool) {
        self.0.find_by_name_dob(key, visit)
    }

    fn has_name_index(&self) -> bool {
        self.0.has_name_index()
    }
}

/// The batched candidate search (prefetching a block's index slots,
/// records and names before searching) visits exactly what searching one
/// key at a time visits, in the same order, stopping where it stops; and
/// the matcher's results over it are the same, row for row.
#[test]
fn batched_candidate_search_equals_one_key_at_a_time() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let citizens = population(4000);
    let (_dir, path) = build(&citizens);
    let snap = Snapshot::open_file(&path, Memory::Map).unwrap();
    // Per row: a citizen, what to do to the row, and when a visit stops.
    let rows = prop::collection::vec((0..citizens.len(), 0u8..6, 1usize..4), 0..120);
    let mut runner = TestRunner::new(Config::with_cases(48));
    runner
        .run(&rows, |picks| {
            let mut keys = Vec::new();
            let mut rows = Vec::new();
            for (n, &(at, change, _)) in picks.iter().enumerate() {
                let c = &citizens[at];
                let mut r = row(n as u64 + 1, c);
                match change {
                    0 => r.id = IdClaim::Missing,
                    1 => r.full_name = "Không Ai Cả".into(),
                    2 => r.date_of_birth = Some(Date::new(1950, 1, 1).unwrap()),
                    3 => r.id = IdClaim::Given(PersonalId::parse("001099999999").unwrap()),
                    4 => {
                        r.id = IdClaim::Missing;
                        r.province = Some(c.id.place_code());
                    }
                    _ => {
                        r.sex = Some(if c.sex == Sex::Male {
                            Sex::Female
                        } else {
                            Sex::Male
                        })
                    }
                }
                keys.push(NameDob::new(&r.full_name, r.date_of_birth.unwrap()));
                rows.push(r);
            }
            let visits = |batched: bool| {
                let mut seen = Vec::new();
                let mut counts = vec![0usize; keys.len()];
                let mut visit = |i: usize, v: CitizenView<'_>| {
                    seen.push((i, v.raw_id()));
                    counts[i] += 1;
                    counts[i] < picks[i].2
                };
                if batched {
                    snap.find_many_by_name_dob(&keys, &mut visit);
                } else {
                    OneKeyAtATime(&snap).find_many_by_name_dob(&keys, &mut visit);
                }
                seen
            };
            prop_assert_eq!(visits(true), visits(false));
            let (mut batched, mut one_by_one) = (Vec::new(), Vec::new());
            Matcher::new(true).match_rows(&snap, &rows, &mut batched);
            Matcher::new(true).match_rows(&OneKeyAtATime(&snap), &rows, &mut one_by_one);
            prop_assert_eq!(batched, one_by_one);
            Ok(())
        })
        .unwrap();
}
