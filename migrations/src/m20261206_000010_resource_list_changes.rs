//! How often each tenant's list of Users or Groups has changed, beside its
//! count (migrations 6 and 7).
//!
//! A page by index (`startIndex`) steps over every resource before it:
//! SQLite and PostgreSQL b-trees hold no counts to jump an offset by, so a
//! page at 500,000 steps over 500,000 index entries. scimd remembers where
//! earlier pages ended (`scimd::store::page_marks`) and starts a later page
//! from the nearest such place, but a place is only right while the list is
//! the same list. `changes` says whether it is: the triggers that keep the
//! count add one for every resource created or deleted, so two reads that
//! see the same `changes` see the same list, on every instance that shares
//! the database. Replacing or patching a resource moves nothing in the list
//! order (creation time and id) and changes nothing here.
//!
//! The column starts at 0 for counts already kept; a list created after
//! this migration starts at 1, its first create.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::statements::run;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000010_resource_list_changes"
    }
}

const SQLITE_UP: [&str; 5] = [
    "ALTER TABLE resource_counts ADD COLUMN changes bigint NOT NULL DEFAULT 0",
    "DROP TRIGGER trg_resource_counts_insert",
    "CREATE TRIGGER trg_resource_counts_insert AFTER INSERT ON scim_resources BEGIN \
        INSERT INTO resource_counts (tenant_id, resource_type, n, changes) \
        VALUES (NEW.tenant_id, NEW.resource_type, 1, 1) \
        ON CONFLICT (tenant_id, resource_type) DO UPDATE SET n = n + 1, changes = changes + 1; \
     END",
    "DROP TRIGGER trg_resource_counts_delete",
    "CREATE TRIGGER trg_resource_counts_delete AFTER DELETE ON scim_resources BEGIN \
        UPDATE resource_counts SET n = n - 1, changes = changes + 1 \
        WHERE tenant_id = OLD.tenant_id AND resource_type = OLD.resource_type; \
     END",
];

/// Migration 6's triggers, then the column dropped.
const SQLITE_DOWN: [&str; 5] = [
    "DROP TRIGGER trg_resource_counts_insert",
    "CREATE TRIGGER trg_resource_counts_insert AFTER INSERT ON scim_resources BEGIN \
        INSERT INTO resource_counts (tenant_id, resource_type, n) \
        VALUES (NEW.tenant_id, NEW.resource_type, 1) \
        ON CONFLICT (tenant_id, resource_type) DO UPDATE SET n = n + 1; \
     END",
    "DROP TRIGGER trg_resource_counts_delete",
    "CREATE TRIGGER trg_resource_counts_delete AFTER DELETE ON scim_resources BEGIN \
        UPDATE resource_counts SET n = n - 1 \
        WHERE tenant_id = OLD.tenant_id AND resource_type = OLD.resource_type; \
     END",
    "ALTER TABLE resource_counts DROP COLUMN changes",
];

// One statement-level function serves both triggers (migration 7): a
// statement's rows add to `changes` whether inserted or deleted.
const POSTGRES_UP: [&str; 2] = [
    "ALTER TABLE resource_counts ADD COLUMN changes bigint NOT NULL DEFAULT 0",
    "CREATE OR REPLACE FUNCTION scimd_count_resources() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
        INSERT INTO resource_counts (tenant_id, resource_type, shard, n, changes) \
        SELECT tenant_id, resource_type, pg_backend_pid() % 64, \
               CASE TG_OP WHEN 'INSERT' THEN COUNT(*) ELSE -COUNT(*) END, COUNT(*) \
        FROM changed GROUP BY tenant_id, resource_type \
        ON CONFLICT (tenant_id, resource_type, shard) DO UPDATE \
            SET n = resource_counts.n + EXCLUDED.n, changes = resource_counts.changes + EXCLUDED.changes; \
        RETURN NULL; \
     END $$",
];

const POSTGRES_DOWN: [&str; 2] = [
    "CREATE OR REPLACE FUNCTION scimd_count_resources() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
        INSERT INTO resource_counts (tenant_id, resource_type, shard, n) \
        SELECT tenant_id, resource_type, pg_backend_pid() % 64, \
               CASE TG_OP WHEN 'INSERT' THEN COUNT(*) ELSE -COUNT(*) END \
        FROM changed GROUP BY tenant_id, resource_type \
        ON CONFLICT (tenant_id, resource_type, shard) DO UPDATE SET n = resource_counts.n + EXCLUDED.n; \
        RETURN NULL; \
     END $$",
    "ALTER TABLE resource_counts DROP COLUMN changes",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, &POSTGRES_UP).await,
            _ => run(manager, &SQLITE_UP).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, &POSTGRES_DOWN).await,
            _ => run(manager, &SQLITE_DOWN).await,
        }
    }
}
