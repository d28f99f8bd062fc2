//! Each filterable value indexed once, under the column its filters read.
//!
//! A row of `scim_values` had a text, a lowercased text and a number
//! column, and an index on each, all three written for every row: a
//! case-insensitive string (most of what IdPs send) was written as text
//! and folded, and had a NULL number. Yet the attribute's definition alone
//! decides which column a filter or sort reads (`scimd::store::query`):
//! folded for case-insensitive strings, text for case-exact strings,
//! booleans and dateTimes, number for numbers. scimd now writes only that
//! column, and the text and number indexes hold only rows that have a
//! value there. The folded index stays whole: presence (`emails pr`) finds
//! an attribute's rows through it, whatever their type.
//!
//! A user create wrote some 46 b-tree entries, 30 of them for its six
//! values; now 20. Rows written before keep both texts and stay correct:
//! each filter reads the one column it always read.

use crate::sqlite_statistics;
use crate::statements::run;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000011_partial_value_indexes"
    }
}

/// Same SQL on SQLite and PostgreSQL; the indexes keep their names.
const UP: [&str; 4] = [
    "DROP INDEX ix_scim_values_text",
    "CREATE INDEX ix_scim_values_text ON scim_values (tenant_id, attr, value_text) WHERE value_text IS NOT NULL",
    "DROP INDEX ix_scim_values_number",
    "CREATE INDEX ix_scim_values_number ON scim_values (tenant_id, attr, value_number) WHERE value_number IS NOT NULL",
];

/// Migration 1's indexes, on every row.
const DOWN: [&str; 4] = [
    "DROP INDEX ix_scim_values_text",
    "CREATE INDEX ix_scim_values_text ON scim_values (tenant_id, attr, value_text)",
    "DROP INDEX ix_scim_values_number",
    "CREATE INDEX ix_scim_values_number ON scim_values (tenant_id, attr, value_number)",
];

/// Dropping an index drops its SQLite statistics (migration 8's); the new
/// ones get the same.
const STATISTICS: [(&str, &str, &str); 2] = [
    ("scim_values", "ix_scim_values_text", "10000000 10000000 500000 2"),
    ("scim_values", "ix_scim_values_number", "10000000 10000000 500000 2"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, &UP).await?;
        sqlite_statistics::write(manager, &STATISTICS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, &DOWN).await?;
        sqlite_statistics::write(manager, &STATISTICS).await
    }
}
