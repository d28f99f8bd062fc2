//! Handlers for `/Users` and `/Groups` (the resource type comes from the
//! route's app data), and `/Me`.

use actix_web::http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::error::{SCIM_CONTENT_TYPE, ScimHttpResult};
use super::extract::{ScimCaller, ScimQuery, read_json};
use crate::auth::Scope;
use crate::provisioning::{DEFAULT_PAGE_SIZE, Precondition, Rendered};
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
        .body(rendered.body.to_string())
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
    id: web::Path<(String,)>,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Read))?;
    let id = id.into_inner().0;
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
    id: web::Path<(String,)>,
    body: web::Payload,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Write))?;
    let id = id.into_inner().0;
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

pub async fn delete(
    req: HttpRequest,
    caller: ScimCaller,
    kind: web::Data<ResourceKind>,
    state: web::Data<AppState>,
    id: web::Path<(String,)>,
) -> ScimHttpResult<HttpResponse> {
    let kind = **kind;
    caller.principal.require(required_scope(kind, Action::Delete))?;
    let id = id.into_inner().0;
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
    if query.get("filter").is_some() {
        // Advertised as unsupported in the ServiceProviderConfig; answering
        // an unfiltered list would mislead a client looking for one user.
        return Err(ScimError::not_implemented("filtering is not supported by this server yet").into());
    }
    let projection = projection(&state, kind, &query)?;
    let start_index = u64::try_from(query.integer("startIndex")?.unwrap_or(1)).unwrap_or(1);
    let count = u64::try_from(query.integer("count")?.unwrap_or(DEFAULT_PAGE_SIZE as i64)).unwrap_or(0);
    let body = state
        .provisioning
        .list(&caller.scope(), kind, start_index, count, &projection)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(body.to_string()))
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

/// Methods a resource endpoint does not serve. PATCH, Bulk and `.search`
/// are advertised as unsupported in the ServiceProviderConfig: 501.
pub async fn unsupported_method(req: HttpRequest) -> ScimHttpResult<HttpResponse> {
    if req.method() == actix_web::http::Method::PATCH {
        return Err(ScimError::not_implemented("PATCH is not supported by this server yet").into());
    }
    Err(ScimError::new(405, None, format!("{} is not allowed on {}", req.method(), req.path())).into())
}

pub async fn not_implemented(req: HttpRequest) -> ScimHttpResult<HttpResponse> {
    Err(ScimError::not_implemented(format!("{} is not supported by this server yet", req.path())).into())
}
