//! Name folding for verification.
//!
//! Gateways send names as they read them: upper-case without diacritics from
//! a card's OCR or QR code ("NGUYEN VAN AN"), or properly written ("Nguyễn Văn
//! An"), in NFC or NFD, with stray spaces. Folding lower-cases, strips every
//! diacritic (đ/Đ become d), and collapses runs of whitespace to one space, so
//! two spellings of one name fold to the same string.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Folds `name` into `out` (cleared first). See the module docs.
pub fn fold_into(name: &str, out: &mut String) {
    out.clear();
    out.reserve(name.len());
    let mut pending_space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if c.is_ascii() {
            push(out, &mut pending_space, c.to_ascii_lowercase());
            continue;
        }
        if is_combining_mark(c) {
            continue;
        }
        if matches!(c, 'đ' | 'Đ') {
            push(out, &mut pending_space, 'd');
            continue;
        }
        let mut base = None;
        decompose_canonical(c, |d| {
            if base.is_none() {
                base = Some(d);
            }
        });
        for lower in base.unwrap_or(c).to_lowercase() {
            push(out, &mut pending_space, lower);
        }
    }
}

fn push(out: &mut String, pending_space: &mut bool, c: char) {
    if std::mem::take(pending_space) {
        out.push(' ');
    }
    out.push(c);
}

/// Folds `name` into a new string.
pub fn fold(name: &str) -> String {
    let mut out = String::new();
    fold_into(name, &mut out);
    out
}

/// Whether two names fold to the same string, without allocating when both
/// are ASCII.
pub fn names_match(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        let mut x = a.split_ascii_whitespace();
        let mut y = b.split_ascii_whitespace();
        loop {
            match (x.next(), y.next()) {
                (None, None) => return true,
                (Some(p), Some(q)) if p.eq_ignore_ascii_case(q) => {}
                _ => return false,
            }
        }
    }
    fold(a) == fold(b)
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

    #[test]
    fn different_names_differ() {
        assert!(!names_match("Nguyễn Văn An", "Nguyễn Văn Anh"));
        assert!(!names_match("NGUYEN VAN AN", "NGUYEN VANAN"));
        assert!(names_match("nguyen  van an", "NGUYEN VAN AN"));
        assert!(!names_match("", "A"));
    }
}
