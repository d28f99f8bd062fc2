//! PATCH (RFC 7644 §3.5.2) over HTTP: the RFC's add, replace and remove on
//! Users and Groups, what Entra ID, Okta and OneLogin actually send, and
//! member changes at scale and under concurrency.

use std::collections::BTreeSet;
use std::time::Instant;

use futures_util::future::join_all;
use reqwest::{Method, Response};
use scimd::store::Store;
use serde_json::{Value, json};

use crate::helpers::{ENTERPRISE, GROUP_SCHEMA, TestApp, USER_SCHEMA, assert_scim_error, spawn_app};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn id(resource: &Value) -> &str {
    resource["id"].as_str().expect("resource has an id")
}

fn user_path(resource: &Value) -> String {
    format!("/scim/v2/Users/{}", id(resource))
}

fn group_path(resource: &Value) -> String {
    format!("/scim/v2/Groups/{}", id(resource))
}

/// A PatchOp body holding `operations`.
fn ops(operations: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": operations })
}

async fn send_patch(app: &TestApp, path: &str, body: &Value) -> Response {
    app.send(Method::PATCH, path, body).await
}

fn etag_of(response: &Response) -> String {
    response
        .headers()
        .get("etag")
        .expect("an ETag header")
        .to_str()
        .expect("ascii")
        .to_string()
}

/// Sends a PATCH that must answer 200; checks that the `ETag` header is the
/// answer's `meta.version` and returns the body.
async fn patch_ok(app: &TestApp, path: &str, body: &Value) -> Value {
    let (answer, _) = patch_ok_with_etag(app, path, body).await;
    answer
}

async fn patch_ok_with_etag(app: &TestApp, path: &str, body: &Value) -> (Value, String) {
    let response = send_patch(app, path, body).await;
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "PATCH {path} with {body}: {answer}");
    let etag = etag.expect("a 200 PATCH answer carries an ETag");
    if let Some(version) = answer["meta"]["version"].as_str() {
        assert_eq!(version, etag, "meta.version is the ETag");
    }
    (answer, etag)
}

/// GETs `path`, which must answer 200; returns the body and the ETag.
async fn get_ok(app: &TestApp, path: &str) -> (Value, String) {
    let response = app.get(path).await;
    let status = response.status();
    let etag = etag_of(&response);
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "GET {path}: {body}");
    (body, etag)
}

async fn get_body(app: &TestApp, path: &str) -> Value {
    get_ok(app, path).await.0
}

async fn create(app: &TestApp, endpoint: &str, body: &Value) -> Value {
    let response = app.post(endpoint, body).await;
    let status = response.status();
    let created: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "POST {endpoint}: {created}");
    created
}

fn full_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "name": { "givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara Jensen" },
        "displayName": "Babs Jensen",
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "active": true,
        "password": "t1meMa$heen",
        ENTERPRISE: { "employeeNumber": "701984", "department": "Tour Operations" }
    })
}

async fn create_full_user(app: &TestApp, user_name: &str) -> Value {
    create(app, "/scim/v2/Users", &full_user(user_name)).await
}

/// The sorted member ids of a group representation.
fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| m["value"].as_str().expect("member value").to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// The `(type, value)` pairs of a user's emails, sorted.
fn emails(user: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = user["emails"]
        .as_array()
        .map(|emails| {
            emails
                .iter()
                .map(|e| {
                    (
                        e["type"].as_str().unwrap_or_default().to_string(),
                        e["value"].as_str().expect("email value").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs
}

fn email_pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = entries.iter().map(|(t, v)| (t.to_string(), v.to_string())).collect();
    pairs.sort();
    pairs
}

fn schemas_list(resource: &Value) -> Vec<&str> {
    resource["schemas"]
        .as_array()
        .expect("schemas")
        .iter()
        .map(|s| s.as_str().expect("urn"))
        .collect()
}

/// Creates `count` users named `{prefix}{i}`, `batch` at a time; returns their ids.
async fn create_users(app: &TestApp, prefix: &str, count: usize, batch: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let mut ids = Vec::with_capacity(count);
    for chunk in names.chunks(batch) {
        let created = join_all(chunk.iter().map(|name| app.create_user(name))).await;
        ids.extend(created.iter().map(|u| id(u).to_string()));
    }
    ids
}

async fn password_hash(store: &Store, tenant_id: &str, user_id: &str) -> String {
    store
        .password_hash(tenant_id, user_id)
        .await
        .expect("hash query")
        .expect("hash stored")
}

async fn audit_actions(app: &TestApp, target_id: &str) -> Vec<String> {
    let events: Value = app
        .get(&format!("/admin/v1/audit-events?targetId={target_id}"))
        .await
        .json()
        .await
        .expect("json");
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// RFC semantics on Users

#[tokio::test]
async fn patch_adds_replaces_and_removes_a_singular_attribute() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = user_path(&user);
    let added = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "add", "path": "displayName", "value": "Babs" }])),
    )
    .await;
    assert_eq!(added["displayName"], "Babs");
    assert_ne!(
        added["meta"]["version"], user["meta"]["version"],
        "a change bumps the version"
    );
    let replaced = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": "displayName", "value": "Barbara" }])),
    )
    .await;
    assert_eq!(replaced["displayName"], "Barbara");
    assert_ne!(replaced["meta"]["version"], added["meta"]["version"]);
    let removed = patch_ok(&app, &path, &ops(json!([{ "op": "remove", "path": "displayName" }]))).await;
    assert!(removed.get("displayName").is_none(), "{removed}");
    assert_eq!(removed["userName"], "bjensen");
    assert!(get_body(&app, &path).await.get("displayName").is_none());
}

