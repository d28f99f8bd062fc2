//! The admin API (contract §4) over real HTTP: service users, API keys,
//! tenants and the audit log, the scopes each endpoint needs (§3), and the
//! problem+json errors.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::{Method, Response};
use scimd::auth::Scope;
use serde_json::{Value, json};

use crate::helpers::{TestApp, USER_SCHEMA, spawn_app};

const SERVICE_USERS: &str = "/admin/v1/service-users";
const KEYS: &str = "/admin/v1/keys";
const TENANTS: &str = "/admin/v1/tenants";
const AUDIT: &str = "/admin/v1/audit-events";
const PROBLEM_JSON: &str = "application/problem+json";
const BOOTSTRAP: &str = "bootstrap-admin";

// --- helpers ----------------------------------------------------------------

async fn send(app: &TestApp, key: &str, method: Method, path: &str, body: Option<&Value>) -> Response {
    let mut request = app.request_with(key, method, path);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// A request with the bootstrap admin key.
async fn admin(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Response {
    send(app, &app.admin_key, method, path, body).await
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Asserts the status and returns the JSON body.
async fn expect_json(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
}

/// Asserts an RFC 9457 problem answer with `status` and returns its body.
async fn expect_problem(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "status; body: {text}");
    assert!(
        content_type.starts_with(PROBLEM_JSON),
        "content type {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("problem body is JSON ({e}): {text}"));
    for field in ["type", "title", "detail"] {
        assert!(body[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {body}");
    }
    assert_eq!(body["status"], json!(status), "status is a number: {body}");
    body
}

/// Asserts a 403 problem whose detail names `scope`.
async fn expect_forbidden_naming(response: Response, scope: &str) {
    let problem = expect_problem(response, 403).await;
    assert!(detail(&problem).contains(scope), "403 names {scope}: {problem}");
}

fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().unwrap_or_default()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("string {field} in {value}"))
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap_or_else(|| panic!("items in {page}"))
}

fn field_values(page: &Value, field: &str) -> Vec<String> {
    items(page).iter().map(|item| str_of(item, field).to_string()).collect()
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("array expected, got {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp expected, got {value}"));
    let parsed = DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text} is not UTC");
    parsed.with_timezone(&Utc)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn assert_near(actual: DateTime<Utc>, expected: DateTime<Utc>, what: &str) {
    assert!(
        (actual - expected).num_seconds().abs() <= 120,
        "{what}: {actual} is not close to {expected}"
    );
}

/// The public ID of a full key.
fn key_id(full_key: &str) -> &str {
    &full_key[..32]
}

/// What follows the public ID and its separator: the secret and checksum.
fn secret_part(full_key: &str) -> &str {
    &full_key[33..]
}

fn su_path(service_user: &Value) -> String {
    format!("{SERVICE_USERS}/{}", str_of(service_user, "id"))
}

fn key_path(id: &str) -> String {
    format!("{KEYS}/{id}")
}

async fn create_service_user(app: &TestApp, name: &str, role: &str) -> Value {
    let body = json!({ "name": name, "role": role });
    expect_json(admin(app, Method::POST, SERVICE_USERS, Some(&body)).await, 201).await
}

/// Creates a key for `service_user` with the bootstrap key; returns the 201 answer.
async fn create_key(app: &TestApp, service_user: &Value, body: &Value) -> Value {
    let path = format!("{}/keys", su_path(service_user));
    expect_json(admin(app, Method::POST, &path, Some(body)).await, 201).await
}

/// A service user of `role` holding one key with the role's scopes:
/// (service user, key answer, full key).
async fn service_user_with_key(app: &TestApp, name: &str, role: &str) -> (Value, Value, String) {
    let service_user = create_service_user(app, name, role).await;
    let key = create_key(app, &service_user, &json!({ "name": format!("{name}-key") })).await;
    let full = str_of(&key, "key").to_string();
    (service_user, key, full)
}

/// A SCIM request with `key`; a POST creates a user with a fresh userName.
async fn scim_status(app: &TestApp, key: &str, method: Method, path: &str) -> u16 {
    let mut request = app.request_with(key, method.clone(), path);
    if method == Method::POST {
        let user_name = format!("u{}", uuid::Uuid::new_v4().simple());
        request = request.json(&json!({ "schemas": [USER_SCHEMA], "userName": user_name }));
    }
    request.send().await.expect("request").status().as_u16()
}

async fn list_with(app: &TestApp, key: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let response = app
        .request_with(key, Method::GET, path)
        .query(query)
        .send()
        .await
        .expect("request");
    expect_json(response, 200).await
}

async fn list(app: &TestApp, path: &str, query: &[(&str, &str)]) -> Value {
    list_with(app, &app.admin_key, path, query).await
}

async fn list_status(app: &TestApp, path: &str, query: &[(&str, &str)]) -> Response {
    app.request(Method::GET, path)
        .query(query)
        .send()
        .await
        .expect("request")
}

/// Every page of a list, following `nextCursor`; asserts the page shape.
async fn all_pages(app: &TestApp, key: &str, path: &str, query: &[(&str, &str)], limit: usize) -> Vec<Value> {
    let limit_text = limit.to_string();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("limit", &limit_text));
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let page = list_with(app, key, path, &q).await;
        assert!(items(&page).len() <= limit, "page larger than limit: {page}");
        assert!(page["total"].is_u64(), "total in {page}");
        assert!(
            page.get("nextCursor").is_some(),
            "nextCursor present (maybe null) in {page}"
        );
        let next = page["nextCursor"].as_str().map(str::to_string);
        pages.push(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
    pages
}

/// Audit events of the bootstrap admin's tenant matching `query`.
async fn events(app: &TestApp, query: &[(&str, &str)]) -> Vec<Value> {
    events_with(app, &app.admin_key, query).await
}

async fn events_with(app: &TestApp, key: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let mut q = query.to_vec();
    q.push(("limit", "500"));
    items(&list_with(app, key, AUDIT, &q).await).clone()
}

async fn bootstrap_service_user(app: &TestApp) -> Value {
    let page = list(app, SERVICE_USERS, &[("q", BOOTSTRAP)]).await;
    items(&page)
        .iter()
        .find(|su| su["name"] == BOOTSTRAP)
        .cloned()
        .unwrap_or_else(|| panic!("bootstrap admin in {page}"))
}

async fn get_key(app: &TestApp, id: &str) -> Value {
    expect_json(admin(app, Method::GET, &key_path(id), None).await, 200).await
}

async fn key_action(app: &TestApp, id: &str, action: &str, body: Option<&Value>) -> Response {
    admin(app, Method::POST, &format!("{}/{action}", key_path(id)), body).await
}

async fn batch(app: &TestApp, action: &str, ids: &[&str]) -> BTreeMap<String, u16> {
    let body = json!({ "action": action, "ids": ids });
    let answer = expect_json(
        admin(app, Method::POST, &format!("{KEYS}/batch"), Some(&body)).await,
        200,
    )
    .await;
    let results = answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results in {answer}"));
    assert_eq!(results.len(), ids.len(), "one result per id: {answer}");
    results
        .iter()
        .map(|r| {
            let status = r["status"].as_u64().unwrap_or_else(|| panic!("numeric status in {r}"));
            (str_of(r, "id").to_string(), u16::try_from(status).expect("HTTP status"))
        })
        .collect()
}

/// Creates tenant `name` with the bootstrap key; returns the 201 answer.
async fn create_tenant(app: &TestApp, name: &str) -> Value {
    expect_json(
        admin(app, Method::POST, TENANTS, Some(&json!({ "name": name }))).await,
        201,
    )
    .await
}

fn unknown_key_id() -> String {
    scimd::auth::key::generate().id().to_string()
}

// --- service users ------------------------------------------------------------

#[tokio::test]
async fn creating_a_service_user_returns_201_with_every_contract_field() {
    let app = spawn_app().await;
    let body = json!({ "name": "billing-sync", "description": "Syncs the billing system", "role": "provisioner" });
    let response = admin(&app, Method::POST, SERVICE_USERS, Some(&body)).await;
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let user = expect_json(response, 201).await;
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()), "{user}");
    assert_eq!(user["name"], "billing-sync");
    assert_eq!(user["description"], "Syncs the billing system");
    assert_eq!(user["role"], "provisioner");
    assert_eq!(user["tenant"], "default");
    assert_eq!(user["interactive"], false);
    assert_eq!(user["keyCount"], 0);
    assert_eq!(user["createdBy"], BOOTSTRAP);
    assert_eq!(user["updatedBy"], BOOTSTRAP);
    assert_near(timestamp(&user["createdAt"]), Utc::now(), "createdAt");
    assert_near(timestamp(&user["updatedAt"]), Utc::now(), "updatedAt");
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(fetched, user, "GET answers what POST answered");
}

#[tokio::test]
async fn every_built_in_role_can_be_given_to_a_service_user() {
    let app = spawn_app().await;
    for role in ["admin", "provisioner", "reader", "user-cleanup"] {
        let user = create_service_user(&app, &format!("as-{role}"), role).await;
        assert_eq!(user["role"], role);
    }
}

#[tokio::test]
async fn service_user_names_are_unique_case_insensitively_and_a_duplicate_returns_409() {
    let app = spawn_app().await;
    create_service_user(&app, "Billing-Sync", "reader").await;
    for name in ["billing-sync", "BILLING-SYNC", "Billing-Sync"] {
        let body = json!({ "name": name, "role": "provisioner" });
        expect_problem(admin(&app, Method::POST, SERVICE_USERS, Some(&body)).await, 409).await;
    }
    let body = json!({ "name": "Bootstrap-Admin", "role": "reader" });
    expect_problem(admin(&app, Method::POST, SERVICE_USERS, Some(&body)).await, 409).await;
    let page = list(&app, SERVICE_USERS, &[("q", "billing")]).await;
    assert_eq!(page["total"], 1, "{page}");
}

#[tokio::test]
async fn creating_a_service_user_with_an_unknown_role_returns_400() {
    let app = spawn_app().await;
    for role in ["superuser", "Admin", ""] {
        let body = json!({ "name": "svc", "role": role });
        expect_problem(admin(&app, Method::POST, SERVICE_USERS, Some(&body)).await, 400).await;
    }
    let page = list(&app, SERVICE_USERS, &[("q", "svc")]).await;
    assert_eq!(page["total"], 0, "nothing was created: {page}");
}

#[tokio::test]
async fn creating_a_service_user_with_an_invalid_name_returns_400() {
    let app = spawn_app().await;
    for name in ["", "   ", "a/b", "../etc", "line\nbreak"] {
        let body = json!({ "name": name, "role": "reader" });
        expect_problem(admin(&app, Method::POST, SERVICE_USERS, Some(&body)).await, 400).await;
    }
}

