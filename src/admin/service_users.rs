//! Service users: accounts that hold keys and can never sign in.

use serde::Deserialize;

use super::views::ServiceUserJson;
use super::{Admin, AdminError, AdminResult, ListPage, check_description, check_name, next_cursor};
use crate::auth::Role;
use crate::store::admin::ServiceUserChange;
use crate::store::audit::AuditContext;
use crate::store::tenants::NewServiceUser;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceUser {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub role: String,
}

/// `PATCH` body: absent fields stay as they are; `description: null` clears it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceUser {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub role: Option<String>,
}

pub fn parse_role(role: &str) -> AdminResult<Role> {
    Role::parse(role).ok_or_else(|| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        AdminError::Invalid(format!("unknown role \"{role}\"; roles are {}", known.join(", ")))
    })
}

impl Admin {
    pub async fn create_service_user(
        &self,
        ctx: &AuditContext,
        tenant_name: &str,
        input: CreateServiceUser,
    ) -> AdminResult<ServiceUserJson> {
        let name = check_name("service user", &input.name)?;
        let description = check_description(input.description)?;
        let role = parse_role(&input.role)?;
        let row = self
            .store
            .create_service_user(
                ctx,
                NewServiceUser {
                    tenant_id: &ctx.tenant_id,
                    name: &name,
                    description: description.as_deref(),
                    role: role.as_str(),
                    granted_scopes: &[],
                    actor: &ctx.actor_name,
                },
            )
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        Ok(ServiceUserJson::new(row, tenant_name, 0))
    }

    pub async fn get_service_user(&self, tenant_id: &str, tenant_name: &str, id: &str) -> AdminResult<ServiceUserJson> {
        let row = self
            .store
            .service_user(tenant_id, id)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?
            .ok_or_else(|| AdminError::NotFound(format!("service user {id} not found")))?;
        let count = self
            .store
            .key_count(&row.id)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        Ok(ServiceUserJson::new(row, tenant_name, count))
    }

    pub async fn list_service_users(
        &self,
        tenant_id: &str,
        tenant_name: &str,
        q: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> AdminResult<ListPage<ServiceUserJson>> {
        let (total, rows) = self
            .store
            .list_service_users(tenant_id, q, offset, limit)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let count = self
                .store
                .key_count(&row.id)
                .await
                .map_err(|e| AdminError::from_store(e, "service user"))?;
            items.push(ServiceUserJson::new(row, tenant_name, count));
        }
        let next_cursor = next_cursor(offset, items.len(), total);
        Ok(ListPage {
            items,
            next_cursor,
            total,
        })
    }

    pub async fn update_service_user(
        &self,
        ctx: &AuditContext,
        tenant_name: &str,
        id: &str,
        input: UpdateServiceUser,
    ) -> AdminResult<ServiceUserJson> {
        let change = ServiceUserChange {
            name: input
                .name
                .as_deref()
                .map(|n| check_name("service user", n))
                .transpose()?,
            description: match input.description {
                Some(d) => Some(check_description(d)?),
                None => None,
            },
            role: input
                .role
                .as_deref()
                .map(|r| parse_role(r).map(|r| r.as_str().to_string()))
                .transpose()?,
        };
        let row = self
            .store
            .update_service_user(ctx, id, change)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        // The role bounds every key's scopes: drop cached credentials now.
        self.verifier.invalidate_all();
        let count = self
            .store
            .key_count(&row.id)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        Ok(ServiceUserJson::new(row, tenant_name, count))
    }

    pub async fn delete_service_user(&self, ctx: &AuditContext, id: &str) -> AdminResult<()> {
        let keys = self
            .store
            .delete_service_user(ctx, id)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        for key in keys {
            self.verifier.invalidate(&key);
        }
        Ok(())
    }
}