#[tokio::test]
async fn patch_on_a_sub_attribute_or_a_complex_value_merges_into_name() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let path = user_path(&user);
    let given = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": "name.givenName", "value": "Babs" }])),
    )
    .await;
    assert_eq!(given["name"]["givenName"], "Babs");
    assert_eq!(given["name"]["familyName"], "Jensen", "the other sub-attributes stay");
    let merged = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": "name", "value": { "familyName": "Smith", "middleName": "J" } }])),
    )
    .await;
    assert_eq!(
        merged["name"],
        json!({ "givenName": "Babs", "familyName": "Smith", "middleName": "J", "formatted": "Ms. Barbara Jensen" }),
        "replace of a complex attribute merges the given sub-attributes (§3.5.2.3)"
    );
    let added = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "add", "path": "name", "value": { "honorificPrefix": "Ms." } }])),
    )
    .await;
    assert_eq!(added["name"]["honorificPrefix"], "Ms.");
    assert_eq!(added["name"]["familyName"], "Smith");
    let removed = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "remove", "path": "name.middleName" }])),
    )
    .await;
    assert!(removed["name"].get("middleName").is_none(), "{removed}");
    assert_eq!(removed["name"]["givenName"], "Babs");
}

#[tokio::test]
async fn patch_appends_to_replaces_and_removes_all_of_a_multi_valued_attribute() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let path = user_path(&user);
    let appended = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "add", "path": "emails", "value": [{ "value": "b@other.org", "type": "other" }] }])),
    )
    .await;
    assert_eq!(
        emails(&appended),
        email_pairs(&[
            ("work", "bjensen@example.com"),
            ("home", "babs@jensen.org"),
            ("other", "b@other.org")
        ])
    );
    let replaced = patch_ok(
        &app,
        &path,
        &ops(
            json!([{ "op": "replace", "path": "emails", "value": [{ "value": "only@example.com", "type": "work" }] }]),
        ),
    )
    .await;
    assert_eq!(emails(&replaced), email_pairs(&[("work", "only@example.com")]));
    let removed = patch_ok(&app, &path, &ops(json!([{ "op": "remove", "path": "emails" }]))).await;
    assert!(removed.get("emails").is_none(), "{removed}");
    assert!(get_body(&app, &path).await.get("emails").is_none());
}

#[tokio::test]
async fn patch_replace_through_a_value_filter_changes_only_the_matching_email() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let answer = patch_ok(
        &app,
        &user_path(&user),
        &ops(json!([{ "op": "replace", "path": "emails[type eq \"work\"].value", "value": "babs@work.example" }])),
    )
    .await;
    assert_eq!(
        emails(&answer),
        email_pairs(&[("work", "babs@work.example"), ("home", "babs@jensen.org")])
    );
    let work = answer["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .find(|e| e["type"] == "work")
        .expect("work email");
    assert_eq!(work["primary"], true, "the element's other sub-attributes stay");
}

#[tokio::test]
async fn patch_remove_through_a_value_filter_removes_only_the_matching_email() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let answer = patch_ok(
        &app,
        &user_path(&user),
        &ops(json!([{ "op": "remove", "path": "emails[type eq \"work\"]" }])),
    )
    .await;
    assert_eq!(emails(&answer), email_pairs(&[("home", "babs@jensen.org")]));
}