#[tokio::test]
async fn creating_a_service_user_with_an_unknown_or_missing_field_or_bad_json_returns_400() {
    let app = spawn_app().await;
    let unknown = json!({ "name": "svc", "role": "reader", "password": "hunter2" });
    expect_problem(admin(&app, Method::POST, SERVICE_USERS, Some(&unknown)).await, 400).await;
    let missing_role = json!({ "name": "svc" });
    expect_problem(admin(&app, Method::POST, SERVICE_USERS, Some(&missing_role)).await, 400).await;
    let response = app
        .request(Method::POST, SERVICE_USERS)
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("request");
    expect_problem(response, 400).await;
}

#[tokio::test]
async fn listing_service_users_filters_by_q_and_pages_with_an_opaque_cursor() {
    let app = spawn_app().await;
    let wanted = ["pager-c", "pager-a", "pager-e", "pager-b", "pager-d"];
    for name in wanted {
        create_service_user(&app, name, "reader").await;
    }
    create_service_user(&app, "other", "reader").await;

    let pages = all_pages(&app, &app.admin_key, SERVICE_USERS, &[("q", "pager")], 2).await;
    assert_eq!(pages.len(), 3, "5 matches in pages of 2: {pages:?}");
    let mut seen = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page["total"], 5, "total on every page: {page}");
        let last = i == pages.len() - 1;
        assert_eq!(
            page["nextCursor"].is_null(),
            last,
            "nextCursor null only on the last page: {page}"
        );
        seen.extend(field_values(page, "name"));
    }
    assert_eq!(seen.len(), 5, "no duplicates across pages: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), set_of(&wanted));

    let everything = list(&app, SERVICE_USERS, &[]).await;
    assert_eq!(everything["total"], 7, "six plus the bootstrap admin: {everything}");
    assert_eq!(items(&everything).len(), 7);
    assert!(everything["nextCursor"].is_null());

    let none = list(&app, SERVICE_USERS, &[("q", "no-such-name")]).await;
    assert_eq!(none["total"], 0);
    assert_eq!(none["items"], json!([]));
    assert!(none["nextCursor"].is_null());
}

#[tokio::test]
async fn a_list_without_limit_holds_50_items_and_q_ignores_case() {
    let app = spawn_app().await;
    for i in 0..55 {
        create_service_user(&app, &format!("bulk-{i:02}"), "reader").await;
    }
    let first = list(&app, SERVICE_USERS, &[]).await;
    assert_eq!(items(&first).len(), 50, "the default page size");
    assert_eq!(first["total"], 56);
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second = list(&app, SERVICE_USERS, &[("cursor", cursor)]).await;
    assert_eq!(items(&second).len(), 6);
    assert!(second["nextCursor"].is_null());
    let upper = list(&app, SERVICE_USERS, &[("q", "BULK-0")]).await;
    assert_eq!(upper["total"], 10, "{upper}");
}

#[tokio::test]
async fn a_list_limit_above_500_or_a_bad_cursor_returns_400() {
    let app = spawn_app().await;
    for path in [SERVICE_USERS, KEYS, AUDIT] {
        expect_problem(list_status(&app, path, &[("limit", "501")]).await, 400).await;
        expect_problem(list_status(&app, path, &[("limit", "many")]).await, 400).await;
        expect_problem(list_status(&app, path, &[("cursor", "not-a-cursor")]).await, 400).await;
        let page = list(&app, path, &[("limit", "500")]).await;
        assert!(page["items"].is_array(), "{page}");
    }
}

#[tokio::test]
async fn getting_a_service_user_returns_it_with_its_key_count_and_an_unknown_id_returns_404() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "counted", "reader").await;
    create_key(&app, &user, &json!({ "name": "one" })).await;
    create_key(&app, &user, &json!({ "name": "two" })).await;
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(fetched["id"], user["id"]);
    assert_eq!(fetched["name"], "counted");
    assert_eq!(fetched["keyCount"], 2);
    let listed = list(&app, SERVICE_USERS, &[("q", "counted")]).await;
    assert_eq!(items(&listed)[0]["keyCount"], 2, "{listed}");
    for id in [uuid::Uuid::new_v4().to_string(), "nope".to_string()] {
        expect_problem(
            admin(&app, Method::GET, &format!("{SERVICE_USERS}/{id}"), None).await,
            404,
        )
        .await;
    }
}

#[tokio::test]
async fn patching_a_service_user_changes_name_description_and_role_and_records_who() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "before", "reader").await;
    let other_actor = app.key_with_scopes(&[Scope::AdminServiceUsers]).await;
    let actor_name = str_of(&get_key(&app, key_id(&other_actor)).await, "serviceUserName").to_string();
    let path = su_path(&user);

    let renamed = expect_json(
        send(
            &app,
            &other_actor,
            Method::PATCH,
            &path,
            Some(&json!({ "name": "after" })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renamed["name"], "after");
    assert_eq!(renamed["role"], "reader", "absent fields stay as they are");
    assert_eq!(renamed["updatedBy"], actor_name.as_str());
    assert_eq!(renamed["createdBy"], BOOTSTRAP);
    assert!(timestamp(&renamed["updatedAt"]) >= timestamp(&user["updatedAt"]));

    let described = expect_json(
        admin(
            &app,
            Method::PATCH,
            &path,
            Some(&json!({ "description": "nightly job" })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(described["description"], "nightly job");
    assert_eq!(described["name"], "after");
    assert_eq!(described["updatedBy"], BOOTSTRAP);

    let promoted = expect_json(
        admin(&app, Method::PATCH, &path, Some(&json!({ "role": "provisioner" }))).await,
        200,
    )
    .await;
    assert_eq!(promoted["role"], "provisioner");

    let fetched = expect_json(admin(&app, Method::GET, &path, None).await, 200).await;
    assert_eq!(fetched["name"], "after");
    assert_eq!(fetched["description"], "nightly job");
    assert_eq!(fetched["role"], "provisioner");
    assert_eq!(fetched["id"], user["id"]);
}

#[tokio::test]
async fn patching_a_service_user_with_bad_input_or_an_unknown_id_fails_without_changing_it() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "steady", "reader").await;
    let path = su_path(&user);
    for body in [
        json!({ "role": "root" }),
        json!({ "name": "a/b" }),
        json!({ "interactive": true }),
    ] {
        expect_problem(admin(&app, Method::PATCH, &path, Some(&body)).await, 400).await;
    }
    let missing = format!("{SERVICE_USERS}/{}", uuid::Uuid::new_v4());
    expect_problem(
        admin(&app, Method::PATCH, &missing, Some(&json!({ "description": "x" }))).await,
        404,
    )
    .await;
    let fetched = expect_json(admin(&app, Method::GET, &path, None).await, 200).await;
    assert_eq!(fetched["name"], "steady");
    assert_eq!(fetched["role"], "reader");
    assert_eq!(fetched["interactive"], false);
}

#[tokio::test]
async fn renaming_a_service_user_onto_another_name_in_another_case_returns_409() {
    let app = spawn_app().await;
    create_service_user(&app, "alpha", "reader").await;
    let beta = create_service_user(&app, "beta", "reader").await;
    expect_problem(
        admin(&app, Method::PATCH, &su_path(&beta), Some(&json!({ "name": "ALPHA" }))).await,
        409,
    )
    .await;
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&beta), None).await, 200).await;
    assert_eq!(fetched["name"], "beta");
}

#[tokio::test]
async fn demoting_a_service_user_narrows_its_existing_keys_on_the_very_next_request() {
    let app = spawn_app().await;
    let (user, key, full) = service_user_with_key(&app, "importer", "provisioner").await;
    assert!(string_set(&key["scopes"]).contains("scim:users:write"), "{key}");
    assert_eq!(scim_status(&app, &full, Method::POST, "/scim/v2/Users").await, 201);

    let demoted = admin(&app, Method::PATCH, &su_path(&user), Some(&json!({ "role": "reader" }))).await;
    expect_json(demoted, 200).await;
    assert_eq!(scim_status(&app, &full, Method::POST, "/scim/v2/Users").await, 403);
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);

    // The key keeps its own scopes; the role bounds them again when restored.
    let restored = admin(
        &app,
        Method::PATCH,
        &su_path(&user),
        Some(&json!({ "role": "provisioner" })),
    )
    .await;
    expect_json(restored, 200).await;
    assert_eq!(scim_status(&app, &full, Method::POST, "/scim/v2/Users").await, 201);
}

#[tokio::test]
async fn deleting_a_service_user_returns_204_and_its_keys_get_401_at_once() {
    let app = spawn_app().await;
    let (user, key, first) = service_user_with_key(&app, "leaver", "reader").await;
    let second_answer = create_key(&app, &user, &json!({ "name": "second" })).await;
    let second = str_of(&second_answer, "key").to_string();
    for key in [&first, &second] {
        assert_eq!(scim_status(&app, key, Method::GET, "/scim/v2/Users").await, 200);
    }

    let response = admin(&app, Method::DELETE, &su_path(&user), None).await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.expect("body").is_empty(), "204 has no body");

    for key in [&first, &second] {
        assert_eq!(scim_status(&app, key, Method::GET, "/scim/v2/Users").await, 401);
    }
    expect_problem(admin(&app, Method::GET, &su_path(&user), None).await, 404).await;
    for id in [str_of(&key, "id"), str_of(&second_answer, "id")] {
        expect_problem(admin(&app, Method::GET, &key_path(id), None).await, 404).await;
        let deleted = events(&app, &[("action", "key.deleted"), ("targetId", id)]).await;
        assert_eq!(deleted.len(), 1, "the key's deletion is audited: {deleted:?}");
    }
    expect_problem(admin(&app, Method::DELETE, &su_path(&user), None).await, 404).await;
}

#[tokio::test]
async fn reading_service_users_works_with_any_admin_scope_but_not_with_scim_scopes_only() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "visible", "reader").await;
    for scope in [
        Scope::AdminServiceUsers,
        Scope::AdminKeysCreate,
        Scope::AdminKeysManage,
        Scope::AdminAuditRead,
    ] {
        let key = app.key_with_scopes(&[scope]).await;
        let page = list_with(&app, &key, SERVICE_USERS, &[("q", "visible")]).await;
        assert_eq!(page["total"], 1, "{scope}: {page}");
        let fetched = expect_json(send(&app, &key, Method::GET, &su_path(&user), None).await, 200).await;
        assert_eq!(fetched["name"], "visible", "{scope}");
    }
    let scim_only = app
        .key_with_scopes(&[Scope::UsersRead, Scope::UsersWrite, Scope::GroupsRead])
        .await;
    expect_problem(send(&app, &scim_only, Method::GET, SERVICE_USERS, None).await, 403).await;
    expect_problem(send(&app, &scim_only, Method::GET, &su_path(&user), None).await, 403).await;
}

