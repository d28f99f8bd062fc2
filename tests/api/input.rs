//! Bad input gets the right SCIM error and changes nothing; lenient input
//! (Entra ID's spellings, `application/json`) is accepted and normalised.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{ENTERPRISE, GROUP_SCHEMA, TestApp, USER_SCHEMA, assert_scim_error, spawn_app};

fn id(resource: &Value) -> &str {
    resource["id"].as_str().expect("resource has an id")
}

/// Sends a raw body with the SCIM content type.
async fn send_raw(app: &TestApp, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Response {
    app.request(method, path)
        .header("Content-Type", "application/scim+json")
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn user_total(app: &TestApp) -> u64 {
    let list: Value = app.get("/scim/v2/Users").await.json().await.expect("json");
    list["totalResults"].as_u64().expect("totalResults")
}

async fn fetch(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn user(user_name: &str) -> Value {
    json!({ "schemas": [USER_SCHEMA], "userName": user_name })
}

/// `user(user_name)` with `attr` set to `value`.
fn user_with(user_name: &str, attr: &str, value: Value) -> Value {
    let mut body = user(user_name);
    body[attr] = value;
    body
}

#[tokio::test]
async fn malformed_json_returns_400_invalid_syntax_and_changes_nothing() {
    let app = spawn_app().await;
    let existing = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id(&existing));
    for body in [
        r#"{"userName": "x","#,
        r#"{"userName": 'x'}"#,
        "userName=x",
        "{\"userName\": \"x\"} trailing",
    ] {
        let created = send_raw(&app, Method::POST, "/scim/v2/Users", body).await;
        assert_scim_error(created, 400, Some("invalidSyntax")).await;
        let replaced = send_raw(&app, Method::PUT, &path, body).await;
        assert_scim_error(replaced, 400, Some("invalidSyntax")).await;
    }
    assert_eq!(user_total(&app).await, 1);
    assert_eq!(fetch(&app, &path).await, existing);
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_returns_400_invalid_syntax() {
    let app = spawn_app().await;
    for body in [r#"[{"userName": "x"}]"#, r#""userName""#, "42", "null", "true"] {
        let response = send_raw(&app, Method::POST, "/scim/v2/Users", body).await;
        assert_scim_error(response, 400, Some("invalidSyntax")).await;
        let response = send_raw(&app, Method::POST, "/scim/v2/Groups", body).await;
        assert_scim_error(response, 400, Some("invalidSyntax")).await;
    }
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn an_empty_body_returns_400_invalid_syntax() {
    let app = spawn_app().await;
    let response = send_raw(&app, Method::POST, "/scim/v2/Users", "").await;
    assert_scim_error(response, 400, Some("invalidSyntax")).await;
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn deeply_nested_json_is_refused_with_400_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let body = format!(
        "{{\"userName\": \"x\", \"name\": {}{}}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let response = send_raw(&app, Method::POST, "/scim/v2/Users", body).await;
    assert_scim_error(response, 400, Some("invalidSyntax")).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn a_body_over_the_size_limit_returns_413_scim_error_and_changes_nothing() {
    let app = spawn_app().await;
    let existing = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id(&existing));
    let oversized = user_with("big", "displayName", json!("x".repeat(70 * 1024)));
    assert_scim_error(app.post("/scim/v2/Users", &oversized).await, 413, None).await;
    let oversized = user_with("bjensen", "displayName", json!("x".repeat(70 * 1024)));
    assert_scim_error(app.put(&path, &oversized).await, 413, None).await;
    let group = json!({ "schemas": [GROUP_SCHEMA], "displayName": "y".repeat(70 * 1024) });
    assert_scim_error(app.post("/scim/v2/Groups", &group).await, 413, None).await;
    assert_eq!(user_total(&app).await, 1);
    assert_eq!(fetch(&app, &path).await, existing);
}

#[tokio::test]
async fn a_body_just_under_the_size_limit_is_accepted() {
    let app = spawn_app().await;
    let display_name = "x".repeat(60 * 1024);
    let response = app
        .post("/scim/v2/Users", &user_with("big", "displayName", json!(display_name)))
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["displayName"], json!(display_name));
}

#[tokio::test]
async fn a_missing_or_blank_user_name_returns_400_invalid_value() {
    let app = spawn_app().await;
    let bodies = [
        json!({ "schemas": [USER_SCHEMA], "displayName": "No Name" }),
        user(""),
        user("   "),
        json!({ "schemas": [USER_SCHEMA], "userName": null }),
    ];
    for body in &bodies {
        let response = app.post("/scim/v2/Users", body).await;
        assert_scim_error(response, 400, Some("invalidValue")).await;
    }
    let existing = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id(&existing));
    assert_scim_error(app.put(&path, &bodies[0]).await, 400, Some("invalidValue")).await;
    assert_eq!(user_total(&app).await, 1);
    assert_eq!(fetch(&app, &path).await, existing);
}

#[tokio::test]
async fn values_of_the_wrong_type_return_400_invalid_value_and_change_nothing() {
    let app = spawn_app().await;
    let cases = [
        ("active", json!("notabool")),
        ("active", json!(1)),
        ("userName", json!(42)),
        ("displayName", json!(true)),
        ("displayName", json!(["a", "b"])),
        ("emails", json!("x")),
        ("emails", json!([{ "value": 5 }])),
        ("emails", json!([{ "value": "a@example.com", "primary": "yes" }])),
        ("emails", json!([["a@example.com"]])),
        ("name", json!("Barbara Jensen")),
        ("name", json!({ "givenName": 7 })),
        ("x509Certificates", json!([{ "value": "not base64!" }])),
        (ENTERPRISE, json!({ "employeeNumber": 12 })),
    ];
    for (attr, value) in cases {
        let response = app
            .post("/scim/v2/Users", &user_with("bjensen", attr, value.clone()))
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 400, "{attr}: {value} → {body}");
        assert_eq!(body["scimType"], "invalidValue", "{attr}: {value} → {body}");
    }
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn an_unknown_attribute_returns_400_invalid_syntax_and_changes_nothing() {
    let app = spawn_app().await;
    let cases = [
        user_with("bjensen", "favouriteColour", json!("blue")),
        user_with("bjensen", "name", json!({ "givenName": "Barbara", "nickname": "Babs" })),
        user_with(
            "bjensen",
            "urn:example:params:scim:schemas:extension:custom:2.0:User",
            json!({ "x": 1 }),
        ),
        user_with("bjensen", ENTERPRISE, json!({ "shoeSize": 42 })),
    ];
    for body in &cases {
        let response = app.post("/scim/v2/Users", body).await;
        assert_scim_error(response, 400, Some("invalidSyntax")).await;
    }
    let group = json!({ "schemas": [GROUP_SCHEMA], "displayName": "G", "owner": "me" });
    assert_scim_error(app.post("/scim/v2/Groups", &group).await, 400, Some("invalidSyntax")).await;
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn an_attribute_given_twice_in_different_case_returns_400_invalid_syntax() {
    let app = spawn_app().await;
    let body = r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "UserName": "b"}"#;
    let response = send_raw(&app, Method::POST, "/scim/v2/Users", body).await;
    assert_scim_error(response, 400, Some("invalidSyntax")).await;
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn read_only_attributes_in_input_are_ignored() {
    let app = spawn_app().await;
    let group = app.create_group("Admins", &[]).await;
    let body = json!({
        "schemas": [USER_SCHEMA],
        "id": "my-own-id",
        "userName": "bjensen",
        "meta": { "created": "2000-01-01T00:00:00Z", "location": "https://evil.example/Users/x", "version": "W/\"99\"" },
        "groups": [{ "value": id(&group) }]
    });
    let response = app.post("/scim/v2/Users", &body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let user_id = id(&created).to_string();
    assert_ne!(user_id, "my-own-id");
    assert_ne!(created["meta"]["created"], "2000-01-01T00:00:00Z");
    assert_eq!(
        created["meta"]["location"],
        json!(app.url(&format!("/scim/v2/Users/{user_id}")))
    );
    assert_ne!(created["meta"]["version"], "W/\"99\"");
    assert!(
        created.get("groups").is_none(),
        "groups is derived from group members only: {created}"
    );
    assert_scim_error(app.get("/scim/v2/Users/my-own-id").await, 404, None).await;

    let path = format!("/scim/v2/Users/{user_id}");
    let mut replacement = body.clone();
    replacement["id"] = json!("another-id");
    replacement["displayName"] = json!("Babs");
    let response = app.put(&path, &replacement).await;
    assert_eq!(response.status(), 200);
    let replaced: Value = response.json().await.expect("json");
    assert_eq!(
        replaced["id"],
        json!(user_id),
        "the URL names the resource, not the body"
    );
    assert_eq!(replaced["meta"]["created"], created["meta"]["created"]);
    assert_eq!(replaced["displayName"], "Babs");
    assert_eq!(user_total(&app).await, 1);
}

#[tokio::test]
async fn entra_style_pascal_case_names_and_string_booleans_are_accepted_and_normalised() {
    let app = spawn_app().await;
    let body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "UserName": "AdeleV@contoso.example",
        "Active": "True",
        "DisplayName": "Adele Vance",
        "Name": { "GivenName": "Adele", "FamilyName": "Vance" },
        "Emails": [{ "Value": "adele@contoso.example", "Type": "Work", "Primary": "true" }],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Retail"
    });
    let response = app.post("/scim/v2/Users", &body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["userName"], "AdeleV@contoso.example");
    assert_eq!(created["active"], json!(true));
    assert_eq!(created["displayName"], "Adele Vance");
    assert_eq!(created["name"], json!({ "familyName": "Vance", "givenName": "Adele" }));
    assert_eq!(
        created["emails"],
        json!([{ "value": "adele@contoso.example", "type": "work", "primary": true }])
    );
    assert_eq!(created[ENTERPRISE]["department"], "Retail");
    assert!(
        created.get("UserName").is_none() && created.get("Active").is_none(),
        "{created}"
    );
    assert_eq!(fetch(&app, &format!("/scim/v2/Users/{}", id(&created))).await, created);

    let path = format!("/scim/v2/Users/{}", id(&created));
    let deactivate = json!({ "schemas": [USER_SCHEMA], "userName": "AdeleV@contoso.example", "active": "False" });
    let replaced: Value = app.put(&path, &deactivate).await.json().await.expect("json");
    assert_eq!(replaced["active"], json!(false));
}

#[tokio::test]
async fn two_primary_emails_return_400_invalid_value() {
    let app = spawn_app().await;
    let emails = json!([
        { "value": "a@example.com", "primary": true },
        { "value": "b@example.com", "primary": "True" }
    ]);
    let response = app
        .post("/scim/v2/Users", &user_with("bjensen", "emails", emails))
        .await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn an_empty_password_returns_400_invalid_value() {
    let app = spawn_app().await;
    let response = app
        .post("/scim/v2/Users", &user_with("bjensen", "password", json!("")))
        .await;
    assert_scim_error(response, 400, Some("invalidValue")).await;
    assert_eq!(user_total(&app).await, 0);
}

#[tokio::test]
async fn an_unknown_endpoint_under_scim_v2_returns_404_scim_error() {
    let app = spawn_app().await;
    let existing = app.create_user("bjensen").await;
    let paths = [
        "/scim/v2/Devices".to_string(),
        "/scim/v2/users".to_string(),
        format!("/scim/v2/Users/{}/extra", id(&existing)),
        "/t/default/scim/v2/Devices".to_string(),
    ];
    for path in &paths {
        assert_scim_error(app.get(path).await, 404, None).await;
        assert_scim_error(app.post(path, &user("x")).await, 404, None).await;
    }
    assert_eq!(user_total(&app).await, 1);
}

#[tokio::test]
async fn application_json_is_accepted_as_a_content_type() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/scim/v2/Users")
        .header("Content-Type", "application/json")
        .body(user("bjensen").to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(
        content_type.starts_with("application/scim+json"),
        "answers stay SCIM: {content_type}"
    );
    let created: Value = response.json().await.expect("json");
    let response = app
        .request(Method::PUT, &format!("/scim/v2/Users/{}", id(&created)))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(user_with("bjensen", "displayName", json!("B")).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let replaced: Value = response.json().await.expect("json");
    assert_eq!(replaced["displayName"], "B");
}

#[tokio::test]
async fn a_method_the_endpoint_does_not_serve_returns_405_scim_error_and_changes_nothing() {
    let app = spawn_app().await;
    let existing = app.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id(&existing));
    let body = user("other");
    assert_scim_error(app.post(&path, &body).await, 405, None).await;
    assert_scim_error(app.delete("/scim/v2/Users").await, 405, None).await;
    assert_scim_error(app.put("/scim/v2/Users", &body).await, 405, None).await;
    assert_scim_error(app.put("/scim/v2/Groups", &body).await, 405, None).await;
    assert_eq!(user_total(&app).await, 1, "nothing was created or deleted");
    assert_eq!(fetch(&app, &path).await, existing);
}

#[tokio::test]
async fn a_405_answer_names_the_allowed_methods() {
    // RFC 9110 §15.5.6: a 405 MUST carry an Allow header.
    let app = spawn_app().await;
    let existing = app.create_user("bjensen").await;
    let cases = [
        (
            format!("/scim/v2/Users/{}", id(&existing)),
            Method::POST,
            ["GET", "PUT", "DELETE"].as_slice(),
        ),
        ("/scim/v2/Users".to_string(), Method::DELETE, ["GET", "POST"].as_slice()),
    ];
    for (path, method, allowed) in cases {
        let response = app.send(method.clone(), &path, &user("x")).await;
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .to_ascii_uppercase();
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for m in allowed {
            assert!(listed.contains(m), "{method} {path}: Allow {allow} lacks {m}");
        }
    }
}

#[tokio::test]
async fn a_non_integer_start_index_or_count_returns_400_invalid_value() {
    let app = spawn_app().await;
    for query in ["startIndex=abc", "count=ten", "count=1.5"] {
        let response = app.get(&format!("/scim/v2/Users?{query}")).await;
        assert_scim_error(response, 400, Some("invalidValue")).await;
    }
}

#[tokio::test]
async fn a_negative_count_is_read_as_zero() {
    // RFC 7644 §3.4.2.4: "A negative value SHALL be interpreted as 0."
    let app = spawn_app().await;
    app.create_user("bjensen").await;
    let page: Value = app.get("/scim/v2/Users?count=-5").await.json().await.expect("json");
    assert_eq!(page["totalResults"], 1);
    assert_eq!(page["itemsPerPage"], 0);
    assert_eq!(page["Resources"], json!([]));
}
