//! Changes: what registrars ask for, and the record each leaves in the log.
//!
//! The log stores *after-images*: the whole record as the change left it
//! ([`dancu_engine::OwnedRecord`]'s bytes), with who made the change, why,
//! and the request's idempotency key. Replaying a log is then a matter of
//! putting records in place, never of re-running merge patches, and the
//! change feed can give followers and downstream systems the new state as it
//! is. [`LoggedChange`] is archived with rkyv: the log thread and feed
//! readers check an archive's bytes (bytecheck) and read the envelope in
//! place.

use dancu_engine::{Date, Field, LegacyId, Modality, PersonalId, TemplateDigest};
use rkyv::rancor;

use crate::error::{Error, Rejection, Result};

/// What a change did.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub enum ChangeKind {
    /// A birth or a first registration: a new record with a new ID.
    Register,
    /// A JSON merge patch of changeable fields (or a legacy-ID correction).
    Update,
    /// A death or declared disappearance.
    Death,
    /// A biometric template enrolled or replaced.
    Biometric,
}

impl ChangeKind {
    /// The word used in the change feed and the audit log.
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::Register => "register",
            ChangeKind::Update => "update",
            ChangeKind::Death => "death",
            ChangeKind::Biometric => "biometric",
        }
    }
}

/// A change as a registrar asks for it (the subject, when it exists, is
/// named separately).
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeRequest {
    /// Register a birth or first registration: a JSON record without `id`.
    Register(serde_json::Value),
    /// A JSON merge patch (RFC 7396) of changeable fields.
    Update(serde_json::Value),
    /// Record a death.
    Death(Date),
    /// Enrol or replace the template of one modality.
    Biometric(Modality, TemplateDigest),
}

impl ChangeRequest {
    /// The kind of change this request makes.
    pub fn kind(&self) -> ChangeKind {
        match self {
            ChangeRequest::Register(_) => ChangeKind::Register,
            ChangeRequest::Update(_) => ChangeKind::Update,
            ChangeRequest::Death(_) => ChangeKind::Death,
            ChangeRequest::Biometric(..) => ChangeKind::Biometric,
        }
    }

    /// A digest of the request, to tell a retry from a different request
    /// that reuses an idempotency key.
    pub fn digest(&self, subject: Option<PersonalId>) -> u64 {
        let text = match self {
            ChangeRequest::Register(v) | ChangeRequest::Update(v) => v.to_string(),
            ChangeRequest::Death(d) => d.to_string(),
            ChangeRequest::Biometric(m, d) => format!("{m:?}{:?}", d.0),
        };
        let subject = subject.map_or(0, PersonalId::get);
        xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), subject ^ self.kind() as u64)
    }
}

/// Who asks for a change, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The registrar client (its key's name).
    pub client: String,
    /// Why (free text from the registrar, e.g. a birth certificate number).
    pub reason: String,
    /// The request's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
}

/// The fields a registrar may change with a merge patch (DESIGN.md: residences,
/// marital status, name correction, household, relatives, religion, blood
/// type; and the legacy ID, corrected through the same route): the
/// schema's [`dancu_engine::FieldSpec::changeable`] fields.
pub const CHANGEABLE_FIELDS: &[&str] = &dancu_engine::schema::CHANGEABLE_KEYS;

/// One record of the log, as archived.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LoggedChange {
    /// What the change did.
    pub kind: ChangeKind,
    /// The subject's personal ID.
    pub subject: u64,
    /// When the register accepted it, seconds since 1970.
    pub time_unix: i64,
    /// The registrar client.
    pub client: String,
    /// The registrar's reason.
    pub reason: String,
    /// The request's idempotency key.
    pub idempotency_key: Option<String>,
    /// [`ChangeRequest::digest`] of the request.
    pub request_digest: u64,
    /// Modalities (bit 0 face, bit 1 fingerprint) whose template is the one
    /// the snapshot holds, not repeated here.
    pub inherited_templates: u8,
    /// The record after the change ([`dancu_engine::OwnedRecord::to_bytes`]).
    pub image: Vec<u8>,
}

impl LoggedChange {
    /// The archived bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("serializing to memory cannot fail")
            .into_vec()
    }

    /// Checks and reads archived bytes (they need not be aligned).
    pub fn from_bytes(bytes: &[u8]) -> Result<LoggedChange> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<LoggedChange, rancor::Error>(&aligned)
            .map_err(|e| Error::LogFailed(format!("a change record does not decode: {e}")))
    }
}

/// Bit of `modality` in [`LoggedChange::inherited_templates`].
pub fn modality_bit(modality: Modality) -> u8 {
    match modality {
        Modality::Face => 1,
        Modality::Fingerprint => 2,
    }
}

