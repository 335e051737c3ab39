//! How the text heap stores a string: a length prefix of ASCII bytes, then
//! the UTF-8 bytes. The builder writes this encoding, the reader reads it.

use std::ops::Range;

/// Appends a string length as the heap's prefix: 6-bit groups, least
/// significant first, `0x40 | group` while more follow and `group` for the
/// last. Every prefix byte is ASCII, so a heap of valid strings is valid UTF-8
/// as a whole (see [`crate::Snapshot::verify_checksums`]).
pub(crate) fn push_text_len(heap: &mut Vec<u8>, mut len: usize) {
    while len >= 0x40 {
        heap.push(0x40 | (len & 0x3F) as u8);
        len >>= 6;
    }
    heap.push(len as u8);
}

/// The byte range of the heap string at `offset`; `None` if the prefix is
/// malformed or runs past the heap (possible only in an unverified file).
#[inline]
pub(crate) fn text_range(heap: &[u8], offset: u32) -> Option<Range<usize>> {
    let mut at = offset as usize;
    let mut len = 0usize;
    for shift in (0..36).step_by(6) {
        let b = *heap.get(at)?;
        at += 1;
        if b >= 0x80 {
            return None;
        }
        len |= usize::from(b & 0x3F) << shift;
        if b < 0x40 {
            let end = at.checked_add(len)?;
            return (end <= heap.len()).then_some(at..end);
        }
    }
    None
}

/// The bytes of a heap string, without checking that they are UTF-8.
pub(crate) fn read_text_bytes(heap: &[u8], offset: u32) -> Option<&[u8]> {
    heap.get(text_range(heap, offset)?)
}

/// Reads a heap string, checking it is UTF-8.
pub(crate) fn read_text(heap: &[u8], offset: u32) -> Option<&str> {
    std::str::from_utf8(read_text_bytes(heap, offset)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_prefixes_round_trip_and_stay_ascii() {
        let mut heap = vec![0u8];
        let mut offsets = Vec::new();
        for len in (0..300).chain([4095, 4096, 70_000]) {
            offsets.push((heap.len() as u32, len));
            push_text_len(&mut heap, len);
            heap.extend(std::iter::repeat_n(b'x', len));
        }
        for (offset, len) in offsets {
            assert_eq!(text_range(&heap, offset).map(|r| r.len()), Some(len));
        }
        let mut prefix = Vec::new();
        push_text_len(&mut prefix, usize::MAX >> 28);
        assert!(prefix.iter().all(u8::is_ascii));
        assert_eq!(text_range(&[0x41], 0), None, "a prefix that never ends");
        assert_eq!(text_range(&[0x05, b'a'], 0), None, "a string past the end");
        assert_eq!(text_range(&[0x80], 0), None, "a non-ASCII prefix byte");
    }
}
