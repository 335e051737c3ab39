//! The reference tables: the population facts the generator follows.
//!
//! Each table is a CSV file in `data/reference/` that a person can read and
//! check; its first line (`# ...`) names its source, or says that the table is
//! dancu's own assumption. The files are compiled into the crate and parsed
//! once, on first use of [`reference()`].
//!
//! | file | content |
//! | --- | --- |
//! | `provinces.csv` | 63 provinces: GSO code, name, 2019 census population, sex, urban/rural, region |
//! | `districts_2019.csv` | 712 districts with population and urban/rural split |
//! | `ethnic_groups.csv` | 54 ethnic groups, 2019 census counts |
//! | `ethnic_provinces.csv` | ethnic groups by province, 2019 census |
//! | `ethnic_surnames.csv` | surnames of large minority groups (assumption) |
//! | `religions.csv` | religion shares, 2019 census |
//! | `religion_regions.csv` | where followers live, by region (assumption) |
//! | `surnames.csv`, `surnames_other.csv` | surname shares (top 14 sourced, the rest assumed) |
//! | `middle_names.csv`, `given_names.csv` | names by sex and birth cohort (assumption) |
//! | `blood_types.csv` | ABO and RhD shares |
//! | `age_sex_2019.csv` | the census figures found for age |
//! | `age_pyramid.csv` | the full age pyramid by sex (assumption fitted to the figures found) |
//! | `place_names.csv` | parts of ward, commune, village and street names (assumption) |
//! | `countries.csv` | country codes 101–295 for births abroad (dancu's own assignment) |

use std::sync::LazyLock;

use dancu_engine::codes;
use dancu_engine::{Country, Ethnicity, Religion, Sex};
use serde::Deserialize;

/// Every table file, as `(file name, contents)`, in the order of the module docs.
pub const FILES: [(&str, &str); 16] = [
    ("provinces.csv", include_str!("../reference/provinces.csv")),
    (
        "districts_2019.csv",
        include_str!("../reference/districts_2019.csv"),
    ),
    (
        "ethnic_groups.csv",
        include_str!("../reference/ethnic_groups.csv"),
    ),
    (
        "ethnic_provinces.csv",
        include_str!("../reference/ethnic_provinces.csv"),
    ),
    (
        "ethnic_surnames.csv",
        include_str!("../reference/ethnic_surnames.csv"),
    ),
    ("religions.csv", include_str!("../reference/religions.csv")),
    (
        "religion_regions.csv",
        include_str!("../reference/religion_regions.csv"),
    ),
    ("surnames.csv", include_str!("../reference/surnames.csv")),
    (
        "surnames_other.csv",
        include_str!("../reference/surnames_other.csv"),
    ),
    (
        "middle_names.csv",
        include_str!("../reference/middle_names.csv"),
    ),
    (
        "given_names.csv",
        include_str!("../reference/given_names.csv"),
    ),
    (
        "blood_types.csv",
        include_str!("../reference/blood_types.csv"),
    ),
    (
        "age_sex_2019.csv",
        include_str!("../reference/age_sex_2019.csv"),
    ),
    (
        "age_pyramid.csv",
        include_str!("../reference/age_pyramid.csv"),
    ),
    (
        "place_names.csv",
        include_str!("../reference/place_names.csv"),
    ),
    ("countries.csv", include_str!("../reference/countries.csv")),
];

fn file(name: &str) -> &'static str {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .expect("every table read is listed in FILES")
}

