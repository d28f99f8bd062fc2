//! Bulk (RFC 7644 §3.7): the RFC's examples, bulkId references (forward and
//! circular), per-operation results, scopes and preconditions, failOnErrors,
//! the limits and what the ServiceProviderConfig says of them.

use std::time::Instant;

use reqwest::{Method, Response};
use scimd::auth::Scope;
use serde_json::{Value, json};

use crate::helpers::{
    ENTERPRISE, ERROR_SCHEMA, GROUP_SCHEMA, TestApp, USER_SCHEMA, assert_scim_error, json_body, spawn_app,
    spawn_app_configured,
};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn bulk_request(operations: Value) -> Value {
    json!({ "schemas": [BULK_REQUEST], "Operations": operations })
}

fn post_user(bulk_id: &str, user_name: &str) -> Value {
    json!({
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": { "schemas": [USER_SCHEMA], "userName": user_name },
    })
}

fn post_group(bulk_id: &str, display_name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    json!({
        "method": "POST",
        "path": "/Groups",
        "bulkId": bulk_id,
        "data": { "schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members },
    })
}

async fn send_bulk(app: &TestApp, key: &str, path: &str, body: &Value) -> Response {
    app.request_with(key, Method::POST, path)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

/// POSTs a BulkRequest with the admin key, expects 200 and a BulkResponse,
/// and returns its operations.
async fn bulk(app: &TestApp, body: &Value) -> Vec<Value> {
    bulk_as(app, &app.admin_key, "/scim/v2/Bulk", body).await
}

async fn bulk_as(app: &TestApp, key: &str, path: &str, body: &Value) -> Vec<Value> {
    let response = send_bulk(app, key, path, body).await;
    let status = response.status();
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    let answer: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{answer}");
    assert!(content_type.starts_with("application/scim+json"), "{content_type}");
    assert_eq!(answer["schemas"], json!([BULK_RESPONSE]), "{answer}");
    answer["Operations"].as_array().expect("Operations").clone()
}

/// The id at the end of a location.
fn id_of(location: &Value) -> String {
    let location = location.as_str().unwrap_or_else(|| panic!("location in {location}"));
    location.rsplit('/').next().expect("id").to_string()
}

fn assert_created(app: &TestApp, op: &Value, endpoint: &str, bulk_id: &str) -> String {
    assert_eq!(op["method"], "POST", "{op}");
    assert_eq!(op["bulkId"], bulk_id, "{op}");
    assert_eq!(op["status"], "201", "status is a string: {op}");
    assert!(op["version"].as_str().is_some_and(|v| v.starts_with("W/\"")), "{op}");
    assert!(op.get("response").is_none(), "no body for a success: {op}");
    let id = id_of(&op["location"]);
    assert_eq!(op["location"], json!(app.url(&format!("/scim/v2/{endpoint}/{id}"))));
    id
}

/// Asserts an operation failed with `status` and a SCIM error body.
fn assert_failed(op: &Value, status: &str, scim_type: Option<&str>) -> String {
    assert_eq!(op["status"], status, "{op}");
    let response = &op["response"];
    assert_eq!(response["schemas"], json!([ERROR_SCHEMA]), "{op}");
    assert_eq!(response["status"], status, "{op}");
    assert_eq!(response.get("scimType").and_then(Value::as_str), scim_type, "{op}");
    assert!(op.get("version").is_none(), "{op}");
    response["detail"]
        .as_str()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| panic!("detail in {op}"))
        .to_string()
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("json")
}

fn member_ids(group: &Value) -> Vec<String> {
    group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().expect("value").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_rfc_example_creates_a_user_and_a_group_holding_it_by_bulk_id() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &json!({
            "schemas": [BULK_REQUEST],
            "failOnErrors": 1,
            "Operations": [
                post_user("qwerty", "Alice"),
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "ytrewq",
                    "data": {
                        "schemas": [GROUP_SCHEMA],
                        "displayName": "Tour Guides",
                        "members": [{ "type": "User", "value": "bulkId:qwerty" }],
                    },
                },
            ],
        }),
    )
    .await;
    assert_eq!(ops.len(), 2, "{ops:?}");
    let user_id = assert_created(&app, &ops[0], "Users", "qwerty");
    let group_id = assert_created(&app, &ops[1], "Groups", "ytrewq");

    let user = get_json(&app, &format!("/scim/v2/Users/{user_id}")).await;
    assert_eq!(user["userName"], "Alice");
    assert_eq!(user["meta"]["location"], ops[0]["location"]);
    let group = get_json(&app, &format!("/scim/v2/Groups/{group_id}")).await;
    assert_eq!(member_ids(&group), [user_id]);
    assert_eq!(group["meta"]["version"], ops[1]["version"]);
}