#[tokio::test]
async fn patch_replace_or_remove_through_a_filter_matching_nothing_returns_400_no_target() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let path = user_path(&user);
    let (before, before_etag) = get_ok(&app, &path).await;
    for operation in [
        json!({ "op": "replace", "path": "emails[type eq \"other\"].value", "value": "x@example.com" }),
        json!({ "op": "replace", "path": "emails[type eq \"other\"]", "value": { "value": "x@example.com" } }),
        json!({ "op": "remove", "path": "emails[type eq \"other\"]" }),
        json!({ "op": "remove", "path": "emails[value eq \"nobody@example.com\"].type" }),
    ] {
        let response = send_patch(&app, &path, &ops(json!([operation]))).await;
        assert_scim_error(response, 400, Some("noTarget")).await;
    }
    let (after, after_etag) = get_ok(&app, &path).await;
    assert_eq!(after, before);
    assert_eq!(after_etag, before_etag);
}

#[tokio::test]
async fn patch_on_urn_qualified_enterprise_paths_sets_department_and_manager() {
    let app = spawn_app().await;
    let manager = app.create_user("boss").await;
    let user = app.create_user("bjensen").await;
    let path = user_path(&user);
    assert_eq!(schemas_list(&user), [USER_SCHEMA]);
    let answer = patch_ok(
        &app,
        &path,
        &ops(json!([
            { "op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Tour Operations" },
            { "op": "add", "path": format!("{ENTERPRISE}:manager"), "value": { "value": id(&manager) } }
        ])),
    )
    .await;
    assert_eq!(answer[ENTERPRISE]["department"], "Tour Operations");
    assert_eq!(answer[ENTERPRISE]["manager"]["value"], id(&manager));
    assert!(
        schemas_list(&answer).contains(&ENTERPRISE),
        "the extension is listed once it holds data: {answer}"
    );
    let replaced = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance" }])),
    )
    .await;
    assert_eq!(replaced[ENTERPRISE]["department"], "Finance");
    assert_eq!(replaced[ENTERPRISE]["manager"]["value"], id(&manager));
    let removed = patch_ok(
        &app,
        &path,
        &ops(json!([
            { "op": "remove", "path": format!("{ENTERPRISE}:manager") },
            { "op": "remove", "path": format!("{ENTERPRISE}:department") }
        ])),
    )
    .await;
    assert!(removed.get(ENTERPRISE).is_none(), "{removed}");
    assert_eq!(schemas_list(&removed), [USER_SCHEMA], "an empty extension is unlisted");
}

#[tokio::test]
async fn patch_adding_a_primary_email_clears_primary_on_the_others() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let answer = patch_ok(
        &app,
        &user_path(&user),
        &ops(json!([{
            "op": "add",
            "path": "emails",
            "value": [{ "value": "new@example.com", "type": "other", "primary": true }]
        }])),
    )
    .await;
    let primaries: Vec<&str> = answer["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .filter(|e| e["primary"] == true)
        .map(|e| e["value"].as_str().expect("value"))
        .collect();
    assert_eq!(primaries, ["new@example.com"], "{answer}");
}

#[tokio::test]
async fn patch_removing_user_name_returns_400_and_keeps_it() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = user_path(&user);
    let response = send_patch(&app, &path, &ops(json!([{ "op": "remove", "path": "userName" }]))).await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    let response = send_patch(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": "userName", "value": null }])),
    )
    .await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    assert_eq!(get_body(&app, &path).await["userName"], "bjensen");
}

#[tokio::test]
async fn patch_on_read_only_attributes_returns_400_mutability() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let group = app.create_group("G", &[]).await;
    let path = user_path(&user);
    for operation in [
        json!({ "op": "replace", "path": "id", "value": "00000000-0000-0000-0000-000000000000" }),
        json!({ "op": "remove", "path": "id" }),
        json!({ "op": "replace", "path": "meta", "value": { "resourceType": "Group" } }),
        json!({ "op": "replace", "path": "meta.created", "value": "2000-01-01T00:00:00Z" }),
        json!({ "op": "add", "path": "groups", "value": [{ "value": id(&group) }] }),
        json!({ "op": "remove", "path": "groups" }),
    ] {
        let response = send_patch(&app, &path, &ops(json!([operation]))).await;
        assert_scim_error(response, 400, Some("mutability")).await;
    }
    let (after, _) = get_ok(&app, &path).await;
    assert_eq!(after, user);
}