/// The source line (`# ...` first line, without the `# `) of a table file.
pub fn source_line(name: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, text)| text.lines().next())
        .and_then(|l| l.strip_prefix("# "))
}

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

    fn parse(code: &str) -> Region {
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

/// All reference tables, parsed.
#[derive(Debug)]
pub struct Reference {
    /// The 63 provinces in code order.
    pub provinces: Vec<Province>,
    /// The districts in file order (grouped by province).
    pub districts: Vec<District>,
    /// The 54 ethnic groups in code order.
    pub ethnic_groups: Vec<EthnicGroup>,
    /// Ethnic groups by province.
    pub ethnic_provinces: Vec<EthnicCount>,
    /// Minority surnames.
    pub ethnic_surnames: Vec<EthnicSurname>,
    /// The 8 religions in code order.
    pub religions: Vec<ReligionShare>,
    /// The 14 sourced surnames then the assumed others.
    pub surnames: Vec<Surname>,
    /// Middle names.
    pub middle_names: Vec<CohortName>,
    /// Given names.
    pub given_names: Vec<CohortName>,
    /// Blood types.
    pub blood: BloodShares,
    /// The age pyramid, youngest group first.
    pub age_groups: Vec<AgeGroup>,
    /// Place-name parts.
    pub places: PlaceNames,
    /// Countries for births abroad.
    pub countries: Vec<CountryCode>,
}

impl Reference {
    /// The province with a GSO code.
    pub fn province(&self, code: u16) -> Option<&Province> {
        self.provinces.iter().find(|p| p.code == code)
    }

    /// Population of each region, 2019.
    pub fn region_population(&self) -> [u64; 6] {
        let mut out = [0u64; 6];
        for p in &self.provinces {
            out[p.region.index()] += p.population;
        }
        out
    }
}

/// The parsed tables (parsed on first call).
pub fn reference() -> &'static Reference {
    static REFERENCE: LazyLock<Reference> = LazyLock::new(parse_all);
    &REFERENCE
}

fn rows<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(file(name).as_bytes())
        .deserialize()
        .enumerate()
        .map(|(i, row)| row.unwrap_or_else(|e| panic!("{name} row {}: {e}", i + 1)))
        .collect()
}

