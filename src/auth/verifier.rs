//! Request authentication: from an `Authorization` header to a [`Principal`].
//!
//! The steady state costs no argon2: after a secret has been verified once
//! against its stored hash, an HMAC of it (under a per-process random key) is
//! cached with that hash under the key ID. A rotated secret changes the
//! stored hash, so old cache entries can never match it; a deleted or
//! disabled key is caught because key records are cached separately and
//! dropped whenever the database's auth epoch moves (polled every 250 ms, so
//! changes made by another instance apply within 1 s).
//!
//! argon2 work is bounded: one verification at a time per key ID, at most one
//! per core overall, and a secret that just failed is remembered so that
//! repeating it costs nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use moka::sync::Cache;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::hashing::Hasher;
use super::key::{self, KeyId, PlainKey};
use super::scopes::{Role, Scope, ScopeSet, parse_scope_list};
use crate::store::audit::{AuditContext, Event};
use crate::store::keys::{KeyAuthRecord, parse_json_list};
use crate::store::{Store, StoreError};

const EPOCH_POLL: Duration = Duration::from_millis(250);

/// Who is calling, established from a verified key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: String,
    pub tenant_name: String,
    pub key_id: KeyId,
    pub service_user_id: String,
    pub service_user_name: String,
    /// Key scopes ∩ (role scopes ∪ scopes granted to the service user).
    pub scopes: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    /// Malformed, unknown, or wrong secret: deliberately indistinguishable.
    #[error("invalid API key")]
    Invalid,
    #[error("API key is disabled")]
    Disabled,
    #[error("API key has expired")]
    Expired,
    #[error("API key belongs to another tenant")]
    WrongTenant,
    #[error("API key is not allowed from this address")]
    AddressNotAllowed,
    #[error("API key lacks the scope {0}")]
    MissingScope(Scope),
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Unavailable(e.to_string())
    }
}

/// A key record as cached: parsed once, shared by every request.
#[derive(Debug)]
struct CachedKey {
    tenant_id: String,
    tenant_name: String,
    service_user_id: String,
    service_user_name: String,
    effective_scopes: ScopeSet,
    allowed_ips: Vec<IpNet>,
    expires_at: Option<DateTime<Utc>>,
    disabled: bool,
    secret_hash: String,
    previous_secret: Option<(String, DateTime<Utc>)>,
}

impl CachedKey {
    fn from_record(r: KeyAuthRecord) -> Result<Self, StoreError> {
        let key_scopes = parse_scope_list(&parse_json_list(&r.key.scopes)?);
        let mut allowed_by_user = Role::parse(&r.service_user.role).map(Role::scopes).unwrap_or_default();
        allowed_by_user.extend(parse_scope_list(&parse_json_list(&r.service_user.granted_scopes)?));
        let allowed_ips = parse_json_list(&r.key.allowed_ips)?
            .iter()
            .map(|s| parse_cidr(s).ok_or_else(|| StoreError::Corrupt(format!("allowed IP {s}"))))
            .collect::<Result<_, _>>()?;
        Ok(CachedKey {
            tenant_id: r.tenant.id,
            tenant_name: r.tenant.name,
            service_user_id: r.service_user.id,
            service_user_name: r.service_user.name,
            effective_scopes: key_scopes.intersection(&allowed_by_user).copied().collect(),
            allowed_ips,
            expires_at: r.key.expires_at,
            disabled: r.key.disabled,
            secret_hash: r.key.secret_hash,
            previous_secret: r.key.previous_secret_hash.zip(r.key.previous_secret_expires_at),
        })
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    IpNet::from_str(s)
        .ok()
        .or_else(|| IpAddr::from_str(s).ok().map(IpNet::from))
}

type Digest = [u8; 32];

#[derive(Debug)]
struct VerifiedSecret {
    stored_hash: String,
    digest: Digest,
}

pub struct KeyVerifier {
    store: Store,
    hasher: Hasher,
    records: Cache<String, Arc<CachedKey>>,
    /// Key ID → the stored hashes its secrets verified against (the current
    /// one and, during a rotation's grace period, the previous one), each
    /// with the HMAC of that secret. Keyed by the ID alone so that a lookup
    /// allocates nothing.
    verified: Cache<String, Arc<[VerifiedSecret]>>,
    /// (key ID, HMAC of a secret) that recently failed verification.
    rejected: Cache<(String, Digest), ()>,
    /// One argon2 verification at a time per key ID.
    per_key: Cache<String, Arc<Semaphore>>,
    pepper: [u8; 32],
    epoch: AtomicI64,
    last_used: Mutex<HashMap<String, DateTime<Utc>>>,
    refusals: Mutex<RefusalWindow>,
}

/// At most this many distinct refusal groups are kept per flush window.
const MAX_REFUSAL_GROUPS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RefusalKey {
    tenant_id: Option<String>,
    key_id: Option<String>,
    ip: Option<String>,
    reason: &'static str,
}

#[derive(Debug, Default)]
struct RefusalWindow {
    groups: HashMap<RefusalKey, u64>,
    /// Refusals beyond the group limit, counted only.
    overflow: u64,
}

fn refusal_reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing",
        AuthError::Invalid => "invalid",
        AuthError::Disabled => "disabled",
        AuthError::Expired => "expired",
        AuthError::WrongTenant => "wrong-tenant",
        AuthError::AddressNotAllowed => "address-not-allowed",
        AuthError::MissingScope(_) => "missing-scope",
        AuthError::Unavailable(_) => "unavailable",
    }
}

