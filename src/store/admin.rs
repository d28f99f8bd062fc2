//! Service users and API keys as the admin API and the CLI manage them.
//! Every change runs in one transaction with its audit event and an auth
//! epoch bump, so every instance drops cached credentials it affects.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use super::audit::{AuditContext, Event, record};
use super::entities::{api_key, service_user, tenant};
use super::keys::{ApiKeyRow, NewKey, bump_auth_epoch, insert_key};
use super::tenants::{NewServiceUser, ServiceUserRow, TenantRow, insert_service_user};
use super::{Store, StoreError, StoreResult};

/// The most keys one service user may hold (contract §4).
pub const MAX_KEYS_PER_SERVICE_USER: u64 = 10;

/// A change to a service user; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ServiceUserChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub role: Option<String>,
}

/// A change to a key's descriptive fields and restrictions.
#[derive(Debug, Default, Clone)]
pub struct KeyChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
    pub allowed_ips: Option<Vec<String>>,
}

/// A key's lifecycle transitions.
#[derive(Debug, Clone)]
pub enum KeyTransition {
    Disable,
    Enable,
    Renew {
        expires_at: DateTime<Utc>,
    },
    /// New secret hash; the old one keeps working until `grace_until`, if given.
    Rotate {
        secret_hash: String,
        grace_until: Option<DateTime<Utc>>,
    },
}

/// Key state as derived from the row (expiry wins over disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Enabled,
    Disabled,
    Expired,
}

