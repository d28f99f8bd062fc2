//! Key authentication on SCIM requests: 401s, scopes, tenants, revocation.

use reqwest::Method;
use scimd::auth::Scope;
use serde_json::{Value, json};

use crate::helpers::{USER_SCHEMA, assert_scim_error, json_body, spawn_app};

async fn status_with_key(app: &crate::helpers::TestApp, key: &str, method: Method, path: &str) -> u16 {
    let mut request = app.request_with(key, method.clone(), path);
    if method == Method::POST {
        request = request.json(&json!({ "schemas": [USER_SCHEMA], "userName": format!("u{}", rand_suffix()) }));
    }
    request.send().await.expect("request").status().as_u16()
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[tokio::test]
async fn missing_key_returns_401_with_bearer_challenge_and_scim_body() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/scim/v2/Users")).send().await.expect("request");
    assert_eq!(
        response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .split(' ')
            .next(),
        Some("Bearer")
    );
    assert_scim_error(response, 401, None).await;
}

#[tokio::test]
async fn malformed_mistyped_unknown_and_wrong_secret_keys_all_return_the_same_401() {
    let app = spawn_app().await;
    let valid = app.admin_key.clone();
    let mut typo: Vec<char> = valid.chars().collect();
    typo[50] = if typo[50] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    let unknown = scimd::auth::key::generate().expose().to_string();
    let wrong_secret = scimd::auth::key::with_new_secret(&scimd::auth::key::parse(&valid).expect("valid").id());
    for key in ["garbage", &valid[..40], &typo, &unknown, wrong_secret.expose()] {
        let response = app
            .request_with(key, Method::GET, "/scim/v2/Users")
            .send()
            .await
            .expect("request");
        assert!(response.headers().contains_key("www-authenticate"));
        let body = assert_scim_error(response, 401, None).await;
        assert_eq!(body["detail"], "invalid API key", "no hint about why for {key}");
    }
}

#[tokio::test]
async fn the_bootstrap_key_reaches_every_scim_endpoint() {
    let app = spawn_app().await;
    assert_eq!(app.get("/scim/v2/Users").await.status(), 200);
    assert_eq!(app.get("/scim/v2/Groups").await.status(), 200);
}

#[tokio::test]
async fn a_read_only_key_can_read_but_not_write_or_delete_and_403_names_the_scope() {
    let app = spawn_app().await;
    let user = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", user["id"].as_str().expect("id"));
    let reader = app.key_with_scopes(&[Scope::UsersRead, Scope::GroupsRead]).await;
    assert_eq!(status_with_key(&app, &reader, Method::GET, &path).await, 200);
    assert_eq!(
        status_with_key(&app, &reader, Method::GET, "/scim/v2/Groups").await,
        200
    );
    let create = app
        .request_with(&reader, Method::POST, "/scim/v2/Users")
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "new" }))
        .send()
        .await
        .expect("request");
    let body = assert_scim_error(create, 403, None).await;
    assert!(
        body["detail"].as_str().expect("detail").contains("scim:users:write"),
        "{body}"
    );
    let delete = app
        .request_with(&reader, Method::DELETE, &path)
        .send()
        .await
        .expect("request");
    let body = assert_scim_error(delete, 403, None).await;
    assert!(
        body["detail"].as_str().expect("detail").contains("scim:users:delete"),
        "{body}"
    );
    assert_eq!(app.get(&path).await.status(), 200, "the user is still there");
}

