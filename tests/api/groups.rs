//! Groups: members (users and nested groups), a User's derived `groups`,
//! membership integrity on replace and delete, and tenant isolation of members.

use std::time::Duration;

use reqwest::Method;
use scimd::auth::hashing::hash_blocking;
use scimd::auth::key;
use scimd::auth::scopes::Scope;
use scimd::store::keys::NewKey;
use serde_json::{Value, json};

use crate::helpers::{GROUP_SCHEMA, TestApp, USER_SCHEMA, assert_scim_error, json_body, spawn_app};

fn id(resource: &Value) -> &str {
    resource["id"].as_str().expect("resource has an id")
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn group_total(app: &TestApp) -> u64 {
    get_ok(app, "/scim/v2/Groups").await["totalResults"]
        .as_u64()
        .expect("totalResults")
}

/// The member entry of `group` whose value is `member_id`.
fn member<'a>(group: &'a Value, member_id: &str) -> Option<&'a Value> {
    group["members"].as_array()?.iter().find(|m| m["value"] == member_id)
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| m["value"].as_str().expect("value").to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The user's `groups` as `(group id, type)` pairs, sorted.
fn groups_of(user: &Value) -> Vec<(String, String)> {
    let mut groups: Vec<(String, String)> = user["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .map(|g| {
                    (
                        g["value"].as_str().expect("value").to_string(),
                        g["type"].as_str().expect("type").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    groups.sort();
    groups
}

fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = entries.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn group_body(display_name: &str, members: Value) -> Value {
    json!({ "schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members })
}

/// GETs `path` with `If-None-Match: etag`; the status tells whether the server
/// still considers that version current.
async fn revalidate(app: &TestApp, path: &str, etag: &Value) -> u16 {
    let etag = etag.as_str().expect("etag");
    let response = app
        .request(Method::GET, path)
        .header("If-None-Match", etag)
        .send()
        .await
        .expect("request");
    response.status().as_u16()
}

/// Creates tenant `name` directly in the store (the admin API is not this file's subject).
async fn create_tenant(app: &TestApp, name: &str) {
    let plain = key::generate();
    let hash = hash_blocking(plain.secret()).expect("hash");
    let store = app.store().await;
    store
        .create_tenant_with_admin(
            name,
            "admin",
            "admin",
            &[],
            NewKey {
                id: plain.id().as_str(),
                name: "admin",
                description: None,
                key_type: "service",
                secret_hash: &hash,
                scopes: &[],
                allowed_ips: &[],
                expires_at: Some(chrono::Utc::now() + chrono::Duration::days(30)),
                actor: "test",
            },
        )
        .await
        .expect("create tenant");
    store.close().await;
}

#[tokio::test]
async fn create_group_with_user_members_returns_201_and_members_carry_value_ref_and_type() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob_body = json!({ "schemas": [USER_SCHEMA], "userName": "bob", "displayName": "Bob Builder" });
    let bob: Value = app.post("/scim/v2/Users", &bob_body).await.json().await.expect("json");
    let response = app
        .post(
            "/scim/v2/Groups",
            &group_body("Engineering", json!([{ "value": id(&alice) }, { "value": id(&bob) }])),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().expect("ascii").to_string();
    let group: Value = response.json().await.expect("json");
    assert_eq!(location, app.url(&format!("/scim/v2/Groups/{}", id(&group))));
    assert_eq!(group["schemas"], json!([GROUP_SCHEMA]));
    assert_eq!(group["displayName"], "Engineering");
    assert_eq!(group["meta"]["resourceType"], "Group");
    assert_eq!(member_ids(&group).len(), 2, "{group}");
    let a = member(&group, id(&alice)).expect("alice is a member");
    assert_eq!(a["$ref"], json!(app.url(&format!("/scim/v2/Users/{}", id(&alice)))));
    assert_eq!(a["type"], "User");
    assert!(a.get("display").is_none(), "display is optional and not derived: {a}");
    let b = member(&group, id(&bob)).expect("bob is a member");
    assert_eq!(b["type"], "User");
    let fetched = get_ok(&app, &format!("/scim/v2/Groups/{}", id(&group))).await;
    assert_eq!(fetched, group, "GET answers what POST answered");
}

#[tokio::test]
async fn a_group_can_have_another_group_as_member() {
    let app = spawn_app().await;
    let inner = app.create_group("Inner", &[]).await;
    let response = app
        .post(
            "/scim/v2/Groups",
            &group_body("Outer", json!([{ "value": id(&inner), "type": "Group" }])),
        )
        .await;
    assert_eq!(response.status(), 201);
    let outer: Value = response.json().await.expect("json");
    let m = member(&outer, id(&inner)).expect("inner group is a member");
    assert_eq!(m["type"], "Group");
    assert_eq!(m["$ref"], json!(app.url(&format!("/scim/v2/Groups/{}", id(&inner)))));
    // Without a declared type the server finds it out.
    let untyped = app.create_group("Outer2", &[id(&inner)]).await;
    assert_eq!(member(&untyped, id(&inner)).expect("member")["type"], "Group");
}

#[tokio::test]
async fn a_member_type_is_accepted_in_any_case_and_answered_canonically() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let response = app
        .post(
            "/scim/v2/Groups",
            &group_body("G", json!([{ "value": id(&alice), "type": "user" }])),
        )
        .await;
    assert_eq!(response.status(), 201);
    let group: Value = response.json().await.expect("json");
    assert_eq!(member(&group, id(&alice)).expect("member")["type"], "User");
}

#[tokio::test]
async fn an_unknown_member_id_returns_400_invalid_value_and_creates_no_group() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    app.create_group("Existing", &[]).await;
    let body = group_body(
        "Ghosts",
        json!([{ "value": id(&alice) }, { "value": "00000000-0000-0000-0000-000000000000" }]),
    );
    let response = app.post("/scim/v2/Groups", &body).await;
    let error = assert_scim_error(response, 400, Some("invalidValue")).await;
    assert!(
        error["detail"]
            .as_str()
            .expect("detail")
            .contains("00000000-0000-0000-0000-000000000000"),
        "{error}"
    );
    assert_eq!(group_total(&app).await, 1, "the refused group was not stored");
    let alice_now = get_ok(&app, &format!("/scim/v2/Users/{}", id(&alice))).await;
    assert!(
        alice_now.get("groups").is_none(),
        "no membership left behind: {alice_now}"
    );
}

#[tokio::test]
async fn a_member_declared_with_the_wrong_type_returns_400_and_creates_no_group() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let team = app.create_group("Team", &[]).await;
    let user_as_group = group_body("A", json!([{ "value": id(&alice), "type": "Group" }]));
    assert_scim_error(
        app.post("/scim/v2/Groups", &user_as_group).await,
        400,
        Some("invalidValue"),
    )
    .await;
    let group_as_user = group_body("B", json!([{ "value": id(&team), "type": "User" }]));
    assert_scim_error(
        app.post("/scim/v2/Groups", &group_as_user).await,
        400,
        Some("invalidValue"),
    )
    .await;
    let neither = group_body("C", json!([{ "value": id(&alice), "type": "Device" }]));
    assert_scim_error(app.post("/scim/v2/Groups", &neither).await, 400, Some("invalidValue")).await;
    assert_eq!(group_total(&app).await, 1, "only Team exists");
}

#[tokio::test]
async fn a_member_without_value_returns_400_invalid_value() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let body = group_body(
        "G",
        json!([{ "display": "alice", "$ref": app.url(&format!("/scim/v2/Users/{}", id(&alice))) }]),
    );
    assert_scim_error(app.post("/scim/v2/Groups", &body).await, 400, Some("invalidValue")).await;
    assert_eq!(group_total(&app).await, 0);
}

