//! Persistence: the only module that talks to the database (sea-orm, and
//! rusqlite for SQLite's bounded reads).
//!
//! SQLite and PostgreSQL run the same code. On SQLite, writes go through a
//! pool of one connection so that write transactions queue in the process
//! instead of failing with `SQLITE_BUSY`, and single SCIM writes share
//! commits ([`group_commit`]); reads use a separate pool that WAL lets run
//! beside the writer, and the bounded ones (by id, by index lookup, early
//! pages) run on the calling thread ([`direct`]). On PostgreSQL both
//! handles share one pool.
//!
//! Every query takes a tenant ID: tenant scoping lives here, not in handlers.
//! The table design is described in `docs/storage.md`.

pub mod admin;
pub mod audit;
pub mod checkpoint;
pub mod direct;
pub mod entities;
pub mod group_commit;
pub mod keys;
pub mod page_marks;
pub mod query;
pub mod resources;
mod rows_insert;
pub mod sqlite_memory;
pub mod statistics;
pub mod tenants;

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use audit::AuditContext;
use direct::DirectReads;
use group_commit::GroupCommit;
use page_marks::PageMarks;
use resources::{ResourceWrite, StoredResource};
use scimd_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, SqlErr, Statement, TransactionTrait,
};

use crate::scim::ResourceKind;

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
    /// The write lost a lock race: a PostgreSQL deadlock victim or
    /// serialization failure, or SQLite still busy after its timeout.
    /// Nothing was written; running the write again can succeed.
    #[error("contention: {0}")]
    Contention(DbErr),
    #[error("database error: {0}")]
    Db(DbErr),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Turns unique-constraint violations into [`StoreError::Conflict`], in one place.
    pub fn from_db(err: DbErr, what: &str) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => StoreError::Conflict(what.to_string()),
            _ => err.into(),
        }
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if is_contention(&err) {
            StoreError::Contention(err)
        } else {
            StoreError::Db(err)
        }
    }
}