#[tokio::test]
async fn changing_service_users_needs_admin_service_users() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "guarded", "reader").await;
    let key = app
        .key_with_scopes(&[Scope::AdminKeysCreate, Scope::AdminKeysManage, Scope::AdminAuditRead])
        .await;
    let create = json!({ "name": "sneaky", "role": "admin" });
    expect_forbidden_naming(
        send(&app, &key, Method::POST, SERVICE_USERS, Some(&create)).await,
        "admin:service-users",
    )
    .await;
    let patch = json!({ "role": "admin" });
    expect_forbidden_naming(
        send(&app, &key, Method::PATCH, &su_path(&user), Some(&patch)).await,
        "admin:service-users",
    )
    .await;
    expect_forbidden_naming(
        send(&app, &key, Method::DELETE, &su_path(&user), None).await,
        "admin:service-users",
    )
    .await;
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(fetched["role"], "reader");
    assert_eq!(list(&app, SERVICE_USERS, &[("q", "sneaky")]).await["total"], 0);
}

// --- keys -----------------------------------------------------------------------

#[tokio::test]
async fn creating_a_key_returns_201_with_the_full_key_once_its_file_name_and_no_store() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "exporter", "admin").await;
    let body = json!({ "name": "nightly", "description": "the nightly export" });
    let response = admin(&app, Method::POST, &format!("{}/keys", su_path(&user)), Some(&body)).await;
    assert_eq!(header(&response, "cache-control"), "no-store");
    let key = expect_json(response, 201).await;

    let id = str_of(&key, "id");
    let full = str_of(&key, "key");
    assert_eq!(id.len(), 32, "{key}");
    assert!(id.starts_with("scimd_"), "{id}");
    assert_eq!(full.len(), 83, "{full}");
    assert!(full.starts_with(id), "the key starts with its public ID");
    let created_at = timestamp(&key["createdAt"]);
    assert_near(created_at, Utc::now(), "createdAt");
    assert_eq!(
        str_of(&key, "fileName"),
        format!("APIKey-nightly-{}.key", created_at.format("%Y-%m-%d"))
    );
    assert_eq!(key["name"], "nightly");
    assert_eq!(key["description"], "the nightly export");
    assert_eq!(key["state"], "enabled");
    assert_eq!(key["type"], "service");
    assert_eq!(key["serviceUserId"], user["id"]);
    assert_eq!(key["serviceUserName"], "exporter");
    assert_eq!(key["tenant"], "default");
    assert_eq!(key["allowedIps"], json!([]));
    assert!(key["lastUsedAt"].is_null(), "never used yet: {key}");
    assert_eq!(key["createdBy"], BOOTSTRAP);
    assert_eq!(key["updatedBy"], BOOTSTRAP);
    timestamp(&key["updatedAt"]);
    // The test configuration keeps the default lifetime of 90 days.
    assert_near(
        timestamp(&key["expiresAt"]),
        Utc::now() + Duration::days(90),
        "expiresAt",
    );
    let role_scopes = set_of(&[
        "scim:users:read",
        "scim:users:write",
        "scim:users:delete",
        "scim:groups:read",
        "scim:groups:write",
        "scim:groups:delete",
        "admin:service-users",
        "admin:keys:create",
        "admin:keys:manage",
        "admin:audit:read",
    ]);
    assert_eq!(string_set(&key["scopes"]), role_scopes, "the admin role's scopes");

    assert_eq!(scim_status(&app, full, Method::GET, "/scim/v2/Users").await, 200);
    assert_eq!(scim_status(&app, full, Method::POST, "/scim/v2/Users").await, 201);
    let fetched = expect_json(send(&app, full, Method::GET, SERVICE_USERS, None).await, 200).await;
    assert!(fetched["total"].as_u64().is_some_and(|n| n >= 2), "{fetched}");
}

#[tokio::test]
async fn a_key_s_scopes_default_to_its_role_and_may_be_narrowed_at_creation() {
    let app = spawn_app().await;
    let expected = [
        ("reader", vec!["scim:users:read", "scim:groups:read"]),
        (
            "provisioner",
            vec![
                "scim:users:read",
                "scim:users:write",
                "scim:users:delete",
                "scim:groups:read",
                "scim:groups:write",
                "scim:groups:delete",
            ],
        ),
        ("user-cleanup", vec!["scim:users:read", "scim:users:delete"]),
    ];
    for (role, scopes) in expected {
        let (_, key, _) = service_user_with_key(&app, &format!("role-{role}"), role).await;
        assert_eq!(string_set(&key["scopes"]), set_of(&scopes), "{role}");
    }

    let user = create_service_user(&app, "narrow", "provisioner").await;
    let key = create_key(
        &app,
        &user,
        &json!({ "name": "read-users", "scopes": ["scim:users:read"] }),
    )
    .await;
    assert_eq!(key["scopes"], json!(["scim:users:read"]));
    let full = str_of(&key, "key");
    assert_eq!(scim_status(&app, full, Method::GET, "/scim/v2/Users").await, 200);
    assert_eq!(scim_status(&app, full, Method::GET, "/scim/v2/Groups").await, 403);
    assert_eq!(scim_status(&app, full, Method::POST, "/scim/v2/Users").await, 403);
}

#[tokio::test]
async fn a_key_scope_outside_the_role_returns_422_and_an_unknown_scope_400() {
    let app = spawn_app().await;
    let reader = create_service_user(&app, "reader", "reader").await;
    let path = format!("{}/keys", su_path(&reader));
    let outside = json!({ "name": "k", "scopes": ["scim:users:read", "scim:users:write"] });
    expect_problem(admin(&app, Method::POST, &path, Some(&outside)).await, 422).await;
    let unknown = json!({ "name": "k", "scopes": ["scim:users:admin"] });
    expect_problem(admin(&app, Method::POST, &path, Some(&unknown)).await, 400).await;

    let admin_user = create_service_user(&app, "an-admin", "admin").await;
    let tenants = json!({ "name": "k", "scopes": ["admin:tenants"] });
    let admin_path = format!("{}/keys", su_path(&admin_user));
    expect_problem(admin(&app, Method::POST, &admin_path, Some(&tenants)).await, 422).await;

    for user in [&reader, &admin_user] {
        let fetched = expect_json(admin(&app, Method::GET, &su_path(user), None).await, 200).await;
        assert_eq!(fetched["keyCount"], 0, "no key was created: {fetched}");
    }
}

#[tokio::test]
async fn creating_a_key_with_an_unknown_field_or_bad_name_or_for_an_unknown_service_user_fails() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "owner", "reader").await;
    let path = format!("{}/keys", su_path(&user));
    for body in [
        json!({ "name": "k", "secret": "chosen" }),
        json!({ "name": "a/b" }),
        json!({ "name": "" }),
        json!({}),
    ] {
        expect_problem(admin(&app, Method::POST, &path, Some(&body)).await, 400).await;
    }
    let missing = format!("{SERVICE_USERS}/{}/keys", uuid::Uuid::new_v4());
    expect_problem(
        admin(&app, Method::POST, &missing, Some(&json!({ "name": "k" }))).await,
        404,
    )
    .await;
}

#[tokio::test]
async fn an_eleventh_key_returns_409_naming_the_limit() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "busy", "reader").await;
    for i in 1..=10 {
        create_key(&app, &user, &json!({ "name": format!("k{i}") })).await;
    }
    let path = format!("{}/keys", su_path(&user));
    let problem = expect_problem(
        admin(&app, Method::POST, &path, Some(&json!({ "name": "k11" }))).await,
        409,
    )
    .await;
    assert!(detail(&problem).contains("10"), "the detail names the limit: {problem}");
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(fetched["keyCount"], 10);
}

#[tokio::test]
async fn concurrent_key_creations_never_give_a_service_user_more_than_10_keys() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "raced", "reader").await;
    let path = format!("{}/keys", su_path(&user));
    let attempts = (0..14).map(|i| {
        let (app, path) = (&app, &path);
        async move {
            let body = json!({ "name": format!("k{i}") });
            admin(app, Method::POST, path, Some(&body)).await.status().as_u16()
        }
    });
    let mut statuses = futures_util::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 10].as_slice(), [409; 4].as_slice()].concat());
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(fetched["keyCount"], 10);
}

#[tokio::test]
async fn a_key_lifetime_beyond_the_configured_maximum_returns_422() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "long-lived", "reader").await;
    // The test configuration keeps the default maximum of 365 days.
    let longest = create_key(&app, &user, &json!({ "name": "max", "expiresInDays": 365 })).await;
    assert_near(
        timestamp(&longest["expiresAt"]),
        Utc::now() + Duration::days(365),
        "expiresAt",
    );
    let path = format!("{}/keys", su_path(&user));
    let too_long = json!({ "name": "too-long", "expiresInDays": 366 });
    expect_problem(admin(&app, Method::POST, &path, Some(&too_long)).await, 422).await;
    let far = rfc3339(Utc::now() + Duration::days(400));
    let too_far = json!({ "name": "too-far", "expiresAt": far });
    expect_problem(admin(&app, Method::POST, &path, Some(&too_far)).await, 422).await;
}

#[tokio::test]
async fn an_expiry_in_the_past_or_both_expiry_fields_or_a_malformed_expiry_returns_400() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "timed", "reader").await;
    let path = format!("{}/keys", su_path(&user));
    let past = rfc3339(Utc::now() - Duration::hours(1));
    let soon = rfc3339(Utc::now() + Duration::days(10));
    for body in [
        json!({ "name": "k", "expiresAt": past }),
        json!({ "name": "k", "expiresAt": soon, "expiresInDays": 10 }),
        json!({ "name": "k", "expiresInDays": 0 }),
        json!({ "name": "k", "expiresInDays": -5 }),
        json!({ "name": "k", "expiresAt": "next tuesday" }),
    ] {
        expect_problem(admin(&app, Method::POST, &path, Some(&body)).await, 400).await;
    }
    let fetched = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(fetched["keyCount"], 0);
}

#[tokio::test]
async fn an_explicit_expires_at_is_kept() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "dated", "reader").await;
    let at = Utc::now() + Duration::days(10);
    let key = create_key(&app, &user, &json!({ "name": "k", "expiresAt": rfc3339(at) })).await;
    let stored = timestamp(&key["expiresAt"]);
    assert!((stored - at).num_seconds().abs() <= 1, "{stored} vs {at}");
    let fetched = get_key(&app, str_of(&key, "id")).await;
    assert_eq!(fetched["expiresAt"], key["expiresAt"]);
}

