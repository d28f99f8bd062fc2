//! SQLite: fixed planner statistics that describe a large directory.
//!
//! Without statistics SQLite guesses that an index equality on its first
//! columns selects about ten rows. It took `tenant_id = ? AND
//! resource_type = ?` for ten rows, and so planned a filtered page
//! (`externalId eq "…"`, a Group's `displayName eq "…"`, `emails.value eq
//! "…"`: what IdPs ask before every create) as a walk over the tenant's
//! Users in list order (`ix_scim_resources_created_at_id`), testing each
//! one, to spare itself sorting the ten: a lookup cost a pass over the
//! directory (`displayName eq` ~120 lookups/s at 10,000 users and ~12 at
//! 100,000, against ~12,000 for `userName eq`, whose unique index won
//! anyway).
//!
//! `ANALYZE` would measure the data, but a new database (a first sync) has
//! none, and statistics taken early would mislead once it grows. These rows
//! say what holds for any directory worth planning for: a tenant and type
//! hold very many resources, and an id, name, external id or value selects
//! one or two. SQLite documents writing `sqlite_stat1` by hand for exactly
//! this (<https://sqlite.org/lang_analyze.html>, "Fixed Results of
//! ANALYZE"). `ANALYZE sqlite_schema` creates the table and makes this
//! connection load the rows; others load them when they next read the
//! schema. An operator's `ANALYZE` replaces them with measured ones.
//!
//! PostgreSQL measures its own (`scimd::store::statistics`).

use sea_orm_migration::prelude::*;

use crate::sqlite_statistics;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000008_sqlite_planner_statistics"
    }
}

/// `(table, index, stat)`: the index's rows, then the average rows per
/// distinct value of its first one, two, … columns.
const STATISTICS: [(&str, &str, &str); 13] = [
    ("scim_resources", "sqlite_autoindex_scim_resources_1", "1000000 1"),
    (
        "scim_resources",
        "ux_scim_resources_user_name",
        "1000000 1000000 500000 1",
    ),
    (
        "scim_resources",
        "ix_scim_resources_external_id",
        "1000000 1000000 500000 1",
    ),
    (
        "scim_resources",
        "ix_scim_resources_display_name",
        "1000000 1000000 500000 2",
    ),
    (
        "scim_resources",
        "ix_scim_resources_last_modified",
        "1000000 1000000 500000 2",
    ),
    ("scim_resources", "ix_scim_resources_id", "1000000 1000000 500000 1"),
    (
        "scim_resources",
        "ix_scim_resources_created_at_id",
        "1000000 1000000 500000 2 1",
    ),
    ("scim_values", "ix_scim_values_folded", "10000000 10000000 500000 2"),
    ("scim_values", "ix_scim_values_text", "10000000 10000000 500000 2"),
    ("scim_values", "ix_scim_values_number", "10000000 10000000 500000 2"),
    ("scim_values", "ix_scim_values_resource", "10000000 10"),
    ("group_members", "sqlite_autoindex_group_members_1", "1000000 1000 1"),
    ("group_members", "ix_group_members_member", "1000000 1000000 5"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sqlite_statistics::write(manager, &STATISTICS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        sqlite_statistics::remove(manager, &STATISTICS).await
    }
}
