//! Households made people: a [`Plan`]'s members get names, dates of
//! birth, places, IDs, legacy IDs, biometrics and links to each other.

use std::sync::LazyLock;

use dancu_engine::{
    BiometricTemplates, Citizen, Country, Date, Ethnicity, Household, LegacyId, MaritalStatus,
    PersonalId, Relationship, Relative, Religion, Sex, TemplateDigest,
};

use super::model::Model;
use super::places::Locality;
use super::plan::Plan;
use super::*;
use crate::rng::{derive, permute128, FxMap, Rng, SmallPermutation};

pub(super) struct Writer<'m> {
    pub(super) model: &'m Model,
    pub(super) rng: Rng,
    pub(super) chunk: u64,
    pub(super) slots: u32,
    pub(super) counters: FxMap<u64, (u32, SmallPermutation)>,
    pub(super) legacy: SmallPermutation,
    pub(super) digest_key: u64,
    pub(super) serial_key: u64,
    pub(super) base: u64,
}

/// Per-member facts decided in the first pass.
struct Person {
    surname: &'static str,
    full_name: String,
    ethnicity: Ethnicity,
    religion: Religion,
    hometown: (usize, String),
    dob: Date,
    birth_place: String,
    id: PersonalId,
    dead: Option<Date>,
}

fn legacy_probability(age: u8) -> f64 {
    match age {
        ..=13 => 0.0,
        14..=17 => 0.10,
        18..=24 => 0.60,
        25..=64 => 0.88,
        65..=79 => 0.80,
        _ => 0.65,
    }
}

fn enrolment_probability(age: u8) -> f64 {
    match age {
        ..=13 => 0.0,
        14..=17 => 0.60,
        18..=64 => 0.82,
        65..=79 => 0.65,
        _ => 0.40,
    }
}

fn death_probability(age: u8) -> f64 {
    match age {
        ..=49 => 0.0015,
        50..=59 => 0.008,
        60..=69 => 0.02,
        70..=79 => 0.06,
        _ => 0.15,
    }
}

/// Foreign spouses: (country, names). dancu's own short lists.
const FOREIGN: [(&str, f64, &[&str]); 5] = [
    (
        "KR",
        40.0,
        &[
            "Kim Min Jun",
            "Lee Seung Ho",
            "Park Ji Hoon",
            "Choi Dong Hyun",
            "Jung Sung Min",
        ],
    ),
    (
        "CN",
        25.0,
        &["Wang Wei", "Li Qiang", "Zhang Lei", "Liu Yang", "Chen Jie"],
    ),
    (
        "TW",
        20.0,
        &[
            "Chen Chih Ming",
            "Lin Chia Hao",
            "Huang Wen Chieh",
            "Chang Kuo Hua",
        ],
    ),
    (
        "JP",
        10.0,
        &[
            "Tanaka Hiroshi",
            "Sato Takeshi",
            "Suzuki Kenji",
            "Watanabe Daisuke",
        ],
    ),
    (
        "US",
        5.0,
        &[
            "John Smith",
            "Michael Johnson",
            "David Miller",
            "James Brown",
        ],
    ),
];