impl KeyVerifier {
    pub fn new(store: Store, hasher: Hasher) -> Arc<Self> {
        let mut pepper = [0u8; 32];
        rand::fill(&mut pepper);
        Arc::new(KeyVerifier {
            store,
            hasher,
            records: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            verified: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            rejected: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            per_key: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            pepper,
            epoch: AtomicI64::new(i64::MIN),
            last_used: Mutex::new(HashMap::new()),
            refusals: Mutex::new(RefusalWindow::default()),
        })
    }

    /// Authenticates a request from its `Authorization` header value and the
    /// client address.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let mut refused_key: Option<(KeyId, Option<String>)> = None;
        let result = self.verify(authorization, client_ip, &mut refused_key).await;
        if let Err(e) = &result
            && !matches!(e, AuthError::Unavailable(_) | AuthError::MissingScope(_))
        {
            let (key_id, tenant_id) = refused_key.map_or((None, None), |(id, tenant)| (Some(id), tenant));
            self.note_refusal(RefusalKey {
                tenant_id,
                key_id: key_id.map(|k| k.as_str().to_string()),
                ip: client_ip.map(|ip| ip.to_string()),
                reason: refusal_reason(e),
            });
        }
        result
    }

    /// `refused` learns the key ID (and its tenant) as soon as they are known,
    /// for the audit summary of a refusal.
    async fn verify(
        &self,
        authorization: Option<&str>,
        client_ip: Option<IpAddr>,
        refused: &mut Option<(KeyId, Option<String>)>,
    ) -> Result<Principal, AuthError> {
        let token = bearer_token(authorization.ok_or(AuthError::Missing)?).ok_or(AuthError::Invalid)?;
        let presented = key::parse(token).map_err(|_| AuthError::Invalid)?;
        let key_id = presented.id();
        *refused = Some((key_id.clone(), None));
        let record = self.record(&key_id).await?.ok_or(AuthError::Invalid)?;
        *refused = Some((key_id.clone(), Some(record.tenant_id.clone())));
        self.check_secret(&key_id, &presented, &record).await?;
        let now = Utc::now();
        if record.disabled {
            return Err(AuthError::Disabled);
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        if !record.allowed_ips.is_empty() {
            let allowed = client_ip.is_some_and(|ip| record.allowed_ips.iter().any(|net| net.contains(&canonical(ip))));
            if !allowed {
                return Err(AuthError::AddressNotAllowed);
            }
        }
        if let Ok(mut uses) = self.last_used.lock() {
            // Most calls find the key there already: no allocation then.
            match uses.get_mut(key_id.as_str()) {
                Some(at) => *at = now,
                None => {
                    uses.insert(key_id.as_str().to_string(), now);
                }
            }
        }
        Ok(Principal {
            tenant_id: record.tenant_id.clone(),
            tenant_name: record.tenant_name.clone(),
            key_id,
            service_user_id: record.service_user_id.clone(),
            service_user_name: record.service_user_name.clone(),
            scopes: record.effective_scopes.clone(),
            expires_at: record.expires_at,
        })
    }

    fn note_refusal(&self, key: RefusalKey) {
        if let Ok(mut refusals) = self.refusals.lock() {
            if refusals.groups.len() < MAX_REFUSAL_GROUPS || refusals.groups.contains_key(&key) {
                *refusals.groups.entry(key).or_insert(0) += 1;
            } else {
                refusals.overflow += 1;
            }
        }
    }

    /// Writes the refusals collected since the last flush as `auth.refused`
    /// events: one per (tenant, key, address, reason) with its count, at most
    /// [`MAX_REFUSAL_GROUPS`] per window plus one summary of the rest.
    pub async fn flush_refusals(&self) {
        let window = match self.refusals.lock() {
            Ok(mut refusals) => std::mem::take(&mut *refusals),
            Err(_) => return,
        };
        if window.groups.is_empty() && window.overflow == 0 {
            return;
        }
        // Refusals of unknown keys belong to no tenant: the operator's default one records them.
        let default_tenant = match self
            .store
            .tenant_by_name(crate::auth::bootstrap::BOOTSTRAP_TENANT)
            .await
        {
            Ok(Some(t)) => Some(t.id),
            _ => None,
        };
        for (key, count) in window.groups {
            let Some(tenant_id) = key.tenant_id.clone().or_else(|| default_tenant.clone()) else {
                continue;
            };
            let ctx = AuditContext {
                tenant_id,
                key_id: None,
                service_user_id: None,
                actor_name: "anonymous".into(),
                ip: key.ip.clone(),
                request_id: None,
            };
            let event = Event {
                action: "auth.refused",
                target_type: "key",
                target_id: key.key_id.as_deref(),
                outcome: "refused",
                detail: Some(serde_json::json!({ "reason": key.reason, "count": count })),
            };
            if let Err(e) = self.store.record_event(&ctx, event).await {
                tracing::warn!(error = %e, "cannot record refused authentications");
            }
        }
        if window.overflow > 0
            && let Some(tenant_id) = default_tenant
        {
            let ctx = AuditContext {
                tenant_id,
                key_id: None,
                service_user_id: None,
                actor_name: "anonymous".into(),
                ip: None,
                request_id: None,
            };
            let event = Event {
                action: "auth.refused",
                target_type: "key",
                target_id: None,
                outcome: "refused",
                detail: Some(serde_json::json!({ "reason": "many", "count": window.overflow })),
            };
            if let Err(e) = self.store.record_event(&ctx, event).await {
                tracing::warn!(error = %e, "cannot record refused authentications");
            }
        }
    }

    /// Drops what is cached about one key (used after a local change).
    pub fn invalidate(&self, key_id: &str) {
        self.records.invalidate(key_id);
    }

    pub fn invalidate_all(&self) {
        self.records.invalidate_all();
    }

    async fn record(&self, key_id: &KeyId) -> Result<Option<Arc<CachedKey>>, AuthError> {
        if let Some(hit) = self.records.get(key_id.as_str()) {
            return Ok(Some(hit));
        }
        let Some(raw) = self.store.key_auth_record(key_id.as_str()).await? else {
            return Ok(None);
        };
        let record = Arc::new(CachedKey::from_record(raw)?);
        self.records.insert(key_id.as_str().to_string(), record.clone());
        Ok(Some(record))
    }

    async fn check_secret(&self, key_id: &KeyId, presented: &PlainKey, record: &CachedKey) -> Result<(), AuthError> {
        let digest = self.digest(presented.secret());
        let now = Utc::now();
        let mut hashes = vec![record.secret_hash.as_str()];
        if let Some((previous, until)) = &record.previous_secret
            && *until > now
        {
            hashes.push(previous.as_str());
        }
        if self.verified_before(key_id, &hashes, &digest) {
            return Ok(());
        }
        let rejected_key = (key_id.as_str().to_string(), digest);
        if self.rejected.contains_key(&rejected_key) {
            return Err(AuthError::Invalid);
        }
        let gate = self
            .per_key
            .get_with(key_id.as_str().to_string(), || Arc::new(Semaphore::new(1)));
        let _turn = gate
            .acquire()
            .await
            .map_err(|_| AuthError::Unavailable("verifier stopped".into()))?;
        // Requests that queued behind a verification of the same secret find
        // its result here instead of running argon2 again.
        if self.verified_before(key_id, &hashes, &digest) {
            return Ok(());
        }
        if self.rejected.contains_key(&rejected_key) {
            return Err(AuthError::Invalid);
        }
        for hash in &hashes {
            let ok = self
                .hasher
                .verify(presented.secret().to_string(), hash.to_string())
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            if ok {
                self.remember_verified(key_id, &hashes, hash, digest);
                return Ok(());
            }
        }
        self.rejected.insert(rejected_key, ());
        Err(AuthError::Invalid)
    }

    /// Whether a secret with this HMAC verified against one of `hashes`.
    fn verified_before(&self, key_id: &KeyId, hashes: &[&str], digest: &Digest) -> bool {
        self.verified.get(key_id.as_str()).is_some_and(|known| {
            known
                .iter()
                .any(|v| hashes.contains(&v.stored_hash.as_str()) && bool::from(v.digest.ct_eq(digest)))
        })
    }

    /// Adds a verification to the key's entry, keeping those of its other
    /// hashes still in use (a rotation's previous secret) and dropping the
    /// rest. Two verifications racing may keep one: the other costs one more
    /// argon2 run later, never a wrong answer.
    fn remember_verified(&self, key_id: &KeyId, hashes: &[&str], hash: &str, digest: Digest) {
        let mut entries: Vec<VerifiedSecret> = Vec::with_capacity(2);
        if let Some(known) = self.verified.get(key_id.as_str()) {
            entries.extend(
                known
                    .iter()
                    .filter(|v| v.stored_hash != hash && hashes.contains(&v.stored_hash.as_str()))
                    .map(|v| VerifiedSecret {
                        stored_hash: v.stored_hash.clone(),
                        digest: v.digest,
                    }),
            );
        }
        entries.push(VerifiedSecret {
            stored_hash: hash.to_string(),
            digest,
        });
        self.verified.insert(key_id.as_str().to_string(), entries.into());
    }

    fn digest(&self, secret: &str) -> Digest {
        // The key length is fixed, so new_from_slice cannot fail; fall back to
        // a zero digest that no cache entry holds rather than panic.
        match Hmac::<Sha256>::new_from_slice(&self.pepper) {
            Ok(mut mac) => {
                mac.update(secret.as_bytes());
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0u8; 32],
        }
    }

    /// Polls the auth epoch and flushes `lastUsedAt` until the process ends.
    pub fn spawn_background(self: &Arc<Self>, flush_interval: Duration) {
        let verifier = Arc::clone(self);
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(EPOCH_POLL);
            loop {
                poll.tick().await;
                match verifier.store.auth_epoch().await {
                    Ok(epoch) => {
                        if verifier.epoch.swap(epoch, Ordering::SeqCst) != epoch {
                            verifier.records.invalidate_all();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read auth epoch"),
                }
            }
        });
        let verifier = Arc::clone(self);
        tokio::spawn(async move {
            let mut flush = tokio::time::interval(flush_interval);
            loop {
                flush.tick().await;
                verifier.flush_last_used().await;
                verifier.flush_refusals().await;
            }
        });
    }

    /// Writes the `lastUsedAt` times collected since the last flush.
    pub async fn flush_last_used(&self) {
        let uses: Vec<(String, DateTime<Utc>)> = match self.last_used.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => return,
        };
        if let Err(e) = self.store.record_key_use(&uses).await {
            tracing::warn!(error = %e, "cannot record key use");
        }
    }
}

/// `Bearer <token>`, scheme case-insensitive (RFC 6750 §2.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// IPv4-mapped IPv6 addresses match IPv4 allowlists.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn cidrs_and_bare_addresses_parse() {
        assert!(parse_cidr("10.0.0.0/8").is_some());
        assert!(parse_cidr("2001:db8::/32").is_some());
        assert_eq!(parse_cidr("192.0.2.7"), parse_cidr("192.0.2.7/32"));
        assert!(parse_cidr("nope").is_none());
    }

    #[test]
    fn ipv4_mapped_addresses_are_treated_as_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(canonical(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }
}
