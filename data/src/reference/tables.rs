//! The rows of the reference tables, as the generator reads them.

use dancu_engine::{Country, Ethnicity, Religion, Sex};

/// A GSO socio-economic region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    /// Đồng bằng sông Hồng (RRD).
    RedRiverDelta,
    /// Trung du và miền núi phía Bắc (NMM).
    NorthernMountains,
    /// Bắc Trung Bộ và Duyên hải miền Trung (NCC).
    NorthCentralCoast,
    /// Tây Nguyên (CH).
    CentralHighlands,
    /// Đông Nam Bộ (SE).
    SouthEast,
    /// Đồng bằng sông Cửu Long (MD).
    MekongDelta,
}

impl Region {
    /// All regions, in the column order of the `*_regions.csv` tables.
    pub const ALL: [Region; 6] = [
        Region::RedRiverDelta,
        Region::NorthernMountains,
        Region::NorthCentralCoast,
        Region::CentralHighlands,
        Region::SouthEast,
        Region::MekongDelta,
    ];

    /// The short code used in the tables (`RRD`, `NMM`, `NCC`, `CH`, `SE`, `MD`).
    pub fn code(self) -> &'static str {
        ["RRD", "NMM", "NCC", "CH", "SE", "MD"][self.index()]
    }

    /// Position in [`Region::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub(super) fn parse(code: &str) -> Region {
        Region::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .unwrap_or_else(|| panic!("unknown region code {code:?} in provinces.csv"))
    }
}

/// One of the 63 provinces.
#[derive(Clone, Debug)]
pub struct Province {
    /// GSO code, the first three digits of a personal ID.
    pub code: u16,
    /// Name, as in [`dancu_engine::codes::PROVINCES`].
    pub name: String,
    /// 2019 census population.
    pub population: u64,
    /// Males, 2019.
    pub male: u64,
    /// Females, 2019.
    pub female: u64,
    /// Urban population, 2019.
    pub urban: u64,
    /// Region.
    pub region: Region,
}

impl Province {
    /// Whether it is one of the five centrally run cities (written
    /// "Thành phố ..." in addresses rather than "Tỉnh ...").
    pub fn is_city(&self) -> bool {
        matches!(self.code, 1 | 31 | 48 | 79 | 92)
    }

    /// The name as written at the end of an address.
    pub fn address_name(&self) -> String {
        let prefix = if self.is_city() {
            "Thành phố"
        } else {
            "Tỉnh"
        };
        format!("{prefix} {}", self.name)
    }
}

/// The kind of a district-level unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistrictKind {
    /// Quận: urban district of a city.
    Quan,
    /// Huyện: rural district.
    Huyen,
    /// Thị xã: town.
    ThiXa,
    /// Thành phố: provincial city.
    ThanhPho,
}

impl DistrictKind {
    /// The Vietnamese word, capitalised as in addresses.
    pub fn word(self) -> &'static str {
        match self {
            DistrictKind::Quan => "Quận",
            DistrictKind::Huyen => "Huyện",
            DistrictKind::ThiXa => "Thị xã",
            DistrictKind::ThanhPho => "Thành phố",
        }
    }
}

/// One of the 712 districts of 2019.
#[derive(Clone, Debug)]
pub struct District {
    /// Province code.
    pub province_code: u16,
    /// GSO district code.
    pub code: u16,
    /// Quận, huyện, thị xã or thành phố.
    pub kind: DistrictKind,
    /// Name without the kind ("Ba Đình", "1").
    pub name: String,
    /// 2019 population.
    pub population: u64,
    /// 2019 urban population.
    pub urban: u64,
}

impl District {
    /// The name as written in an address: "Quận Ba Đình", "Huyện Hải Hậu".
    pub fn address_name(&self) -> String {
        format!("{} {}", self.kind.word(), self.name)
    }
}

/// One of the 54 ethnic groups.
#[derive(Clone, Debug)]
pub struct EthnicGroup {
    /// The engine's code for the group.
    pub ethnicity: Ethnicity,
    /// 2019 census count.
    pub population: u64,
}

/// The census count of one ethnic group in one province (groups under
/// 0.05 % of a province are only counted in its `other` total).
#[derive(Clone, Debug)]
pub struct EthnicCount {
    /// Province code.
    pub province_code: u16,
    /// The group, or `None` for the province's "other" total.
    pub ethnicity: Option<Ethnicity>,
    /// People, 2019.
    pub count: u64,
}

/// A religion and its census share.
#[derive(Clone, Debug)]
pub struct ReligionShare {
    /// The engine's code.
    pub religion: Religion,
    /// Percent of the population, 2019.
    pub pct: f64,
    /// Share of the followers living in each region (assumption; all zero for
    /// no religion, the remainder everywhere).
    pub regions: [f64; 6],
}

/// A name with relative weights for three birth cohorts.
#[derive(Clone, Debug)]
pub struct CohortName {
    /// The sex the name is used for.
    pub sex: Sex,
    /// The name, with diacritics (NFC).
    pub name: String,
    /// Weights for people born before 1975, 1975–1999 and from 2000.
    pub weights: [f64; 3],
}

/// A weighted surname.
#[derive(Clone, Debug)]
pub struct Surname {
    /// The surname.
    pub name: String,
    /// The southern variant (`Huỳnh` for `Hoàng`, `Võ` for `Vũ`), if any.
    pub southern_variant: Option<String>,
    /// Percent of the population (for the top 14 as sourced; the others are
    /// scaled to share the remainder).
    pub pct: f64,
}

/// A minority group's surname.
#[derive(Clone, Debug)]
pub struct EthnicSurname {
    /// The group.
    pub ethnicity: Ethnicity,
    /// The surname.
    pub name: String,
    /// Relative weight within the group.
    pub weight: f64,
}

/// A five-year age group of the pyramid.
#[derive(Clone, Debug)]
pub struct AgeGroup {
    /// First age of the group.
    pub from: u8,
    /// Last age of the group (100 for the open 85+ group).
    pub to: u8,
    /// Percent of the population.
    pub pct: f64,
    /// Percent of males within the group.
    pub male_pct: f64,
}

/// A country for births abroad.
#[derive(Clone, Debug)]
pub struct CountryCode {
    /// The place code used in personal IDs (101–295).
    pub code: u16,
    /// ISO 3166-1 alpha-2 code.
    pub iso2: Country,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name.
    pub name_en: String,
    /// Assumed relative share of births abroad.
    pub weight: f64,
}

/// ABO and RhD shares.
#[derive(Clone, Debug)]
pub struct BloodShares {
    /// Percent of O, A, B and AB (source S3 of `blood_types.csv`).
    pub abo: [(&'static str, f64); 4],
    /// Percent RhD negative (midpoint of the national figure, source S2).
    pub rh_negative_pct: f64,
}

/// Parts of made-up place names.
#[derive(Clone, Debug, Default)]
pub struct PlaceNames {
    /// First syllables of ward and commune names.
    pub first: Vec<String>,
    /// Second syllables.
    pub second: Vec<String>,
    /// Street names.
    pub streets: Vec<String>,
    /// Village prefixes by region ("Thôn", "Bản", "Ấp", ...).
    pub village_prefixes: [Vec<String>; 6],
    /// Syllables for village names in the northern mountains.
    pub mountain_villages: Vec<String>,
}