#[tokio::test]
async fn a_user_shows_its_direct_and_indirect_groups() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let a = app.create_group("A", &[id(&u)]).await;
    let b = app.create_group("B", &[id(&a)]).await;
    let c = app.create_group("C", &[id(&b)]).await;
    app.create_group("Unrelated", &[]).await;
    let user = get_ok(&app, &format!("/scim/v2/Users/{}", id(&u))).await;
    assert_eq!(
        groups_of(&user),
        pairs(&[(id(&a), "direct"), (id(&b), "indirect"), (id(&c), "indirect")]),
        "{user}"
    );
    let entry = user["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["value"] == id(&a))
        .expect("A");
    assert_eq!(entry["display"], "A");
    assert_eq!(entry["$ref"], json!(app.url(&format!("/scim/v2/Groups/{}", id(&a)))));
    let listed = get_ok(&app, "/scim/v2/Users").await;
    assert_eq!(
        groups_of(&listed["Resources"][0]),
        groups_of(&user),
        "a list derives groups too"
    );
}

#[tokio::test]
async fn a_group_held_both_directly_and_through_nesting_is_listed_once_as_direct() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let a = app.create_group("A", &[id(&u)]).await;
    let b = app.create_group("B", &[id(&u), id(&a)]).await;
    let user = get_ok(&app, &format!("/scim/v2/Users/{}", id(&u))).await;
    assert_eq!(
        groups_of(&user),
        pairs(&[(id(&a), "direct"), (id(&b), "direct")]),
        "{user}"
    );
}