#[tokio::test]
async fn patch_with_an_unknown_path_returns_400_invalid_path() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = user_path(&user);
    for operation in [
        json!({ "op": "replace", "path": "nickname2", "value": "x" }),
        json!({ "op": "add", "path": "name.middle", "value": "x" }),
        json!({ "op": "remove", "path": "emails[kind eq \"work\"]" }),
        json!({ "op": "replace", "path": format!("{ENTERPRISE}:costCentre"), "value": "x" }),
        json!({ "op": "replace", "value": { "favouriteColour": "blue" } }),
    ] {
        let response = send_patch(&app, &path, &ops(json!([operation]))).await;
        assert_scim_error(response, 400, Some("invalidPath")).await;
    }
}

#[tokio::test]
async fn malformed_patch_bodies_return_400_invalid_syntax() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = user_path(&user);
    for body in [
        json!({ "schemas": [PATCH_OP] }),
        json!({ "schemas": [PATCH_OP], "Operations": [] }),
        json!({ "schemas": [PATCH_OP], "Operations": { "op": "add", "path": "displayName", "value": "x" } }),
        json!({ "schemas": [USER_SCHEMA], "Operations": [{ "op": "add", "path": "displayName", "value": "x" }] }),
        ops(json!([{ "op": "move", "path": "displayName", "value": "x" }])),
        ops(json!([{ "path": "displayName", "value": "x" }])),
        ops(json!([{ "op": 1, "path": "displayName", "value": "x" }])),
        ops(json!([{ "op": "add", "path": "displayName" }])),
        ops(json!([{ "op": "replace", "value": "not an object" }])),
        ops(json!(["add"])),
        json!([{ "op": "add", "path": "displayName", "value": "x" }]),
    ] {
        let response = send_patch(&app, &path, &body).await;
        let error = assert_scim_error(response, 400, Some("invalidSyntax")).await;
        assert!(error["detail"].is_string(), "{body}");
    }
    let (after, _) = get_ok(&app, &path).await;
    assert_eq!(after, user);
}

#[tokio::test]
async fn a_patch_whose_second_operation_fails_changes_nothing() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let path = user_path(&user);
    let (before, before_etag) = get_ok(&app, &path).await;
    let failing_second = [
        (
            json!({ "op": "replace", "path": "nonexistent", "value": "x" }),
            "invalidPath",
        ),
        (
            json!({ "op": "replace", "path": "emails[type eq \"pager\"].value", "value": "x" }),
            "noTarget",
        ),
        (
            json!({ "op": "replace", "path": "active", "value": "perhaps" }),
            "invalidValue",
        ),
    ];
    for (second, scim_type) in failing_second {
        let body = ops(json!([
            { "op": "replace", "path": "displayName", "value": "Changed" },
            second
        ]));
        let response = send_patch(&app, &path, &body).await;
        assert_scim_error(response, 400, Some(scim_type)).await;
        let (after, after_etag) = get_ok(&app, &path).await;
        assert_eq!(after, before, "nothing of {body} was applied");
        assert_eq!(after_etag, before_etag, "the version is unchanged");
    }
    assert_eq!(audit_actions(&app, id(&user)).await, ["user.created"]);
}

#[tokio::test]
async fn patch_with_a_stale_if_match_returns_412_and_a_fresh_one_succeeds() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = user_path(&user);
    let first_etag = user["meta"]["version"].as_str().expect("etag").to_string();
    let body = ops(json!([{ "op": "replace", "path": "displayName", "value": "One" }]));
    let fresh = app
        .request(Method::PATCH, &path)
        .header("Content-Type", "application/scim+json")
        .header("If-Match", &first_etag)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(fresh.status(), 200);
    let second_etag = etag_of(&fresh);
    assert_ne!(second_etag, first_etag);
    let stale_body = ops(json!([{ "op": "replace", "path": "displayName", "value": "Two" }]));
    let stale = app
        .request(Method::PATCH, &path)
        .header("Content-Type", "application/scim+json")
        .header("If-Match", &first_etag)
        .body(stale_body.to_string())
        .send()
        .await
        .expect("request");
    assert_scim_error(stale, 412, None).await;
    let (after, after_etag) = get_ok(&app, &path).await;
    assert_eq!(after["displayName"], "One");
    assert_eq!(after_etag, second_etag);
}

#[tokio::test]
async fn patch_replacing_the_password_stores_it_unreturned_and_other_patches_keep_it() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let path = user_path(&user);
    let store = app.store().await;
    let tenant = store.tenant_by_name("default").await.expect("query").expect("tenant");
    let response = send_patch(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": "password", "value": "N3w-Secr3t!" }])),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(!text.contains("N3w-Secr3t!") && !text.contains("password"), "{text}");
    let changed = password_hash(&store, &tenant.id, id(&user)).await;
    assert!(scimd::auth::hashing::verify_blocking("N3w-Secr3t!", &changed));
    assert!(!scimd::auth::hashing::verify_blocking("t1meMa$heen", &changed));
    let answer = patch_ok(
        &app,
        &path,
        &ops(json!([{ "op": "replace", "path": "displayName", "value": "Babs" }])),
    )
    .await;
    assert!(answer.get("password").is_none());
    assert_eq!(
        password_hash(&store, &tenant.id, id(&user)).await,
        changed,
        "a PATCH without password keeps it"
    );
    store.close().await;
}

