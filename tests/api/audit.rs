//! SCIM writes in the audit log, the key-expiry header and key metrics.

use reqwest::Method;
use scimd::auth::Scope;
use serde_json::{Value, json};

use crate::helpers::{USER_SCHEMA, spawn_app};

#[tokio::test]
async fn every_scim_write_is_audited_with_its_actor_and_request_id() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/scim/v2/Users",
            &json!({ "schemas": [USER_SCHEMA], "userName": "bjensen", "password": "Secr3t!pw" }),
        )
        .await;
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_string();
    let user: Value = response.json().await.expect("json");
    let id = user["id"].as_str().expect("id");
    app.put(
        &format!("/scim/v2/Users/{id}"),
        &json!({ "schemas": [USER_SCHEMA], "userName": "bjensen", "displayName": "B" }),
    )
    .await;
    let group = app.create_group("g", &[id]).await;
    app.delete(&format!("/scim/v2/Groups/{}", group["id"].as_str().expect("id")))
        .await;
    app.delete(&format!("/scim/v2/Users/{id}")).await;

    let events: Value = app
        .get(&format!("/admin/v1/audit-events?targetId={id}"))
        .await
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("a"))
        .collect();
    assert_eq!(
        actions,
        ["user.deleted", "user.replaced", "user.created"],
        "newest first"
    );
    let created = &events["items"][2];
    assert_eq!(created["requestId"], json!(request_id));
    assert_eq!(created["actor"]["serviceUserName"], "bootstrap-admin");
    assert_eq!(created["actor"]["keyId"], json!(&app.admin_key[..32]));
    assert_eq!(created["target"], json!({ "type": "user", "id": id }));
    assert_eq!(created["ip"], "127.0.0.1");
    let all = app
        .get("/admin/v1/audit-events?limit=500")
        .await
        .text()
        .await
        .expect("text");
    assert!(all.contains("group.created") && all.contains("group.deleted"));
    assert!(!all.contains("Secr3t!pw"), "no password in the audit log");
    assert!(!all.contains(&app.admin_key[33..]), "no key secret in the audit log");
}

#[tokio::test]
async fn a_key_expiring_within_7_days_is_told_so_in_a_response_header() {
    let app = spawn_app().await;
    let soon = app.key_in_tenant("default", &[Scope::UsersRead], Some(3)).await;
    let response = app
        .request_with(&soon, Method::GET, "/scim/v2/Users")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let header = response
        .headers()
        .get("x-scimd-key-expires")
        .expect("header")
        .to_str()
        .expect("ascii")
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339(&header).expect("RFC 3339");
    let days = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((70..=73).contains(&days), "{header}");
    let later = app.key_in_tenant("default", &[Scope::UsersRead], Some(30)).await;
    let response = app
        .request_with(&later, Method::GET, "/scim/v2/Users")
        .send()
        .await
        .expect("request");
    assert!(response.headers().get("x-scimd-key-expires").is_none());
}

#[tokio::test]
async fn metrics_count_keys_by_state_and_expiry() {
    let app = spawn_app().await;
    app.key_in_tenant("default", &[Scope::UsersRead], Some(3)).await;
    app.key_in_tenant("default", &[Scope::UsersRead], Some(-1)).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    let gauge = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert_eq!(
        gauge("scimd_api_keys{state=\"enabled\"}"),
        2.0,
        "bootstrap key and the 3-day key"
    );
    assert_eq!(gauge("scimd_api_keys{state=\"expired\"}"), 1.0);
    assert_eq!(gauge("scimd_api_keys_expiring{within_days=\"7\"}"), 1.0);
}

#[tokio::test]
async fn a_flood_of_bad_keys_is_audited_in_summary_not_per_request() {
    let app = spawn_app().await;
    let unknown = scimd::auth::key::generate().expose().to_string();
    let wrong = scimd::auth::key::with_new_secret(&scimd::auth::key::parse(&app.admin_key).expect("key").id());
    for _ in 0..150 {
        let status = app
            .request_with(&unknown, Method::GET, "/scim/v2/Users")
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 401);
    }
    for _ in 0..5 {
        let response = app
            .request_with(wrong.expose(), Method::GET, "/scim/v2/Users")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let events: Value = app
        .get("/admin/v1/audit-events?action=auth.refused")
        .await
        .json()
        .await
        .expect("json");
    let items = events["items"].as_array().expect("items");
    assert!(items.len() <= 4, "summarised: {events}");
    let total: u64 = items.iter().map(|e| e["detail"]["count"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, 155, "{events}");
    let for_admin_key = items
        .iter()
        .find(|e| e["target"]["id"] == json!(&app.admin_key[..32]))
        .expect("wrong secret");
    assert_eq!(for_admin_key["detail"]["count"], 5);
    assert_eq!(for_admin_key["outcome"], "refused");
    let text = events.to_string();
    assert!(
        !text.contains(&unknown[33..]) && !text.contains(&wrong.expose()[33..]),
        "no secrets"
    );
}
