//! Fixed planner statistics on SQLite, written by hand into `sqlite_stat1`
//! as SQLite documents for fixed plans (<https://sqlite.org/lang_analyze.html>,
//! "Fixed Results of ANALYZE"); migration 8 says why scimd needs them.
//! Nothing happens on other backends.
//!
//! Each row is `(table, index, stat)`: the index's rows, then the average
//! rows per distinct value of its first one, two, … columns. They are
//! constants of the migrations, so they are written into the SQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Writes `rows`, replacing any earlier statistics of their indexes.
/// `ANALYZE sqlite_schema` creates the table first, and afterwards makes
/// this connection load the rows (others load them when they next read
/// the schema).
pub(crate) async fn write(manager: &SchemaManager<'_>, rows: &[(&str, &str, &str)]) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    db.execute_unprepared("ANALYZE sqlite_schema").await?;
    for (table, index, stat) in rows {
        db.execute_unprepared(&format!(
            "DELETE FROM sqlite_stat1 WHERE tbl = '{table}' AND idx = '{index}'; \
             INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('{table}', '{index}', '{stat}')"
        ))
        .await?;
    }
    db.execute_unprepared("ANALYZE sqlite_schema").await?;
    Ok(())
}

/// Removes the statistics [`write`] wrote for `rows`.
pub(crate) async fn remove(manager: &SchemaManager<'_>, rows: &[(&str, &str, &str)]) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    for (table, index, _) in rows {
        db.execute_unprepared(&format!(
            "DELETE FROM sqlite_stat1 WHERE tbl = '{table}' AND idx = '{index}'"
        ))
        .await?;
    }
    db.execute_unprepared("ANALYZE sqlite_schema").await?;
    Ok(())
}
