//! Household composition: who lives with whom.
//!
//! A chunk first draws the sex and age of every one of its people from the
//! pyramid (so the pyramid holds exactly, not just on average), then groups
//! them into households: first families around each child (mother and
//! usually father of a fitting age, brothers and sisters, sometimes the
//! head's parents; some children live with grandparents only), then the
//! adults left over (couples, a few with grown-up children or a parent,
//! siblings sharing a home, people living alone).

use dancu_engine::{MaritalStatus, Relationship, Sex};

use super::model::Model;
use crate::rng::{Rng, Weighted};
use households::*;

mod households;

/// Counts of the chunk's people not yet placed, by sex and single year.
pub(crate) struct Pool {
    counts: [[u32; 101]; 2],
    total: u32,
}

const MALE: usize = 0;
const FEMALE: usize = 1;

fn sex_of(s: usize) -> Sex {
    if s == MALE {
        Sex::Male
    } else {
        Sex::Female
    }
}

impl Pool {
    pub(crate) fn sample(model: &Model, rng: &mut Rng, n: u32) -> Pool {
        let mut counts = [[0u32; 101]; 2];
        for _ in 0..n {
            let k = model.sex_age.sample(rng);
            counts[k / 101][k % 101] += 1;
        }
        Pool { counts, total: n }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn count_range(&self, lo: u8, hi: u8) -> u32 {
        (lo..=hi)
            .map(|a| self.counts[0][a as usize] + self.counts[1][a as usize])
            .sum()
    }

    /// Takes one person of sex `s` whose age is nearest `target` within
    /// `lo..=hi` (ties broken at random).
    fn take_near(&mut self, rng: &mut Rng, s: usize, target: i32, lo: i32, hi: i32) -> Option<u8> {
        let (lo, hi) = (lo.max(0), hi.min(100));
        if lo > hi {
            return None;
        }
        let target = target.clamp(lo, hi);
        let up_first = rng.next_u64() & 1 == 0;
        for d in 0..=(hi - lo) {
            let pair = if up_first {
                [target + d, target - d]
            } else {
                [target - d, target + d]
            };
            for a in pair {
                if (lo..=hi).contains(&a) && self.counts[s][a as usize] > 0 {
                    self.counts[s][a as usize] -= 1;
                    self.total -= 1;
                    return Some(a as u8);
                }
            }
            if target + d >= hi && target - d <= lo {
                break;
            }
        }
        None
    }

    /// Takes one person of either sex, the sex chosen at random first.
    fn take_near_any(
        &mut self,
        rng: &mut Rng,
        target: i32,
        lo: i32,
        hi: i32,
    ) -> Option<(usize, u8)> {
        let first = if rng.chance(0.51) { MALE } else { FEMALE };
        for s in [first, 1 - first] {
            if let Some(a) = self.take_near(rng, s, target, lo, hi) {
                return Some((s, a));
            }
        }
        None
    }

    fn put_back(&mut self, s: usize, age: u8) {
        self.counts[s][usize::from(age)] += 1;
        self.total += 1;
    }

    /// Takes a person uniformly among those aged `lo..=hi`.
    fn take_random(&mut self, rng: &mut Rng, lo: u8, hi: u8) -> Option<(usize, u8)> {
        let n = self.count_range(lo, hi);
        if n == 0 {
            return None;
        }
        let mut k = rng.below(u64::from(n)) as u32;
        for a in lo..=hi {
            for s in [MALE, FEMALE] {
                let c = self.counts[s][a as usize];
                if k < c {
                    self.counts[s][a as usize] -= 1;
                    self.total -= 1;
                    return Some((s, a));
                }
                k -= c;
            }
        }
        unreachable!("k < n")
    }
}

/// One member of a planned household.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) sex: Sex,
    pub(crate) age: u8,
    pub(crate) rel: Relationship,
    pub(crate) father: Option<usize>,
    pub(crate) mother: Option<usize>,
    pub(crate) spouse: Option<usize>,
    pub(crate) foreign_spouse: bool,
    /// Marital status of someone without a spouse in the household.
    pub(crate) status: Option<MaritalStatus>,
    /// Index into [`Plan::groups`]: members sharing absent parents.
    pub(crate) group: Option<usize>,
}

impl Member {
    fn new(s: usize, age: u8, rel: Relationship) -> Member {
        Member {
            sex: sex_of(s),
            age,
            rel,
            father: None,
            mother: None,
            spouse: None,
            foreign_spouse: false,
            status: None,
            group: None,
        }
    }
}

/// Brothers and sisters whose parents are not in the household.
#[derive(Clone, Debug, Default)]
pub(crate) struct Group {
    /// The member whose surname (and hometown) the group carries.
    pub(crate) surname_from: Option<usize>,
    /// The father is unknown (not recorded).
    pub(crate) father_unknown: bool,
}

