//! Tenants and service users.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

use super::entities::{service_user, tenant};
use super::{Store, StoreError, StoreResult};

pub use service_user::Model as ServiceUserRow;
pub use tenant::Model as TenantRow;

/// What it takes to create a service user.
pub struct NewServiceUser<'a> {
    pub tenant_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub role: &'a str,
    pub granted_scopes: &'a [String],
    pub actor: &'a str,
}

impl Store {
    pub async fn count_tenants(&self) -> StoreResult<u64> {
        Ok(tenant::Entity::find().count(self.reader()).await?)
    }

    pub async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<TenantRow>> {
        Ok(tenant::Entity::find()
            .filter(tenant::Column::Name.eq(name))
            .one(self.reader())
            .await?)
    }

    pub async fn tenant_by_id(&self, id: &str) -> StoreResult<Option<TenantRow>> {
        Ok(tenant::Entity::find_by_id(id.to_string()).one(self.reader()).await?)
    }
}

pub(crate) async fn insert_tenant(db: &impl ConnectionTrait, name: &str) -> StoreResult<TenantRow> {
    let row = tenant::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        name: Set(name.to_string()),
        created_at: Set(super::now()),
    };
    row.insert(db)
        .await
        .map_err(|e| StoreError::from_db(e, "a tenant with this name exists"))
}

pub(crate) async fn insert_service_user(
    db: &impl ConnectionTrait,
    new: NewServiceUser<'_>,
) -> StoreResult<ServiceUserRow> {
    let now = super::now();
    let row = service_user::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(new.tenant_id.to_string()),
        name: Set(new.name.to_string()),
        name_folded: Set(new.name.to_lowercase()),
        description: Set(new.description.map(str::to_string)),
        role: Set(new.role.to_string()),
        granted_scopes: Set(serde_json::to_string(new.granted_scopes).unwrap_or_else(|_| "[]".into())),
        created_at: Set(now),
        created_by: Set(new.actor.to_string()),
        updated_at: Set(now),
        updated_by: Set(new.actor.to_string()),
    };
    row.insert(db)
        .await
        .map_err(|e| StoreError::from_db(e, "a service user with this name exists in the tenant"))
}
