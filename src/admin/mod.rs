//! The administrative operations of contract §4 (service users, API keys,
//! tenants, audit log), shared by the HTTP admin API and the command line.
//! Rules live here; the store persists and audits; handlers only translate.

pub mod keys;
pub mod service_users;
pub mod tenants;
pub mod views;

use std::sync::Arc;

use crate::auth::KeyVerifier;
use crate::auth::hashing::Hasher;
use crate::store::audit::EventPosition;
use crate::store::{Store, StoreError};

/// Default page size and maximum of admin lists.
pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but the rules refuse it (422).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("internal error")]
    Internal,
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::Invalid(_) => 400,
            AdminError::NotFound(_) => 404,
            AdminError::Conflict(_) => 409,
            AdminError::Refused(_) => 422,
            AdminError::Forbidden(_) => 403,
            AdminError::Internal => 500,
        }
    }

    /// Maps store failures; `what` names the missing thing for 404s.
    pub fn from_store(e: StoreError, what: &str) -> AdminError {
        match e {
            StoreError::NotFound => AdminError::NotFound(format!("{what} not found")),
            StoreError::Conflict(detail) => AdminError::Conflict(detail),
            StoreError::InvalidReference(detail) | StoreError::Unsupported(detail) => AdminError::Invalid(detail),
            StoreError::VersionMismatch => AdminError::Conflict("the resource changed meanwhile; retry".into()),
            StoreError::Contention(_) | StoreError::Db(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure in admin operation");
                AdminError::Internal
            }
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// Key lifetimes from the configuration, in days.
#[derive(Debug, Clone, Copy)]
pub struct KeyLifetimes {
    pub default_days: u32,
    pub max_days: u32,
}

pub struct Admin {
    pub(crate) store: Store,
    pub(crate) hasher: Hasher,
    pub(crate) verifier: Arc<KeyVerifier>,
    pub(crate) lifetimes: KeyLifetimes,
}

impl Admin {
    pub fn new(store: Store, hasher: Hasher, verifier: Arc<KeyVerifier>, lifetimes: KeyLifetimes) -> Self {
        Admin {
            store,
            hasher,
            verifier,
            lifetimes,
        }
    }
}

/// A page of an admin list.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

/// Cursors of admin lists are opaque to clients; inside they hold an offset.
pub fn decode_cursor(cursor: Option<&str>) -> AdminResult<u64> {
    let Some(cursor) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(0);
    };
    cursor
        .strip_prefix("o")
        .and_then(|n| u64::from_str_radix(n, 36).ok())
        .ok_or_else(|| AdminError::Invalid("invalid cursor: pass the nextCursor of the previous page".into()))
}

pub fn next_cursor(offset: u64, returned: usize, total: u64) -> Option<String> {
    let next = offset + returned as u64;
    (returned > 0 && next < total).then(|| format!("o{}", radix36(next)))
}

fn radix36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().map(|&b| b as char).collect()
}

/// The audit log's cursor: the previous page's last event (its time in
/// microseconds and its id), where the next page starts.
pub fn event_cursor(last: &EventPosition) -> String {
    format!("e{}_{}", radix36(last.at.timestamp_micros().unsigned_abs()), last.id)
}

pub fn decode_event_cursor(cursor: Option<&str>) -> AdminResult<Option<EventPosition>> {
    let Some(cursor) = cursor.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let position = cursor
        .strip_prefix('e')
        .and_then(|c| c.split_once('_'))
        .and_then(|(micros, id)| {
            let micros = i64::from_str_radix(micros, 36).ok()?;
            let id = uuid::Uuid::parse_str(id).ok()?;
            Some(EventPosition {
                at: chrono::DateTime::from_timestamp_micros(micros)?,
                id: id.to_string(),
            })
        });
    position
        .map(Some)
        .ok_or_else(|| AdminError::Invalid("invalid cursor: pass the nextCursor of the previous page".into()))
}

pub fn limit(requested: Option<u64>) -> AdminResult<u64> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(AdminError::Invalid("limit must be at least 1".into())),
        Some(n) if n > MAX_LIMIT => Err(AdminError::Invalid(format!("limit must be at most {MAX_LIMIT}"))),
        Some(n) => Ok(n),
    }
}

/// For `PATCH` bodies: an absent field is `None` (via `#[serde(default)]`),
/// an explicit `null` is `Some(None)`.
pub(crate) fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// Names of service users and keys: they appear in file names and logs.
pub fn check_name(what: &str, name: &str) -> AdminResult<String> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name.to_string())
    } else {
        Err(AdminError::Invalid(format!(
            "{what} name must be 1 to 64 characters of letters, digits, '-', '_' and '.'"
        )))
    }
}

pub fn check_description(description: Option<String>) -> AdminResult<Option<String>> {
    match description {
        Some(d) if d.chars().count() > 1024 => Err(AdminError::Invalid(
            "description must be at most 1024 characters".into(),
        )),
        Some(d) if d.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl Admin {
    pub async fn list_audit_events(
        &self,
        tenant_name: &str,
        tenant_id: &str,
        query: &crate::store::audit::AuditQuery,
    ) -> AdminResult<ListPage<views::AuditEventJson>> {
        let page = self
            .store
            .list_audit_events(tenant_id, query)
            .await
            .map_err(|e| AdminError::from_store(e, "event"))?;
        let next_cursor = page.events.last().filter(|_| page.more).map(|last| {
            event_cursor(&EventPosition {
                at: last.at,
                id: last.id.clone(),
            })
        });
        let items: Vec<_> = page
            .events
            .into_iter()
            .map(|row| views::AuditEventJson::new(row, tenant_name))
            .collect();
        Ok(ListPage {
            items,
            next_cursor,
            total: page.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_end_on_the_last_page() {
        let cursor = next_cursor(0, 50, 120).expect("more");
        assert_eq!(decode_cursor(Some(&cursor)).expect("valid"), 50);
        assert_eq!(next_cursor(100, 20, 120), None);
        assert!(decode_cursor(Some("garbage")).is_err());
        assert_eq!(decode_cursor(Some("")).expect("first"), 0);
    }

    #[test]
    fn event_cursors_round_trip_and_refuse_anything_else() {
        let last = EventPosition {
            at: chrono::DateTime::from_timestamp_micros(1_796_000_000_123_456).expect("time"),
            id: "01a24cb6-0f75-77d2-add4-cc7c9a2ad171".into(),
        };
        let cursor = event_cursor(&last);
        assert_eq!(decode_event_cursor(Some(&cursor)).expect("valid"), Some(last));
        assert_eq!(decode_event_cursor(None).expect("first"), None);
        assert_eq!(decode_event_cursor(Some(" ")).expect("first"), None);
        for bad in [
            "o1k",
            "e",
            "e12",
            "e12_not-a-uuid",
            "ezz!_01a24cb6-0f75-77d2-add4-cc7c9a2ad171",
        ] {
            assert!(decode_event_cursor(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_restricted_to_file_safe_characters() {
        assert!(check_name("key", "scim-delete-user").is_ok());
        assert!(check_name("key", "nightly.job_1").is_ok());
        assert!(check_name("key", "").is_err());
        assert!(check_name("key", "a/b").is_err());
        assert!(check_name("key", &"x".repeat(65)).is_err());
    }
}