/// A planned household; `members[0]` is its head.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub(crate) members: Vec<Member>,
    pub(crate) groups: Vec<Group>,
}

impl Plan {
    fn push(&mut self, m: Member) -> usize {
        self.members.push(m);
        self.members.len() - 1
    }

    fn marry(&mut self, a: usize, b: usize) {
        self.members[a].spouse = Some(b);
        self.members[b].spouse = Some(a);
    }

    /// Whether a child of `age` would be born at least a year apart from
    /// the other children of the same mother (or the same absent parents).
    fn spaced(&self, like: &Member, age: u8) -> bool {
        self.members.iter().all(|m| {
            let sibling = match (like.mother, like.group) {
                (Some(mo), _) => m.mother == Some(mo),
                (None, Some(g)) => m.group == Some(g),
                (None, None) => false,
            };
            !sibling || m.age.abs_diff(age) >= 2
        })
    }
}

/// Distributions used while planning.
pub(crate) struct Shapes {
    /// Mother's age at a birth, from 16.
    birth_age: Weighted,
    /// Husband's age minus wife's, from -3.
    gap: Weighted,
    /// Number of further children besides the first.
    siblings: Weighted,
}

impl Shapes {
    pub(crate) fn new() -> Shapes {
        Shapes {
            birth_age: Weighted::new([
                0.3, 0.6, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0, 9.0, 9.0, 9.0, 8.0, 7.0,
                6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1,
            ]),
            gap: Weighted::new([
                1.0, 2.0, 4.0, 6.0, 9.0, 10.0, 10.0, 9.0, 7.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 1.0,
                1.0, 0.5, 0.5,
            ]),
            siblings: Weighted::new([0.42, 0.40, 0.13, 0.05]),
        }
    }

    fn birth_age(&self, rng: &mut Rng) -> i32 {
        16 + self.birth_age.sample(rng) as i32
    }

    fn gap(&self, rng: &mut Rng) -> i32 {
        self.gap.sample(rng) as i32 - 3
    }
}

fn single_status(rng: &mut Rng, sex: Sex, age: u8) -> MaritalStatus {
    let x = rng.unit();
    let (single, divorced) = match age {
        ..=29 => (0.95, 0.05),
        30..=59 => (0.45, 0.35),
        _ if sex == Sex::Female => (0.12, 0.06),
        _ => (0.30, 0.08),
    };
    if x < single {
        MaritalStatus::Single
    } else if x < single + divorced {
        MaritalStatus::Divorced
    } else {
        MaritalStatus::Widowed
    }
}

/// Households that can take in more people: by the age of a mother who
/// could have a grown-up child at home, and by the age of a head whose
/// parents could move in.
struct Openings {
    mothers: Vec<Vec<(u32, u8, Option<u8>)>>,
    heads: Vec<Vec<u32>>,
}

impl Openings {
    fn new() -> Openings {
        Openings {
            mothers: vec![Vec::new(); 101],
            heads: vec![Vec::new(); 101],
        }
    }

    fn register(&mut self, index: usize, plan: &Plan) {
        let index = index as u32;
        let head = &plan.members[0];
        if head.age >= 18 && head.father.is_none() && head.mother.is_none() {
            self.heads[usize::from(head.age)].push(index);
        }
        match plan.members[0].spouse {
            Some(sp) => {
                let (mother, father) = if head.sex == Sex::Female {
                    (0, sp)
                } else {
                    (sp, 0)
                };
                let age = plan.members[mother].age;
                self.mothers[usize::from(age)].push((index, mother as u8, Some(father as u8)));
            }
            None if head.sex == Sex::Female
                && !plan.groups.is_empty()
                && plan.members.iter().any(|m| m.mother == Some(0)) =>
            {
                self.mothers[usize::from(head.age)].push((index, 0, None));
            }
            None => {}
        }
    }

    /// Moves a grown-up child (aged 18-30, single) into a family.
    fn take_child(&mut self, rng: &mut Rng, plans: &mut [Plan], s: usize, age: u8) -> bool {
        let a = i32::from(age);
        for d in 0..=24 {
            for mother_age in [a + 26 + d, a + 26 - d] {
                if !(a + 18..=a + 44).contains(&mother_age) || mother_age > 100 {
                    continue;
                }
                let bucket = &self.mothers[mother_age as usize];
                if bucket.is_empty() {
                    continue;
                }
                let (p, mother, father) = bucket[rng.below(bucket.len() as u64) as usize];
                let plan = &mut plans[p as usize];
                if plan.members.len() >= 9 {
                    continue;
                }
                if father.is_some_and(|f| plan.members[usize::from(f)].age < age + 18) {
                    continue;
                }
                let mut m = Member::new(s, age, Relationship::Child);
                m.mother = Some(usize::from(mother));
                m.father = father.map(usize::from);
                m.group = father.is_none().then_some(0);
                m.status = Some(MaritalStatus::Single);
                if !plan.spaced(&m, age) {
                    continue;
                }
                plan.push(m);
                return true;
            }
        }
        false
    }

