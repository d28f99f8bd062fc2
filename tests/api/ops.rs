//! Operations: liveness, readiness, Prometheus metrics and request IDs.

use std::collections::{BTreeMap, HashSet};

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, USER_SCHEMA, spawn_app};

/// One sample of the Prometheus text format: metric name, labels, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line: {line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("sample value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("labels: {line}"))),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("label: {line}"));
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value,
            }
        })
        .collect()
}

async fn metrics(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("text")
}

/// The request counter for one route, method and status (any status when
/// `None`); 0 when absent.
fn request_count(samples: &[Sample], route: &str, method: &str, status: Option<&str>) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == "scimd_http_requests_total")
        .filter(|s| {
            s.labels.get("route").map(String::as_str) == Some(route)
                && s.labels.get("method").map(String::as_str) == Some(method)
                && status.is_none_or(|status| s.labels.get("status").map(String::as_str) == Some(status))
        })
        .map(|s| s.value)
        .sum()
}

fn request_id(response: &Response) -> String {
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{} {} has no X-Request-Id", response.status(), response.url()))
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(!id.trim().is_empty(), "X-Request-Id is not empty");
    id
}

#[tokio::test]
async fn healthz_returns_200_without_credentials() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_returns_200_while_the_database_is_reachable() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_never_by_raw_id() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let user_id = user["id"].as_str().expect("id");
    for _ in 0..2 {
        assert_eq!(app.get(&format!("/scim/v2/Users/{user_id}")).await.status(), 200);
    }
    let missing = "00000000-0000-0000-0000-00000000abcd";
    assert_eq!(app.get(&format!("/scim/v2/Users/{missing}")).await.status(), 404);
    // Its status is the routing's business (see groups.rs); here only its label counts.
    app.get(&format!("/t/default/scim/v2/Users/{user_id}")).await;

    let text = metrics(&app).await;
    let samples = parse_samples(&text);
    assert!(
        request_count(&samples, "/scim/v2/Users/{id}", "GET", Some("200")) >= 2.0,
        "{text}"
    );
    assert!(
        request_count(&samples, "/scim/v2/Users/{id}", "GET", Some("404")) >= 1.0,
        "{text}"
    );
    assert!(
        request_count(&samples, "/scim/v2/Users", "POST", Some("201")) >= 1.0,
        "{text}"
    );
    assert!(
        request_count(&samples, "/t/{tenant}/scim/v2/Users/{id}", "GET", None) >= 1.0,
        "{text}"
    );
    assert!(
        !text.contains(user_id) && !text.contains(missing),
        "no raw id in any label:\n{text}"
    );
    assert!(
        !text.contains("/t/default/"),
        "no raw tenant name in any label:\n{text}"
    );
    let histogram = samples.iter().find(|s| {
        s.name == "scimd_http_request_duration_seconds_count"
            && s.labels.get("route").map(String::as_str) == Some("/scim/v2/Users/{id}")
    });
    assert!(
        histogram.is_some_and(|s| s.value >= 3.0),
        "latency histogram by route:\n{text}"
    );
}

#[tokio::test]
async fn metrics_do_not_label_unknown_paths_by_their_raw_path() {
    let app = spawn_app().await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    for path in [
        format!("/no-such-{marker}"),
        format!("/scim/v2/Nope-{marker}"),
        format!("/t/{marker}/scim/v2/X"),
    ] {
        let status = app.get(&path).await.status().as_u16();
        assert!(status == 404 || status == 401, "{path}: {status}");
    }
    let text = metrics(&app).await;
    assert!(
        !text.contains(&marker),
        "unmatched paths would explode the label set:\n{text}"
    );
    assert!(text.contains("scimd_http_requests_total"), "{text}");
}