/// PostgreSQL's `deadlock_detected` (40P01) and `serialization_failure`
/// (40001); SQLite's SQLITE_BUSY and SQLITE_LOCKED, extended codes included.
fn is_contention(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db) = e.as_ref() else {
        return false;
    };
    let Some(code) = db.code() else { return false };
    match code.as_ref() {
        "40P01" | "40001" => true,
        numeric => {
            numeric.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                && db.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_some()
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Handles to the database. Cheap to clone.
/// What the store runs statements on: a connection pool, or one open
/// transaction shared by a batch of operations (see [`Store::batch`]). In a
/// batch, each store method's own `begin()` opens a savepoint, so one
/// operation that fails is undone alone.
#[derive(Clone)]
pub enum Conn {
    Pool(DatabaseConnection),
    Batch(Arc<DatabaseTransaction>),
}

impl Conn {
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        match self {
            Conn::Pool(pool) => pool.begin().await,
            Conn::Batch(txn) => txn.begin().await,
        }
    }

    /// Runs write statements as one unit: all of them take effect or none,
    /// in as few calls to the database as the backend allows.
    ///
    /// On SQLite in a batch (a write group or a Bulk) they go as one script
    /// between a savepoint and its release: sqlx runs each call on the
    /// connection's own thread and hands the answer back, ~65 µs a trip
    /// here, and five trips were most of a create's cost in a Bulk. On
    /// PostgreSQL, which takes no parameters in a script, they go as one
    /// statement, each but the last in a `WITH` clause of its own (a
    /// data-modifying CTE): one round trip alone, three in a batch's
    /// savepoint. Elsewhere (a SQLite pool) they run one by one in a
    /// transaction.
    ///
    /// The statements are sea-query's: SQLite placeholders anonymous (`?`,
    /// which sqlx binds in order across the script), PostgreSQL's numbered
    /// from `$1` in each statement, and no `$` anywhere else.
    pub async fn write_unit(&self, mut statements: Vec<Statement>) -> Result<(), DbErr> {
        match (self, self.get_database_backend()) {
            (Conn::Batch(txn), DbBackend::Sqlite) => {
                statements.push(Statement::from_string(DbBackend::Sqlite, "RELEASE scimd_unit"));
                let Err(failed) = txn.execute_raw(sqlite_unit_script(statements)).await else {
                    return Ok(());
                };
                undo_unit(txn).await;
                Err(failed)
            }
            (Conn::Pool(pool), DbBackend::Postgres) => {
                pool.execute_raw(postgres_unit_statement(statements)).await?;
                Ok(())
            }
            (Conn::Batch(_), DbBackend::Postgres) => {
                let savepoint = self.begin().await?;
                savepoint.execute_raw(postgres_unit_statement(statements)).await?;
                savepoint.commit().await
            }
            _ => {
                let txn = self.begin().await?;
                for statement in statements {
                    txn.execute_raw(statement).await?;
                }
                txn.commit().await
            }
        }
    }

    /// [`Conn::write_unit`] for a change that may find nothing to change:
    /// `guard` (an UPDATE or DELETE whose condition names the row and its
    /// version) runs first, and only if it changed a row do `rest` and it
    /// stay; otherwise nothing does and this answers `false`.
    ///
    /// On SQLite in a batch: the unit's script with `SELECT changes()`
    /// after the guard, then one more call to release the savepoint or
    /// roll back to it (two hand-offs instead of one per statement). On
    /// PostgreSQL: the guard, then `rest` as one statement, in a
    /// transaction (or a batch's savepoint).
    pub async fn guarded_write_unit(&self, guard: Statement, rest: Vec<Statement>) -> Result<bool, DbErr> {
        match (self, self.get_database_backend()) {
            (Conn::Batch(txn), DbBackend::Sqlite) => {
                let mut statements = vec![
                    guard,
                    Statement::from_string(DbBackend::Sqlite, "SELECT changes() AS changed"),
                ];
                statements.extend(rest);
                let ran = txn.query_all_raw(sqlite_unit_script(statements)).await;
                let changed = match ran.and_then(|rows| match rows.first() {
                    Some(row) => row.try_get::<i64>("", "changed"),
                    None => Err(DbErr::Custom("the guard's change count is missing".into())),
                }) {
                    Ok(changed) => changed,
                    Err(failed) => {
                        undo_unit(txn).await;
                        return Err(failed);
                    }
                };
                let end = if changed > 0 { "RELEASE scimd_unit" } else { UNDO_UNIT };
                txn.execute_unprepared(end).await?;
                Ok(changed > 0)
            }
            (_, backend) => {
                let txn = self.begin().await?;
                if txn.execute_raw(guard).await?.rows_affected() == 0 {
                    return Ok(false);
                }
                match backend {
                    DbBackend::Postgres if !rest.is_empty() => {
                        txn.execute_raw(postgres_unit_statement(rest)).await?;
                    }
                    _ => {
                        for statement in rest {
                            txn.execute_raw(statement).await?;
                        }
                    }
                }
                txn.commit().await?;
                Ok(true)
            }
        }
    }
}

const UNDO_UNIT: &str = "ROLLBACK TO scimd_unit; RELEASE scimd_unit";

/// After a unit's script stopped at a failing statement: undoes the ones
/// before it. (Were the undo to fail too, the connection is broken and so
/// is the batch's commit.)
async fn undo_unit(txn: &DatabaseTransaction) {
    if let Err(e) = txn.execute_unprepared(UNDO_UNIT).await {
        tracing::error!(error = %e, "a failed write could not be undone");
    }
}

/// A SQLite unit's script: its savepoint, then `statements` in order.
fn sqlite_unit_script(statements: Vec<Statement>) -> Statement {
    let mut sql = String::from("SAVEPOINT scimd_unit");
    let mut values = Vec::new();
    for statement in statements {
        sql.push_str("; ");
        sql.push_str(&statement.sql);
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

/// One PostgreSQL statement doing what `statements` do: all but the last
/// as data-modifying CTEs, each statement's placeholders renumbered after
/// the ones before it. One statement is atomic on its own.
fn postgres_unit_statement(statements: Vec<Statement>) -> Statement {
    let mut parts: Vec<String> = Vec::new();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    for statement in statements {
        parts.push(shift_placeholders(&statement.sql, values.len()));
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    let last = parts.pop().unwrap_or_default();
    let sql = match parts.is_empty() {
        true => last,
        false => {
            let ctes: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(i, sql)| format!("unit_{i} AS ({sql})"))
                .collect();
            format!("WITH {} {last}", ctes.join(", "))
        }
    };
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `sql` with every PostgreSQL placeholder `$n` made `$(n + by)`.
fn shift_placeholders(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut number = String::new();
        while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
            number.push(d);
        }
        match number.parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&number),
        }
    }
    out
}

