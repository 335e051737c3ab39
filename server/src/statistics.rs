//! Population statistics: counts of living people by province, sex,
//! five-year age band and ethnicity, never a person.
//!
//! A [`Census`] is one dense table of counts over every combination of the
//! four dimensions (64 × 2 × 21 × 55 cells of `u32`, 591 KB), made by one
//! pass over the snapshot's records. Ages depend on the day, so a census
//! is made for one served generation *and* one date: the first statistics
//! request of a generation (or of a new day) pays the pass, every other
//! request only sums the table down to the dimensions asked for. The
//! register's changes since the snapshot (births, deaths, corrections) are
//! applied per request as a delta over the overlay's entries: the overlay
//! holds only what changed since the last compaction, so this stays small.
//!
//! Province means the province of birth registration, read from the
//! personal ID's first three digits (exact for everyone; residence
//! addresses are free text). People registered abroad form the province
//! `abroad`. A cell with fewer than [`MIN_CELL`] people is reported as
//! `"<10"`; cells with nobody are left out.

use dancu_engine::codes::{ETHNIC_GROUPS, PROVINCES};
use dancu_engine::{CitizenView, Date, Sex, Snapshot};

/// Cells with fewer people than this are suppressed.
pub const MIN_CELL: u32 = 10;

const PROVINCE_SLOTS: usize = PROVINCES.len() + 1;
const SEXES: usize = 2;
/// 0–4, 5–9, …, 95–99, 100+.
const AGE_BANDS: usize = 21;
/// Slot 0: not recorded.
const ETHNICITY_SLOTS: usize = ETHNIC_GROUPS.len() + 1;
const CELLS: usize = PROVINCE_SLOTS * SEXES * AGE_BANDS * ETHNICITY_SLOTS;

/// One dimension of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// Province of birth registration.
    Province,
    /// Sex.
    Sex,
    /// Five-year age band.
    AgeBand,
    /// Ethnic group.
    Ethnicity,
}

impl Dimension {
    /// Every dimension, in the order of the report's columns.
    pub const ALL: [Dimension; 4] = [
        Dimension::Province,
        Dimension::Sex,
        Dimension::AgeBand,
        Dimension::Ethnicity,
    ];

    /// Its name in `?by=`.
    pub fn key(self) -> &'static str {
        match self {
            Dimension::Province => "province",
            Dimension::Sex => "sex",
            Dimension::AgeBand => "age_band",
            Dimension::Ethnicity => "ethnicity",
        }
    }

    fn slots(self) -> usize {
        match self {
            Dimension::Province => PROVINCE_SLOTS,
            Dimension::Sex => SEXES,
            Dimension::AgeBand => AGE_BANDS,
            Dimension::Ethnicity => ETHNICITY_SLOTS,
        }
    }

    /// Parses `?by=` (comma-separated, each at most once). An empty name
    /// (`by=`, `sex,,province`) is refused: the total alone is asked for by
    /// leaving `by` out. (`by=` cannot mean "no dimension": a list with
    /// one empty name is sent the same way, and `openapi.yaml` must say
    /// one thing of it.)
    pub fn parse_list(list: &str) -> Result<Vec<Dimension>, String> {
        let mut out: Vec<Dimension> = Vec::new();
        for name in list.split(',') {
            let d = Dimension::ALL
                .into_iter()
                .find(|d| d.key() == name)
                .ok_or_else(|| {
                    format!(
                        "unknown dimension {name:?}; by= takes province, sex, age_band, ethnicity"
                    )
                })?;
            if out.contains(&d) {
                return Err(format!("dimension {name} is named twice"));
            }
            out.push(d);
        }
        Ok(out)
    }

    /// The JSON value of slot `i`.
    fn label(self, i: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Dimension::Province => match PROVINCES.get(i) {
                Some((_, name)) => Value::from(*name),
                None => Value::from("abroad"),
            },
            Dimension::Sex => Value::from(if i == 0 { "male" } else { "female" }),
            Dimension::AgeBand if i + 1 == AGE_BANDS => Value::from("100+"),
            Dimension::AgeBand => Value::from(format!("{}-{}", i * 5, i * 5 + 4)),
            Dimension::Ethnicity => match i.checked_sub(1) {
                Some(g) => Value::from(ETHNIC_GROUPS[g]),
                None => Value::Null,
            },
        }
    }
}

/// Completed years from `born` to `today` (0 for a date after today).
fn age_on(born: Date, today: Date) -> u16 {
    let before_birthday = (today.month(), today.day()) < (born.month(), born.day());
    today
        .year()
        .saturating_sub(born.year())
        .saturating_sub(u16::from(before_birthday && today.year() > born.year()))
}

/// The cell of a living person on `today`; `None` for the dead.
pub fn cell_of(view: &CitizenView<'_>, today: Date) -> Option<usize> {
    if view.date_of_death().is_some() {
        return None;
    }
    let code = view.id().place_code();
    let province = PROVINCES
        .binary_search_by_key(&code, |p| p.0)
        .unwrap_or(PROVINCES.len());
    let sex = match view.sex() {
        Sex::Male => 0,
        Sex::Female => 1,
    };
    let band = usize::from(age_on(view.date_of_birth(), today) / 5).min(AGE_BANDS - 1);
    let ethnicity = view.ethnicity().map_or(0, |e| usize::from(e.code()));
    Some(((province * SEXES + sex) * AGE_BANDS + band) * ETHNICITY_SLOTS + ethnicity)
}

