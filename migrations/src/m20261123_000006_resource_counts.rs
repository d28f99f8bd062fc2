//! SQLite: how many resources of each type a tenant holds, kept by triggers.
//!
//! An unfiltered list answers `totalResults` with the tenant's count of
//! Users or Groups. SQLite has no cheaper `COUNT(*)` than a step per index
//! entry: at 10,000 users that was as much work as the page itself, at
//! 1,000,000 users 100 ms per page. Triggers on `scim_resources` keep the
//! count in the writing transaction itself, whatever inserts or deletes the
//! rows (cascades included), so it is never out of step with the table.
//!
//! PostgreSQL: concurrent creates there would queue on one counter row's
//! lock until each commit; migration 7 keeps its count in shards.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000006_resource_counts"
    }
}

const UP: [&str; 4] = [
    "CREATE TABLE resource_counts ( \
        tenant_id varchar(36) NOT NULL, \
        resource_type varchar(16) NOT NULL, \
        n bigint NOT NULL, \
        PRIMARY KEY (tenant_id, resource_type) \
     ) WITHOUT ROWID",
    "INSERT INTO resource_counts (tenant_id, resource_type, n) \
     SELECT tenant_id, resource_type, COUNT(*) FROM scim_resources GROUP BY tenant_id, resource_type",
    "CREATE TRIGGER trg_resource_counts_insert AFTER INSERT ON scim_resources BEGIN \
        INSERT INTO resource_counts (tenant_id, resource_type, n) \
        VALUES (NEW.tenant_id, NEW.resource_type, 1) \
        ON CONFLICT (tenant_id, resource_type) DO UPDATE SET n = n + 1; \
     END",
    "CREATE TRIGGER trg_resource_counts_delete AFTER DELETE ON scim_resources BEGIN \
        UPDATE resource_counts SET n = n - 1 \
        WHERE tenant_id = OLD.tenant_id AND resource_type = OLD.resource_type; \
     END",
];

const DOWN: [&str; 3] = [
    "DROP TRIGGER trg_resource_counts_delete",
    "DROP TRIGGER trg_resource_counts_insert",
    "DROP TABLE resource_counts",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_on_sqlite(manager, &UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_on_sqlite(manager, &DOWN).await
    }
}

async fn run_on_sqlite(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}
