//! A small SCIM client over reqwest: the target's base URL, its key (if
//! any), and the documents the harness sends.

use anyhow::{Context, bail};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// The HTTP client every request of a run goes through: HTTP/1.1 with
/// keep-alive, no proxy.
pub fn http_client(connections: usize) -> anyhow::Result<Client> {
    Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections.max(16))
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .context("building the HTTP client")
}

#[derive(Clone)]
pub struct Api {
    pub client: Client,
    /// e.g. `http://127.0.0.1:PORT/scim/v2`
    pub base: String,
    pub key: Option<String>,
}

impl Api {
    /// A request to `base` + `path`, with the key when there is one.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The same without a key, whatever the target.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// A request carrying a SCIM JSON body.
    pub fn send_json(&self, method: Method, path: &str, body: &Value) -> RequestBuilder {
        self.request(method, path)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
    }

    /// Sends `request` and returns its JSON answer, failing unless the status is `expected`.
    pub async fn expect_json(&self, what: &str, request: RequestBuilder, expected: &[u16]) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{what}: request failed"))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        if !expected.contains(&status) {
            bail!(
                "{what}: expected status {expected:?}, got {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(2000)])
            );
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: the answer is not JSON"))
    }
}

/// The user the harness seeds and creates: name, emails, active.
pub fn user_document(user_name: &str, n: usize) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": format!("Given{n}"), "familyName": format!("Family{n}")},
        "displayName": format!("User {n}"),
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "active": true
    })
}

pub fn group_document(display_name: &str, members: &[String]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members})
}

pub fn add_members(ids: &[String]) -> Value {
    let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": value}]})
}

pub fn remove_member(id: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]})
}

pub fn replace_active(active: bool) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": active}]})
}

/// A BulkRequest creating `users` (bulkIds `u0`, `u1`, …).
pub fn bulk_create(users: &[Value]) -> Value {
    let operations: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, data)| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": data}))
        .collect();
    json!({"schemas": [BULK_REQUEST], "Operations": operations})
}

/// The ids of the resources a BulkResponse to [`bulk_create`] created, in
/// request order; fails on the first operation that is not a `201`.
pub fn bulk_created_ids(response: &Value, expected: usize) -> anyhow::Result<Vec<String>> {
    let operations = response
        .get("Operations")
        .and_then(Value::as_array)
        .context("the BulkResponse has no Operations")?;
    let mut ids = vec![String::new(); expected];
    for operation in operations {
        let status = operation.get("status").and_then(Value::as_str).unwrap_or("");
        if status != "201" {
            bail!("a Bulk create answered {status}: {operation}");
        }
        let index = operation
            .get("bulkId")
            .and_then(Value::as_str)
            .and_then(|b| b.strip_prefix('u'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < expected)
            .with_context(|| format!("a Bulk result without a known bulkId: {operation}"))?;
        let location = operation
            .get("location")
            .and_then(Value::as_str)
            .with_context(|| format!("a Bulk result without a location: {operation}"))?;
        ids[index] = location.rsplit('/').next().unwrap_or(location).to_string();
    }
    if let Some(missing) = ids.iter().position(String::is_empty) {
        bail!("the BulkResponse lacks operation u{missing}");
    }
    Ok(ids)
}

/// The `id` of a created resource.
pub fn id_of(resource: &Value) -> anyhow::Result<String> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("no id in {resource}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::bulk_created_ids;

    #[test]
    fn bulk_ids_come_back_in_request_order_from_locations() {
        let response = json!({"Operations": [
            {"method": "POST", "bulkId": "u1", "status": "201", "location": "http://h/scim/v2/Users/b"},
            {"method": "POST", "bulkId": "u0", "status": "201", "location": "http://h/scim/v2/Users/a"}
        ]});
        assert_eq!(bulk_created_ids(&response, 2).expect("ids"), vec!["a", "b"]);
    }

    #[test]
    fn a_failed_bulk_operation_is_an_error() {
        let response = json!({"Operations": [{"bulkId": "u0", "status": "409"}]});
        assert!(bulk_created_ids(&response, 1).is_err());
    }
}
