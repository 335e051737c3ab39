//! Random citizens for tests, and snapshot builders over both backing stores.

use dancu_engine::*;
use proptest::prelude::*;

/// A valid citizen whose ID number is derived from `n`, so that distinct `n`
/// give distinct IDs (and legacy IDs / templates when present).
pub fn citizen(n: u32, variant: u64) -> Citizen {
    let place = codes::PROVINCES[(n as usize * 7 + variant as usize) % 63].0;
    let female = variant & 1 == 1;
    let sex = if female { Sex::Female } else { Sex::Male };
    let year = 1920 + (n % 100) as u16 + (variant % 3) as u16;
    // Serial and place together are unique for n < 63 * 1_000_000.
    let id = PersonalId::new(place, sex, year, n % 1_000_000).unwrap();
    let id =
        PersonalId::from_u64(id.get() - u64::from(id.serial()) + u64::from(n / 63 % 1_000_000))
            .unwrap();
    let names = [
        "Nguyễn Văn An",
        "Trần Thị Bích Ngọc",
        "Lê Đức Anh",
        "Phạm \"Quote\" Tú\\",
        "Đặng Thị Ánh",
    ];
    let digest = |tag: u8| {
        let mut d = [tag; 16];
        d[..4].copy_from_slice(&n.to_le_bytes());
        d[4..12].copy_from_slice(&variant.to_le_bytes());
        TemplateDigest(d)
    };
    let has = |bit: u64| variant >> bit & 1 == 1;
    let relative = |name: &str, with_id: bool| Relative {
        full_name: name.to_string(),
        id: with_id.then(|| PersonalId::parse("079060000001").unwrap()),
        nationality: Some(Country::VN),
    };
    Citizen {
        id,
        legacy_id: has(1).then(|| LegacyId::from_u32(n + 1).unwrap()),
        full_name: names[(n as usize + variant as usize) % names.len()].to_string(),
        date_of_birth: Date::new(year, (n % 12 + 1) as u8, (n % 28 + 1) as u8).unwrap(),
        sex,
        birth_registration_place: has(2).then(|| format!("Phường {}, Quận {}", n % 20, n % 7)),
        hometown: Some(format!("Xã {}, Huyện Ba Vì, Hà Nội", n % 50)),
        ethnicity: Ethnicity::from_code((n % 54 + 1) as u8),
        religion: Religion::from_code((variant % 8) as u8),
        nationality: has(3).then_some(Country::VN),
        marital_status: MaritalStatus::from_code((n % 5) as u8),
        permanent_residence: Some(format!("Số {} Phố Huế, Hà Nội", n / 4)),
        temporary_residence: has(4).then(|| "Thủ Đức, Hồ Chí Minh".to_string()),
        current_residence: Some(format!("Số {} Phố Huế, Hà Nội", n / 4)),
        blood_type: BloodType::from_code((variant % 9) as u8),
        father: has(5).then(|| relative("Nguyễn Văn Bố", has(6))),
        mother: has(6).then(|| relative("Trần Thị Mẹ", false)),
        spouse: has(7).then(|| relative("Lê Thị Vợ", true)),
        representative: has(8).then(|| relative("Hoàng Văn Giám Hộ", has(9))),
        household: has(10).then(|| Household {
            head_id: Some(id),
            head_name: "Nguyễn Văn Chủ Hộ".into(),
            relationship: Relationship::from_code((n % 8 + 1) as u8).unwrap(),
        }),
        date_of_death: has(11).then(|| Date::new(2024, 6, 1).unwrap()),
        biometric_templates: BiometricTemplates {
            face: has(12).then(|| digest(1)),
            fingerprint: has(13).then(|| digest(2)),
        },
        enrolled_modalities_ignored: None,
    }
}

/// A strategy for a population of distinct citizens.
pub fn population(max: usize) -> impl Strategy<Value = Vec<Citizen>> {
    prop::collection::vec(any::<u64>(), 0..max).prop_map(|variants| {
        variants
            .iter()
            .enumerate()
            .map(|(n, &v)| citizen(n as u32 * 13 + 1, v))
            .collect()
    })
}

/// Builds a snapshot file of `citizens` in a temporary directory; returns the
/// directory (keep it alive) and the file's bytes.
pub fn build(citizens: &[Citizen]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.snap");
    let options = BuildOptions {
        generation: 7,
        build_time_unix: Some(1_700_000_000),
        ..Default::default()
    };
    let summary = build_snapshot(&path, options, citizens).unwrap();
    assert_eq!(summary.records, citizens.len() as u64);
    assert_eq!(summary.file_bytes, std::fs::metadata(&path).unwrap().len());
    (dir, path)
}