#[tokio::test]
async fn a_membership_cycle_between_groups_is_resolved_without_hanging() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let a = app.create_group("A", &[id(&u)]).await;
    let b = app.create_group("B", &[id(&a)]).await;
    let cycle = group_body("A", json!([{ "value": id(&u) }, { "value": id(&b) }]));
    let response = app.put(&format!("/scim/v2/Groups/{}", id(&a)), &cycle).await;
    assert_eq!(response.status(), 200, "a cycle through another group is not forbidden");
    let user = tokio::time::timeout(
        Duration::from_secs(20),
        get_ok(&app, &format!("/scim/v2/Users/{}", id(&u))),
    )
    .await
    .expect("resolving groups through a cycle terminates");
    assert_eq!(
        groups_of(&user),
        pairs(&[(id(&a), "direct"), (id(&b), "indirect")]),
        "{user}"
    );
}

#[tokio::test]
async fn a_group_cannot_be_a_member_of_itself() {
    let app = spawn_app().await;
    let g = app.create_group("Self", &[]).await;
    let path = format!("/scim/v2/Groups/{}", id(&g));
    let response = app.put(&path, &group_body("Self", json!([{ "value": id(&g) }]))).await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    let fetched = get_ok(&app, &path).await;
    assert_eq!(fetched, g, "the refused replace changed nothing");
}

#[tokio::test]
async fn replace_group_sets_the_member_set_exactly() {
    let app = spawn_app().await;
    let u1 = app.create_user("u1").await;
    let u2 = app.create_user("u2").await;
    let u3 = app.create_user("u3").await;
    let group = app.create_group("G", &[id(&u1), id(&u2)]).await;
    let path = format!("/scim/v2/Groups/{}", id(&group));
    let response = app
        .put(
            &path,
            &group_body("G renamed", json!([{ "value": id(&u2) }, { "value": id(&u3) }])),
        )
        .await;
    assert_eq!(response.status(), 200);
    let replaced: Value = response.json().await.expect("json");
    let mut expected = vec![id(&u2).to_string(), id(&u3).to_string()];
    expected.sort();
    assert_eq!(member_ids(&replaced), expected);
    assert_eq!(replaced["displayName"], "G renamed");
    assert_ne!(replaced["meta"]["version"], group["meta"]["version"]);
    assert_eq!(get_ok(&app, &path).await, replaced);
    let user1 = get_ok(&app, &format!("/scim/v2/Users/{}", id(&u1))).await;
    assert!(user1.get("groups").is_none(), "u1 was removed: {user1}");
    let user3 = get_ok(&app, &format!("/scim/v2/Users/{}", id(&u3))).await;
    assert_eq!(groups_of(&user3), pairs(&[(id(&group), "direct")]));
    let emptied = app
        .put(&path, &json!({ "schemas": [GROUP_SCHEMA], "displayName": "G" }))
        .await;
    assert_eq!(emptied.status(), 200);
    let emptied: Value = emptied.json().await.expect("json");
    assert!(
        emptied.get("members").is_none(),
        "omitting members removes them all: {emptied}"
    );
    let user2 = get_ok(&app, &format!("/scim/v2/Users/{}", id(&u2))).await;
    assert!(user2.get("groups").is_none(), "{user2}");
}

#[tokio::test]
async fn replace_group_with_an_unknown_member_returns_400_and_keeps_the_members() {
    let app = spawn_app().await;
    let u1 = app.create_user("u1").await;
    let group = app.create_group("G", &[id(&u1)]).await;
    let path = format!("/scim/v2/Groups/{}", id(&group));
    let body = group_body("G2", json!([{ "value": "11111111-1111-1111-1111-111111111111" }]));
    assert_scim_error(app.put(&path, &body).await, 400, Some("invalidValue")).await;
    assert_eq!(get_ok(&app, &path).await, group, "nothing changed");
}

