//! Group commit for SQLite's single writer.
//!
//! SQLite lets one connection write at a time. When every single write (a
//! POST, PUT, PATCH or DELETE) took that connection, ran and committed on its
//! own, the writer spent its time on commits, and idled between one request
//! releasing it and the next one's task waking up. Here one task does the
//! writing: it takes the first write waiting and the others queued behind it,
//! runs each in its own savepoint of one transaction (as a Bulk batch does),
//! commits once, and only then lets the requests answer. A write that fails
//! rolls back alone; if the commit fails, every write of the group fails with
//! it, so nothing is acknowledged that was not committed.
//!
//! User creates (the bulk of an IdP's first sync) come as data rather than
//! as a write to run: those queued next to each other are written together
//! as one unit of multi-row INSERTs ([`Store::create_resources_together`]),
//! one call to SQLite's thread for all of them. If that unit is refused (a
//! taken userName), it is undone and each runs alone, with its own answer.
//!
//! PostgreSQL writes concurrently and groups commits itself; it does not use this.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sea_orm::DbErr;
use tokio::sync::{mpsc, oneshot};

use super::audit::AuditContext;
use super::resources::{ResourceWrite, StoredResource};
use super::{Store, StoreError, StoreResult};
use crate::scim::ResourceKind;

/// Most writes one commit carries, and the longest a group stays open: a
/// bound on how long the first write of a group waits for the others.
const MAX_GROUP: usize = 64;
const MAX_GROUP_TIME: Duration = Duration::from_millis(20);
/// Writes that may queue before submitters wait for room.
const QUEUE: usize = 1024;

/// Called once the group a write ran in is committed (`Ok`) or not (`Err`).
type Delivery = Box<dyn FnOnce(Result<(), &str>) + Send>;
/// A write to run on the group's store; it yields how to deliver its outcome.
type Job = Box<dyn FnOnce(Store) -> BoxFuture<'static, Delivery> + Send>;

/// What waits in the queue.
enum Queued {
    Write(Job),
    /// Boxed: the queue holds many entries, most of them small.
    CreateUser(Box<UserCreate>),
}

/// A user to create, written together with the creates queued beside it.
struct UserCreate {
    audit: AuditContext,
    write: ResourceWrite,
    answer: oneshot::Sender<StoreResult<StoredResource>>,
}

/// The handle writes are submitted through. Cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Queued>,
}

impl GroupCommit {
    /// Starts the writing task on the current Tokio runtime. `store` must
    /// be on the connection pools (not a batch, not grouped itself).
    pub fn start(store: Store) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_groups(store, queue));
        GroupCommit { jobs }
    }

    /// Runs `write` on the store of the next group and answers once that
    /// group is committed. `write` gets a store whose reads see the group's
    /// earlier writes; it must do all its database work through it.
    pub async fn submit<T, F, Fut>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |store| {
            Box::pin(async move {
                let outcome = write(store).await;
                deliver(answer, outcome)
            })
        });
        self.send(Queued::Write(job)).await?;
        answered
            .await
            .unwrap_or_else(|_| Err(not_saved("the writer dropped the write")))
    }

    /// Creates a user (no members to check) in the next group, together
    /// with the user creates queued beside it; answers once the group is
    /// committed.
    pub async fn create_user(&self, audit: AuditContext, write: ResourceWrite) -> StoreResult<StoredResource> {
        let (answer, answered) = oneshot::channel();
        self.send(Queued::CreateUser(Box::new(UserCreate { audit, write, answer })))
            .await?;
        answered
            .await
            .unwrap_or_else(|_| Err(not_saved("the writer dropped the write")))
    }

    async fn send(&self, queued: Queued) -> StoreResult<()> {
        self.jobs
            .send(queued)
            .await
            .map_err(|_| not_saved("the writer has stopped"))
    }
}

fn not_saved(why: &str) -> StoreError {
    StoreError::Db(DbErr::Custom(format!("the write was not saved: {why}")))
}