#[tokio::test]
async fn a_user_cleanup_key_reads_and_deletes_users_and_nothing_else() {
    let app = spawn_app().await;
    let user = app.create_user("departed").await;
    let group = app.create_group("team", &[]).await;
    let cleanup = app.key_with_scopes(&[Scope::UsersRead, Scope::UsersDelete]).await;
    let user_path = format!("/scim/v2/Users/{}", user["id"].as_str().expect("id"));
    let group_path = format!("/scim/v2/Groups/{}", group["id"].as_str().expect("id"));
    assert_eq!(
        status_with_key(&app, &cleanup, Method::GET, "/scim/v2/Users").await,
        200
    );
    assert_eq!(
        status_with_key(&app, &cleanup, Method::POST, "/scim/v2/Users").await,
        403
    );
    assert_eq!(status_with_key(&app, &cleanup, Method::GET, &group_path).await, 403);
    assert_eq!(status_with_key(&app, &cleanup, Method::DELETE, &group_path).await, 403);
    assert_eq!(status_with_key(&app, &cleanup, Method::DELETE, &user_path).await, 204);
}

#[tokio::test]
async fn group_scopes_are_separate_from_user_scopes() {
    let app = spawn_app().await;
    let groups_only = app
        .key_with_scopes(&[Scope::GroupsRead, Scope::GroupsWrite, Scope::GroupsDelete])
        .await;
    assert_eq!(
        status_with_key(&app, &groups_only, Method::GET, "/scim/v2/Groups").await,
        200
    );
    assert_eq!(
        status_with_key(&app, &groups_only, Method::GET, "/scim/v2/Users").await,
        403
    );
    let created = app
        .request_with(&groups_only, Method::POST, "/scim/v2/Groups")
        .json(&json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g" }))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
}

#[tokio::test]
async fn an_expired_key_is_refused_with_401_saying_expired() {
    let app = spawn_app().await;
    let expired = app.key_in_tenant("default", &[Scope::UsersRead], Some(-1)).await;
    let response = app
        .request_with(&expired, Method::GET, "/scim/v2/Users")
        .send()
        .await
        .expect("request");
    let body = assert_scim_error(response, 401, None).await;
    assert!(body["detail"].as_str().expect("detail").contains("expired"), "{body}");
}

#[tokio::test]
async fn a_key_of_another_tenant_gets_401_on_the_tenant_path_and_sees_only_its_own_data() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let store = app.store().await;
    let other = scimd::auth::key::generate();
    let hash = scimd::auth::hashing::hash_blocking(other.secret()).expect("hash");
    store
        .create_tenant_with_admin(
            "other",
            "admin",
            "admin",
            &[],
            scimd::store::keys::NewKey {
                id: other.id().as_str(),
                name: "admin",
                description: None,
                key_type: "service",
                secret_hash: &hash,
                scopes: &["scim:users:read".to_string(), "scim:users:write".to_string()],
                allowed_ips: &[],
                expires_at: Some(chrono::Utc::now() + chrono::Duration::days(1)),
                actor: "test",
            },
        )
        .await
        .expect("tenant");
    let other_key = other.expose();
    // Its own tenant path works; the default tenant's path does not.
    assert_eq!(
        status_with_key(&app, other_key, Method::GET, "/t/other/scim/v2/Users").await,
        200
    );
    let wrong = app
        .request_with(other_key, Method::GET, "/t/default/scim/v2/Users")
        .send()
        .await
        .expect("request");
    assert_scim_error(wrong, 401, None).await;
    let admin_on_other = app
        .request(Method::GET, "/t/other/scim/v2/Users")
        .send()
        .await
        .expect("request");
    assert_scim_error(admin_on_other, 401, None).await;
    // Nothing of tenant default is visible, countable or reachable by id.
    let list: Value = json_body(app.request_with(other_key, Method::GET, "/scim/v2/Users")).await;
    assert_eq!(list["totalResults"], 0);
    let alice_path = format!("/scim/v2/Users/{}", alice["id"].as_str().expect("id"));
    let probe = app
        .request_with(other_key, Method::GET, &alice_path)
        .send()
        .await
        .expect("request");
    assert_scim_error(probe, 404, None).await;
    // userName uniqueness is per tenant.
    let same_name = app
        .request_with(other_key, Method::POST, "/t/other/scim/v2/Users")
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "alice" }))
        .send()
        .await
        .expect("request");
    assert_eq!(same_name.status(), 201);
    let created: Value = same_name.json().await.expect("json");
    assert!(
        created["meta"]["location"]
            .as_str()
            .expect("location")
            .contains("/t/other/scim/v2/Users/")
    );
}