#[async_trait::async_trait]
impl ConnectionTrait for Conn {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Conn::Pool(pool) => pool.get_database_backend(),
            Conn::Batch(txn) => txn.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Pool(pool) => pool.execute_raw(stmt).await,
            Conn::Batch(txn) => txn.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Conn::Pool(pool) => pool.execute_unprepared(sql).await,
            Conn::Batch(txn) => txn.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Conn::Pool(pool) => pool.query_one_raw(stmt).await,
            Conn::Batch(txn) => txn.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Conn::Pool(pool) => pool.query_all_raw(stmt).await,
            Conn::Batch(txn) => txn.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        match self {
            Conn::Pool(pool) => pool.support_returning(),
            Conn::Batch(txn) => txn.support_returning(),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    /// Used for every transaction that writes.
    write: Conn,
    /// Used for reads outside write transactions (the batch's transaction
    /// in a batch, so that its reads see its own writes).
    read: Conn,
    /// The pools, also in a batch: migrations, closing.
    pools: (DatabaseConnection, DatabaseConnection),
    /// SQLite's group commit of single writes (see [`Store::grouped`]);
    /// `None` on PostgreSQL and in a batch.
    group: Option<GroupCommit>,
    /// SQLite's reads on the calling thread ([`direct`]); `None` on
    /// PostgreSQL and in a batch, whose reads must see its own writes.
    direct: Option<Arc<DirectReads>>,
    /// Where earlier pages by index ended ([`page_marks`]); `None` in a
    /// batch, whose reads see writes that may yet be rolled back.
    page_marks: Option<Arc<PageMarks>>,
}

impl Store {
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        if url.starts_with("sqlite:") {
            sqlite_memory::configure();
            let write = Database::connect(sqlite_options(url, 1, true)).await?;
            let read = Database::connect(sqlite_options(url, 8, false)).await?;
            let mut store = Store::over(write, read);
            store.direct = DirectReads::for_url(url).map(Arc::new);
            store.group = Some(GroupCommit::start(store.clone()));
            Ok(store)
        } else {
            let mut opts = ConnectOptions::new(url.to_string());
            opts.max_connections(32)
                .min_connections(1)
                .connect_timeout(Duration::from_secs(10))
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire_if_idle_for(PING_CONNECTIONS_IDLE_FOR)
                .sqlx_logging(false);
            let pool = Database::connect(opts).await?;
            Ok(Store::over(pool.clone(), pool))
        }
    }

