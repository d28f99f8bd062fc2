//! Lists are ordered by (created_at, id) within a tenant and resource type;
//! the old index stopped at created_at, so SQLite sorted each run of equal
//! times in a temporary b-tree and read every skipped row's id from the
//! table: a page at startIndex 5001 stepped through 5,100 table rows. With
//! id in the index, the order is the index's own and skipped rows cost an
//! index step; cursor pages (`(created_at, id) > (…)`) seek straight to
//! their start.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000004_list_order_index"
    }
}

const OLD: &str = "ix_scim_resources_created_at";
const NEW: &str = "ix_scim_resources_created_at_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(Alias::new("scim_resources"))
                    .col(Alias::new("tenant_id"))
                    .col(Alias::new("resource_type"))
                    .col(Alias::new("created_at"))
                    .col(Alias::new("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(OLD).table(Alias::new("scim_resources")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(Alias::new("scim_resources"))
                    .col(Alias::new("tenant_id"))
                    .col(Alias::new("resource_type"))
                    .col(Alias::new("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(Index::drop().name(NEW).table(Alias::new("scim_resources")).to_owned())
            .await
    }
}
