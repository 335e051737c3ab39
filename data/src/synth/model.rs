//! The distributions the generator samples, built once from the reference
//! tables.

use std::sync::LazyLock;

use dancu_engine::{BloodType, Ethnicity, Religion, Sex};

use crate::reference::{reference, Reference, Region};
use crate::rng::{Rng, Weighted};

/// Birth cohort of a name table column.
pub(crate) fn cohort(birth_year: u16) -> usize {
    match birth_year {
        ..=1974 => 0,
        1975..=1999 => 1,
        _ => 2,
    }
}

pub(crate) fn sex_index(sex: Sex) -> usize {
    match sex {
        Sex::Male => 0,
        Sex::Female => 1,
    }
}

/// Strings with a distribution over them.
pub(crate) struct Choice {
    pub(crate) items: Vec<&'static str>,
    pub(crate) dist: Weighted,
}

impl Choice {
    fn new(pairs: impl IntoIterator<Item = (&'static str, f64)>) -> Choice {
        let (items, weights): (Vec<&'static str>, Vec<f64>) = pairs.into_iter().unzip();
        Choice {
            items,
            dist: Weighted::new(weights),
        }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> &'static str {
        self.items[self.dist.sample(rng)]
    }
}

pub(crate) struct Model {
    pub(crate) reference: &'static Reference,
    /// Outcome `sex * 101 + age`.
    pub(crate) sex_age: Weighted,
    pub(crate) provinces: Weighted,
    /// Per province: district indexes into `reference.districts` and their
    /// population distribution.
    pub(crate) districts: Vec<(Vec<usize>, Weighted)>,
    pub(crate) province_region: Vec<Region>,
    /// Per province index: ethnic group (index = code - 1).
    pub(crate) ethnicity: Vec<Weighted>,
    /// Per region: religion (index = code).
    pub(crate) religion: [Weighted; 6],
    /// Per region: Kinh surnames.
    pub(crate) surnames: [Choice; 6],
    /// Per ethnic code - 1: the group's own surnames, if tabled.
    pub(crate) ethnic_surnames: Vec<Option<Choice>>,
    /// `[sex][cohort]`.
    pub(crate) middle: [[Choice; 3]; 2],
    /// `[sex][cohort]`.
    pub(crate) given: [[Choice; 3]; 2],
    pub(crate) blood: Weighted,
    pub(crate) countries: Weighted,
    /// Province indexes of migration destinations and their distribution.
    pub(crate) destinations: (Vec<usize>, Weighted),
}

/// Destinations of internal migration (temporary residence): dancu's own
/// assumption, favouring the industrial South East and the two big cities.
const DESTINATIONS: [(u16, f64); 10] = [
    (79, 35.0),
    (74, 20.0),
    (1, 20.0),
    (75, 8.0),
    (27, 5.0),
    (48, 3.0),
    (31, 3.0),
    (92, 2.0),
    (80, 2.0),
    (22, 2.0),
];

pub(crate) static MODEL: LazyLock<Model> = LazyLock::new(|| Model::new(reference()));

pub(crate) fn model() -> &'static Model {
    &MODEL
}

/// Single-year weights of the pyramid: each 5-year group along a straight
/// line through its neighbours (group totals kept), 85+ decaying by 0.8 a year.
pub(crate) fn single_year_weights(r: &Reference) -> [[f64; 101]; 2] {
    let groups = &r.age_groups;
    let mut out = [[0.0; 101]; 2];
    for (g, group) in groups.iter().enumerate() {
        let male = group.male_pct / 100.0;
        let span = usize::from(group.to - group.from) + 1;
        let mut weights = vec![0.0; span];
        if span == 5 {
            let prev = if g == 0 { group.pct } else { groups[g - 1].pct };
            let next = groups.get(g + 1).map_or(group.pct, |n| n.pct);
            let slope = (next - prev) / 50.0;
            for (k, w) in weights.iter_mut().enumerate() {
                *w = group.pct / 5.0 + (k as f64 - 2.0) * slope;
            }
        } else {
            let mut w = 1.0;
            let mut total = 0.0;
            for slot in weights.iter_mut() {
                *slot = w;
                total += w;
                w *= 0.8;
            }
            for slot in weights.iter_mut() {
                *slot *= group.pct / total;
            }
        }
        for (k, w) in weights.into_iter().enumerate() {
            let age = usize::from(group.from) + k;
            out[0][age] = w * male;
            out[1][age] = w * (1.0 - male);
        }
    }
    out
}

impl Model {
    fn new(r: &'static Reference) -> Model {
        let years = single_year_weights(r);
        let sex_age = Weighted::new(years[0].iter().chain(years[1].iter()).copied());

        let provinces = Weighted::new(r.provinces.iter().map(|p| p.population as f64));
        let districts = r
            .provinces
            .iter()
            .map(|p| {
                let idx: Vec<usize> = (0..r.districts.len())
                    .filter(|&i| r.districts[i].province_code == p.code)
                    .collect();
                let w = Weighted::new(idx.iter().map(|&i| r.districts[i].population as f64));
                (idx, w)
            })
            .collect();
        let province_region = r.provinces.iter().map(|p| p.region).collect();
        let region_pop = r.region_population();
        let total_pop: u64 = region_pop.iter().sum();

        // Per province: the census counts; each province's "other" total is
        // spread over the groups it does not list, by what is left of their
        // national count once the listed province counts are taken out.
        let mut residual: Vec<f64> = r
            .ethnic_groups
            .iter()
            .map(|g| g.population as f64)
            .collect();
        for e in &r.ethnic_provinces {
            if let Some(eth) = e.ethnicity {
                residual[usize::from(eth.code()) - 1] -= e.count as f64;
            }
        }
        for x in &mut residual {
            *x = x.max(0.0);
        }
        let ethnicity = r
            .provinces
            .iter()
            .map(|p| {
                let mut weights = vec![0.0; 54];
                let mut other = 0.0;
                for e in r
                    .ethnic_provinces
                    .iter()
                    .filter(|e| e.province_code == p.code)
                {
                    match e.ethnicity {
                        Some(eth) => weights[usize::from(eth.code()) - 1] += e.count as f64,
                        None => other += e.count as f64,
                    }
                }
                let unlisted: f64 = (0..54)
                    .filter(|&i| weights[i] == 0.0)
                    .map(|i| residual[i])
                    .sum();
                if unlisted > 0.0 {
                    for i in 0..54 {
                        if weights[i] == 0.0 {
                            weights[i] = other * residual[i] / unlisted;
                        }
                    }
                } else {
                    weights[0] += other;
                }
                Weighted::new(weights)
            })
            .collect();
        let religion = std::array::from_fn(|reg| {
            let pop = region_pop[reg] as f64;
            let shares: Vec<f64> = r
                .religions
                .iter()
                .map(|x| x.pct / 100.0 * total_pop as f64 * x.regions[reg] / pop)
                .collect();
            let none = 1.0 - shares.iter().sum::<f64>();
            Weighted::new(
                shares
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| if i == 0 { none } else { s }),
            )
        });
        let surnames = std::array::from_fn(|reg| {
            let northern = match Region::ALL[reg] {
                Region::RedRiverDelta | Region::NorthernMountains => 1.0,
                Region::NorthCentralCoast => 0.5,
                _ => 0.2,
            };
            Choice::new(r.surnames.iter().flat_map(|s| {
                let name: &'static str = &s.name;
                match &s.southern_variant {
                    Some(south) => {
                        vec![
                            (name, s.pct * northern),
                            (south.as_str(), s.pct * (1.0 - northern)),
                        ]
                    }
                    None => vec![(name, s.pct)],
                }
            }))
        });
        let ethnic_surnames = (1..=54u8)
            .map(|code| {
                let e = Ethnicity::from_code(code).expect("54 codes");
                let rows: Vec<(&'static str, f64)> = r
                    .ethnic_surnames
                    .iter()
                    .filter(|s| s.ethnicity == e)
                    .map(|s| (s.name.as_str(), s.weight))
                    .collect();
                (!rows.is_empty()).then(|| Choice::new(rows))
            })
            .collect();
        let names = |table: &'static [crate::reference::CohortName]| -> [[Choice; 3]; 2] {
            std::array::from_fn(|sex| {
                let sex = if sex == 0 { Sex::Male } else { Sex::Female };
                std::array::from_fn(|c| {
                    Choice::new(
                        table
                            .iter()
                            .filter(|n| n.sex == sex)
                            .map(|n| (n.name.as_str(), n.weights[c])),
                    )
                })
            })
        };
        let rh_neg = r.blood.rh_negative_pct / 100.0;
        let abo = |g: &str| {
            r.blood
                .abo
                .iter()
                .find(|(n, _)| *n == g)
                .map(|(_, p)| *p)
                .expect("ABO group")
        };
        let blood = Weighted::new(BloodType::ALL.iter().map(|b| {
            let (group, negative) = match b {
                BloodType::OPos => ("O", false),
                BloodType::ONeg => ("O", true),
                BloodType::APos => ("A", false),
                BloodType::ANeg => ("A", true),
                BloodType::BPos => ("B", false),
                BloodType::BNeg => ("B", true),
                BloodType::AbPos => ("AB", false),
                BloodType::AbNeg => ("AB", true),
            };
            abo(group) * if negative { rh_neg } else { 1.0 - rh_neg }
        }));
        let countries = Weighted::new(r.countries.iter().map(|c| c.weight));
        let dest_idx: Vec<usize> = DESTINATIONS
            .iter()
            .map(|(code, _)| {
                r.provinces
                    .iter()
                    .position(|p| p.code == *code)
                    .expect("destination province")
            })
            .collect();
        let destinations = (
            dest_idx,
            Weighted::new(DESTINATIONS.iter().map(|(_, w)| *w)),
        );
        Model {
            reference: r,
            sex_age,
            provinces,
            districts,
            province_region,
            ethnicity,
            religion,
            surnames,
            ethnic_surnames,
            middle: names(&r.middle_names),
            given: names(&r.given_names),
            blood,
            countries,
            destinations,
        }
    }

