//! First start: the default tenant, the bootstrap admin and its key file.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::{bootstrap_key_files, spawn_app, spawn_with};

#[tokio::test]
async fn first_start_writes_one_key_file_with_mode_0600_holding_only_the_key() {
    let app = spawn_app().await;
    let files = bootstrap_key_files(&app.data_dir);
    assert_eq!(files.len(), 1);
    let file = &files[0];
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        file.file_name().and_then(|n| n.to_str()),
        Some(format!("APIKey-bootstrap-admin-{today}.key").as_str())
    );
    let mode = std::fs::metadata(file).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let contents = std::fs::read_to_string(file).expect("read");
    assert_eq!(contents.lines().count(), 1);
    let key = contents.trim();
    assert!(scimd::auth::key::parse(key).is_ok(), "the file holds a well-formed key");
    assert_eq!(&key[..6], "scimd_");
}

#[tokio::test]
async fn the_bootstrap_admin_has_every_admin_scope_and_tenants() {
    let app = spawn_app().await;
    let store = app.store().await;
    let key_id = scimd::auth::key::parse(&app.admin_key).expect("key").id();
    let record = store
        .key_auth_record(key_id.as_str())
        .await
        .expect("query")
        .expect("record");
    assert_eq!(record.tenant.name, "default");
    assert_eq!(record.service_user.name, "bootstrap-admin");
    assert_eq!(record.service_user.role, "admin");
    assert!(record.key.secret_hash.starts_with("$argon2id$"));
    assert!(!record.key.secret_hash.contains(&app.admin_key[33..]));
    let scopes: Vec<String> = serde_json::from_str(&record.key.scopes).expect("scopes");
    assert!(scopes.contains(&"admin:tenants".to_string()));
    assert!(scopes.contains(&"scim:users:delete".to_string()));
}

#[tokio::test]
async fn a_restart_on_the_same_database_does_not_bootstrap_again() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let again = spawn_with(dir, data_dir.clone(), &app).await;
    assert!(bootstrap_key_files(&data_dir).is_empty(), "no second key file");
    // The first key still works against the restarted instance.
    let response = again
        .request_with(&app.admin_key, reqwest::Method::GET, "/scim/v2/Users")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let store = app.store().await;
    assert_eq!(store.count_tenants().await.expect("count"), 1);
}

#[tokio::test]
async fn the_key_never_appears_in_the_logs_and_sigterm_stops_the_server_cleanly() {
    // Run the real binary and read what it logs.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("SCIMD_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn scimd");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let key = bootstrap_key_files(dir.path())
        .first()
        .map(|p| std::fs::read_to_string(p).expect("read"));
    // SIGTERM: graceful shutdown.
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "SIGTERM stops the server cleanly: {:?}; logs: {logs}",
        output.status
    );
    assert!(ready, "server became ready; logs: {logs}");
    let key = key.expect("key file written");
    let key = key.trim();
    assert!(logs.contains("APIKey-bootstrap-admin-"), "the path is logged: {logs}");
    assert!(!logs.contains(key), "the key is never logged");
    assert!(!logs.contains(&key[33..]), "no part of the secret is logged");
}