fn parse_all() -> Reference {
    #[derive(Deserialize)]
    struct ProvinceRow {
        code: u16,
        name: String,
        population_2019: u64,
        male_2019: u64,
        female_2019: u64,
        urban_2019: u64,
        region: String,
    }
    let provinces: Vec<Province> = rows::<ProvinceRow>("provinces.csv")
        .into_iter()
        .map(|r| Province {
            code: r.code,
            name: r.name,
            population: r.population_2019,
            male: r.male_2019,
            female: r.female_2019,
            urban: r.urban_2019,
            region: Region::parse(&r.region),
        })
        .collect();

    #[derive(Deserialize)]
    struct DistrictRow {
        province_code: u16,
        district_code: u16,
        district_equiv_vi: String,
        district_vi: String,
        total: u64,
        total_urban: u64,
    }
    let districts = rows::<DistrictRow>("districts_2019.csv")
        .into_iter()
        .map(|r| District {
            province_code: r.province_code,
            code: r.district_code,
            kind: match r.district_equiv_vi.as_str() {
                "Quận" => DistrictKind::Quan,
                "Huyện" => DistrictKind::Huyen,
                "Thị xã" => DistrictKind::ThiXa,
                "Thành phố" => DistrictKind::ThanhPho,
                other => panic!("unknown district kind {other:?}"),
            },
            name: r.district_vi,
            population: r.total,
            urban: r.total_urban,
        })
        .collect();

    #[derive(Deserialize)]
    struct EthnicRow {
        name: String,
        population_2019: u64,
    }
    let ethnic_groups = rows::<EthnicRow>("ethnic_groups.csv")
        .into_iter()
        .map(|r| EthnicGroup {
            ethnicity: r
                .name
                .parse()
                .unwrap_or_else(|e| panic!("ethnic_groups.csv: {e}")),
            population: r.population_2019,
        })
        .collect();

    #[derive(Deserialize)]
    struct EthnicProvinceRow {
        province_code: u16,
        group: String,
        count: u64,
    }
    let ethnic_provinces = rows::<EthnicProvinceRow>("ethnic_provinces.csv")
        .into_iter()
        .map(|r| EthnicCount {
            province_code: r.province_code,
            ethnicity: (r.group != "other").then(|| {
                // The census table's spellings of three names.
                let name = match r.group.as_str() {
                    "Cơ Lao" => "Cờ Lao",
                    "Gié Triêng" => "Giẻ Triêng",
                    "Raglay" => "Ra Glai",
                    other => other,
                };
                name.parse()
                    .unwrap_or_else(|e| panic!("ethnic_provinces.csv: {e}"))
            }),
            count: r.count,
        })
        .collect();

    #[derive(Deserialize)]
    struct EthnicSurnameRow {
        group: String,
        surname: String,
        weight: f64,
    }
    let ethnic_surnames = rows::<EthnicSurnameRow>("ethnic_surnames.csv")
        .into_iter()
        .map(|r| EthnicSurname {
            ethnicity: r
                .group
                .parse()
                .unwrap_or_else(|e| panic!("ethnic_surnames.csv: {e}")),
            name: r.surname,
            weight: r.weight,
        })
        .collect();

    #[derive(Deserialize)]
    struct ReligionRow {
        religion: String,
        pct_of_population: f64,
    }
    #[derive(Deserialize)]
    struct ReligionRegionRow {
        religion: String,
        #[serde(rename = "RRD")]
        rrd: f64,
        #[serde(rename = "NMM")]
        nmm: f64,
        #[serde(rename = "NCC")]
        ncc: f64,
        #[serde(rename = "CH")]
        ch: f64,
        #[serde(rename = "SE")]
        se: f64,
        #[serde(rename = "MD")]
        md: f64,
    }
    let religion_regions: Vec<ReligionRegionRow> = rows("religion_regions.csv");
    let religions = rows::<ReligionRow>("religions.csv")
        .into_iter()
        .map(|r| ReligionShare {
            religion: r
                .religion
                .parse()
                .unwrap_or_else(|e| panic!("religions.csv: {e}")),
            pct: r.pct_of_population,
            regions: religion_regions
                .iter()
                .find(|w| w.religion == r.religion)
                .map(|w| [w.rrd, w.nmm, w.ncc, w.ch, w.se, w.md])
                .unwrap_or([0.0; 6]),
        })
        .collect();

    #[derive(Deserialize)]
    struct SurnameRow {
        surname: String,
        variants: String,
        share_pct: f64,
    }
    #[derive(Deserialize)]
    struct OtherSurnameRow {
        surname: String,
        weight: f64,
    }
    let mut surnames: Vec<Surname> = rows::<SurnameRow>("surnames.csv")
        .into_iter()
        .map(|r| Surname {
            name: r.surname,
            southern_variant: (!r.variants.is_empty()).then_some(r.variants),
            pct: r.share_pct,
        })
        .collect();
    let top: f64 = surnames.iter().map(|s| s.pct).sum();
    let others: Vec<OtherSurnameRow> = rows("surnames_other.csv");
    let other_total: f64 = others.iter().map(|o| o.weight).sum();
    surnames.extend(others.into_iter().map(|o| Surname {
        name: o.surname,
        southern_variant: None,
        pct: o.weight / other_total * (100.0 - top),
    }));

    #[derive(Deserialize)]
    struct NameRow {
        sex: String,
        name: String,
        w_before_1975: f64,
        w_1975_1999: f64,
        w_from_2000: f64,
    }
    let names = |file: &str| -> Vec<CohortName> {
        rows::<NameRow>(file)
            .into_iter()
            .map(|r| CohortName {
                sex: r.sex.parse().unwrap_or_else(|e| panic!("{file}: {e}")),
                name: r.name,
                weights: [r.w_before_1975, r.w_1975_1999, r.w_from_2000],
            })
            .collect()
    };

    #[derive(Deserialize)]
    struct BloodRow {
        source: String,
        blood_group: String,
        share_pct: f64,
        share_pct_high: Option<f64>,
    }
    let blood_rows: Vec<BloodRow> = rows("blood_types.csv");
    let abo_share = |group: &str| {
        blood_rows
            .iter()
            .find(|r| r.source == "S3" && r.blood_group == group)
            .map(|r| r.share_pct)
            .unwrap_or_else(|| panic!("blood_types.csv has no S3 row for {group}"))
    };
    let rh = blood_rows
        .iter()
        .find(|r| r.source == "S2" && r.blood_group == "RhD_negative")
        .expect("blood_types.csv has the national RhD- figure");
    let blood = BloodShares {
        abo: [
            ("O", abo_share("O")),
            ("A", abo_share("A")),
            ("B", abo_share("B")),
            ("AB", abo_share("AB")),
        ],
        rh_negative_pct: (rh.share_pct + rh.share_pct_high.unwrap_or(rh.share_pct)) / 2.0,
    };

    #[derive(Deserialize)]
    struct AgeRow {
        age_group: String,
        pct_of_total: f64,
        male_pct: f64,
    }
    let age_groups = rows::<AgeRow>("age_pyramid.csv")
        .into_iter()
        .map(|r| {
            let (from, to) = match r.age_group.split_once('-') {
                Some((a, b)) => (a.parse().expect("age"), b.parse().expect("age")),
                None => (r.age_group.trim_end_matches('+').parse().expect("age"), 100),
            };
            AgeGroup {
                from,
                to,
                pct: r.pct_of_total,
                male_pct: r.male_pct,
            }
        })
        .collect();

    #[derive(Deserialize)]
    struct PlaceRow {
        kind: String,
        name: String,
    }
    let mut places = PlaceNames::default();
    for r in rows::<PlaceRow>("place_names.csv") {
        match r.kind.as_str() {
            "first" => places.first.push(r.name),
            "second" => places.second.push(r.name),
            "street" => places.streets.push(r.name),
            "village_mountain" => places.mountain_villages.push(r.name),
            kind => {
                let region = kind
                    .strip_prefix("village_prefix_")
                    .map(Region::parse)
                    .unwrap_or_else(|| panic!("place_names.csv: unknown kind {kind:?}"));
                places.village_prefixes[region.index()].push(r.name);
            }
        }
    }

    #[derive(Deserialize)]
    struct CountryRow {
        code: u16,
        iso2: String,
        name_vi: String,
        name_en: String,
        weight: f64,
    }
    let countries = rows::<CountryRow>("countries.csv")
        .into_iter()
        .map(|r| CountryCode {
            code: r.code,
            iso2: r
                .iso2
                .parse()
                .unwrap_or_else(|e| panic!("countries.csv: {e}")),
            name_vi: r.name_vi,
            name_en: r.name_en,
            weight: r.weight,
        })
        .collect();

    Reference {
        provinces,
        districts,
        ethnic_groups,
        ethnic_provinces,
        ethnic_surnames,
        religions,
        surnames,
        middle_names: names("middle_names.csv"),
        given_names: names("given_names.csv"),
        blood,
        age_groups,
        places,
        countries,
    }
}