#[tokio::test]
async fn patch_is_recorded_as_a_patched_audit_event() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let group = app.create_group("G", &[]).await;
    patch_ok(
        &app,
        &user_path(&user),
        &ops(json!([{ "op": "replace", "path": "displayName", "value": "Babs" }])),
    )
    .await;
    patch_ok(
        &app,
        &group_path(&group),
        &ops(json!([{ "op": "add", "path": "members", "value": [{ "value": id(&user) }] }])),
    )
    .await;
    assert_eq!(
        audit_actions(&app, id(&user)).await,
        ["user.patched", "user.created"],
        "newest first"
    );
    assert_eq!(
        audit_actions(&app, id(&group)).await,
        ["group.patched", "group.created"]
    );
}

#[tokio::test]
async fn patch_answer_honours_attributes_and_excluded_attributes() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let path = user_path(&user);
    let only = patch_ok(
        &app,
        &format!("{path}?attributes=displayName,name.givenName"),
        &ops(json!([{ "op": "replace", "path": "displayName", "value": "One" }])),
    )
    .await;
    assert_eq!(only["id"], user["id"], "id is always returned");
    assert_eq!(only["displayName"], "One");
    assert_eq!(only["name"], json!({ "givenName": "Barbara" }));
    assert!(only.get("emails").is_none() && only.get(ENTERPRISE).is_none(), "{only}");
    let without = patch_ok(
        &app,
        &format!("{path}?excludedAttributes=emails,{ENTERPRISE}"),
        &ops(json!([{ "op": "replace", "path": "displayName", "value": "Two" }])),
    )
    .await;
    assert_eq!(without["displayName"], "Two");
    assert!(
        without.get("emails").is_none() && without.get(ENTERPRISE).is_none(),
        "{without}"
    );
    assert_eq!(without["userName"], "bjensen");
    let (full, _) = get_ok(&app, &path).await;
    assert_eq!(full["displayName"], "Two");
    assert_eq!(
        emails(&full).len(),
        2,
        "excluded from the answer, not from the resource"
    );
}

// ---------------------------------------------------------------------------
// Response shape

#[tokio::test]
async fn patch_answer_equals_the_following_get_with_the_same_etag() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let other = app.create_user("other").await;
    let group = app.create_group("G", &[id(&other)]).await;
    let (patched_user, user_etag) = patch_ok_with_etag(
        &app,
        &user_path(&user),
        &ops(json!([
            { "op": "replace", "path": "displayName", "value": "Babs" },
            { "op": "add", "path": "emails[type eq \"home\"].display", "value": "Home" },
            { "op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance" }
        ])),
    )
    .await;
    let (fetched_user, fetched_user_etag) = get_ok(&app, &user_path(&user)).await;
    assert_eq!(patched_user, fetched_user);
    assert_eq!(user_etag, fetched_user_etag);
    let (patched_group, group_etag) = patch_ok_with_etag(
        &app,
        &group_path(&group),
        &ops(json!([
            { "op": "replace", "path": "displayName", "value": "Renamed" },
            { "op": "add", "path": "members", "value": [{ "value": id(&user) }] }
        ])),
    )
    .await;
    let (fetched_group, fetched_group_etag) = get_ok(&app, &group_path(&group)).await;
    assert_eq!(patched_group, fetched_group);
    assert_eq!(group_etag, fetched_group_etag);
    assert_eq!(member_ids(&patched_group), sorted(&[id(&user), id(&other)]));
    let (member, _) = get_ok(&app, &user_path(&user)).await;
    assert_eq!(member["groups"][0]["value"], id(&group), "the member's groups show it");
}

// ---------------------------------------------------------------------------
// Microsoft Entra ID

#[tokio::test]
async fn entra_replace_active_with_the_string_false_deactivates_the_user() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Replace", "path": "active", "value": "False" }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer["active"], false, "stored as a boolean: {answer}");
}

