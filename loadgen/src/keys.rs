//! Keys to look up: personal IDs (with what a verify request needs), legacy
//! IDs and biometric template hashes.
//!
//! Keys come from `dancu-data sample-keys` files, from a snapshot read with
//! the engine, or (for exercising a stub server) are made up. The pool is
//! compact — a personal ID is the engine's 8-byte [`PersonalId`], a legacy ID a `u32`, names live in
//! one string heap — so a million sampled citizens cost tens of megabytes.

use std::path::Path;

use dancu_engine::{codes, Date, TemplateDigest};

use crate::error::{Error, Result};
use crate::rng::Rng;

pub use dancu_engine::{KeyKind, PersonalId, Sex};

/// What a verify request asserts about a citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Facts {
    name_start: u32,
    name_len: u16,
    /// `yyyymmdd`, 0 when unknown.
    dob: u32,
    /// The register already records a death (a `death` write would be 409).
    deceased: bool,
    /// 0 unknown, 1 male, 2 female.
    sex: u8,
    /// The permanent residence in `addresses` (length 0: unknown).
    address_start: u32,
    address_len: u16,
}

/// The facts a verify request can carry for one personal ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Citizen<'a> {
    /// Full name as registered (may be empty when the key file had none).
    pub full_name: &'a str,
    /// Date of birth as `yyyymmdd`, if known.
    pub date_of_birth: Option<u32>,
    /// Sex, if known.
    pub sex: Option<Sex>,
    /// Permanent residence as registered (empty when unknown): what the
    /// chip card's QR code carries.
    pub permanent_residence: &'a str,
}

/// The keys a run draws from, by kind.
#[derive(Debug, Clone, Default)]
pub struct KeyPool {
    ids: Vec<PersonalId>,
    facts: Vec<Facts>,
    names: String,
    addresses: String,
    legacy: Vec<u32>,
    face: Vec<[u8; 16]>,
    fingerprint: Vec<[u8; 16]>,
    /// IDs checked absent from the register, for "unknown" requests.
    absent_ids: Vec<PersonalId>,
    absent_legacy: Vec<u32>,
}

impl KeyPool {
    /// An empty pool.
    pub fn new() -> KeyPool {
        KeyPool::default()
    }

    /// Adds a personal ID with what is known about its holder.
    pub fn push_id(&mut self, id: PersonalId, name: &str, dob: Option<u32>, sex: Option<Sex>) {
        let start = self.names.len() as u32;
        let name = truncate_utf8(name, u16::MAX as usize);
        self.names.push_str(name);
        self.ids.push(id);
        self.facts.push(Facts {
            name_start: start,
            name_len: name.len() as u16,
            dob: dob.unwrap_or(0),
            sex: match sex {
                None => 0,
                Some(Sex::Male) => 1,
                Some(Sex::Female) => 2,
            },
            deceased: false,
            address_start: 0,
            address_len: 0,
        });
    }

    /// Sets the permanent residence of the personal ID pushed last.
    pub fn set_last_address(&mut self, address: &str) {
        let address = truncate_utf8(address, u16::MAX as usize);
        let start = self.addresses.len() as u32;
        self.addresses.push_str(address);
        if let Some(f) = self.facts.last_mut() {
            (f.address_start, f.address_len) = (start, address.len() as u16);
        }
    }

    /// Marks the holder of the `i`-th personal ID as deceased: a `death`
    /// write never picks them.
    pub fn mark_deceased(&mut self, i: usize) {
        self.facts[i].deceased = true;
    }

    /// Whether the holder of the `i`-th personal ID is known to be dead.
    pub fn is_deceased(&self, i: usize) -> bool {
        self.facts[i].deceased
    }

    /// Adds a legacy ID.
    pub fn push_legacy(&mut self, legacy: u32) {
        self.legacy.push(legacy);
    }

    /// Adds a personal ID the register is known not to hold (checked
    /// against the snapshot): [`KeyPool::unknown_id`] draws from these.
    pub fn push_absent_id(&mut self, id: PersonalId) {
        self.absent_ids.push(id);
    }

    /// Adds a legacy ID the register is known not to hold.
    pub fn push_absent_legacy(&mut self, legacy: u32) {
        self.absent_legacy.push(legacy);
    }

    /// A personal ID for a request that expects "not found": one checked
    /// absent when the pool has them, else a random one. At national scale
    /// a random ID of valid shape is sometimes a real person's, which the
    /// run would count as the server's error.
    pub fn unknown_id(&self, rng: &mut Rng) -> PersonalId {
        if self.absent_ids.is_empty() {
            random_valid_id(rng)
        } else {
            *rng.pick(&self.absent_ids)
        }
    }