#[tokio::test]
async fn a_forward_reference_creates_the_referenced_resource_first() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            post_group("team", "Team", &["bulkId:alice", "bulkId:bob"]),
            post_user("alice", "alice"),
            post_user("bob", "bob"),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 3);
    // Answered in the request's order, though the users ran first.
    let team = assert_created(&app, &ops[0], "Groups", "team");
    let alice = assert_created(&app, &ops[1], "Users", "alice");
    let bob = assert_created(&app, &ops[2], "Users", "bob");
    let group = get_json(&app, &format!("/scim/v2/Groups/{team}")).await;
    let mut members = member_ids(&group);
    members.sort();
    let mut expected = vec![alice, bob];
    expected.sort();
    assert_eq!(members, expected);
}

#[tokio::test]
async fn put_patch_and_delete_by_id_answer_with_status_location_and_version() {
    let app = spawn_app().await;
    let kept = app.create_user("kept").await;
    let kept_id = kept["id"].as_str().expect("id");
    let doomed = app.create_user("doomed").await;
    let doomed_id = doomed["id"].as_str().expect("id");
    let group = app.create_group("staff", &[]).await;
    let group_id = group["id"].as_str().expect("id");

    let ops = bulk(
        &app,
        &bulk_request(json!([
            {
                "method": "PUT",
                "path": format!("/Users/{kept_id}"),
                "data": { "schemas": [USER_SCHEMA], "userName": "kept", "displayName": "Kept" },
            },
            {
                "method": "PATCH",
                "path": format!("/Groups/{group_id}"),
                "data": { "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": kept_id }] }] },
            },
            { "method": "DELETE", "path": format!("/Users/{doomed_id}") },
        ])),
    )
    .await;
    assert_eq!(ops.len(), 3);
    assert_eq!(
        ops.iter()
            .map(|o| o["method"].as_str().expect("method"))
            .collect::<Vec<_>>(),
        ["PUT", "PATCH", "DELETE"]
    );
    assert_eq!(ops[0]["status"], "200");
    assert_eq!(ops[1]["status"], "200");
    assert_eq!(ops[2]["status"], "204");
    assert_eq!(ops[0]["location"], json!(app.url(&format!("/scim/v2/Users/{kept_id}"))));
    assert_eq!(
        ops[1]["location"],
        json!(app.url(&format!("/scim/v2/Groups/{group_id}")))
    );
    assert_eq!(
        ops[2]["location"],
        json!(app.url(&format!("/scim/v2/Users/{doomed_id}")))
    );
    assert!(ops[2].get("version").is_none());

    let user = get_json(&app, &format!("/scim/v2/Users/{kept_id}")).await;
    assert_eq!(user["displayName"], "Kept");
    assert_ne!(ops[0]["version"], kept["meta"]["version"]);
    let group = get_json(&app, &format!("/scim/v2/Groups/{group_id}")).await;
    assert_eq!(member_ids(&group), [kept_id]);
    assert_eq!(group["meta"]["version"], ops[1]["version"]);
    assert_scim_error(app.get(&format!("/scim/v2/Users/{doomed_id}")).await, 404, None).await;
}

#[tokio::test]
async fn a_bulk_id_in_the_path_targets_the_resource_created_in_the_same_request() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:g",
                "data": { "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "bulkId:u" }] }] },
            },
            post_group("g", "Group G", &[]),
            post_user("u", "ursula"),
            {
                "method": "put",
                "path": "/Users/bulkId:u",
                "data": { "schemas": [USER_SCHEMA], "userName": "ursula", "title": "Captain" },
            },
        ])),
    )
    .await;
    assert_eq!(ops.len(), 4, "{ops:?}");
    // Answered in the request's order; the POSTs ran before what refers to them.
    assert_eq!(ops[0]["method"], "PATCH");
    assert_eq!(ops[0]["status"], "200", "{:?}", ops[0]);
    let group_id = assert_created(&app, &ops[1], "Groups", "g");
    let user_id = assert_created(&app, &ops[2], "Users", "u");
    assert_eq!(ops[0]["location"], ops[1]["location"]);
    assert_eq!(ops[3]["method"], "PUT", "the method is echoed in canonical case");
    assert_eq!(ops[3]["status"], "200", "{:?}", ops[3]);
    assert_eq!(ops[3]["location"], ops[2]["location"]);

    let group = get_json(&app, &format!("/scim/v2/Groups/{group_id}")).await;
    assert_eq!(member_ids(&group), [user_id.as_str()]);
    let user = get_json(&app, &format!("/scim/v2/Users/{user_id}")).await;
    assert_eq!(user["title"], "Captain");
}

