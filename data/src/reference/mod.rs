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

mod parse;
mod tables;

use std::sync::LazyLock;

use dancu_engine::codes;

pub use tables::*;

/// Every table file, as `(file name, contents)`, in the order of the module docs.
pub const FILES: [(&str, &str); 16] = [
    (
        "provinces.csv",
        include_str!("../../reference/provinces.csv"),
    ),
    (
        "districts_2019.csv",
        include_str!("../../reference/districts_2019.csv"),
    ),
    (
        "ethnic_groups.csv",
        include_str!("../../reference/ethnic_groups.csv"),
    ),
    (
        "ethnic_provinces.csv",
        include_str!("../../reference/ethnic_provinces.csv"),
    ),
    (
        "ethnic_surnames.csv",
        include_str!("../../reference/ethnic_surnames.csv"),
    ),
    (
        "religions.csv",
        include_str!("../../reference/religions.csv"),
    ),
    (
        "religion_regions.csv",
        include_str!("../../reference/religion_regions.csv"),
    ),
    ("surnames.csv", include_str!("../../reference/surnames.csv")),
    (
        "surnames_other.csv",
        include_str!("../../reference/surnames_other.csv"),
    ),
    (
        "middle_names.csv",
        include_str!("../../reference/middle_names.csv"),
    ),
    (
        "given_names.csv",
        include_str!("../../reference/given_names.csv"),
    ),
    (
        "blood_types.csv",
        include_str!("../../reference/blood_types.csv"),
    ),
    (
        "age_sex_2019.csv",
        include_str!("../../reference/age_sex_2019.csv"),
    ),
    (
        "age_pyramid.csv",
        include_str!("../../reference/age_pyramid.csv"),
    ),
    (
        "place_names.csv",
        include_str!("../../reference/place_names.csv"),
    ),
    (
        "countries.csv",
        include_str!("../../reference/countries.csv"),
    ),
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
    static REFERENCE: LazyLock<Reference> = LazyLock::new(parse::parse_all);
    &REFERENCE
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
    use dancu_engine::Sex;

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
