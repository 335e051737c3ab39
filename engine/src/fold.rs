//! Name folding for verification.
//!
//! Gateways send names as they read them: upper-case without diacritics from
//! a card's OCR or QR code ("NGUYEN VAN AN"), or properly written ("Nguyễn Văn
//! An"), in NFC or NFD, with stray spaces. Folding lower-cases, strips every
//! diacritic (đ/Đ become d), and collapses runs of whitespace to one space, so
//! two spellings of one name fold to the same string.

use std::sync::LazyLock;

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// The Latin blocks Vietnamese names are written in: U+00C0–U+024F (Latin-1
/// Supplement letters, Latin Extended-A/B: đ, ơ, ư, ă, â …) and U+1E00–U+1EFF
/// (Latin Extended Additional: ạ, ả, ấ, ầ, ẩ, ẫ, ậ, ắ … ỹ).
const BLOCKS: [(u32, u32); 2] = [(0x00C0, 0x0250), (0x1E00, 0x1F00)];

/// For each letter of [`BLOCKS`], its folded ASCII letter, or 0 where the
/// letter has none (then the general path decides). Computed once from the
/// Unicode decomposition tables, so it cannot disagree with them.
static ASCII_FOLD: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut table = Vec::new();
    for (start, end) in BLOCKS {
        for cp in start..end {
            let folded = char::from_u32(cp).map(|c| {
                let mut chars = FoldedChars::new("").slow_path(c);
                match (chars.next(), chars.next()) {
                    (Some(f), None) if f.is_ascii() => f as u8,
                    _ => 0,
                }
            });
            table.push(folded.unwrap_or(0));
        }
    }
    table
});

#[inline]
fn table_fold(c: char) -> Option<char> {
    let cp = c as u32;
    let mut base = 0;
    for (start, end) in BLOCKS {
        if (start..end).contains(&cp) {
            let b = ASCII_FOLD[base + (cp - start) as usize];
            return (b != 0).then_some(b as char);
        }
        base += (end - start) as usize;
    }
    None
}

/// The folded characters of a string, produced lazily: lower-case letters
/// without diacritics, one space between words, no space at either end.
pub struct FoldedChars<'a> {
    chars: std::str::Chars<'a>,
    pending_space: bool,
    started: bool,
    after_space: Option<char>,
    lower: Option<std::char::ToLowercase>,
}

impl<'a> FoldedChars<'a> {
    /// Folds `s`.
    pub fn new(s: &'a str) -> FoldedChars<'a> {
        FoldedChars {
            chars: s.chars(),
            pending_space: false,
            started: false,
            after_space: None,
            lower: None,
        }
    }

    /// A non-ASCII letter outside the table: drop its diacritics through the
    /// canonical decomposition, then lower-case what is left.
    fn slow_path(mut self, c: char) -> Self {
        let mut base = None;
        if matches!(c, 'đ' | 'Đ') {
            base = Some('d');
        } else {
            decompose_canonical(c, |d| {
                if base.is_none() {
                    base = Some(d);
                }
            });
        }
        self.lower = Some(base.unwrap_or(c).to_lowercase());
        self
    }
}

impl Iterator for FoldedChars<'_> {
    type Item = char;

    #[inline]
    fn next(&mut self) -> Option<char> {
        if let Some(c) = self.after_space.take() {
            return Some(c);
        }
        if let Some(lower) = &mut self.lower {
            match lower.next() {
                Some(c) => return Some(c),
                None => self.lower = None,
            }
        }
        loop {
            let c = self.chars.next()?;
            let folded = if c.is_ascii() {
                if c.is_ascii_whitespace() {
                    self.pending_space = self.started;
                    continue;
                }
                c.to_ascii_lowercase()
            } else if let Some(f) = table_fold(c) {
                f
            } else if c.is_whitespace() {
                self.pending_space = self.started;
                continue;
            } else if is_combining_mark(c) {
                continue;
            } else {
                let mut lower = FoldedChars::new("")
                    .slow_path(c)
                    .lower
                    .expect("slow_path sets lower");
                match lower.next() {
                    Some(f) => {
                        self.lower = Some(lower);
                        f
                    }
                    None => continue,
                }
            };
            if std::mem::take(&mut self.pending_space) {
                // Emit the space now and the character on the next call.
                self.after_space = Some(folded);
                return Some(' ');
            }
            self.started = true;
            return Some(folded);
        }
    }
}

