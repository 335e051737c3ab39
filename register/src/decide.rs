//! Deciding a change against the citizen's newest state: the checks a
//! change must pass (references, a free legacy ID, a free template), the
//! record it leaves, and the allocation of a newborn's personal ID.

use std::collections::HashMap;
use std::sync::Arc;

use dancu_engine::{
    codes, fold, Citizen, Date, Field, LegacyId, Modality, PersonalId, Sex, Snapshot,
    TemplateDigest,
};

use crate::change::{
    citizen_from_json, inconsistent, invalid, legacy_of, modality_bit, ChangeRequest,
};
use crate::error::{Rejection, Result};
use crate::overlay::{Entry, Overlay, Template};

pub(crate) fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ u64::from(std::process::id()) << 32) | 1
}

/// xorshift64*: the serial picker needs no statistical quality, only spread.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Reads the newest state of citizens while a change is decided.
pub(crate) struct Reader<'a, D> {
    pub(crate) snapshot: &'a Snapshot<D>,
    pub(crate) overlay: &'a Overlay,
    pub(crate) pending: &'a HashMap<u64, Arc<Entry>>,
}

impl<D: AsRef<[u8]>> Reader<'_, D> {
    fn exists(&self, id: PersonalId) -> bool {
        self.pending.contains_key(&id.get()) || self.overlay.get(self.snapshot, id).is_some()
    }

    /// The citizen as it stands, with the modalities whose template only
    /// the snapshot holds.
    fn current(&self, id: PersonalId) -> Option<(Citizen, u8)> {
        let entry = self
            .pending
            .get(&id.get())
            .cloned()
            .or_else(|| self.overlay.entry(id.get()));
        if let Some(e) = entry {
            return Some((e.record.to_citizen(), e.inherited_templates));
        }
        let view = self.snapshot.get(id)?;
        let enrolled = view.enrolled();
        let inherited = (u8::from(enrolled.face) * modality_bit(Modality::Face))
            | (u8::from(enrolled.fingerprint) * modality_bit(Modality::Fingerprint));
        Some((view.to_citizen(), inherited))
    }

    fn legacy_holder(&self, legacy: LegacyId) -> Option<u64> {
        let pending = self
            .pending
            .values()
            .find(|e| e.record.view().legacy_id() == Some(legacy));
        if let Some(e) = pending {
            return Some(e.record.view().raw_id());
        }
        self.overlay
            .get_legacy(self.snapshot, legacy)
            .map(|f| f.view().raw_id())
    }

    fn template_holder(&self, modality: Modality, digest: &TemplateDigest) -> Option<u64> {
        let pending = self
            .pending
            .values()
            .find(|e| e.template(modality) == Template::Enrolled(*digest));
        if let Some(e) = pending {
            return Some(e.record.view().raw_id());
        }
        self.overlay
            .identify(self.snapshot, modality, digest)
            .map(|f| f.view().raw_id())
    }

    /// Every reference to another citizen must name an existing one.
    fn check_references(&self, c: &Citizen) -> Result<(), Rejection> {
        let relatives = [
            (Field::Father.key(), &c.father),
            (Field::Mother.key(), &c.mother),
            (Field::Spouse.key(), &c.spouse),
            (Field::Representative.key(), &c.representative),
        ];
        for (field, relative) in relatives {
            if let Some(id) = relative.as_ref().and_then(|r| r.id) {
                if id == c.id || !self.exists(id) {
                    return Err(Rejection::UnknownReference {
                        field: format!("{field}.id"),
                        id: id.to_string(),
                    });
                }
            }
        }
        if let Some(head) = c.household.as_ref().and_then(|h| h.head_id) {
            if head != c.id && !self.exists(head) {
                return Err(Rejection::UnknownReference {
                    field: "household.head_id".into(),
                    id: head.to_string(),
                });
            }
        }
        Ok(())
    }

    fn check_legacy_free(&self, c: &Citizen) -> Result<(), Rejection> {
        if let Some(legacy) = c.legacy_id {
            if let Some(holder) = self.legacy_holder(legacy) {
                if holder != c.id.get() {
                    return Err(Rejection::Conflict(format!(
                        "legacy ID {legacy} belongs to another citizen"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The record a change leaves, and its inherited template bits.
    pub(crate) fn decide(
        &self,
        subject: Option<PersonalId>,
        request: ChangeRequest,
        rng: &mut u64,
        now_unix: i64,
    ) -> Result<(Citizen, u8), Rejection> {
        let today = Date::from_days_since_epoch(now_unix.div_euclid(86_400))
            .map_err(|e| Rejection::Conflict(format!("the server's clock: {e}")))?;
        let current = || {
            let id = subject.expect("routes with a subject pass one");
            self.current(id)
                .ok_or_else(|| Rejection::UnknownCitizen(id.to_string()))
        };
        match request {
            ChangeRequest::Register(record) => {
                let mut c = self.new_citizen(record, rng)?;
                if c.date_of_birth > today {
                    return Err(inconsistent(Field::DateOfBirth.key(), "is in the future"));
                }
                c.date_of_death = None;
                self.check_references(&c)?;
                self.check_legacy_free(&c)?;
                Ok((c, 0))
            }
            ChangeRequest::Update(patch) => {
                let (c, inherited) = current()?;
                let object = patch
                    .as_object()
                    .ok_or_else(|| invalid("patch", "must be a JSON object"))?;
                if object.is_empty() {
                    return Err(invalid("patch", "changes nothing"));
                }
                if let Some(v) = object.get(Field::LegacyId.key()) {
                    legacy_of(v)?;
                }
                let mut changed = c;
                crate::change::apply_patch(&mut changed, object)?;
                changed.validate().map_err(|e| invalid("record", e.0))?;
                self.check_references(&changed)?;
                self.check_legacy_free(&changed)?;
                Ok((changed, inherited))
            }
            ChangeRequest::Death(date) => {
                let (mut c, inherited) = current()?;
                if let Some(d) = c.date_of_death {
                    return Err(Rejection::Conflict(format!(
                        "{} is already recorded dead on {d}",
                        c.id
                    )));
                }
                if date < c.date_of_birth {
                    return Err(inconsistent(
                        Field::DateOfDeath.key(),
                        "is before the date of birth",
                    ));
                }
                if date > today {
                    return Err(inconsistent(Field::DateOfDeath.key(), "is in the future"));
                }
                c.date_of_death = Some(date);
                Ok((c, inherited))
            }
            ChangeRequest::Biometric(modality, digest) => {
                let (mut c, inherited) = current()?;
                if let Some(holder) = self.template_holder(modality, &digest) {
                    if holder != c.id.get() {
                        return Err(Rejection::Conflict(
                            "this template identifier is enrolled to another citizen".into(),
                        ));
                    }
                }
                match modality {
                    Modality::Face => c.biometric_templates.face = Some(digest),
                    Modality::Fingerprint => c.biometric_templates.fingerprint = Some(digest),
                }
                Ok((c, inherited & !modality_bit(modality)))
            }
        }
    }

    /// A registration's record with a newly allocated ID.
    fn new_citizen(
        &self,
        mut record: serde_json::Value,
        rng: &mut u64,
    ) -> Result<Citizen, Rejection> {
        let object = record
            .as_object_mut()
            .ok_or_else(|| invalid("record", "must be a JSON object"))?;
        if object.contains_key(Field::Id.key()) {
            return Err(invalid(
                Field::Id.key(),
                "is allocated by the register; leave it out",
            ));
        }
        for absent in [Field::DateOfDeath.key(), "biometric_templates"] {
            if object.get(absent).is_some_and(|v| !v.is_null()) {
                return Err(invalid(absent, "cannot be set at registration"));
            }
        }
        let text = |key: &str| object.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let sex: Sex = text(Field::Sex.key())
            .ok_or_else(|| invalid(Field::Sex.key(), "is required (male or female)"))?
            .parse()
            .map_err(|e: dancu_engine::SchemaError| invalid(Field::Sex.key(), e.0))?;
        let born = Date::parse(
            &text(Field::DateOfBirth.key())
                .ok_or_else(|| invalid(Field::DateOfBirth.key(), "is required"))?,
        )
        .map_err(|e| invalid(Field::DateOfBirth.key(), e.0))?;
        let place = text(Field::BirthRegistrationPlace.key()).ok_or_else(|| {
            invalid(
                Field::BirthRegistrationPlace.key(),
                "is required: it decides the ID's province code",
            )
        })?;
        let province = province_of(&place).ok_or_else(|| {
            invalid(
                Field::BirthRegistrationPlace.key(),
                "must end with the name of one of the 63 provinces (e.g. \"..., Hà Nội\")",
            )
        })?;
        let prefix = PersonalId::new(province, sex, born.year(), 0)
            .map_err(|e| invalid(Field::DateOfBirth.key(), e.to_string()))?;
        object.insert(
            Field::Id.key().into(),
            serde_json::Value::String(prefix.to_string()),
        );
        // A record names every field, null when unknown; biometrics are
        // enrolled by their own route.
        for field in Field::ALL.into_iter().filter(|&f| f != Field::Biometrics) {
            object.entry(field.key()).or_insert(serde_json::Value::Null);
        }
        let mut c = citizen_from_json(record)?;
        c.validate().map_err(|e| invalid("record", e.0))?;
        c.id = self.allocate(prefix, rng)?;
        Ok(c)
    }

    /// A serial under `prefix` (`PPP G YY`) used by no record, pending or
    /// durable. A logged allocation is a logged record, so a crash after the
    /// log write keeps the ID taken; one before it was never answered.
    fn allocate(&self, prefix: PersonalId, rng: &mut u64) -> Result<PersonalId, Rejection> {
        let base = prefix.get() - u64::from(prefix.serial());
        let free = |serial: u64| {
            let id = PersonalId::from_u64(base + serial).expect("a serial keeps the ID valid");
            (!self.exists(id)).then_some(id)
        };
        for _ in 0..64 {
            if let Some(id) = free(next_random(rng) % 1_000_000) {
                return Ok(id);
            }
        }
        // Nearly full: scan from a random point.
        let start = next_random(rng) % 1_000_000;
        (0..1_000_000)
            .map(|i| (start + i) % 1_000_000)
            .find_map(free)
            .ok_or_else(|| Rejection::SerialsExhausted(format!("{:06}", base / 1_000_000)))
    }
}

/// The province code of a birth registration place: the province whose
/// name ends the address, compared after folding (so "HA NOI" matches).
pub fn province_of(place: &str) -> Option<u16> {
    let folded = fold(place);
    codes::PROVINCES
        .iter()
        .filter(|(_, name)| {
            let name = fold(name);
            folded == name || folded.ends_with(&format!(" {name}"))
        })
        .max_by_key(|(_, name)| name.len())
        .map(|&(code, _)| code)
}