#[tokio::test]
async fn a_version_that_does_not_match_fails_that_operation_with_412_and_the_others_proceed() {
    let app = spawn_app().await;
    let user = app.create_user("versioned").await;
    let id = user["id"].as_str().expect("id");
    let created_version = user["meta"]["version"].as_str().expect("version");
    let path = format!("/Users/{id}");
    let patch =
        json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "V" }] });

    let ops = bulk(
        &app,
        &bulk_request(json!([
            { "method": "PUT", "path": path, "version": "W/\"999\"", "data": { "schemas": [USER_SCHEMA], "userName": "versioned" } },
            { "method": "PATCH", "path": path, "version": created_version, "data": patch },
            { "method": "DELETE", "path": path, "version": created_version },
            post_user("other", "other"),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 4);
    assert_failed(&ops[0], "412", None);
    assert_eq!(ops[0]["location"], json!(app.url(&format!("/scim/v2/Users/{id}"))));
    assert_eq!(ops[1]["status"], "200", "{:?}", ops[1]);
    assert_failed(&ops[2], "412", None);
    assert_created(&app, &ops[3], "Users", "other");
    let after = get_json(&app, &format!("/scim/v2/Users/{id}")).await;
    assert_eq!(after["displayName"], "V");
    assert_eq!(after["meta"]["version"], ops[1]["version"]);
}

#[tokio::test]
async fn fail_on_errors_stops_after_that_many_errors_and_leaves_the_rest_unanswered() {
    let app = spawn_app().await;
    app.create_user("taken").await;
    let ops = bulk(
        &app,
        &json!({
            "schemas": [BULK_REQUEST],
            "failOnErrors": 2,
            "Operations": [
                post_user("a", "first"),
                post_user("b", "taken"),
                post_user("c", "second"),
                { "method": "DELETE", "path": "/Users/00000000-0000-0000-0000-000000000000" },
                post_user("d", "never"),
            ],
        }),
    )
    .await;
    assert_eq!(ops.len(), 4, "processing stops at the second error: {ops:?}");
    assert_created(&app, &ops[0], "Users", "a");
    assert_failed(&ops[1], "409", Some("uniqueness"));
    assert!(ops[1].get("location").is_none(), "a failed POST has no location");
    assert_created(&app, &ops[2], "Users", "c");
    assert_failed(&ops[3], "404", None);
    assert_eq!(app.total("/scim/v2/Users?filter=userName%20eq%20%22never%22").await, 0);
    assert_eq!(app.total("/scim/v2/Users").await, 3);
}

#[tokio::test]
async fn without_fail_on_errors_every_operation_runs_despite_errors() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            { "method": "DELETE", "path": "/Groups/00000000-0000-0000-0000-000000000000" },
            { "method": "POST", "path": "/Users", "bulkId": "x", "data": { "schemas": [USER_SCHEMA], "displayName": "no userName" } },
            post_user("ok", "ok"),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 3);
    assert_failed(&ops[0], "404", None);
    assert_eq!(ops[1]["status"], "400", "{:?}", ops[1]);
    assert_eq!(ops[1]["bulkId"], "x");
    assert_created(&app, &ops[2], "Users", "ok");
}

#[tokio::test]
async fn circular_group_references_are_resolved_as_rfc_7644_section_3_7_1_shows() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            {
                "method": "POST", "path": "/Groups", "bulkId": "qwerty",
                "data": { "schemas": [GROUP_SCHEMA], "displayName": "Group A", "members": [{ "type": "Group", "value": "bulkId:ytrewq" }] },
            },
            {
                "method": "POST", "path": "/Groups", "bulkId": "ytrewq",
                "data": { "schemas": [GROUP_SCHEMA], "displayName": "Group B", "members": [{ "type": "Group", "value": "bulkId:qwerty" }] },
            },
        ])),
    )
    .await;
    assert_eq!(ops.len(), 2, "{ops:?}");
    let by_bulk_id = |b: &str| ops.iter().find(|o| o["bulkId"] == b).expect("answered").clone();
    let (a_op, b_op) = (by_bulk_id("qwerty"), by_bulk_id("ytrewq"));
    let a = assert_created(&app, &a_op, "Groups", "qwerty");
    let b = assert_created(&app, &b_op, "Groups", "ytrewq");
    let group_a = get_json(&app, &format!("/scim/v2/Groups/{a}")).await;
    let group_b = get_json(&app, &format!("/scim/v2/Groups/{b}")).await;
    assert_eq!(member_ids(&group_a), [b.as_str()]);
    assert_eq!(member_ids(&group_b), [a.as_str()]);
    // B runs first (A refers to it), without A, which is added once A exists:
    // B is answered last, with the version that change produced.
    assert_eq!(ops[0]["bulkId"], "qwerty");
    assert_eq!(ops[1]["bulkId"], "ytrewq");
    assert_eq!(group_b["meta"]["version"], b_op["version"]);
}

