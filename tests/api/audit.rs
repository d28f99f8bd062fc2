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

/// The ids of a page of audit events and its cursor; panics unless 200.
async fn event_page(app: &crate::helpers::TestApp, path: &str) -> (Vec<String>, Option<String>, u64) {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let page: Value = response.json().await.expect("json");
    let ids = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    let next = page["nextCursor"].as_str().map(str::to_string);
    (ids, next, page["total"].as_u64().expect("total"))
}

#[tokio::test]
async fn audit_pages_neither_repeat_nor_skip_events_while_new_ones_arrive() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.create_user(&format!("before{i}")).await;
    }
    let filter = "/admin/v1/audit-events?action=user.created&limit=3";
    let (first, mut next, total) = event_page(&app, filter).await;
    assert_eq!((first.len(), total), (3, 7));
    let mut seen = first.clone();
    let mut pages = 1;
    while let Some(cursor) = next {
        // Newer events, arriving between pages, belong before the first page.
        app.create_user(&format!("during{pages}")).await;
        let (ids, cursor, _) = event_page(&app, &format!("{filter}&cursor={cursor}")).await;
        assert!(!ids.is_empty(), "a cursor is given only when events follow");
        seen.extend(ids);
        next = cursor;
        pages += 1;
    }
    assert_eq!(pages, 3, "7 events in pages of 3");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7), "each of the first 7 once: {seen:?}");
    // The newest events come first on a new first page.
    let (now, _, total) = event_page(&app, "/admin/v1/audit-events?action=user.created&limit=10").await;
    assert_eq!(total, 9);
    assert_eq!(&now[2..], &seen[..], "the 2 new events, then the 7 in the same order");

    let bad = app.get("/admin/v1/audit-events?cursor=o1").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_actor_filter_takes_a_key_id_or_a_service_user_id() {
    let app = spawn_app().await;
    app.create_user("by-admin").await;
    let other = app.key_with_scopes(&[Scope::UsersWrite]).await;
    let response = app
        .request_with(&other, Method::POST, "/scim/v2/Users")
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "by-other" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    let by_key = |key: &str| format!("/admin/v1/audit-events?action=user.created&actor={}", &key[..32]);
    let (admins, _, _) = event_page(&app, &by_key(&app.admin_key)).await;
    let (others, _, _) = event_page(&app, &by_key(&other)).await;
    assert_eq!((admins.len(), others.len()), (1, 1));
    assert_ne!(admins, others);
    let all: Value = app
        .get("/admin/v1/audit-events?action=user.created")
        .await
        .json()
        .await
        .expect("json");
    let admin_user = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["id"] == json!(admins[0]))
        .expect("the admin's event")["actor"]["serviceUserId"]
        .as_str()
        .expect("service user id")
        .to_string();
    let (by_user, _, _) = event_page(
        &app,
        &format!("/admin/v1/audit-events?action=user.created&actor={admin_user}"),
    )
    .await;
    assert_eq!(by_user, admins);
}

/// Every audit list is a walk of an index in list order: no pass over the
/// tenant's events, no sort of them (SQLite, whose plans don't depend on
/// the table's size; PostgreSQL plans by measured size).
#[tokio::test]
async fn audit_pages_are_planned_in_list_order_on_an_index() {
    use scimd::store::audit::{AuditQuery, EventPosition};
    let app = spawn_app().await;
    let store = app.store().await;
    if store.backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    let tenant = store.tenant_by_name("default").await.expect("query").expect("tenant");
    let at = chrono::Utc::now();
    let base = AuditQuery {
        limit: 50,
        ..AuditQuery::default()
    };
    let cases = [
        ("no filter", base.clone(), "ix_audit_events_order"),
        (
            "action",
            AuditQuery {
                action: Some("user.created".into()),
                ..base.clone()
            },
            "ix_audit_events_action_order",
        ),
        (
            "target and action",
            AuditQuery {
                action: Some("user.patched".into()),
                target_id: Some("2819c223-7f76-453a-919d-413861904646".into()),
                ..base.clone()
            },
            "ix_audit_events_target_order",
        ),
        (
            "actor key",
            AuditQuery {
                actor: Some(app.admin_key[..32].to_string()),
                ..base.clone()
            },
            "ix_audit_events_actor_key_order",
        ),
        (
            "actor service user",
            AuditQuery {
                actor: Some("51761301-c5db-45e2-9ec2-6788adf222b5".into()),
                ..base.clone()
            },
            "ix_audit_events_actor_user_order",
        ),
        (
            "after a cursor",
            AuditQuery {
                after: Some(EventPosition {
                    at,
                    id: "01a24cb6-0f75-77d2-add4-cc7c9a2ad171".into(),
                }),
                ..base.clone()
            },
            "ix_audit_events_order",
        ),
        (
            "since and until, after a cursor",
            AuditQuery {
                since: Some(at - chrono::Duration::days(1)),
                until: Some(at),
                after: Some(EventPosition {
                    at,
                    id: "01a24cb6-0f75-77d2-add4-cc7c9a2ad171".into(),
                }),
                ..base.clone()
            },
            "ix_audit_events_order",
        ),
    ];
    for (what, query, index) in cases {
        let plan = store
            .explain_audit_events(&tenant.id, &query)
            .await
            .expect("explain")
            .join("\n");
        println!("{what}:\n{plan}\n");
        assert!(plan.contains(index), "{what} should use {index}:\n{plan}");
        if query.after.is_some() {
            // The walk starts at the position, not at the newest event.
            assert!(
                plan.contains("(at,id)<(?,?)") || plan.contains("at<?"),
                "{what}:\n{plan}"
            );
        }
        if what != "target and action" {
            // A target's few events may be sorted; nothing else is.
            assert!(!plan.contains("TEMP B-TREE"), "{what} sorts:\n{plan}");
        }
    }
}
