//! The first schema: tenants, service users, API keys, SCIM resources with
//! their filter index and group memberships. Every table carries `tenant_id`.
//!
//! The storage design is described in `docs/storage.md`.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000001_initial"
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ServiceUsers {
    Table,
    Id,
    TenantId,
    Name,
    NameFolded,
    Description,
    Role,
    GrantedScopes,
    CreatedAt,
    CreatedBy,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    ServiceUserId,
    Name,
    Description,
    KeyType,
    SecretHash,
    PreviousSecretHash,
    PreviousSecretExpiresAt,
    Scopes,
    AllowedIps,
    ExpiresAt,
    Disabled,
    LastUsedAt,
    CreatedAt,
    CreatedBy,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum AuthEpoch {
    Table,
    Id,
    Epoch,
}

#[derive(DeriveIden)]
enum ScimResources {
    Table,
    Id,
    TenantId,
    ResourceType,
    UserName,
    UserNameFolded,
    ExternalId,
    DisplayName,
    DisplayNameFolded,
    Document,
    PasswordHash,
    Version,
    CreatedAt,
    LastModified,
}

#[derive(DeriveIden)]
enum ScimValues {
    Table,
    TenantId,
    ResourceId,
    Attr,
    Element,
    ValueText,
    ValueFolded,
    ValueNumber,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    TenantId,
    GroupId,
    MemberId,
    MemberType,
}

fn tenant_fk<T: IntoIden + 'static>(table: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, Alias::new("tenant_id"))
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(ColumnDef::new(Tenants::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Tenants::Name).string_len(63).not_null().unique_key())
                    .col(ColumnDef::new(Tenants::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServiceUsers::Table)
                    .col(ColumnDef::new(ServiceUsers::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(ServiceUsers::TenantId).string_len(36).not_null())
                    .col(ColumnDef::new(ServiceUsers::Name).string_len(128).not_null())
                    .col(ColumnDef::new(ServiceUsers::NameFolded).string_len(128).not_null())
                    .col(ColumnDef::new(ServiceUsers::Description).text().null())
                    .col(ColumnDef::new(ServiceUsers::Role).string_len(32).not_null())
                    // JSON array of scopes granted beyond the role (the bootstrap admin's admin:tenants).
                    .col(
                        ColumnDef::new(ServiceUsers::GrantedScopes)
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .col(
                        ColumnDef::new(ServiceUsers::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ServiceUsers::CreatedBy).string_len(128).not_null())
                    .col(
                        ColumnDef::new(ServiceUsers::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ServiceUsers::UpdatedBy).string_len(128).not_null())
                    .foreign_key(&mut tenant_fk(ServiceUsers::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_service_users_tenant_name")
                    .table(ServiceUsers::Table)
                    .col(ServiceUsers::TenantId)
                    .col(ServiceUsers::NameFolded)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    // The 32-character public key ID (`scimd_…`).
                    .col(ColumnDef::new(ApiKeys::Id).string_len(32).not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::TenantId).string_len(36).not_null())
                    .col(ColumnDef::new(ApiKeys::ServiceUserId).string_len(36).not_null())
                    .col(ColumnDef::new(ApiKeys::Name).string_len(128).not_null())
                    .col(ColumnDef::new(ApiKeys::Description).text().null())
                    .col(ColumnDef::new(ApiKeys::KeyType).string_len(16).not_null())
                    // argon2id PHC strings; the secret itself is never stored.
                    .col(ColumnDef::new(ApiKeys::SecretHash).string_len(255).not_null())
                    .col(ColumnDef::new(ApiKeys::PreviousSecretHash).string_len(255).null())
                    .col(
                        ColumnDef::new(ApiKeys::PreviousSecretExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ApiKeys::Scopes).text().not_null())
                    .col(ColumnDef::new(ApiKeys::AllowedIps).text().not_null())
                    .col(ColumnDef::new(ApiKeys::ExpiresAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(ApiKeys::Disabled).boolean().not_null().default(false))
                    .col(ColumnDef::new(ApiKeys::LastUsedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(ApiKeys::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(ApiKeys::CreatedBy).string_len(128).not_null())
                    .col(ColumnDef::new(ApiKeys::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(ApiKeys::UpdatedBy).string_len(128).not_null())
                    .foreign_key(&mut tenant_fk(ApiKeys::Table))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::ServiceUserId)
                            .to(ServiceUsers::Table, ServiceUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_tenant_service_user")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::ServiceUserId)
                    .to_owned(),
            )
            .await?;

        // A single-row counter bumped in the same transaction as any change to
        // keys or service users; every instance polls it to drop cached
        // credentials (contract §3: revocation within 1 s across instances).
        manager
            .create_table(
                Table::create()
                    .table(AuthEpoch::Table)
                    .col(ColumnDef::new(AuthEpoch::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(AuthEpoch::Epoch).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(AuthEpoch::Table)
                    .columns([AuthEpoch::Id, AuthEpoch::Epoch])
                    .values_panic([1.into(), 0.into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScimResources::Table)
                    .col(
                        ColumnDef::new(ScimResources::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ScimResources::TenantId).string_len(36).not_null())
                    .col(ColumnDef::new(ScimResources::ResourceType).string_len(16).not_null())
                    .col(ColumnDef::new(ScimResources::UserName).text().null())
                    .col(ColumnDef::new(ScimResources::UserNameFolded).text().null())
                    .col(ColumnDef::new(ScimResources::ExternalId).text().null())
                    .col(ColumnDef::new(ScimResources::DisplayName).text().null())
                    .col(ColumnDef::new(ScimResources::DisplayNameFolded).text().null())
                    // The validated resource as JSON, without id, meta, members or password.
                    .col(ColumnDef::new(ScimResources::Document).text().not_null())
                    .col(ColumnDef::new(ScimResources::PasswordHash).string_len(255).null())
                    .col(ColumnDef::new(ScimResources::Version).big_integer().not_null())
                    // Normalised RFC 3339 UTC text with microseconds: text order is time order.
                    .col(ColumnDef::new(ScimResources::CreatedAt).string_len(32).not_null())
                    .col(ColumnDef::new(ScimResources::LastModified).string_len(32).not_null())
                    .foreign_key(&mut tenant_fk(ScimResources::Table))
                    .to_owned(),
            )
            .await?;
        // userName is unique per tenant, case-insensitively; groups leave it NULL.
        manager
            .create_index(
                Index::create()
                    .name("ux_scim_resources_user_name")
                    .table(ScimResources::Table)
                    .col(ScimResources::TenantId)
                    .col(ScimResources::ResourceType)
                    .col(ScimResources::UserNameFolded)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_scim_resources_external_id", ScimResources::ExternalId),
            ("ix_scim_resources_display_name", ScimResources::DisplayNameFolded),
            ("ix_scim_resources_last_modified", ScimResources::LastModified),
            ("ix_scim_resources_created_at", ScimResources::CreatedAt),
            ("ix_scim_resources_id", ScimResources::Id),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ScimResources::Table)
                        .col(ScimResources::TenantId)
                        .col(ScimResources::ResourceType)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(ScimValues::Table)
                    .col(ColumnDef::new(ScimValues::TenantId).string_len(36).not_null())
                    .col(ColumnDef::new(ScimValues::ResourceId).string_len(36).not_null())
                    // Lowercase canonical path: `emails.value`, `urn:…:user:department`.
                    .col(ColumnDef::new(ScimValues::Attr).string_len(255).not_null())
                    // Index of the multi-valued element; -1 for singular attributes.
                    .col(ColumnDef::new(ScimValues::Element).integer().not_null())
                    .col(ColumnDef::new(ScimValues::ValueText).text().null())
                    .col(ColumnDef::new(ScimValues::ValueFolded).text().null())
                    .col(ColumnDef::new(ScimValues::ValueNumber).double().null())
                    .foreign_key(&mut tenant_fk(ScimValues::Table))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ScimValues::Table, ScimValues::ResourceId)
                            .to(ScimResources::Table, ScimResources::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_scim_values_folded", ScimValues::ValueFolded),
            ("ix_scim_values_text", ScimValues::ValueText),
            ("ix_scim_values_number", ScimValues::ValueNumber),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ScimValues::Table)
                        .col(ScimValues::TenantId)
                        .col(ScimValues::Attr)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_scim_values_resource")
                    .table(ScimValues::Table)
                    .col(ScimValues::ResourceId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GroupMembers::Table)
                    .col(ColumnDef::new(GroupMembers::TenantId).string_len(36).not_null())
                    .col(ColumnDef::new(GroupMembers::GroupId).string_len(36).not_null())
                    .col(ColumnDef::new(GroupMembers::MemberId).string_len(36).not_null())
                    .col(ColumnDef::new(GroupMembers::MemberType).string_len(8).not_null())
                    .primary_key(Index::create().col(GroupMembers::GroupId).col(GroupMembers::MemberId))
                    .foreign_key(&mut tenant_fk(GroupMembers::Table))
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupMembers::Table, GroupMembers::GroupId)
                            .to(ScimResources::Table, ScimResources::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(GroupMembers::Table, GroupMembers::MemberId)
                            .to(ScimResources::Table, ScimResources::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Derives a User's `groups` and answers `members.value eq` without a scan.
        manager
            .create_index(
                Index::create()
                    .name("ix_group_members_member")
                    .table(GroupMembers::Table)
                    .col(GroupMembers::TenantId)
                    .col(GroupMembers::MemberId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            GroupMembers::Table.into_iden(),
            ScimValues::Table.into_iden(),
            ScimResources::Table.into_iden(),
            AuthEpoch::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            ServiceUsers::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