#[tokio::test]
async fn circular_references_that_cannot_be_broken_fail_with_409_and_create_nothing() {
    let app = spawn_app().await;
    let managed_by = |bulk_id: &str, user_name: &str, manager: &str| {
        json!({
            "method": "POST", "path": "/Users", "bulkId": bulk_id,
            "data": {
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": user_name,
                ENTERPRISE: { "manager": { "value": format!("bulkId:{manager}") } },
            },
        })
    };
    let ops = bulk(
        &app,
        &bulk_request(json!([
            managed_by("u1", "one", "u2"),
            managed_by("u2", "two", "u1"),
            post_user("u3", "three"),
            managed_by("u4", "four", "u3"),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 4, "{ops:?}");
    let detail = assert_failed(&ops[0], "409", None);
    assert!(detail.contains("circular"), "{detail}");
    assert_failed(&ops[1], "409", None);
    let three = assert_created(&app, &ops[2], "Users", "u3");
    let four = assert_created(&app, &ops[3], "Users", "u4");
    let user = get_json(&app, &format!("/scim/v2/Users/{four}")).await;
    assert_eq!(user[ENTERPRISE]["manager"]["value"], json!(three));
    assert_eq!(app.total("/scim/v2/Users").await, 2);
}

#[tokio::test]
async fn a_reference_to_an_unknown_bulk_id_fails_with_409() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            post_group("g", "Ghosts", &["bulkId:nobody"]),
            { "method": "DELETE", "path": "/Users/bulkId:nobody" },
        ])),
    )
    .await;
    assert_eq!(ops.len(), 2);
    let detail = assert_failed(&ops[0], "409", None);
    assert!(detail.contains("nobody"), "{detail}");
    assert!(ops[0].get("location").is_none());
    assert_failed(&ops[1], "409", None);
    assert!(ops[1].get("location").is_none(), "the target is unknown: {:?}", ops[1]);
    assert_eq!(app.total("/scim/v2/Groups").await, 0);
}

#[tokio::test]
async fn a_reference_to_a_post_that_failed_fails_with_409() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            { "method": "POST", "path": "/Users", "bulkId": "broken", "data": { "schemas": [USER_SCHEMA] } },
            post_group("g", "Orphans", &["bulkId:broken"]),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["status"], "400", "{:?}", ops[0]);
    let detail = assert_failed(&ops[1], "409", None);
    assert!(detail.contains("broken"), "{detail}");
    assert_eq!(app.total("/scim/v2/Groups").await, 0);
}

#[tokio::test]
async fn a_duplicate_bulk_id_fails_with_400_invalid_value_and_references_use_the_first() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            post_user("dup", "first"),
            post_user("dup", "second"),
            post_group("g", "G", &["bulkId:dup"]),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 3);
    let first = assert_created(&app, &ops[0], "Users", "dup");
    assert_failed(&ops[1], "400", Some("invalidValue"));
    assert_eq!(ops[1]["bulkId"], "dup");
    let group = assert_created(&app, &ops[2], "Groups", "g");
    assert_eq!(
        member_ids(&get_json(&app, &format!("/scim/v2/Groups/{group}")).await),
        [first]
    );
    assert_eq!(app.total("/scim/v2/Users").await, 1);
}

#[tokio::test]
async fn more_operations_than_max_operations_returns_413_and_runs_none() {
    let app = spawn_app().await;
    let mut operations = vec![post_user("a", "should-not-exist")];
    operations.extend((0..1000).map(|i| json!({ "method": "DELETE", "path": format!("/Users/x{i}") })));
    let response = send_bulk(&app, &app.admin_key, "/scim/v2/Bulk", &bulk_request(json!(operations))).await;
    let body = assert_scim_error(response, 413, None).await;
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("maxOperations (1000)"),
        "{body}"
    );
    assert_eq!(app.total("/scim/v2/Users").await, 0);
}

#[tokio::test]
async fn a_body_over_max_payload_size_returns_413_naming_the_limit() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 4096).await;
    let big = "x".repeat(5000);
    let body = bulk_request(json!([post_group("g", &big, &[])]));
    let response = send_bulk(&app, &app.admin_key, "/scim/v2/Bulk", &body).await;
    let error = assert_scim_error(response, 413, None).await;
    assert!(
        error["detail"]
            .as_str()
            .expect("detail")
            .contains("maxPayloadSize (4096)"),
        "{error}"
    );
    assert_eq!(app.total("/scim/v2/Groups").await, 0);
}