#[tokio::test]
async fn allowed_ips_refuse_other_addresses_with_403_and_a_bad_cidr_returns_400() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "fenced", "admin").await;
    let elsewhere = create_key(&app, &user, &json!({ "name": "office", "allowedIps": ["10.0.0.0/8"] })).await;
    assert_eq!(elsewhere["allowedIps"], json!(["10.0.0.0/8"]));
    let elsewhere_key = str_of(&elsewhere, "key");
    assert_eq!(
        scim_status(&app, elsewhere_key, Method::GET, "/scim/v2/Users").await,
        403
    );
    expect_problem(send(&app, elsewhere_key, Method::GET, SERVICE_USERS, None).await, 403).await;

    let local = create_key(&app, &user, &json!({ "name": "local", "allowedIps": ["127.0.0.1/32"] })).await;
    let local_key = str_of(&local, "key");
    assert_eq!(scim_status(&app, local_key, Method::GET, "/scim/v2/Users").await, 200);
    expect_json(send(&app, local_key, Method::GET, SERVICE_USERS, None).await, 200).await;

    // Narrowing the list applies on the next request; emptying it allows any address.
    let path = key_path(str_of(&local, "id"));
    let fence = json!({ "allowedIps": ["10.0.0.0/8"] });
    expect_json(admin(&app, Method::PATCH, &path, Some(&fence)).await, 200).await;
    assert_eq!(scim_status(&app, local_key, Method::GET, "/scim/v2/Users").await, 403);
    let open = json!({ "allowedIps": [] });
    expect_json(admin(&app, Method::PATCH, &path, Some(&open)).await, 200).await;
    assert_eq!(scim_status(&app, local_key, Method::GET, "/scim/v2/Users").await, 200);

    let create_path = format!("{}/keys", su_path(&user));
    for bad in ["10.0.0.0/33", "not-an-ip", "300.1.1.1"] {
        let body = json!({ "name": "bad", "allowedIps": [bad] });
        expect_problem(admin(&app, Method::POST, &create_path, Some(&body)).await, 400).await;
        let patch = json!({ "allowedIps": [bad] });
        expect_problem(admin(&app, Method::PATCH, &path, Some(&patch)).await, 400).await;
    }
    assert_eq!(get_key(&app, str_of(&local, "id")).await["allowedIps"], json!([]));
}

#[tokio::test]
async fn listing_keys_filters_by_service_user_state_type_q_and_expiry() {
    let app = spawn_app().await;
    let first = create_service_user(&app, "first", "reader").await;
    let second = create_service_user(&app, "second", "provisioner").await;
    let alpha = create_key(&app, &first, &json!({ "name": "alpha", "expiresInDays": 5 })).await;
    let beta = create_key(&app, &first, &json!({ "name": "beta", "expiresInDays": 100 })).await;
    let gamma = create_key(&app, &second, &json!({ "name": "gamma-ray", "expiresInDays": 200 })).await;
    let expired = app.key_in_tenant("default", &[Scope::UsersRead], Some(-1)).await;
    let (alpha_id, beta_id, gamma_id) = (str_of(&alpha, "id"), str_of(&beta, "id"), str_of(&gamma, "id"));
    let expired_id = key_id(&expired);
    expect_json(key_action(&app, beta_id, "disable", None).await, 200).await;

    let ids = |page: &Value| field_values(page, "id").into_iter().collect::<BTreeSet<_>>();

    let by_user = list(&app, KEYS, &[("serviceUser", str_of(&first, "id"))]).await;
    assert_eq!(ids(&by_user), set_of(&[alpha_id, beta_id]));
    assert_eq!(by_user["total"], 2);

    let disabled = list(&app, KEYS, &[("state", "disabled")]).await;
    assert_eq!(ids(&disabled), set_of(&[beta_id]));
    let enabled = list(
        &app,
        KEYS,
        &[("state", "enabled"), ("serviceUser", str_of(&first, "id"))],
    )
    .await;
    assert_eq!(ids(&enabled), set_of(&[alpha_id]));
    let expired_page = list(&app, KEYS, &[("state", "expired")]).await;
    assert_eq!(ids(&expired_page), set_of(&[expired_id]));
    for item in items(&expired_page) {
        assert_eq!(item["state"], "expired");
    }

    let service = list(
        &app,
        KEYS,
        &[("type", "service"), ("serviceUser", str_of(&second, "id"))],
    )
    .await;
    assert_eq!(ids(&service), set_of(&[gamma_id]));
    let legacy = list(&app, KEYS, &[("type", "legacy")]).await;
    assert_eq!(legacy["total"], 0, "{legacy}");

    // `q` matches names and ids; a `-` never occurs in a key id (base62),
    // so this finds gamma by name alone ("gam" once matched a random id).
    let by_name = list(&app, KEYS, &[("q", "MA-RA")]).await;
    assert_eq!(ids(&by_name), set_of(&[gamma_id]));
    let by_id = list(&app, KEYS, &[("q", &alpha_id[6..24])]).await;
    assert_eq!(ids(&by_id), set_of(&[alpha_id]));

    let soon = ids(&list(&app, KEYS, &[("expiresWithinDays", "10")]).await);
    assert!(soon.contains(alpha_id), "{soon:?}");
    assert!(!soon.contains(beta_id) && !soon.contains(gamma_id), "{soon:?}");
    let within_150 = ids(&list(&app, KEYS, &[("expiresWithinDays", "150")]).await);
    assert!(
        within_150.contains(alpha_id) && within_150.contains(beta_id),
        "{within_150:?}"
    );
    assert!(!within_150.contains(gamma_id), "{within_150:?}");

    let all = list(&app, KEYS, &[]).await;
    assert_eq!(
        all["total"], 5,
        "three keys, the expired one and the bootstrap key: {all}"
    );

    for (name, value) in [
        ("state", "revoked"),
        ("type", "robot"),
        ("sort", "secret"),
        ("expiresWithinDays", "soon"),
    ] {
        expect_problem(list_status(&app, KEYS, &[(name, value)]).await, 400).await;
    }
}

#[tokio::test]
async fn listing_keys_sorts_by_name_either_way_and_by_expiry() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "sorted", "reader").await;
    for (name, days) in [("b-key", 30), ("a-key", 20), ("c-key", 10)] {
        create_key(&app, &user, &json!({ "name": name, "expiresInDays": days })).await;
    }
    let user_id = str_of(&user, "id");
    for (sort, expected) in [
        ("name", ["a-key", "b-key", "c-key"]),
        ("-name", ["c-key", "b-key", "a-key"]),
        ("expiresAt", ["c-key", "a-key", "b-key"]),
        ("-expiresAt", ["b-key", "a-key", "c-key"]),
    ] {
        let page = list(&app, KEYS, &[("serviceUser", user_id), ("sort", sort)]).await;
        assert_eq!(field_values(&page, "name"), expected, "sort={sort}");
    }
}

#[tokio::test]
async fn listing_keys_pages_with_an_opaque_cursor() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "paged", "reader").await;
    let mut created = BTreeSet::new();
    for i in 0..5 {
        let key = create_key(&app, &user, &json!({ "name": format!("key-{i}") })).await;
        created.insert(str_of(&key, "id").to_string());
    }
    let user_id = str_of(&user, "id");
    let pages = all_pages(&app, &app.admin_key, KEYS, &[("serviceUser", user_id)], 2).await;
    assert_eq!(pages.len(), 3);
    let mut seen = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page["total"], 5);
        assert_eq!(page["nextCursor"].is_null(), i == pages.len() - 1, "{page}");
        seen.extend(field_values(page, "id"));
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), created);
}

#[tokio::test]
async fn no_answer_but_create_and_rotate_contains_a_key_s_secret() {
    let app = spawn_app().await;
    let (user, key, full) = service_user_with_key(&app, "secretive", "reader").await;
    let id = str_of(&key, "id").to_string();
    let secret = secret_part(&full).to_string();
    assert!(secret.len() >= 44);

    let patch = json!({ "description": "still secret" });
    let renew = json!({ "expiresInDays": 30 });
    let mut responses = vec![
        admin(&app, Method::GET, &key_path(&id), None).await,
        list_status(&app, KEYS, &[]).await,
        list_status(&app, KEYS, &[("q", &id)]).await,
        admin(&app, Method::PATCH, &key_path(&id), Some(&patch)).await,
        key_action(&app, &id, "disable", None).await,
        key_action(&app, &id, "enable", None).await,
        key_action(&app, &id, "renew", Some(&renew)).await,
        admin(&app, Method::GET, &su_path(&user), None).await,
    ];
    let rotated = expect_json(key_action(&app, &id, "rotate", Some(&json!({}))).await, 200).await;
    let new_secret = secret_part(str_of(&rotated, "key")).to_string();
    responses.push(admin(&app, Method::GET, &key_path(&id), None).await);
    responses.push(list_status(&app, AUDIT, &[("limit", "500")]).await);
    responses.push(list_status(&app, AUDIT, &[("targetId", &id)]).await);
    let mut texts = Vec::new();
    for response in responses {
        assert!(response.status().is_success(), "{}", response.url());
        texts.push(response.text().await.expect("body"));
    }

    let fetched: Value = serde_json::from_str(&texts[0]).expect("json");
    assert_eq!(fetched["id"], id.as_str());
    assert!(fetched.get("key").is_none(), "GET has no key field: {fetched}");
    for text in &texts {
        assert!(!text.contains(&secret), "the secret leaked: {text}");
        assert!(!text.contains(&new_secret), "the rotated secret leaked: {text}");
    }
    assert!(texts.iter().any(|t| t.contains(&id)), "the public ID is shown");
}

