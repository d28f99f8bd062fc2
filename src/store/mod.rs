//! Persistence: the only module that talks to the database (sea-orm).
//!
//! SQLite and PostgreSQL run the same code. On SQLite, writes go through a
//! pool of one connection so that write transactions queue in the process
//! instead of failing with `SQLITE_BUSY`; reads use a separate pool that WAL
//! lets run beside the writer. On PostgreSQL both handles share one pool.
//!
//! Every query takes a tenant ID: tenant scoping lives here, not in handlers.
//! The table design is described in `docs/storage.md`.

pub mod admin;
pub mod audit;
pub mod entities;
pub mod keys;
pub mod query;
pub mod resources;
pub mod tenants;

use std::time::Duration;

use scimd_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, SqlErr, Statement};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string names what clashed.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// `If-Match` named another version than the stored one.
    #[error("version mismatch")]
    VersionMismatch,
    /// The request referenced something that does not exist or is not allowed.
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    /// A query the store cannot express (an unfilterable attribute).
    #[error("unsupported query: {0}")]
    Unsupported(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Turns unique-constraint violations into [`StoreError::Conflict`], in one place.
    pub fn from_db(err: DbErr, what: &str) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => StoreError::Conflict(what.to_string()),
            _ => StoreError::Db(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Handles to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Used for every transaction that writes.
    write: DatabaseConnection,
    /// Used for reads outside write transactions.
    read: DatabaseConnection,
}

impl Store {
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        if url.starts_with("sqlite:") {
            let write = Database::connect(sqlite_options(url, 1)).await?;
            let read = Database::connect(sqlite_options(url, 8)).await?;
            Ok(Store { write, read })
        } else {
            let mut opts = ConnectOptions::new(url.to_string());
            opts.max_connections(32)
                .min_connections(1)
                .connect_timeout(Duration::from_secs(10))
                .acquire_timeout(Duration::from_secs(30))
                .sqlx_logging(false);
            let pool = Database::connect(opts).await?;
            Ok(Store {
                write: pool.clone(),
                read: pool,
            })
        }
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.write, None).await
    }

    pub fn backend(&self) -> DbBackend {
        self.write.get_database_backend()
    }

    pub fn writer(&self) -> &DatabaseConnection {
        &self.write
    }

    pub fn reader(&self) -> &DatabaseConnection {
        &self.read
    }

    /// Readiness probe: one round trip to the database.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.read
            .execute_raw(Statement::from_string(self.backend(), "SELECT 1"))
            .await
            .map(|_| ())
    }

    pub async fn close(self) {
        let _ = self.write.close().await;
        let _ = self.read.close().await;
    }
}

fn sqlite_options(url: &str, max_connections: u32) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    opts
}

/// Now, as stored in SCIM resources: UTC, microseconds, `Z` (text order = time order).
pub fn scim_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The current time truncated to microseconds, the precision both backends keep.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}
