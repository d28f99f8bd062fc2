//! Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes
//! and Schemas. They are served without authentication (the SPC says so):
//! clients read them to learn how to authenticate, and they hold no data.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::AppState;
use super::error::{SCIM_CONTENT_TYPE, ScimHttpResult};
use super::extract::{IdPath, ScimQuery, scim_base_url};
use crate::provisioning::{DEFAULT_PAGE_SIZE, LIST_RESPONSE_SCHEMA, MAX_PAGE_SIZE};
use crate::scim::{ResourceKind, ScimError};

fn scim_json(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(body.to_string())
}

/// RFC 7644 §4: discovery endpoints do not filter.
fn refuse_filter(req: &HttpRequest) -> ScimHttpResult<()> {
    if ScimQuery::parse(req)?.get("filter").is_some() {
        return Err(ScimError::forbidden("filtering is not supported on discovery endpoints").into());
    }
    Ok(())
}

fn list_response(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// What this server supports. Each flag is flipped on only once the feature works.
pub async fn service_provider_config(req: HttpRequest, state: web::Data<AppState>) -> ScimHttpResult<HttpResponse> {
    let base = scim_base_url(&req, &state);
    Ok(scim_json(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/scimd/scimd#readme",
        "patch": { "supported": true },
        "bulk": {
            "supported": true,
            "maxOperations": crate::bulk::MAX_OPERATIONS,
            "maxPayloadSize": state.settings.max_body_bytes,
        },
        "filter": { "supported": true, "maxResults": MAX_PAGE_SIZE },
        "changePassword": { "supported": true },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_PAGE_SIZE,
            "maxPageSize": MAX_PAGE_SIZE,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "API key",
            "description": "A service-account API key sent as `Authorization: Bearer <key>`. \
                The discovery endpoints (/ServiceProviderConfig, /ResourceTypes, /Schemas) \
                are served without authentication.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })))
}

fn resource_type_document(kind: ResourceKind, base: &str, state: &AppState) -> Value {
    let registry = state.provisioning.registry();
    let extensions: Vec<Value> = registry
        .extensions(kind)
        .iter()
        .map(|e| json!({ "schema": e.schema_urn, "required": e.required }))
        .collect();
    let mut doc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": match kind { ResourceKind::User => "User Account", ResourceKind::Group => "Group" },
        "schema": kind.core_schema(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", kind.name()),
        },
    });
    if !extensions.is_empty() {
        doc["schemaExtensions"] = Value::Array(extensions);
    }
    doc
}

pub async fn resource_types(req: HttpRequest, state: web::Data<AppState>) -> ScimHttpResult<HttpResponse> {
    refuse_filter(&req)?;
    let base = scim_base_url(&req, &state);
    let docs = [ResourceKind::User, ResourceKind::Group]
        .iter()
        .map(|k| resource_type_document(*k, &base, &state))
        .collect();
    Ok(scim_json(list_response(docs)))
}

pub async fn resource_type(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<IdPath>,
) -> ScimHttpResult<HttpResponse> {
    let base = scim_base_url(&req, &state);
    let id = id.into_inner().id;
    let kind = [ResourceKind::User, ResourceKind::Group]
        .into_iter()
        .find(|k| k.name() == id)
        .ok_or_else(|| ScimError::not_found(format!("resource type \"{id}\" not found")))?;
    Ok(scim_json(resource_type_document(kind, &base, &state)))
}

fn schema_with_location(doc: &Value, base: &str) -> Value {
    let mut doc = doc.clone();
    let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    doc["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
    doc["meta"] = json!({ "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") });
    doc
}

pub async fn schemas(req: HttpRequest, state: web::Data<AppState>) -> ScimHttpResult<HttpResponse> {
    refuse_filter(&req)?;
    let base = scim_base_url(&req, &state);
    let docs = state
        .provisioning
        .registry()
        .schema_documents()
        .map(|d| schema_with_location(d, &base))
        .collect();
    Ok(scim_json(list_response(docs)))
}

pub async fn schema(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<IdPath>,
) -> ScimHttpResult<HttpResponse> {
    let base = scim_base_url(&req, &state);
    let id = id.into_inner().id;
    let doc = state
        .provisioning
        .registry()
        .schema_document(&id)
        .ok_or_else(|| ScimError::not_found(format!("schema \"{id}\" not found")))?;
    Ok(scim_json(schema_with_location(doc, &base)))
}
