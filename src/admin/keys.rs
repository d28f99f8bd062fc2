//! API keys: create (shown once), list, change, disable, enable, renew,
//! rotate, delete, and batches of those.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::views::{KeyJson, KeyWithSecretJson};
use super::{Admin, AdminError, AdminResult, ListPage, check_description, check_name, next_cursor};
use crate::auth::bootstrap::key_file_name;
use crate::auth::key::{self, KeyId};
use crate::auth::scopes::{Role, Scope, ScopeSet, parse_scope_list, scope_names};
use crate::auth::verifier::parse_cidr;
use crate::store::admin::{KeyChange, KeyQuery, KeySort, KeyState, KeyTransition};
use crate::store::audit::AuditContext;
use crate::store::keys::{NewKey, parse_json_list};
use crate::store::tenants::ServiceUserRow;
use crate::store::{StoreError, StoreResult};

/// The longest rotation grace period (contract §4).
pub const MAX_GRACE_SECONDS: i64 = 86_400;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKey {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateKey {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::double_option")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenewKey {
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateKey {
    #[serde(default)]
    pub grace_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub action: String,
    pub ids: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BatchResult {
    pub id: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Which keys to list, as received.
#[derive(Debug, Default)]
pub struct KeyListRequest<'a> {
    pub service_user: Option<&'a str>,
    pub state: Option<&'a str>,
    pub key_type: Option<&'a str>,
    pub q: Option<&'a str>,
    pub expires_within_days: Option<&'a str>,
    pub sort: Option<&'a str>,
}

impl Admin {
    /// The scopes a service user may grant: its role's, plus granted extras.
    fn allowed_scopes(&self, owner: &ServiceUserRow) -> ScopeSet {
        let mut allowed = Role::parse(&owner.role).map(Role::scopes).unwrap_or_default();
        allowed.extend(parse_scope_list(
            &parse_json_list(&owner.granted_scopes).unwrap_or_default(),
        ));
        allowed
    }

    fn check_scopes(&self, owner: &ServiceUserRow, requested: &[String]) -> AdminResult<ScopeSet> {
        let mut scopes = ScopeSet::new();
        for name in requested {
            let scope =
                Scope::parse(name.trim()).ok_or_else(|| AdminError::Invalid(format!("unknown scope \"{name}\"")))?;
            scopes.insert(scope);
        }
        let allowed = self.allowed_scopes(owner);
        let outside: Vec<&str> = scopes.difference(&allowed).map(|s| s.as_str()).collect();
        if !outside.is_empty() {
            return Err(AdminError::Refused(format!(
                "scopes {} are outside what role {} of service user {} allows",
                outside.join(", "),
                owner.role,
                owner.name
            )));
        }
        Ok(scopes)
    }

    fn expiry(&self, expires_at: Option<&str>, expires_in_days: Option<i64>) -> AdminResult<DateTime<Utc>> {
        let now = Utc::now();
        let max = now + Duration::days(i64::from(self.lifetimes.max_days));
        let at = match (expires_at, expires_in_days) {
            (Some(_), Some(_)) => {
                return Err(AdminError::Invalid("give expiresAt or expiresInDays, not both".into()));
            }
            (Some(text), None) => DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| AdminError::Invalid(format!("expiresAt \"{text}\" is not an RFC 3339 timestamp")))?,
            (None, Some(days)) if days < 1 => {
                return Err(AdminError::Invalid("expiresInDays must be at least 1".into()));
            }
            (None, Some(days)) if days > i64::from(self.lifetimes.max_days) => {
                return Err(AdminError::Refused(format!(
                    "expiresInDays exceeds the maximum key lifetime of {} days",
                    self.lifetimes.max_days
                )));
            }
            (None, Some(days)) => now + Duration::days(days),
            (None, None) => now + Duration::days(i64::from(self.lifetimes.default_days)),
        };
        // Whole seconds: the same value on both backends and in every answer.
        let at = at.trunc_subsecs(0);
        if at <= now {
            return Err(AdminError::Invalid("expiresAt must lie in the future".into()));
        }
        if at > max + Duration::minutes(1) {
            return Err(AdminError::Refused(format!(
                "expiresAt exceeds the maximum key lifetime of {} days",
                self.lifetimes.max_days
            )));
        }
        Ok(at)
    }

    pub async fn create_key(
        &self,
        ctx: &AuditContext,
        service_user_id: &str,
        input: CreateKey,
    ) -> AdminResult<KeyWithSecretJson> {
        let owner = self
            .store
            .service_user(&ctx.tenant_id, service_user_id)
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?
            .ok_or_else(|| AdminError::NotFound(format!("service user {service_user_id} not found")))?;
        let name = check_name("key", &input.name)?;
        let description = check_description(input.description)?;
        let scopes = match &input.scopes {
            Some(requested) => self.check_scopes(&owner, requested)?,
            // A key's scopes default to its service user's role.
            None => Role::parse(&owner.role).map(Role::scopes).unwrap_or_default(),
        };
        let allowed_ips = check_ips(input.allowed_ips.unwrap_or_default())?;
        let expires_at = self.expiry(input.expires_at.as_deref(), input.expires_in_days)?;
        let plain = key::generate();
        let secret_hash = self
            .hasher
            .hash(plain.secret().to_string())
            .await
            .map_err(|_| AdminError::Internal)?;
        let key_id = plain.id();
        let row = self
            .store
            .create_key(
                ctx,
                &owner.id,
                NewKey {
                    id: key_id.as_str(),
                    name: &name,
                    description: description.as_deref(),
                    key_type: "service",
                    secret_hash: &secret_hash,
                    scopes: &scope_names(&scopes),
                    allowed_ips: &allowed_ips,
                    expires_at: Some(expires_at),
                    actor: &ctx.actor_name,
                },
            )
            .await
            .map_err(|e| AdminError::from_store(e, "service user"))?;
        let view = self.view(&ctx.tenant_id, &row.id).await?;
        Ok(KeyWithSecretJson {
            file_name: key_file_name(&name, row.created_at),
            key: view,
            secret: plain.expose().to_string(),
        })
    }

    async fn view(&self, tenant_id: &str, id: &str) -> AdminResult<KeyJson> {
        let view = self
            .store
            .key_view(tenant_id, id)
            .await
            .map_err(|e| AdminError::from_store(e, "key"))?
            .ok_or_else(|| AdminError::NotFound(format!("key {id} not found")))?;
        Ok(view.into())
    }

    pub async fn get_key(&self, tenant_id: &str, id: &str) -> AdminResult<KeyJson> {
        self.view(tenant_id, id).await
    }

    pub async fn list_keys(
        &self,
        tenant_id: &str,
        request: &KeyListRequest<'_>,
        offset: u64,
        limit: u64,
    ) -> AdminResult<ListPage<KeyJson>> {
        let state = match request.state.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(KeyState::parse(s).ok_or_else(|| {
                AdminError::Invalid(format!("state must be enabled, disabled or expired, not \"{s}\""))
            })?),
            None => None,
        };
        let key_type = match request.key_type.map(str::trim).filter(|s| !s.is_empty()) {
            Some(t @ ("service" | "interactive" | "legacy")) => Some(t.to_string()),
            Some(t) => {
                return Err(AdminError::Invalid(format!(
                    "type must be service, interactive or legacy, not \"{t}\""
                )));
            }
            None => None,
        };
        let expires_within_days = match request.expires_within_days.map(str::trim).filter(|s| !s.is_empty()) {
            Some(d) => Some(d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                AdminError::Invalid(format!("expiresWithinDays must be a whole number, not \"{d}\""))
            })?),
            None => None,
        };
        let query = KeyQuery {
            service_user_id: request
                .service_user
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            state,
            key_type,
            q: request.q.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string),
            expires_within_days,
            sort: request.sort.map(parse_sort).transpose()?,
            offset,
            limit,
        };
        let (total, views) = self
            .store
            .list_keys(tenant_id, &query)
            .await
            .map_err(|e| AdminError::from_store(e, "key"))?;
        let items: Vec<KeyJson> = views.into_iter().map(KeyJson::from).collect();
        let next_cursor = next_cursor(offset, items.len(), total);
        Ok(ListPage {
            items,
            next_cursor,
            total,
        })
    }

    pub async fn update_key(&self, ctx: &AuditContext, id: &str, input: UpdateKey) -> AdminResult<KeyJson> {
        let scopes = match &input.scopes {
            Some(requested) => {
                let current = self
                    .store
                    .key_view(&ctx.tenant_id, id)
                    .await
                    .map_err(|e| AdminError::from_store(e, "key"))?;
                let current = current.ok_or_else(|| AdminError::NotFound(format!("key {id} not found")))?;
                let owner = self
                    .store
                    .service_user(&ctx.tenant_id, &current.key.service_user_id)
                    .await
                    .map_err(|e| AdminError::from_store(e, "service user"))?
                    .ok_or_else(|| AdminError::NotFound(format!("key {id} not found")))?;
                Some(scope_names(&self.check_scopes(&owner, requested)?))
            }
            None => None,
        };
        let change = KeyChange {
            name: input.name.as_deref().map(|n| check_name("key", n)).transpose()?,
            description: match input.description {
                Some(d) => Some(check_description(d)?),
                None => None,
            },
            scopes,
            allowed_ips: input.allowed_ips.map(check_ips).transpose()?,
        };
        self.store
            .update_key(ctx, id, change)
            .await
            .map_err(|e| AdminError::from_store(e, "key"))?;
        self.verifier.invalidate(id);
        self.view(&ctx.tenant_id, id).await
    }

    pub async fn disable_key(&self, ctx: &AuditContext, id: &str) -> AdminResult<KeyJson> {
        self.transition(ctx, id, KeyTransition::Disable, |_| Ok(())).await
    }

    pub async fn enable_key(&self, ctx: &AuditContext, id: &str) -> AdminResult<KeyJson> {
        self.transition(ctx, id, KeyTransition::Enable, |key| {
            if KeyState::of(key, Utc::now()) == KeyState::Expired {
                return Err(StoreError::Conflict(
                    "an expired key cannot be enabled; create a new key".into(),
                ));
            }
            Ok(())
        })
        .await
    }

    pub async fn renew_key(&self, ctx: &AuditContext, id: &str, input: RenewKey) -> AdminResult<KeyJson> {
        if input.expires_at.is_none() && input.expires_in_days.is_none() {
            return Err(AdminError::Invalid("give expiresAt or expiresInDays".into()));
        }
        let expires_at = self.expiry(input.expires_at.as_deref(), input.expires_in_days)?;
        self.transition(ctx, id, KeyTransition::Renew { expires_at }, |key| {
            if KeyState::of(key, Utc::now()) == KeyState::Expired {
                return Err(StoreError::Conflict(
                    "an expired key cannot be renewed; create a new key".into(),
                ));
            }
            Ok(())
        })
        .await
    }

    pub async fn rotate_key(&self, ctx: &AuditContext, id: &str, input: RotateKey) -> AdminResult<KeyWithSecretJson> {
        let grace = input.grace_seconds.unwrap_or(0);
        if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
            return Err(AdminError::Invalid(format!(
                "graceSeconds must be between 0 and {MAX_GRACE_SECONDS}"
            )));
        }
        let key_id = KeyId::parse(id).ok_or_else(|| AdminError::NotFound(format!("key {id} not found")))?;
        let plain = key::with_new_secret(&key_id);
        let secret_hash = self
            .hasher
            .hash(plain.secret().to_string())
            .await
            .map_err(|_| AdminError::Internal)?;
        let grace_until = (grace > 0).then(|| (Utc::now() + Duration::seconds(grace)).trunc_subsecs(0));
        let rotation = KeyTransition::Rotate {
            secret_hash,
            grace_until,
        };
        let key = self
            .transition(ctx, id, rotation, |key| {
                if KeyState::of(key, Utc::now()) == KeyState::Expired {
                    return Err(StoreError::Conflict(
                        "an expired key cannot be rotated; create a new key".into(),
                    ));
                }
                Ok(())
            })
            .await?;
        Ok(KeyWithSecretJson {
            file_name: key_file_name(&key.name, Utc::now()),
            key,
            secret: plain.expose().to_string(),
        })
    }

    pub async fn delete_key(&self, ctx: &AuditContext, id: &str) -> AdminResult<()> {
        self.store
            .delete_key(ctx, id)
            .await
            .map_err(|e| AdminError::from_store(e, "key"))?;
        self.verifier.invalidate(id);
        Ok(())
    }

    pub async fn batch_keys(&self, ctx: &AuditContext, input: BatchRequest) -> AdminResult<Vec<BatchResult>> {
        if input.ids.len() > 500 {
            return Err(AdminError::Invalid("a batch holds at most 500 ids".into()));
        }
        if !matches!(input.action.as_str(), "enable" | "disable" | "delete") {
            return Err(AdminError::Invalid(format!(
                "action must be enable, disable or delete, not \"{}\"",
                input.action
            )));
        }
        let mut results = Vec::with_capacity(input.ids.len());
        for id in input.ids {
            let outcome = match input.action.as_str() {
                "enable" => self.enable_key(ctx, &id).await.map(|_| 200),
                "disable" => self.disable_key(ctx, &id).await.map(|_| 200),
                "delete" => self.delete_key(ctx, &id).await.map(|_| 204),
                other => {
                    return Err(AdminError::Invalid(format!(
                        "action must be enable, disable or delete, not \"{other}\""
                    )));
                }
            };
            results.push(match outcome {
                Ok(status) => BatchResult {
                    id,
                    status,
                    detail: None,
                },
                Err(e) => BatchResult {
                    id,
                    status: e.status(),
                    detail: Some(e.to_string()),
                },
            });
        }
        Ok(results)
    }

    async fn transition(
        &self,
        ctx: &AuditContext,
        id: &str,
        transition: KeyTransition,
        check: impl FnOnce(&crate::store::keys::ApiKeyRow) -> StoreResult<()>,
    ) -> AdminResult<KeyJson> {
        self.store
            .transition_key(ctx, id, transition, check)
            .await
            .map_err(|e| AdminError::from_store(e, "key"))?;
        self.verifier.invalidate(id);
        self.view(&ctx.tenant_id, id).await
    }
}

fn check_ips(ips: Vec<String>) -> AdminResult<Vec<String>> {
    ips.iter()
        .map(|ip| {
            parse_cidr(ip.trim())
                .map(|net| net.to_string())
                .ok_or_else(|| AdminError::Invalid(format!("\"{ip}\" is not an IP address or CIDR range")))
        })
        .collect()
}

fn parse_sort(sort: &str) -> AdminResult<(KeySort, bool)> {
    let (descending, field) = match sort.trim().strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, sort.trim()),
    };
    let column = match field {
        "id" => KeySort::Id,
        "name" => KeySort::Name,
        "createdAt" => KeySort::CreatedAt,
        "updatedAt" => KeySort::UpdatedAt,
        "expiresAt" => KeySort::ExpiresAt,
        "lastUsedAt" => KeySort::LastUsedAt,
        "serviceUserId" => KeySort::ServiceUserId,
        other => {
            return Err(AdminError::Invalid(format!(
                "cannot sort by \"{other}\"; use id, name, createdAt, updatedAt, expiresAt, lastUsedAt or serviceUserId"
            )));
        }
    };
    Ok((column, descending))
}
