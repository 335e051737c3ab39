//! Which fields of a record a caller sees: every field its scopes allow,
//! narrowed by `?fields=` (GET) or `"fields"` (batchGet).
//!
//! Each connection remembers the last query string that gave a projection
//! ([`ProjectionCache`]): a gateway asks for the same `?fields=` on every
//! request, and parsing the list is most of the cost of a small projection.

use std::borrow::Cow;
use std::cell::RefCell;

use dancu_engine::FieldSet;

use crate::api_error::ApiError;
use crate::keys::Scopes;

/// The last query that gave a projection on a connection, with the scopes
/// it was computed for.
#[derive(Clone, Default)]
pub struct ProjectionCache(RefCell<(String, Scopes, Option<FieldSet>)>);

impl ProjectionCache {
    /// [`projection`], remembering the last query that gave one.
    pub fn projection(&self, scopes: Scopes, query: Option<&str>) -> Result<FieldSet, ApiError> {
        let Some(query) = query else {
            return projection(scopes, None);
        };
        let mut cache = self.0.borrow_mut();
        let (cached, cached_scopes, fields) = &mut *cache;
        if let Some(fields) = *fields {
            if *cached_scopes == scopes && cached == query {
                return Ok(fields);
            }
        }
        let found = projection(scopes, Some(query))?;
        cached.clear();
        cached.push_str(query);
        *cached_scopes = scopes;
        *fields = Some(found);
        Ok(found)
    }
}

/// The fields a caller may see, narrowed by `?fields=` in `query`.
pub fn projection(scopes: Scopes, query: Option<&str>) -> Result<FieldSet, ApiError> {
    let list = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("fields=")));
    narrow(scopes, list.map(percent_decode).as_deref())
}

/// The fields of a comma-separated `list`, if visible with `scopes`; every
/// visible field without a list.
pub fn narrow(scopes: Scopes, list: Option<&str>) -> Result<FieldSet, ApiError> {
    let allowed = if scopes.any(Scopes::READ) {
        FieldSet::ALL
    } else {
        FieldSet::BASIC
    };
    let Some(list) = list else { return Ok(allowed) };
    let asked = parse_fields(list)?;
    if !allowed.contains(asked) {
        let hidden: Vec<&str> = asked
            .names()
            .filter(|n| !allowed.names().any(|a| a == *n))
            .collect();
        return Err(ApiError::forbidden(format!(
            "fields {} need scope citizen:read (this key has citizen:read:basic)",
            hidden.join(", ")
        )));
    }
    Ok(asked)
}

/// The fields of `name(,name)*`, exactly as `openapi.yaml`'s `FieldList`
/// says: no spaces around a name and no empty name.
fn parse_fields(list: &str) -> Result<FieldSet, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_fields", message);
    if let Some(name) = list.split(',').find(|n| n.is_empty() || n.trim() != *n) {
        return Err(invalid(format!(
            "field name {name:?} in {list:?}: the list is comma-separated names without spaces"
        )));
    }
    FieldSet::parse_list(list).map_err(invalid)
}

/// Decodes `%XX` and `+` in a query value; malformed escapes stay as they
/// are.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
        match b[i] {
            b'%' => match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_field_lists() {
        assert_eq!(percent_decode("id,full_name"), "id,full_name");
        assert_eq!(percent_decode("id%2Cfull_name"), "id,full_name");
        assert_eq!(percent_decode("id%2"), "id%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn projection_by_scope() {
        assert_eq!(projection(Scopes::READ, None).ok(), Some(FieldSet::ALL));
        assert_eq!(
            projection(Scopes::READ_BASIC, None).ok(),
            Some(FieldSet::BASIC)
        );
        assert_eq!(
            projection(Scopes::READ_BASIC, Some("fields=id")).ok(),
            FieldSet::parse_list("id").ok()
        );
        assert_eq!(
            projection(Scopes::READ_BASIC, Some("fields=hometown"))
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            projection(Scopes::READ, Some("x=1&fields=nope"))
                .unwrap_err()
                .status(),
            400
        );
        for strayed in ["fields=", "fields=id,", "fields=id,%20sex", "fields=,id"] {
            assert_eq!(
                projection(Scopes::READ, Some(strayed))
                    .unwrap_err()
                    .status(),
                400,
                "{strayed}"
            );
        }
    }
}