#[tokio::test]
async fn deleting_a_key_in_the_database_stops_it_within_a_second() {
    let app = spawn_app().await;
    let key = app.key_with_scopes(&[Scope::UsersRead]).await;
    assert_eq!(status_with_key(&app, &key, Method::GET, "/scim/v2/Users").await, 200);
    let key_id = scimd::auth::key::parse(&key).expect("valid").id();
    // Another instance deletes the key: only the shared database knows.
    let store = app.store().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        store.writer(),
        &format!(
            "DELETE FROM api_keys WHERE id = '{}'; UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1",
            key_id
        ),
    )
    .await
    .expect("delete key");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(status_with_key(&app, &key, Method::GET, "/scim/v2/Users").await, 401);
}

#[tokio::test]
async fn steady_state_verification_does_not_recompute_argon2() {
    // 100 authenticated requests must take far less than 100 argon2 runs
    // (~20 ms each in release, several times that in debug builds).
    let app = spawn_app().await;
    assert_eq!(app.get("/scim/v2/Users?count=0").await.status(), 200);
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(app.get("/scim/v2/Users?count=0").await.status(), 200);
    }
    let single_hash = {
        let t = std::time::Instant::now();
        scimd::auth::hashing::hash_blocking("x").expect("hash");
        t.elapsed()
    };
    assert!(
        started.elapsed() < single_hash * 50,
        "100 requests took {:?}, one hash {:?}",
        started.elapsed(),
        single_hash
    );
}

#[tokio::test]
async fn disabling_a_key_on_one_instance_stops_it_on_another_within_a_second() {
    let first = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let second = crate::helpers::spawn_with(dir, first.data_dir.join("second"), &first).await;
    let key = first.key_with_scopes(&[Scope::UsersRead]).await;
    let key_id = &key[..32];
    // Both instances have verified and cached the key.
    assert_eq!(status_with_key(&first, &key, Method::GET, "/scim/v2/Users").await, 200);
    assert_eq!(status_with_key(&second, &key, Method::GET, "/scim/v2/Users").await, 200);
    let disabled = first
        .request(Method::POST, &format!("/admin/v1/keys/{key_id}/disable"))
        .send()
        .await
        .expect("request");
    assert_eq!(disabled.status(), 200);
    // The instance that made the change refuses at once…
    assert_eq!(status_with_key(&first, &key, Method::GET, "/scim/v2/Users").await, 401);
    // …and the other within a second.
    let started = std::time::Instant::now();
    loop {
        let status = status_with_key(&second, &key, Method::GET, "/scim/v2/Users").await;
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "still {status} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("revocation reached the second instance after {:?}", started.elapsed());
}

/// A key allowed only from 203.0.113.0/24, created through the admin API.
async fn key_allowed_from_documentation_net(app: &crate::helpers::TestApp) -> String {
    let user: Value = app
        .post(
            "/admin/v1/service-users",
            &json!({ "name": "ip-bound", "role": "reader" }),
        )
        .await
        .json()
        .await
        .expect("json");
    let created: Value = app
        .post(
            &format!("/admin/v1/service-users/{}/keys", user["id"].as_str().expect("id")),
            &json!({ "name": "bound", "allowedIps": ["203.0.113.0/24"] }),
        )
        .await
        .json()
        .await
        .expect("json");
    created["key"].as_str().expect("key").to_string()
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let direct = spawn_app().await;
    let key = key_allowed_from_documentation_net(&direct).await;
    let spoofed = direct
        .request_with(&key, Method::GET, "/scim/v2/Users")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .expect("request");
    assert_scim_error(spoofed, 403, None).await;

    let behind_proxy = crate::helpers::spawn_app_configured(|s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    })
    .await;
    let key = key_allowed_from_documentation_net(&behind_proxy).await;
    let via_proxy = |xff: &'static str| {
        behind_proxy
            .request_with(&key, Method::GET, "/scim/v2/Users")
            .header("X-Forwarded-For", xff)
            .send()
    };
    assert_eq!(via_proxy("203.0.113.7").await.expect("request").status(), 200);
    // The right-most untrusted entry counts; a client-supplied left part is ignored.
    assert_eq!(
        via_proxy("203.0.113.7, 198.51.100.1").await.expect("request").status(),
        403
    );
    assert_eq!(
        via_proxy("198.51.100.1, 203.0.113.7").await.expect("request").status(),
        200
    );
    let no_header = behind_proxy
        .request_with(&key, Method::GET, "/scim/v2/Users")
        .send()
        .await
        .expect("request");
    assert_eq!(
        no_header.status(),
        403,
        "the proxy itself (127.0.0.1) is not in the allowlist"
    );
}

