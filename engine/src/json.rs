//! The wire form of records and verifications: the API's JSON, written
//! straight from a [`CitizenView`] into a buffer without intermediate values.

use std::io::Write;

use crate::verify::Verification;
use crate::view::{CitizenView, HouseholdView, RelativeView};

/// JSON field names of a record, in the order they are written.
pub const FIELDS: [&str; 22] = [
    "id",
    "legacy_id",
    "full_name",
    "date_of_birth",
    "sex",
    "birth_registration_place",
    "hometown",
    "ethnicity",
    "religion",
    "nationality",
    "marital_status",
    "permanent_residence",
    "temporary_residence",
    "current_residence",
    "blood_type",
    "father",
    "mother",
    "spouse",
    "representative",
    "household",
    "date_of_death",
    "biometrics",
];

/// A set of record fields (a projection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldSet(u32);

impl FieldSet {
    /// Every field.
    pub const ALL: FieldSet = FieldSet((1 << FIELDS.len()) - 1);
    /// What `citizen:read:basic` may see: ID, name, date of birth, sex, nationality.
    pub const BASIC: FieldSet = FieldSet(1 << 0 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 9);
    /// No field.
    pub const NONE: FieldSet = FieldSet(0);

    /// Parses a comma-separated list of field names (`?fields=`).
    pub fn parse_list(list: &str) -> Result<FieldSet, String> {
        let mut set = 0;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match FIELDS.iter().position(|&f| f == name) {
                Some(i) => set |= 1 << i,
                None => {
                    return Err(format!(
                        "unknown field {name:?} (fields: {})",
                        FIELDS.join(", ")
                    ))
                }
            }
        }
        if set == 0 {
            return Err("the field list is empty".into());
        }
        Ok(FieldSet(set))
    }

    /// Fields in both sets.
    pub fn intersect(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & other.0)
    }

    /// Whether every field of `other` is in this set.
    pub fn contains(self, other: FieldSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set has no field.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        FIELDS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 >> i & 1 == 1)
            .map(|(_, &n)| n)
    }

    fn has(self, i: usize) -> bool {
        self.0 >> i & 1 == 1
    }
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Names and addresses almost never need escaping: one branch-free scan
    // (which the compiler vectorises) and one copy.
    let needs_escape = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1F => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn relative(out: &mut Vec<u8>, r: Option<RelativeView<'_>>) {
    let Some(r) = r else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"full_name\":");
    write_str(out, r.full_name);
    out.extend_from_slice(b",\"id\":");
    id(out, r.id);
    out.extend_from_slice(b",\"nationality\":");
    opt_str(out, r.nationality.as_ref().map(|c| c.as_str()));
    out.push(b'}');
}

