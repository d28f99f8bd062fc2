//! Handlers for `/Users` and `/Groups` (the resource type comes from the
//! route's app data), `/Me` and `/Bulk`.

use actix_web::http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::error::{SCIM_CONTENT_TYPE, ScimHttpError, ScimHttpResult};
use super::extract::{IdPath, ScimCaller, ScimQuery, read_json};
use crate::auth::Scope;
use crate::bulk;
use crate::provisioning::{ListRequest, Precondition, Rendered};
use crate::scim::resource::Projection;
use crate::scim::{ResourceKind, ScimError};

fn required_scope(kind: ResourceKind, action: Action) -> Scope {
    match (kind, action) {
        (ResourceKind::User, Action::Read) => Scope::UsersRead,
        (ResourceKind::User, Action::Write) => Scope::UsersWrite,
        (ResourceKind::User, Action::Delete) => Scope::UsersDelete,
        (ResourceKind::Group, Action::Read) => Scope::GroupsRead,
        (ResourceKind::Group, Action::Write) => Scope::GroupsWrite,
        (ResourceKind::Group, Action::Delete) => Scope::GroupsDelete,
    }
}

#[derive(Clone, Copy)]
enum Action {
    Read,
    Write,
    Delete,
}

fn projection(state: &AppState, kind: ResourceKind, query: &ScimQuery) -> ScimHttpResult<Projection> {
    Ok(Projection::parse(
        state.provisioning.registry(),
        kind,
        query.get("attributes"),
        query.get("excludedAttributes"),
    )?)
}

fn precondition(req: &HttpRequest, header: actix_web::http::header::HeaderName) -> Option<Precondition> {
    req.headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(Precondition::parse)
}

fn resource_response(mut builder: actix_web::HttpResponseBuilder, rendered: Rendered) -> HttpResponse {
    builder
        .insert_header((CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .insert_header((ETAG, rendered.etag))
        .body(rendered.body)
}

pub async fn create(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Write))?;
    let query = ScimQuery::parse(&req)?;
    let projection = projection(&state, kind, &query)?;
    let input = read_json(body, state.settings.max_body_bytes).await?;
    let rendered = state
        .provisioning
        .create(&caller.scope(), kind, &input, &projection)
        .await?;
    let mut builder = HttpResponse::Created();
    builder.insert_header((LOCATION, rendered.location.clone()));
    Ok(resource_response(builder, rendered))
}

pub async fn get(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    id: web::Path<IdPath>,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Read))?;
    let id = id.into_inner().id;
    let query = ScimQuery::parse(&req)?;
    let projection = projection(&state, kind, &query)?;
    if let Some(if_none_match) = precondition(&req, IF_NONE_MATCH) {
        let version = state.provisioning.version(&caller.scope(), kind, &id).await?;
        if if_none_match.matches(version) {
            return Ok(HttpResponse::NotModified()
                .insert_header((ETAG, crate::provisioning::etag(version)))
                .finish());
        }
    }
    let rendered = state.provisioning.get(&caller.scope(), kind, &id, &projection).await?;
    Ok(resource_response(HttpResponse::Ok(), rendered))
}

pub async fn replace(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    id: web::Path<IdPath>,
    body: web::Payload,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Write))?;
    let id = id.into_inner().id;
    let query = ScimQuery::parse(&req)?;
    let projection = projection(&state, kind, &query)?;
    let input = read_json(body, state.settings.max_body_bytes).await?;
    let if_match = precondition(&req, IF_MATCH);
    let rendered = state
        .provisioning
        .replace(&caller.scope(), kind, &id, &input, if_match.as_ref(), &projection)
        .await?;
    Ok(resource_response(HttpResponse::Ok(), rendered))
}

pub async fn patch(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    id: web::Path<IdPath>,
    body: web::Payload,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Write))?;
    let id = id.into_inner().id;
    let query = ScimQuery::parse(&req)?;
    let projection = projection(&state, kind, &query)?;
    let input = read_json(body, state.settings.max_body_bytes).await?;
    let if_match = precondition(&req, IF_MATCH);
    let rendered = state
        .provisioning
        .patch(&caller.scope(), kind, &id, &input, if_match.as_ref(), &projection)
        .await?;
    Ok(resource_response(HttpResponse::Ok(), rendered))
}

pub async fn delete(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    id: web::Path<IdPath>,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Delete))?;
    let id = id.into_inner().id;
    let if_match = precondition(&req, IF_MATCH);
    state
        .provisioning
        .delete(&caller.scope(), kind, &id, if_match.as_ref())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Read))?;
    let query = ScimQuery::parse(&req)?;
    let projection = projection(&state, kind, &query)?;
    let request = ListRequest {
        filter: query.get("filter"),
        sort_by: query.get("sortBy"),
        sort_order: query.get("sortOrder"),
        start_index: query.integer("startIndex")?,
        count: query.integer("count")?,
        cursor: query.get("cursor"),
    };
    let body = state
        .provisioning
        .list(&caller.scope(), kind, &request, &projection)
        .await?;
    Ok(scim_json(body))
}

/// `POST /Users/.search`, `POST /Groups/.search` (RFC 7644 §3.4.3).
pub async fn search(
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Read))?;
    let input = read_json(body, state.settings.max_body_bytes).await?;
    let search = SearchRequest::parse(&input)?;
    let projection = Projection::parse(
        state.provisioning.registry(),
        kind,
        search.attributes.as_deref(),
        search.excluded_attributes.as_deref(),
    )?;
    let body = state
        .provisioning
        .list(&caller.scope(), kind, &search.list_request(), &projection)
        .await?;
    Ok(scim_json(body))
}

