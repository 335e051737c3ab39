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

    /// Fields in either set.
    pub fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
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

/// Whether any byte of `bytes` must be escaped in a JSON string: a control
/// character, `"` or `\`. Tests eight bytes per step with the word tricks of
/// "Bit Twiddling Hacks" (`hasless`, `haszero`), which are exact about
/// whether such a byte exists.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    // One branch per word: the three tests are or-ed, not short-circuited.
    let word_needs_escape = |v: u64| {
        (v.wrapping_sub(ONES * 0x20) & !v & HIGHS)
            | zero_bytes(v ^ (ONES * u64::from(b'"')))
            | zero_bytes(v ^ (ONES * u64::from(b'\\')))
            != 0
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let v = u64::from_ne_bytes(word.try_into().expect("chunks of eight bytes"));
        if word_needs_escape(v) {
            return true;
        }
    }
    let tail = words.remainder();
    if tail.is_empty() {
        return false;
    }
    if bytes.len() >= 8 {
        // The last eight bytes, overlapping the words already tested: one
        // load, where copying the tail into a padded word would stall on
        // store forwarding.
        let last = &bytes[bytes.len() - 8..];
        return word_needs_escape(u64::from_ne_bytes(last.try_into().expect("eight bytes")));
    }
    tail.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Names and addresses almost never need escaping: one scan, eight bytes
    // at a time, and one copy.
    if !needs_escape(bytes) {
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

/// Appends a word of the API's vocabularies (sex, ethnic group, religion,
/// ...) as a JSON string, or `null`: these are constants that need no
/// escaping (a test checks every one), so they skip [`write_str`]'s scan.
fn word(out: &mut Vec<u8>, w: Option<&'static str>) {
    match w {
        Some(w) => {
            out.push(b'"');
            out.extend_from_slice(w.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn country(out: &mut Vec<u8>, c: Option<crate::citizen::Country>) {
    match c {
        Some(c) => {
            out.push(b'"');
            out.extend_from_slice(&c.bytes());
            out.push(b'"');
        }
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
    country(out, r.nationality);
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

/// Starts loading the heap strings that [`write_citizen_json`] will read
/// for `view` and `fields`, and returns at once. A batch calls it a few
/// records ahead of the writer, so that the writer finds the strings in
/// cache instead of stalling on about ten misses per whole record.
/// (Representatives live in a side table and are left to the writer: few
/// citizens have one.)
pub fn prefetch_citizen_json(view: &CitizenView<'_>, fields: FieldSet) {
    use crate::format::{FLAG_FATHER, FLAG_HOUSEHOLD, FLAG_MOTHER, FLAG_SPOUSE};
    let r = view.raw();
    if fields.has(FULL_NAME) {
        view.prefetch_text(r.full_name);
    }
    let places = [
        r.birth_registration_place,
        r.hometown,
        r.permanent_residence,
        r.temporary_residence,
        r.current_residence,
    ];
    for (field, offset) in PLACES.into_iter().zip(places) {
        if fields.has(field) && offset.get() != 0 {
            view.prefetch_text(offset);
        }
    }
    let named = [
        (RELATIVES[0], FLAG_FATHER, r.father_name),
        (RELATIVES[1], FLAG_MOTHER, r.mother_name),
        (RELATIVES[2], FLAG_SPOUSE, r.spouse_name),
        (HOUSEHOLD, FLAG_HOUSEHOLD, r.household_head_name),
    ];
    for (field, flag, offset) in named {
        if fields.has(field) && r.flags & flag != 0 {
            view.prefetch_text(offset);
        }
    }
}

/// Appends the record as a JSON object with the fields of `fields`, in
/// [`FIELDS`] order; a field in the set with no value is `null`.
///
/// Every key is a literal with its leading comma (`,"full_name":`), so that
/// it compiles to a few moves instead of a call to `memcpy`; the comma of
/// the first field is overwritten by the opening brace at the end.
pub fn write_citizen_json(view: &CitizenView<'_>, fields: FieldSet, out: &mut Vec<u8>) {
    let heap = HeapValues::read(view, fields);
    out.reserve(if fields == FieldSet::ALL { 1024 } else { 256 });
    let start = out.len();
    if fields.has(0) {
        out.extend_from_slice(b",\"id\":");
        id(out, Some(view.id()));
    }
    if fields.has(1) {
        out.extend_from_slice(b",\"legacy_id\":");
        match view.legacy_id() {
            Some(l) => {
                out.push(b'"');
                out.extend_from_slice(&crate::id::fixed_digits::<9>(u64::from(l.get())));
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    if fields.has(FULL_NAME) {
        out.extend_from_slice(b",\"full_name\":");
        write_str(out, heap.full_name);
    }
    if fields.has(3) {
        out.extend_from_slice(b",\"date_of_birth\":");
        date(out, Some(view.date_of_birth()));
    }
    if fields.has(4) {
        out.extend_from_slice(b",\"sex\":");
        word(out, Some(view.sex().as_str()));
    }
    if fields.has(PLACES[0]) {
        out.extend_from_slice(b",\"birth_registration_place\":");
        opt_str(out, heap.places[0]);
    }
    if fields.has(PLACES[1]) {
        out.extend_from_slice(b",\"hometown\":");
        opt_str(out, heap.places[1]);
    }
    if fields.has(7) {
        out.extend_from_slice(b",\"ethnicity\":");
        word(out, view.ethnicity().map(|e| e.as_str()));
    }
    if fields.has(8) {
        out.extend_from_slice(b",\"religion\":");
        word(out, view.religion().map(|r| r.as_str()));
    }
    if fields.has(9) {
        out.extend_from_slice(b",\"nationality\":");
        country(out, view.nationality());
    }
    if fields.has(10) {
        out.extend_from_slice(b",\"marital_status\":");
        word(out, view.marital_status().map(|m| m.as_str()));
    }
    if fields.has(PLACES[2]) {
        out.extend_from_slice(b",\"permanent_residence\":");
        opt_str(out, heap.places[2]);
    }
    if fields.has(PLACES[3]) {
        out.extend_from_slice(b",\"temporary_residence\":");
        opt_str(out, heap.places[3]);
    }
    if fields.has(PLACES[4]) {
        out.extend_from_slice(b",\"current_residence\":");
        opt_str(out, heap.places[4]);
    }
    if fields.has(14) {
        out.extend_from_slice(b",\"blood_type\":");
        word(out, view.blood_type().map(|b| b.as_str()));
    }
    if fields.has(RELATIVES[0]) {
        out.extend_from_slice(b",\"father\":");
        relative(out, heap.relatives[0]);
    }
    if fields.has(RELATIVES[1]) {
        out.extend_from_slice(b",\"mother\":");
        relative(out, heap.relatives[1]);
    }
    if fields.has(RELATIVES[2]) {
        out.extend_from_slice(b",\"spouse\":");
        relative(out, heap.relatives[2]);
    }
    if fields.has(RELATIVES[3]) {
        out.extend_from_slice(b",\"representative\":");
        relative(out, heap.relatives[3]);
    }
    if fields.has(HOUSEHOLD) {
        out.extend_from_slice(b",\"household\":");
        match heap.household {
            Some(h) => {
                out.extend_from_slice(b"{\"head_id\":");
                id(out, h.head_id);
                out.extend_from_slice(b",\"head_name\":");
                write_str(out, h.head_name);
                out.extend_from_slice(b",\"relationship\":");
                word(out, h.relationship.map(|r| r.as_str()));
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    if fields.has(20) {
        out.extend_from_slice(b",\"date_of_death\":");
        date(out, view.date_of_death());
    }
    if fields.has(21) {
        out.extend_from_slice(b",\"biometrics\":");
        let e = view.enrolled();
        out.extend_from_slice(match (e.face, e.fingerprint) {
            (true, true) => b"[\"face\",\"fingerprint\"]",
            (true, false) => b"[\"face\"]",
            (false, true) => b"[\"fingerprint\"]",
            (false, false) => b"[]",
        });
    }
    match out.get_mut(start) {
        Some(comma) => *comma = b'{',
        None => out.push(b'{'),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn needs_escape_bytewise(bytes: &[u8]) -> bool {
        bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
    }

    #[test]
    fn every_byte_in_every_position_of_a_word_and_a_tail() {
        for len in 1..=17 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = b;
                    assert_eq!(
                        needs_escape(&bytes),
                        needs_escape_bytewise(&bytes),
                        "byte {b:#04x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!needs_escape(b""));
    }

    #[test]
    fn vocabulary_words_need_no_escaping() {
        use crate::citizen::*;
        use crate::codes::{ETHNIC_GROUPS, RELIGIONS};
        let words = ETHNIC_GROUPS
            .iter()
            .chain(RELIGIONS.iter())
            .copied()
            .chain((0..=255).filter_map(Sex::from_code).map(Sex::as_str))
            .chain(
                (0..=255)
                    .filter_map(MaritalStatus::from_code)
                    .map(MaritalStatus::as_str),
            )
            .chain(
                (0..=255)
                    .filter_map(BloodType::from_code)
                    .map(BloodType::as_str),
            )
            .chain(
                (0..=255)
                    .filter_map(Relationship::from_code)
                    .map(Relationship::as_str),
            );
        for w in words {
            assert!(!needs_escape(w.as_bytes()), "{w:?}");
        }
    }

    proptest! {
        #[test]
        fn needs_escape_agrees_with_the_bytewise_test(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(needs_escape(&bytes), needs_escape_bytewise(&bytes));
        }

        #[test]
        fn written_strings_parse_back(s in "\\PC*|[\"\\\\\\x00-\\x1f a-z]*") {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out).expect("valid JSON");
            prop_assert_eq!(back, s);
        }
    }
}
