//! SQLite WAL checkpoints, off the write path.
//!
//! By default the connection whose commit takes the WAL past 1,000 pages
//! copies the WAL back into the database file, and fsyncs it, before that
//! commit returns. With one writer every write queued behind that copy; in
//! Bulk's profile it was an eighth of the CPU. Here a task checkpoints from
//! a reader connection every [`INTERVAL`] in PASSIVE mode, which never waits
//! for the writer or for readers, so writes go on beside it; a page that
//! many commits changed meanwhile is copied back once. The writer still
//! checkpoints itself past [`WRITER_CHECKPOINT_PAGES`]: under sustained
//! writes the WAL is never wholly copied back, and only a writer's
//! checkpoint lets it start over, by when little is left to copy.
//!
//! Measured with wrk (32 connections, 10,000 users): POST /Users ~1,050 →
//! ~1,600 req/s, Bulk creates ~1,100 → ~1,550/s; the saturated POST p99
//! rose from ~60 to ~120 ms.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Store, StoreResult};

pub const INTERVAL: Duration = Duration::from_millis(250);
/// `wal_autocheckpoint` of every SQLite connection: 10,000 pages, 40 MB.
pub const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

impl Store {
    /// One PASSIVE checkpoint on a reader connection: copies back what it
    /// can without waiting. Returns the WAL's frames and those copied back.
    /// Does nothing on PostgreSQL.
    pub async fn checkpoint(&self) -> StoreResult<(i64, i64)> {
        if self.backend() != DbBackend::Sqlite {
            return Ok((0, 0));
        }
        let row = self
            .pools
            .1
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA wal_checkpoint(PASSIVE)",
            ))
            .await?;
        match row {
            Some(row) => Ok((row.try_get_by_index(1)?, row.try_get_by_index(2)?)),
            None => Ok((0, 0)),
        }
    }

    /// Runs [`Store::checkpoint`] every [`INTERVAL`] (on SQLite). A failure
    /// is logged and the next tick tries again: the writer's own
    /// checkpoints still bound the WAL meanwhile.
    pub fn spawn_checkpoint_upkeep(&self) {
        if self.backend() != DbBackend::Sqlite {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying next tick");
                }
            }
        });
    }
}
