//! Made-up but plausible places: wards, communes, villages, streets.
//!
//! Geography does not depend on the seed: ward or commune number `k` of a
//! district always has the same name, so households of one commune agree.

use crate::reference::{District, DistrictKind, Province, Region};
use crate::rng::{mix64, Rng};

use super::model::Model;

/// A ward (urban) or commune (rural) of a district.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Locality {
    pub(crate) province: usize,
    pub(crate) district: usize,
    pub(crate) urban: bool,
    pub(crate) unit: u32,
}

fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix64(mix64(mix64(a ^ 0x5151) ^ b) ^ c)
}

impl Locality {
    /// A random locality of province index `province`, by district population
    /// and urban share.
    pub(crate) fn random(model: &Model, rng: &mut Rng, province: usize) -> Locality {
        let (idx, dist) = &model.districts[province];
        let district = idx[dist.sample(rng)];
        let d = &model.reference.districts[district];
        let urban = rng.below(d.population.max(1)) < d.urban;
        let units = if urban {
            (d.urban / 15_000).clamp(1, 25)
        } else {
            ((d.population - d.urban) / 9_000).clamp(1, 35)
        };
        Locality {
            province,
            district,
            urban,
            unit: rng.below(units) as u32,
        }
    }

    fn province<'m>(&self, model: &'m Model) -> &'m Province {
        &model.reference.provinces[self.province]
    }

    fn district<'m>(&self, model: &'m Model) -> &'m District {
        &model.reference.districts[self.district]
    }

    fn key(&self, model: &Model) -> u64 {
        u64::from(self.district(model).code) << 32
            | u64::from(self.province(model).code) << 16
            | u64::from(self.urban)
    }

    fn two_syllables(model: &Model, h: u64, out: &mut String) {
        let p = &model.reference.places;
        let first = &p.first[(h % p.first.len() as u64) as usize];
        let mut second = &p.second[((h >> 20) % p.second.len() as u64) as usize];
        if second == first {
            second = &p.second[((h >> 40) % p.second.len() as u64) as usize];
        }
        out.push_str(first);
        out.push(' ');
        out.push_str(if second == first { "Tân" } else { second });
    }

    /// "Phường Tân Lập", "Phường 5", "Thị trấn An Bình", "Xã Hòa Phú".
    pub(crate) fn push_unit_name(&self, model: &Model, out: &mut String) {
        let h = hash3(self.key(model), u64::from(self.unit), 1);
        let d = self.district(model);
        if !self.urban {
            out.push_str("Xã ");
            Self::two_syllables(model, h, out);
            return;
        }
        match d.kind {
            DistrictKind::Huyen => out.push_str("Thị trấn "),
            _ => out.push_str("Phường "),
        }
        let numbered = d.kind == DistrictKind::Quan
            && matches!(self.province(model).code, 79 | 92)
            && h >> 60 < 8;
        if numbered {
            out.push_str(itoa(self.unit + 1).as_str());
        } else {
            Self::two_syllables(model, h, out);
        }
    }

    /// "Phường X, Quận Y, Thành phố Z": a place of birth registration or a
    /// hometown.
    pub(crate) fn place(&self, model: &Model) -> String {
        let mut s = String::with_capacity(64);
        self.push_unit_name(model, &mut s);
        self.push_tail(model, &mut s);
        s
    }

    fn push_tail(&self, model: &Model, s: &mut String) {
        let d = self.district(model);
        s.push_str(", ");
        s.push_str(d.kind.word());
        s.push(' ');
        s.push_str(&d.name);
        s.push_str(", ");
        s.push_str(if self.province(model).is_city() {
            "Thành phố "
        } else {
            "Tỉnh "
        });
        s.push_str(&self.province(model).name);
    }

    /// A dwelling in this locality: a house on a street for urban places, a
    /// village for rural ones.
    pub(crate) fn address(&self, model: &Model, rng: &mut Rng) -> String {
        let mut s = String::with_capacity(96);
        let places = &model.reference.places;
        let province_code = self.province(model).code;
        if self.urban {
            let street_h = hash3(self.key(model), u64::from(self.unit), 2 + rng.below(12));
            let street = &places.streets[(street_h % places.streets.len() as u64) as usize];
            let number = rng.range(1, 350);
            s.push_str("Số ");
            s.push_str(&itoa(number));
            match province_code {
                1 | 31 if rng.chance(0.4) => {
                    s.push_str(" ngõ ");
                    s.push_str(&itoa(rng.range(2, 200)));
                    s.push_str(" phố ");
                }
                79 | 92 | 48 if rng.chance(0.4) => {
                    s.push('/');
                    s.push_str(&itoa(rng.range(1, 120)));
                    s.push_str(" đường ");
                }
                1 | 31 => s.push_str(" phố "),
                _ => s.push_str(" đường "),
            }
            s.push_str(street);
        } else {
            let region = model.province_region[self.province];
            let village = rng.below(10);
            let h = hash3(self.key(model), u64::from(self.unit), 100 + village);
            let prefixes = &places.village_prefixes[region.index()];
            s.push_str(&prefixes[(h % prefixes.len() as u64) as usize]);
            s.push(' ');
            if region == Region::NorthernMountains && h >> 62 != 0 {
                let m = &places.mountain_villages;
                s.push_str(&m[((h >> 8) % m.len() as u64) as usize]);
                s.push(' ');
                s.push_str(&places.second[((h >> 24) % places.second.len() as u64) as usize]);
            } else if (h >> 32) % 5 < 2 {
                s.push_str(&itoa(village as u32 + 1));
            } else {
                Self::two_syllables(model, h >> 3, &mut s);
            }
        }
        s.push_str(", ");
        self.push_unit_name(model, &mut s);
        self.push_tail(model, &mut s);
        s
    }
}

fn itoa(v: u32) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::model::model;
    use super::*;

    #[test]
    fn places_are_stable_and_well_formed() {
        let m = model();
        let mut rng = Rng::stream(1, 1);
        for p in 0..63 {
            let loc = Locality::random(m, &mut rng, p);
            let a = loc.place(m);
            assert_eq!(
                a,
                loc.place(m),
                "a commune name does not depend on randomness"
            );
            assert!(a.ends_with(&m.reference.provinces[p].name), "{a}");
            let addr = loc.address(m, &mut rng);
            assert!(addr.ends_with(&a), "{addr} / {a}");
            assert!(!addr.contains("  "), "{addr}");
        }
    }
}
