//! The admin API (`/admin/v1`, contract §4): thin handlers over
//! [`crate::admin::Admin`], answering JSON or problem+json.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::extract::{audit_context, client_ip, note_key_expiry};
use super::problem::{Problem, ProblemResult};
use crate::admin::keys::{BatchRequest, CreateKey, KeyListRequest, RenewKey, RotateKey, UpdateKey};
use crate::admin::service_users::{CreateServiceUser, UpdateServiceUser};
use crate::admin::tenants::CreateTenant;
use crate::admin::{self as ops, ListPage};
use crate::auth::{Principal, Scope};
use crate::store::audit::{AuditContext, AuditQuery};

/// An authenticated admin request and the audit context of what it changes.
pub struct AdminCaller {
    pub principal: Principal,
    pub audit: AuditContext,
}

impl AdminCaller {
    fn require(&self, scope: Scope) -> ProblemResult<()> {
        Ok(self.principal.require(scope)?)
    }

    /// Reading service users needs any `admin:*` scope (contract §3).
    fn require_any_admin(&self) -> ProblemResult<()> {
        if self.principal.scopes.iter().any(|s| s.is_admin()) {
            Ok(())
        } else {
            Err(Problem::new(403, "this operation requires an admin:* scope"))
        }
    }
}

impl FromRequest for AdminCaller {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| Problem::new(500, "internal error"))?;
            let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
            let principal = state.verifier.authenticate(authorization, client_ip(&req)).await?;
            let audit = audit_context(&req, &principal);
            note_key_expiry(&req, &principal);
            Ok(AdminCaller { principal, audit })
        })
    }
}

/// Reads a JSON body into `T`: 413 above the cap, 415 for a non-JSON type,
/// 400 for malformed JSON or unknown fields.
async fn body<T: DeserializeOwned>(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> ProblemResult<T> {
    if let Some(content_type) = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(Problem::new(415, format!("send application/json, not {content_type}")));
        }
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| Problem::new(400, "the request body could not be read"))?;
        if bytes.len() + chunk.len() > limit {
            return Err(Problem::new(413, format!("the request body exceeds {limit} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let bytes = if bytes.is_empty() {
        web::BytesMut::from(&b"{}"[..])
    } else {
        bytes
    };
    serde_json::from_slice(&bytes).map_err(|e| Problem::new(400, format!("invalid JSON body: {e}")))
}

fn json<T: Serialize>(status: actix_web::http::StatusCode, value: &T) -> HttpResponse {
    HttpResponse::build(status).json(value)
}

fn ok<T: Serialize>(value: &T) -> HttpResponse {
    json(actix_web::http::StatusCode::OK, value)
}

fn created<T: Serialize>(value: &T) -> HttpResponse {
    json(actix_web::http::StatusCode::CREATED, value)
}

/// `cursor` (an offset) and `limit` of a list request.
fn paging(query: &web::Query<Vec<(String, String)>>) -> ProblemResult<(u64, u64)> {
    Ok((ops::decode_cursor(param(query, "cursor"))?, list_limit(query)?))
}

/// `limit` of a list request.
fn list_limit(query: &web::Query<Vec<(String, String)>>) -> ProblemResult<u64> {
    let limit = match param(query, "limit") {
        Some(l) => Some(
            l.parse::<u64>()
                .map_err(|_| Problem::new(400, format!("limit must be a number, not \"{l}\"")))?,
        ),
        None => None,
    };
    Ok(ops::limit(limit)?)
}

fn param<'a>(query: &'a web::Query<Vec<(String, String)>>, name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

type Query = web::Query<Vec<(String, String)>>;
type Id = web::Path<String>;

// --- service users ---------------------------------------------------------

pub async fn create_service_user(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminServiceUsers)?;
    let input: CreateServiceUser = body(&req, payload, state.settings.max_body_bytes).await?;
    let user = state
        .admin
        .create_service_user(&caller.audit, &caller.principal.tenant_name, input)
        .await?;
    Ok(created(&user))
}

pub async fn list_service_users(
    caller: AdminCaller,
    state: web::Data<AppState>,
    query: Query,
) -> ProblemResult<HttpResponse> {
    caller.require_any_admin()?;
    let (offset, limit) = paging(&query)?;
    let page = state
        .admin
        .list_service_users(
            &caller.principal.tenant_id,
            &caller.principal.tenant_name,
            param(&query, "q"),
            offset,
            limit,
        )
        .await?;
    Ok(ok(&page))
}

pub async fn get_service_user(caller: AdminCaller, state: web::Data<AppState>, id: Id) -> ProblemResult<HttpResponse> {
    caller.require_any_admin()?;
    let user = state
        .admin
        .get_service_user(&caller.principal.tenant_id, &caller.principal.tenant_name, &id)
        .await?;
    Ok(ok(&user))
}

pub async fn update_service_user(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    id: Id,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminServiceUsers)?;
    let input: UpdateServiceUser = body(&req, payload, state.settings.max_body_bytes).await?;
    let user = state
        .admin
        .update_service_user(&caller.audit, &caller.principal.tenant_name, &id, input)
        .await?;
    Ok(ok(&user))
}