#[tokio::test]
async fn excluded_attributes_members_omits_members_and_attributes_selects_them() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let group = app.create_group("G", &[id(&u)]).await;
    let path = format!("/scim/v2/Groups/{}", id(&group));
    let without = get_ok(&app, &format!("{path}?excludedAttributes=members")).await;
    assert!(without.get("members").is_none(), "{without}");
    assert_eq!(without["displayName"], "G");
    assert_eq!(without["id"], group["id"]);
    let listed = get_ok(&app, "/scim/v2/Groups?excludedAttributes=members").await;
    assert_eq!(listed["totalResults"], 1);
    assert!(listed["Resources"][0].get("members").is_none(), "{listed}");
    assert_eq!(listed["Resources"][0]["displayName"], "G");
    let only = get_ok(&app, &format!("{path}?attributes=members.value")).await;
    assert_eq!(only["members"], json!([{ "value": id(&u) }]), "{only}");
    assert!(only.get("displayName").is_none(), "{only}");
    let user = get_ok(&app, &format!("/scim/v2/Users/{}?excludedAttributes=groups", id(&u))).await;
    assert!(user.get("groups").is_none(), "{user}");
}

#[tokio::test]
async fn deleting_a_user_removes_it_from_group_members() {
    let app = spawn_app().await;
    let u1 = app.create_user("u1").await;
    let u2 = app.create_user("u2").await;
    let group = app.create_group("G", &[id(&u1), id(&u2)]).await;
    assert_eq!(app.delete(&format!("/scim/v2/Users/{}", id(&u1))).await.status(), 204);
    let fetched = get_ok(&app, &format!("/scim/v2/Groups/{}", id(&group))).await;
    assert_eq!(member_ids(&fetched), vec![id(&u2).to_string()], "{fetched}");
    // The group can still be replaced naming its remaining members.
    let body = group_body("G", json!([{ "value": id(&u2) }]));
    assert_eq!(
        app.put(&format!("/scim/v2/Groups/{}", id(&group)), &body)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn deleting_a_group_removes_it_from_users_groups_direct_and_indirect() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let a = app.create_group("A", &[id(&u)]).await;
    let b = app.create_group("B", &[id(&a)]).await;
    let user_path = format!("/scim/v2/Users/{}", id(&u));
    assert_eq!(app.delete(&format!("/scim/v2/Groups/{}", id(&b))).await.status(), 204);
    let user = get_ok(&app, &user_path).await;
    assert_eq!(groups_of(&user), pairs(&[(id(&a), "direct")]), "{user}");

    let b2 = app.create_group("B2", &[id(&a)]).await;
    assert_eq!(app.delete(&format!("/scim/v2/Groups/{}", id(&a))).await.status(), 204);
    let user = get_ok(&app, &user_path).await;
    assert!(
        user.get("groups").is_none(),
        "deleting A ends the indirect membership too: {user}"
    );
    let b2 = get_ok(&app, &format!("/scim/v2/Groups/{}", id(&b2))).await;
    assert!(b2.get("members").is_none(), "A left B2's members: {b2}");
}

#[tokio::test]
async fn group_display_name_is_required() {
    let app = spawn_app().await;
    let missing = json!({ "schemas": [GROUP_SCHEMA], "members": [] });
    assert_scim_error(app.post("/scim/v2/Groups", &missing).await, 400, Some("invalidValue")).await;
    let empty = json!({ "schemas": [GROUP_SCHEMA], "displayName": "" });
    assert_scim_error(app.post("/scim/v2/Groups", &empty).await, 400, Some("invalidValue")).await;
    let null = json!({ "schemas": [GROUP_SCHEMA], "displayName": null });
    assert_scim_error(app.post("/scim/v2/Groups", &null).await, 400, Some("invalidValue")).await;
    assert_eq!(group_total(&app).await, 0);
    let group = app.create_group("G", &[]).await;
    let path = format!("/scim/v2/Groups/{}", id(&group));
    assert_scim_error(app.put(&path, &missing).await, 400, Some("invalidValue")).await;
    assert_eq!(get_ok(&app, &path).await, group);
}

#[tokio::test]
async fn a_group_cannot_reference_a_user_of_another_tenant() {
    let app = spawn_app().await;
    create_tenant(&app, "other").await;
    let other_key = app
        .key_in_tenant(
            "other",
            &[
                Scope::UsersRead,
                Scope::UsersWrite,
                Scope::GroupsRead,
                Scope::GroupsWrite,
            ],
            None,
        )
        .await;
    let default_user = app.create_user("alice").await;
    let body = group_body("Intruders", json!([{ "value": id(&default_user) }]));
    for path in ["/t/other/scim/v2/Groups", "/scim/v2/Groups"] {
        let response = app
            .request_with(&other_key, Method::POST, path)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        assert_scim_error(response, 400, Some("invalidValue")).await;
    }
    let other_groups: Value = json_body(app.request_with(&other_key, Method::GET, "/t/other/scim/v2/Groups")).await;
    assert_eq!(other_groups["totalResults"], 0, "no group was created in tenant other");
    assert_eq!(group_total(&app).await, 0, "nor in tenant default");
    let alice = get_ok(&app, &format!("/scim/v2/Users/{}", id(&default_user))).await;
    assert!(alice.get("groups").is_none(), "{alice}");

    // The other tenant's own users work, with $ref under its tenant path.
    let created = app
        .request_with(&other_key, Method::POST, "/t/other/scim/v2/Users")
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "alice" }))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201, "userName is unique per tenant only");
    let other_user: Value = created.json().await.expect("json");
    let response = app
        .request_with(&other_key, Method::POST, "/t/other/scim/v2/Groups")
        .json(&group_body("Mine", json!([{ "value": id(&other_user) }])))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let group: Value = response.json().await.expect("json");
    assert_eq!(
        member(&group, id(&other_user)).expect("member")["$ref"],
        json!(app.url(&format!("/t/other/scim/v2/Users/{}", id(&other_user))))
    );
    assert_eq!(
        group["meta"]["location"],
        json!(app.url(&format!("/t/other/scim/v2/Groups/{}", id(&group))))
    );

    // And a default-tenant group cannot take the other tenant's user either.
    let response = app
        .post(
            "/scim/v2/Groups",
            &group_body("Reverse", json!([{ "value": id(&other_user) }])),
        )
        .await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    // Nor can the other tenant's key see the default tenant's groups by naming it.
    let response = app
        .request_with(&other_key, Method::GET, "/t/default/scim/v2/Groups")
        .send()
        .await
        .expect("request");
    assert_scim_error(response, 401, None).await;
}