    fn over(write: DatabaseConnection, read: DatabaseConnection) -> Self {
        Store {
            write: Conn::Pool(write.clone()),
            read: Conn::Pool(read.clone()),
            pools: (write, read),
            group: None,
            direct: None,
            page_marks: Some(Arc::default()),
        }
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.pools.0, None).await
    }

    pub fn backend(&self) -> DbBackend {
        self.write.get_database_backend()
    }

    pub fn writer(&self) -> &Conn {
        &self.write
    }

    pub fn reader(&self) -> &Conn {
        &self.read
    }

    /// Where bounded reads can run on the calling thread (SQLite, outside
    /// a batch).
    pub(crate) fn direct(&self) -> Option<&DirectReads> {
        self.direct.as_deref()
    }

    pub fn page_marks(&self) -> Option<&PageMarks> {
        self.page_marks.as_deref()
    }

    /// A store whose reads and writes all run in one new transaction, until
    /// [`Store::commit_batch`]. Many small writes then share one commit (one
    /// WAL flush) instead of paying one each. On SQLite the batch holds the
    /// only write connection, so keep batches short.
    pub async fn batch(&self) -> Result<Store, DbErr> {
        let txn = Conn::Batch(Arc::new(self.pools.0.begin().await?));
        Ok(Store {
            write: txn.clone(),
            read: txn,
            pools: self.pools.clone(),
            group: None,
            direct: None,
            page_marks: None,
        })
    }

    /// The most write units (savepoints) one batch should hold, if the
    /// backend bounds them. PostgreSQL gives each savepoint that writes a
    /// subtransaction ID, and a session caches only 64 of them: past that,
    /// while the transaction runs, every other session's visibility checks
    /// look its rows up in `pg_subtrans`, which slows the whole server.
    pub fn batch_units_limit(&self) -> Option<usize> {
        match self.backend() {
            DbBackend::Postgres => Some(60),
            _ => None,
        }
    }

    /// Runs one single write (a SCIM create, replace, patch or delete) on
    /// the store `write` is given. On SQLite that is a savepoint in a group
    /// of writes queued together, and this returns once the group is
    /// committed ([`group_commit`]); on PostgreSQL the write runs on this
    /// store, again (a few times) if it lost a lock race; inside a batch it
    /// runs once.
    pub async fn grouped<T, F, Fut>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(Store) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        const ATTEMPTS: u32 = 5;
        match (&self.group, &self.write) {
            (Some(group), _) => group.submit(write).await,
            // Inside a batch the batch's own locks would meet the same
            // deadlock again: the batch's owner retries (see `bulk`).
            (None, Conn::Batch(_)) => write(self.clone()).await,
            (None, Conn::Pool(_)) => {
                let mut attempt = 1;
                loop {
                    match write(self.clone()).await {
                        Err(StoreError::Contention(e)) if attempt < ATTEMPTS => {
                            tracing::debug!(error = %e, attempt, "write lost a lock race; running it again");
                            tokio::time::sleep(contention_backoff(attempt)).await;
                            attempt += 1;
                        }
                        outcome => return outcome,
                    }
                }
            }
        }
    }

    /// A single create ([`Store::create_resource`]) run as [`Store::grouped`]
    /// runs writes, except that on SQLite a user goes to the group as data,
    /// to be written together with the user creates queued beside it.
    pub async fn create_grouped(
        &self,
        audit: &AuditContext,
        kind: ResourceKind,
        write: ResourceWrite,
    ) -> StoreResult<StoredResource> {
        match &self.group {
            Some(group) if kind == ResourceKind::User && write.members.is_none() => {
                group.create_user(audit.clone(), write).await
            }
            _ => {
                let audit = audit.clone();
                self.grouped(move |store| {
                    let (audit, write) = (audit.clone(), write.clone());
                    async move { store.create_resource(&audit, kind, write).await }
                })
                .await
            }
        }
    }

    /// Commits a store made by [`Store::batch`]; every clone of it must be
    /// gone. Dropping the batch store instead rolls the batch back.
    pub async fn commit_batch(self) -> Result<(), DbErr> {
        let Store { write, read, .. } = self;
        drop(read);
        match write {
            Conn::Batch(txn) => match Arc::try_unwrap(txn) {
                Ok(txn) => txn.commit().await,
                Err(_) => Err(DbErr::Custom("a batch store is still in use at commit".into())),
            },
            Conn::Pool(_) => Ok(()),
        }
    }

    /// Readiness probe: one round trip to the database.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.read
            .execute_raw(Statement::from_string(self.backend(), "SELECT 1"))
            .await
            .map(|_| ())
    }

    pub async fn close(self) {
        let _ = self.pools.0.close().await;
        let _ = self.pools.1.close().await;
    }
}

/// The SQLite writer connection's page cache, as `PRAGMA cache_size` takes
/// it: negative is KiB (8 MiB).
const WRITER_CACHE_SIZE: &str = "-8192";

/// A pooled PostgreSQL connection idle this long is tested (a round trip)
/// before it is handed out, so that one dropped meanwhile (a server
/// restart, a proxy, a firewall) is replaced instead of failing a request.
/// sqlx's default tests on every acquire: a round trip before each query,
/// one of `GET /Users/{id}`'s three (with the query and the test sqlx
/// always makes on release). A busy pool reuses its connections within
/// this window and skips the test (`GET /Users/{id}` ~10,000 → ~12,000
/// req/s, wrk); a quiet one tests them all, as before. The price: a
/// connection that died while busy fails the one request that finds it
/// dead (at most one per pooled connection) instead of being replaced.
/// HikariCP skips validation within 500 ms of use by default for the same
/// reason. SQLite's pools keep sqlx's default: there the test is a hand-off
/// to the connection's thread, once per write group or Bulk batch, and
/// leaving it out measured within noise.
const PING_CONNECTIONS_IDLE_FOR: Duration = Duration::from_millis(500);