pub async fn delete_service_user(
    caller: AdminCaller,
    state: web::Data<AppState>,
    id: Id,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminServiceUsers)?;
    state.admin.delete_service_user(&caller.audit, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

// --- keys ------------------------------------------------------------------

pub async fn create_key(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    id: Id,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysCreate)?;
    let input: CreateKey = body(&req, payload, state.settings.max_body_bytes).await?;
    let key = state.admin.create_key(&caller.audit, &id, input).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(&key))
}

pub async fn list_keys(caller: AdminCaller, state: web::Data<AppState>, query: Query) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    let (offset, limit) = paging(&query)?;
    let request = KeyListRequest {
        service_user: param(&query, "serviceUser"),
        state: param(&query, "state"),
        key_type: param(&query, "type"),
        q: param(&query, "q"),
        expires_within_days: param(&query, "expiresWithinDays"),
        sort: param(&query, "sort"),
    };
    let page: ListPage<_> = state
        .admin
        .list_keys(&caller.principal.tenant_id, &request, offset, limit)
        .await?;
    Ok(ok(&page))
}

pub async fn get_key(caller: AdminCaller, state: web::Data<AppState>, id: Id) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    Ok(ok(&state.admin.get_key(&caller.principal.tenant_id, &id).await?))
}

pub async fn update_key(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    id: Id,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    let input: UpdateKey = body(&req, payload, state.settings.max_body_bytes).await?;
    Ok(ok(&state.admin.update_key(&caller.audit, &id, input).await?))
}

pub async fn disable_key(caller: AdminCaller, state: web::Data<AppState>, id: Id) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    Ok(ok(&state.admin.disable_key(&caller.audit, &id).await?))
}

pub async fn enable_key(caller: AdminCaller, state: web::Data<AppState>, id: Id) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    Ok(ok(&state.admin.enable_key(&caller.audit, &id).await?))
}

pub async fn renew_key(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    id: Id,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    let input: RenewKey = body(&req, payload, state.settings.max_body_bytes).await?;
    Ok(ok(&state.admin.renew_key(&caller.audit, &id, input).await?))
}

pub async fn rotate_key(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    id: Id,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    let input: RotateKey = body(&req, payload, state.settings.max_body_bytes).await?;
    let key = state.admin.rotate_key(&caller.audit, &id, input).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(&key))
}

pub async fn delete_key(caller: AdminCaller, state: web::Data<AppState>, id: Id) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    state.admin.delete_key(&caller.audit, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn batch_keys(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminKeysManage)?;
    let input: BatchRequest = body(&req, payload, state.settings.max_body_bytes).await?;
    let results = state.admin.batch_keys(&caller.audit, input).await?;
    Ok(ok(&serde_json::json!({ "results": results })))
}

// --- tenants and audit -----------------------------------------------------

fn require_tenant_admin(caller: &AdminCaller) -> ProblemResult<()> {
    caller.require(Scope::AdminTenants)?;
    if caller.principal.tenant_name != crate::auth::bootstrap::BOOTSTRAP_TENANT {
        return Err(Problem::new(403, "tenants are managed from the default tenant only"));
    }
    Ok(())
}

