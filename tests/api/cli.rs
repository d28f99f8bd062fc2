//! The command line: operator commands on the same database as a server.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{USER_SCHEMA, spawn_app};

fn scimd(app: &crate::helpers::TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(args)
        .arg("--database-url")
        .arg(&app.database_url)
        .arg("--data-dir")
        .arg(&app.data_dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run scimd")
}

#[tokio::test]
async fn keys_create_prints_the_key_alone_and_it_works_at_once_with_only_its_scopes() {
    let app = spawn_app().await;
    let user = scimd(
        &app,
        &[
            "service-users",
            "create",
            "--name",
            "scim-delete-user",
            "--role",
            "user-cleanup",
        ],
    );
    assert!(user.status.success(), "{}", String::from_utf8_lossy(&user.stderr));
    let created: Value = serde_json::from_slice(&user.stdout).expect("service user JSON");
    assert_eq!(created["name"], "scim-delete-user");
    assert_eq!(created["role"], "user-cleanup");
    assert_eq!(created["interactive"], false);

    let out = scimd(
        &app,
        &[
            "keys",
            "create",
            "--service-user",
            "scim-delete-user",
            "--name",
            "nightly",
            "--expires-in-days",
            "30",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "only the key on stdout: {stdout:?}");
    let key = stdout.trim();
    assert_eq!(key.len(), 83);

    let victim = app.create_user("departed").await;
    let path = format!("/scim/v2/Users/{}", victim["id"].as_str().expect("id"));
    let create = app
        .request_with(key, Method::POST, "/scim/v2/Users")
        .json(&json!({ "schemas": [USER_SCHEMA], "userName": "x" }))
        .send()
        .await
        .expect("request");
    assert_eq!(create.status(), 403, "a user-cleanup key cannot create");
    assert_eq!(
        app.request_with(key, Method::DELETE, &path)
            .send()
            .await
            .expect("request")
            .status(),
        204
    );

    // The list shows the key, never its secret.
    let list = scimd(&app, &["keys", "list", "--service-user", "scim-delete-user"]);
    let listed = String::from_utf8(list.stdout).expect("utf-8");
    assert!(listed.contains(&key[..32]) && !listed.contains(&key[33..]), "{listed}");

    // Revoked: refused on the very next request.
    let revoke = scimd(&app, &["keys", "revoke", &key[..32]]);
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        app.request_with(key, Method::GET, "/scim/v2/Users")
            .send()
            .await
            .expect("request")
            .status(),
        401
    );

    // Audited with the actor cli.
    let events: Value = app
        .get("/admin/v1/audit-events?action=key.created")
        .await
        .json()
        .await
        .expect("json");
    let by_cli = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["actor"]["serviceUserName"] == "cli");
    assert!(by_cli, "{events}");
}

#[tokio::test]
async fn operator_commands_fail_clearly_on_bad_input() {
    let app = spawn_app().await;
    let unknown = scimd(&app, &["keys", "create", "--service-user", "nobody", "--name", "k"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no service user named nobody"));
    assert!(unknown.stdout.is_empty(), "nothing on stdout on failure");
    let bad_role = scimd(&app, &["service-users", "create", "--name", "x", "--role", "superuser"]);
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role"));
}
