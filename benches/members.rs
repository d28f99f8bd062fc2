//! Member changes on small and huge groups, a Bulk request of 1,000
//! creates, and the cost of key verification, measured over real HTTP
//! against a real server.
//!
//! `cargo bench --bench members` (SQLite in a temp dir), or with
//! `SCIMD_BENCH_DATABASE_URL=postgres://…` for PostgreSQL (the database
//! must exist and be empty). `SCIMD_BENCH_MEMBERS` sets the large group's
//! size (default 100000). Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use scimd::config::{LogFormat, Settings};
use scimd::scim::ResourceKind;
use scimd::startup::Application;
use scimd::store::Store;
use scimd::store::audit::AuditContext;
use scimd::store::resources::{MemberRef, ResourceWrite};
use serde_json::{Map, Value, json};

const SAMPLES: usize = 50;

fn settings(dir: &std::path::Path, database_url: String) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        database_url,
        base_url: String::new(),
        base_url_is_default: true,
        log_format: LogFormat::Json,
        max_body_bytes: 1 << 20,
        key_default_lifetime_days: 90,
        key_max_lifetime_days: 365,
        trusted_proxies: Vec::new(),
        flush_interval: Duration::from_secs(30),
    }
}

fn user_write(name: &str) -> ResourceWrite {
    let mut document = Map::new();
    document.insert("schemas".into(), json!(["urn:ietf:params:scim:schemas:core:2.0:User"]));
    document.insert("userName".into(), json!(name));
    ResourceWrite {
        document,
        index: Vec::new(),
        password_hash: None,
        members: None,
    }
}

/// Creates `n` users straight through the store, a thousand per transaction
/// (seeding, not measured).
async fn seed_users(store: &Store, audit: &AuditContext, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = store.batch().await.expect("batch");
        for i in chunk {
            let stored = batch
                .create_resource(audit, ResourceKind::User, user_write(&format!("{prefix}{i}")))
                .await
                .expect("seed user");
            ids.push(stored.id);
        }
        batch.commit_batch().await.expect("commit");
    }
    ids
}

async fn seed_group(store: &Store, audit: &AuditContext, name: &str, members: &[String]) -> String {
    let mut document = Map::new();
    document.insert("schemas".into(), json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]));
    document.insert("displayName".into(), json!(name));
    let members = members
        .iter()
        .map(|id| MemberRef {
            id: id.clone(),
            kind: Some(ResourceKind::User),
        })
        .collect();
    let write = ResourceWrite {
        document,
        index: Vec::new(),
        password_hash: None,
        members: Some(members),
    };
    store
        .create_resource(audit, ResourceKind::Group, write)
        .await
        .expect("seed group")
        .id
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn report(what: &str, samples: &mut [Duration]) {
    let p50 = percentile(samples, 0.5);
    let p99 = percentile(samples, 0.99);
    println!(
        "{what:<58} p50 {:>8.2} ms   p99 {:>8.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

fn patch_body(op: &str, member: &str) -> Value {
    let operation = if op == "add" {
        json!({ "op": "add", "path": "members", "value": [{ "value": member }] })
    } else {
        json!({ "op": "remove", "path": format!("members[value eq \"{member}\"]") })
    };
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [operation] })
}

async fn member_changes(client: &reqwest::Client, base: &str, key: &str, group: &str, spare: &[String], label: &str) {
    let url = format!("{base}/scim/v2/Groups/{group}?excludedAttributes=members");
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for member in spare.iter().take(SAMPLES) {
        for (op, samples) in [("add", &mut adds), ("remove", &mut removes)] {
            let started = Instant::now();
            let response = client
                .patch(&url)
                .bearer_auth(key)
                .header("Content-Type", "application/scim+json")
                .body(patch_body(op, member).to_string())
                .send()
                .await
                .expect("request");
            assert_eq!(
                response.status(),
                200,
                "{op} {}",
                response.text().await.unwrap_or_default()
            );
            samples.push(started.elapsed());
        }
    }
    report(&format!("PATCH add one member, group of {label}"), &mut adds);
    report(&format!("PATCH remove one member, group of {label}"), &mut removes);
}

