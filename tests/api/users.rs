//! Users: create, read, replace, delete, list, ETags, uniqueness.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ENTERPRISE, USER_SCHEMA, assert_scim_error, spawn_app};

fn full_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": "ext-1",
        "userName": user_name,
        "name": { "givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III" },
        "displayName": "Babs Jensen",
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "active": true,
        "password": "t1meMa$heen",
        ENTERPRISE: { "employeeNumber": "701984", "department": "Tour Operations", "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" } }
    })
}

#[tokio::test]
async fn create_user_returns_201_with_location_etag_and_meta() {
    let app = spawn_app().await;
    let response = app.post("/scim/v2/Users", &full_user("bjensen")).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().expect("ascii").to_string();
    let etag = response.headers()["etag"].to_str().expect("ascii").to_string();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/scim+json")
    );
    let body: Value = response.json().await.expect("json");
    let id = body["id"].as_str().expect("id");
    assert_eq!(location, app.url(&format!("/scim/v2/Users/{id}")));
    assert_eq!(body["meta"]["location"], json!(location));
    assert_eq!(body["meta"]["version"], json!(etag));
    assert!(etag.starts_with("W/\""));
    assert_eq!(body["meta"]["resourceType"], "User");
    assert_eq!(body["meta"]["created"], body["meta"]["lastModified"]);
    assert_eq!(body["userName"], "bjensen");
    assert_eq!(body["name"]["familyName"], "Jensen");
    assert_eq!(body[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(body["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
    assert!(body.get("password").is_none(), "password is never returned");
}

#[tokio::test]
async fn new_resources_get_time_ordered_ids() {
    // UUIDv7, so creates append to the indexes keyed by id (docs/storage.md).
    let app = spawn_app().await;
    let first = app.create_user("first").await;
    let group = app.create_group("Later", &[]).await;
    let second = app.create_user("second").await;
    let ids: Vec<uuid::Uuid> = [&first, &group, &second]
        .iter()
        .map(|r| r["id"].as_str().expect("id").parse().expect("a UUID"))
        .collect();
    assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn get_user_returns_what_was_stored() {
    let app = spawn_app().await;
    let created: Value = app
        .post("/scim/v2/Users", &full_user("bjensen"))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let response = app.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(response.status(), 200);
    let fetched: Value = response.json().await.expect("json");
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn password_is_stored_as_an_argon2id_hash_and_never_returned() {
    let app = spawn_app().await;
    let created: Value = app
        .post("/scim/v2/Users", &full_user("bjensen"))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let store = app.store().await;
    let tenant = store.tenant_by_name("default").await.expect("q").expect("tenant");
    let hash = store
        .password_hash(&tenant.id, id)
        .await
        .expect("hash query")
        .expect("hash stored");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(scimd::auth::hashing::verify_blocking("t1meMa$heen", &hash));
    let listed = app.get("/scim/v2/Users").await.text().await.expect("text");
    assert!(!listed.contains("t1meMa$heen") && !listed.contains("argon2"));
}

#[tokio::test]
async fn get_unknown_user_returns_404_scim_error() {
    let app = spawn_app().await;
    let response = app.get("/scim/v2/Users/00000000-0000-0000-0000-000000000000").await;
    assert_scim_error(response, 404, None).await;
}

#[tokio::test]
async fn duplicate_user_name_in_any_case_returns_409_uniqueness() {
    let app = spawn_app().await;
    app.create_user("bjensen@example.com").await;
    let response = app
        .post(
            "/scim/v2/Users",
            &json!({ "schemas": [USER_SCHEMA], "userName": "BJensen@Example.COM" }),
        )
        .await;
    assert_scim_error(response, 409, Some("uniqueness")).await;
    let list: Value = app.get("/scim/v2/Users").await.json().await.expect("json");
    assert_eq!(list["totalResults"], 1, "nothing was persisted by the refused create");
}

#[tokio::test]
async fn concurrent_creates_of_one_user_name_let_exactly_one_succeed() {
    let app = spawn_app().await;
    let bodies: Vec<Value> = (0..8)
        .map(|i| {
            let name = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            json!({ "schemas": [USER_SCHEMA], "userName": name })
        })
        .collect();
    let attempts = bodies.iter().map(|body| app.post("/scim/v2/Users", body));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");
}

/// On SQLite concurrent writes commit in groups: one refused write must be
/// undone alone, and every acknowledged one must be there afterwards.
#[tokio::test]
async fn a_burst_of_concurrent_writes_keeps_every_acknowledged_one_and_nothing_refused() {
    let server = spawn_app().await;
    let app = &server;
    let victim = app.create_user("victim@example.com").await;
    let victim_path = format!("/scim/v2/Users/{}", victim["id"].as_str().expect("id"));
    // Every fifth create repeats the name before it in other case: refused.
    let names: Vec<String> = (0..40)
        .map(|i| match i % 5 {
            4 => format!("BURST{}@EXAMPLE.com", i - 1),
            _ => format!("burst{i}@example.com"),
        })
        .collect();
    let creates = names.iter().map(|name| async move {
        let response = app
            .post("/scim/v2/Users", &json!({ "schemas": [USER_SCHEMA], "userName": name }))
            .await;
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("json"))
    });
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "active", "value": false }]
    });
    let (created, patched, deleted) = tokio::join!(
        futures_util::future::join_all(creates),
        app.send(reqwest::Method::PATCH, &victim_path, &patch),
        app.delete("/scim/v2/Users/does-not-exist"),
    );
    assert_eq!(patched.status(), 200);
    assert_eq!(deleted.status(), 404);
    let statuses: Vec<u16> = created.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 32, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 8, "{statuses:?}");

    for (_, body) in created.iter().filter(|(status, _)| *status == 201) {
        let id = body["id"].as_str().expect("id");
        let fetched = app.get(&format!("/scim/v2/Users/{id}")).await;
        assert_eq!(fetched.status(), 200, "acknowledged user {id} is stored");
    }
    let list: Value = app
        .get("/scim/v2/Users?filter=userName%20sw%20%22burst%22&count=100")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["totalResults"], 32, "no refused create left a row");
    let victim_now: Value = app.get(&victim_path).await.json().await.expect("json");
    assert_eq!(victim_now["active"], false);
    let events: Value = app
        .get("/admin/v1/audit-events?action=user.created&limit=500")
        .await
        .json()
        .await
        .expect("json");
    let audited = events["items"].as_array().expect("items").len();
    assert_eq!(audited, 33, "one event per acknowledged create (and the victim's)");
}