#[tokio::test]
async fn entra_add_to_a_work_email_value_path_creates_the_missing_work_email() {
    let app = spawn_app().await;
    let user = create(
        &app,
        "/scim/v2/Users",
        &json!({
            "schemas": [USER_SCHEMA],
            "userName": "bjensen",
            "emails": [{ "value": "babs@jensen.org", "type": "home" }]
        }),
    )
    .await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@y.com" }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(
        emails(&answer),
        email_pairs(&[("home", "babs@jensen.org"), ("work", "x@y.com")])
    );
}

#[tokio::test]
async fn entra_pathless_replace_with_dotted_and_urn_keys_sets_each_attribute() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Replace",
            "value": {
                "displayName": "X",
                "name.givenName": "Y",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "9"
            }
        }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer["displayName"], "X");
    assert_eq!(answer["name"]["givenName"], "Y");
    assert_eq!(answer["name"]["familyName"], "Jensen");
    assert_eq!(answer[ENTERPRISE]["employeeNumber"], "9");
    assert_eq!(answer[ENTERPRISE]["department"], "Tour Operations");
}

#[tokio::test]
async fn entra_add_manager_as_a_plain_id_sets_manager_value() {
    let app = spawn_app().await;
    let manager = app.create_user("boss").await;
    let user = app.create_user("bjensen").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Add",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": id(&manager)
        }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer[ENTERPRISE]["manager"]["value"], id(&manager), "{answer}");
    assert!(schemas_list(&answer).contains(&ENTERPRISE));
}

#[tokio::test]
async fn entra_pascal_case_path_display_name_is_accepted() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "Replace", "path": "DisplayName", "value": "Babs" },
            { "op": "Add", "path": "Name.GivenName", "value": "Barbara" }
        ]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer["displayName"], "Babs");
    assert_eq!(answer["name"]["givenName"], "Barbara");
    assert!(
        answer.get("DisplayName").is_none(),
        "stored under the canonical name: {answer}"
    );
}

#[tokio::test]
async fn entra_add_members_with_a_null_ref_adds_the_member() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let group = app.create_group("G", &[]).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Add", "path": "members", "value": [{ "value": id(&alice), "$ref": null }] }]
    });
    let answer = patch_ok(&app, &group_path(&group), &body).await;
    assert_eq!(member_ids(&answer), sorted(&[id(&alice)]));
}

#[tokio::test]
async fn entra_remove_members_with_a_value_list_removes_only_that_member() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    let group = app.create_group("G", &[id(&alice), id(&bob), id(&carol)]).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Remove", "path": "members", "value": [{ "value": id(&bob) }] }]
    });
    let answer = patch_ok(&app, &group_path(&group), &body).await;
    assert_eq!(member_ids(&answer), sorted(&[id(&alice), id(&carol)]));
    let (fetched, _) = get_ok(&app, &group_path(&group)).await;
    assert_eq!(member_ids(&fetched), sorted(&[id(&alice), id(&carol)]));
}

#[tokio::test]
async fn entra_extra_schema_urns_in_schemas_are_accepted() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let body = json!({
        "schemas": [
            "urn:ietf:params:scim:api:messages:2.0:PatchOp",
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "Operations": [{ "op": "Replace", "path": "displayName", "value": "Babs" }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer["displayName"], "Babs");
}

// ---------------------------------------------------------------------------
// Okta

#[tokio::test]
async fn okta_pathless_replace_of_active_false_deactivates_the_user() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "value": { "active": false } }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer["active"], false);
    assert_eq!(answer["displayName"], "Babs Jensen", "nothing else changes");
}

#[tokio::test]
async fn okta_group_rename_with_echoed_id_and_member_changes_in_one_request() {
    let app = spawn_app().await;
    let u1 = app.create_user("u1").await;
    let u2 = app.create_user("u2").await;
    let u3 = app.create_user("u3").await;
    let group = app.create_group("Old Name", &[id(&u2), id(&u3)]).await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "replace", "value": { "id": id(&group), "displayName": "New Name" } },
            { "op": "add", "path": "members", "value": [{ "value": id(&u1), "display": "u1" }] },
            { "op": "remove", "path": format!("members[value eq \"{}\"]", id(&u2)) }
        ]
    });
    let answer = patch_ok(&app, &group_path(&group), &body).await;
    assert_eq!(answer["id"], group["id"]);
    assert_eq!(answer["displayName"], "New Name");
    assert_eq!(member_ids(&answer), sorted(&[id(&u1), id(&u3)]));
    let (fetched, _) = get_ok(&app, &group_path(&group)).await;
    assert_eq!(fetched, answer);
}