/// The writing task: one group after another, until every handle is gone.
async fn write_groups(store: Store, mut queue: mpsc::Receiver<Queued>) {
    while let Some(first) = queue.recv().await {
        let batch = match store.batch().await {
            Ok(batch) => batch,
            Err(e) => {
                // Dropping a job answers it "not saved"; so do the ones queued with it.
                tracing::error!(error = %e, "group commit could not begin a transaction");
                drop(first);
                while queue.try_recv().is_ok() {}
                continue;
            }
        };
        let started = Instant::now();
        let mut deliveries: Vec<Delivery> = Vec::new();
        let mut creates: Vec<UserCreate> = Vec::new();
        let mut failed = false;
        let mut next = Some(first);
        while let Some(queued) = next.take() {
            match queued {
                Queued::CreateUser(create) => creates.push(*create),
                Queued::Write(job) => {
                    // Writes run in the order they came: the creates before this one first.
                    failed = !create_users(&batch, &mut creates, &mut deliveries).await;
                    if failed {
                        break;
                    }
                    match AssertUnwindSafe(job(batch.clone())).catch_unwind().await {
                        Ok(delivery) => deliveries.push(delivery),
                        Err(_) => {
                            // A panicking write may have left its savepoint open:
                            // undo the whole group rather than commit half of one.
                            tracing::error!("a write panicked; its group is rolled back");
                            failed = true;
                            break;
                        }
                    }
                }
            }
            if deliveries.len() + creates.len() < MAX_GROUP && started.elapsed() < MAX_GROUP_TIME {
                next = queue.try_recv().ok();
            }
        }
        if !failed {
            failed = !create_users(&batch, &mut creates, &mut deliveries).await;
        }
        let committed = if failed {
            drop(batch);
            Err("another write of its group failed unexpectedly".to_string())
        } else {
            batch.commit_batch().await.map_err(|e| {
                tracing::error!(error = %e, writes = deliveries.len(), "group commit failed");
                "the transaction could not be committed".to_string()
            })
        };
        for deliver in deliveries {
            deliver(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
        // Creates not run (their group failed before them) are answered
        // "not saved" as their senders are dropped.
    }
}

/// Writes the queued user creates on the group's store: together as one
/// unit, or if that is refused, one by one, each with its own outcome.
/// `false` if a create panicked (the group must be rolled back).
async fn create_users(batch: &Store, creates: &mut Vec<UserCreate>, deliveries: &mut Vec<Delivery>) -> bool {
    let creates = std::mem::take(creates);
    let together = match creates.len() {
        0 => return true,
        // Alone, the unit is the create itself.
        1 => None,
        _ => {
            let pairs: Vec<(&AuditContext, &ResourceWrite)> = creates.iter().map(|c| (&c.audit, &c.write)).collect();
            let written = AssertUnwindSafe(batch.create_resources_together(ResourceKind::User, &pairs))
                .catch_unwind()
                .await;
            match written {
                Ok(written) => Some(written),
                Err(_) => {
                    tracing::error!("a create panicked; its group is rolled back");
                    return false;
                }
            }
        }
    };
    match together {
        Some(Ok(created)) => {
            for (create, stored) in creates.into_iter().zip(created) {
                deliveries.push(deliver(create.answer, Ok(stored)));
            }
        }
        refused => {
            if let Some(Err(e)) = refused {
                tracing::debug!(error = %e, creates = creates.len(), "creates written together were refused; writing them one by one");
            }
            for UserCreate { audit, write, answer } in creates {
                let outcome = AssertUnwindSafe(batch.create_resource(&audit, ResourceKind::User, write))
                    .catch_unwind()
                    .await;
                match outcome {
                    Ok(outcome) => deliveries.push(deliver(answer, outcome)),
                    Err(_) => {
                        tracing::error!("a create panicked; its group is rolled back");
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// How a write's outcome is answered once its group is committed or not.
fn deliver<T: Send + 'static>(answer: oneshot::Sender<StoreResult<T>>, outcome: StoreResult<T>) -> Delivery {
    Box::new(move |committed: Result<(), &str>| {
        let outcome = match (outcome, committed) {
            // A write that failed changed nothing: its own error stands.
            (Err(e), _) => Err(e),
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(why)) => Err(not_saved(why)),
        };
        // The requester may have gone; the write stands regardless.
        let _ = answer.send(outcome);
    })
}
