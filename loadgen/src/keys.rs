//! Keys to look up: personal IDs (with what a verify request needs), legacy
//! IDs and biometric template hashes.
//!
//! Keys come from `dancu-data sample-keys` files, from a snapshot read with
//! the engine, or (for exercising a stub server) are made up. The pool is
//! compact — a personal ID is a `u64`, a legacy ID a `u32`, names live in
//! one string heap — so a million sampled citizens cost tens of megabytes.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// The kinds of key a request can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// 12-digit personal ID number.
    Id,
    /// 9-digit legacy ID (CMND).
    Legacy,
    /// Face template hash, 32 hex digits.
    Face,
    /// Fingerprint template hash, 32 hex digits.
    Fingerprint,
}

impl KeyKind {
    /// The name used in flags and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Id => "id",
            KeyKind::Legacy => "legacy",
            KeyKind::Face => "face",
            KeyKind::Fingerprint => "fingerprint",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sex as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// `male`
    Male,
    /// `female`
    Female,
}

impl Sex {
    /// `male` or `female`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }

    /// The sex encoded by a personal ID's century/sex digit (even = male).
    pub fn from_id(id: u64) -> Sex {
        if (id / 100_000_000) % 2 == 0 {
            Sex::Male
        } else {
            Sex::Female
        }
    }
}

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
    ids: Vec<u64>,
    facts: Vec<Facts>,
    names: String,
    addresses: String,
    legacy: Vec<u32>,
    face: Vec<[u8; 16]>,
    fingerprint: Vec<[u8; 16]>,
}

impl KeyPool {
    /// An empty pool.
    pub fn new() -> KeyPool {
        KeyPool::default()
    }

    /// Adds a personal ID with what is known about its holder.
    pub fn push_id(&mut self, id: u64, name: &str, dob: Option<u32>, sex: Option<Sex>) {
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
    pub fn id(&self, i: usize) -> u64 {
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
            let year = birth_year(id);
            let dob = year * 10_000 + (1 + rng.below(12) as u32) * 100 + 1 + rng.below(28) as u32;
            name.clear();
            name.push_str(SURNAMES[rng.below(6) as usize]);
            name.push(' ');
            name.push_str(MIDDLE[rng.below(4) as usize]);
            name.push(' ');
            name.push_str(GIVEN[rng.below(6) as usize]);
            pool.push_id(id, &name, Some(dob), Some(Sex::from_id(id)));
        }
        for _ in 0..n.div_ceil(2) {
            pool.push_legacy(100_000_000 + rng.below(900_000_000) as u32);
            pool.push_biometric(KeyKind::Face, random_hash(&mut rng));
            pool.push_biometric(KeyKind::Fingerprint, random_hash(&mut rng));
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
                let id: u64 = first.parse().map_err(|_| "bad personal ID".to_string())?;
                let name = fields.next().unwrap_or("").trim();
                let dob = match fields.next().map(str::trim) {
                    None | Some("") => None,
                    Some(d) => Some(parse_iso_date(d)?),
                };
                let sex = match fields.next().map(str::trim) {
                    None | Some("") => None,
                    Some("male") => Some(Sex::Male),
                    Some("female") => Some(Sex::Female),
                    Some(other) => return Err(format!("sex {other:?} is not male or female")),
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
        let id: u64 = f[0].parse().map_err(|_| "bad personal ID".to_string())?;
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
    if hex.len() != 32 {
        return Err(format!(
            "template hash must be 32 hex digits, found {}",
            hex.len()
        ));
    }
    let mut out = [0u8; 16];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).map_err(|_| "not hex".to_string())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| format!("{hex:?} is not hex"))?;
    }
    Ok(out)
}

fn parse_iso_date(d: &str) -> Result<u32, String> {
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(format!("date {d:?} is not YYYY-MM-DD"));
    }
    let y: u32 = d[0..4].parse().map_err(|_| format!("bad year in {d:?}"))?;
    let m: u32 = d[5..7].parse().map_err(|_| format!("bad month in {d:?}"))?;
    let day: u32 = d[8..10].parse().map_err(|_| format!("bad day in {d:?}"))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return Err(format!("date {d:?} out of range"));
    }
    Ok(y * 10_000 + m * 100 + day)
}

/// The 63 province codes that open a personal ID (GSO codes, before 2025).
pub const PROVINCE_CODES: [u16; 63] = [
    1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35, 36, 37,
    38, 40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74, 75, 77,
    79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96,
];

/// A personal ID of valid shape: a real province code, a century/sex digit
/// for 1900–2099 and a birth year no later than 2025.
pub fn random_valid_id(rng: &mut Rng) -> u64 {
    let province = PROVINCE_CODES[rng.below(PROVINCE_CODES.len() as u64) as usize] as u64;
    let (g, yy) = loop {
        let g = rng.below(4);
        let yy = rng.below(100);
        if g < 2 || yy <= 25 {
            break (g, yy);
        }
    };
    province * 1_000_000_000 + g * 100_000_000 + yy * 1_000_000 + rng.below(1_000_000)
}

/// The birth year a personal ID encodes.
pub fn birth_year(id: u64) -> u32 {
    let g = (id / 100_000_000 % 10) as u32;
    let yy = (id / 1_000_000 % 100) as u32;
    1900 + (g / 2) * 100 + yy
}

fn random_hash(rng: &mut Rng) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    h[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    h
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
    fn synthetic_ids_are_valid() {
        let mut rng = Rng::new(9);
        for _ in 0..10_000 {
            let id = random_valid_id(&mut rng);
            let s = format!("{id:012}");
            assert_eq!(s.len(), 12);
            let province: u16 = s[0..3].parse().unwrap();
            assert!(PROVINCE_CODES.contains(&province));
            assert!(birth_year(id) <= 2025);
        }
        let pool = KeyPool::synthetic(100, 1);
        assert_eq!(pool.len(KeyKind::Id), 100);
        assert_eq!(pool.citizen(0).sex, Some(Sex::from_id(pool.id(0))));
    }
}