#[tokio::test]
async fn a_key_of_another_tenant_cannot_read_or_delete_a_group_by_id() {
    let app = spawn_app().await;
    create_tenant(&app, "other").await;
    let other_key = app
        .key_in_tenant(
            "other",
            &[Scope::GroupsRead, Scope::GroupsWrite, Scope::GroupsDelete],
            None,
        )
        .await;
    let group = app.create_group("G", &[]).await;
    let path = format!("/scim/v2/Groups/{}", id(&group));
    let read = app
        .request_with(&other_key, Method::GET, &path)
        .send()
        .await
        .expect("request");
    assert_scim_error(read, 404, None).await;
    let replace = app
        .request_with(&other_key, Method::PUT, &path)
        .json(&group_body("Taken", json!([])))
        .send()
        .await
        .expect("request");
    assert_scim_error(replace, 404, None).await;
    let delete = app
        .request_with(&other_key, Method::DELETE, &path)
        .send()
        .await
        .expect("request");
    assert_scim_error(delete, 404, None).await;
    assert_eq!(
        get_ok(&app, &path).await,
        group,
        "the default tenant's group is untouched"
    );
}

#[tokio::test]
async fn a_tenant_path_group_gives_member_refs_under_that_path() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let response = app
        .post(
            "/t/default/scim/v2/Groups",
            &group_body("G", json!([{ "value": id(&u) }])),
        )
        .await;
    assert_eq!(response.status(), 201);
    let group: Value = response.json().await.expect("json");
    assert_eq!(
        member(&group, id(&u)).expect("member")["$ref"],
        json!(app.url(&format!("/t/default/scim/v2/Users/{}", id(&u))))
    );
    let user = get_ok(&app, &format!("/t/default/scim/v2/Users/{}", id(&u))).await;
    assert_eq!(
        user["groups"][0]["$ref"],
        json!(app.url(&format!("/t/default/scim/v2/Groups/{}", id(&group))))
    );
}

