//! The command line (contract §1). Operator commands go through the same
//! [`crate::admin::Admin`] operations as the HTTP API and are audited with
//! the actor `cli`.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::admin::keys::{CreateKey, KeyListRequest};
use crate::admin::service_users::CreateServiceUser;
use crate::admin::{Admin, KeyLifetimes, MAX_LIMIT};
use crate::auth::KeyVerifier;
use crate::auth::bootstrap::{BOOTSTRAP_TENANT, bootstrap_if_empty};
use crate::auth::hashing::Hasher;
use crate::config::{Settings, SettingsArgs};
use crate::startup::open_store;
use crate::store::Store;
use crate::store::audit::AuditContext;

#[derive(Debug, Parser)]
#[command(
    name = "scimd",
    version,
    about = "SCIM 2.0 provisioning server with service-account API keys"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database if needed, then serve HTTP until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage service users.
    #[command(subcommand)]
    ServiceUsers(ServiceUserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ServiceUserCommand {
    /// Create a service user and print it as JSON.
    Create {
        #[arg(long)]
        name: String,
        /// admin, provisioner, reader or user-cleanup.
        #[arg(long)]
        role: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key and print it, alone, on stdout: `KEY=$(scimd keys create …)`.
    Create {
        /// The service user's name.
        #[arg(long)]
        service_user: String,
        #[arg(long)]
        name: String,
        /// Comma-separated; default: the service user's role.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        #[arg(long)]
        expires_in_days: Option<i64>,
        /// Comma-separated CIDRs; default: any address.
        #[arg(long, value_delimiter = ',')]
        allowed_ips: Option<Vec<String>>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List keys as JSON (never their secrets).
    List {
        /// Only the keys of this service user (by name).
        #[arg(long)]
        service_user: Option<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Revoke (delete) a key by its ID: it never works again.
    Revoke { id: String },
}

#[derive(Debug, Clone, Args)]
pub struct TenantArg {
    /// The tenant, by name.
    #[arg(long, default_value = BOOTSTRAP_TENANT)]
    pub tenant: String,
}

struct Operator {
    store: Store,
    admin: Admin,
}

impl Operator {
    async fn open(settings: &Settings) -> anyhow::Result<Operator> {
        let store = open_store(settings).await?;
        let hasher = Hasher::default();
        // The first command on an empty database is its first start too.
        if let Some(path) =
            bootstrap_if_empty(&store, &hasher, &settings.data_dir, settings.key_default_lifetime_days).await?
        {
            tracing::info!(path = %path.display(), "first start: bootstrap admin key written");
        }
        let verifier = KeyVerifier::new(store.clone(), hasher.clone());
        let lifetimes = KeyLifetimes {
            default_days: settings.key_default_lifetime_days,
            max_days: settings.key_max_lifetime_days,
        };
        let admin = Admin::new(store.clone(), hasher, Arc::clone(&verifier), lifetimes);
        Ok(Operator { store, admin })
    }

    async fn tenant(&self, name: &str) -> anyhow::Result<(String, AuditContext)> {
        let tenant = self
            .store
            .tenant_by_name(name)
            .await?
            .with_context(|| format!("no tenant named {name}"))?;
        Ok((tenant.name, AuditContext::cli(&tenant.id)))
    }

    async fn service_user_id(&self, ctx: &AuditContext, name: &str) -> anyhow::Result<String> {
        let user = self
            .store
            .service_user_by_name(&ctx.tenant_id, name)
            .await?
            .with_context(|| format!("no service user named {name}"))?;
        Ok(user.id)
    }
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn service_users(settings: &Settings, command: ServiceUserCommand) -> anyhow::Result<()> {
    let op = Operator::open(settings).await?;
    match command {
        ServiceUserCommand::Create {
            name,
            role,
            description,
            tenant,
        } => {
            let (tenant_name, ctx) = op.tenant(&tenant.tenant).await?;
            let user = op
                .admin
                .create_service_user(
                    &ctx,
                    &tenant_name,
                    CreateServiceUser {
                        name,
                        description,
                        role,
                    },
                )
                .await?;
            print_json(&user)?;
        }
    }
    op.store.close().await;
    Ok(())
}

pub async fn keys(settings: &Settings, command: KeyCommand) -> anyhow::Result<()> {
    let op = Operator::open(settings).await?;
    match command {
        KeyCommand::Create {
            service_user,
            name,
            scopes,
            expires_in_days,
            allowed_ips,
            tenant,
        } => {
            let (_, ctx) = op.tenant(&tenant.tenant).await?;
            let owner = op.service_user_id(&ctx, &service_user).await?;
            let input = CreateKey {
                name,
                scopes,
                expires_in_days,
                allowed_ips,
                ..Default::default()
            };
            let created = op.admin.create_key(&ctx, &owner, input).await?;
            // The key alone on stdout, so that KEY=$(scimd keys create …) works.
            println!("{}", created.secret);
        }
        KeyCommand::List { service_user, tenant } => {
            let (_, ctx) = op.tenant(&tenant.tenant).await?;
            let owner = match service_user {
                Some(name) => Some(op.service_user_id(&ctx, &name).await?),
                None => None,
            };
            let request = KeyListRequest {
                service_user: owner.as_deref(),
                ..Default::default()
            };
            let mut offset = 0;
            let mut all = Vec::new();
            loop {
                let page = op.admin.list_keys(&ctx.tenant_id, &request, offset, MAX_LIMIT).await?;
                offset += page.items.len() as u64;
                let done = page.next_cursor.is_none();
                all.extend(page.items);
                if done {
                    break;
                }
            }
            print_json(&all)?;
        }
        KeyCommand::Revoke { id } => {
            let Some(record) = op.store.key_auth_record(&id).await? else {
                bail!("no key with ID {id}");
            };
            op.admin.delete_key(&AuditContext::cli(&record.tenant.id), &id).await?;
            eprintln!("key {id} revoked");
        }
    }
    op.store.close().await;
    Ok(())
}
