//! The test application: a real `scimd` on port 0 with a fresh database
//! (SQLite in a temp dir, or a new PostgreSQL database when
//! `SCIMD_TEST_DATABASE_URL` names a server), talked to over real HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use reqwest::{Method, RequestBuilder, Response};
use scimd::auth::hashing::hash_blocking;
use scimd::auth::key;
use scimd::auth::scopes::{Scope, scope_names};
use scimd::config::{LogFormat, Settings};
use scimd::startup::Application;
use scimd::store::Store;
use scimd::store::keys::NewKey;
use scimd::store::tenants::NewServiceUser;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The bootstrap admin key read from its file.
    pub admin_key: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Shared by the instances a test starts on one database; the last one
    /// to go drops it.
    database: Arc<TestDatabase>,
    _dir: tempfile::TempDir,
}

/// A test's own database. A PostgreSQL one is dropped when the test is done,
/// so a developer's server does not collect one database per test per run.
struct TestDatabase {
    /// `(server database URL, database name)`, for PostgreSQL.
    postgres: Option<(String, String)>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a thread of its own with its own runtime can. FORCE ends the
        // connections of the server still running in the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = Database::connect(admin_url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                admin.close().await
            })
        })
        .join();
        // A database left behind costs disk, not correctness: say so, don't fail.
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database was not dropped: {dropped:?}");
        }
    }
}

/// A fresh database URL: SQLite in `dir`, or a new PostgreSQL database.
async fn fresh_database(dir: &std::path::Path) -> (String, TestDatabase) {
    match std::env::var("SCIMD_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            let (server, base_db) = url.rsplit_once('/').expect("database URL has a path");
            let base_db = base_db.split('?').next().unwrap_or(base_db);
            let name = format!("{base_db}_t{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(url.as_str()).await.expect("connect to PostgreSQL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            admin.close().await.expect("close");
            (
                format!("{server}/{name}"),
                TestDatabase {
                    postgres: Some((url.clone(), name)),
                },
            )
        }
        _ => (
            format!("sqlite://{}/scimd.db", dir.display()),
            // The temporary directory holds the file and removes it.
            TestDatabase { postgres: None },
        ),
    }
}

pub fn test_settings(data_dir: PathBuf, database_url: String) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        data_dir,
        database_url,
        base_url: String::new(),
        base_url_is_default: true,
        log_format: LogFormat::Json,
        max_body_bytes: 64 * 1024,
        key_default_lifetime_days: 90,
        key_max_lifetime_days: 365,
        trusted_proxies: Vec::new(),
        flush_interval: std::time::Duration::from_millis(500),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_configured(|_| {}).await
}

/// A fresh application whose settings `configure` adjusts first.
pub async fn spawn_app_configured(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let (database_url, database) = fresh_database(dir.path()).await;
    let mut settings = test_settings(data_dir.clone(), database_url);
    configure(&mut settings);
    start(dir, settings, Arc::new(database)).await
}

/// Starts another application on `existing`'s database, with the data dir
/// given (a restart, or a second instance).
pub async fn spawn_with(dir: tempfile::TempDir, data_dir: PathBuf, existing: &TestApp) -> TestApp {
    let settings = test_settings(data_dir, existing.database_url.clone());
    start(dir, settings, Arc::clone(&existing.database)).await
}

async fn start(dir: tempfile::TempDir, settings: Settings, database: Arc<TestDatabase>) -> TestApp {
    let (data_dir, database_url) = (settings.data_dir.clone(), settings.database_url.clone());
    let app = Application::build(settings).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let admin_key = read_bootstrap_key(&data_dir).unwrap_or_default();
    TestApp {
        address,
        client: reqwest::Client::new(),
        admin_key,
        data_dir,
        database_url,
        database,
        _dir: dir,
    }
}

pub fn bootstrap_key_files(data_dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("APIKey-bootstrap-admin-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn read_bootstrap_key(data_dir: &std::path::Path) -> Option<String> {
    let path = bootstrap_key_files(data_dir).into_iter().next()?;
    Some(std::fs::read_to_string(path).ok()?.trim().to_string())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request carrying the admin key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_with(&self.admin_key, method, path)
    }

    pub fn request_with(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(Method::PUT, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.expect("request")
    }

    pub async fn send(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// A list's `totalResults`; panics unless the GET answers 200.
    pub async fn total(&self, path: &str) -> u64 {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        let list: Value = response.json().await.expect("json");
        list["totalResults"].as_u64().expect("totalResults")
    }

    /// Creates a user and returns its representation; panics unless 201.
    pub async fn create_user(&self, user_name: &str) -> Value {
        let response = self
            .post(
                "/scim/v2/Users",
                &json!({ "schemas": [USER_SCHEMA], "userName": user_name }),
            )
            .await;
        assert_eq!(response.status(), 201, "creating user {user_name}");
        response.json().await.expect("json")
    }

    pub async fn create_group(&self, display_name: &str, member_ids: &[&str]) -> Value {
        let members: Vec<Value> = member_ids.iter().map(|id| json!({ "value": id })).collect();
        let response = self
            .post(
                "/scim/v2/Groups",
                &json!({ "schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members }),
            )
            .await;
        assert_eq!(response.status(), 201, "creating group {display_name}");
        response.json().await.expect("json")
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.database_url).await.expect("store")
    }

    /// A new service user in the default tenant holding one key with exactly
    /// `scopes` (role `admin`, so the role never narrows them); returns the key.
    pub async fn key_with_scopes(&self, scopes: &[Scope]) -> String {
        self.key_in_tenant("default", scopes, None).await
    }

    pub async fn key_in_tenant(&self, tenant: &str, scopes: &[Scope], expires_in_days: Option<i64>) -> String {
        let store = self.store().await;
        let tenant = store
            .tenant_by_name(tenant)
            .await
            .expect("query")
            .expect("tenant exists");
        let plain = key::generate();
        let hash = hash_blocking(plain.secret()).expect("hash");
        let names = scope_names(&scopes.iter().copied().collect());
        let su_name = format!("svc-{}", uuid::Uuid::new_v4().simple());
        store
            .create_service_user_with_key(
                NewServiceUser {
                    tenant_id: &tenant.id,
                    name: &su_name,
                    description: None,
                    role: "admin",
                    granted_scopes: &[],
                    actor: "test",
                },
                NewKey {
                    id: plain.id().as_str(),
                    name: "test",
                    description: None,
                    key_type: "service",
                    secret_hash: &hash,
                    scopes: &names,
                    allowed_ips: &[],
                    expires_at: Some(Utc::now() + chrono::Duration::days(expires_in_days.unwrap_or(30))),
                    actor: "test",
                },
            )
            .await
            .expect("create key");
        store.close().await;
        plain.expose().to_string()
    }
}

/// Sends `request` and reads its answer's body as JSON, whatever its status.
pub async fn json_body(request: RequestBuilder) -> Value {
    request.send().await.expect("request").json().await.expect("json")
}

/// Asserts a SCIM error answer and returns its body.
pub async fn assert_scim_error(response: Response, status: u16, scim_type: Option<&str>) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/scim+json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["schemas"], json!([ERROR_SCHEMA]), "{body}");
    assert_eq!(body["status"], json!(status.to_string()), "status is a string: {body}");
    assert_eq!(
        body.get("scimType").and_then(Value::as_str),
        scim_type,
        "scimType in {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "detail in {body}"
    );
    body
}