#[tokio::test]
async fn every_response_carries_a_distinct_x_request_id() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/scim/v2/Users",
            &json!({ "schemas": [USER_SCHEMA], "userName": "bjensen" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let mut ids = vec![request_id(&created)];
    let user: Value = created.json().await.expect("json");
    let path = format!("/scim/v2/Users/{}", user["id"].as_str().expect("id"));
    let responses = [
        app.get(&path).await,
        app.get("/scim/v2/Users/00000000-0000-0000-0000-000000000000").await,
        app.client.get(app.url("/scim/v2/Users")).send().await.expect("request"),
        app.send(Method::POST, &path, &json!({})).await,
        app.post(
            "/scim/v2/Users",
            &json!({ "schemas": [USER_SCHEMA], "userName": "x".repeat(70 * 1024) }),
        )
        .await,
        app.request(Method::POST, "/scim/v2/Users")
            .body("{")
            .send()
            .await
            .expect("request"),
        app.client.get(app.url("/healthz")).send().await.expect("request"),
        app.client.get(app.url("/readyz")).send().await.expect("request"),
        app.client.get(app.url("/metrics")).send().await.expect("request"),
        app.client
            .get(app.url("/scim/v2/ServiceProviderConfig"))
            .send()
            .await
            .expect("request"),
        app.client.get(app.url("/no-such-path")).send().await.expect("request"),
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 404, 401, 405, 413, 400, 200, 200, 200, 200, 404]);
    ids.extend(responses.iter().map(request_id));
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "each request has its own ID: {ids:?}");
}

/// SQLite's WAL is copied back by a PASSIVE checkpoint on a reader
/// connection while the server keeps writing; what it copied stays readable.
#[tokio::test]
async fn a_checkpoint_beside_the_server_copies_the_wal_back_and_loses_nothing() {
    let app = spawn_app().await;
    let store = app.store().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let user = app.create_user(&format!("wal{i}@example.com")).await;
        ids.push(user["id"].as_str().expect("id").to_string());
    }
    let (frames, copied) = store.checkpoint().await.expect("checkpoint");
    if store.backend() == sea_orm::DbBackend::Sqlite {
        assert_eq!(copied, frames, "an idle WAL is copied back whole");
    } else {
        assert_eq!((frames, copied), (0, 0), "PostgreSQL has no WAL of ours to checkpoint");
    }
    for id in ids {
        assert_eq!(app.get(&format!("/scim/v2/Users/{id}")).await.status(), 200);
    }
}

/// SQLite allocates from the server's allocator (mimalloc) and keeps no
/// memory statistics (`scimd::store::sqlite_memory`). On PostgreSQL the
/// server opens no SQLite; the explicit call configures it the same way.
#[tokio::test]
#[expect(unsafe_code, reason = "allocates and frees one block through SQLite's C API")]
async fn sqlite_allocates_from_the_servers_allocator_and_keeps_no_statistics() {
    let _app = spawn_app().await;
    scimd::store::sqlite_memory::configure();
    // SAFETY: a block SQLite allocates is freed by SQLite, once; the other
    // calls read counters or a pointer's owner.
    unsafe {
        let counted_before = rusqlite::ffi::sqlite3_memory_used();
        let block = rusqlite::ffi::sqlite3_malloc(1 << 20);
        assert!(!block.is_null());
        assert!(
            libmimalloc_sys::mi_is_in_heap_region(block.cast_const()),
            "SQLite's block is not mimalloc's"
        );
        assert_eq!(
            rusqlite::ffi::sqlite3_memory_used(),
            counted_before,
            "SQLite counted its allocation"
        );
        rusqlite::ffi::sqlite3_free(block);
    }
}

/// A pooled PostgreSQL connection that the server ended while it sat idle
/// is tested and replaced before a request gets it (sqlx's test runs only
/// on connections idle past `store`'s `PING_CONNECTIONS_IDLE_FOR`, 500 ms):
/// after the database ends every session scimd holds, requests still
/// answer 200. SQLite has no server to end sessions: there the test stops
/// after its first requests.
#[tokio::test]
async fn postgres_connections_ended_while_idle_are_replaced_before_use() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let app = spawn_app().await;
    let user = app.create_user("idle-connections").await;
    let id = user["id"].as_str().expect("id");
    let path = format!("/scim/v2/Users/{id}");
    let statuses = |n: usize| {
        let path = path.clone();
        let app = &app;
        async move {
            let answers = futures_util::future::join_all((0..n).map(|_| app.get(&path))).await;
            answers.iter().map(|r| r.status().as_u16()).collect::<Vec<_>>()
        }
    };
    // Several pooled connections in use at once.
    assert!(statuses(16).await.iter().all(|s| *s == 200));
    if !app.database_url.starts_with("postgres") {
        return;
    }
    let admin = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .expect("connect");
    let ended = admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid)) AS ended FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .expect("terminate")
        .expect("a row")
        .try_get::<i64>("", "ended")
        .expect("count");
    assert!(ended >= 2, "scimd held {ended} sessions");
    admin.close().await.expect("close");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let after = statuses(16).await;
    assert!(after.iter().all(|s| *s == 200), "{after:?}");
}
