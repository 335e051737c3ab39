//! Closed vocabularies of the register: provinces, ethnic groups, religions.
//!
//! The records store small integer codes; these tables give their names. The
//! names match the census tables in `data/reference/` (sourced there), so the
//! generator and importers can map a name to its code and back.

/// The 63 provinces (before the 2025 merger) as `(GSO code, name)`, sorted by
/// code. The code is the first three digits of a personal ID registered there.
pub const PROVINCES: [(u16, &str); 63] = [
    (1, "Hà Nội"),
    (2, "Hà Giang"),
    (4, "Cao Bằng"),
    (6, "Bắc Kạn"),
    (8, "Tuyên Quang"),
    (10, "Lào Cai"),
    (11, "Điện Biên"),
    (12, "Lai Châu"),
    (14, "Sơn La"),
    (15, "Yên Bái"),
    (17, "Hòa Bình"),
    (19, "Thái Nguyên"),
    (20, "Lạng Sơn"),
    (22, "Quảng Ninh"),
    (24, "Bắc Giang"),
    (25, "Phú Thọ"),
    (26, "Vĩnh Phúc"),
    (27, "Bắc Ninh"),
    (30, "Hải Dương"),
    (31, "Hải Phòng"),
    (33, "Hưng Yên"),
    (34, "Thái Bình"),
    (35, "Hà Nam"),
    (36, "Nam Định"),
    (37, "Ninh Bình"),
    (38, "Thanh Hóa"),
    (40, "Nghệ An"),
    (42, "Hà Tĩnh"),
    (44, "Quảng Bình"),
    (45, "Quảng Trị"),
    (46, "Thừa Thiên Huế"),
    (48, "Đà Nẵng"),
    (49, "Quảng Nam"),
    (51, "Quảng Ngãi"),
    (52, "Bình Định"),
    (54, "Phú Yên"),
    (56, "Khánh Hòa"),
    (58, "Ninh Thuận"),
    (60, "Bình Thuận"),
    (62, "Kon Tum"),
    (64, "Gia Lai"),
    (66, "Đắk Lắk"),
    (67, "Đắk Nông"),
    (68, "Lâm Đồng"),
    (70, "Bình Phước"),
    (72, "Tây Ninh"),
    (74, "Bình Dương"),
    (75, "Đồng Nai"),
    (77, "Bà Rịa - Vũng Tàu"),
    (79, "Hồ Chí Minh"),
    (80, "Long An"),
    (82, "Tiền Giang"),
    (83, "Bến Tre"),
    (84, "Trà Vinh"),
    (86, "Vĩnh Long"),
    (87, "Đồng Tháp"),
    (89, "An Giang"),
    (91, "Kiên Giang"),
    (92, "Cần Thơ"),
    (93, "Hậu Giang"),
    (94, "Sóc Trăng"),
    (95, "Bạc Liêu"),
    (96, "Cà Mau"),
];

/// First and last code used for births registered abroad (country codes).
pub const ABROAD_CODES: std::ops::RangeInclusive<u16> = 101..=295;

/// The name of a province code, or `None` for a code that is not a province.
pub fn province_name(code: u16) -> Option<&'static str> {
    PROVINCES
        .binary_search_by_key(&code, |&(c, _)| c)
        .ok()
        .map(|i| PROVINCES[i].1)
}

/// The 54 ethnic groups in the order of the 2019 census ranking; the code of a
/// group is its position here plus one (1 = Kinh).
pub const ETHNIC_GROUPS: [&str; 54] = [
    "Kinh",
    "Tày",
    "Thái",
    "Mường",
    "Mông",
    "Khmer",
    "Nùng",
    "Dao",
    "Hoa",
    "Gia Rai",
    "Ê Đê",
    "Ba Na",
    "Xơ Đăng",
    "Sán Chay",
    "Cơ Ho",
    "Sán Dìu",
    "Chăm",
    "Hrê",
    "Ra Glai",
    "Mnông",
    "Xtiêng",
    "Bru Vân Kiều",
    "Thổ",
    "Khơ Mú",
    "Cơ Tu",
    "Giáy",
    "Giẻ Triêng",
    "Tà Ôi",
    "Mạ",
    "Co",
    "Chơ Ro",
    "Xinh Mun",
    "Hà Nhì",
    "Chu Ru",
    "Lào",
    "Kháng",
    "La Chí",
    "Phù Lá",
    "La Hủ",
    "La Ha",
    "Pà Thẻn",
    "Chứt",
    "Lự",
    "Lô Lô",
    "Mảng",
    "Cờ Lao",
    "Bố Y",
    "Cống",
    "Ngái",
    "Si La",
    "Pu Péo",
    "Rơ Măm",
    "Brâu",
    "Ơ Đu",
];

/// Religions as recorded by the 2019 census, by code (0 = no religion). The
/// names are the machine-readable keys used in JSON.
pub const RELIGIONS: [&str; 8] = [
    "no_religion",
    "catholic",
    "buddhist",
    "hoa_hao",
    "protestant",
    "cao_dai",
    "islam",
    "other",
];

/// The code of an ethnic group by name (exact), 1-based.
pub fn ethnicity_code(name: &str) -> Option<u8> {
    ETHNIC_GROUPS
        .iter()
        .position(|&n| n == name)
        .map(|i| i as u8 + 1)
}

/// The name of an ethnic-group code.
pub fn ethnicity_name(code: u8) -> Option<&'static str> {
    ETHNIC_GROUPS
        .get(usize::from(code).checked_sub(1)?)
        .copied()
}

/// The code of a religion key such as `"catholic"`.
pub fn religion_code(name: &str) -> Option<u8> {
    RELIGIONS.iter().position(|&n| n == name).map(|i| i as u8)
}

/// The key of a religion code.
pub fn religion_name(code: u8) -> Option<&'static str> {
    RELIGIONS.get(usize::from(code)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provinces_sorted_and_named() {
        assert!(PROVINCES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(province_name(79), Some("Hồ Chí Minh"));
        assert_eq!(province_name(3), None);
    }

    #[test]
    fn codes_round_trip() {
        for (i, name) in ETHNIC_GROUPS.iter().enumerate() {
            assert_eq!(ethnicity_code(name), Some(i as u8 + 1));
            assert_eq!(ethnicity_name(i as u8 + 1), Some(*name));
        }
        assert_eq!(ethnicity_name(0), None);
        assert_eq!(ethnicity_name(55), None);
        assert_eq!(religion_code("catholic"), Some(1));
        assert_eq!(religion_name(8), None);
    }
}
