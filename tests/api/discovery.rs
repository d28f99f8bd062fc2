//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas,
//! served without authentication, at `/scim/v2` and under a tenant path.

use serde_json::{Value, json};

use crate::helpers::{ENTERPRISE, GROUP_SCHEMA, TestApp, USER_SCHEMA, assert_scim_error, spawn_app};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// GETs `path` without any Authorization header, expecting a SCIM JSON 200.
async fn anonymous_get(app: &TestApp, path: &str) -> Value {
    let response = app.client.get(app.url(path)).send().await.expect("request");
    let status = response.status();
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "GET {path} without credentials: {body}");
    assert!(
        content_type.starts_with("application/scim+json"),
        "{path}: {content_type}"
    );
    body
}

fn resource<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} is listed in {list}"))
}

fn attribute<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} is defined in {}", schema["id"]))
}

/// Checks the characteristics RFC 7643 §7 gives every attribute definition.
fn assert_attribute_definitions_are_complete(path: &str, attributes: &Value) {
    for attr in attributes
        .as_array()
        .unwrap_or_else(|| panic!("{path}: attributes is an array"))
    {
        let name = attr["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: an attribute without name: {attr}"));
        let here = format!("{path}.{name}");
        let attr_type = attr["type"].as_str().unwrap_or_else(|| panic!("{here}: type"));
        assert!(
            [
                "string",
                "boolean",
                "decimal",
                "integer",
                "dateTime",
                "binary",
                "reference",
                "complex"
            ]
            .contains(&attr_type),
            "{here}: type {attr_type}"
        );
        for flag in ["multiValued", "required"] {
            assert!(attr[flag].is_boolean(), "{here}: {flag} in {attr}");
        }
        let mutability = attr["mutability"].as_str().unwrap_or_default();
        assert!(
            ["readOnly", "readWrite", "immutable", "writeOnly"].contains(&mutability),
            "{here}: mutability"
        );
        let returned = attr["returned"].as_str().unwrap_or_default();
        assert!(
            ["always", "never", "default", "request"].contains(&returned),
            "{here}: returned"
        );
        if attr_type == "complex" {
            assert_attribute_definitions_are_complete(&here, &attr["subAttributes"]);
        } else {
            let uniqueness = attr["uniqueness"].as_str().unwrap_or_default();
            assert!(["none", "server", "global"].contains(&uniqueness), "{here}: uniqueness");
        }
        if attr_type == "reference" {
            assert!(
                attr["referenceTypes"].as_array().is_some_and(|t| !t.is_empty()),
                "{here}: referenceTypes"
            );
        }
    }
}

#[tokio::test]
async fn service_provider_config_states_what_is_supported() {
    let app = spawn_app().await;
    let spc = anonymous_get(&app, "/scim/v2/ServiceProviderConfig").await;
    assert_eq!(spc["schemas"], json!([SPC_SCHEMA]));
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000, "{spc}");
    assert_eq!(
        spc["bulk"]["maxPayloadSize"],
        64 * 1024,
        "the configured max body: {spc}"
    );
    assert_eq!(spc["filter"]["supported"], true);
    assert!(spc["filter"]["maxResults"].as_u64().is_some_and(|n| n > 0), "{spc}");
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["changePassword"]["supported"], true, "PUT accepts a password");
    let schemes = spc["authenticationSchemes"].as_array().expect("authenticationSchemes");
    let bearer = schemes
        .iter()
        .find(|s| s["type"] == "oauthbearertoken")
        .expect("a bearer scheme");
    assert!(bearer["name"].as_str().is_some_and(|n| !n.is_empty()), "{bearer}");
    assert!(
        bearer["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{bearer}"
    );
    assert_eq!(spc["meta"]["resourceType"], "ServiceProviderConfig");
    assert_eq!(
        spc["meta"]["location"],
        json!(app.url("/scim/v2/ServiceProviderConfig"))
    );
}

#[tokio::test]
async fn discovery_endpoints_answer_without_an_authorization_header() {
    let app = spawn_app().await;
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/ResourceTypes/User",
        "/scim/v2/Schemas",
        &format!("/scim/v2/Schemas/{USER_SCHEMA}"),
    ] {
        anonymous_get(&app, path).await;
    }
    // Resources themselves still need a key.
    let response = app.client.get(app.url("/scim/v2/Users")).send().await.expect("request");
    assert_scim_error(response, 401, None).await;
}

#[tokio::test]
async fn resource_types_lists_user_and_group() {
    let app = spawn_app().await;
    let list = anonymous_get(&app, "/scim/v2/ResourceTypes").await;
    assert_eq!(list["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(list["totalResults"], 2);
    assert_eq!(list["Resources"].as_array().expect("Resources").len(), 2);
    let user = resource(&list, "User");
    assert_eq!(user["schemas"], json!([RESOURCE_TYPE_SCHEMA]));
    assert_eq!(user["name"], "User");
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], USER_SCHEMA);
    assert_eq!(
        user["schemaExtensions"],
        json!([{ "schema": ENTERPRISE, "required": false }])
    );
    assert_eq!(user["meta"]["resourceType"], "ResourceType");
    assert_eq!(user["meta"]["location"], json!(app.url("/scim/v2/ResourceTypes/User")));
    let group = resource(&list, "Group");
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schema"], GROUP_SCHEMA);
    assert!(
        group["schemaExtensions"].as_array().is_none_or(Vec::is_empty),
        "{group}"
    );
    assert_eq!(
        group["meta"]["location"],
        json!(app.url("/scim/v2/ResourceTypes/Group"))
    );
}