    /// A legacy ID for a request that expects "not found" (as
    /// [`KeyPool::unknown_id`]; a random one is far likelier to be issued:
    /// the 9-digit space is 15 times the 60 M holders).
    pub fn unknown_legacy(&self, rng: &mut Rng) -> u32 {
        if self.absent_legacy.is_empty() {
            random_legacy(rng)
        } else {
            *rng.pick(&self.absent_legacy)
        }
    }

    /// Adds a biometric template hash of a modality.
    pub fn push_biometric(&mut self, kind: KeyKind, hash: [u8; 16]) {
        match kind {
            KeyKind::Face => self.face.push(hash),
            KeyKind::Fingerprint => self.fingerprint.push(hash),
            KeyKind::Id | KeyKind::Legacy => {}
        }
    }

    /// How many keys of a kind the pool holds.
    pub fn len(&self, kind: KeyKind) -> usize {
        match kind {
            KeyKind::Id => self.ids.len(),
            KeyKind::Legacy => self.legacy.len(),
            KeyKind::Face => self.face.len(),
            KeyKind::Fingerprint => self.fingerprint.len(),
        }
    }

    /// True when the pool holds no key of any kind.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.legacy.is_empty()
            && self.face.is_empty()
            && self.fingerprint.is_empty()
    }

    /// The `i`-th personal ID.
    #[inline]
    pub fn id(&self, i: usize) -> PersonalId {
        self.ids[i]
    }

    /// What is known about the holder of the `i`-th personal ID.
    pub fn citizen(&self, i: usize) -> Citizen<'_> {
        let f = self.facts[i];
        let start = f.name_start as usize;
        Citizen {
            full_name: &self.names[start..start + f.name_len as usize],
            date_of_birth: (f.dob != 0).then_some(f.dob),
            sex: match f.sex {
                1 => Some(Sex::Male),
                2 => Some(Sex::Female),
                _ => None,
            },
            permanent_residence: &self.addresses
                [f.address_start as usize..f.address_start as usize + f.address_len as usize],
        }
    }

    /// The `i`-th legacy ID.
    #[inline]
    pub fn legacy(&self, i: usize) -> u32 {
        self.legacy[i]
    }

    /// The `i`-th template hash of a biometric modality.
    #[inline]
    pub fn biometric(&self, kind: KeyKind, i: usize) -> [u8; 16] {
        match kind {
            KeyKind::Face => self.face[i],
            _ => self.fingerprint[i],
        }
    }

    /// Shuffles every kind, so that popularity rank 1 is a random key and
    /// not, say, the first record of the first province.
    pub fn shuffle(&mut self, seed: u64) {
        let mut rng = Rng::new(seed);
        // Shuffle ids and their facts together through one permutation.
        let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
        rng.shuffle(&mut order);
        self.ids = order.iter().map(|&i| self.ids[i as usize]).collect();
        self.facts = order.iter().map(|&i| self.facts[i as usize]).collect();
        rng.shuffle(&mut self.legacy);
        rng.shuffle(&mut self.face);
        rng.shuffle(&mut self.fingerprint);
    }

    /// Made-up keys of valid shape: `n` personal IDs (with names, dates of
    /// birth and sexes that agree with the ID), `n/2` legacy IDs and `n/2`
    /// hashes of each modality. Useful against a stub server only: a real
    /// snapshot knows none of them.
    pub fn synthetic(n: usize, seed: u64) -> KeyPool {
        let mut rng = Rng::new(seed ^ 0x005E_ED0F_CA11);
        let mut pool = KeyPool::new();
        const SURNAMES: [&str; 6] = ["NGUYEN", "TRAN", "LE", "PHAM", "HOANG", "VU"];
        const MIDDLE: [&str; 4] = ["VAN", "THI", "DUC", "NGOC"];
        const GIVEN: [&str; 6] = ["AN", "BINH", "CHI", "DUNG", "HOA", "LINH"];
        let mut name = String::new();
        for _ in 0..n {
            let id = random_valid_id(&mut rng);
            let year = u32::from(id.birth_year());
            let dob = year * 10_000 + (1 + rng.below(12) as u32) * 100 + 1 + rng.below(28) as u32;
            name.clear();
            name.push_str(SURNAMES[rng.below(6) as usize]);
            name.push(' ');
            name.push_str(MIDDLE[rng.below(4) as usize]);
            name.push(' ');
            name.push_str(GIVEN[rng.below(6) as usize]);
            pool.push_id(id, &name, Some(dob), Some(id.sex()));
        }
        for _ in 0..n.div_ceil(2) {
            pool.push_legacy(100_000_000 + rng.below(900_000_000) as u32);
            pool.push_biometric(KeyKind::Face, rng.bytes16());
            pool.push_biometric(KeyKind::Fingerprint, rng.bytes16());
        }
        pool
    }

    /// Reads a key file. With `kind` every line must be a key of that kind;
    /// without, each line's kind is recognised (see [`KeyPool::parse_line`]).
    pub fn load_file(&mut self, path: &Path, kind: Option<KeyKind>) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (i, line) in text.lines().enumerate() {
            self.parse_line(line, kind)
                .map_err(|reason| Error::KeyFile {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason,
                })?;
        }
        Ok(())
    }

    /// Adds the key on one line of a key file. Recognised forms:
    ///
    /// * `079089012345` — a personal ID; it may be followed by tab-separated
    ///   `full_name`, `date_of_birth` (YYYY-MM-DD) and `sex` (male/female);
    /// * `079089012345|123456789|NGUYEN VAN AN|14031989|Nam|...` — the
    ///   chip card's QR text: ID, legacy ID, name, DOB, sex;
    /// * `123456789` — a legacy ID;
    /// * `face:<32 hex>` or `fingerprint:<32 hex>` (also with a tab or a
    ///   space instead of the colon), or bare hex when `kind` says which.
    ///
    /// Blank lines and lines starting with `#` are skipped.
    pub fn parse_line(&mut self, line: &str, kind: Option<KeyKind>) -> Result<(), String> {
        let line = line.trim_end_matches(['\r', '\n']);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(());
        }
        if trimmed.contains('|') {
            return self.parse_qr(trimmed, kind);
        }
        let mut fields = trimmed.split('\t');
        let first = fields.next().unwrap_or("").trim();
        if let Some((modality, hex)) = first
            .split_once(':')
            .or_else(|| first.split_once(' '))
            .or_else(|| trimmed.split_once('\t').filter(|(m, _)| !is_digits(m)))
        {
            let k = match modality.trim() {
                "face" => KeyKind::Face,
                "fingerprint" => KeyKind::Fingerprint,
                other => return Err(format!("unknown modality {other:?}")),
            };
            if kind.is_some_and(|want| want != k) {
                return Err(format!(
                    "expected a {} key, found a {k} hash",
                    kind_name(kind)
                ));
            }
            self.push_biometric(k, parse_hash(hex.trim())?);
            return Ok(());
        }
        match (first.len(), kind) {
            (12, None | Some(KeyKind::Id)) if is_digits(first) => {
                let id = PersonalId::parse(first).map_err(|e| format!("personal ID: {e}"))?;
                let name = fields.next().unwrap_or("").trim();
                let dob = match fields.next().map(str::trim) {
                    None | Some("") => None,
                    Some(d) => Some(parse_iso_date(d)?),
                };
                let sex = match fields.next().map(str::trim) {
                    None | Some("") => None,
                    Some(other) => Some(other.parse::<Sex>().map_err(|e| e.to_string())?),
                };
                self.push_id(id, name, dob, sex);
                Ok(())
            }
            (9, None | Some(KeyKind::Legacy)) if is_digits(first) => {
                self.push_legacy(first.parse().map_err(|_| "bad legacy ID".to_string())?);
                Ok(())
            }
            (32, Some(k @ (KeyKind::Face | KeyKind::Fingerprint))) => {
                self.push_biometric(k, parse_hash(first)?);
                Ok(())
            }
            (32, None) => Err(
                "a bare template hash needs its modality: write face:<hex> or use --keys-face/--keys-fingerprint"
                    .into(),
            ),
            _ => Err(format!(
                "{first:?} is not a {} key",
                kind.map_or("known", KeyKind::as_str)
            )),
        }
    }

    fn parse_qr(&mut self, line: &str, kind: Option<KeyKind>) -> Result<(), String> {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 5 || f[0].len() != 12 || !is_digits(f[0]) {
            return Err("QR text must be ID|legacy ID|name|DOB ddmmyyyy|sex|...".into());
        }
        let id = PersonalId::parse(f[0]).map_err(|e| format!("personal ID: {e}"))?;
        let d = f[3];
        let dob = if d.len() == 8 && is_digits(d) {
            let v: u32 = d.parse().map_err(|_| "bad date".to_string())?;
            // ddmmyyyy → yyyymmdd
            Some((v % 10_000) * 10_000 + (v / 10_000 % 100) * 100 + v / 1_000_000)
        } else {
            None
        };
        let sex = match f[4] {
            "Nam" => Some(Sex::Male),
            "Nữ" | "Nu" => Some(Sex::Female),
            _ => None,
        };
        if kind.is_none() || kind == Some(KeyKind::Id) {
            self.push_id(id, f[2], dob, sex);
        }
        if (kind.is_none() || kind == Some(KeyKind::Legacy)) && f[1].len() == 9 && is_digits(f[1]) {
            self.push_legacy(f[1].parse().map_err(|_| "bad legacy ID".to_string())?);
        }
        Ok(())
    }

    /// Samples up to `sample` citizens (evenly spread over the file, so all
    /// provinces and birth years appear) and up to `sample` biometric
    /// hashes from a snapshot, read with the engine.
    pub fn from_snapshot(path: &Path, sample: usize) -> Result<KeyPool> {
        crate::snapshot_keys::load(path, sample)
    }
}