/// Applies the RFC 7396 merge patch `patch` (a JSON object of changeable
/// fields) to `c`, one field at a time: only the patched fields are
/// converted to JSON and back (serializing the whole record per change cost
/// more than the rest of a write). A field the schema does not let a
/// registrar change is a 400 naming it.
pub(crate) fn apply_patch(
    c: &mut dancu_engine::Citizen,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), Rejection> {
    use serde_json::{from_value, to_value, Value};
    for (key, change) in patch {
        let field = Field::from_key(key)
            .filter(|f| f.spec().changeable)
            .ok_or_else(|| {
                invalid(
                    key.as_str(),
                    format!(
                        "is not changeable by a patch (changeable: {})",
                        CHANGEABLE_FIELDS.join(", ")
                    ),
                )
            })?;
        let json = |r: serde_json::Result<Value>| r.expect("a field serializes");
        let mut value = match field {
            Field::FullName => json(to_value(&c.full_name)),
            Field::LegacyId => json(to_value(c.legacy_id)),
            Field::Religion => json(to_value(c.religion)),
            Field::MaritalStatus => json(to_value(c.marital_status)),
            Field::PermanentResidence => json(to_value(&c.permanent_residence)),
            Field::TemporaryResidence => json(to_value(&c.temporary_residence)),
            Field::CurrentResidence => json(to_value(&c.current_residence)),
            Field::BloodType => json(to_value(c.blood_type)),
            Field::Father => json(to_value(&c.father)),
            Field::Mother => json(to_value(&c.mother)),
            Field::Spouse => json(to_value(&c.spouse)),
            Field::Representative => json(to_value(&c.representative)),
            Field::Household => json(to_value(&c.household)),
            other => {
                unreachable!("the schema marks {other:?} changeable but patches cannot set it")
            }
        };
        // A relative or household patch is merged into the current one:
        // its own form is checked first (400), while a merge that leaves
        // the object incomplete depends on the record (422).
        let merged_object = matches!(
            field,
            Field::Father
                | Field::Mother
                | Field::Spouse
                | Field::Representative
                | Field::Household
        ) && change.is_object();
        if merged_object {
            check_object_patch(field, change).map_err(|e| invalid(key.as_str(), e.to_string()))?;
        }
        merge_patch(&mut value, change);
        let bad = |e: serde_json::Error| {
            if merged_object {
                inconsistent(key.as_str(), format!("the patched value: {e}"))
            } else {
                invalid(key.as_str(), e.to_string())
            }
        };
        match field {
            Field::FullName => c.full_name = from_value(value).map_err(bad)?,
            Field::LegacyId => c.legacy_id = from_value(value).map_err(bad)?,
            Field::Religion => c.religion = from_value(value).map_err(bad)?,
            Field::MaritalStatus => c.marital_status = from_value(value).map_err(bad)?,
            Field::PermanentResidence => c.permanent_residence = from_value(value).map_err(bad)?,
            Field::TemporaryResidence => c.temporary_residence = from_value(value).map_err(bad)?,
            Field::CurrentResidence => c.current_residence = from_value(value).map_err(bad)?,
            Field::BloodType => c.blood_type = from_value(value).map_err(bad)?,
            Field::Father => c.father = from_value(value).map_err(bad)?,
            Field::Mother => c.mother = from_value(value).map_err(bad)?,
            Field::Spouse => c.spouse = from_value(value).map_err(bad)?,
            Field::Representative => c.representative = from_value(value).map_err(bad)?,
            Field::Household => c.household = from_value(value).map_err(bad)?,
            _ => unreachable!("checked above"),
        }
    }
    Ok(())
}

/// Applies an RFC 7396 merge patch to `target`.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let object = target.as_object_mut().expect("made an object above");
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The form of a merge patch of a relative or the household: every
/// property optional, null clearing it, nothing unknown.
fn check_object_patch(field: Field, patch: &serde_json::Value) -> serde_json::Result<()> {
    use dancu_engine::{Country, Relationship};
    use serde::Deserialize;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by serde only
    struct RelativePatch {
        full_name: Option<String>,
        #[serde(default)]
        id: Option<Option<PersonalId>>,
        #[serde(default)]
        nationality: Option<Option<Country>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read by serde only
    struct HouseholdPatch {
        #[serde(default)]
        head_id: Option<Option<PersonalId>>,
        head_name: Option<String>,
        relationship: Option<Relationship>,
    }
    if field == Field::Household {
        HouseholdPatch::deserialize(patch).map(drop)
    } else {
        RelativePatch::deserialize(patch).map(drop)
    }
}

/// A 422 naming `field`: well-formed, but the record or the date says no.
pub(crate) fn inconsistent(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::Inconsistent {
        field: field.into(),
        message: message.into(),
    }
}

/// A 400 naming `field`.
pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a JSON record into a [`dancu_engine::Citizen`], naming the field
/// at fault.
pub(crate) fn citizen_from_json(
    value: serde_json::Value,
) -> Result<dancu_engine::Citizen, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "record".to_string()
        } else {
            path
        };
        invalid(field, e.into_inner().to_string())
    })
}

/// A legacy ID from a patch value.
pub(crate) fn legacy_of(value: &serde_json::Value) -> Result<Option<LegacyId>, Rejection> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => LegacyId::parse(s)
            .map(Some)
            .map_err(|e| invalid(Field::LegacyId.key(), e.to_string())),
        _ => Err(invalid(
            Field::LegacyId.key(),
            "must be a 9-digit string or null",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": "c"}}));
        assert_eq!(doc, json!({"a": {"b": "c"}}));
    }

    #[test]
    fn logged_change_round_trips_through_unaligned_bytes() {
        let c = LoggedChange {
            kind: ChangeKind::Death,
            subject: 79_089_012_345,
            time_unix: 1_700_000_000,
            client: "registrar-hn".into(),
            reason: "death certificate 12/2026".into(),
            idempotency_key: Some("k1".into()),
            request_digest: 42,
            inherited_templates: 3,
            image: vec![1, 2, 3],
        };
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&c.to_bytes());
        assert_eq!(LoggedChange::from_bytes(&bytes[1..]).unwrap(), c);
        assert!(LoggedChange::from_bytes(&bytes[2..]).is_err());
    }
}