#[tokio::test]
async fn okta_get_then_put_of_the_same_user_representation_succeeds() {
    let app = spawn_app().await;
    let user = create_full_user(&app, "bjensen").await;
    app.create_group("Staff", &[id(&user)]).await;
    let (mut representation, _) = get_ok(&app, &user_path(&user)).await;
    assert!(representation["groups"].is_array(), "{representation}");
    representation["displayName"] = json!("Barbara Jensen");
    let response = app.put(&user_path(&user), &representation).await;
    let status = response.status();
    let replaced: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "PUT of the GET representation: {replaced}");
    assert_eq!(replaced["displayName"], "Barbara Jensen");
    assert_eq!(replaced["id"], user["id"]);
    assert_eq!(replaced["groups"], representation["groups"]);
    assert_eq!(replaced["emails"], representation["emails"]);
    assert_eq!(replaced[ENTERPRISE], representation[ENTERPRISE]);
    assert_eq!(get_body(&app, &user_path(&user)).await, replaced);
}

#[tokio::test]
async fn okta_get_then_put_of_the_same_group_representation_keeps_its_members() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let inner = app.create_group("Inner", &[]).await;
    let group = app.create_group("Outer", &[id(&alice), id(&inner)]).await;
    let (mut representation, _) = get_ok(&app, &group_path(&group)).await;
    representation["displayName"] = json!("Outer renamed");
    let response = app.put(&group_path(&group), &representation).await;
    let status = response.status();
    let replaced: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "PUT of the GET representation: {replaced}");
    assert_eq!(replaced["displayName"], "Outer renamed");
    assert_eq!(member_ids(&replaced), sorted(&[id(&alice), id(&inner)]));
}

// ---------------------------------------------------------------------------
// OneLogin

#[tokio::test]
async fn onelogin_legacy_urn_prefix_in_a_path_is_read_as_the_core_schema() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "urn:scim:schemas:core:2.0:User:displayName", "value": "Babs" }]
    });
    let answer = patch_ok(&app, &user_path(&user), &body).await;
    assert_eq!(answer["displayName"], "Babs");
}

#[tokio::test]
async fn onelogin_list_with_a_trailing_ampersand_answers_200() {
    let app = spawn_app().await;
    app.create_user("x").await;
    app.create_user("y").await;
    let response = app.get("/scim/v2/Users?filter=userName%20eq%20%22x%22&").await;
    let status = response.status();
    let list: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["userName"], "x");
}

// ---------------------------------------------------------------------------
// Groups: concurrency, integrity, scale

/// Sends every body as a PATCH to `path` at once; returns `(status, body)` per request.
async fn parallel_patches(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<(u16, String)> {
    let requests = bodies.into_iter().map(|body| async move {
        let response = send_patch(app, path, &body).await;
        (response.status().as_u16(), response.text().await.expect("text"))
    });
    join_all(requests).await
}

/// Fails with a summary unless every answer is a 200.
fn assert_all_ok(answers: &[(u16, String)]) {
    let failed: Vec<&(u16, String)> = answers.iter().filter(|(status, _)| *status != 200).collect();
    let statuses: BTreeSet<u16> = failed.iter().map(|(status, _)| *status).collect();
    assert!(
        failed.is_empty(),
        "{} of {} parallel PATCHes failed with {statuses:?}; first: {}",
        failed.len(),
        answers.len(),
        failed.first().map(|(_, body)| body.as_str()).unwrap_or_default()
    );
}

#[tokio::test]
async fn forty_parallel_member_adds_all_answer_200_and_none_is_lost() {
    let app = spawn_app().await;
    let group = app.create_group("Crowd", &[]).await;
    let path = group_path(&group);
    let users = create_users(&app, "crowd", 40, 40).await;
    let bodies = users
        .iter()
        .map(|user| ops(json!([{ "op": "add", "path": "members", "value": [{ "value": user }] }])))
        .collect();
    assert_all_ok(&parallel_patches(&app, &path, bodies).await);
    let (after, _) = get_ok(&app, &path).await;
    let mut expected = users.clone();
    expected.sort();
    assert_eq!(member_ids(&after), expected, "every add is kept");
}

#[tokio::test]
async fn twenty_parallel_member_removals_all_answer_200_and_leave_the_twenty_others() {
    let app = spawn_app().await;
    let users = create_users(&app, "crowd", 40, 40).await;
    let ids: Vec<&str> = users.iter().map(String::as_str).collect();
    let group = app.create_group("Crowd", &ids).await;
    let path = group_path(&group);
    let (removed, kept) = users.split_at(20);
    let bodies = removed
        .iter()
        .map(|user| ops(json!([{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }])))
        .collect();
    assert_all_ok(&parallel_patches(&app, &path, bodies).await);
    let (after, _) = get_ok(&app, &path).await;
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(member_ids(&after), expected, "exactly the 20 others are left");
}

#[tokio::test]
async fn adding_an_unknown_member_returns_400_invalid_value_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let group = app.create_group("G", &[id(&alice)]).await;
    let path = group_path(&group);
    let (before, before_etag) = get_ok(&app, &path).await;
    let body = ops(json!([
        { "op": "replace", "path": "displayName", "value": "Renamed" },
        { "op": "add", "path": "members", "value": [
            { "value": id(&bob) },
            { "value": "00000000-0000-0000-0000-000000000000" }
        ] }
    ]));
    let response = send_patch(&app, &path, &body).await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    let (after, after_etag) = get_ok(&app, &path).await;
    assert_eq!(after_etag, before_etag, "the group version is unchanged");
    assert_eq!(after, before);
    assert_eq!(member_ids(&after), sorted(&[id(&alice)]));
    assert!(get_body(&app, &user_path(&bob)).await.get("groups").is_none());
}

