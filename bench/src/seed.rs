//! Seeding a target through its public API: users `user<i>@example.com`,
//! one spare user per connection for the member scenarios, ten groups of ten
//! members, and (scimd only) the big group. scimd is seeded through Bulk,
//! 1,000 creates a request, a few requests at a time; the peers through
//! POST /Users.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::api::{Api, add_members, bulk_create, bulk_created_ids, group_document, id_of, user_document};

/// Operations per Bulk request and members per PATCH while seeding.
const CHUNK: usize = 1000;

/// What was seeded, by id.
pub struct Directory {
    /// `user_ids[i]` is `user<i>@example.com`.
    pub user_ids: Vec<String>,
    /// One user per connection, in no group, for the member scenarios.
    pub spare_ids: Vec<String>,
    /// A group of ten members.
    pub small_group: String,
    pub big_group: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct SeedTimes {
    pub users: usize,
    pub users_seconds: f64,
    pub users_per_sec: f64,
    pub big_group_members: Option<usize>,
    pub big_group_seconds: Option<f64>,
    /// Checks that could not be made (the run goes on).
    pub warnings: Vec<String>,
}

/// Creates the users, the spare users and the small groups.
pub async fn seed_directory(
    api: &Api,
    bulk: bool,
    users: usize,
    spares: usize,
    groups: usize,
    parallel: usize,
    times: &mut SeedTimes,
) -> anyhow::Result<Directory> {
    let started = Instant::now();
    let names: Vec<(String, usize)> = (0..users)
        .map(|i| (format!("user{i}@example.com"), i))
        .chain((0..spares).map(|t| (format!("spare{t}@example.com"), users + t)))
        .collect();
    let mut ids = create_users(api, bulk, names, parallel).await?;
    let spare_ids = ids.split_off(users);
    times.users = users + spares;
    times.users_seconds = started.elapsed().as_secs_f64();
    times.users_per_sec = times.users as f64 / times.users_seconds.max(1e-9);

    let mut group_ids = Vec::new();
    for g in 0..groups {
        let members = &ids[(g * 10).min(users)..(g * 10 + 10).min(users)];
        let created = api
            .expect_json(
                "creating a group",
                api.send_json(Method::POST, "/Groups", &group_document(&format!("group-{g}"), members)),
                &[201],
            )
            .await?;
        group_ids.push(id_of(&created)?);
    }
    Ok(Directory {
        user_ids: ids,
        spare_ids,
        small_group: group_ids.into_iter().next().context("no group was seeded")?,
        big_group: None,
    })
}

/// Creates the big group with `members` members (scimd only): the first
/// users, then `member<j>@example.com` users created for the rest; members are
/// added by PATCH, 1,000 a request.
pub async fn seed_big_group(
    api: &Api,
    directory: &mut Directory,
    members: usize,
    parallel: usize,
    times: &mut SeedTimes,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut member_ids: Vec<String> = directory.user_ids.iter().take(members).cloned().collect();
    if members > member_ids.len() {
        let names = (0..members - member_ids.len())
            .map(|j| (format!("member{j}@example.com"), j))
            .collect();
        member_ids.extend(create_users(api, true, names, parallel).await?);
    }
    let group = api
        .expect_json(
            "creating the big group",
            api.send_json(Method::POST, "/Groups", &group_document("big-group", &[])),
            &[201],
        )
        .await?;
    let group = id_of(&group)?;
    let path = format!("/Groups/{group}?excludedAttributes=members");
    for chunk in member_ids.chunks(CHUNK) {
        api.expect_json(
            "adding members to the big group",
            api.send_json(Method::PATCH, &path, &add_members(chunk)),
            &[200],
        )
        .await?;
    }
    // Every PATCH answered 200; the database's count confirms it. The count
    // is a sanity check, not a scenario: a slow count warns, a wrong one fails.
    let filter = format!("groups.value eq \"{group}\"");
    let count = api
        .expect_json(
            "counting the big group's members",
            api.request(Method::GET, "/Users")
                .query(&[("filter", filter.as_str()), ("count", "0")])
                .timeout(Duration::from_secs(60)),
            &[200],
        )
        .await;
    match count {
        Ok(count) => {
            let total = count.get("totalResults").and_then(Value::as_u64).unwrap_or(0);
            anyhow::ensure!(
                total == members as u64,
                "the big group has {total} members, {members} were added"
            );
        }
        Err(error) => {
            let message = format!("could not count the big group's members (members were added): {error:#}");
            eprintln!("scimd-bench: warning: {message}");
            times.warnings.push(message);
        }
    }
    directory.big_group = Some(group);
    times.big_group_members = Some(members);
    times.big_group_seconds = Some(started.elapsed().as_secs_f64());
    Ok(())
}

/// Creates users named `names` (with their number for the other
/// attributes), `parallel` requests at a time; returns their ids in order.
pub async fn create_users(
    api: &Api,
    bulk: bool,
    names: Vec<(String, usize)>,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let per_task = if bulk { CHUNK } else { 100 };
    let parallel = if bulk { parallel } else { parallel * 2 };
    let chunks: Arc<Vec<Vec<(String, usize)>>> = Arc::new(names.chunks(per_task).map(<[_]>::to_vec).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..parallel.max(1) {
        let (api, chunks, next) = (api.clone(), chunks.clone(), next.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(index) else {
                    return anyhow::Ok(done);
                };
                let documents: Vec<Value> = chunk.iter().map(|(name, n)| user_document(name, *n)).collect();
                let ids = if bulk {
                    let response = api
                        .expect_json(
                            "seeding users through Bulk",
                            api.send_json(Method::POST, "/Bulk", &bulk_create(&documents)),
                            &[200],
                        )
                        .await?;
                    bulk_created_ids(&response, documents.len())?
                } else {
                    let mut ids = Vec::with_capacity(documents.len());
                    for document in &documents {
                        let created = api
                            .expect_json(
                                "seeding a user",
                                api.send_json(Method::POST, "/Users", document),
                                &[201],
                            )
                            .await?;
                        ids.push(id_of(&created)?);
                    }
                    ids
                };
                done.push((index, ids));
                let tenth = chunks.len() / 10;
                if chunks.len() >= 20 && (index + 1) % tenth == 0 {
                    eprintln!(
                        "scimd-bench:   … {}0% of {} users",
                        (index + 1) / tenth,
                        chunks.iter().map(Vec::len).sum::<usize>()
                    );
                }
            }
        });
    }
    let mut by_chunk = vec![Vec::new(); chunks.len()];
    while let Some(joined) = tasks.join_next().await {
        for (index, ids) in joined.context("a seeding task panicked")?? {
            by_chunk[index] = ids;
        }
    }
    Ok(by_chunk.into_iter().flatten().collect())
}