fn id(out: &mut Vec<u8>, id: Option<crate::PersonalId>) {
    match id {
        Some(id) => {
            out.push(b'"');
            out.extend_from_slice(&id.to_digits());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn date(out: &mut Vec<u8>, d: Option<crate::Date>) {
    match d {
        Some(d) => {
            out.push(b'"');
            out.extend_from_slice(&d.to_iso());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Field positions in [`FIELDS`] of the values read from the text heap.
const FULL_NAME: usize = 2;
const PLACES: [usize; 5] = [5, 6, 11, 12, 13];
const RELATIVES: [usize; 4] = [15, 16, 17, 18];
const HOUSEHOLD: usize = 19;

/// The heap strings of a record that a projection shows, read before any of
/// them is written: each read is a likely cache miss at a random place of the
/// heap, and issued back to back they overlap instead of each stalling the
/// writer in turn (at 1 M records this halves the cost of a whole record).
struct HeapValues<'a> {
    full_name: &'a str,
    places: [Option<&'a str>; PLACES.len()],
    relatives: [Option<RelativeView<'a>>; RELATIVES.len()],
    household: Option<HouseholdView<'a>>,
}

impl<'a> HeapValues<'a> {
    #[inline]
    fn read(view: &CitizenView<'a>, fields: FieldSet) -> HeapValues<'a> {
        let place = |i: usize, read: fn(&CitizenView<'a>) -> Option<&'a str>| {
            if fields.has(PLACES[i]) {
                read(view)
            } else {
                None
            }
        };
        let relative = |i: usize, read: fn(&CitizenView<'a>) -> Option<RelativeView<'a>>| {
            if fields.has(RELATIVES[i]) {
                read(view)
            } else {
                None
            }
        };
        HeapValues {
            full_name: if fields.has(FULL_NAME) {
                view.full_name()
            } else {
                ""
            },
            places: [
                place(0, CitizenView::birth_registration_place),
                place(1, CitizenView::hometown),
                place(2, CitizenView::permanent_residence),
                place(3, CitizenView::temporary_residence),
                place(4, CitizenView::current_residence),
            ],
            relatives: [
                relative(0, CitizenView::father),
                relative(1, CitizenView::mother),
                relative(2, CitizenView::spouse),
                relative(3, CitizenView::representative),
            ],
            household: if fields.has(HOUSEHOLD) {
                view.household()
            } else {
                None
            },
        }
    }
}

fn digits(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    for slot in buf[20 - width..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[20 - width..]);
}

/// Appends the record as a JSON object with the fields of `fields`, in
/// [`FIELDS`] order; a field in the set with no value is `null`.
pub fn write_citizen_json(view: &CitizenView<'_>, fields: FieldSet, out: &mut Vec<u8>) {
    let heap = HeapValues::read(view, fields);
    out.reserve(if fields == FieldSet::ALL { 1024 } else { 256 });
    out.push(b'{');
    let mut first = true;
    for (i, name) in FIELDS.iter().enumerate() {
        if !fields.has(i) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match i {
            0 => id(out, Some(view.id())),
            1 => match view.legacy_id() {
                Some(l) => {
                    out.push(b'"');
                    digits(out, u64::from(l.get()), 9);
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            },
            FULL_NAME => write_str(out, heap.full_name),
            3 => date(out, Some(view.date_of_birth())),
            4 => write_str(out, view.sex().as_str()),
            5 => opt_str(out, heap.places[0]),
            6 => opt_str(out, heap.places[1]),
            7 => opt_str(out, view.ethnicity().map(|e| e.as_str())),
            8 => opt_str(out, view.religion().map(|r| r.as_str())),
            9 => opt_str(out, view.nationality().as_ref().map(|c| c.as_str())),
            10 => opt_str(out, view.marital_status().map(|m| m.as_str())),
            11 => opt_str(out, heap.places[2]),
            12 => opt_str(out, heap.places[3]),
            13 => opt_str(out, heap.places[4]),
            14 => opt_str(out, view.blood_type().map(|b| b.as_str())),
            15..=18 => relative(out, heap.relatives[i - RELATIVES[0]]),
            HOUSEHOLD => match heap.household {
                Some(h) => {
                    out.extend_from_slice(b"{\"head_id\":");
                    id(out, h.head_id);
                    out.extend_from_slice(b",\"head_name\":");
                    write_str(out, h.head_name);
                    out.extend_from_slice(b",\"relationship\":");
                    opt_str(out, h.relationship.map(|r| r.as_str()));
                    out.push(b'}');
                }
                None => out.extend_from_slice(b"null"),
            },
            20 => date(out, view.date_of_death()),
            _ => {
                let e = view.enrolled();
                out.extend_from_slice(match (e.face, e.fingerprint) {
                    (true, true) => b"[\"face\",\"fingerprint\"]",
                    (true, false) => b"[\"face\"]",
                    (false, true) => b"[\"fingerprint\"]",
                    (false, false) => b"[]",
                });
            }
        }
    }
    out.push(b'}');
}

/// Appends `{"match": bool, "fields": {name: bool, ...}}`.
pub fn write_verification_json(v: &Verification, out: &mut Vec<u8>) {
    out.extend_from_slice(if v.matched() {
        b"{\"match\":true,\"fields\":{"
    } else {
        b"{\"match\":false,\"fields\":{"
    });
    for (i, (name, held)) in v.fields().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(if held { b"\":true" } else { b"\":false" });
    }
    out.extend_from_slice(b"}}");
}
