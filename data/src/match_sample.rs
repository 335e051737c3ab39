//! A planted bulk-match input whose answers are known, to measure
//! `dancu-data match` and the route and to check them: `dancu-data
//! match-sample` writes the rows and an expectation file, `dancu-data match
//! --expect` compares the results with it.
//!
//! Rows are drawn from a snapshot's records; row `n`'s kind is fixed by
//! `n % 20`: 50 % exact, 10 % a wrong name, 5 % a wrong date of birth, 5 %
//! a wrong sex, 10 % an ID no citizen has, 5 % a malformed ID, and 15 %
//! without ID (two thirds of them with the province). Names are sent as
//! gateways send them (upper case, no diacritics), addresses as stored.

use std::io::{BufRead, Write};

use dancu_engine::matching::{MatchStatus, RowResult};
use dancu_engine::{fold, CitizenView, Date, PersonalId, Sex, Snapshot};

use crate::error::{Error, Result};
use crate::import::Format;
use crate::rng::Rng;

/// What one planted row must get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The status.
    pub status: MatchStatus,
    /// The mismatched fields, `;`-separated.
    pub mismatched: &'static str,
    /// The citizen the row was made from (candidates should name them).
    pub true_id: u64,
}

/// Writes `n` planted rows drawn from `snapshot` to `rows` (in `format`)
/// and their expected results to `expect` (CSV: `row,status,mismatched,true_id`).
pub fn write_sample<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    n: u64,
    seed: u64,
    format: Format,
    mut rows: impl Write,
    mut expect: impl Write,
) -> Result<()> {
    let io = |e| Error::Io {
        path: "sample".into(),
        source: e,
    };
    if snapshot.is_empty() {
        return Err(Error::BadHeader(
            "the snapshot has no records to draw from".into(),
        ));
    }
    let mut rng = Rng::stream(seed, 0x6d61_7463);
    if format == Format::Csv {
        rows.write_all(b"id,full_name,date_of_birth,sex,permanent_residence,province\n")
            .map_err(io)?;
    }
    expect
        .write_all(b"row,status,mismatched,true_id\n")
        .map_err(io)?;
    let mut line = Vec::with_capacity(256);
    for row in 1..=n {
        let index = (rng.next_u64() % snapshot.len() as u64) as u32;
        let Some(view) = snapshot.record(index) else {
            continue;
        };
        let planted = plant(snapshot, &view, row, &mut rng);
        line.clear();
        planted.write(format, &mut line);
        rows.write_all(&line).map_err(io)?;
        writeln!(
            expect,
            "{row},{},{},{}",
            planted.expected.status.as_str(),
            planted.expected.mismatched,
            planted.expected.true_id
        )
        .map_err(io)?;
    }
    rows.flush().map_err(io)?;
    expect.flush().map_err(io)
}

struct Planted {
    id: String,
    full_name: String,
    date_of_birth: Date,
    sex: Sex,
    permanent_residence: String,
    province: Option<u16>,
    expected: Expected,
}

fn plant<D: AsRef<[u8]>>(
    snapshot: &Snapshot<D>,
    view: &CitizenView<'_>,
    row: u64,
    rng: &mut Rng,
) -> Planted {
    let dead = view.date_of_death().is_some();
    let id = view.id();
    let mut p = Planted {
        id: id.to_string(),
        full_name: fold(view.full_name()).to_uppercase(),
        date_of_birth: view.date_of_birth(),
        sex: view.sex(),
        permanent_residence: view.permanent_residence().unwrap_or_default().to_string(),
        province: None,
        expected: Expected {
            status: if dead {
                MatchStatus::Deceased
            } else {
                MatchStatus::Found
            },
            mismatched: "",
            true_id: id.get(),
        },
    };
    let mismatch = |p: &mut Planted, field| {
        p.expected.status = MatchStatus::Found;
        p.expected.mismatched = field;
    };
    match row % 20 {
        0..=9 => {}
        10 | 11 => {
            p.full_name.push_str(" X");
            mismatch(&mut p, "full_name");
        }
        12 => {
            let next = Date::from_days_since_epoch(p.date_of_birth.days_since_epoch() + 1);
            p.date_of_birth = next.unwrap_or(p.date_of_birth);
            mismatch(&mut p, "date_of_birth");
        }
        13 => {
            p.sex = if p.sex == Sex::Male {
                Sex::Female
            } else {
                Sex::Male
            };
            mismatch(&mut p, "sex");
        }
        14 | 15 => {
            // Same place, sex and year, another serial: not in the snapshot.
            let unknown = (0..64)
                .map(|_| {
                    let serial = (rng.next_u64() % 1_000_000) as u32;
                    PersonalId::new(id.place_code(), id.sex(), id.birth_year(), serial)
                })
                .filter_map(|r| r.ok())
                .find(|other| snapshot.get(*other).is_none());
            // Every serial taken: an exact row instead.
            if let Some(other) = unknown {
                p.id = other.to_string();
                p.expected.status = MatchStatus::NotFound;
            }
        }
        16 => {
            p.id.pop();
            p.expected.status = MatchStatus::MalformedId;
        }
        _ => {
            p.id.clear();
            p.expected.status = MatchStatus::MissingId;
            if row % 20 != 17 {
                p.province = Some(id.place_code());
            }
        }
    }
    p
}