#[tokio::test]
async fn a_key_of_tenant_b_cannot_read_count_filter_patch_delete_or_detect_tenant_a_resources() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let group = app.create_group("team-a", &[alice["id"].as_str().expect("id")]).await;
    let created: Value = app
        .post("/admin/v1/tenants", &json!({ "name": "tenant-b" }))
        .await
        .json()
        .await
        .expect("tenant");
    let b = created["key"].as_str().expect("key").to_string();
    let alice_id = alice["id"].as_str().expect("id");
    let group_id = group["id"].as_str().expect("id");
    let alice_before: Value = app
        .get(&format!("/scim/v2/Users/{alice_id}"))
        .await
        .json()
        .await
        .expect("json");
    let send = |method: Method, path: String, body: Option<Value>| {
        let mut request = app.request_with(&b, method, &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    for base in ["/scim/v2", "/t/tenant-b/scim/v2"] {
        // Read and existence: 404, exactly as for an id that exists nowhere.
        for path in [format!("{base}/Users/{alice_id}"), format!("{base}/Groups/{group_id}")] {
            let response = send(Method::GET, path, None).await.expect("request");
            assert_scim_error(response, 404, None).await;
        }
        // Count and filter: nothing.
        for path in [
            format!("{base}/Users"),
            format!("{base}/Users?filter=userName%20eq%20%22alice%22"),
            format!("{base}/Groups?filter=members.value%20eq%20%22{alice_id}%22"),
        ] {
            let list: Value = send(Method::GET, path, None)
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            assert_eq!(list["totalResults"], 0, "{list}");
        }
        let search: Value = send(
            Method::POST,
            format!("{base}/.search"),
            Some(json!({ "filter": "id pr" })),
        )
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
        assert_eq!(search["totalResults"], 0, "{search}");
        // Change: 404, and nothing changed.
        let patch = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "displayName", "value": "pwned" }] });
        let response = send(Method::PATCH, format!("{base}/Users/{alice_id}"), Some(patch))
            .await
            .expect("request");
        assert_scim_error(response, 404, None).await;
        let response = send(Method::DELETE, format!("{base}/Users/{alice_id}"), None)
            .await
            .expect("request");
        assert_scim_error(response, 404, None).await;
        // Reference from tenant B: unknown member.
        let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "x",
            "members": [{ "value": alice_id }] });
        let response = send(Method::POST, format!("{base}/Groups"), Some(body))
            .await
            .expect("request");
        assert_scim_error(response, 400, Some("invalidValue")).await;
    }
    // A's resources are untouched.
    let fetched: Value = app
        .get(&format!("/scim/v2/Users/{alice_id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, alice_before);
    // userName uniqueness is per tenant: B may have its own alice.
    let own = send(
        Method::POST,
        "/scim/v2/Users".into(),
        Some(json!({ "schemas": [USER_SCHEMA], "userName": "ALICE" })),
    )
    .await
    .expect("request");
    assert_eq!(own.status(), 201);
}
