//! The line format: every line opens with its sequence number and the
//! SHA-256 of the line before, then the access (or event) it records.
//!
//! ```text
//! {"seq":7,"prev":"9f…64 hex…","time":"2025-03-14T09:26:53.589793Z","client":"bank","operation":"get","source":"10.0.0.7","request":"1b2f…","fields":["personal_id","full_name"],"subject":"079089012345","legacy_id":null,"outcome":"found"}
//! ```
//!
//! The hash covers the previous line's bytes without its newline; the first
//! line of a new log has sixty-four zeros. A rotated file's first line
//! chains to the last line of the file before it, so the chain runs through
//! every file of the log.

use std::net::IpAddr;

use dancu_engine::{fixed_digits, FieldSet};
use sha2::{Digest, Sha256};

use super::{Entry, Outcome};

/// The `prev` of the first line of a log.
pub const GENESIS: [u8; 32] = [0; 32];

/// Where the chain stands: the next line's number and the hash of the last
/// line written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainState {
    /// Sequence number of the next line.
    pub next_seq: u64,
    /// SHA-256 of the last line (without its newline).
    pub prev: [u8; 32],
}

impl ChainState {
    /// A new log.
    pub const GENESIS: ChainState = ChainState {
        next_seq: 1,
        prev: GENESIS,
    };
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex_byte(&mut s, *b);
    }
    s
}

fn push_hex_byte(s: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.push(DIGITS[usize::from(b >> 4)] as char);
    s.push(DIGITS[usize::from(b & 15)] as char);
}