    pub(crate) fn region_of(&self, province: usize) -> usize {
        self.province_region[province].index()
    }

    pub(crate) fn ethnicity(&self, rng: &mut Rng, province: usize) -> Ethnicity {
        let i = self.ethnicity[province].sample(rng);
        Ethnicity::from_code(i as u8 + 1).expect("54 groups")
    }

    pub(crate) fn religion(&self, rng: &mut Rng, region: usize) -> Religion {
        Religion::from_code(self.religion[region].sample(rng) as u8).expect("8 religions")
    }

    pub(crate) fn surname(
        &self,
        rng: &mut Rng,
        region: usize,
        ethnicity: Ethnicity,
    ) -> &'static str {
        if let Some(own) = &self.ethnic_surnames[usize::from(ethnicity.code()) - 1] {
            if rng.chance(0.8) {
                return own.sample(rng);
            }
        }
        self.surnames[region].sample(rng)
    }

    /// Middle and given name (`"Văn Hùng"`), never the same word twice.
    pub(crate) fn forenames(&self, rng: &mut Rng, sex: Sex, birth_year: u16, out: &mut String) {
        let s = sex_index(sex);
        let c = cohort(birth_year);
        let middle = self.middle[s][c].sample(rng);
        out.push_str(middle);
        if c == 2 && rng.chance(0.06) {
            let second = self.middle[s][c].sample(rng);
            if second != middle && second != "Thị" && second != "Văn" {
                out.push(' ');
                out.push_str(second);
            }
        }
        let mut given = self.given[s][c].sample(rng);
        while given == middle {
            given = self.given[s][c].sample(rng);
        }
        out.push(' ');
        out.push_str(given);
    }

    pub(crate) fn blood_type(&self, rng: &mut Rng) -> BloodType {
        BloodType::ALL[self.blood.sample(rng)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_years_keep_group_totals() {
        let r = reference();
        let w = single_year_weights(r);
        for g in &r.age_groups {
            let sum: f64 = (g.from..=g.to)
                .map(|a| w[0][a as usize] + w[1][a as usize])
                .sum();
            assert!((sum - g.pct).abs() < 1e-9, "{}-{}: {sum}", g.from, g.to);
        }
        assert!(w.iter().flatten().all(|&x| x > 0.0));
    }

    #[test]
    fn regional_distributions_are_valid() {
        let m = model();
        for reg in 0..6 {
            assert!(m.religion[reg].probability(0) > 0.4);
        }
        let province = |code: u16| {
            m.reference
                .provinces
                .iter()
                .position(|p| p.code == code)
                .unwrap()
        };
        assert_eq!(m.ethnicity[province(2)].len(), 54);
        // Hà Giang: Mông 34 %; Sóc Trăng: Khmer 30 %; Nam Định: Kinh 99.8 %.
        assert!((m.ethnicity[province(2)].probability(4) - 0.342).abs() < 0.01);
        assert!((m.ethnicity[province(94)].probability(5) - 0.302).abs() < 0.01);
        assert!(m.ethnicity[province(36)].probability(0) > 0.99);
        // Hòa Hảo only in the south; the Mekong Delta is mostly Kinh.
        assert_eq!(
            m.religion[Region::RedRiverDelta.index()].probability(3),
            0.0
        );
    }
}
