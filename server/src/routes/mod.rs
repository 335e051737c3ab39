//! The handlers, one module per route family. A handler takes parsed input
//! (the caller, its scopes, the path parameter or the body) and returns
//! `Result<HttpResponse, ApiError>`; `service.rs` routes to it after
//! authorization. A new route family gets a module here, a [`Route`]
//! variant in [`crate::router`], its scope in `auth::required_scopes`
//! and a line in the dispatch of `service.rs`.
//!
//! Records are read only through [`crate::lookup::Lookup`]; accesses are
//! audited through `State::audit_access` / `State::audit_request`
//! ([`crate::state`]).
//!
//! [`Route`]: crate::router::Route

pub mod admin;
pub mod biometrics;
pub mod citizens;
pub mod feed;
pub mod matching;
pub mod public;
pub mod qr;
pub mod statistics;
pub mod verify;
pub mod writes;

use std::borrow::Cow;

use dancu_engine::CitizenView;
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::lookup::{Found, Lookup, RecordKey};
use crate::state::{lookup_outcome, Access, State};

/// Looks `key` up and audits the access (found or not); the record, or
/// `404` after the miss is audited. `warm` is called with a found record
/// before the audit: a handler starts loading what it will read of the
/// record there (its heap strings, each a cache miss), and the loads
/// overlap the audit instead of following it.
pub(crate) fn find_audited<'s>(
    state: &State,
    lookup: Lookup<'s>,
    key: RecordKey<'_>,
    access: Access<'_>,
    warm: impl FnOnce(&CitizenView<'_>),
) -> Result<Found<'s>, ApiError> {
    let found = lookup.find(key);
    if let Some(found) = &found {
        warm(&found.view());
    }
    let found_id = || found.as_ref().map_or(0, |f| f.view().raw_id());
    let (subject, legacy_id) = match key {
        RecordKey::Id(id) => (id.get(), 0),
        RecordKey::Legacy(legacy) => (found_id(), legacy.get()),
        RecordKey::Biometric(..) => (found_id(), 0),
    };
    state.audit_access(&access, lookup_outcome(found.is_some()), subject, legacy_id)?;
    found.ok_or_else(|| ApiError::not_found(key.not_found_message()))
}

/// A JSON string, borrowed from the body unless it has escapes (which no
/// well-formed ID has): `Cow<str>` inside a `Vec` always deserializes owned,
/// one allocation per ID.
pub(crate) struct JsonStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a str>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = JsonStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<JsonStr<'a>, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JsonStr<'a>, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

/// The `404` of one batch item, written inside the item's object.
pub(crate) const NOT_FOUND_ITEM: &[u8] =
    b"\"status\":404,\"error\":{\"code\":\"not_found\",\"message\":\"no citizen has this ID\"}";