#[tokio::test]
async fn a_single_resource_type_is_served_by_id() {
    let app = spawn_app().await;
    let list = anonymous_get(&app, "/scim/v2/ResourceTypes").await;
    for id in ["User", "Group"] {
        let single = anonymous_get(&app, &format!("/scim/v2/ResourceTypes/{id}")).await;
        assert_eq!(&single, resource(&list, id), "the single answer is the listed one");
    }
}

#[tokio::test]
async fn an_unknown_resource_type_returns_404_scim_error() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/scim/v2/ResourceTypes/Device"))
        .send()
        .await
        .expect("request");
    assert_scim_error(response, 404, None).await;
}

#[tokio::test]
async fn schemas_lists_user_group_and_enterprise_user_each_with_attributes_and_location() {
    let app = spawn_app().await;
    let list = anonymous_get(&app, "/scim/v2/Schemas").await;
    assert_eq!(list["schemas"], json!([LIST_RESPONSE]));
    let resources = list["Resources"].as_array().expect("Resources");
    assert_eq!(list["totalResults"], json!(resources.len()));
    for id in [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE] {
        resource(&list, id);
    }
    for schema in resources {
        let id = schema["id"].as_str().expect("id");
        assert_eq!(schema["schemas"], json!([SCHEMA_SCHEMA]), "{id}");
        assert!(schema["name"].as_str().is_some_and(|n| !n.is_empty()), "{id}: name");
        assert!(
            schema["attributes"].as_array().is_some_and(|a| !a.is_empty()),
            "{id}: attributes"
        );
        assert_eq!(schema["meta"]["resourceType"], "Schema", "{id}");
        assert_eq!(
            schema["meta"]["location"],
            json!(app.url(&format!("/scim/v2/Schemas/{id}"))),
            "{id}"
        );
    }
}

#[tokio::test]
async fn resource_schemas_define_every_attribute_characteristic() {
    let app = spawn_app().await;
    for id in [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE] {
        let schema = anonymous_get(&app, &format!("/scim/v2/Schemas/{id}")).await;
        assert_attribute_definitions_are_complete(id, &schema["attributes"]);
    }
}

#[tokio::test]
async fn the_user_schema_is_served_by_its_urn_with_user_name_unique_on_the_server() {
    let app = spawn_app().await;
    let schema = anonymous_get(&app, &format!("/scim/v2/Schemas/{USER_SCHEMA}")).await;
    assert_eq!(schema["id"], USER_SCHEMA);
    assert_eq!(schema["name"], "User");
    assert_eq!(
        schema["meta"]["location"],
        json!(app.url(&format!("/scim/v2/Schemas/{USER_SCHEMA}")))
    );
    let user_name = attribute(&schema, "userName");
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(attribute(&schema, "password")["mutability"], "writeOnly");
    assert_eq!(attribute(&schema, "password")["returned"], "never");
    assert_eq!(attribute(&schema, "groups")["mutability"], "readOnly");
    let list = anonymous_get(&app, "/scim/v2/Schemas").await;
    assert_eq!(
        &schema,
        resource(&list, USER_SCHEMA),
        "the single answer is the listed one"
    );
    let enterprise = anonymous_get(&app, &format!("/scim/v2/Schemas/{ENTERPRISE}")).await;
    assert_eq!(enterprise["id"], ENTERPRISE);
    attribute(&enterprise, "manager");
}

#[tokio::test]
async fn an_unknown_schema_returns_404_scim_error() {
    let app = spawn_app().await;
    let path = "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Device";
    let response = app.client.get(app.url(path)).send().await.expect("request");
    assert_scim_error(response, 404, None).await;
}

#[tokio::test]
async fn a_filter_on_schemas_or_resource_types_returns_403() {
    let app = spawn_app().await;
    for path in ["/scim/v2/Schemas", "/scim/v2/ResourceTypes"] {
        let url = app.url(&format!("{path}?filter=id%20eq%20%22User%22"));
        let response = app.client.get(url).send().await.expect("request");
        assert_scim_error(response, 403, None).await;
    }
}

#[tokio::test]
async fn tenant_path_discovery_uses_the_tenant_path_in_meta_location() {
    let app = spawn_app().await;
    let base = "/t/default/scim/v2";
    let spc = anonymous_get(&app, &format!("{base}/ServiceProviderConfig")).await;
    assert_eq!(
        spc["meta"]["location"],
        json!(app.url(&format!("{base}/ServiceProviderConfig")))
    );
    let types = anonymous_get(&app, &format!("{base}/ResourceTypes")).await;
    for id in ["User", "Group"] {
        assert_eq!(
            resource(&types, id)["meta"]["location"],
            json!(app.url(&format!("{base}/ResourceTypes/{id}"))),
            "{id}"
        );
    }
    let single = anonymous_get(&app, &format!("{base}/ResourceTypes/User")).await;
    assert_eq!(
        single["meta"]["location"],
        json!(app.url(&format!("{base}/ResourceTypes/User")))
    );
    let schemas = anonymous_get(&app, &format!("{base}/Schemas")).await;
    for schema in schemas["Resources"].as_array().expect("Resources") {
        let id = schema["id"].as_str().expect("id");
        assert_eq!(
            schema["meta"]["location"],
            json!(app.url(&format!("{base}/Schemas/{id}"))),
            "{id}"
        );
    }
    let user_schema = anonymous_get(&app, &format!("{base}/Schemas/{USER_SCHEMA}")).await;
    assert_eq!(
        user_schema["meta"]["location"],
        json!(app.url(&format!("{base}/Schemas/{USER_SCHEMA}")))
    );
}