impl KeyState {
    pub fn of(key: &ApiKeyRow, now: DateTime<Utc>) -> KeyState {
        if key.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else if key.disabled {
            KeyState::Disabled
        } else {
            KeyState::Enabled
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<KeyState> {
        [KeyState::Enabled, KeyState::Disabled, KeyState::Expired]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Filters and order of a key listing.
#[derive(Debug, Default, Clone)]
pub struct KeyQuery {
    pub service_user_id: Option<String>,
    pub state: Option<KeyState>,
    pub key_type: Option<String>,
    /// Matches name or ID, case-insensitively.
    pub q: Option<String>,
    pub expires_within_days: Option<i64>,
    /// A column of `api_keys` and the direction.
    pub sort: Option<(KeySort, bool)>,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySort {
    Id,
    Name,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
    LastUsedAt,
    ServiceUserId,
}

/// A key with the names the API shows beside it.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub key: ApiKeyRow,
    pub service_user_name: String,
    pub tenant_name: String,
}

impl Store {
    pub async fn list_tenants(&self) -> StoreResult<Vec<TenantRow>> {
        Ok(tenant::Entity::find()
            .order_by_asc(tenant::Column::Name)
            .all(self.reader())
            .await?)
    }

    /// Creates a tenant with its first service user `admin` and that user's key.
    pub async fn create_tenant(
        &self,
        ctx: &AuditContext,
        name: &str,
        role: &str,
        key: NewKey<'_>,
    ) -> StoreResult<super::keys::CreatedTenant> {
        let txn = self.writer().begin().await?;
        let tenant = super::tenants::insert_tenant(&txn, name).await?;
        let inner = AuditContext::system_in(&tenant.id);
        let service_user = insert_service_user(
            &txn,
            NewServiceUser {
                tenant_id: &tenant.id,
                name: "admin",
                description: Some("first administrator of the tenant"),
                role,
                granted_scopes: &[],
                actor: &ctx.actor_name,
            },
        )
        .await?;
        let key = insert_key(&txn, &tenant.id, &service_user.id, key).await?;
        record(
            &txn,
            ctx,
            Event::success("tenant.created", "tenant", &tenant.id).with_detail(json!({ "name": name })),
        )
        .await?;
        record(
            &txn,
            &inner,
            Event::success("service_user.created", "service_user", &service_user.id),
        )
        .await?;
        record(&txn, &inner, Event::success("key.created", "key", &key.id)).await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(super::keys::CreatedTenant {
            tenant,
            service_user,
            key,
        })
    }

    pub async fn create_service_user(
        &self,
        ctx: &AuditContext,
        new: NewServiceUser<'_>,
    ) -> StoreResult<ServiceUserRow> {
        let txn = self.writer().begin().await?;
        let row = insert_service_user(&txn, new).await?;
        record(
            &txn,
            ctx,
            Event::success("service_user.created", "service_user", &row.id)
                .with_detail(json!({ "name": row.name, "role": row.role })),
        )
        .await?;
        txn.commit().await?;
        Ok(row)
    }

    pub async fn service_user(&self, tenant_id: &str, id: &str) -> StoreResult<Option<ServiceUserRow>> {
        Ok(service_user::Entity::find_by_id(id.to_string())
            .filter(service_user::Column::TenantId.eq(tenant_id))
            .one(self.reader())
            .await?)
    }

    pub async fn service_user_by_name(&self, tenant_id: &str, name: &str) -> StoreResult<Option<ServiceUserRow>> {
        Ok(service_user::Entity::find()
            .filter(service_user::Column::TenantId.eq(tenant_id))
            .filter(service_user::Column::NameFolded.eq(name.to_lowercase()))
            .one(self.reader())
            .await?)
    }

    /// Service users of a tenant whose name contains `q`, by name; and the total.
    pub async fn list_service_users(
        &self,
        tenant_id: &str,
        q: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(u64, Vec<ServiceUserRow>)> {
        let mut select = service_user::Entity::find().filter(service_user::Column::TenantId.eq(tenant_id));
        if let Some(q) = q.filter(|q| !q.is_empty()) {
            select = select.filter(service_user::Column::NameFolded.contains(q.to_lowercase()));
        }
        let total = select.clone().count(self.reader()).await?;
        let rows = select
            .order_by_asc(service_user::Column::NameFolded)
            .order_by_asc(service_user::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(self.reader())
            .await?;
        Ok((total, rows))
    }

    pub async fn key_count(&self, service_user_id: &str) -> StoreResult<u64> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::ServiceUserId.eq(service_user_id))
            .count(self.reader())
            .await?)
    }

    pub async fn update_service_user(
        &self,
        ctx: &AuditContext,
        id: &str,
        change: ServiceUserChange,
    ) -> StoreResult<ServiceUserRow> {
        let txn = self.writer().begin().await?;
        let current = service_user::Entity::find_by_id(id.to_string())
            .filter(service_user::Column::TenantId.eq(ctx.tenant_id.as_str()))
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut detail = serde_json::Map::new();
        let mut row = current.into_active_model();
        if let Some(name) = change.name {
            detail.insert("name".into(), json!(name));
            row.name_folded = Set(name.to_lowercase());
            row.name = Set(name);
        }
        if let Some(description) = change.description {
            detail.insert("description".into(), json!(description));
            row.description = Set(description);
        }
        if let Some(role) = change.role {
            detail.insert("role".into(), json!(role));
            row.role = Set(role);
        }
        row.updated_at = Set(super::now());
        row.updated_by = Set(ctx.actor_name.clone());
        let row = row
            .update(&txn)
            .await
            .map_err(|e| StoreError::from_db(e, "a service user with this name exists"))?;
        record(
            &txn,
            ctx,
            Event::success("service_user.updated", "service_user", id).with_detail(detail.into()),
        )
        .await?;
        // A role change narrows the keys at once.
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(row)
    }

    /// Deletes a service user; its keys go with it and stop working at once.
    pub async fn delete_service_user(&self, ctx: &AuditContext, id: &str) -> StoreResult<Vec<String>> {
        let txn = self.writer().begin().await?;
        let keys: Vec<String> = api_key::Entity::find()
            .filter(api_key::Column::ServiceUserId.eq(id))
            .filter(api_key::Column::TenantId.eq(ctx.tenant_id.as_str()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|k| k.id)
            .collect();
        let deleted = service_user::Entity::delete_many()
            .filter(service_user::Column::Id.eq(id))
            .filter(service_user::Column::TenantId.eq(ctx.tenant_id.as_str()))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        // Foreign keys cascade, but say so explicitly: SQLite may run without them.
        api_key::Entity::delete_many()
            .filter(api_key::Column::ServiceUserId.eq(id))
            .exec(&txn)
            .await?;
        record(&txn, ctx, Event::success("service_user.deleted", "service_user", id)).await?;
        for key in &keys {
            record(
                &txn,
                ctx,
                Event::success("key.deleted", "key", key).with_detail(json!({ "reason": "service user deleted" })),
            )
            .await?;
        }
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(keys)
    }

    /// Adds a key to a service user, refusing an eleventh.
    pub async fn create_key(
        &self,
        ctx: &AuditContext,
        service_user_id: &str,
        new: NewKey<'_>,
    ) -> StoreResult<ApiKeyRow> {
        let txn = self.writer().begin().await?;
        // Serialise key creation per service user so two concurrent creates
        // cannot both pass the limit: a row lock on PostgreSQL; on SQLite all
        // writes already go through one connection.
        let mut owner = service_user::Entity::find_by_id(service_user_id.to_string())
            .filter(service_user::Column::TenantId.eq(ctx.tenant_id.as_str()));
        if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
            owner = owner.lock_exclusive();
        }
        let owner = owner.one(&txn).await?.ok_or(StoreError::NotFound)?;
        let count = api_key::Entity::find()
            .filter(api_key::Column::ServiceUserId.eq(owner.id.as_str()))
            .count(&txn)
            .await?;
        if count >= MAX_KEYS_PER_SERVICE_USER {
            return Err(StoreError::Conflict(format!(
                "service user {} already holds the maximum of {MAX_KEYS_PER_SERVICE_USER} keys",
                owner.name
            )));
        }
        let row = insert_key(&txn, &ctx.tenant_id, &owner.id, new).await?;
        record(
            &txn,
            ctx,
            Event::success("key.created", "key", &row.id)
                .with_detail(json!({ "name": row.name, "serviceUserId": owner.id, "scopes": serde_json::from_str::<serde_json::Value>(&row.scopes).unwrap_or_default() })),
        )
        .await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(row)
    }

    pub async fn key_view(&self, tenant_id: &str, id: &str) -> StoreResult<Option<KeyView>> {
        let Some(key) = api_key::Entity::find_by_id(id.to_string())
            .filter(api_key::Column::TenantId.eq(tenant_id))
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(self.view_of(key).await?))
    }

    async fn view_of(&self, key: ApiKeyRow) -> StoreResult<KeyView> {
        let service_user_name = service_user::Entity::find_by_id(key.service_user_id.clone())
            .one(self.reader())
            .await?
            .map(|s| s.name)
            .unwrap_or_default();
        let tenant_name = tenant::Entity::find_by_id(key.tenant_id.clone())
            .one(self.reader())
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        Ok(KeyView {
            key,
            service_user_name,
            tenant_name,
        })
    }

    pub async fn list_keys(&self, tenant_id: &str, q: &KeyQuery) -> StoreResult<(u64, Vec<KeyView>)> {
        use api_key::Column as C;
        let now = Utc::now();
        let mut select = api_key::Entity::find().filter(C::TenantId.eq(tenant_id));
        if let Some(su) = &q.service_user_id {
            select = select.filter(C::ServiceUserId.eq(su.as_str()));
        }
        if let Some(t) = &q.key_type {
            select = select.filter(C::KeyType.eq(t.as_str()));
        }
        let live = Condition::any().add(C::ExpiresAt.is_null()).add(C::ExpiresAt.gt(now));
        select = match q.state {
            Some(KeyState::Expired) => select.filter(C::ExpiresAt.lte(now)),
            Some(KeyState::Disabled) => select.filter(C::Disabled.eq(true)).filter(live),
            Some(KeyState::Enabled) => select.filter(C::Disabled.eq(false)).filter(live),
            None => select,
        };
        if let Some(days) = q.expires_within_days {
            select = select
                .filter(C::ExpiresAt.gt(now))
                .filter(C::ExpiresAt.lte(now + chrono::Duration::days(days)));
        }
        if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
            let needle = text.to_lowercase();
            select = select.filter(
                Condition::any()
                    .add(Expr::expr(Func::lower(Expr::col(C::Name))).like(contains_pattern(&needle)))
                    .add(Expr::expr(Func::lower(Expr::col(C::Id))).like(contains_pattern(&needle))),
            );
        }
        let total = select.clone().count(self.reader()).await?;
        let (column, descending) = match q.sort {
            Some((sort, descending)) => (
                match sort {
                    KeySort::Id => C::Id,
                    KeySort::Name => C::Name,
                    KeySort::CreatedAt => C::CreatedAt,
                    KeySort::UpdatedAt => C::UpdatedAt,
                    KeySort::ExpiresAt => C::ExpiresAt,
                    KeySort::LastUsedAt => C::LastUsedAt,
                    KeySort::ServiceUserId => C::ServiceUserId,
                },
                descending,
            ),
            None => (C::CreatedAt, false),
        };
        select = if descending {
            select.order_by_desc(column)
        } else {
            select.order_by_asc(column)
        };
        let rows = select
            .order_by_asc(C::Id)
            .offset(q.offset)
            .limit(q.limit)
            .all(self.reader())
            .await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.view_of(row).await?);
        }
        Ok((total, views))
    }

    pub async fn update_key(&self, ctx: &AuditContext, id: &str, change: KeyChange) -> StoreResult<ApiKeyRow> {
        let txn = self.writer().begin().await?;
        let current = find_key(&txn, &ctx.tenant_id, id).await?;
        let mut detail = serde_json::Map::new();
        let mut row = current.into_active_model();
        if let Some(name) = change.name {
            detail.insert("name".into(), json!(name));
            row.name = Set(name);
        }
        if let Some(description) = change.description {
            detail.insert("description".into(), json!(description));
            row.description = Set(description);
        }
        if let Some(scopes) = change.scopes {
            detail.insert("scopes".into(), json!(scopes));
            row.scopes = Set(json!(scopes).to_string());
        }
        if let Some(ips) = change.allowed_ips {
            detail.insert("allowedIps".into(), json!(ips));
            row.allowed_ips = Set(json!(ips).to_string());
        }
        row.updated_at = Set(super::now());
        row.updated_by = Set(ctx.actor_name.clone());
        let row = row.update(&txn).await?;
        record(
            &txn,
            ctx,
            Event::success("key.updated", "key", id).with_detail(detail.into()),
        )
        .await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(row)
    }

    /// Applies a lifecycle transition; `check` sees the current row first and
    /// may refuse (e.g. enabling an expired key).
    pub async fn transition_key(
        &self,
        ctx: &AuditContext,
        id: &str,
        transition: KeyTransition,
        check: impl FnOnce(&ApiKeyRow) -> StoreResult<()>,
    ) -> StoreResult<ApiKeyRow> {
        let txn = self.writer().begin().await?;
        let current = find_key(&txn, &ctx.tenant_id, id).await?;
        check(&current)?;
        let mut row = current.into_active_model();
        let (action, detail) = match transition {
            KeyTransition::Disable => {
                row.disabled = Set(true);
                ("key.disabled", json!({}))
            }
            KeyTransition::Enable => {
                row.disabled = Set(false);
                ("key.enabled", json!({}))
            }
            KeyTransition::Renew { expires_at } => {
                row.expires_at = Set(Some(expires_at));
                ("key.renewed", json!({ "expiresAt": expires_at }))
            }
            KeyTransition::Rotate {
                secret_hash,
                grace_until,
            } => {
                let old = row.secret_hash.clone().take().unwrap_or_default();
                row.previous_secret_hash = Set(grace_until.map(|_| old));
                row.previous_secret_expires_at = Set(grace_until);
                row.secret_hash = Set(secret_hash);
                ("key.rotated", json!({ "graceUntil": grace_until }))
            }
        };
        row.updated_at = Set(super::now());
        row.updated_by = Set(ctx.actor_name.clone());
        let row = row.update(&txn).await?;
        record(&txn, ctx, Event::success(action, "key", id).with_detail(detail)).await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(row)
    }

    pub async fn delete_key(&self, ctx: &AuditContext, id: &str) -> StoreResult<()> {
        let txn = self.writer().begin().await?;
        let result = api_key::Entity::delete_many()
            .filter(api_key::Column::Id.eq(id))
            .filter(api_key::Column::TenantId.eq(ctx.tenant_id.as_str()))
            .exec(&txn)
            .await?;
        if result.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        record(&txn, ctx, Event::success("key.deleted", "key", id)).await?;
        bump_auth_epoch(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Keys by state for `/metrics`: (state, count), and keys expiring within 7 and 30 days.
    pub async fn key_statistics(&self) -> StoreResult<(Vec<(KeyState, u64)>, u64, u64)> {
        let keys = api_key::Entity::find().all(self.reader()).await?;
        let now = Utc::now();
        let mut counts = [
            (KeyState::Enabled, 0u64),
            (KeyState::Disabled, 0),
            (KeyState::Expired, 0),
        ];
        let (mut week, mut month) = (0, 0);
        for key in &keys {
            let state = KeyState::of(key, now);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 += 1;
            }
            if state != KeyState::Expired
                && let Some(at) = key.expires_at
            {
                if at <= now + chrono::Duration::days(7) {
                    week += 1;
                }
                if at <= now + chrono::Duration::days(30) {
                    month += 1;
                }
            }
        }
        Ok((counts.to_vec(), week, month))
    }
}

async fn find_key(db: &impl ConnectionTrait, tenant_id: &str, id: &str) -> StoreResult<ApiKeyRow> {
    api_key::Entity::find_by_id(id.to_string())
        .filter(api_key::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)
}

/// `%needle%` with LIKE's wildcards in the needle escaped.
fn contains_pattern(needle: &str) -> LikeExpr {
    let escaped = needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}