impl Writer<'_> {
    fn forenames(&mut self, sex: Sex, birth_year: u16, surname: &str) -> String {
        let mut s = String::with_capacity(32);
        s.push_str(surname);
        s.push(' ');
        self.model.forenames(&mut self.rng, sex, birth_year, &mut s);
        s
    }

    fn random_locality(&mut self, province: usize) -> Locality {
        Locality::random(self.model, &mut self.rng, province)
    }

    fn random_province(&mut self) -> usize {
        self.model.provinces.sample(&mut self.rng)
    }

    /// A date of birth that makes the person `age` on the reference date.
    fn dob(&mut self, age: u8) -> Date {
        let year = REFERENCE_YEAR - u16::from(age);
        let from = Date::new(year - 1, 7, 2).expect("valid");
        let to = Date::new(year, 6, 30).expect("valid");
        self.date_between(from, to)
    }

    fn date_between(&mut self, from: Date, to: Date) -> Date {
        let (a, b) = (from.days_since_epoch(), to.days_since_epoch());
        let d = a + self.rng.below((b - a).max(0) as u64 + 1) as i64;
        Date::from_days_since_epoch(d).expect("between two valid dates")
    }

    /// The next ID of `place`/`sex`/`year` in this chunk's serial range.
    fn alloc_id(&mut self, place: u16, sex: Sex, year: u16) -> Option<PersonalId> {
        let key = u64::from(place) << 24 | u64::from(sex.code()) << 16 | u64::from(year);
        let serial_key = self.serial_key;
        let (count, permutation) = self
            .counters
            .entry(key)
            .or_insert_with(|| (0, SmallPermutation::new(derive(serial_key, key), 1_000_000)));
        if *count >= self.slots {
            return None;
        }
        let index = self.chunk * u64::from(self.slots) + u64::from(*count);
        *count += 1;
        let serial = permutation.apply(index);
        Some(
            PersonalId::new(place, sex, year, serial as u32)
                .expect("a known place and a 19xx/20xx year"),
        )
    }

    pub(super) fn household(&mut self, plan: &Plan, out: &mut Vec<Citizen>) {
        let model = self.model;
        let members = &plan.members;
        let province = self.random_province();
        let region = model.region_of(province);
        let home = self.random_locality(province);
        let permanent = home.address(model, &mut self.rng);
        let home_place = home.place(model);
        let ethnicity = model.ethnicity(&mut self.rng, province);
        let religion = model.religion(&mut self.rng, region);
        let household_temporary = self.rng.chance(0.05).then(|| {
            let dest = &model.destinations;
            let p = dest.0[dest.1.sample(&mut self.rng)];
            let loc = self.random_locality(p);
            loc.address(model, &mut self.rng)
        });

        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(members[i].age), i));
        let mut people: Vec<Option<Person>> = (0..members.len()).map(|_| None).collect();
        let mut group_surname: Vec<Option<&'static str>> = vec![None; plan.groups.len()];
        let mut group_hometown: Vec<Option<(usize, String)>> = vec![None; plan.groups.len()];

        for &i in &order {
            let m = &members[i];
            let get = |j: usize| {
                people[j]
                    .as_ref()
                    .expect("parents are older, so decided first")
            };
            let eth = if let Some(f) = m.father {
                get(f).ethnicity
            } else if let Some(mo) = m.mother {
                get(mo).ethnicity
            } else if m.rel == Relationship::Spouse && self.rng.chance(0.05) {
                model.ethnicity(&mut self.rng, province)
            } else {
                ethnicity
            };
            let rel_religion = if m.rel == Relationship::Spouse && self.rng.chance(0.1) {
                model.religion(&mut self.rng, region)
            } else {
                religion
            };
            let group = m.group.map(|g| (g, &plan.groups[g]));
            let surname = if let Some(f) = m.father {
                get(f).surname
            } else if let Some((g, grp)) = group {
                match grp.surname_from {
                    Some(x) => get(x).surname,
                    None => *group_surname[g]
                        .get_or_insert_with(|| model.surname(&mut self.rng, region, eth)),
                }
            } else {
                model.surname(&mut self.rng, region, eth)
            };
            let hometown = if let Some(f) = m.father {
                get(f).hometown.clone()
            } else if let Some((g, grp)) = group {
                match grp.surname_from {
                    Some(x) => get(x).hometown.clone(),
                    None => match &group_hometown[g] {
                        Some(h) => h.clone(),
                        None => {
                            let h = self.own_hometown(province);
                            group_hometown[g] = Some(h.clone());
                            h
                        }
                    },
                }
            } else {
                self.own_hometown(province)
            };
            let dob = self.dob(m.age);
            let year = dob.year();
            let young =
                matches!(m.rel, Relationship::Child | Relationship::Grandchild) && m.age < 30;
            let (mut place_code, mut birth_place) = if self.rng.chance(0.0025) {
                let c = &model.reference.countries[model.countries.sample(&mut self.rng)];
                (c.code, c.name_vi.clone())
            } else {
                let x = self.rng.unit();
                let p = &model.reference.provinces;
                if (young && x < 0.9) || (!young && (0.75..0.95).contains(&x)) {
                    (p[province].code, home_place.clone())
                } else if young || x < 0.75 {
                    (p[hometown.0].code, hometown.1.clone())
                } else {
                    let other = self.random_province();
                    (p[other].code, self.random_locality(other).place(model))
                }
            };
            let mut id = self.alloc_id(place_code, m.sex, year);
            let mut step = 1;
            while id.is_none() {
                assert!(step <= 63, "the ID space of {year} is full in this chunk");
                let other = (province + step) % 63;
                step += 1;
                place_code = model.reference.provinces[other].code;
                birth_place = self.random_locality(other).place(model);
                id = self.alloc_id(place_code, m.sex, year);
            }
            let full_name = self.forenames(m.sex, year, surname);
            let may_die = m.rel != Relationship::Head || members.len() == 1;
            let dead = (may_die && self.rng.chance(death_probability(m.age))).then(|| {
                let from = deaths_from().max(dob);
                let to = Date::from_days_since_epoch(reference_date().days_since_epoch() - 1)
                    .expect("valid");
                self.date_between(from, to)
            });
            people[i] = Some(Person {
                surname,
                full_name,
                ethnicity: eth,
                religion: rel_religion,
                hometown,
                dob,
                birth_place,
                id: id.expect("allocated above"),
                dead,
            });
        }
        let mut people: Vec<Person> = people
            .into_iter()
            .map(|p| p.expect("every member decided"))
            .collect();
        // Only the member's own record needs these: move them, don't copy.
        let mut own_places: Vec<(String, String)> = people
            .iter_mut()
            .map(|p| {
                (
                    std::mem::take(&mut p.birth_place),
                    std::mem::take(&mut p.hometown.1),
                )
            })
            .collect();
        let people = people;

        let relative = |j: usize| Relative {
            full_name: people[j].full_name.clone(),
            id: Some(people[j].id),
            nationality: Some(Country::VN),
        };
        let head = &people[0];
        let mut group_parents: Vec<Option<(Option<Relative>, Relative)>> =
            vec![None; plan.groups.len()];
        for (i, m) in members.iter().enumerate() {
            let me = &people[i];
            let alive = me.dead.is_none();
            let year = me.dob.year();
            let absent_parents = |w: &mut Self| -> (Option<Relative>, Relative) {
                let father = Relative {
                    full_name: w.forenames(Sex::Male, year.saturating_sub(28), me.surname),
                    id: None,
                    nationality: Some(Country::VN),
                };
                let mother_surname = model.surname(&mut w.rng, region, me.ethnicity);
                let mother = Relative {
                    full_name: w.forenames(Sex::Female, year.saturating_sub(26), mother_surname),
                    id: None,
                    nationality: Some(Country::VN),
                };
                (Some(father), mother)
            };
            let (absent_father, absent_mother) = if m.father.is_some() && m.mother.is_some() {
                (None, None)
            } else if let Some(g) = m.group {
                let cached = match &group_parents[g] {
                    Some(p) => p.clone(),
                    None => {
                        let mut p = absent_parents(self);
                        if plan.groups[g].father_unknown {
                            p.0 = None;
                        }
                        group_parents[g] = Some(p.clone());
                        p
                    }
                };
                (cached.0, Some(cached.1))
            } else {
                let p = absent_parents(self);
                (p.0, Some(p.1))
            };
            let father = match m.father {
                Some(f) => Some(relative(f)),
                None => absent_father,
            };
            let mother = match m.mother {
                Some(mo) => Some(relative(mo)),
                None => absent_mother,
            };

            let mut spouse = None;
            let marital_status = if let Some(sp) = m.spouse {
                if people[sp].dead.is_some() && alive {
                    Some(MaritalStatus::Widowed)
                } else {
                    spouse = Some(relative(sp));
                    Some(MaritalStatus::Married)
                }
            } else if m.foreign_spouse {
                let k = FOREIGN_DIST.sample(&mut self.rng);
                let (code, _, names) = FOREIGN[k];
                spouse = Some(Relative {
                    full_name: self.rng.pick(names).to_string(),
                    id: None,
                    nationality: code.parse().ok(),
                });
                Some(MaritalStatus::Married)
            } else if m.age < 18 {
                None
            } else {
                Some(m.status.unwrap_or(MaritalStatus::Single))
            };

            let representative = (alive && m.age < 18)
                .then(|| {
                    let living = |p: Option<usize>| p.is_some_and(|j| people[j].dead.is_none());
                    if living(m.father) || living(m.mother) {
                        return None;
                    }
                    let guardian = (0..members.len())
                        .find(|&j| j != i && people[j].dead.is_none() && members[j].age >= 18);
                    Some(match guardian {
                        Some(j) => relative(j),
                        None => {
                            let surname = model.surname(&mut self.rng, region, me.ethnicity);
                            Relative {
                                full_name: self.forenames(
                                    Sex::Female,
                                    year.saturating_sub(40),
                                    surname,
                                ),
                                id: None,
                                nationality: Some(Country::VN),
                            }
                        }
                    })
                })
                .flatten();

            let temporary = if !alive {
                None
            } else if m.rel == Relationship::Child
                && (18..=30).contains(&m.age)
                && self.rng.chance(0.2)
            {
                let dest = &model.destinations;
                let p = dest.0[dest.1.sample(&mut self.rng)];
                let loc = self.random_locality(p);
                Some(loc.address(model, &mut self.rng))
            } else {
                household_temporary.clone()
            };
            let current = alive.then(|| temporary.clone().unwrap_or_else(|| permanent.clone()));

            let index = self.base + out.len() as u64;
            let legacy_id = self.rng.chance(legacy_probability(m.age)).then(|| {
                LegacyId::from_u32(self.legacy.apply(index) as u32 + 1).expect("1..=999_999_999")
            });
            let biometric_templates = if self.rng.chance(enrolment_probability(m.age)) {
                BiometricTemplates {
                    face: Some(TemplateDigest(permute128(self.digest_key, index, 1))),
                    fingerprint: Some(TemplateDigest(permute128(self.digest_key, index, 2))),
                }
            } else {
                BiometricTemplates::default()
            };
            let blood_type = self
                .rng
                .chance(if m.age >= 14 { 0.18 } else { 0.05 })
                .then(|| model.blood_type(&mut self.rng));

            out.push(Citizen {
                id: me.id,
                legacy_id,
                full_name: me.full_name.clone(),
                date_of_birth: me.dob,
                sex: m.sex,
                birth_registration_place: Some(std::mem::take(&mut own_places[i].0)),
                hometown: Some(std::mem::take(&mut own_places[i].1)),
                ethnicity: Some(me.ethnicity),
                religion: Some(me.religion),
                nationality: Some(Country::VN),
                marital_status,
                permanent_residence: Some(permanent.clone()),
                temporary_residence: temporary,
                current_residence: current,
                blood_type,
                father,
                mother,
                spouse,
                representative,
                household: alive.then(|| Household {
                    head_id: Some(head.id),
                    head_name: head.full_name.clone(),
                    relationship: m.rel,
                }),
                date_of_death: me.dead,
                biometric_templates,
                enrolled_modalities_ignored: None,
            });
        }
    }

    /// A hometown for someone whose father is not in the household: mostly
    /// the household's province.
    fn own_hometown(&mut self, province: usize) -> (usize, String) {
        let p = if self.rng.chance(0.7) {
            province
        } else {
            self.random_province()
        };
        let loc = self.random_locality(p);
        (p, loc.place(self.model))
    }
}

static FOREIGN_DIST: LazyLock<crate::rng::Weighted> =
    LazyLock::new(|| crate::rng::Weighted::new(FOREIGN.iter().map(|f| f.1)));