#[tokio::test]
async fn each_operation_needs_its_own_scope_and_fails_alone_with_403() {
    let app = spawn_app().await;
    let existing = app.create_user("existing").await;
    let existing_id = existing["id"].as_str().expect("id");
    let key = app.key_with_scopes(&[Scope::UsersWrite]).await;
    let ops = bulk_as(
        &app,
        &key,
        "/scim/v2/Bulk",
        &bulk_request(json!([
            post_user("u", "writer-made"),
            post_group("g", "Not allowed", &["bulkId:u"]),
            { "method": "DELETE", "path": format!("/Users/{existing_id}") },
            {
                "method": "PATCH",
                "path": format!("/Users/{existing_id}"),
                "data": { "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "E" }] },
            },
        ])),
    )
    .await;
    assert_eq!(ops.len(), 4);
    assert_created(&app, &ops[0], "Users", "u");
    let detail = assert_failed(&ops[1], "403", None);
    assert!(detail.contains("scim:groups:write"), "{detail}");
    let detail = assert_failed(&ops[2], "403", None);
    assert!(detail.contains("scim:users:delete"), "{detail}");
    assert_eq!(
        ops[2]["location"],
        json!(app.url(&format!("/scim/v2/Users/{existing_id}")))
    );
    assert_eq!(ops[3]["status"], "200", "{:?}", ops[3]);
    assert_eq!(app.total("/scim/v2/Groups").await, 0);
    assert_eq!(app.total("/scim/v2/Users").await, 2);
}

#[tokio::test]
async fn a_key_without_write_scopes_may_send_a_bulk_request_whose_operations_all_get_403() {
    let app = spawn_app().await;
    let key = app.key_with_scopes(&[Scope::UsersRead]).await;
    let ops = bulk_as(
        &app,
        &key,
        "/scim/v2/Bulk",
        &bulk_request(json!([post_user("u", "nope"), post_group("g", "nope", &[])])),
    )
    .await;
    assert_eq!(ops.len(), 2);
    assert_failed(&ops[0], "403", None);
    assert_failed(&ops[1], "403", None);
    assert_eq!(app.total("/scim/v2/Users").await, 0);
}

#[tokio::test]
async fn a_bulk_request_without_a_valid_key_gets_401() {
    let app = spawn_app().await;
    let body = bulk_request(json!([post_user("u", "anonymous")]));
    let response = app
        .client
        .post(app.url("/scim/v2/Bulk"))
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert_scim_error(response, 401, None).await;
    let response = send_bulk(&app, "scimd_not-a-real-key", "/scim/v2/Bulk", &body).await;
    assert_scim_error(response, 401, None).await;
    assert_eq!(app.total("/scim/v2/Users").await, 0);
}

#[tokio::test]
async fn the_tenant_path_works_in_that_tenant_with_locations_under_its_path() {
    let app = spawn_app().await;
    let created: Value = app
        .post("/admin/v1/tenants", &json!({ "name": "acme" }))
        .await
        .json()
        .await
        .expect("json");
    let key = created["key"].as_str().expect("tenant key");
    let ops = bulk_as(
        &app,
        key,
        "/t/acme/scim/v2/Bulk",
        &bulk_request(json!([
            post_user("u", "roadrunner"),
            post_group("g", "Birds", &["bulkId:u"])
        ])),
    )
    .await;
    assert_eq!(ops.len(), 2);
    for op in &ops {
        assert_eq!(op["status"], "201", "{op}");
        let location = op["location"].as_str().expect("location");
        assert!(location.starts_with(&app.url("/t/acme/scim/v2/")), "{location}");
    }
    assert_eq!(
        app.total("/scim/v2/Users").await,
        0,
        "nothing lands in the default tenant"
    );
    let wrong_tenant = send_bulk(&app, key, "/t/default/scim/v2/Bulk", &bulk_request(json!([]))).await;
    assert_scim_error(wrong_tenant, 401, None).await;
}

#[tokio::test]
async fn the_service_provider_config_advertises_bulk_with_its_limits() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 200_000).await;
    let spc: Value = json_body(app.client.get(app.url("/scim/v2/ServiceProviderConfig"))).await;
    assert_eq!(
        spc["bulk"],
        json!({ "supported": true, "maxOperations": 1000, "maxPayloadSize": 200_000 })
    );
}

#[tokio::test]
async fn a_broken_envelope_is_400_invalid_syntax_but_a_bad_operation_fails_alone() {
    let app = spawn_app().await;
    for body in [
        json!([]),
        json!({ "schemas": [BULK_REQUEST] }),
        json!({ "schemas": [BULK_REQUEST], "Operations": "all of them" }),
        json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [] }),
    ] {
        let response = send_bulk(&app, &app.admin_key, "/scim/v2/Bulk", &body).await;
        assert_scim_error(response, 400, Some("invalidSyntax")).await;
    }
    let not_json = app
        .request(Method::POST, "/scim/v2/Bulk")
        .header("Content-Type", "application/scim+json")
        .body("{\"Operations\": [")
        .send()
        .await
        .expect("request");
    assert_scim_error(not_json, 400, Some("invalidSyntax")).await;
    let bad_fail_on_errors = json!({ "Operations": [], "failOnErrors": "many" });
    let response = send_bulk(&app, &app.admin_key, "/scim/v2/Bulk", &bad_fail_on_errors).await;
    assert_scim_error(response, 400, Some("invalidValue")).await;

    let ops = bulk(
        &app,
        &json!({
            // No `schemas`, lower-case member names and methods: accepted.
            "operations": [
                { "method": "GET", "path": "/Users" },
                { "method": "POST", "path": "/Widgets", "data": {} },
                { "method": "POST", "path": "/Users/123", "data": { "userName": "x" } },
                { "method": "PUT", "path": "/Users/123" },
                { "method": "DELETE", "path": "/Users" },
                42,
                { "method": "post", "path": "Users", "bulkId": "ok", "data": { "userName": "lenient" } },
            ],
        }),
    )
    .await;
    assert_eq!(ops.len(), 7, "{ops:?}");
    for op in &ops[..6] {
        assert_failed(op, "400", Some("invalidSyntax"));
    }
    assert_eq!(ops[0]["method"], "GET", "an unknown method is echoed as sent");
    assert!(ops[5].get("method").is_none());
    assert_created(&app, &ops[6], "Users", "ok");
    assert_eq!(app.total("/scim/v2/Users").await, 1);
}