fn sqlite_options(url: &str, max_connections: u32, writer: bool) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o: SqliteConnectOptions| {
            let o = o
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Checkpoints run beside the writer ([`checkpoint`]).
                .pragma("wal_autocheckpoint", checkpoint::WRITER_CHECKPOINT_PAGES.to_string());
            if writer {
                // Savepoints (one per operation of a Bulk batch or a write
                // group) journal each page before changing it; in a file
                // that was a fifth of Bulk's CPU in pwrite. In memory it
                // lives only until the savepoint is released. Readers keep
                // temporary files: a query's temporary b-trees (a walk
                // down a 100,000-member group) would otherwise all be RSS.
                //
                // The writer's page cache is 8 MiB, not SQLite's 2 MiB: a
                // create touches a dozen indexes at scattered pages, and
                // with 2 MiB a tenth of Bulk's time went to reading pages
                // back from the OS (`pread`). After 10,000 users, ten
                // Bulks of 1,000 one at a time, five alternating pairs:
                // 2,009-2,710 (mean ~2,380) -> 2,555-2,857 (~2,715)
                // creates/s, peak RSS +2-7 MB, POST unchanged; 16 MiB gave
                // no more, 32 MiB less.
                o.pragma("temp_store", "memory").pragma("cache_size", WRITER_CACHE_SIZE)
            } else {
                o
            }
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|conn, _| Box::pin(async move { plan_without_bound_values(conn).await }))
        });
    opts
}

/// Turns on SQLite's query planner stability guarantee for a pool
/// connection, as [`direct`] does for its own: without it a statement whose
/// `LIMIT ?` is bound again (every page, every filtered list) is compiled
/// anew on each run.
async fn plan_without_bound_values(conn: &mut SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    #[expect(
        unsafe_code,
        reason = "one FFI call on the handle of an open connection, as sqlx makes its own"
    )]
    // SAFETY: `db` is the open connection `handle` holds locked; with this
    // option the call reads two integer arguments, and a null pointer for
    // the previous value is allowed.
    let code = unsafe {
        rusqlite::ffi::sqlite3_db_config(
            db,
            rusqlite::ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    };
    if code == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration(
            format!("SQLite refused the query planner stability guarantee (code {code})").into(),
        ))
    }
}

