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

fn sex_index(sex: Sex) -> usize {
    if sex == Sex::Male {
        MALE
    } else {
        FEMALE
    }
}

/// Takes the brothers and sisters of a child of `age` from the pool.
fn add_siblings(
    shapes: &Shapes,
    rng: &mut Rng,
    pool: &mut Pool,
    plan: &mut Plan,
    age: u8,
    max_age: i32,
    make: &dyn Fn(usize, u8) -> Member,
) {
    let k = shapes.siblings.sample(rng);
    for _ in 0..k {
        let delta = rng.range(1, 8) as i32 * if rng.chance(0.5) { 1 } else { -1 };
        let target = i32::from(age) + delta;
        let hi = max_age.min(27);
        if let Some((s, a)) = pool.take_near_any(rng, target, (target - 3).max(0), hi) {
            let m = make(s, a);
            if plan.spaced(&m, a) {
                plan.push(m);
            } else {
                pool.put_back(s, a);
            }
        }
    }
}

/// The head's parents, when they live in the household.
fn add_parents(rng: &mut Rng, shapes: &Shapes, pool: &mut Pool, plan: &mut Plan, head: usize) {
    let head_age = i32::from(plan.members[head].age);
    let target = head_age + shapes.birth_age(rng) + 2;
    let lo = head_age + 18;
    let mother = rng
        .chance(0.85)
        .then(|| pool.take_near(rng, FEMALE, target, lo, 100))
        .flatten();
    let father_target = target + shapes.gap(rng);
    let father = rng
        .chance(if mother.is_some() { 0.55 } else { 0.8 })
        .then(|| pool.take_near(rng, MALE, father_target, lo, 100))
        .flatten();
    let mut idx = [None, None];
    for (slot, (s, age)) in [(FEMALE, mother), (MALE, father)].into_iter().enumerate() {
        if let Some(age) = age {
            let i = plan.push(Member::new(s, age, Relationship::Parent));
            idx[slot] = Some(i);
        }
    }
    match idx {
        [Some(m), Some(f)] => plan.marry(m, f),
        [Some(i), None] | [None, Some(i)] => {
            plan.members[i].status = Some(if rng.chance(0.9) {
                MaritalStatus::Widowed
            } else {
                MaritalStatus::Divorced
            });
        }
        [None, None] => {}
    }
    plan.members[head].mother = idx[0];
    plan.members[head].father = idx[1];
}

/// A household formed around a child of sex `s` and `age`.
fn family(shapes: &Shapes, rng: &mut Rng, pool: &mut Pool, s: usize, age: u8) -> Plan {
    let c = i32::from(age);
    let kind = rng.unit();
    if kind >= 0.025 {
        let target = c + shapes.birth_age(rng);
        let mother = pool.take_near(rng, FEMALE, target, c + 16, c + 50);
        if let Some(m_age) = mother {
            let m = i32::from(m_age);
            let target = m + shapes.gap(rng);
            let father = (kind >= 0.085)
                .then(|| pool.take_near(rng, MALE, target, (m - 5).max(c + 18), m + 18))
                .flatten();
            return parents_and_children(shapes, rng, pool, (s, age), m_age, father);
        }
    }
    grandparents_and_children(shapes, rng, pool, (s, age))
}