/// Checks that the tables agree with the engine's closed vocabularies; the
/// unit tests run it, and it is cheap enough to call at start-up.
pub fn check_against_engine() -> Result<(), String> {
    let r = reference();
    if r.provinces.len() != codes::PROVINCES.len() {
        return Err(format!(
            "{} provinces, the engine knows 63",
            r.provinces.len()
        ));
    }
    for (p, (code, name)) in r.provinces.iter().zip(codes::PROVINCES) {
        if p.code != code || p.name != name {
            return Err(format!(
                "province {:03} {} differs from the engine's {code:03} {name}",
                p.code, p.name
            ));
        }
    }
    for (i, g) in r.ethnic_groups.iter().enumerate() {
        if usize::from(g.ethnicity.code()) != i + 1 {
            return Err(format!(
                "ethnic group {} is out of the engine's order",
                g.ethnicity
            ));
        }
    }
    if r.ethnic_groups.len() != codes::ETHNIC_GROUPS.len() {
        return Err("not 54 ethnic groups".into());
    }
    for (i, rel) in r.religions.iter().enumerate() {
        if usize::from(rel.religion.code()) != i {
            return Err(format!(
                "religion {} is out of the engine's order",
                rel.religion
            ));
        }
    }
    if r.religions.len() != codes::RELIGIONS.len() {
        return Err("religions differ from the engine's".into());
    }
    for c in &r.countries {
        if !codes::ABROAD_CODES.contains(&c.code) {
            return Err(format!("country code {} is outside 101-295", c.code));
        }
    }
    for d in &r.districts {
        if codes::province_name(d.province_code).is_none() {
            return Err(format!(
                "district {} has unknown province {}",
                d.name, d.province_code
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_engine() {
        check_against_engine().unwrap();
    }

    #[test]
    fn every_file_states_its_source() {
        for (name, text) in FILES {
            let first = text.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("# "),
                "{name} does not open with a source line"
            );
            assert!(source_line(name).is_some());
        }
    }

    #[test]
    fn census_totals_add_up() {
        let r = reference();
        let total: u64 = r.provinces.iter().map(|p| p.population).sum();
        assert_eq!(total, 96_208_984);
        let districts: u64 = r.districts.iter().map(|d| d.population).sum();
        assert_eq!(districts, 96_208_984);
        assert_eq!(r.districts.len(), 712);
        let religions: f64 = r.religions.iter().map(|x| x.pct).sum();
        assert!((religions - 100.0).abs() < 0.01, "{religions}");
        let surnames: f64 = r.surnames.iter().map(|s| s.pct).sum();
        assert!((surnames - 100.0).abs() < 1e-9, "{surnames}");
        assert!((r.blood.rh_negative_pct - 0.055).abs() < 1e-9);
    }

    #[test]
    fn age_pyramid_meets_the_known_figures() {
        let r = reference();
        let share = |lo: u8, hi: u8| -> f64 {
            r.age_groups
                .iter()
                .filter(|g| g.from >= lo && g.to <= hi)
                .map(|g| g.pct)
                .sum()
        };
        assert!((share(0, 14) - 24.3).abs() < 1e-9);
        assert!((share(15, 64) - 68.0).abs() < 1e-9);
        assert!((share(65, 100) - 7.7).abs() < 1e-9);
        let mut by_size: Vec<&AgeGroup> = r.age_groups.iter().collect();
        by_size.sort_by(|a, b| b.pct.total_cmp(&a.pct));
        let order: Vec<u8> = by_size.iter().take(6).map(|g| g.from).collect();
        assert_eq!(order, [25, 30, 5, 0, 35, 10]);
        let male: f64 = r
            .age_groups
            .iter()
            .map(|g| g.pct * g.male_pct / 100.0)
            .sum();
        assert!((male - 49.77).abs() < 0.1, "{male}");
    }

    #[test]
    fn region_tables_rows_add_up_and_leave_room_for_the_remainder() {
        let r = reference();
        let pop = r.region_population();
        let mut believers = [0f64; 6];
        for rel in r.religions.iter().skip(1) {
            let sum: f64 = rel.regions.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "{}: {sum}", rel.religion);
            for (b, w) in believers.iter_mut().zip(rel.regions) {
                *b += rel.pct / 100.0 * 96_208_984.0 * w;
            }
        }
        for (i, b) in believers.iter().enumerate() {
            assert!(*b < 0.6 * pop[i] as f64, "region {i}: believers {b}");
        }
    }

    #[test]
    fn ethnic_counts_add_up_to_each_province_and_to_the_nation() {
        let r = reference();
        for p in &r.provinces {
            let sum: u64 = r
                .ethnic_provinces
                .iter()
                .filter(|e| e.province_code == p.code)
                .map(|e| e.count)
                .sum();
            assert_eq!(sum, p.population, "{}", p.name);
        }
        for g in &r.ethnic_groups {
            let listed: u64 = r
                .ethnic_provinces
                .iter()
                .filter(|e| e.ethnicity == Some(g.ethnicity))
                .map(|e| e.count)
                .sum();
            assert!(
                listed <= g.population,
                "{}: {listed} > {}",
                g.ethnicity,
                g.population
            );
        }
        let kinh: u64 = r
            .ethnic_provinces
            .iter()
            .filter(|e| e.ethnicity.map(|x| x.code()) == Some(1))
            .map(|e| e.count)
            .sum();
        assert_eq!(
            kinh, 82_085_826,
            "the Kinh of all provinces are the nation's"
        );
    }

    #[test]
    fn names_carry_diacritics_and_both_sexes() {
        let r = reference();
        for sex in [Sex::Male, Sex::Female] {
            assert!(r.given_names.iter().filter(|n| n.sex == sex).count() >= 50);
            assert!(r.middle_names.iter().filter(|n| n.sex == sex).count() >= 20);
        }
        assert!(r.middle_names.iter().any(|n| n.name == "Thị"));
        assert!(r.surnames.iter().any(|s| s.name == "Nguyễn"));
        assert!(r.countries.iter().any(|c| c.iso2.as_str() == "JP"));
        assert!(r.places.village_prefixes.iter().all(|v| !v.is_empty()));
    }
}