    /// Moves one elderly person, or a couple (`partner`), in with a head of
    /// a fitting age as the head's parents.
    fn take_parents(
        &mut self,
        rng: &mut Rng,
        plans: &mut [Plan],
        parent: (usize, u8),
        partner: Option<(usize, u8)>,
    ) -> bool {
        let youngest = partner.map_or(parent.1, |p| p.1.min(parent.1));
        let a = i32::from(youngest);
        for d in 0..=20 {
            for head_age in [a - 27 - d, a - 27 + d] {
                if !(18..=a - 18).contains(&head_age) {
                    continue;
                }
                let bucket = &mut self.heads[head_age as usize];
                if bucket.is_empty() {
                    continue;
                }
                let k = rng.below(bucket.len() as u64) as usize;
                let p = bucket.swap_remove(k) as usize;
                let plan = &mut plans[p];
                let mut indexes = Vec::with_capacity(2);
                for (s, age) in std::iter::once(parent).chain(partner) {
                    let i = plan.push(Member::new(s, age, Relationship::Parent));
                    if s == MALE {
                        plan.members[0].father = Some(i);
                    } else {
                        plan.members[0].mother = Some(i);
                    }
                    indexes.push(i);
                }
                match indexes[..] {
                    [x, y] => plan.marry(x, y),
                    [x] => {
                        plan.members[x].status = Some(if rng.chance(0.9) {
                            MaritalStatus::Widowed
                        } else {
                            MaritalStatus::Divorced
                        })
                    }
                    _ => {}
                }
                return true;
            }
        }
        false
    }
}

/// Plans every household of a chunk; the plans use each person of the pool
/// exactly once.
pub(crate) fn plan_chunk(model: &Model, shapes: &Shapes, rng: &mut Rng, n: u32) -> Vec<Plan> {
    let mut pool = Pool::sample(model, rng, n);
    let mut plans: Vec<Plan> = Vec::with_capacity(n as usize / 3 + 1);
    let mut openings = Openings::new();
    while let Some((s, age)) = pool.take_random(rng, 0, 17) {
        let plan = family(shapes, rng, &mut pool, s, age);
        openings.register(plans.len(), &plan);
        plans.push(plan);
    }
    while !pool.is_empty() {
        let (s, age) = pool
            .take_random(rng, 0, 100)
            .expect("the pool is not empty");
        let plan = match adults(shapes, rng, &mut pool, s, age) {
            Adults::Household(plan) => plan,
            Adults::Single(plan) => {
                let m = &plan.members[0];
                let moved = match m.age {
                    18..=30 => rng.chance(0.8) && openings.take_child(rng, &mut plans, s, age),
                    55.. => {
                        rng.chance(0.8) && openings.take_parents(rng, &mut plans, (s, age), None)
                    }
                    _ => false,
                };
                if moved {
                    continue;
                }
                plan
            }
            Adults::ElderlyCouple(plan) => {
                let (a, b) = (&plan.members[0], &plan.members[1]);
                let (a, b) = ((sex_index(a.sex), a.age), (sex_index(b.sex), b.age));
                if rng.chance(0.35) && openings.take_parents(rng, &mut plans, a, Some(b)) {
                    continue;
                }
                plan
            }
        };
        openings.register(plans.len(), &plan);
        plans.push(plan);
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::super::model::model;
    use super::*;

    #[test]
    fn plans_use_the_pool_exactly() {
        let m = model();
        let shapes = Shapes::new();
        for n in [1u32, 2, 7, 100, 5000] {
            let mut rng = Rng::stream(n.into(), 0);
            let plans = plan_chunk(m, &shapes, &mut rng, n);
            let total: usize = plans.iter().map(|p| p.members.len()).sum();
            assert_eq!(total, n as usize);
            for p in &plans {
                assert_eq!(p.members[0].rel, Relationship::Head);
                for (i, mem) in p.members.iter().enumerate() {
                    if let Some(sp) = mem.spouse {
                        assert_eq!(p.members[sp].spouse, Some(i));
                        assert_ne!(p.members[sp].sex, mem.sex);
                    }
                    for parent in [mem.father, mem.mother].into_iter().flatten() {
                        assert!(p.members[parent].age >= mem.age + 16, "{p:?}");
                    }
                }
            }
        }
    }
}