#[tokio::test]
async fn a_key_s_last_used_at_follows_its_use_within_a_minute() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "used", "reader").await;
    let id = str_of(&key, "id");
    assert!(get_key(&app, id).await["lastUsedAt"].is_null());
    let used_at = Utc::now();
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
    // The contract allows 60 s of lag; poll a little beyond that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(65);
    loop {
        let fetched = get_key(&app, id).await;
        if !fetched["lastUsedAt"].is_null() {
            let last_used = timestamp(&fetched["lastUsedAt"]);
            assert!(
                (last_used - used_at).num_seconds().abs() <= 60,
                "{last_used} vs {used_at}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lastUsedAt still null: {fetched}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn patching_a_key_changes_name_description_scopes_and_allowed_ips_and_records_who() {
    let app = spawn_app().await;
    let (_, key, _) = service_user_with_key(&app, "patched", "provisioner").await;
    let id = str_of(&key, "id");
    let actor = app.key_with_scopes(&[Scope::AdminKeysManage]).await;
    let actor_name = str_of(&get_key(&app, key_id(&actor)).await, "serviceUserName").to_string();
    let body = json!({
        "name": "renamed",
        "description": "changed",
        "scopes": ["scim:users:read", "scim:groups:read"],
        "allowedIps": ["127.0.0.1/32"],
    });
    let patched = expect_json(send(&app, &actor, Method::PATCH, &key_path(id), Some(&body)).await, 200).await;
    assert_eq!(patched["id"], id);
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["description"], "changed");
    assert_eq!(
        string_set(&patched["scopes"]),
        set_of(&["scim:users:read", "scim:groups:read"])
    );
    assert_eq!(patched["allowedIps"], json!(["127.0.0.1/32"]));
    assert_eq!(patched["updatedBy"], actor_name.as_str());
    assert_eq!(patched["createdBy"], BOOTSTRAP);
    assert!(patched.get("key").is_none(), "no secret in a PATCH answer");
    let fetched = get_key(&app, id).await;
    for field in ["name", "description", "scopes", "allowedIps", "updatedBy", "expiresAt"] {
        assert_eq!(fetched[field], patched[field], "{field}");
    }

    let only_name = expect_json(
        admin(&app, Method::PATCH, &key_path(id), Some(&json!({ "name": "again" }))).await,
        200,
    )
    .await;
    assert_eq!(only_name["description"], "changed", "absent fields stay");
    assert_eq!(only_name["scopes"], patched["scopes"]);

    for bad in [json!({ "name": "a/b" }), json!({ "state": "enabled" })] {
        expect_problem(admin(&app, Method::PATCH, &key_path(id), Some(&bad)).await, 400).await;
    }
}

#[tokio::test]
async fn narrowing_a_key_s_scopes_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "shrinking", "provisioner").await;
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
    let narrow = json!({ "scopes": ["scim:groups:read"] });
    expect_json(
        admin(&app, Method::PATCH, &key_path(str_of(&key, "id")), Some(&narrow)).await,
        200,
    )
    .await;
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 403);
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Groups").await, 200);
}

#[tokio::test]
async fn patching_a_key_with_a_scope_outside_the_role_returns_422_and_an_unknown_scope_400() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "bounded", "reader").await;
    let id = str_of(&key, "id");
    let outside = json!({ "scopes": ["scim:users:read", "scim:users:write"] });
    expect_problem(admin(&app, Method::PATCH, &key_path(id), Some(&outside)).await, 422).await;
    let unknown = json!({ "scopes": ["scim:everything"] });
    expect_problem(admin(&app, Method::PATCH, &key_path(id), Some(&unknown)).await, 400).await;
    assert_eq!(get_key(&app, id).await["scopes"], key["scopes"], "unchanged");
    assert_eq!(scim_status(&app, &full, Method::POST, "/scim/v2/Users").await, 403);
}

#[tokio::test]
async fn a_disabled_key_gets_401_saying_disabled_and_enabling_restores_it() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "toggled", "admin").await;
    let id = str_of(&key, "id");
    expect_json(send(&app, &full, Method::GET, SERVICE_USERS, None).await, 200).await;

    let disabled = expect_json(key_action(&app, id, "disable", None).await, 200).await;
    assert_eq!(disabled["state"], "disabled");
    assert_eq!(disabled["id"], id);

    let refused = send(&app, &full, Method::GET, SERVICE_USERS, None).await;
    assert!(header(&refused, "www-authenticate").starts_with("Bearer"));
    let problem = expect_problem(refused, 401).await;
    assert!(detail(&problem).contains("disabled"), "{problem}");
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 401);

    // Without the right secret nothing tells that the key exists and is disabled.
    let parsed = scimd::auth::key::parse(&full).expect("valid key");
    let wrong = scimd::auth::key::with_new_secret(&parsed.id());
    let problem = expect_problem(send(&app, wrong.expose(), Method::GET, SERVICE_USERS, None).await, 401).await;
    assert!(!detail(&problem).contains("disabled"), "{problem}");

    assert_eq!(get_key(&app, id).await["state"], "disabled");
    let enabled = expect_json(key_action(&app, id, "enable", None).await, 200).await;
    assert_eq!(enabled["state"], "enabled");
    expect_json(send(&app, &full, Method::GET, SERVICE_USERS, None).await, 200).await;
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
}

#[tokio::test]
async fn renewing_a_key_sets_a_new_expiry() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "renewed", "reader").await;
    let key = create_key(&app, &user, &json!({ "name": "k", "expiresInDays": 10 })).await;
    let id = str_of(&key, "id");

    let renewed = expect_json(
        key_action(&app, id, "renew", Some(&json!({ "expiresInDays": 200 }))).await,
        200,
    )
    .await;
    assert_near(
        timestamp(&renewed["expiresAt"]),
        Utc::now() + Duration::days(200),
        "renewed by days",
    );
    assert_eq!(renewed["state"], "enabled");
    assert_eq!(get_key(&app, id).await["expiresAt"], renewed["expiresAt"]);

    let at = Utc::now() + Duration::days(30);
    let renewed = expect_json(
        key_action(&app, id, "renew", Some(&json!({ "expiresAt": rfc3339(at) }))).await,
        200,
    )
    .await;
    assert!((timestamp(&renewed["expiresAt"]) - at).num_seconds().abs() <= 1);

    expect_problem(key_action(&app, id, "renew", Some(&json!({}))).await, 400).await;
    let both = json!({ "expiresAt": rfc3339(at), "expiresInDays": 5 });
    expect_problem(key_action(&app, id, "renew", Some(&both)).await, 400).await;
    let past = json!({ "expiresAt": rfc3339(Utc::now() - Duration::days(1)) });
    expect_problem(key_action(&app, id, "renew", Some(&past)).await, 400).await;
    let too_long = json!({ "expiresInDays": 366 });
    expect_problem(key_action(&app, id, "renew", Some(&too_long)).await, 422).await;
    assert_eq!(get_key(&app, id).await["expiresAt"], renewed["expiresAt"], "unchanged");
}

#[tokio::test]
async fn an_expired_key_shows_state_expired_and_cannot_be_enabled_or_renewed() {
    let app = spawn_app().await;
    let expired = app.key_in_tenant("default", &[Scope::UsersRead], Some(-1)).await;
    let id = key_id(&expired);
    let key = get_key(&app, id).await;
    assert_eq!(key["state"], "expired");
    assert!(timestamp(&key["expiresAt"]) < Utc::now());

    expect_problem(key_action(&app, id, "enable", None).await, 409).await;
    let renew = json!({ "expiresInDays": 30 });
    expect_problem(key_action(&app, id, "renew", Some(&renew)).await, 409).await;
    assert_eq!(get_key(&app, id).await["state"], "expired");
    assert_eq!(scim_status(&app, &expired, Method::GET, "/scim/v2/Users").await, 401);
}

#[tokio::test]
async fn rotating_a_key_returns_a_new_secret_under_the_same_id_and_the_old_one_fails_at_once() {
    let app = spawn_app().await;
    let (_, key, old) = service_user_with_key(&app, "rotated", "admin").await;
    let id = str_of(&key, "id");
    assert_eq!(scim_status(&app, &old, Method::GET, "/scim/v2/Users").await, 200);

    let response = key_action(&app, id, "rotate", Some(&json!({}))).await;
    assert_eq!(header(&response, "cache-control"), "no-store");
    let rotated = expect_json(response, 200).await;
    let new = str_of(&rotated, "key").to_string();
    assert_eq!(rotated["id"], id, "the public ID stays");
    assert_eq!(new.len(), 83);
    assert!(new.starts_with(id));
    assert_ne!(new, old);
    assert_ne!(secret_part(&new), secret_part(&old));

    assert_eq!(scim_status(&app, &old, Method::GET, "/scim/v2/Users").await, 401);
    expect_problem(send(&app, &old, Method::GET, SERVICE_USERS, None).await, 401).await;
    assert_eq!(scim_status(&app, &new, Method::GET, "/scim/v2/Users").await, 200);
    expect_json(send(&app, &new, Method::GET, SERVICE_USERS, None).await, 200).await;
    assert_eq!(get_key(&app, id).await["state"], "enabled");
}

#[tokio::test]
async fn rotating_with_a_grace_period_keeps_both_secrets_working_until_it_ends() {
    let app = spawn_app().await;
    let (_, key, old) = service_user_with_key(&app, "graceful", "reader").await;
    let id = str_of(&key, "id");
    let rotated = expect_json(
        key_action(&app, id, "rotate", Some(&json!({ "graceSeconds": 60 }))).await,
        200,
    )
    .await;
    let new = str_of(&rotated, "key").to_string();
    assert_eq!(scim_status(&app, &old, Method::GET, "/scim/v2/Users").await, 200);
    assert_eq!(scim_status(&app, &new, Method::GET, "/scim/v2/Users").await, 200);

    // A short grace period: the old secret stops working once it has passed.
    let rotated = expect_json(
        key_action(&app, id, "rotate", Some(&json!({ "graceSeconds": 2 }))).await,
        200,
    )
    .await;
    let newest = str_of(&rotated, "key").to_string();
    assert_eq!(scim_status(&app, &new, Method::GET, "/scim/v2/Users").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(scim_status(&app, &new, Method::GET, "/scim/v2/Users").await, 401);
    assert_eq!(scim_status(&app, &newest, Method::GET, "/scim/v2/Users").await, 200);
}

#[tokio::test]
async fn a_grace_period_beyond_a_day_or_negative_returns_400() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "impatient", "reader").await;
    let id = str_of(&key, "id");
    for grace in [86_401, -1] {
        let body = json!({ "graceSeconds": grace });
        expect_problem(key_action(&app, id, "rotate", Some(&body)).await, 400).await;
    }
    assert_eq!(
        scim_status(&app, &full, Method::GET, "/scim/v2/Users").await,
        200,
        "a refused rotation changes nothing"
    );
    let longest = json!({ "graceSeconds": 86_400 });
    expect_json(key_action(&app, id, "rotate", Some(&longest)).await, 200).await;
}

#[tokio::test]
async fn deleting_a_key_returns_204_then_the_key_gets_401_and_404() {
    let app = spawn_app().await;
    let (user, key, full) = service_user_with_key(&app, "dropped", "reader").await;
    let id = str_of(&key, "id");
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
    let response = admin(&app, Method::DELETE, &key_path(id), None).await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.expect("body").is_empty());
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 401);
    expect_problem(admin(&app, Method::GET, &key_path(id), None).await, 404).await;
    expect_problem(admin(&app, Method::DELETE, &key_path(id), None).await, 404).await;
    let owner = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(owner["keyCount"], 0);
    assert!(list(&app, KEYS, &[("q", id)]).await["items"] == json!([]));
}