fn parents_and_children(
    shapes: &Shapes,
    rng: &mut Rng,
    pool: &mut Pool,
    child: (usize, u8),
    mother_age: u8,
    father_age: Option<u8>,
) -> Plan {
    let mut plan = Plan::default();
    let (mother, father) = match father_age {
        Some(f_age) => {
            let husband_heads = rng.chance(0.8);
            let (h, sp) = if husband_heads {
                (
                    Member::new(MALE, f_age, Relationship::Head),
                    Member::new(FEMALE, mother_age, Relationship::Spouse),
                )
            } else {
                (
                    Member::new(FEMALE, mother_age, Relationship::Head),
                    Member::new(MALE, f_age, Relationship::Spouse),
                )
            };
            let (a, b) = (plan.push(h), plan.push(sp));
            plan.marry(a, b);
            if husband_heads {
                (b, Some(a))
            } else {
                (a, Some(b))
            }
        }
        None => {
            let mut head = Member::new(FEMALE, mother_age, Relationship::Head);
            let x = rng.unit();
            head.status = Some(if x < 0.5 {
                MaritalStatus::Divorced
            } else if x < 0.8 {
                MaritalStatus::Widowed
            } else {
                MaritalStatus::Single
            });
            let never_married = head.status == Some(MaritalStatus::Single);
            let m = plan.push(head);
            plan.groups.push(Group {
                surname_from: never_married.then_some(m),
                father_unknown: never_married && rng.chance(0.5),
            });
            (m, None)
        }
    };
    let group = father.is_none().then_some(0);
    let make = |s: usize, a: u8| {
        let mut m = Member::new(s, a, Relationship::Child);
        m.mother = Some(mother);
        m.father = father;
        m.group = group;
        m
    };
    plan.push(make(child.0, child.1));
    let max_age = i32::from(mother_age) - 17;
    let max_age = father_age.map_or(max_age, |f| max_age.min(i32::from(f) - 18));
    add_siblings(shapes, rng, pool, &mut plan, child.1, max_age, &make);
    if plan.members[0].age <= 60 && rng.chance(0.22) {
        add_parents(rng, shapes, pool, &mut plan, 0);
    }
    plan
}

fn grandparents_and_children(
    shapes: &Shapes,
    rng: &mut Rng,
    pool: &mut Pool,
    child: (usize, u8),
) -> Plan {
    let c = i32::from(child.1);
    let target = c + shapes.birth_age(rng) + shapes.birth_age(rng);
    let gm = pool.take_near(rng, FEMALE, target, c + 34, 100);
    let gf = match gm {
        Some(m) if rng.chance(0.6) => {
            let m = i32::from(m);
            let target = m + shapes.gap(rng);
            pool.take_near(rng, MALE, target, m - 5, 100)
        }
        Some(_) => None,
        None => pool.take_near(rng, MALE, c + 55, c + 34, 100),
    };
    let mut plan = Plan::default();
    if gm.is_none() && gf.is_none() {
        return lone(rng, child.0, child.1);
    }
    let grandfather_heads = gf.is_some() && (gm.is_none() || rng.chance(0.7));
    let order = if grandfather_heads {
        [(MALE, gf), (FEMALE, gm)]
    } else {
        [(FEMALE, gm), (MALE, gf)]
    };
    let mut idx = Vec::new();
    for (s, age) in order {
        if let Some(age) = age {
            let rel = if idx.is_empty() {
                Relationship::Head
            } else {
                Relationship::Spouse
            };
            idx.push(plan.push(Member::new(s, age, rel)));
        }
    }
    if let [a, b] = idx[..] {
        plan.marry(a, b);
    } else {
        plan.members[0].status = Some(if rng.chance(0.85) {
            MaritalStatus::Widowed
        } else {
            MaritalStatus::Divorced
        });
    }
    let grandfather = if grandfather_heads {
        Some(0)
    } else {
        gf.map(|_| 1)
    };
    plan.groups.push(Group {
        surname_from: grandfather,
        father_unknown: false,
    });
    let make = |s: usize, a: u8| {
        let mut m = Member::new(s, a, Relationship::Grandchild);
        m.group = Some(0);
        m
    };
    plan.push(make(child.0, child.1));
    let youngest_grandparent = plan
        .members
        .iter()
        .map(|m| i32::from(m.age))
        .min()
        .unwrap_or(100);
    add_siblings(
        shapes,
        rng,
        pool,
        &mut plan,
        child.1,
        youngest_grandparent - 34,
        &make,
    );
    plan
}

/// Someone living alone (also the rare child for whom no adult was left).
fn lone(rng: &mut Rng, s: usize, age: u8) -> Plan {
    let mut m = Member::new(s, age, Relationship::Head);
    if age >= 18 {
        m.status = Some(single_status(rng, m.sex, age));
    }
    Plan {
        members: vec![m],
        groups: Vec::new(),
    }
}

