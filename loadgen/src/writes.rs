//! The registrar's write operations (`register`, `update`, `death`): their
//! request bodies, built once, and the order in which deaths pick people.
//!
//! A write costs the sender no more than a read: every body is built when
//! the generator is made and only copied per request; the subject's ID is
//! the one thing written per request, as for `get`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dancu_engine::codes::PROVINCES;
use dancu_engine::write_json_str;

use crate::keys::{KeyKind, KeyPool};
use crate::rng::Rng;
use crate::workload::write_date;

/// The header every write carries (the API requires a reason).
pub const CHANGE_REASON_NAME: &str = "X-Change-Reason";
/// The reason the change log and the audit log record for loadgen writes.
pub const CHANGE_REASON_VALUE: &str = "dancu-loadgen synthetic traffic";
/// The whole header line, as the raw client writes it.
pub const CHANGE_REASON: &[u8] = b"X-Change-Reason: dancu-loadgen synthetic traffic\r\n";

/// Bodies and subjects of the write operations, shared by a run's
/// generators.
#[derive(Debug)]
pub(crate) struct WritePlan {
    /// One birth per province and sex.
    registrations: Vec<Vec<u8>>,
    /// One move per province (`current_residence`).
    moves: Vec<Vec<u8>>,
    /// `{"date_of_death":"<yesterday>"}`.
    death: Vec<u8>,
    /// Key indices of the people a death may pick: not known to be dead.
    living: Vec<u32>,
    /// How many deaths were drawn so far, plus a start offset.
    next_death: AtomicUsize,
}

impl WritePlan {
    /// Bodies dated yesterday (UTC; a date of birth or death in the future
    /// is 400, and yesterday is in the past in every time zone the server
    /// may use). `with_deaths` lists the living keys, which only runs that
    /// record deaths need.
    pub(crate) fn new(keys: &KeyPool, with_deaths: bool) -> WritePlan {
        let mut date = Vec::with_capacity(10);
        write_date(&mut date, yesterday_utc());
        let mut registrations = Vec::with_capacity(PROVINCES.len() * 2);
        let mut moves = Vec::with_capacity(PROVINCES.len());
        for (n, &(_, province)) in PROVINCES.iter().enumerate() {
            for (sex, name) in [("male", "Nguyễn Văn Sinh"), ("female", "Nguyễn Thị Sinh")] {
                let mut b = Vec::with_capacity(256);
                b.extend_from_slice(b"{\"full_name\":");
                write_json_str(&mut b, name);
                b.extend_from_slice(b",\"date_of_birth\":\"");
                b.extend_from_slice(&date);
                b.extend_from_slice(b"\",\"sex\":\"");
                b.extend_from_slice(sex.as_bytes());
                b.extend_from_slice(b"\",\"birth_registration_place\":");
                write_json_str(&mut b, &format!("Trạm Y tế Phường 1, {province}"));
                b.extend_from_slice(b",\"permanent_residence\":");
                write_json_str(&mut b, &format!("Số 1 Đường Lê Lợi, {province}"));
                b.extend_from_slice(b",\"nationality\":\"VN\",\"ethnicity\":\"Kinh\"}");
                registrations.push(b);
            }
            let mut b = Vec::with_capacity(96);
            b.extend_from_slice(b"{\"current_residence\":");
            write_json_str(&mut b, &format!("Số {} Đường Trần Phú, {province}", n + 1));
            b.push(b'}');
            moves.push(b);
        }
        let mut death = Vec::with_capacity(32);
        death.extend_from_slice(b"{\"date_of_death\":\"");
        death.extend_from_slice(&date);
        death.extend_from_slice(b"\"}");
        let living = if with_deaths {
            (0..keys.len(KeyKind::Id))
                .filter(|&i| !keys.is_deceased(i))
                .map(|i| i as u32)
                .collect()
        } else {
            Vec::new()
        };
        WritePlan {
            registrations,
            moves,
            death,
            living,
            // A server that keeps its change log (the demo) remembers the
            // deaths of earlier runs: starting each run elsewhere in the
            // (shuffled) living keys keeps reruns from dying twice.
            next_death: AtomicUsize::new(clock_offset()),
        }
    }

    /// A birth registration body.
    pub(crate) fn registration(&self, rng: &mut Rng) -> &[u8] {
        &self.registrations[rng.below(self.registrations.len() as u64) as usize]
    }

    /// A move (`current_residence` merge patch) body.
    pub(crate) fn move_body(&self, rng: &mut Rng) -> &[u8] {
        &self.moves[rng.below(self.moves.len() as u64) as usize]
    }

    /// The death body.
    pub(crate) fn death(&self) -> &[u8] {
        &self.death
    }

    /// The key index of the next person to die: each living key once per
    /// run, shared by every worker thread. Only after all of them died does
    /// it start over (and the server answers 409). `None` without living keys.
    pub(crate) fn next_death_subject(&self) -> Option<usize> {
        if self.living.is_empty() {
            return None;
        }
        let k = self.next_death.fetch_add(1, Ordering::Relaxed);
        Some(self.living[k % self.living.len()] as usize)
    }
}

fn clock_offset() -> usize {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as usize)
        // Room for a run's deaths before the counter wraps.
        % (1 << 40)
}

/// Yesterday's date in UTC as `yyyymmdd`.
fn yesterday_utc() -> u32 {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    civil_from_days(days - 1)
}

/// Days since 1970-01-01 to `yyyymmdd` (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> u32 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year * 10_000 + month * 100 + day) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_line_matches_name_and_value() {
        let line = format!("{CHANGE_REASON_NAME}: {CHANGE_REASON_VALUE}\r\n");
        assert_eq!(CHANGE_REASON, line.as_bytes());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), 19_700_101);
        assert_eq!(civil_from_days(20_513), 20_260_301);
        assert_eq!(civil_from_days(20_512), 20_260_228);
        assert_eq!(civil_from_days(11_016), 20_000_229);
    }

    #[test]
    fn bodies_are_json_and_deaths_skip_the_dead() {
        let mut keys = KeyPool::synthetic(10, 1);
        keys.mark_deceased(3);
        let plan = WritePlan::new(&keys, true);
        let mut rng = Rng::new(1);
        for body in [
            plan.registration(&mut rng),
            plan.move_body(&mut rng),
            plan.death(),
        ] {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert!(v.is_object());
        }
        assert_eq!(plan.registrations.len(), 126);
        let picked: std::collections::HashSet<usize> =
            (0..9).filter_map(|_| plan.next_death_subject()).collect();
        assert_eq!(picked.len(), 9, "each living key once");
        assert!(!picked.contains(&3));
    }
}
