//! The audit log's list order in its indexes.
//!
//! `GET /admin/v1/audit-events` answers newest first. The indexes of
//! migration 3 held `(tenant_id, column)` alone, so every page, filtered or
//! not, read each of the tenant's matching events from the table and sorted
//! them all to return 50: ~34 ms at 10,000 events, and every SCIM write adds
//! one (an IdP's first sync of a million users leaves a million). Each index
//! now ends in the list order `(at, id)`, so a page is an index walk from its
//! position that stops after the page (the cursor holds the position).
//!
//! On SQLite these indexes also get fixed planner statistics, as
//! migration 8 gives the SCIM tables: a tenant holds very many events, a
//! target few, an action or an actor many. Without them, `action=…&targetId=…`
//! could walk every event of the action in order rather than sort the
//! target's few.

use sea_orm_migration::prelude::*;

use crate::sqlite_statistics;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000009_audit_list_order"
    }
}

const TABLE: &str = "audit_events";

/// `(old index, new index, filtered column, new index's statistics)`; the
/// unfiltered list's index has no filtered column.
const INDEXES: [(&str, &str, Option<&str>, &str); 5] = [
    (
        "ix_audit_events_at",
        "ix_audit_events_order",
        None,
        "1000000 1000000 2 1",
    ),
    (
        "ix_audit_events_action",
        "ix_audit_events_action_order",
        Some("action"),
        "1000000 1000000 50000 2 1",
    ),
    (
        "ix_audit_events_target",
        "ix_audit_events_target_order",
        Some("target_id"),
        "1000000 1000000 10 1 1",
    ),
    (
        "ix_audit_events_actor_key",
        "ix_audit_events_actor_key_order",
        Some("actor_key_id"),
        "1000000 1000000 100000 2 1",
    ),
    (
        "ix_audit_events_actor_user",
        "ix_audit_events_actor_user_order",
        Some("actor_service_user_id"),
        "1000000 1000000 100000 2 1",
    ),
];

/// Creates the index `create` on `columns`, then drops `drop`.
async fn replace_index(manager: &SchemaManager<'_>, create: &str, columns: &[&str], drop: &str) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(create).table(Alias::new(TABLE));
    for column in columns {
        index.col(Alias::new(*column));
    }
    manager.create_index(index.to_owned()).await?;
    manager
        .drop_index(Index::drop().name(drop).table(Alias::new(TABLE)).to_owned())
        .await
}

/// The new indexes' statistics, as [`sqlite_statistics`] takes them.
fn statistics() -> [(&'static str, &'static str, &'static str); 5] {
    INDEXES.map(|(_, new, _, stat)| (TABLE, new, stat))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, column, _) in INDEXES {
            let columns: Vec<&str> = ["tenant_id"].into_iter().chain(column).chain(["at", "id"]).collect();
            replace_index(manager, new, &columns, old).await?;
        }
        sqlite_statistics::write(manager, &statistics()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (old, new, column, _) in INDEXES {
            replace_index(manager, old, &["tenant_id", column.unwrap_or("at")], new).await?;
        }
        sqlite_statistics::remove(manager, &statistics()).await
    }
}