/// A short random pause before running again a write that lost a lock
/// race, longer with each attempt, so the racers do not meet again.
pub fn contention_backoff(attempt: u32) -> Duration {
    Duration::from_millis(rand::random_range(1..=10 * u64::from(attempt.min(10))))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(value: &str) -> Statement {
        Statement::from_sql_and_values(DbBackend::Sqlite, "INSERT INTO t (v) VALUES (?)", [value.into()])
    }

    /// A SQLite store in `dir` with a table `t` of unique texts `v`.
    async fn sqlite_store_with_table(dir: &tempfile::TempDir) -> Store {
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()))
            .await
            .expect("connect");
        store
            .writer()
            .execute_unprepared("CREATE TABLE t (v TEXT NOT NULL UNIQUE)")
            .await
            .expect("create");
        store
    }

    async fn values(store: &Store) -> Vec<String> {
        let rows = store
            .reader()
            .query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT v FROM t ORDER BY v"))
            .await
            .expect("select");
        rows.iter().map(|r| r.try_get("", "v").expect("v")).collect()
    }

    /// Both pools' connections plan without bound values (see
    /// [`plan_without_bound_values`]).
    #[tokio::test]
    async fn sqlite_pool_connections_have_the_planner_stability_guarantee() {
        let dir = tempfile::tempdir().expect("dir");
        let store = sqlite_store_with_table(&dir).await;
        for pool in [&store.pools.0, &store.pools.1] {
            let mut conn = pool.get_sqlite_connection_pool().acquire().await.expect("acquire");
            let mut handle = conn.lock_handle().await.expect("lock");
            let mut enabled: std::ffi::c_int = -1;
            #[expect(unsafe_code, reason = "reads an integer option of an open connection")]
            // SAFETY: an open, locked handle; -1 asks for the current value only.
            unsafe {
                rusqlite::ffi::sqlite3_db_config(
                    handle.as_raw_handle().as_ptr(),
                    rusqlite::ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                    -1 as std::ffi::c_int,
                    &mut enabled as *mut std::ffi::c_int,
                )
            };
            assert_eq!(enabled, 1);
        }
    }

    /// The rest of a guarded unit stays only if its guard changed a row.
    #[tokio::test]
    async fn a_guarded_write_unit_in_a_sqlite_batch_stays_only_if_its_guard_changed_a_row() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = sqlite_store_with_table(&dir).await;
        store.writer().write_unit(vec![insert("a")]).await.expect("seed");
        let rename = |from: &str, to: &str| {
            Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "UPDATE t SET v = ? WHERE v = ?",
                [to.into(), from.into()],
            )
        };
        let batch = store.batch().await.expect("batch");
        let missed = batch
            .writer()
            .guarded_write_unit(rename("zz", "y"), vec![insert("b")])
            .await;
        assert!(!missed.expect("runs"), "no row named zz");
        let hit = batch
            .writer()
            .guarded_write_unit(rename("a", "a2"), vec![insert("c")])
            .await;
        assert!(hit.expect("runs"));
        // A failure after the guard undoes the guard's change too.
        let clash = batch
            .writer()
            .guarded_write_unit(rename("a2", "a3"), vec![insert("c")])
            .await;
        assert!(clash.is_err(), "c is taken");
        assert_eq!(values(&batch).await, ["a2", "c"]);
        batch.commit_batch().await.expect("commit");
        assert_eq!(values(&store).await, ["a2", "c"]);
        store.close().await;
    }

    #[test]
    fn postgres_units_are_one_statement_with_placeholders_numbered_through() {
        let pg =
            |sql: &str, values: Vec<sea_orm::Value>| Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
        let unit = postgres_unit_statement(vec![
            pg(
                "INSERT INTO \"a\" (\"x\", \"y\") VALUES ($1, $2)",
                vec![1.into(), 2.into()],
            ),
            pg(
                "INSERT INTO \"b\" (\"x\") VALUES ($1), ($2), ($3)",
                vec![3.into(), 4.into(), 5.into()],
            ),
            pg("INSERT INTO \"c\" (\"x\") VALUES ($1)", vec![6.into()]),
        ]);
        assert_eq!(
            unit.sql,
            "WITH unit_0 AS (INSERT INTO \"a\" (\"x\", \"y\") VALUES ($1, $2)), \
             unit_1 AS (INSERT INTO \"b\" (\"x\") VALUES ($3), ($4), ($5)) \
             INSERT INTO \"c\" (\"x\") VALUES ($6)"
        );
        assert_eq!(unit.values.map(|v| v.0.len()), Some(6));
        let single = postgres_unit_statement(vec![pg("DELETE FROM \"a\" WHERE \"x\" = $1", vec![1.into()])]);
        assert_eq!(single.sql, "DELETE FROM \"a\" WHERE \"x\" = $1");
        assert_eq!(shift_placeholders("$10 + $9", 3), "$13 + $12");
    }

    /// The writer connection gets its larger page cache; readers keep
    /// SQLite's default (each reader's cache is RSS too).
    #[tokio::test]
    async fn the_sqlite_writer_has_a_larger_page_cache_than_readers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite_store_with_table(&dir).await;
        let cache_size = |conn: Conn| async move {
            let row = conn
                .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA cache_size"))
                .await
                .expect("pragma")
                .expect("a row");
            row.try_get_by_index::<i64>(0).expect("cache_size")
        };
        assert_eq!(cache_size(store.writer().clone()).await.to_string(), WRITER_CACHE_SIZE);
        assert_eq!(cache_size(store.reader().clone()).await, -2000);
    }

    /// A unit that fails part-way in a batch leaves nothing behind, and the
    /// batch's other units still commit: the script's savepoint is undone.
    #[tokio::test]
    async fn a_write_unit_in_a_sqlite_batch_takes_effect_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = sqlite_store_with_table(&dir).await;
        let batch = store.batch().await.expect("batch");
        batch
            .writer()
            .write_unit(vec![insert("a"), insert("b")])
            .await
            .expect("first unit");
        // "c" goes in before "a" clashes: it must be undone with the unit.
        let clash = batch.writer().write_unit(vec![insert("c"), insert("a")]).await;
        assert!(
            matches!(
                clash.map_err(|e| e.sql_err()),
                Err(Some(SqlErr::UniqueConstraintViolation(_)))
            ),
            "the clash is reported as the statement's own error"
        );
        batch
            .writer()
            .write_unit(vec![insert("d")])
            .await
            .expect("a unit after the failed one");
        assert_eq!(values(&batch).await, ["a", "b", "d"]);
        batch.commit_batch().await.expect("commit");
        assert_eq!(values(&store).await, ["a", "b", "d"]);
        store.close().await;
    }
}