fn couple_probability(age: u8) -> f64 {
    match age {
        ..=21 => 0.10,
        22..=26 => 0.40,
        27..=34 => 0.55,
        35..=44 => 0.55,
        45..=59 => 0.70,
        60..=69 => 0.62,
        70..=79 => 0.45,
        _ => 0.25,
    }
}

/// What became of an adult picked once no child is left.
enum Adults {
    /// A household of its own.
    Household(Plan),
    /// Someone alone, who may still move in with relatives.
    Single(Plan),
    /// A couple aged 60 or more and nobody else, who may still move in with
    /// a child.
    ElderlyCouple(Plan),
}

/// A household formed around an adult of sex `s` and `age` once no child is left.
fn adults(shapes: &Shapes, rng: &mut Rng, pool: &mut Pool, s: usize, age: u8) -> Adults {
    if age < 18 {
        return Adults::Household(lone(rng, s, age));
    }
    let a = i32::from(age);
    if rng.chance(couple_probability(age)) {
        let gap = shapes.gap(rng);
        let partner = if s == MALE {
            pool.take_near(rng, FEMALE, a - gap, (a - 15).max(18), a + 5)
        } else {
            pool.take_near(rng, MALE, a + gap, (a - 5).max(18), a + 15)
        };
        if let Some(p_age) = partner {
            let (husband, wife) = if s == MALE {
                (age, p_age)
            } else {
                (p_age, age)
            };
            let husband_heads = rng.chance(0.8);
            let mut plan = Plan::default();
            let (h, w) = if husband_heads {
                let h = plan.push(Member::new(MALE, husband, Relationship::Head));
                (
                    h,
                    plan.push(Member::new(FEMALE, wife, Relationship::Spouse)),
                )
            } else {
                let w = plan.push(Member::new(FEMALE, wife, Relationship::Head));
                (
                    plan.push(Member::new(MALE, husband, Relationship::Spouse)),
                    w,
                )
            };
            plan.marry(h, w);
            let wa = i32::from(wife);
            if (40..=70).contains(&wa) && rng.chance(0.5) {
                let k = if rng.chance(0.7) { 1 } else { 2 };
                for _ in 0..k {
                    let target = wa - rng.range(20, 32) as i32;
                    let hi = (wa - 17).min(i32::from(husband) - 18).min(35);
                    if let Some((cs, ca)) = pool.take_near_any(rng, target, 18, hi) {
                        let mut m = Member::new(cs, ca, Relationship::Child);
                        m.father = Some(h);
                        m.mother = Some(w);
                        m.status = Some(MaritalStatus::Single);
                        if plan.spaced(&m, ca) {
                            plan.push(m);
                        } else {
                            pool.put_back(cs, ca);
                        }
                    }
                }
            }
            if plan.members[0].age <= 55 && rng.chance(0.08) {
                add_parents(rng, shapes, pool, &mut plan, 0);
            }
            if plan.members.len() == 2 && husband >= 60 && wife >= 60 {
                return Adults::ElderlyCouple(plan);
            }
            return Adults::Household(plan);
        }
    }
    if (18..=34).contains(&age) && rng.chance(0.25) {
        let target = a + rng.range(0, 12) as i32 - 6;
        if let Some((s2, a2)) = pool.take_near_any(rng, target, (a - 8).max(18), a + 8) {
            let mut plan = Plan::default();
            let mut head = Member::new(s, age, Relationship::Head);
            let mut sib = Member::new(s2, a2, Relationship::Sibling);
            head.group = Some(0);
            sib.group = Some(0);
            head.status = Some(single_status(rng, head.sex, age));
            sib.status = Some(single_status(rng, sib.sex, a2));
            plan.push(head);
            plan.push(sib);
            plan.groups.push(Group::default());
            return Adults::Household(plan);
        }
    }
    let mut plan = lone(rng, s, age);
    let head = &mut plan.members[0];
    if head.sex == Sex::Female && (22..=45).contains(&age) && rng.chance(0.04) {
        head.foreign_spouse = true;
        head.status = Some(MaritalStatus::Married);
        return Adults::Household(plan);
    }
    Adults::Single(plan)
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
