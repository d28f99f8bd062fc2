//! Tenants: each created with its first service user `admin` and a key.

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::views::{KeyJson, ServiceUserJson, TenantJson};
use super::{Admin, AdminError, AdminResult};
use crate::auth::bootstrap::key_file_name;
use crate::auth::key;
use crate::auth::scopes::{Role, scope_names};
use crate::store::admin::KeyView;
use crate::store::audit::AuditContext;
use crate::store::keys::NewKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenantJson {
    pub tenant: TenantJson,
    pub service_user: ServiceUserJson,
    /// The first key's full value, shown once.
    pub key: String,
    pub file_name: String,
    /// The key's metadata.
    pub key_info: KeyJson,
}

/// A lowercase slug: letters, digits and single hyphens, 1 to 63 characters.
pub fn check_tenant_name(name: &str) -> AdminResult<String> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(name.to_string())
    } else {
        Err(AdminError::Invalid(
            "tenant name must be a lowercase slug: 1 to 63 letters, digits and single hyphens".into(),
        ))
    }
}

impl Admin {
    pub async fn create_tenant(&self, ctx: &AuditContext, input: CreateTenant) -> AdminResult<CreatedTenantJson> {
        let name = check_tenant_name(&input.name)?;
        let plain = key::generate();
        let secret_hash = self
            .hasher
            .hash(plain.secret().to_string())
            .await
            .map_err(|_| AdminError::Internal)?;
        let scopes = scope_names(&Role::Admin.scopes());
        let expires_at = Utc::now() + Duration::days(i64::from(self.lifetimes.default_days));
        let created = self
            .store
            .create_tenant(
                ctx,
                &name,
                Role::Admin.as_str(),
                NewKey {
                    id: plain.id().as_str(),
                    name: "admin",
                    description: Some("first key of the tenant"),
                    key_type: "service",
                    secret_hash: &secret_hash,
                    scopes: &scopes,
                    allowed_ips: &[],
                    expires_at: Some(expires_at),
                    actor: &ctx.actor_name,
                },
            )
            .await
            .map_err(|e| AdminError::from_store(e, "tenant"))?;
        let file_name = key_file_name("admin", created.key.created_at);
        let key_info = KeyJson::from(KeyView {
            key: created.key,
            service_user_name: created.service_user.name.clone(),
            tenant_name: created.tenant.name.clone(),
        });
        Ok(CreatedTenantJson {
            service_user: ServiceUserJson::new(created.service_user, &created.tenant.name, 1),
            tenant: created.tenant.into(),
            key: plain.expose().to_string(),
            file_name,
            key_info,
        })
    }

    pub async fn list_tenants(&self) -> AdminResult<Vec<TenantJson>> {
        let rows = self
            .store
            .list_tenants()
            .await
            .map_err(|e| AdminError::from_store(e, "tenant"))?;
        Ok(rows.into_iter().map(TenantJson::from).collect())
    }
}