impl Planted {
    fn write(&self, format: Format, out: &mut Vec<u8>) {
        let dob = self.date_of_birth.to_iso();
        let dob = std::str::from_utf8(&dob).expect("ISO dates are ASCII");
        match format {
            Format::Ndjson => {
                out.extend_from_slice(b"{\"id\":");
                dancu_engine::write_json_str(out, &self.id);
                out.extend_from_slice(b",\"full_name\":");
                dancu_engine::write_json_str(out, &self.full_name);
                out.extend_from_slice(b",\"date_of_birth\":\"");
                out.extend_from_slice(dob.as_bytes());
                out.extend_from_slice(b"\",\"sex\":\"");
                out.extend_from_slice(self.sex.as_str().as_bytes());
                out.extend_from_slice(b"\",\"permanent_residence\":");
                dancu_engine::write_json_str(out, &self.permanent_residence);
                if let Some(p) = self.province {
                    out.extend_from_slice(format!(",\"province\":\"{p:03}\"").as_bytes());
                }
                out.extend_from_slice(b"}\n");
            }
            Format::Csv => {
                let quoted = self.permanent_residence.replace('"', "\"\"");
                let province = self.province.map(|p| format!("{p:03}")).unwrap_or_default();
                let line = format!(
                    "{},{},{dob},{},\"{quoted}\",{province}\n",
                    self.id,
                    self.full_name,
                    self.sex.as_str()
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
}

/// How results compared with the expectations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Rows compared.
    pub rows: u64,
    /// Rows whose status or mismatched fields differ from the expectation.
    pub wrong: u64,
    /// The first few wrong rows, described.
    pub examples: Vec<String>,
    /// ID-less rows (their name and date are right).
    pub id_less: u64,
    /// ID-less rows whose candidates include the true ID.
    pub id_less_found: u64,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "checked {} rows: {} wrong", self.rows, self.wrong)?;
        for e in &self.examples {
            writeln!(f, "  {e}")?;
        }
        let rate = self.id_less_found as f64 / self.id_less.max(1) as f64;
        write!(
            f,
            "ID-less rows with the true ID among the candidates: {} of {} ({:.1} %)",
            self.id_less_found,
            self.id_less,
            100.0 * rate
        )
    }
}

/// The expectations of a sample, by row number. `write_sample` numbers rows
/// 1, 2, 3 …, so they live in a vector indexed by row: the check runs on
/// the thread that writes the results, and a hash map's random access over
/// 10 M rows held it to about half the matching rate.
#[derive(Clone, Debug, Default)]
pub struct Expectations(Vec<Option<Expected>>);

impl Expectations {
    /// The expectation of row `row`, if the file had one.
    pub fn get(&self, row: u64) -> Option<&Expected> {
        self.0.get(usize::try_from(row).ok()?)?.as_ref()
    }

    fn insert(&mut self, row: u64, expected: Expected) -> bool {
        // Rows are dense: a row far past the ones seen is a foreign file,
        // refused rather than allocated for.
        let Ok(at) = usize::try_from(row) else {
            return false;
        };
        if at > self.0.len() + (1 << 20) {
            return false;
        }
        if at >= self.0.len() {
            self.0.resize(at + 1, None);
        }
        self.0[at] = Some(expected);
        true
    }
}

/// Reads an expectation file written by [`write_sample`].
pub fn read_expectations(input: impl BufRead) -> Result<Expectations> {
    let mut out = Expectations::default();
    for (n, line) in input.lines().enumerate().skip(1) {
        let line = line.map_err(|e| Error::Io {
            path: "expect".into(),
            source: e,
        })?;
        let bad = || Error::BadHeader(format!("expectation line {}: {line:?}", n + 1));
        let parts: Vec<&str> = line.split(',').collect();
        let [row, status, mismatched, true_id] = parts[..] else {
            return Err(bad());
        };
        let status = MatchStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == status)
            .ok_or_else(bad)?;
        let mismatched = ["", "full_name", "date_of_birth", "sex"]
            .into_iter()
            .find(|&m| m == mismatched)
            .ok_or_else(bad)?;
        let expected = Expected {
            status,
            mismatched,
            true_id: true_id.parse().map_err(|_| bad())?,
        };
        if !out.insert(row.parse().map_err(|_| bad())?, expected) {
            return Err(bad());
        }
    }
    Ok(out)
}

impl CheckReport {
    /// Compares one result with its expectation.
    pub fn check(&mut self, result: &RowResult, expected: Option<&Expected>) {
        self.rows += 1;
        let Some(e) = expected else {
            self.wrong += 1;
            return;
        };
        let expected_fields = e.mismatched.split(';').filter(|f| !f.is_empty());
        if result.status != e.status
            || !result
                .mismatched_fields()
                .map(|f| f.key())
                .eq(expected_fields)
        {
            self.wrong += 1;
            if self.examples.len() < 5 {
                let mismatched: Vec<&str> = result.mismatched_fields().map(|f| f.key()).collect();
                let mismatched = mismatched.join(";");
                self.examples.push(format!(
                    "row {}: {} [{mismatched}], expected {} [{}]",
                    result.row,
                    result.status.as_str(),
                    e.status.as_str(),
                    e.mismatched
                ));
            }
        }
        if e.status == MatchStatus::MissingId {
            self.id_less += 1;
            self.id_less_found += u64::from(result.candidates().contains(&e.true_id));
        }
    }
}