#[tokio::test]
async fn every_key_endpoint_answers_404_for_an_unknown_key() {
    let app = spawn_app().await;
    for id in [unknown_key_id(), "not-a-key".to_string()] {
        let path = key_path(&id);
        expect_problem(admin(&app, Method::GET, &path, None).await, 404).await;
        let patch = json!({ "name": "x" });
        expect_problem(admin(&app, Method::PATCH, &path, Some(&patch)).await, 404).await;
        expect_problem(admin(&app, Method::DELETE, &path, None).await, 404).await;
        expect_problem(key_action(&app, &id, "disable", None).await, 404).await;
        expect_problem(key_action(&app, &id, "enable", None).await, 404).await;
        let renew = json!({ "expiresInDays": 10 });
        expect_problem(key_action(&app, &id, "renew", Some(&renew)).await, 404).await;
        expect_problem(key_action(&app, &id, "rotate", Some(&json!({}))).await, 404).await;
    }
}

#[tokio::test]
async fn a_batch_reports_the_status_each_id_alone_would_have_had() {
    let app = spawn_app().await;
    let (user, first, first_key) = service_user_with_key(&app, "batched", "reader").await;
    let second = create_key(&app, &user, &json!({ "name": "second" })).await;
    let expired = app.key_in_tenant("default", &[Scope::UsersRead], Some(-1)).await;
    let (first_id, second_id) = (str_of(&first, "id"), str_of(&second, "id"));
    let (expired_id, unknown) = (key_id(&expired), unknown_key_id());

    let disabled = batch(&app, "disable", &[first_id, &unknown]).await;
    assert_eq!(disabled[first_id], 200, "{disabled:?}");
    assert_eq!(disabled[&unknown], 404, "{disabled:?}");
    assert_eq!(get_key(&app, first_id).await["state"], "disabled");
    assert_eq!(scim_status(&app, &first_key, Method::GET, "/scim/v2/Users").await, 401);

    let enabled = batch(&app, "enable", &[first_id, expired_id]).await;
    assert_eq!(enabled[first_id], 200, "{enabled:?}");
    assert_eq!(enabled[expired_id], 409, "{enabled:?}");
    assert_eq!(scim_status(&app, &first_key, Method::GET, "/scim/v2/Users").await, 200);

    let deleted = batch(&app, "delete", &[first_id, second_id, &unknown]).await;
    assert_eq!(deleted[first_id], 204, "{deleted:?}");
    assert_eq!(deleted[second_id], 204, "{deleted:?}");
    assert_eq!(deleted[&unknown], 404, "{deleted:?}");
    for id in [first_id, second_id] {
        expect_problem(admin(&app, Method::GET, &key_path(id), None).await, 404).await;
    }
    assert_eq!(scim_status(&app, &first_key, Method::GET, "/scim/v2/Users").await, 401);
}

#[tokio::test]
async fn a_batch_with_an_unknown_action_or_no_ids_returns_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "unbatched", "reader").await;
    let id = str_of(&key, "id");
    let path = format!("{KEYS}/batch");
    for body in [
        json!({ "action": "revoke", "ids": [id] }),
        json!({ "action": "rotate", "ids": [id] }),
        json!({ "action": "disable" }),
        json!({ "action": "disable", "ids": [id], "force": true }),
    ] {
        expect_problem(admin(&app, Method::POST, &path, Some(&body)).await, 400).await;
    }
    assert_eq!(get_key(&app, id).await["state"], "enabled");
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
}

#[tokio::test]
async fn a_batch_with_an_unknown_action_returns_400_even_without_ids() {
    let app = spawn_app().await;
    let body = json!({ "action": "revoke", "ids": [] });
    expect_problem(
        admin(&app, Method::POST, &format!("{KEYS}/batch"), Some(&body)).await,
        400,
    )
    .await;
}

// --- scopes per endpoint -----------------------------------------------------------

#[tokio::test]
async fn creating_a_key_needs_admin_keys_create() {
    let app = spawn_app().await;
    let user = create_service_user(&app, "target", "reader").await;
    let path = format!("{}/keys", su_path(&user));
    let body = json!({ "name": "k" });
    let manage_only = app.key_with_scopes(&[Scope::AdminKeysManage]).await;
    expect_forbidden_naming(
        send(&app, &manage_only, Method::POST, &path, Some(&body)).await,
        "admin:keys:create",
    )
    .await;
    let create_only = app.key_with_scopes(&[Scope::AdminKeysCreate]).await;
    let created = expect_json(send(&app, &create_only, Method::POST, &path, Some(&body)).await, 201).await;
    assert!(created["key"].is_string());
}

#[tokio::test]
async fn every_key_management_endpoint_needs_admin_keys_manage() {
    let app = spawn_app().await;
    let (_, key, full) = service_user_with_key(&app, "managed", "reader").await;
    let id = str_of(&key, "id");
    let create_only = app
        .key_with_scopes(&[Scope::AdminKeysCreate, Scope::AdminServiceUsers, Scope::AdminAuditRead])
        .await;
    let path = key_path(id);
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, KEYS.to_string(), None),
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({ "name": "hijacked" }))),
        (Method::POST, format!("{path}/disable"), None),
        (Method::POST, format!("{path}/enable"), None),
        (
            Method::POST,
            format!("{path}/renew"),
            Some(json!({ "expiresInDays": 30 })),
        ),
        (Method::POST, format!("{path}/rotate"), Some(json!({}))),
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            format!("{KEYS}/batch"),
            Some(json!({ "action": "disable", "ids": [id] })),
        ),
    ];
    for (method, path, body) in requests {
        let response = send(&app, &create_only, method.clone(), &path, body.as_ref()).await;
        let problem = expect_problem(response, 403).await;
        assert!(
            detail(&problem).contains("admin:keys:manage"),
            "{method} {path}: {problem}"
        );
    }
    let unchanged = get_key(&app, id).await;
    assert_eq!(unchanged["name"], key["name"]);
    assert_eq!(unchanged["state"], "enabled");
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
}

#[tokio::test]
async fn reading_the_audit_log_needs_admin_audit_read() {
    let app = spawn_app().await;
    let without = app
        .key_with_scopes(&[Scope::AdminServiceUsers, Scope::AdminKeysCreate, Scope::AdminKeysManage])
        .await;
    expect_forbidden_naming(send(&app, &without, Method::GET, AUDIT, None).await, "admin:audit:read").await;
    let with = app.key_with_scopes(&[Scope::AdminAuditRead]).await;
    let page = expect_json(send(&app, &with, Method::GET, AUDIT, None).await, 200).await;
    assert!(page["items"].is_array() && page["total"].is_u64(), "{page}");
}

#[tokio::test]
async fn tenants_need_admin_tenants_which_only_the_bootstrap_admin_holds() {
    let app = spawn_app().await;
    // Asked for, but outside the admin role: the key cannot hold it.
    let every_admin_scope = app
        .key_with_scopes(&[
            Scope::AdminServiceUsers,
            Scope::AdminKeysCreate,
            Scope::AdminKeysManage,
            Scope::AdminAuditRead,
            Scope::AdminTenants,
        ])
        .await;
    expect_forbidden_naming(
        send(&app, &every_admin_scope, Method::GET, TENANTS, None).await,
        "admin:tenants",
    )
    .await;
    let body = json!({ "name": "sneaky" });
    expect_forbidden_naming(
        send(&app, &every_admin_scope, Method::POST, TENANTS, Some(&body)).await,
        "admin:tenants",
    )
    .await;

    let acme = create_tenant(&app, "acme").await;
    let acme_key = str_of(&acme, "key");
    expect_problem(send(&app, acme_key, Method::GET, TENANTS, None).await, 403).await;
    let body = json!({ "name": "acme-child" });
    expect_problem(send(&app, acme_key, Method::POST, TENANTS, Some(&body)).await, 403).await;

    let tenants = list(&app, TENANTS, &[]).await;
    assert_eq!(
        field_values(&tenants, "name").into_iter().collect::<BTreeSet<_>>(),
        set_of(&["default", "acme"])
    );
}

// --- tenants -------------------------------------------------------------------------

#[tokio::test]
async fn creating_a_tenant_returns_it_with_its_admin_and_a_first_key_shown_once() {
    let app = spawn_app().await;
    let response = admin(&app, Method::POST, TENANTS, Some(&json!({ "name": "acme" }))).await;
    assert_eq!(header(&response, "cache-control"), "no-store");
    let created = expect_json(response, 201).await;

    let tenant = &created["tenant"];
    assert!(tenant["id"].as_str().is_some_and(|id| !id.is_empty()), "{created}");
    assert_eq!(tenant["name"], "acme");
    assert_near(timestamp(&tenant["createdAt"]), Utc::now(), "tenant createdAt");

    let admin_user = &created["serviceUser"];
    assert_eq!(admin_user["name"], "admin");
    assert_eq!(admin_user["role"], "admin");
    assert_eq!(admin_user["tenant"], "acme");
    assert_eq!(admin_user["interactive"], false);
    assert!(admin_user["id"].is_string());

    let key = str_of(&created, "key");
    assert_eq!(key.len(), 83);
    assert!(key.starts_with("scimd_"));
    let file_name = str_of(&created, "fileName");
    assert!(
        file_name.starts_with("APIKey-") && file_name.ends_with(".key"),
        "{file_name}"
    );

    // The key's metadata, seen by the tenant's own admin, never shows it again.
    let own = expect_json(send(&app, key, Method::GET, &key_path(key_id(key)), None).await, 200).await;
    assert_eq!(own["tenant"], "acme");
    assert_eq!(own["serviceUserName"], "admin");
    assert!(!own.to_string().contains(secret_part(key)));
}

#[tokio::test]
async fn a_new_tenant_s_key_works_on_its_own_tenant_path_only() {
    let app = spawn_app().await;
    let created = create_tenant(&app, "acme").await;
    let key = str_of(&created, "key");
    assert_eq!(scim_status(&app, key, Method::GET, "/t/acme/scim/v2/Users").await, 200);
    assert_eq!(scim_status(&app, key, Method::POST, "/t/acme/scim/v2/Users").await, 201);
    assert_eq!(
        scim_status(&app, key, Method::GET, "/t/default/scim/v2/Users").await,
        401
    );
    assert_eq!(
        scim_status(&app, &app.admin_key, Method::GET, "/t/acme/scim/v2/Users").await,
        401
    );
    let users = list_with(&app, key, SERVICE_USERS, &[]).await;
    assert_eq!(field_values(&users, "name"), ["admin"]);
    assert_eq!(users["total"], 1);
}

#[tokio::test]
async fn a_tenant_name_must_be_a_lowercase_slug() {
    let app = spawn_app().await;
    for name in ["Acme", "ACME", "my tenant", "", "a/b", "acme!"] {
        let body = json!({ "name": name });
        expect_problem(admin(&app, Method::POST, TENANTS, Some(&body)).await, 400).await;
    }
    let extra = json!({ "name": "acme", "plan": "gold" });
    expect_problem(admin(&app, Method::POST, TENANTS, Some(&extra)).await, 400).await;
    let tenants = list(&app, TENANTS, &[]).await;
    assert_eq!(field_values(&tenants, "name"), ["default"]);
}

