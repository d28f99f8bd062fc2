//! sea-orm entities for the administrative tables. SCIM resources are read
//! and written with sea-query directly (see `resources.rs`).

pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod service_user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub name_folded: String,
        pub description: Option<String>,
        pub role: String,
        /// JSON array of scopes granted beyond the role.
        pub granted_scopes: String,
        pub created_at: DateTimeUtc,
        pub created_by: String,
        pub updated_at: DateTimeUtc,
        pub updated_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub service_user_id: String,
        pub name: String,
        pub description: Option<String>,
        pub key_type: String,
        pub secret_hash: String,
        pub previous_secret_hash: Option<String>,
        pub previous_secret_expires_at: Option<DateTimeUtc>,
        /// JSON array of scope names.
        pub scopes: String,
        /// JSON array of CIDRs; empty means any address.
        pub allowed_ips: String,
        pub expires_at: Option<DateTimeUtc>,
        pub disabled: bool,
        pub last_used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub created_by: String,
        pub updated_at: DateTimeUtc,
        pub updated_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub at: DateTimeUtc,
        pub action: String,
        pub actor_key_id: Option<String>,
        pub actor_service_user_id: Option<String>,
        pub actor_service_user_name: String,
        pub target_type: String,
        pub target_id: Option<String>,
        pub ip: Option<String>,
        pub request_id: Option<String>,
        pub outcome: String,
        /// JSON object with non-secret details of the change.
        pub detail: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