pub async fn create_tenant(
    req: HttpRequest,
    caller: AdminCaller,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> ProblemResult<HttpResponse> {
    require_tenant_admin(&caller)?;
    let input: CreateTenant = body(&req, payload, state.settings.max_body_bytes).await?;
    let tenant = state.admin.create_tenant(&caller.audit, input).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(&tenant))
}

pub async fn list_tenants(caller: AdminCaller, state: web::Data<AppState>) -> ProblemResult<HttpResponse> {
    require_tenant_admin(&caller)?;
    let items = state.admin.list_tenants().await?;
    let total = items.len() as u64;
    Ok(ok(&ListPage {
        items,
        next_cursor: None,
        total,
    }))
}

pub async fn list_audit_events(
    caller: AdminCaller,
    state: web::Data<AppState>,
    query: Query,
) -> ProblemResult<HttpResponse> {
    caller.require(Scope::AdminAuditRead)?;
    let limit = list_limit(&query)?;
    let after = ops::decode_event_cursor(param(&query, "cursor"))?;
    let time = |name: &str| -> ProblemResult<Option<chrono::DateTime<chrono::Utc>>> {
        param(&query, name)
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| Problem::new(400, format!("{name} must be an RFC 3339 timestamp")))
            })
            .transpose()
    };
    let audit_query = AuditQuery {
        action: param(&query, "action").map(str::to_string),
        actor: param(&query, "actor").map(str::to_string),
        target_id: param(&query, "targetId").map(str::to_string),
        since: time("since")?,
        until: time("until")?,
        after,
        limit,
    };
    let page = state
        .admin
        .list_audit_events(&caller.principal.tenant_name, &caller.principal.tenant_id, &audit_query)
        .await?;
    Ok(ok(&page))
}

/// A method an admin resource does not serve: 405 problem+json with `Allow`.
fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<ProblemResult<HttpResponse>> + Clone {
    move |req: HttpRequest| {
        let problem = Problem::new(405, format!("{} is not allowed on {}", req.method(), req.path()));
        let mut response = actix_web::ResponseError::error_response(&problem);
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        std::future::ready(Ok(response))
    }
}

pub async fn not_found(req: HttpRequest) -> ProblemResult<HttpResponse> {
    Err(Problem::new(
        404,
        format!("no admin endpoint {} {}", req.method(), req.path()),
    ))
}

/// The admin route table, mounted at `/admin/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str, allow: &'static str| {
        web::resource(path).default_service(web::route().to(method_not_allowed(allow)))
    };
    cfg.service(
        resource("/service-users", "GET, POST")
            .route(web::post().to(create_service_user))
            .route(web::get().to(list_service_users)),
    )
    .service(
        resource("/service-users/{id}", "GET, PATCH, DELETE")
            .route(web::get().to(get_service_user))
            .route(web::patch().to(update_service_user))
            .route(web::delete().to(delete_service_user)),
    )
    .service(resource("/service-users/{id}/keys", "POST").route(web::post().to(create_key)))
    .service(resource("/keys", "GET").route(web::get().to(list_keys)))
    .service(resource("/keys/batch", "POST").route(web::post().to(batch_keys)))
    .service(
        resource("/keys/{id}", "GET, PATCH, DELETE")
            .route(web::get().to(get_key))
            .route(web::patch().to(update_key))
            .route(web::delete().to(delete_key)),
    )
    .service(resource("/keys/{id}/disable", "POST").route(web::post().to(disable_key)))
    .service(resource("/keys/{id}/enable", "POST").route(web::post().to(enable_key)))
    .service(resource("/keys/{id}/renew", "POST").route(web::post().to(renew_key)))
    .service(resource("/keys/{id}/rotate", "POST").route(web::post().to(rotate_key)))
    .service(
        resource("/tenants", "GET, POST")
            .route(web::post().to(create_tenant))
            .route(web::get().to(list_tenants)),
    )
    .service(resource("/audit-events", "GET").route(web::get().to(list_audit_events)))
    .default_service(web::route().to(not_found));
}