#[tokio::test]
async fn tenant_path_routes_read_replace_and_delete_a_group_by_its_id() {
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let group = app.create_group("G", &[id(&u)]).await;
    let tenant_path = format!("/t/default/scim/v2/Groups/{}", id(&group));
    let plain_path = format!("/scim/v2/Groups/{}", id(&group));
    let fetched = get_ok(&app, &tenant_path).await;
    assert_eq!(fetched["id"], group["id"]);
    assert_eq!(fetched["meta"]["location"], json!(app.url(&tenant_path)));
    let replaced = app.put(&tenant_path, &group_body("G2", json!([]))).await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(get_ok(&app, &plain_path).await["displayName"], "G2");
    assert_eq!(app.delete(&tenant_path).await.status(), 204);
    assert_scim_error(app.get(&plain_path).await, 404, None).await;
}

#[tokio::test]
async fn a_group_with_more_members_than_one_sql_batch_round_trips() {
    let app = spawn_app().await;
    let mut user_ids: Vec<String> = Vec::new();
    // One request first: a burst of cold requests would each verify the key.
    get_ok(&app, "/scim/v2/Users").await;
    let names: Vec<String> = (0..520).map(|i| format!("user{i:03}")).collect();
    for batch in names.chunks(40) {
        let created = futures_util::future::join_all(batch.iter().map(|name| app.create_user(name))).await;
        user_ids.extend(created.iter().map(|u| id(u).to_string()));
    }
    let members: Vec<Value> = user_ids.iter().map(|u| json!({ "value": u })).collect();
    let response = app
        .post("/scim/v2/Groups", &group_body("Everyone", json!(members)))
        .await;
    assert_eq!(response.status(), 201);
    let group: Value = response.json().await.expect("json");
    let mut expected = user_ids.clone();
    expected.sort();
    assert_eq!(member_ids(&group), expected);

    let path = format!("/scim/v2/Groups/{}", id(&group));
    let (removed, kept) = user_ids.split_at(10);
    let members: Vec<Value> = kept.iter().map(|u| json!({ "value": u })).collect();
    assert_eq!(
        app.put(&path, &group_body("Everyone", json!(members))).await.status(),
        200
    );
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(member_ids(&get_ok(&app, &path).await), expected);

    let listed = get_ok(&app, "/scim/v2/Users?count=1000").await;
    let users = listed["Resources"].as_array().expect("Resources");
    assert_eq!(users.len(), 520);
    for user in users {
        let in_group = !removed.iter().any(|r| r == id(user));
        let expected = if in_group {
            pairs(&[(id(&group), "direct")])
        } else {
            Vec::new()
        };
        assert_eq!(groups_of(user), expected, "{}", user["userName"]);
    }
}

#[tokio::test]
async fn deleting_a_member_changes_the_groups_etag() {
    // RFC 7232 §2.3: a weak ETag may only be shared by equivalent
    // representations; a group that lost a member is not equivalent.
    let app = spawn_app().await;
    let u1 = app.create_user("u1").await;
    let u2 = app.create_user("u2").await;
    let group = app.create_group("G", &[id(&u1), id(&u2)]).await;
    let path = format!("/scim/v2/Groups/{}", id(&group));
    assert_eq!(
        revalidate(&app, &path, &group["meta"]["version"]).await,
        304,
        "unchanged so far"
    );
    assert_eq!(app.delete(&format!("/scim/v2/Users/{}", id(&u1))).await.status(), 204);
    assert_eq!(
        revalidate(&app, &path, &group["meta"]["version"]).await,
        200,
        "a client holding the old member list must not be told it is current"
    );
    let fetched = get_ok(&app, &path).await;
    assert_ne!(fetched["meta"]["version"], group["meta"]["version"]);
}

#[tokio::test]
async fn joining_a_group_changes_the_users_etag() {
    // The User's representation carries `groups`; a cached copy without the
    // new group is stale and must not be revalidated as current.
    let app = spawn_app().await;
    let u = app.create_user("u").await;
    let path = format!("/scim/v2/Users/{}", id(&u));
    assert_eq!(
        revalidate(&app, &path, &u["meta"]["version"]).await,
        304,
        "unchanged so far"
    );
    app.create_group("G", &[id(&u)]).await;
    assert_eq!(revalidate(&app, &path, &u["meta"]["version"]).await, 200);
    let fetched = get_ok(&app, &path).await;
    assert!(fetched.get("groups").is_some(), "{fetched}");
    assert_ne!(fetched["meta"]["version"], u["meta"]["version"]);
}