fn kind_name(kind: Option<KeyKind>) -> &'static str {
    kind.map_or("any", KeyKind::as_str)
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_hash(hex: &str) -> Result<[u8; 16], String> {
    TemplateDigest::parse_hex(hex)
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

/// `YYYY-MM-DD` as `yyyymmdd`, checked by the engine's [`Date`].
fn parse_iso_date(d: &str) -> Result<u32, String> {
    let date = Date::parse(d).map_err(|e| format!("date {d:?}: {e}"))?;
    Ok(yyyymmdd(date))
}

/// A date as the number `yyyymmdd`, the pool's compact form.
pub fn yyyymmdd(date: Date) -> u32 {
    u32::from(date.year()) * 10_000 + u32::from(date.month()) * 100 + u32::from(date.day())
}

/// A personal ID of valid shape that the register is unlikely to hold: a
/// real province, either sex, a birth year 1900–2025, a random serial.
pub fn random_valid_id(rng: &mut Rng) -> PersonalId {
    let place = rng.pick(&codes::PROVINCES).0;
    let sex = if rng.below(2) == 0 {
        Sex::Male
    } else {
        Sex::Female
    };
    let year = rng.range(1900, 2025) as u16;
    PersonalId::new(place, sex, year, rng.below(1_000_000) as u32)
        .expect("a province code, a sex and a year in 1900-2099 make a valid ID")
}

/// A legacy ID of valid shape (nine digits, no leading zero).
pub fn random_legacy(rng: &mut Rng) -> u32 {
    100_000_000 + rng.below(900_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_forms() {
        let mut p = KeyPool::new();
        p.parse_line("079089012345", None).unwrap();
        p.parse_line("001190000001\tNGUYỄN VĂN AN\t1990-03-14\tmale", None)
            .unwrap();
        p.parse_line("123456789", None).unwrap();
        p.parse_line("face:00112233445566778899aabbccddeeff", None)
            .unwrap();
        p.parse_line("fingerprint 00112233445566778899AABBCCDDEEFF", None)
            .unwrap();
        p.parse_line("# comment", None).unwrap();
        p.parse_line(
            "079089012346|987654321|TRAN THI BINH|14031989|Nữ|HCM|01012021",
            None,
        )
        .unwrap();
        assert_eq!(p.len(KeyKind::Id), 3);
        assert_eq!(p.len(KeyKind::Legacy), 2);
        assert_eq!(p.len(KeyKind::Face), 1);
        assert_eq!(p.len(KeyKind::Fingerprint), 1);
        let c = p.citizen(1);
        assert_eq!(c.full_name, "NGUYỄN VĂN AN");
        assert_eq!(c.date_of_birth, Some(19900314));
        assert_eq!(c.sex, Some(Sex::Male));
        let q = p.citizen(2);
        assert_eq!(q.date_of_birth, Some(19890314));
        assert_eq!(q.sex, Some(Sex::Female));
        assert!(p
            .parse_line("00112233445566778899aabbccddeeff", None)
            .is_err());
        p.parse_line("00112233445566778899aabbccddeeff", Some(KeyKind::Face))
            .unwrap();
        assert!(p.parse_line("12345", None).is_err());
        assert!(p.parse_line("123456789", Some(KeyKind::Id)).is_err());
    }

    #[test]
    fn unknown_keys_come_from_the_absent_ones_when_there_are_any() {
        let mut pool = KeyPool::new();
        let mut rng = Rng::new(5);
        let absent = random_valid_id(&mut rng);
        pool.push_absent_id(absent);
        pool.push_absent_legacy(123_456_789);
        for _ in 0..100 {
            assert_eq!(pool.unknown_id(&mut rng), absent);
            assert_eq!(pool.unknown_legacy(&mut rng), 123_456_789);
        }
        // Without any, a random key of valid shape.
        let empty = KeyPool::new();
        let legacy = empty.unknown_legacy(&mut rng);
        assert!((100_000_000..1_000_000_000).contains(&legacy));
        assert_ne!(empty.unknown_id(&mut rng), empty.unknown_id(&mut rng));
    }

    #[test]
    fn synthetic_ids_are_valid() {
        let mut rng = Rng::new(9);
        for _ in 0..10_000 {
            let id = random_valid_id(&mut rng);
            assert_eq!(PersonalId::parse(&id.to_string()), Ok(id));
            assert!((1900..=2025).contains(&id.birth_year()));
        }
        let pool = KeyPool::synthetic(100, 1);
        assert_eq!(pool.len(KeyKind::Id), 100);
        assert_eq!(pool.citizen(0).sex, Some(pool.id(0).sex()));
    }
}
