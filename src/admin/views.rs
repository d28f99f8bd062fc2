//! The JSON shapes of the admin API (contract §4). None holds a secret but
//! the one-time `key` of a create or rotate answer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::admin::{KeyState, KeyView};
use crate::store::keys::parse_json_list;
use crate::store::tenants::{ServiceUserRow, TenantRow};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceUserJson {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub role: String,
    pub tenant: String,
    pub interactive: bool,
    pub key_count: u64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl ServiceUserJson {
    pub fn new(row: ServiceUserRow, tenant: &str, key_count: u64) -> Self {
        ServiceUserJson {
            id: row.id,
            name: row.name,
            description: row.description,
            role: row.role,
            tenant: tenant.to_string(),
            interactive: false,
            key_count,
            created_at: row.created_at,
            created_by: row.created_by,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyJson {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub state: &'static str,
    #[serde(rename = "type")]
    pub key_type: String,
    pub service_user_id: String,
    pub service_user_name: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

impl From<KeyView> for KeyJson {
    fn from(view: KeyView) -> Self {
        let key = view.key;
        KeyJson {
            state: KeyState::of(&key, Utc::now()).as_str(),
            scopes: parse_json_list(&key.scopes).unwrap_or_default(),
            allowed_ips: parse_json_list(&key.allowed_ips).unwrap_or_default(),
            id: key.id,
            name: key.name,
            description: key.description,
            key_type: key.key_type,
            service_user_id: key.service_user_id,
            service_user_name: view.service_user_name,
            tenant: view.tenant_name,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            created_at: key.created_at,
            created_by: key.created_by,
            updated_at: key.updated_at,
            updated_by: key.updated_by,
        }
    }
}

/// A key with its secret, shown once (create and rotate).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyWithSecretJson {
    #[serde(flatten)]
    pub key: KeyJson,
    /// The full key. Shown in this answer only.
    #[serde(rename = "key")]
    pub secret: String,
    pub file_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantJson {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<TenantRow> for TenantJson {
    fn from(row: TenantRow) -> Self {
        TenantJson {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        }
    }
}

/// An audit event as `GET /admin/v1/audit-events` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventJson {
    pub id: String,
    pub at: DateTime<Utc>,
    pub tenant: String,
    pub action: String,
    pub actor: AuditActorJson,
    pub target: AuditTargetJson,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditActorJson {
    pub key_id: Option<String>,
    pub service_user_id: Option<String>,
    pub service_user_name: String,
}

#[derive(Debug, Serialize)]
pub struct AuditTargetJson {
    #[serde(rename = "type")]
    pub target_type: String,
    pub id: Option<String>,
}

impl AuditEventJson {
    pub fn new(row: crate::store::audit::AuditEventRow, tenant: &str) -> Self {
        AuditEventJson {
            id: row.id,
            at: row.at,
            tenant: tenant.to_string(),
            action: row.action,
            actor: AuditActorJson {
                key_id: row.actor_key_id,
                service_user_id: row.actor_service_user_id,
                service_user_name: row.actor_service_user_name,
            },
            target: AuditTargetJson {
                target_type: row.target_type,
                id: row.target_id,
            },
            ip: row.ip,
            request_id: row.request_id,
            outcome: row.outcome,
            detail: row.detail.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}
