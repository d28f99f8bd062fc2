//! Reading SCIM JSON the way real clients send it: attribute names are
//! case-insensitive (RFC 7643 §2.1), and message envelopes are checked alike.

use serde_json::{Map, Value};

use super::{ScimError, ScimResult};

/// The value of `key`, spelled exactly or in any case.
pub fn get_ci<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The value of `key`, in any case, to change in place.
pub fn get_ci_mut<'m>(map: &'m mut Map<String, Value>, key: &str) -> Option<&'m mut Value> {
    let actual = map.keys().find(|k| k.eq_ignore_ascii_case(key))?.clone();
    map.get_mut(&actual)
}

/// Checks a message body's `schemas` (PatchOp, BulkRequest): absent or null
/// is tolerated, as clients omit it; otherwise it must list `urn`.
pub fn check_message_schemas(body: &Map<String, Value>, urn: &str) -> ScimResult<()> {
    match get_ci(body, "schemas") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(urns))
            if urns
                .iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn))) =>
        {
            Ok(())
        }
        Some(_) => Err(ScimError::invalid_syntax(format!(
            "'schemas' must be an array listing {urn}"
        ))),
    }
}
