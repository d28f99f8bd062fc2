//! The append-only audit log.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000003_audit_events"
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    At,
    Action,
    ActorKeyId,
    ActorServiceUserId,
    ActorServiceUserName,
    TargetType,
    TargetId,
    Ip,
    RequestId,
    Outcome,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    // UUIDv7: time-ordered, so id order is insertion order.
                    .col(ColumnDef::new(AuditEvents::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(AuditEvents::TenantId).string_len(36).not_null())
                    .col(ColumnDef::new(AuditEvents::At).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(AuditEvents::Action).string_len(64).not_null())
                    .col(ColumnDef::new(AuditEvents::ActorKeyId).string_len(32).null())
                    .col(ColumnDef::new(AuditEvents::ActorServiceUserId).string_len(36).null())
                    .col(
                        ColumnDef::new(AuditEvents::ActorServiceUserName)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::TargetType).string_len(32).not_null())
                    .col(ColumnDef::new(AuditEvents::TargetId).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::Ip).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::RequestId).string_len(64).null())
                    .col(ColumnDef::new(AuditEvents::Outcome).string_len(16).not_null())
                    .col(ColumnDef::new(AuditEvents::Detail).text().null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_audit_events_at", AuditEvents::At),
            ("ix_audit_events_action", AuditEvents::Action),
            ("ix_audit_events_target", AuditEvents::TargetId),
            ("ix_audit_events_actor_key", AuditEvents::ActorKeyId),
            ("ix_audit_events_actor_user", AuditEvents::ActorServiceUserId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(AuditEvents::TenantId)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