#[tokio::test]
async fn a_duplicate_tenant_name_returns_409() {
    let app = spawn_app().await;
    create_tenant(&app, "acme").await;
    for name in ["acme", "default"] {
        let body = json!({ "name": name });
        expect_problem(admin(&app, Method::POST, TENANTS, Some(&body)).await, 409).await;
    }
    assert_eq!(list(&app, TENANTS, &[]).await["total"], 2);
}

#[tokio::test]
async fn listing_tenants_shows_default_and_every_new_one() {
    let app = spawn_app().await;
    let acme = create_tenant(&app, "acme").await;
    let globex = create_tenant(&app, "globex-2").await;
    let page = list(&app, TENANTS, &[]).await;
    assert_eq!(page["total"], 3);
    assert!(page["nextCursor"].is_null());
    let by_name: BTreeMap<String, Value> = items(&page)
        .iter()
        .map(|t| (str_of(t, "name").to_string(), t.clone()))
        .collect();
    assert_eq!(
        by_name.keys().cloned().collect::<BTreeSet<_>>(),
        set_of(&["default", "acme", "globex-2"])
    );
    assert_eq!(by_name["acme"], acme["tenant"]);
    assert_eq!(by_name["globex-2"], globex["tenant"]);
    timestamp(&by_name["default"]["createdAt"]);
}

#[tokio::test]
async fn a_tenant_admin_key_sees_nothing_of_another_tenant_in_the_admin_api() {
    let app = spawn_app().await;
    let (user, key, _) = service_user_with_key(&app, "default-only", "reader").await;
    let acme = create_tenant(&app, "acme").await;
    let acme_key = str_of(&acme, "key");
    let default_key_id = str_of(&key, "id");
    let user_id = str_of(&user, "id");

    let users = list_with(&app, acme_key, SERVICE_USERS, &[]).await;
    assert_eq!(field_values(&users, "name"), ["admin"], "{users}");
    assert_eq!(users["total"], 1);
    assert_eq!(
        list_with(&app, acme_key, SERVICE_USERS, &[("q", "default")]).await["total"],
        0
    );
    expect_problem(send(&app, acme_key, Method::GET, &su_path(&user), None).await, 404).await;

    let keys = list_with(&app, acme_key, KEYS, &[]).await;
    assert_eq!(field_values(&keys, "id"), [key_id(acme_key)], "{keys}");
    assert_eq!(keys["total"], 1);
    for query in [
        ("serviceUser", user_id),
        ("q", default_key_id),
        ("q", key_id(&app.admin_key)),
    ] {
        assert_eq!(list_with(&app, acme_key, KEYS, &[query]).await["total"], 0, "{query:?}");
    }
    for id in [default_key_id, key_id(&app.admin_key)] {
        expect_problem(send(&app, acme_key, Method::GET, &key_path(id), None).await, 404).await;
    }

    let audit = events_with(&app, acme_key, &[("targetId", default_key_id)]).await;
    assert!(audit.is_empty(), "{audit:?}");
    let audit = events_with(&app, acme_key, &[("targetId", user_id)]).await;
    assert!(audit.is_empty(), "{audit:?}");
    for event in events_with(&app, acme_key, &[]).await {
        assert_eq!(event["tenant"], "acme", "{event}");
    }

    // Names are unique per tenant only.
    let body = json!({ "name": "default-only", "role": "reader" });
    expect_json(
        send(&app, acme_key, Method::POST, SERVICE_USERS, Some(&body)).await,
        201,
    )
    .await;
    // And the default tenant does not see acme's.
    let default_users = list(&app, SERVICE_USERS, &[("q", "admin")]).await;
    assert_eq!(field_values(&default_users, "name"), [BOOTSTRAP], "{default_users}");
}

#[tokio::test]
async fn a_tenant_admin_key_cannot_change_another_tenant_s_service_users_or_keys() {
    let app = spawn_app().await;
    let (user, key, full) = service_user_with_key(&app, "protected", "reader").await;
    let acme = create_tenant(&app, "acme").await;
    let acme_key = str_of(&acme, "key");
    let id = str_of(&key, "id");
    let path = key_path(id);
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::PATCH, su_path(&user), Some(json!({ "role": "admin" }))),
        (
            Method::POST,
            format!("{}/keys", su_path(&user)),
            Some(json!({ "name": "planted" })),
        ),
        (Method::PATCH, path.clone(), Some(json!({ "name": "hijacked" }))),
        (Method::POST, format!("{path}/disable"), None),
        (Method::POST, format!("{path}/enable"), None),
        (
            Method::POST,
            format!("{path}/renew"),
            Some(json!({ "expiresInDays": 1 })),
        ),
        (Method::POST, format!("{path}/rotate"), Some(json!({}))),
        (Method::DELETE, path.clone(), None),
        (Method::DELETE, su_path(&user), None),
    ];
    for (method, target, body) in requests {
        let response = send(&app, acme_key, method.clone(), &target, body.as_ref()).await;
        let status = response.status().as_u16();
        assert_eq!(status, 404, "{method} {target}");
        expect_problem(response, 404).await;
    }
    let body = json!({ "action": "disable", "ids": [id] });
    let answer = expect_json(
        send(&app, acme_key, Method::POST, &format!("{KEYS}/batch"), Some(&body)).await,
        200,
    )
    .await;
    assert_eq!(answer["results"][0]["status"], 404, "{answer}");

    let unchanged = get_key(&app, id).await;
    assert_eq!(unchanged["name"], key["name"]);
    assert_eq!(unchanged["state"], "enabled");
    assert_eq!(unchanged["expiresAt"], key["expiresAt"]);
    let owner = expect_json(admin(&app, Method::GET, &su_path(&user), None).await, 200).await;
    assert_eq!(owner["role"], "reader");
    assert_eq!(owner["keyCount"], 1);
    assert_eq!(scim_status(&app, &full, Method::GET, "/scim/v2/Users").await, 200);
}

#[tokio::test]
async fn a_tenant_s_audit_log_names_no_key_or_service_user_of_another_tenant() {
    let app = spawn_app().await;
    let acme = create_tenant(&app, "acme").await;
    let acme_key = str_of(&acme, "key");
    let bootstrap = bootstrap_service_user(&app).await;
    let text = list_with(&app, acme_key, AUDIT, &[("limit", "500")]).await.to_string();
    assert!(
        !text.contains(key_id(&app.admin_key)),
        "default's key ID in acme's log: {text}"
    );
    assert!(
        !text.contains(str_of(&bootstrap, "id")),
        "default's service user id in acme's log: {text}"
    );
}

// --- audit log -------------------------------------------------------------------