/// Counts of living people per cell, for one snapshot on one day.
#[derive(Clone, Debug)]
pub struct Census {
    /// The day ages are counted on.
    pub today: Date,
    /// The generation counted.
    pub generation: u64,
    counts: Vec<u32>,
}

impl Census {
    /// One pass over `snapshot`'s records.
    pub fn count<D: AsRef<[u8]>>(snapshot: &Snapshot<D>, generation: u64, today: Date) -> Census {
        let mut counts = vec![0u32; CELLS];
        for i in 0..snapshot.len() as u32 {
            if let Some(cell) = snapshot.record(i).and_then(|v| cell_of(&v, today)) {
                counts[cell] += 1;
            }
        }
        Census {
            today,
            generation,
            counts,
        }
    }

    /// The counts with `changes` applied: each `(before, after)` is a
    /// changed person's cell in the snapshot (if counted there) and now.
    pub fn with_changes(
        &self,
        changes: impl Iterator<Item = (Option<usize>, Option<usize>)>,
    ) -> Vec<i64> {
        let mut counts: Vec<i64> = self.counts.iter().map(|&c| i64::from(c)).collect();
        for (before, after) in changes {
            if let Some(b) = before {
                counts[b] -= 1;
            }
            if let Some(a) = after {
                counts[a] += 1;
            }
        }
        counts
    }
}

/// Sums `counts` (one per cell) down to the dimensions `by` and writes the
/// response body: `{"as_of", "generation", "by", "total", "cells": [...]}`.
pub fn report(counts: &[i64], by: &[Dimension], today: Date, generation: u64) -> serde_json::Value {
    let shape: Vec<usize> = by.iter().map(|d| d.slots()).collect();
    let mut sums = vec![0i64; shape.iter().product()];
    let mut total = 0i64;
    for (cell, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        total += n;
        let e = cell % ETHNICITY_SLOTS;
        let rest = cell / ETHNICITY_SLOTS;
        let band = rest % AGE_BANDS;
        let rest = rest / AGE_BANDS;
        let (province, sex) = (rest / SEXES, rest % SEXES);
        let mut at = 0;
        for d in by {
            let slot = match d {
                Dimension::Province => province,
                Dimension::Sex => sex,
                Dimension::AgeBand => band,
                Dimension::Ethnicity => e,
            };
            at = at * d.slots() + slot;
        }
        sums[at] += n;
    }
    let mut cells = Vec::new();
    for (at, &n) in sums.iter().enumerate() {
        if n <= 0 {
            continue;
        }
        let mut cell = serde_json::Map::new();
        let mut rest = at;
        for (d, slots) in by.iter().zip(&shape).rev() {
            cell.insert(d.key().into(), d.label(rest % slots));
            rest /= slots;
        }
        let count = if n < i64::from(MIN_CELL) {
            serde_json::Value::from("<10")
        } else {
            serde_json::Value::from(n)
        };
        cell.insert("count".into(), count);
        cells.push(serde_json::Value::Object(cell));
    }
    let total = if total < i64::from(MIN_CELL) {
        serde_json::Value::from("<10")
    } else {
        serde_json::Value::from(total)
    };
    serde_json::json!({
        "as_of": today.to_string(),
        "generation": generation,
        "by": by.iter().map(|d| d.key()).collect::<Vec<_>>(),
        "total": total,
        "cells": cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn ages_turn_on_the_birthday() {
        assert_eq!(age_on(d("2000-03-14"), d("2026-03-13")), 25);
        assert_eq!(age_on(d("2000-03-14"), d("2026-03-14")), 26);
        assert_eq!(age_on(d("2026-12-01"), d("2026-11-29")), 0);
        assert_eq!(age_on(d("2027-01-01"), d("2026-11-29")), 0);
    }

    #[test]
    fn parses_dimension_lists() {
        assert_eq!(
            Dimension::parse_list("sex,province").unwrap(),
            [Dimension::Sex, Dimension::Province]
        );
        assert!(Dimension::parse_list("").is_err());
        assert!(Dimension::parse_list("sex,sex").is_err());
        assert!(Dimension::parse_list("shoe_size").is_err());
        assert!(Dimension::parse_list("sex,").is_err());
    }

    #[test]
    fn small_cells_are_suppressed_and_totals_add_up() {
        let mut counts = vec![0i64; CELLS];
        counts[0] = 9; // a province-0 male, band 0, no ethnicity
        counts[ETHNICITY_SLOTS] = 30; // same, band 1
        counts[AGE_BANDS * ETHNICITY_SLOTS] = 12; // a province-0 female
        let today = d("2026-11-29");
        let r = report(&counts, &[Dimension::Sex, Dimension::AgeBand], today, 3);
        let cells = r["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0]["count"], "<10");
        assert_eq!(cells[0]["age_band"], "0-4");
        assert_eq!(cells[1]["count"], 30);
        assert_eq!(cells[2]["sex"], "female");
        assert_eq!(r["total"], 51);
        let by_sex = report(&counts, &[Dimension::Sex], today, 3);
        assert_eq!(by_sex["cells"][0]["count"], 39);
    }
}
