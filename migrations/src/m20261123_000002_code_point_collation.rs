//! PostgreSQL: compare and index SCIM text in code-point order.
//!
//! Filters and sorting order text by code point on both backends (SQLite's
//! default BINARY collation). On PostgreSQL the queries say `COLLATE "C"`,
//! and an index serves such a comparison only if it was built with the same
//! collation, so the columns that are compared take it as their own. SQLite
//! needs nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000002_code_point_collation"
    }
}

const COLUMNS: [(&str, &str); 9] = [
    ("scim_resources", "user_name_folded"),
    ("scim_resources", "external_id"),
    ("scim_resources", "display_name_folded"),
    ("scim_resources", "created_at"),
    ("scim_resources", "last_modified"),
    ("scim_resources", "id"),
    ("scim_values", "attr"),
    ("scim_values", "value_text"),
    ("scim_values", "value_folded"),
];

async fn set_collation(manager: &SchemaManager<'_>, collation: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    for (table, column) in COLUMNS {
        // Changing a column's collation rebuilds the indexes on it.
        db.execute_unprepared(&format!(
            "ALTER TABLE \"{table}\" ALTER COLUMN \"{column}\" TYPE text COLLATE {collation}"
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
