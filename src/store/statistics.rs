//! Planner statistics on PostgreSQL.
//!
//! PostgreSQL picks indexes from table statistics that autovacuum gathers.
//! Where autovacuum is off or has not caught up (a first sync that just
//! created 100,000 users), a table without statistics gets default guesses
//! under which `userName eq "…"` was planned as a filtered pass over every
//! user of the tenant (18 ms at 10,000 users instead of 0.05 ms by
//! `ux_scim_resources_user_name`). So scimd checks, now and then, whether its
//! busy tables changed much since they were last analysed, and analyses those
//! that did, as autovacuum would. SQLite needs none of this: its planner
//! prefers a unique index for an equality without statistics.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Store, StoreResult};

/// The tables whose plans depend on their size. Fixed names: they are
/// pasted into `ANALYZE`, which takes no parameters.
const TABLES: [&str; 4] = ["scim_resources", "scim_values", "group_members", "audit_events"];

/// How often to look; one cheap catalogue query per instance.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);

impl Store {
    /// Analyses each of [`TABLES`] that changed by more than a tenth of its
    /// rows (and at least 500) since its last analysis; returns their names.
    /// Does nothing on SQLite.
    pub async fn refresh_statistics(&self) -> StoreResult<Vec<&'static str>> {
        if self.backend() != DbBackend::Postgres {
            return Ok(Vec::new());
        }
        let stale = self
            .pools
            .0
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT relname::text AS name FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() \
                   AND n_mod_since_analyze >= 500 \
                   AND n_mod_since_analyze > n_live_tup / 10",
            ))
            .await?;
        let mut analysed = Vec::new();
        for row in stale {
            let name: String = row.try_get("", "name")?;
            if let Some(table) = TABLES.iter().find(|t| **t == name) {
                self.pools
                    .0
                    .execute_raw(Statement::from_string(DbBackend::Postgres, format!("ANALYZE {table}")))
                    .await?;
                analysed.push(*table);
            }
        }
        Ok(analysed)
    }

    /// Runs [`Store::refresh_statistics`] every [`CHECK_INTERVAL`] (on
    /// PostgreSQL). A failure (say, a database role that may not analyse
    /// the tables) is logged once and stops the task.
    pub fn spawn_statistics_upkeep(&self) {
        if self.backend() != DbBackend::Postgres {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_INTERVAL);
            loop {
                tick.tick().await;
                match store.refresh_statistics().await {
                    Ok(tables) if !tables.is_empty() => tracing::debug!(?tables, "planner statistics refreshed"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot refresh planner statistics; leaving it to autovacuum");
                        return;
                    }
                }
            }
        });
    }
}
