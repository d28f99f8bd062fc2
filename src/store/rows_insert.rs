//! Multi-row INSERTs written directly, for the statements every create
//! sends: its row, its values and its audit event.
//!
//! sea-query builds a statement from a tree of expressions and clones every
//! value into the statement it returns, so a create's documents and values
//! were copied twice before reaching the database. Those statements are
//! built on the writer's serial path (SQLite's group commit, a Bulk run),
//! where they were 6% of a saturated `POST /Users` profile's samples. Here
//! the SQL text is written once with its placeholders and the values are
//! moved in. The values are sea-orm's, bound as before.

use sea_orm::{DbBackend, Statement, Value};

/// An `INSERT INTO table (N columns) VALUES (…), (…)`, one row at a time.
pub(crate) struct RowsInsert<const N: usize> {
    backend: DbBackend,
    sql: String,
    values: Vec<Value>,
}

impl<const N: usize> RowsInsert<N> {
    /// `table` and `columns` are the caller's constants, pasted into the SQL.
    pub(crate) fn new(backend: DbBackend, table: &str, columns: [&str; N]) -> Self {
        let mut sql = format!("INSERT INTO \"{table}\" (");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('"');
            sql.push_str(column);
            sql.push('"');
        }
        sql.push_str(") VALUES ");
        RowsInsert {
            backend,
            sql,
            values: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, row: [Value; N]) {
        if !self.values.is_empty() {
            self.sql.push_str(", ");
        }
        self.sql.push('(');
        for i in 0..N {
            if i > 0 {
                self.sql.push_str(", ");
            }
            match self.backend {
                // Numbered from 1 in each statement, as sea-query numbers them.
                DbBackend::Postgres => {
                    self.sql.push('$');
                    self.sql.push_str(&(self.values.len() + i + 1).to_string());
                }
                _ => self.sql.push('?'),
            }
        }
        self.sql.push(')');
        self.values.extend(row);
    }

    pub(crate) fn build(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.sql, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_get_placeholders_in_the_backends_style_and_values_in_order() {
        for (backend, sql) in [
            (DbBackend::Sqlite, r#"INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?)"#),
            (
                DbBackend::Postgres,
                r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4)"#,
            ),
        ] {
            let mut insert = RowsInsert::new(backend, "t", ["a", "b"]);
            insert.row(["x".into(), 1i64.into()]);
            insert.row([Value::String(None), 2.5f64.into()]);
            let statement = insert.build();
            assert_eq!(statement.sql, sql);
            let values = statement.values.map(|v| v.0).unwrap_or_default();
            assert_eq!(
                values,
                vec![
                    Value::from("x"),
                    Value::from(1i64),
                    Value::String(None),
                    Value::from(2.5f64)
                ]
            );
        }
    }
}