/// Concurrent creates are written together on SQLite (one unit of
/// multi-row INSERTs per group): each user must still get its own row,
/// values, answer and audit event.
#[tokio::test]
async fn concurrent_creates_each_keep_their_own_values_answer_and_audit_event() {
    let server = spawn_app().await;
    let app = &server;
    const USERS: usize = 48;
    let creates = (0..USERS).map(|i| async move {
        let body = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": format!("each{i:02}@example.com"),
            "emails": [{ "value": format!("inbox{i:02}@example.com"), "type": "work" }],
            ENTERPRISE: { "employeeNumber": format!("N{i:02}") },
        });
        let response = app.post("/scim/v2/Users", &body).await;
        assert_eq!(response.status(), 201, "create {i}");
        let created: Value = response.json().await.expect("json");
        (i, created)
    });
    let created = futures_util::future::join_all(creates).await;
    let mut ids = Vec::new();
    for (i, body) in &created {
        assert_eq!(body["userName"], format!("each{i:02}@example.com"), "{body}");
        assert_eq!(body[ENTERPRISE]["employeeNumber"], format!("N{i:02}"), "{body}");
        let id = body["id"].as_str().expect("id").to_string();
        let filter = format!("/scim/v2/Users?filter=emails.value%20eq%20%22inbox{i:02}@example.com%22");
        let found: Value = app.get(&filter).await.json().await.expect("json");
        assert_eq!(found["totalResults"], 1, "{found}");
        assert_eq!(found["Resources"][0]["id"], json!(id), "{found}");
        assert_eq!(found["Resources"][0]["userName"], body["userName"], "{found}");
        ids.push(id);
    }
    let events: Value = app
        .get("/admin/v1/audit-events?action=user.created&limit=500")
        .await
        .json()
        .await
        .expect("json");
    let mut audited: Vec<String> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["target"]["id"].as_str().expect("target id").to_string())
        .collect();
    audited.sort();
    ids.sort();
    assert_eq!(audited, ids, "one user.created event per user, naming it");
}

