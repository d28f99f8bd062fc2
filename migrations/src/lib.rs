//! Database migrations for scimd, for SQLite and PostgreSQL alike.
//!
//! One file per change, named `mYYYYMMDD_NNNNNN_what.rs`, each with a working
//! `down`. Applied migrations never change what they do: a change is a new
//! file. What several share (`sqlite_statistics`, `statements`) keeps their SQL as it was.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_code_point_collation;
mod m20261123_000003_audit_events;
mod m20261123_000004_list_order_index;
mod m20261123_000005_membership_id_collation;
mod m20261123_000006_resource_counts;
mod m20261206_000007_postgres_resource_counts;
mod m20261206_000008_sqlite_planner_statistics;
mod m20261206_000009_audit_list_order;
mod m20261206_000010_resource_list_changes;
mod m20261206_000011_partial_value_indexes;
mod sqlite_statistics;
mod statements;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_code_point_collation::Migration),
            Box::new(m20261123_000003_audit_events::Migration),
            Box::new(m20261123_000004_list_order_index::Migration),
            Box::new(m20261123_000005_membership_id_collation::Migration),
            Box::new(m20261123_000006_resource_counts::Migration),
            Box::new(m20261206_000007_postgres_resource_counts::Migration),
            Box::new(m20261206_000008_sqlite_planner_statistics::Migration),
            Box::new(m20261206_000009_audit_list_order::Migration),
            Box::new(m20261206_000010_resource_list_changes::Migration),
            Box::new(m20261206_000011_partial_value_indexes::Migration),
        ]
    }
}
