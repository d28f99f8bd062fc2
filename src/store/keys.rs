//! API key rows, the lookups authentication needs, and the auth epoch.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

use super::entities::{api_key, service_user, tenant};
use super::tenants::{NewServiceUser, ServiceUserRow, TenantRow, insert_service_user, insert_tenant};
use super::{Store, StoreError, StoreResult};

pub use api_key::Model as ApiKeyRow;

/// A key to insert; `secret_hash` is the argon2id PHC string, never the secret.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub key_type: &'a str,
    pub secret_hash: &'a str,
    pub scopes: &'a [String],
    pub allowed_ips: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
    pub actor: &'a str,
}

/// Everything authentication needs about one key, read in one go.
#[derive(Debug, Clone)]
pub struct KeyAuthRecord {
    pub key: ApiKeyRow,
    pub service_user: ServiceUserRow,
    pub tenant: TenantRow,
}

/// A tenant with its first service user and key, as created together.
pub struct CreatedTenant {
    pub tenant: TenantRow,
    pub service_user: ServiceUserRow,
    pub key: ApiKeyRow,
}

impl Store {
    /// Loads a key with its service user and tenant; `None` if any is gone.
    pub async fn key_auth_record(&self, key_id: &str) -> StoreResult<Option<KeyAuthRecord>> {
        let db = self.reader();
        let Some(key) = api_key::Entity::find_by_id(key_id.to_string()).one(db).await? else {
            return Ok(None);
        };
        let Some(service_user) = service_user::Entity::find_by_id(key.service_user_id.clone())
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let Some(tenant) = tenant::Entity::find_by_id(key.tenant_id.clone()).one(db).await? else {
            return Ok(None);
        };
        Ok(Some(KeyAuthRecord {
            key,
            service_user,
            tenant,
        }))
    }

    /// The current auth epoch; it changes whenever a key or service user does.
    pub async fn auth_epoch(&self) -> StoreResult<i64> {
        let stmt = Query::select()
            .column("epoch")
            .from("auth_epoch")
            .and_where(Expr::col("id").eq(1))
            .to_owned();
        let row = self.reader().query_one(&stmt).await?;
        match row {
            Some(row) => Ok(row.try_get::<i64>("", "epoch")?),
            None => Err(StoreError::Corrupt("auth_epoch row is missing".into())),
        }
    }

    /// Creates a tenant, its first service user and that user's first key in
    /// one transaction (first start, and `POST /admin/v1/tenants`).
    pub async fn create_tenant_with_admin(
        &self,
        tenant_name: &str,
        service_user_name: &str,
        role: &str,
        granted_scopes: &[String],
        key: NewKey<'_>,
    ) -> StoreResult<CreatedTenant> {
        let txn = self.writer().begin().await?;
        let tenant = insert_tenant(&txn, tenant_name).await?;
        let service_user = insert_service_user(
            &txn,
            NewServiceUser {
                tenant_id: &tenant.id,
                name: service_user_name,
                description: None,
                role,
                granted_scopes,
                actor: key.actor,
            },
        )
        .await?;
        let key = insert_key(&txn, &tenant.id, &service_user.id, key).await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(CreatedTenant {
            tenant,
            service_user,
            key,
        })
    }

    /// Creates a service user and its first key in one transaction.
    pub async fn create_service_user_with_key(
        &self,
        service_user: NewServiceUser<'_>,
        key: NewKey<'_>,
    ) -> StoreResult<(ServiceUserRow, ApiKeyRow)> {
        let txn = self.writer().begin().await?;
        let tenant_id = service_user.tenant_id.to_string();
        let service_user = insert_service_user(&txn, service_user).await?;
        let key = insert_key(&txn, &tenant_id, &service_user.id, key).await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok((service_user, key))
    }

    /// Writes the batched `lastUsedAt` times; a key deleted meanwhile is skipped.
    pub async fn record_key_use(&self, uses: &[(String, DateTime<Utc>)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let txn = self.writer().begin().await?;
        for (key_id, at) in uses {
            let stmt = Query::update()
                .table("api_keys")
                .value("last_used_at", *at)
                .and_where(Expr::col("id").eq(key_id.as_str()))
                .to_owned();
            txn.execute(&stmt).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

pub(crate) async fn insert_key(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    service_user_id: &str,
    new: NewKey<'_>,
) -> StoreResult<ApiKeyRow> {
    let now = super::now();
    let row = api_key::ActiveModel {
        id: Set(new.id.to_string()),
        tenant_id: Set(tenant_id.to_string()),
        service_user_id: Set(service_user_id.to_string()),
        name: Set(new.name.to_string()),
        description: Set(new.description.map(str::to_string)),
        key_type: Set(new.key_type.to_string()),
        secret_hash: Set(new.secret_hash.to_string()),
        previous_secret_hash: Set(None),
        previous_secret_expires_at: Set(None),
        scopes: Set(json_list(new.scopes)),
        allowed_ips: Set(json_list(new.allowed_ips)),
        expires_at: Set(new.expires_at),
        disabled: Set(false),
        last_used_at: Set(None),
        created_at: Set(now),
        created_by: Set(new.actor.to_string()),
        updated_at: Set(now),
        updated_by: Set(new.actor.to_string()),
    };
    row.insert(db)
        .await
        .map_err(|e| StoreError::from_db(e, "key ID collision"))
}

/// Bumped in the transaction of every change that can invalidate cached credentials.
pub(crate) async fn bump_auth_epoch(db: &impl ConnectionTrait) -> StoreResult<()> {
    let stmt = Query::update()
        .table("auth_epoch")
        .value("epoch", Expr::col("epoch").add(1))
        .and_where(Expr::col("id").eq(1))
        .to_owned();
    db.execute(&stmt).await?;
    Ok(())
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Parses a JSON string array column; corrupt content is an error, not an empty list.
pub fn parse_json_list(raw: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}
