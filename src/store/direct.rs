//! SQLite reads that run on the calling thread, for the hottest lookups.
//!
//! sqlx runs each SQLite connection on a thread of its own: a query is a
//! message to that thread and each row a message back. For a lookup SQLite
//! answers in microseconds (a user by primary key with its groups), the
//! hand-offs cost several times the query: the profile of
//! `GET /Users/{id}` showed a third of the CPU on sqlx's threads, most of it
//! waking and parking, and a fifth in the kernel switching threads. So the
//! bounded reads (primary-key lookups and the `groups` walk of a page of
//! users) run here, synchronously, through rusqlite on the request's own
//! thread. Reads whose cost grows with the data (filters, pages far into a
//! list, a group's members) stay on the sqlx pool, where a slow one does
//! not hold up the other requests of its worker thread.
//!
//! Both drivers link the same SQLite library. Connections are opened on
//! first use and kept for reuse; as no await happens while one is in use,
//! there are never more than the threads that read at once.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement, Value as DbValue};

use super::{StoreError, StoreResult};

/// Connections kept beyond this are closed when returned.
const MAX_IDLE: usize = 16;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 32;

pub struct DirectReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl DirectReads {
    /// For a database URL naming a SQLite file (`sqlite://path?opts`);
    /// `None` for in-memory databases, which another connection cannot see.
    pub fn for_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
            return None;
        }
        Some(DirectReads {
            path: PathBuf::from(path),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `stmt` (built for SQLite) and decodes each row with `decode`.
    pub fn query<T>(
        &self,
        stmt: &Statement,
        mut decode: impl FnMut(&DirectRow<'_, '_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let conn = self.connection()?;
        let result = run_query(&conn, stmt, &mut decode);
        self.give_back(conn);
        result
    }

    /// Runs `reads` on one connection in one read transaction, so that all
    /// its statements see the database as of one moment.
    pub fn snapshot<T>(&self, reads: impl FnOnce(&Snapshot<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.connection()?;
        let result = (|| {
            let txn = conn.transaction().map_err(read_error)?;
            let outcome = reads(&Snapshot(&txn))?;
            txn.commit().map_err(read_error)?;
            Ok(outcome)
        })();
        self.give_back(conn);
        result
    }

    fn connection(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(read_error)?;
        // A reader waits only while SQLite recovers the WAL index, never on
        // the writer; `query_only` makes sure this path cannot write.
        conn.busy_timeout(Duration::from_secs(10)).map_err(read_error)?;
        conn.pragma_update(None, "query_only", true).map_err(read_error)?;
        // SQLite (3.47 on) plans with the value bound to `LIMIT ?` and so
        // marks the statement stale whenever that parameter is bound again,
        // whatever the value: every page and `userName eq` lookup was
        // compiled anew (a fifth of a lookup's CPU). The query planner
        // stability guarantee plans without bound values, so a cached
        // statement stays prepared. It costs nothing here: the planner's
        // statistics (migration 8) hold no values, and no LIKE pattern
        // would pick an index.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(read_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// A read transaction of [`DirectReads::snapshot`].
pub struct Snapshot<'c>(&'c Connection);

impl Snapshot<'_> {
    /// Runs `stmt` (built for SQLite) and decodes each row with `decode`.
    pub fn query<T>(
        &self,
        stmt: &Statement,
        mut decode: impl FnMut(&DirectRow<'_, '_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        run_query(self.0, stmt, &mut decode)
    }
}

fn run_query<T>(
    conn: &Connection,
    stmt: &Statement,
    decode: &mut impl FnMut(&DirectRow<'_, '_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let params = match &stmt.values {
        Some(values) => values.0.iter().map(bind).collect::<StoreResult<Vec<_>>>()?,
        None => Vec::new(),
    };
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(read_error)?;
    let mut rows = prepared.query(rusqlite::params_from_iter(params)).map_err(read_error)?;
    let mut decoded = Vec::new();
    while let Some(row) = rows.next().map_err(read_error)? {
        decoded.push(decode(&DirectRow(row))?);
    }
    Ok(decoded)
}

/// Runs a read statement on the calling thread when `direct` is given (the
/// caller judged the read bounded), else on `db`, decoding each row alike.
pub async fn read_rows<T>(
    db: &impl ConnectionTrait,
    direct: Option<&DirectReads>,
    stmt: Statement,
    mut decode: impl FnMut(&dyn ResultRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    match direct {
        Some(direct) => direct.query(&stmt, |row| decode(row)),
        None => db.query_all_raw(stmt).await?.iter().map(|row| decode(row)).collect(),
    }
}

/// A row of either driver, read by column name, so that one decoder serves
/// both (see `resources::resource_from_row`).
pub trait ResultRow {
    fn text(&self, column: &str) -> StoreResult<Option<String>>;
    fn integer(&self, column: &str) -> StoreResult<Option<i64>>;
    fn number(&self, column: &str) -> StoreResult<Option<f64>>;
    /// A boolean expression's result: PostgreSQL's `bool`, SQLite's 0 or 1.
    fn flag(&self, column: &str) -> StoreResult<bool>;

    fn required_text(&self, column: &str) -> StoreResult<String> {
        self.text(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("{column} is NULL")))
    }

    fn required_integer(&self, column: &str) -> StoreResult<i64> {
        self.integer(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("{column} is NULL")))
    }
}

impl ResultRow for QueryResult {
    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get("", column)?)
    }

    fn integer(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get("", column)?)
    }

    fn number(&self, column: &str) -> StoreResult<Option<f64>> {
        Ok(self.try_get("", column)?)
    }

    fn flag(&self, column: &str) -> StoreResult<bool> {
        match self.try_get::<bool>("", column) {
            Ok(b) => Ok(b),
            Err(_) => Ok(self.try_get::<i64>("", column)? != 0),
        }
    }
}

pub struct DirectRow<'stmt, 'row>(&'row rusqlite::Row<'stmt>);

impl ResultRow for DirectRow<'_, '_> {
    fn text(&self, column: &str) -> StoreResult<Option<String>> {
        self.0.get(column).map_err(read_error)
    }

    fn integer(&self, column: &str) -> StoreResult<Option<i64>> {
        self.0.get(column).map_err(read_error)
    }

    fn number(&self, column: &str) -> StoreResult<Option<f64>> {
        self.0.get(column).map_err(read_error)
    }

    fn flag(&self, column: &str) -> StoreResult<bool> {
        Ok(self.0.get::<_, Option<i64>>(column).map_err(read_error)?.unwrap_or(0) != 0)
    }
}

/// A bound value, as sqlx would bind it for SQLite.
fn bind(value: &DbValue) -> StoreResult<SqlValue> {
    Ok(match value {
        DbValue::String(Some(s)) => SqlValue::Text(s.clone()),
        DbValue::Bool(Some(b)) => SqlValue::Integer(i64::from(*b)),
        DbValue::Int(Some(n)) => SqlValue::Integer(i64::from(*n)),
        DbValue::BigInt(Some(n)) => SqlValue::Integer(*n),
        DbValue::Unsigned(Some(n)) => SqlValue::Integer(i64::from(*n)),
        DbValue::BigUnsigned(Some(n)) => SqlValue::Integer(
            i64::try_from(*n).map_err(|_| StoreError::Unsupported(format!("integer {n} out of range")))?,
        ),
        DbValue::Double(Some(f)) => SqlValue::Real(*f),
        DbValue::String(None)
        | DbValue::Bool(None)
        | DbValue::Int(None)
        | DbValue::BigInt(None)
        | DbValue::Unsigned(None)
        | DbValue::BigUnsigned(None)
        | DbValue::Double(None) => SqlValue::Null,
        other => return Err(StoreError::Unsupported(format!("direct read of a {other:?} parameter"))),
    })
}

/// SQLITE_BUSY and SQLITE_LOCKED are contention, as on the sqlx path.
fn read_error(e: rusqlite::Error) -> StoreError {
    let contention = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    let err = DbErr::Custom(format!("SQLite read: {e}"));
    if contention {
        StoreError::Contention(err)
    } else {
        StoreError::Db(err)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    #[test]
    fn file_urls_get_direct_reads_and_memory_databases_do_not() {
        let path = |url: &str| DirectReads::for_url(url).map(|d| d.path);
        assert_eq!(
            path("sqlite:///var/lib/scimd/scimd.db"),
            Some(PathBuf::from("/var/lib/scimd/scimd.db"))
        );
        assert_eq!(
            path("sqlite://./data/scimd.db?mode=rwc"),
            Some(PathBuf::from("./data/scimd.db"))
        );
        assert_eq!(path("sqlite:scimd.db"), Some(PathBuf::from("scimd.db")));
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("sqlite://shared?mode=memory&cache=shared"), None);
        assert_eq!(path("postgres://postgres@127.0.0.1/test"), None);
    }

    /// Direct reads on a new SQLite file set up by `setup`, in a temporary
    /// directory the test removes.
    fn direct_reads_on(setup: &str) -> (PathBuf, DirectReads) {
        let dir = std::env::temp_dir().join(format!("scimd-direct-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("t.db");
        // As `Store::connect` does before SQLite's first connection.
        crate::store::sqlite_memory::configure();
        Connection::open(&file)
            .expect("open")
            .execute_batch(setup)
            .expect("setup");
        let direct = DirectReads::for_url(&format!("sqlite://{}", file.display())).expect("file url");
        (dir, direct)
    }

    #[test]
    fn rows_decode_by_column_name_and_parameters_bind_as_sqlx_binds_them() {
        let (dir, direct) = direct_reads_on(
            "CREATE TABLE t (name TEXT, n INTEGER, x REAL); INSERT INTO t VALUES ('a', 1, 0.5), (NULL, 2, NULL);",
        );
        let stmt = Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            "SELECT name, n, x, n = 1 AS first FROM t WHERE n >= ? AND ? ORDER BY n",
            [DbValue::BigInt(Some(1)), DbValue::Bool(Some(true))],
        );
        let rows = direct
            .query(&stmt, |row| {
                Ok((
                    row.text("name")?,
                    row.required_integer("n")?,
                    row.number("x")?,
                    row.flag("first")?,
                ))
            })
            .expect("query");
        assert_eq!(
            rows,
            vec![(Some("a".into()), 1, Some(0.5), true), (None, 2, None, false)]
        );
        // Reads only: the connection refuses writes.
        let write = Statement::from_string(sea_orm::DbBackend::Sqlite, "DELETE FROM t");
        assert!(matches!(direct.query(&write, |_| Ok(())), Err(StoreError::Db(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cached_statement_with_a_bound_limit_is_not_prepared_again() {
        let (dir, direct) =
            direct_reads_on("CREATE TABLE t (n INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);");
        let sql = "SELECT n FROM t ORDER BY n LIMIT ? OFFSET ?";
        for (limit, offset, expected) in [(2, 0, vec![1, 2]), (2, 1, vec![2, 3]), (1, 2, vec![3])] {
            let page = Statement::from_sql_and_values(
                sea_orm::DbBackend::Sqlite,
                sql,
                [DbValue::BigInt(Some(limit)), DbValue::BigInt(Some(offset))],
            );
            let rows = direct.query(&page, |row| row.required_integer("n")).expect("query");
            assert_eq!(rows, expected);
        }
        // Three runs on one connection's cached statement, no re-preparation.
        let conn = direct.connection().expect("connection");
        let cached = conn.prepare_cached(sql).expect("cached");
        assert_eq!(cached.get_status(StatementStatus::RePrepare), 0);
        drop(cached);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