/// Members of the large group. 2,000 users take about ten seconds to create over
/// HTTP even in a debug build; the group is filled by PATCH in two requests
/// to stay under the 64 KiB body limit of the test server.
const LARGE_GROUP: usize = 2_000;

#[tokio::test]
async fn a_large_group_takes_a_member_add_and_remove_without_answering_its_members() {
    let app = spawn_app().await;
    let started = Instant::now();
    let users = create_users(&app, "member", LARGE_GROUP, 50).await;
    let created_users = started.elapsed();
    let group = app.create_group("Everyone", &[]).await;
    let path = group_path(&group);
    let lean = format!("{path}?excludedAttributes=members");
    let started = Instant::now();
    for chunk in users.chunks(1_000) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({ "value": id })).collect();
        let answer = patch_ok(
            &app,
            &lean,
            &ops(json!([{ "op": "add", "path": "members", "value": members }])),
        )
        .await;
        assert!(answer.get("members").is_none());
    }
    let filled = started.elapsed();

    let newcomer = app.create_user("newcomer").await;
    let started = Instant::now();
    let added = patch_ok(
        &app,
        &lean,
        &ops(json!([{ "op": "add", "path": "members", "value": [{ "value": id(&newcomer) }] }])),
    )
    .await;
    let add_one = started.elapsed();
    assert!(added.get("members").is_none(), "members are excluded: {added}");
    assert_eq!(added["displayName"], "Everyone");

    let leaver = &users[LARGE_GROUP / 2];
    let started = Instant::now();
    let removed = patch_ok(
        &app,
        &lean,
        &ops(json!([{ "op": "remove", "path": format!("members[value eq \"{leaver}\"]") }])),
    )
    .await;
    let remove_one = started.elapsed();
    assert!(removed.get("members").is_none(), "members are excluded: {removed}");

    let (without_members, _) = get_ok(&app, &lean).await;
    assert!(without_members.get("members").is_none(), "{without_members}");
    assert_eq!(without_members["id"], group["id"]);
    let started = Instant::now();
    let (full, _) = get_ok(&app, &path).await;
    let get_full = started.elapsed();
    let ids: BTreeSet<&str> = full["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value"))
        .collect();
    assert_eq!(ids.len(), LARGE_GROUP, "one added, one removed");
    assert!(ids.contains(id(&newcomer)));
    assert!(!ids.contains(leaver.as_str()));
    println!(
        "large group ({LARGE_GROUP} members): created users in {created_users:?}, filled by PATCH in {filled:?}; \
         add one member {add_one:?}; remove one member {remove_one:?}; full GET {get_full:?}"
    );
}

#[tokio::test]
async fn group_patch_answer_leaves_out_members_when_excluded_and_keeps_them_otherwise() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let group = app.create_group("G", &[id(&alice)]).await;
    let path = group_path(&group);
    let lean = patch_ok(
        &app,
        &format!("{path}?excludedAttributes=members"),
        &ops(json!([{ "op": "replace", "path": "displayName", "value": "Renamed" }])),
    )
    .await;
    assert!(lean.get("members").is_none());
    assert_eq!(lean["displayName"], "Renamed");
    let only_members = patch_ok(
        &app,
        &format!("{path}?attributes=members"),
        &ops(json!([{ "op": "add", "path": "members", "value": [{ "value": id(&bob) }] }])),
    )
    .await;
    assert_eq!(member_ids(&only_members), sorted(&[id(&alice), id(&bob)]));
    assert!(only_members.get("displayName").is_none(), "{only_members}");
    assert_eq!(schemas_list(&only_members), [GROUP_SCHEMA]);
}