/// Target ids of `service_user.created` events matching `query`, as listed.
async fn created_targets(app: &TestApp, query: &[(&str, &str)]) -> Vec<String> {
    let mut query = query.to_vec();
    query.push(("action", "service_user.created"));
    events(app, &query)
        .await
        .iter()
        .map(|e| e["target"]["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Checks the one event `action` on `target` against the request that made it.
async fn assert_audited(app: &TestApp, action: &str, target: &str, request_id: &str, actor: &Value) {
    let found = events(app, &[("action", action), ("targetId", target)]).await;
    assert_eq!(found.len(), 1, "one {action} event for {target}: {found:?}");
    let event = &found[0];
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()), "{event}");
    assert_near(timestamp(&event["at"]), Utc::now(), "at");
    assert_eq!(event["tenant"], "default", "{event}");
    assert_eq!(event["action"], action);
    assert_eq!(event["actor"]["keyId"], key_id(&app.admin_key), "{event}");
    assert_eq!(event["actor"]["serviceUserId"], actor["id"], "{event}");
    assert_eq!(event["actor"]["serviceUserName"], BOOTSTRAP, "{event}");
    assert!(
        event["target"]["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{event}"
    );
    assert_eq!(event["target"]["id"], target, "{event}");
    assert_eq!(event["ip"], "127.0.0.1", "{event}");
    assert_eq!(event["requestId"], request_id, "{event}");
    assert_eq!(event["outcome"], "success", "{event}");
    assert!(event.get("detail").is_some(), "{event}");
}

/// Sends a change with the bootstrap key; returns (status, body, X-Request-Id).
async fn change(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> (u16, Value, String) {
    let response = admin(app, method, path, body).await;
    let request_id = header(&response, "x-request-id");
    assert!(!request_id.is_empty(), "X-Request-Id on {path}");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json")
    };
    assert!(status < 300, "{path}: {status} {body}");
    (status, body, request_id)
}

#[tokio::test]
async fn every_admin_change_is_audited_with_actor_target_ip_request_id_and_outcome() {
    let app = spawn_app().await;
    let actor = bootstrap_service_user(&app).await;

    let (_, user, rid) = change(
        &app,
        Method::POST,
        SERVICE_USERS,
        Some(&json!({ "name": "audited", "role": "admin" })),
    )
    .await;
    let user_id = str_of(&user, "id").to_string();
    assert_audited(&app, "service_user.created", &user_id, &rid, &actor).await;

    let (_, _, rid) = change(&app, Method::PATCH, &su_path(&user), Some(&json!({ "role": "reader" }))).await;
    assert_audited(&app, "service_user.updated", &user_id, &rid, &actor).await;

    let (_, key, rid) = change(
        &app,
        Method::POST,
        &format!("{}/keys", su_path(&user)),
        Some(&json!({ "name": "k" })),
    )
    .await;
    let id = str_of(&key, "id").to_string();
    let full = str_of(&key, "key").to_string();
    assert_audited(&app, "key.created", &id, &rid, &actor).await;

    let path = key_path(&id);
    let (_, _, rid) = change(&app, Method::PATCH, &path, Some(&json!({ "name": "k2" }))).await;
    assert_audited(&app, "key.updated", &id, &rid, &actor).await;
    let (_, _, rid) = change(&app, Method::POST, &format!("{path}/disable"), None).await;
    assert_audited(&app, "key.disabled", &id, &rid, &actor).await;
    let (_, _, rid) = change(&app, Method::POST, &format!("{path}/enable"), None).await;
    assert_audited(&app, "key.enabled", &id, &rid, &actor).await;
    let renew = json!({ "expiresInDays": 20 });
    let (_, _, rid) = change(&app, Method::POST, &format!("{path}/renew"), Some(&renew)).await;
    assert_audited(&app, "key.renewed", &id, &rid, &actor).await;
    let (_, rotated, rid) = change(&app, Method::POST, &format!("{path}/rotate"), Some(&json!({}))).await;
    let rotated_key = str_of(&rotated, "key").to_string();
    assert_audited(&app, "key.rotated", &id, &rid, &actor).await;
    let (status, _, rid) = change(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_audited(&app, "key.deleted", &id, &rid, &actor).await;
    let (status, _, rid) = change(&app, Method::DELETE, &su_path(&user), None).await;
    assert_eq!(status, 204);
    assert_audited(&app, "service_user.deleted", &user_id, &rid, &actor).await;

    let (_, tenant, rid) = change(&app, Method::POST, TENANTS, Some(&json!({ "name": "acme" }))).await;
    let tenant_id = str_of(&tenant["tenant"], "id").to_string();
    assert_audited(&app, "tenant.created", &tenant_id, &rid, &actor).await;

    let everything = list(&app, AUDIT, &[("limit", "500")]).await.to_string();
    for secret in [&full, &rotated_key, str_of(&tenant, "key"), &app.admin_key] {
        assert!(!everything.contains(secret_part(secret)), "a secret in the audit log");
    }
}

#[tokio::test]
async fn a_change_by_another_key_is_audited_under_that_key_and_its_service_user() {
    let app = spawn_app().await;
    let other = app
        .key_with_scopes(&[Scope::AdminServiceUsers, Scope::AdminAuditRead])
        .await;
    let other_key = get_key(&app, key_id(&other)).await;
    let body = json!({ "name": "by-other", "role": "reader" });
    let response = send(&app, &other, Method::POST, SERVICE_USERS, Some(&body)).await;
    let request_id = header(&response, "x-request-id");
    let user = expect_json(response, 201).await;
    assert_eq!(user["createdBy"], other_key["serviceUserName"]);
    let found = events_with(
        &app,
        &other,
        &[("action", "service_user.created"), ("targetId", str_of(&user, "id"))],
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    let actor = &found[0]["actor"];
    assert_eq!(actor["keyId"], key_id(&other));
    assert_eq!(actor["serviceUserId"], other_key["serviceUserId"]);
    assert_eq!(actor["serviceUserName"], other_key["serviceUserName"]);
    assert_eq!(found[0]["requestId"], request_id.as_str());
}

#[tokio::test]
async fn audit_events_filter_by_action_actor_and_target() {
    let app = spawn_app().await;
    let bootstrap = bootstrap_service_user(&app).await;
    let other = app
        .key_with_scopes(&[Scope::AdminServiceUsers, Scope::AdminAuditRead])
        .await;
    let other_su = str_of(&get_key(&app, key_id(&other)).await, "serviceUserId").to_string();
    let by_admin = create_service_user(&app, "by-admin", "reader").await;
    let body = json!({ "name": "by-other", "role": "reader" });
    let by_other = expect_json(send(&app, &other, Method::POST, SERVICE_USERS, Some(&body)).await, 201).await;
    let patch = json!({ "description": "touched" });
    expect_json(admin(&app, Method::PATCH, &su_path(&by_other), Some(&patch)).await, 200).await;
    let (admin_su_id, other_user_id) = (str_of(&by_admin, "id"), str_of(&by_other, "id"));

    let targets = |events: &[Value]| -> BTreeSet<String> {
        events
            .iter()
            .filter_map(|e| e["target"]["id"].as_str().map(str::to_string))
            .collect()
    };

    for actor in [key_id(&other), other_su.as_str()] {
        let found = events(&app, &[("actor", actor)]).await;
        assert!(!found.is_empty(), "actor={actor}");
        for event in &found {
            assert_eq!(event["actor"]["keyId"], key_id(&other), "actor={actor}: {event}");
            assert_eq!(event["actor"]["serviceUserId"], other_su.as_str());
        }
        assert_eq!(targets(&found), set_of(&[other_user_id]), "actor={actor}");
    }
    for actor in [key_id(&app.admin_key), str_of(&bootstrap, "id")] {
        let found = events(&app, &[("actor", actor)]).await;
        for event in &found {
            assert_eq!(event["actor"]["serviceUserName"], BOOTSTRAP, "{event}");
        }
        let seen = targets(&found);
        assert!(seen.contains(admin_su_id) && seen.contains(other_user_id), "{seen:?}");
    }

    let created = events(&app, &[("action", "service_user.created")]).await;
    assert!(created.iter().all(|e| e["action"] == "service_user.created"));
    assert_eq!(targets(&created), set_of(&[admin_su_id, other_user_id]));

    let on_other = events(&app, &[("targetId", other_user_id)]).await;
    let actions: Vec<&str> = on_other.iter().map(|e| str_of(e, "action")).collect();
    assert_eq!(
        actions,
        ["service_user.updated", "service_user.created"],
        "newest first"
    );

    let nothing = events(
        &app,
        &[
            ("action", "service_user.created"),
            ("actor", key_id(&other)),
            ("targetId", admin_su_id),
        ],
    )
    .await;
    assert!(nothing.is_empty(), "filters combine: {nothing:?}");
}

#[tokio::test]
async fn audit_events_filter_by_time_and_come_newest_first_in_pages() {
    let app = spawn_app().await;
    let mut ats = Vec::new();
    for name in ["t1", "t2", "t3"] {
        let user = create_service_user(&app, name, "reader").await;
        let found = events(&app, &[("targetId", str_of(&user, "id"))]).await;
        assert_eq!(found.len(), 1);
        ats.push((
            name,
            str_of(&found[0], "at").to_string(),
            str_of(&user, "id").to_string(),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (t1, t2, t3) = (&ats[0], &ats[1], &ats[2]);
    assert_eq!(
        created_targets(&app, &[]).await,
        [t3.2.as_str(), t2.2.as_str(), t1.2.as_str()],
        "newest first"
    );
    assert_eq!(
        created_targets(&app, &[("since", &t2.1)]).await,
        [t3.2.as_str(), t2.2.as_str()],
        "since is inclusive"
    );
    assert_eq!(
        created_targets(&app, &[("until", &t2.1)]).await,
        [t1.2.as_str()],
        "until is exclusive"
    );
    assert_eq!(
        created_targets(&app, &[("since", &t1.1), ("until", &t3.1)]).await,
        [t2.2.as_str(), t1.2.as_str()]
    );
    let future = rfc3339(Utc::now() + Duration::hours(1));
    assert!(created_targets(&app, &[("since", &future)]).await.is_empty());

    let all = events(&app, &[]).await;
    let times: Vec<DateTime<Utc>> = all.iter().map(|e| timestamp(&e["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    let pages = all_pages(&app, &app.admin_key, AUDIT, &[], 1).await;
    let paged: Vec<Value> = pages.iter().flat_map(|p| items(p).clone()).collect();
    assert_eq!(paged, all, "pages of one hold the same events in the same order");

    for bad in ["yesterday", "2024-13-01T00:00:00Z"] {
        expect_problem(list_status(&app, AUDIT, &[("since", bad)]).await, 400).await;
        expect_problem(list_status(&app, AUDIT, &[("until", bad)]).await, 400).await;
    }
}

#[tokio::test]
async fn no_endpoint_changes_or_deletes_audit_events() {
    let app = spawn_app().await;
    create_service_user(&app, "recorded", "reader").await;
    let before = events(&app, &[]).await;
    assert!(!before.is_empty());
    let event_path = format!("{AUDIT}/{}", str_of(&before[0], "id"));
    let forged = json!({ "action": "tenant.created", "outcome": "success" });
    for (method, path) in [
        (Method::DELETE, AUDIT.to_string()),
        (Method::PATCH, AUDIT.to_string()),
        (Method::PUT, AUDIT.to_string()),
        (Method::POST, AUDIT.to_string()),
        (Method::GET, event_path.clone()),
        (Method::DELETE, event_path.clone()),
        (Method::PATCH, event_path.clone()),
        (Method::PUT, event_path.clone()),
    ] {
        let body = (method != Method::GET && method != Method::DELETE).then_some(&forged);
        let status = admin(&app, method.clone(), &path, body).await.status().as_u16();
        assert!(
            status == 404 || status == 405 || (method == Method::GET && status == 200),
            "{method} {path}: {status}"
        );
    }
    let after = events(&app, &[]).await;
    assert_eq!(after, before, "the log is unchanged");
}

// --- errors --------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_or_invalid_key_on_the_admin_api_gets_401_problem_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url(SERVICE_USERS)).send().await.expect("request");
    assert!(header(&missing, "www-authenticate").starts_with("Bearer"));
    expect_problem(missing, 401).await;
    for key in [
        "garbage".to_string(),
        unknown_key_id(),
        scimd::auth::key::generate().expose().to_string(),
    ] {
        for (method, path) in [
            (Method::GET, SERVICE_USERS),
            (Method::GET, KEYS),
            (Method::POST, TENANTS),
        ] {
            let response = send(&app, &key, method, path, Some(&json!({ "name": "x" }))).await;
            assert!(header(&response, "www-authenticate").starts_with("Bearer"), "{path}");
            expect_problem(response, 401).await;
        }
    }
}

#[tokio::test]
async fn admin_errors_are_problem_json_for_every_status() {
    let app = spawn_app().await;
    let reader = create_service_user(&app, "reader", "reader").await;
    let scim_only = app.key_with_scopes(&[Scope::UsersRead]).await;
    let cases: Vec<(u16, Response)> = vec![
        (
            400,
            admin(
                &app,
                Method::POST,
                SERVICE_USERS,
                Some(&json!({ "name": "x", "role": "?" })),
            )
            .await,
        ),
        (401, app.client.get(app.url(KEYS)).send().await.expect("request")),
        (403, send(&app, &scim_only, Method::GET, KEYS, None).await),
        (404, admin(&app, Method::GET, &key_path(&unknown_key_id()), None).await),
        (
            409,
            admin(
                &app,
                Method::POST,
                SERVICE_USERS,
                Some(&json!({ "name": "READER", "role": "reader" })),
            )
            .await,
        ),
        (
            422,
            admin(
                &app,
                Method::POST,
                &format!("{}/keys", su_path(&reader)),
                Some(&json!({ "name": "k", "scopes": ["admin:keys:manage"] })),
            )
            .await,
        ),
        (404, admin(&app, Method::GET, "/admin/v1/no-such-thing", None).await),
    ];
    for (status, response) in cases {
        expect_problem(response, status).await;
    }
}

#[tokio::test]
async fn a_method_an_admin_endpoint_does_not_serve_gets_a_problem_json_error() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::DELETE, AUDIT),
        (Method::PUT, SERVICE_USERS),
        (Method::DELETE, TENANTS),
    ] {
        let response = admin(&app, method.clone(), path, None).await;
        let status = response.status().as_u16();
        assert!(status == 404 || status == 405, "{method} {path}: {status}");
        expect_problem(response, status).await;
    }
}