/// A user's `groups` shows every group above it, by name: whatever changes
/// that list (a rename, nesting, un-nesting, a deletion, at any depth)
/// must change the user's ETag, or a client revalidating is told a stale
/// copy is current.
#[tokio::test]
async fn changes_to_groups_above_a_user_at_any_depth_change_its_etag() {
    let app = spawn_app().await;
    let u = app.create_user("nested-user").await;
    let child = app.create_group("Child", &[id(&u)]).await;
    let parent = app.create_group("Parent", &[]).await;
    let user_path = format!("/scim/v2/Users/{}", id(&u));
    let parent_path = format!("/scim/v2/Groups/{}", id(&parent));
    let patch = |operations: Value| json!({ "schemas": [PATCH_OP], "Operations": operations });
    let mut seen = get_ok(&app, &user_path).await;

    let display = |user: &Value, group: &Value| {
        user["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|e| e["value"] == group["id"]))
            .map(|e| e["display"].clone())
    };
    // (what, method, path, body, the user's groups after, Parent's display after)
    type Step<'a> = (&'a str, Method, String, Value, Vec<(&'a str, &'a str)>, Option<Value>);
    let steps: Vec<Step> = vec![
        (
            "nesting Child in Parent",
            Method::PATCH,
            parent_path.clone(),
            patch(json!([{ "op": "add", "path": "members", "value": [{ "value": id(&child) }] }])),
            vec![(id(&child), "direct"), (id(&parent), "indirect")],
            Some(json!("Parent")),
        ),
        (
            "renaming Parent (PATCH)",
            Method::PATCH,
            parent_path.clone(),
            patch(json!([{ "op": "replace", "path": "displayName", "value": "Parent 2" }])),
            vec![(id(&child), "direct"), (id(&parent), "indirect")],
            Some(json!("Parent 2")),
        ),
        (
            "renaming Parent (PUT)",
            Method::PUT,
            parent_path.clone(),
            group_body("Parent 3", json!([{ "value": id(&child) }])),
            vec![(id(&child), "direct"), (id(&parent), "indirect")],
            Some(json!("Parent 3")),
        ),
        (
            "un-nesting Child",
            Method::PATCH,
            parent_path.clone(),
            patch(json!([{ "op": "remove", "path": format!("members[value eq \"{}\"]", id(&child)) }])),
            vec![(id(&child), "direct")],
            None,
        ),
    ];
    for (what, method, path, body, expected, parent_display) in steps {
        let response = app.send(method, &path, &body).await;
        assert_eq!(
            response.status(),
            200,
            "{what}: {}",
            response.text().await.unwrap_or_default()
        );
        assert_eq!(
            revalidate(&app, &user_path, &seen["meta"]["version"]).await,
            200,
            "{what}"
        );
        let now = get_ok(&app, &user_path).await;
        assert_ne!(now["meta"]["version"], seen["meta"]["version"], "{what}");
        assert_eq!(groups_of(&now), pairs(&expected), "{what}");
        assert_eq!(display(&now, &parent), parent_display, "{what}");
        seen = now;
    }

    // Nest again, then delete Parent: the user loses its indirect group.
    let nest = patch(json!([{ "op": "add", "path": "members", "value": [{ "value": id(&child) }] }]));
    assert_eq!(app.send(Method::PATCH, &parent_path, &nest).await.status(), 200);
    seen = get_ok(&app, &user_path).await;
    assert_eq!(display(&seen, &parent), Some(json!("Parent 3")));
    assert_eq!(app.delete(&parent_path).await.status(), 204);
    assert_eq!(revalidate(&app, &user_path, &seen["meta"]["version"]).await, 200);
    let now = get_ok(&app, &user_path).await;
    assert_eq!(groups_of(&now), pairs(&[(id(&child), "direct")]));

    // A PUT that leaves the name as it was changes nobody below.
    let child_path = format!("/scim/v2/Groups/{}", id(&child));
    let same = group_body("Child", json!([{ "value": id(&u) }]));
    assert_eq!(app.send(Method::PUT, &child_path, &same).await.status(), 200);
    assert_eq!(revalidate(&app, &user_path, &now["meta"]["version"]).await, 304);
}