/// Root `POST /.search` across Users and Groups; needs both read scopes.
pub async fn search_all(
    caller: ScimCaller,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ScimHttpResult<HttpResponse> {
    caller.principal.require(Scope::UsersRead)?;
    caller.principal.require(Scope::GroupsRead)?;
    let input = read_json(body, state.settings.max_body_bytes).await?;
    let search = SearchRequest::parse(&input)?;
    let registry = state.provisioning.registry();
    let (attributes, excluded) = (search.attributes.as_deref(), search.excluded_attributes.as_deref());
    let users = Projection::parse(registry, ResourceKind::User, attributes, excluded)?;
    let groups = Projection::parse(registry, ResourceKind::Group, attributes, excluded)?;
    let body = state
        .provisioning
        .search_all(&caller.scope(), &search.list_request(), [&users, &groups])
        .await?;
    Ok(scim_json(body))
}

/// `POST /Bulk` (RFC 7644 §3.7). Any valid key may send one; each operation
/// is checked against the scope it needs and fails alone (403) without it.
/// The body cap is the advertised `maxPayloadSize`.
pub async fn bulk(caller: ScimCaller, state: web::Data<AppState>, body: web::Payload) -> ScimHttpResult<HttpResponse> {
    let limit = state.settings.max_body_bytes;
    let input = read_json(body, limit).await.map_err(|e| match e.error.status {
        413 => bulk::payload_too_large(limit).into(),
        _ => e,
    })?;
    let authorize = |kind: ResourceKind, method: bulk::Method| {
        let action = match method {
            bulk::Method::Delete => Action::Delete,
            bulk::Method::Post | bulk::Method::Put | bulk::Method::Patch => Action::Write,
        };
        caller
            .principal
            .require(required_scope(kind, action))
            .map_err(|e| ScimHttpError::from(e).error)
    };
    let body = bulk::process(&state.provisioning, &caller.scope(), input, &authorize).await?;
    Ok(scim_json(body.to_string().into_bytes()))
}

/// 200 with a SCIM body serialised already.
fn scim_json(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(body)
}

/// A SearchRequest body (RFC 7644 §3.4.3). Member names are matched
/// case-insensitively; `attributes` may be a list or a comma-separated string.
struct SearchRequest {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    cursor: Option<String>,
}

impl SearchRequest {
    fn parse(input: &serde_json::Value) -> Result<Self, ScimError> {
        let object = input
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let field = |name: &str| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match field(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let list = |name: &str| -> Result<Option<String>, ScimError> {
            match field(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .ok_or_else(|| ScimError::invalid_value(format!("{name} must hold strings")))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|names| Some(names.join(","))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be a list of attribute names"
                ))),
            }
        };
        let integer = |name: &str| -> Result<Option<i64>, ScimError> {
            match field(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
            }
        };
        Ok(SearchRequest {
            attributes: list("attributes")?,
            excluded_attributes: list("excludedAttributes")?,
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: integer("startIndex")?,
            count: integer("count")?,
            cursor: text("cursor")?,
        })
    }

    fn list_request(&self) -> ListRequest<'_> {
        ListRequest {
            filter: self.filter.as_deref(),
            sort_by: self.sort_by.as_deref(),
            sort_order: self.sort_order.as_deref(),
            start_index: self.start_index,
            count: self.count,
            cursor: self.cursor.as_deref(),
        }
    }
}

/// `/Me` needs a user subject; an API key has none (RFC 7644 §3.11 allows 501).
pub async fn me(_caller: ScimCaller) -> ScimHttpResult<HttpResponse> {
    Err(
        ScimError::not_implemented("/Me is not supported: API keys authenticate service accounts, not SCIM users")
            .into(),
    )
}

pub async fn unknown_endpoint(req: HttpRequest) -> ScimHttpResult<HttpResponse> {
    Err(ScimError::not_found(format!("no SCIM endpoint {} {}", req.method(), req.path())).into())
}

/// Methods an endpoint does not serve: 405 with the `Allow` header RFC 9110
/// §15.5.6 requires.
pub async fn method_not_allowed(req: HttpRequest) -> ScimHttpResult<HttpResponse> {
    let error = ScimError::new(405, None, format!("{} is not allowed on {}", req.method(), req.path()));
    let mut response = actix_web::ResponseError::error_response(&super::error::ScimHttpError::from(error));
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allowed_methods(req.path())),
    );
    Ok(response)
}

/// The methods served at a SCIM path, by the shape of the path.
fn allowed_methods(path: &str) -> &'static str {
    let last = path.rsplit('/').next().unwrap_or_default();
    let parent = path.rsplit('/').nth(1).unwrap_or_default();
    match (parent, last) {
        (_, ".search" | "Bulk") => "POST",
        (_, "Users" | "Groups") => "GET, POST",
        ("Users" | "Groups", _) => "GET, PUT, PATCH, DELETE",
        _ => "GET",
    }
}

pub async fn not_implemented(req: HttpRequest) -> ScimHttpResult<HttpResponse> {
    Err(ScimError::not_implemented(format!("{} is not supported by this server yet", req.path())).into())
}