#[tokio::test]
async fn bulk_answers_405_with_allow_post_to_other_methods() {
    let app = spawn_app().await;
    let response = app.get("/scim/v2/Bulk").await;
    assert_eq!(response.headers()["allow"], "POST");
    assert_scim_error(response, 405, None).await;
}

#[tokio::test]
async fn bulk_operations_are_audited_like_single_requests() {
    let app = spawn_app().await;
    let ops = bulk(&app, &bulk_request(json!([post_user("u", "audited")]))).await;
    let id = assert_created(&app, &ops[0], "Users", "u");
    let events = get_json(&app, &format!("/admin/v1/audit-events?targetId={id}")).await;
    let event = &events["items"][0];
    assert_eq!(event["action"], "user.created", "{events}");
    assert_eq!(event["actor"]["keyId"], json!(&app.admin_key[..32]));
    assert_eq!(event["outcome"], "success", "{event}");
}

#[tokio::test]
async fn an_operation_that_fails_inside_a_batch_is_undone_alone() {
    let app = spawn_app().await;
    let ops = bulk(
        &app,
        &bulk_request(json!([
            post_user("a", "twin"),
            post_user("b", "TWIN"),
            post_group("g", "Pair", &["bulkId:a", "bulkId:b"]),
            post_group("h", "Single", &["bulkId:a"]),
            post_user("c", "other"),
        ])),
    )
    .await;
    assert_eq!(ops.len(), 5, "{ops:?}");
    let a = assert_created(&app, &ops[0], "Users", "a");
    assert_failed(&ops[1], "409", Some("uniqueness"));
    assert_failed(&ops[2], "409", None);
    let h = assert_created(&app, &ops[3], "Groups", "h");
    assert_created(&app, &ops[4], "Users", "c");

    assert_eq!(app.total("/scim/v2/Users").await, 2);
    assert_eq!(app.total("/scim/v2/Groups").await, 1);
    let group = get_json(&app, &format!("/scim/v2/Groups/{h}")).await;
    assert_eq!(member_ids(&group), [a]);
    // The undone operations left no audit event behind; the others did.
    let created = get_json(&app, "/admin/v1/audit-events?action=user.created").await;
    assert_eq!(created["items"].as_array().map(Vec::len), Some(2), "{created}");
    let groups = get_json(&app, "/admin/v1/audit-events?action=group.created").await;
    assert_eq!(groups["items"].as_array().map(Vec::len), Some(1), "{groups}");
}

#[tokio::test]
async fn single_requests_proceed_while_a_large_bulk_request_runs() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 1024 * 1024).await;
    let operations: Vec<Value> = (0..1000)
        .map(|i| post_user(&format!("u{i}"), &format!("bulk{i:04}")))
        .collect();
    let body = bulk_request(json!(operations));
    let bulk_request = bulk(&app, &body);
    let singles = async {
        let mut statuses = Vec::new();
        for i in 0..20 {
            let response = app
                .post(
                    "/scim/v2/Users",
                    &json!({ "schemas": [USER_SCHEMA], "userName": format!("single{i}") }),
                )
                .await;
            statuses.push(response.status().as_u16());
        }
        statuses
    };
    let (ops, statuses) = tokio::join!(bulk_request, singles);
    assert!(ops.iter().all(|o| o["status"] == "201"), "every bulk create succeeded");
    assert_eq!(statuses, vec![201; 20], "every single create succeeded");
    assert_eq!(app.total("/scim/v2/Users?count=1").await, 1020);
}

#[tokio::test]
async fn a_thousand_creates_in_one_request_succeed() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 1024 * 1024).await;
    let operations: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "method": "POST",
                "path": "/Users",
                "bulkId": format!("u{i}"),
                "data": {
                    "schemas": [USER_SCHEMA],
                    "userName": format!("user{i:04}@example.com"),
                    "name": { "givenName": "Load", "familyName": format!("Test {i}") },
                    "emails": [{ "value": format!("user{i:04}@example.com"), "type": "work", "primary": true }],
                    "active": true,
                },
            })
        })
        .collect();
    let body = bulk_request(json!(operations));
    let started = Instant::now();
    let ops = bulk(&app, &body).await;
    let elapsed = started.elapsed();
    println!(
        "1000 creates in one bulk request ({} bytes): {elapsed:?}",
        body.to_string().len()
    );
    assert_eq!(ops.len(), 1000);
    assert!(ops.iter().all(|o| o["status"] == "201"), "every create succeeded");
    assert_eq!(app.total("/scim/v2/Users?count=1").await, 1000);
}