/// Folds `s` byte by byte, calling `push` with each byte of the folded
/// string, when every character of `s` is ASCII or a letter of
/// [`ASCII_FOLD`] (almost every name and address, with or without
/// diacritics); returns false, having pushed part of it, for any other
/// character (a combining mark, a non-ASCII space, another script), which
/// the general path folds. The steps are [`FoldedChars::next`]'s, in its
/// order, one byte per ASCII character instead of a `char` state
/// machine (the iterator was 8 % of `dancu-data match`'s time at 100 M).
#[inline]
fn fold_ascii_table(s: &str, mut push: impl FnMut(u8)) -> bool {
    let bytes = s.as_bytes();
    let (mut pending_space, mut started) = (false, false);
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        let folded = if b.is_ascii() {
            at += 1;
            if b.is_ascii_whitespace() {
                pending_space = started;
                continue;
            }
            b.to_ascii_lowercase()
        } else {
            let Some(c) = s.get(at..).and_then(|rest| rest.chars().next()) else {
                return false;
            };
            at += c.len_utf8();
            match table_fold(c) {
                Some(f) => f as u8,
                None => return false,
            }
        };
        if std::mem::take(&mut pending_space) {
            push(b' ');
        }
        started = true;
        push(folded);
    }
    true
}

/// Folds `name` into `out` (cleared first). See the module docs.
pub fn fold_into(name: &str, out: &mut String) {
    out.clear();
    if !fold_ascii_table(name, |b| out.push(char::from(b))) {
        out.clear();
        out.extend(FoldedChars::new(name));
    }
}

/// Folds `name` into a new string.
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    fold_into(name, &mut out);
    out
}

/// Bytes of a folded string [`names_match`] folds on the stack; a longer
/// one goes through the general path.
const STACK_FOLD: usize = 256;

/// `s` folded by [`fold_ascii_table`] into a stack buffer, or `None` when
/// that path cannot fold it or the result is longer than [`STACK_FOLD`].
struct StackFold {
    bytes: [u8; STACK_FOLD],
    len: usize,
}

