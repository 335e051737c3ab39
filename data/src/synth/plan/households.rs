//! The household shapes a chunk's people are grouped into: a family around
//! a child (with parents, siblings, sometimes grandparents), children with
//! grandparents only, and the adults left over (couples, grown-up children,
//! siblings, people alone).

use dancu_engine::{MaritalStatus, Relationship, Sex};

use super::*;
use crate::rng::Rng;

pub(super) fn sex_index(sex: Sex) -> usize {
    if sex == Sex::Male {
        MALE
    } else {
        FEMALE
    }
}

/// Takes the brothers and sisters of a child of `age` from the pool.
pub(super) fn add_siblings(
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
pub(super) fn add_parents(
    rng: &mut Rng,
    shapes: &Shapes,
    pool: &mut Pool,
    plan: &mut Plan,
    head: usize,
) {
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
pub(super) fn family(shapes: &Shapes, rng: &mut Rng, pool: &mut Pool, s: usize, age: u8) -> Plan {
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

pub(super) fn parents_and_children(
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

pub(super) fn grandparents_and_children(
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
pub(super) fn lone(rng: &mut Rng, s: usize, age: u8) -> Plan {
    let mut m = Member::new(s, age, Relationship::Head);
    if age >= 18 {
        m.status = Some(single_status(rng, m.sex, age));
    }
    Plan {
        members: vec![m],
        groups: Vec::new(),
    }
}

pub(super) fn couple_probability(age: u8) -> f64 {
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
pub(super) enum Adults {
    /// A household of its own.
    Household(Plan),
    /// Someone alone, who may still move in with relatives.
    Single(Plan),
    /// A couple aged 60 or more and nobody else, who may still move in with
    /// a child.
    ElderlyCouple(Plan),
}

/// A household formed around an adult of sex `s` and `age` once no child is left.
pub(super) fn adults(shapes: &Shapes, rng: &mut Rng, pool: &mut Pool, s: usize, age: u8) -> Adults {
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