/// Two Bulks that add the same users to groups in opposite orders lock the
/// users' rows in opposite orders: on PostgreSQL one transaction is chosen
/// as a deadlock victim. Every operation must still succeed, and every
/// membership be there.
#[tokio::test]
async fn concurrent_bulks_touching_the_same_users_in_opposite_orders_all_succeed() {
    let app = spawn_app().await;
    const USERS: usize = 40;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(
            app.create_user(&format!("crossed{i}")).await["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let mut groups = Vec::new();
    for i in 0..USERS * 2 {
        groups.push(
            app.create_group(&format!("crossed-group-{i}"), &[]).await["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    // Bulk A: group i gets user i; Bulk B: group USERS + i gets user USERS - 1 - i.
    let add = |group: &str, user: &str| {
        json!({
            "method": "PATCH",
            "path": format!("/Groups/{group}"),
            "data": { "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": user }] }] },
        })
    };
    let a: Vec<Value> = (0..USERS).map(|i| add(&groups[i], &users[i])).collect();
    let b: Vec<Value> = (0..USERS)
        .map(|i| add(&groups[USERS + i], &users[USERS - 1 - i]))
        .collect();
    let (a, b) = (bulk_request(json!(a)), bulk_request(json!(b)));
    for _round in 0..3 {
        let (answers_a, answers_b) = tokio::join!(bulk(&app, &a), bulk(&app, &b));
        for op in answers_a.iter().chain(&answers_b) {
            assert_eq!(op["status"], "200", "{op}");
        }
    }
    for (i, user) in users.iter().enumerate() {
        let fetched = get_json(&app, &format!("/scim/v2/Users/{user}")).await;
        let mut held: Vec<&str> = fetched["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["value"].as_str().expect("value"))
            .collect();
        held.sort();
        let mut expected = vec![groups[i].as_str(), groups[USERS + (USERS - 1 - i)].as_str()];
        expected.sort();
        assert_eq!(held, expected, "user {i}");
    }
}

/// A user POST of the kind Bulk sends to the database together with its
/// neighbours (see `bulk::Job::flush_run`), with values to filter on.
fn post_full_user(i: usize) -> Value {
    json!({
        "method": "POST",
        "path": "/Users",
        "bulkId": format!("u{i}"),
        "data": {
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": format!("together{i:03}@example.com"),
            "name": { "givenName": "Run", "familyName": format!("Family{i:03}") },
            "emails": [{ "value": format!("mail{i:03}@example.com"), "type": "work", "primary": true }],
            "active": i.is_multiple_of(2),
            ENTERPRISE: { "employeeNumber": format!("E{i:03}") },
        },
    })
}

/// The ids of the users a filter finds.
async fn found(app: &TestApp, filter: &str) -> Vec<String> {
    let path = format!("/scim/v2/Users?filter={}", urlencoding(filter));
    let list = get_json(app, &path).await;
    list["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn users_created_together_each_keep_their_own_values_and_audit_event() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 1024 * 1024).await;
    const USERS: usize = 120;
    let ops = bulk(
        &app,
        &bulk_request(json!((0..USERS).map(post_full_user).collect::<Vec<_>>())),
    )
    .await;
    let ids: Vec<String> = (0..USERS)
        .map(|i| assert_created(&app, &ops[i], "Users", &format!("u{i}")))
        .collect();
    assert_eq!(app.total("/scim/v2/Users").await, USERS as u64);
    // Users at both ends of each group of creates, found by values of
    // their own (a value row under another user's id would show here).
    for i in [0, 1, 49, 50, 51, 99, 100, 119] {
        let user = get_json(&app, &format!("/scim/v2/Users/{}", ids[i])).await;
        assert_eq!(user["userName"], format!("together{i:03}@example.com"), "{user}");
        assert_eq!(user["active"], i.is_multiple_of(2), "{user}");
        assert_eq!(user["meta"]["version"], ops[i]["version"], "{user}");
        assert_eq!(
            found(&app, &format!("emails.value eq \"mail{i:03}@example.com\"")).await,
            [ids[i].clone()]
        );
        assert_eq!(
            found(&app, &format!("name.familyName eq \"Family{i:03}\"")).await,
            [ids[i].clone()]
        );
        let employee = format!("{ENTERPRISE}:employeeNumber eq \"E{i:03}\"");
        assert_eq!(found(&app, &employee).await, [ids[i].clone()]);
    }
    assert_eq!(
        app.total("/scim/v2/Users?filter=active%20eq%20true").await,
        (USERS / 2) as u64
    );
    let mut audited: Vec<String> = Vec::new();
    let mut cursor = "/admin/v1/audit-events?action=user.created&limit=100".to_string();
    loop {
        let page = get_json(&app, &cursor).await;
        for event in page["items"].as_array().expect("items") {
            audited.push(event["target"]["id"].as_str().expect("target id").to_string());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("/admin/v1/audit-events?action=user.created&limit=100&cursor={next}"),
            None => break,
        }
    }
    audited.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(audited, expected, "one user.created event per user");
}

#[tokio::test]
async fn a_taken_user_name_among_users_created_together_fails_alone() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 1024 * 1024).await;
    app.create_user("taken@example.com").await;
    let mut operations: Vec<Value> = (0..60).map(post_full_user).collect();
    operations[30]["data"]["userName"] = json!("TAKEN@example.com");
    operations[45]["data"]["userName"] = json!("together010@example.com");
    let ops = bulk(&app, &bulk_request(json!(operations))).await;
    assert_eq!(ops.len(), 60);
    for (i, op) in ops.iter().enumerate() {
        match i {
            30 | 45 => {
                assert_failed(op, "409", Some("uniqueness"));
            }
            _ => {
                let id = assert_created(&app, op, "Users", &format!("u{i}"));
                let user = get_json(&app, &format!("/scim/v2/Users/{id}")).await;
                assert_eq!(user["userName"], format!("together{i:03}@example.com"));
            }
        }
    }
    assert_eq!(app.total("/scim/v2/Users").await, 59);
    // The attempt undone when the taken name refused the group left nothing.
    let created = get_json(&app, "/admin/v1/audit-events?action=user.created&limit=100").await;
    assert_eq!(created["items"].as_array().map(Vec::len), Some(59), "{created}");
    assert_eq!(found(&app, "emails.value eq \"mail030@example.com\"").await.len(), 0);
    assert_eq!(found(&app, "emails.value eq \"mail045@example.com\"").await.len(), 0);
}

#[tokio::test]
async fn fail_on_errors_counts_errors_of_users_sent_together_in_request_order() {
    let app = spawn_app().await;
    app.create_user("taken").await;
    let ops = bulk(
        &app,
        &json!({
            "schemas": [BULK_REQUEST],
            "failOnErrors": 2,
            "Operations": [
                post_user("a", "first"),
                post_user("b", "second"),
                { "method": "POST", "path": "/Users", "bulkId": "x", "data": { "schemas": [USER_SCHEMA], "displayName": "no userName" } },
                post_user("c", "taken"),
                post_user("d", "never"),
            ],
        }),
    )
    .await;
    assert_eq!(ops.len(), 4, "processing stops at the second error: {ops:?}");
    assert_created(&app, &ops[0], "Users", "a");
    assert_created(&app, &ops[1], "Users", "b");
    assert_eq!(ops[2]["status"], "400", "{:?}", ops[2]);
    assert_failed(&ops[3], "409", Some("uniqueness"));
    assert_eq!(app.total("/scim/v2/Users?filter=userName%20eq%20%22never%22").await, 0);
    assert_eq!(app.total("/scim/v2/Users").await, 3);
}

/// While one run of users is written, the next is validated ahead
/// (`bulk::Job::prepare_ahead`). What is validated ahead answers as it
/// would in its turn: an invalid user fails alone and counts toward
/// failOnErrors in request order, a group between runs stops the
/// look-ahead and runs in its place, and nothing after the stop is created.
#[tokio::test]
async fn users_validated_ahead_of_their_turn_answer_in_request_order() {
    let app = spawn_app_configured(|s| s.max_body_bytes = 1024 * 1024).await;
    app.create_user("taken@example.com").await;
    let mut operations: Vec<Value> = (0..120).map(post_full_user).collect();
    operations[70]["data"].as_object_mut().expect("data").remove("userName");
    operations[75] = post_group("g", "between runs", &["bulkId:u3"]);
    operations[110]["data"]["userName"] = json!("Taken@example.com");
    let ops = bulk(
        &app,
        &json!({ "schemas": [BULK_REQUEST], "failOnErrors": 2, "Operations": operations }),
    )
    .await;
    assert_eq!(ops.len(), 111, "processing stops at the second error");
    for (i, op) in ops.iter().enumerate() {
        match i {
            70 => assert_eq!(op["status"], "400", "{op}"),
            75 => {
                let id = assert_created(&app, op, "Groups", "g");
                let group = get_json(&app, &format!("/scim/v2/Groups/{id}")).await;
                assert_eq!(group["members"].as_array().map(Vec::len), Some(1), "{group}");
            }
            110 => {
                assert_failed(op, "409", Some("uniqueness"));
            }
            _ => {
                let id = assert_created(&app, op, "Users", &format!("u{i}"));
                assert_eq!(
                    found(&app, &format!("emails.value eq \"mail{i:03}@example.com\"")).await,
                    [id]
                );
            }
        }
    }
    // 108 of the first 110 operations created users, beside the taken one.
    assert_eq!(app.total("/scim/v2/Users").await, 109);
    assert_eq!(found(&app, "emails.value eq \"mail111@example.com\"").await.len(), 0);
}