impl StackFold {
    #[inline]
    fn new(s: &str) -> Option<StackFold> {
        let mut fold = StackFold {
            bytes: [0; STACK_FOLD],
            len: 0,
        };
        let mut overflow = false;
        let folded = fold_ascii_table(s, |b| match fold.bytes.get_mut(fold.len) {
            Some(slot) => {
                *slot = b;
                fold.len += 1;
            }
            None => overflow = true,
        });
        (folded && !overflow).then_some(fold)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Whether two names fold to the same string. Allocates nothing.
pub fn names_match(a: &str, b: &str) -> bool {
    // Folding is a function: equal strings fold alike (the usual case when a
    // gateway sends the name as the register spells it).
    if a == b {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return ascii_names_match(a, b);
    }
    if let (Some(a), Some(b)) = (StackFold::new(a), StackFold::new(b)) {
        return a.as_bytes() == b.as_bytes();
    }
    FoldedChars::new(a).eq(FoldedChars::new(b))
}

/// [`names_match`] for ASCII strings: there folding only lower-cases and
/// collapses ASCII whitespace (the same set `split_ascii_whitespace` splits
/// on), so the folded strings are equal exactly when the words are equal
/// ignoring ASCII case.
fn ascii_names_match(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split_ascii_whitespace(), b.split_ascii_whitespace());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_vietnamese_names() {
        let cases = [
            ("Nguyễn Văn An", "nguyen van an"),
            ("NGUYEN VAN AN", "nguyen van an"),
            ("  Trần   Thị\tThu  Hương ", "tran thi thu huong"),
            ("Đặng Đình Đức", "dang dinh duc"),
            ("đỗ thị ngọc ánh", "do thi ngoc anh"),
            ("Huỳnh Thị Mỹ Lệ", "huynh thi my le"),
            ("Phạm Quốc Việt", "pham quoc viet"),
            ("Hồ Ngọc Ẩn", "ho ngoc an"),
            ("Lý Ư Ợ", "ly u o"),
            ("Dương Thị Ỷ", "duong thi y"),
        ];
        for (name, folded) in cases {
            assert_eq!(fold(name), folded, "{name}");
        }
    }

    #[test]
    fn nfd_input_folds_like_nfc() {
        use unicode_normalization::UnicodeNormalization;
        let nfc = "Nguyễn Thị Ánh Tuyết";
        let nfd: String = nfc.nfd().collect();
        assert_ne!(nfc, nfd);
        assert_eq!(fold(&nfd), fold(nfc));
        assert!(names_match(&nfd, "NGUYEN THI ANH TUYET"));
    }

    /// The obvious implementation: one character at a time through the
    /// Unicode tables, collapsing whitespace at the end.
    fn naive_fold(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_whitespace() {
                out.push(' ');
            } else if is_combining_mark(c) {
                continue;
            } else if matches!(c, 'đ' | 'Đ') {
                out.push('d');
            } else {
                let mut base = None;
                decompose_canonical(c, |d| {
                    base.get_or_insert(d);
                });
                out.extend(base.unwrap_or(c).to_lowercase());
            }
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_naive_fold(s in "[ \\ta-zA-Z\u{00C0}-\u{024F}\u{1E00}-\u{1EFF}\u{0300}-\u{036F}\u{0130}\u{3000}]{0,24}") {
            proptest::prop_assert_eq!(fold(&s), naive_fold(&s));
            proptest::prop_assert_eq!(fold(&fold(&s)), fold(&s));
            proptest::prop_assert!(names_match(&s, &fold(&s).to_uppercase()) || fold(&s).to_uppercase().to_lowercase() != fold(&s));
        }
    }

    proptest::proptest! {
        /// The fast paths of `names_match` (equal strings, ASCII) agree
        /// with comparing the folded strings.
        #[test]
        fn names_match_is_equal_folds(
            a in "[ \\t\\x0b\\naAbB\u{00C0}\u{0300}]{0,8}",
            b in "[ \\t\\x0b\\naAbB\u{00C0}\u{0300}]{0,8}",
        ) {
            proptest::prop_assert_eq!(names_match(&a, &b), fold(&a) == fold(&b));
            proptest::prop_assert!(names_match(&a, &a));
        }
    }

    /// The general path alone: what `fold_into` gave before its fast path.
    fn general_fold(s: &str) -> String {
        FoldedChars::new(s).collect()
    }

    proptest::proptest! {
        /// The byte-wise path folds exactly as the general path, on any
        /// text (its own alphabet weighted towards what it handles: ASCII,
        /// the Vietnamese blocks, and the marks and spaces it hands over).
        #[test]
        fn fast_path_folds_as_the_general_path(
            s in proptest::prop_oneof![
                "\\PC{0,40}",
                "\\PC*",
                "[ \t\n\x0b\x0c\ra-zA-Z0-9,.\u{00A0}\u{00C0}-\u{024F}\u{1E00}-\u{1EFF}\u{0300}-\u{036F}\u{0130}\u{3000}]{0,40}",
            ],
            t in "[ \taAeE\u{00C0}\u{00E9}\u{1EBF}\u{0301}\u{0110}]{0,6}",
        ) {
            proptest::prop_assert_eq!(fold(&s), general_fold(&s));
            let mut out = String::from("stale");
            fold_into(&s, &mut out);
            proptest::prop_assert_eq!(&out, &general_fold(&s));
            proptest::prop_assert_eq!(names_match(&s, &t), general_fold(&s) == general_fold(&t));
            proptest::prop_assert_eq!(names_match(&t, &s), general_fold(&s) == general_fold(&t));
        }
    }

    #[test]
    fn long_names_leave_the_stack_path() {
        let long = "Nguyễn ".repeat(60);
        assert!(long.len() > STACK_FOLD);
        assert!(names_match(&long, &long.to_uppercase().replace('Ễ', "E")));
        assert!(!names_match(&long, &format!("{long}x")));
    }

    #[test]
    fn different_names_differ() {
        assert!(!names_match("Nguyễn Văn An", "Nguyễn Văn Anh"));
        assert!(!names_match("NGUYEN VAN AN", "NGUYEN VANAN"));
        assert!(names_match("nguyen  van an", "NGUYEN VAN AN"));
        assert!(!names_match("", "A"));
    }
}
