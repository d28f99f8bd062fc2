//! First start on an empty database (contract §1): tenant `default`, service
//! user `bootstrap-admin` with role `admin` plus `admin:tenants`, one key,
//! written to `<data-dir>/APIKey-bootstrap-admin-<date>.key` (mode 0600).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;

use super::hashing::Hasher;
use super::key;
use super::scopes::{Role, Scope, scope_names};
use crate::store::keys::NewKey;
use crate::store::{Store, StoreError};

pub const BOOTSTRAP_TENANT: &str = "default";
pub const BOOTSTRAP_SERVICE_USER: &str = "bootstrap-admin";

/// `APIKey-<name>-<YYYY-MM-DD>.key`, the name keys are downloaded under.
pub fn key_file_name(key_name: &str, at: chrono::DateTime<Utc>) -> String {
    format!("APIKey-{key_name}-{}.key", at.format("%Y-%m-%d"))
}

/// Creates the bootstrap tenant, admin and key if the database has no tenant.
/// Returns the key file written, or `None` when the database was not empty
/// (or another instance bootstrapped it first).
pub async fn bootstrap_if_empty(
    store: &Store,
    hasher: &Hasher,
    data_dir: &Path,
    key_lifetime_days: u32,
) -> anyhow::Result<Option<PathBuf>> {
    if store.count_tenants().await? > 0 {
        return Ok(None);
    }
    let now = Utc::now();
    let plain = key::generate();
    let secret_hash = hasher.hash(plain.secret().to_string()).await?;
    let mut scopes = Role::Admin.scopes();
    scopes.insert(Scope::AdminTenants);
    let scopes = scope_names(&scopes);
    let granted = vec![Scope::AdminTenants.as_str().to_string()];
    let key_id = plain.id();

    // The file is written before the commit: a key that is committed but was
    // never written would lock the operator out.
    let path = data_dir.join(key_file_name(BOOTSTRAP_SERVICE_USER, now));
    write_secret_file(&path, plain.expose())?;
    let created = store
        .create_tenant_with_admin(
            BOOTSTRAP_TENANT,
            BOOTSTRAP_SERVICE_USER,
            Role::Admin.as_str(),
            &granted,
            NewKey {
                id: key_id.as_str(),
                name: BOOTSTRAP_SERVICE_USER,
                description: Some("created on first start"),
                key_type: "service",
                secret_hash: &secret_hash,
                scopes: &scopes,
                allowed_ips: &[],
                expires_at: Some(now + chrono::Duration::days(i64::from(key_lifetime_days))),
                actor: "bootstrap",
            },
        )
        .await;
    match created {
        Ok(_) => Ok(Some(path)),
        Err(StoreError::Conflict(_)) => {
            // Another instance sharing the database won the race.
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e.into())
        }
    }
}

/// Writes `contents` and a newline to a file only the owner can read.
pub fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // mode() applies only to new files; tighten an existing one too.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    writeln!(file, "{contents}")?;
    file.sync_all()?;
    Ok(())
}