/// One BulkRequest of 1,000 user creates, timed end to end.
async fn bulk_creates(client: &reqwest::Client, base: &str, key: &str) {
    let operations: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "method": "POST",
                "path": "/Users",
                "bulkId": format!("b{i}"),
                "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("bulk{i:04}@example.com"),
                    "name": { "givenName": "Bulk", "familyName": format!("User {i}") },
                    "emails": [{ "value": format!("bulk{i:04}@example.com"), "type": "work", "primary": true }],
                    "active": true,
                },
            })
        })
        .collect();
    let body = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": operations });
    let started = Instant::now();
    let response = client
        .post(format!("{base}/scim/v2/Bulk"))
        .bearer_auth(key)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    let elapsed = started.elapsed();
    let created = answer["Operations"]
        .as_array()
        .map_or(0, |ops| ops.iter().filter(|o| o["status"] == "201").count());
    assert_eq!(created, 1000, "every create succeeded");
    println!(
        "{:<58} {:>8.2} ms   ({:.2} ms per operation)",
        "POST /Bulk with 1,000 user creates",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64()
    );
}

async fn sequential_gets(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    expected: u16,
    n: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut request = client.get(url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let started = Instant::now();
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), expected);
        let _ = response.bytes().await;
        samples.push(started.elapsed());
    }
    samples
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = std::env::var("SCIMD_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/scimd.db", dir.path().display()));
    let large: usize = std::env::var("SCIMD_BENCH_MEMBERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let backend = if database_url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "scimd member and auth benchmark on {backend}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let app = Application::build(settings(dir.path(), database_url.clone()))
        .await
        .expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let key_file = std::fs::read_dir(dir.path())
        .expect("data dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("APIKey-"))
        .expect("bootstrap key");
    let key = std::fs::read_to_string(key_file.path())
        .expect("key")
        .trim()
        .to_string();

    let store = Store::connect(&database_url).await.expect("store");
    let tenant = store
        .tenant_by_name("default")
        .await
        .expect("tenant")
        .expect("default tenant");
    let audit = AuditContext::cli(&tenant.id);

    let seeding = Instant::now();
    let members = seed_users(&store, &audit, "member", large).await;
    let spare = seed_users(&store, &audit, "spare", SAMPLES).await;
    let small_group = seed_group(&store, &audit, "small", &members[..10]).await;
    let large_group = seed_group(&store, &audit, "large", &members).await;
    println!(
        "seeded {} users and groups of 10 and {large} in {:.1} s",
        large + SAMPLES,
        seeding.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::new();
    bulk_creates(&client, &base, &key).await;
    member_changes(&client, &base, &key, &small_group, &spare, "10").await;
    member_changes(&client, &base, &key, &large_group, &spare, &large.to_string()).await;

    // Key verification: two trivial handlers, one behind a key (/Me verifies
    // the key, then answers 501), one open (/ServiceProviderConfig).
    let me = format!("{base}/scim/v2/Me");
    let spc = format!("{base}/scim/v2/ServiceProviderConfig");
    sequential_gets(&client, &me, Some(&key), 501, 200).await;
    let mut authed = sequential_gets(&client, &me, Some(&key), 501, 2000).await;
    let mut open = sequential_gets(&client, &spc, None, 200, 2000).await;
    report("GET /Me with a key (cached verification, then 501)", &mut authed);
    report("GET /ServiceProviderConfig without a key", &mut open);
    let user_url = format!("{base}/scim/v2/Users/{}", members[0]);
    let mut user = sequential_gets(&client, &user_url, Some(&key), 200, 2000).await;
    report("GET /Users/{id} with a key", &mut user);
    let started = Instant::now();
    scimd::auth::hashing::hash_blocking("one argon2id computation").expect("hash");
    println!(
        "{:<58} {:>8.2} ms",
        "one argon2id hash (what the cache avoids)",
        started.elapsed().as_secs_f64() * 1e3
    );
}
