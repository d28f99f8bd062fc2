//! PostgreSQL: membership ids in code-point order, like the resource ids
//! they name.
//!
//! `scim_resources.id` carries `COLLATE "C"` (second migration) and filters
//! compare it under that collation. A `groups.value eq "…"` filter joins
//! `group_members.group_id` to it, and the planner carries the comparison
//! over to `group_id`, under "C"; the primary key of `group_members`, built
//! with the default collation, could then only be scanned with a filter (a
//! pass over every membership) rather than searched. With the same collation
//! on both sides, it is searched. SQLite needs nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000005_membership_id_collation"
    }
}

const COLUMNS: [&str; 2] = ["group_id", "member_id"];

async fn set_collation(manager: &SchemaManager<'_>, collation: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    for column in COLUMNS {
        // Changing a column's collation rebuilds the indexes on it.
        db.execute_unprepared(&format!(
            "ALTER TABLE \"group_members\" ALTER COLUMN \"{column}\" TYPE varchar(36) COLLATE {collation}"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_collation(manager, "\"C\"").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_collation(manager, "\"default\"").await
    }
}
