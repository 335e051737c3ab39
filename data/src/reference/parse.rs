//! Parsing the table files into [`Reference`] (once, on first use).

use serde::Deserialize;

use super::tables::*;
use super::{file, Reference};

fn rows<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(file(name).as_bytes())
        .deserialize()
        .enumerate()
        .map(|(i, row)| row.unwrap_or_else(|e| panic!("{name} row {}: {e}", i + 1)))
        .collect()
}

pub(super) fn parse_all() -> Reference {
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