fn extend_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// SHA-256 of one line (without its newline).
pub fn line_hash(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

/// Caches the `YYYY-MM-DDTHH:MM:SS` text of the current second.
#[derive(Default)]
struct LineClock {
    second: u64,
    text: [u8; 19],
}

impl LineClock {
    fn text(&mut self, second: u64) -> &[u8; 19] {
        if second != self.second || self.text[0] == 0 {
            self.second = second;
            self.text = format_second(second);
        }
        &self.text
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second.
pub fn format_second(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // The engine's civil-date conversion (years 1800-2399; a clock outside
    // them is a broken clock, written as 1970-01-01).
    let date = dancu_engine::Date::from_days_since_epoch(days)
        .or_else(|_| dancu_engine::Date::new(1970, 1, 1))
        .expect("1970-01-01 is a date");
    let (y, m, d) = (i64::from(date.year()), date.month(), date.day());
    let mut t = *b"0000-00-00T00:00:00";
    let put = |t: &mut [u8; 19], at: usize, v: u64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            t[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut t, 0, y as u64, 4);
    put(&mut t, 5, u64::from(m), 2);
    put(&mut t, 8, u64::from(d), 2);
    put(&mut t, 11, rem / 3600, 2);
    put(&mut t, 14, rem / 60 % 60, 2);
    put(&mut t, 17, rem % 60, 2);
    t
}

/// Formats chained lines into a buffer. The chain advances as lines are
/// formatted; the caller writes the buffer and, if the write fails, drops
/// this state and re-reads it from the file (see `storage::open_live`).
pub struct LineFormatter {
    clock: LineClock,
    /// The chain after the last formatted line.
    pub chain: ChainState,
    names: Vec<Vec<u8>>,
    /// The last source and field list as JSON: consecutive lines mostly
    /// share them, and formatting an address allocates.
    source: Option<(Option<IpAddr>, Vec<u8>)>,
    fields: Option<(FieldSet, Vec<u8>)>,
}

impl LineFormatter {
    /// A formatter continuing `chain`; `client_names` is indexed by
    /// [`crate::keys::ClientId`].
    pub fn new(chain: ChainState, client_names: &[String]) -> LineFormatter {
        LineFormatter {
            clock: LineClock::default(),
            chain,
            names: client_names
                .iter()
                .map(|n| serde_json::to_vec(n).expect("a string serializes"))
                .collect(),
            source: None,
            fields: None,
        }
    }

    /// Opens a line: `{"seq":N,"prev":"…","time":"…",`.
    fn open_line(&mut self, out: &mut Vec<u8>, time_us: u64) {
        out.extend_from_slice(b"{\"seq\":");
        push_decimal(out, self.chain.next_seq);
        out.extend_from_slice(b",\"prev\":\"");
        extend_hex(out, &self.chain.prev);
        out.extend_from_slice(b"\",\"time\":\"");
        out.extend_from_slice(self.clock.text(time_us / 1_000_000));
        out.push(b'.');
        out.extend_from_slice(&fixed_digits::<6>(time_us % 1_000_000));
        out.extend_from_slice(b"Z\",");
    }

    /// Closes the line opened at `start` and advances the chain over it.
    fn close_line(&mut self, out: &mut Vec<u8>, start: usize) {
        out.extend_from_slice(b"}");
        self.chain.prev = line_hash(&out[start..]);
        self.chain.next_seq += 1;
        out.push(b'\n');
    }

    fn access_head(&mut self, e: &Entry, out: &mut Vec<u8>) {
        self.open_line(out, e.time_us);
        out.extend_from_slice(b"\"client\":");
        match self.names.get(usize::from(e.client)) {
            Some(name) => out.extend_from_slice(name),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"operation\":\"");
        out.extend_from_slice(e.operation.as_str().as_bytes());
        out.extend_from_slice(b"\",\"source\":");
        if self.source.as_ref().is_none_or(|(s, _)| *s != e.source) {
            let mut text = Vec::new();
            push_source(&mut text, e.source);
            self.source = Some((e.source, text));
        }
        if let Some((_, text)) = &self.source {
            out.extend_from_slice(text);
        }
        out.extend_from_slice(b",\"request\":\"");
        extend_hex(out, &e.request_id.to_be_bytes());
        out.extend_from_slice(b"\",\"fields\":");
        if self.fields.as_ref().is_none_or(|(f, _)| *f != e.fields) {
            let mut text = Vec::new();
            push_fields(&mut text, e.fields);
            self.fields = Some((e.fields, text));
        }
        if let Some((_, text)) = &self.fields {
            out.extend_from_slice(text);
        }
        if e.digest_prefix != 0 {
            out.extend_from_slice(b",\"digest_sha256_prefix\":\"");
            extend_hex(out, &e.digest_prefix.to_be_bytes());
            out.push(b'"');
        }
        out.push(b',');
    }

    /// One line for one access.
    pub fn format_entry(&mut self, e: &Entry, out: &mut Vec<u8>) {
        let start = out.len();
        self.access_head(e, out);
        out.extend_from_slice(b"\"subject\":");
        push_subject(out, e.subject);
        out.extend_from_slice(b",\"legacy_id\":");
        if e.legacy_id == 0 {
            out.extend_from_slice(b"null");
        } else {
            out.push(b'"');
            out.extend_from_slice(&fixed_digits::<9>(u64::from(e.legacy_id)));
            out.push(b'"');
        }
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(e.outcome.as_str().as_bytes());
        out.push(b'"');
        self.close_line(out, start);
    }

    /// One line for the items of one batch request: time, client, operation,
    /// source and request ID are the first item's (one request shares them),
    /// `fields` is the union over the items (what the request returned or
    /// claimed), and the subjects are grouped by outcome.
    pub fn format_batch(&mut self, items: &[Entry], out: &mut Vec<u8>) {
        let Some(first) = items.first() else { return };
        let fields = items
            .iter()
            .fold(FieldSet::NONE, |acc, e| acc.union(e.fields));
        let start = out.len();
        self.access_head(&Entry { fields, ..*first }, out);
        let mut groups = 0;
        for outcome in Outcome::ALL {
            let mut subjects = items.iter().filter(|e| e.outcome == outcome);
            let Some(head) = subjects.next() else {
                continue;
            };
            if groups > 0 {
                out.push(b',');
            }
            groups += 1;
            out.push(b'"');
            out.extend_from_slice(outcome.as_str().as_bytes());
            out.extend_from_slice(b"\":[");
            push_subject(out, head.subject);
            for e in subjects {
                out.push(b',');
                push_subject(out, e.subject);
            }
            out.push(b']');
        }
        if groups == 0 {
            // Keep the line valid JSON when no item had a well-formed ID.
            out.pop();
        }
        self.close_line(out, start);
    }

    /// One line for an event of the log itself (a cut torn tail, a recovery
    /// after an I/O error): `{"seq":..,"prev":..,"time":..,"event":..,"detail":..}`.
    pub fn format_event(&mut self, time_us: u64, event: &str, detail: &str, out: &mut Vec<u8>) {
        let start = out.len();
        self.open_line(out, time_us);
        out.extend_from_slice(b"\"event\":");
        out.extend_from_slice(&serde_json::to_vec(event).expect("a string serializes"));
        out.extend_from_slice(b",\"detail\":");
        out.extend_from_slice(&serde_json::to_vec(detail).expect("a string serializes"));
        self.close_line(out, start);
    }
}

fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_source(out: &mut Vec<u8>, source: Option<IpAddr>) {
    match source {
        Some(ip) => {
            out.push(b'"');
            out.extend_from_slice(ip.to_string().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn push_fields(out: &mut Vec<u8>, fields: FieldSet) {
    out.push(b'[');
    for (i, name) in fields.names().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    }
    out.push(b']');
}

fn push_subject(out: &mut Vec<u8>, subject: u64) {
    if subject == 0 {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'"');
        out.extend_from_slice(&fixed_digits::<12>(subject));
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time_like_rfc3339() {
        assert_eq!(&format_second(0), b"1970-01-01T00:00:00");
        assert_eq!(&format_second(1_710_408_413), b"2024-03-14T09:26:53");
        assert_eq!(&format_second(951_782_400), b"2000-02-29T00:00:00");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn decimals() {
        for v in [0, 7, 10, 12_345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }
}