#[tokio::test]
async fn replace_user_changes_attributes_and_bumps_version() {
    let app = spawn_app().await;
    let created: Value = app
        .post("/scim/v2/Users", &full_user("bjensen"))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let mut replacement = full_user("bjensen");
    replacement["displayName"] = json!("Barbara J.");
    replacement.as_object_mut().expect("object").remove("emails");
    let response = app.put(&format!("/scim/v2/Users/{id}"), &replacement).await;
    assert_eq!(response.status(), 200);
    let replaced: Value = response.json().await.expect("json");
    assert_eq!(replaced["displayName"], "Barbara J.");
    assert!(replaced.get("emails").is_none(), "PUT clears attributes it omits");
    assert_ne!(replaced["meta"]["version"], created["meta"]["version"]);
    assert_eq!(replaced["meta"]["created"], created["meta"]["created"]);
    assert_eq!(replaced["id"], created["id"]);
    let fetched: Value = app
        .get(&format!("/scim/v2/Users/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, replaced);
}

#[tokio::test]
async fn replace_with_a_taken_user_name_returns_409_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let id = bob["id"].as_str().expect("id");
    let response = app
        .put(
            &format!("/scim/v2/Users/{id}"),
            &json!({ "schemas": [USER_SCHEMA], "userName": "ALICE" }),
        )
        .await;
    assert_scim_error(response, 409, Some("uniqueness")).await;
    let fetched: Value = app
        .get(&format!("/scim/v2/Users/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, bob);
}

#[tokio::test]
async fn replace_with_a_stale_if_match_returns_412_and_a_fresh_one_succeeds() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let id = user["id"].as_str().expect("id");
    let etag = user["meta"]["version"].as_str().expect("etag").to_string();
    let body = json!({ "schemas": [USER_SCHEMA], "userName": "bjensen", "displayName": "B" });
    let ok = app
        .request(Method::PUT, &format!("/scim/v2/Users/{id}"))
        .header("If-Match", &etag)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
    let stale = app
        .request(Method::PUT, &format!("/scim/v2/Users/{id}"))
        .header("If-Match", &etag)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_scim_error(stale, 412, None).await;
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_returns_304() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let id = user["id"].as_str().expect("id");
    let etag = user["meta"]["version"].as_str().expect("etag");
    let path = format!("/scim/v2/Users/{id}");
    let not_modified = app
        .request(Method::GET, &path)
        .header("If-None-Match", etag)
        .send()
        .await
        .expect("request");
    assert_eq!(not_modified.status(), 304);
    let modified = app
        .request(Method::GET, &path)
        .header("If-None-Match", "W/\"999\"")
        .send()
        .await
        .expect("request");
    assert_eq!(modified.status(), 200);
}

#[tokio::test]
async fn delete_user_returns_204_then_404() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", user["id"].as_str().expect("id"));
    assert_eq!(app.delete(&path).await.status(), 204);
    assert_scim_error(app.get(&path).await, 404, None).await;
    assert_scim_error(app.delete(&path).await, 404, None).await;
}

#[tokio::test]
async fn delete_with_a_stale_if_match_returns_412_and_keeps_the_user() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", user["id"].as_str().expect("id"));
    let response = app
        .request(Method::DELETE, &path)
        .header("If-Match", "W/\"41\"")
        .send()
        .await
        .expect("request");
    assert_scim_error(response, 412, None).await;
    assert_eq!(app.get(&path).await.status(), 200);
}

#[tokio::test]
async fn list_users_pages_with_start_index_and_count() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create_user(&format!("user{i}")).await;
    }
    let page: Value = app
        .get("/scim/v2/Users?startIndex=2&count=2")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        page["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    let names: Vec<&str> = page["Resources"]
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["userName"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["user1", "user2"]);
    let none: Value = app.get("/scim/v2/Users?count=0").await.json().await.expect("json");
    assert_eq!(none["totalResults"], 5);
    assert_eq!(none["Resources"], json!([]));
    let below_one: Value = app
        .get("/scim/v2/Users?startIndex=0&count=1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(below_one["startIndex"], 1);
    assert_eq!(below_one["Resources"][0]["userName"], "user0");
}

#[tokio::test]
async fn attributes_and_excluded_attributes_shape_the_answer() {
    let app = spawn_app().await;
    let created: Value = app
        .post("/scim/v2/Users", &full_user("bjensen"))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let only: Value = app
        .get(&format!("/scim/v2/Users/{id}?attributes=userName,name.givenName"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(only["userName"], "bjensen");
    assert_eq!(only["id"], created["id"], "id is always returned");
    assert_eq!(only["name"], json!({ "givenName": "Barbara" }));
    assert!(only.get("emails").is_none() && only.get("displayName").is_none());
    let without: Value = app
        .get(&format!("/scim/v2/Users/{id}?excludedAttributes=emails,{ENTERPRISE}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(without.get("emails").is_none());
    assert!(without.get(ENTERPRISE).is_none());
    assert_eq!(without["displayName"], "Babs Jensen");
}

#[tokio::test]
async fn me_answers_501_with_a_scim_error() {
    let app = spawn_app().await;
    assert_scim_error(app.get("/scim/v2/Me").await, 501, None).await;
}
