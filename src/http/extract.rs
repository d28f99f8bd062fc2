//! Request extractors: the authenticated SCIM caller, JSON bodies with a size
//! cap, and SCIM query parameters.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use super::error::ScimHttpError;
use crate::auth::{AuthError, Principal};
use crate::scim::ScimError;
use crate::store::audit::AuditContext;
use actix_web::HttpMessage;

/// An authenticated SCIM request: who calls, and the SCIM base URL it used.
pub struct ScimCaller {
    pub principal: Principal,
    /// `<base-url>/scim/v2` or `<base-url>/t/{tenant}/scim/v2`.
    pub base_url: String,
    client_ip: Option<std::net::IpAddr>,
    request_id: Option<tracing_actix_web::RequestId>,
    /// Built when first asked for: reads record no event, and building it
    /// copies six strings.
    audit: OnceCell<AuditContext>,
}

impl ScimCaller {
    fn audit(&self) -> &AuditContext {
        self.audit
            .get_or_init(|| audit_context_of(&self.principal, self.client_ip, self.request_id))
    }

    pub fn scope(&self) -> crate::provisioning::Scope<'_> {
        crate::provisioning::Scope {
            tenant_id: &self.principal.tenant_id,
            base_url: &self.base_url,
            audit: self.audit(),
        }
    }
}

impl FromRequest for ScimCaller {
    type Error = ScimHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let authorization = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
            let client_ip = client_ip(&req);
            let principal = state.verifier.authenticate(authorization, client_ip).await?;
            // Tenant isolation: a key of another tenant is not a key here.
            if req
                .match_info()
                .get("tenant")
                .is_some_and(|tenant| tenant != principal.tenant_name)
            {
                return Err(AuthError::WrongTenant.into());
            }
            let base_url = scim_base_url(&req, &state);
            note_key_expiry(&req, &principal);
            let request_id = req.extensions().get::<tracing_actix_web::RequestId>().copied();
            Ok(ScimCaller {
                principal,
                base_url,
                client_ip,
                request_id,
                audit: OnceCell::new(),
            })
        })
    }
}

/// The audit context of an authenticated request: key, service user, client
/// address and request ID.
pub fn audit_context(req: &HttpRequest, principal: &Principal) -> AuditContext {
    let request_id = req.extensions().get::<tracing_actix_web::RequestId>().copied();
    audit_context_of(principal, client_ip(req), request_id)
}

fn audit_context_of(
    principal: &Principal,
    client_ip: Option<std::net::IpAddr>,
    request_id: Option<tracing_actix_web::RequestId>,
) -> AuditContext {
    AuditContext {
        tenant_id: principal.tenant_id.clone(),
        key_id: Some(principal.key_id.as_str().to_string()),
        service_user_id: Some(principal.service_user_id.clone()),
        actor_name: principal.service_user_name.clone(),
        ip: client_ip.map(|ip| ip.to_string()),
        request_id: request_id.map(|id| id.to_string()),
    }
}

/// Keys expiring within this many days get [`KEY_EXPIRES_HEADER`] on every answer.
pub const KEY_EXPIRY_WARNING_DAYS: i64 = 7;
/// Response header telling a caller when its key expires (RFC 3339).
pub const KEY_EXPIRES_HEADER: &str = "x-scimd-key-expires";

/// When the calling key expires soon, remembered for the response header.
#[derive(Debug, Clone, Copy)]
pub struct KeyExpiresSoon(pub chrono::DateTime<chrono::Utc>);

pub fn note_key_expiry(req: &HttpRequest, principal: &Principal) {
    if let Some(at) = principal.expires_at
        && at <= chrono::Utc::now() + chrono::Duration::days(KEY_EXPIRY_WARNING_DAYS)
    {
        req.extensions_mut().insert(KeyExpiresSoon(at));
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy. Without trusted proxies the header is never believed, so a
/// client cannot forge its way past an IP allowlist.
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    let trusted = match req.app_data::<web::Data<AppState>>() {
        Some(state) if !state.settings.trusted_proxies.is_empty() => state.settings.trusted_proxies.clone(),
        _ => return Some(peer),
    };
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer))
}

pub fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ScimHttpError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ScimError::internal().into())
}

/// The SCIM base URL a request used (for discovery, without authenticating).
pub fn scim_base_url(req: &HttpRequest, state: &AppState) -> String {
    match req.match_info().get("tenant") {
        Some(tenant) => format!("{}/t/{tenant}/scim/v2", state.settings.base_url),
        None => state.scim_url.clone(),
    }
}

/// Reads a JSON body of at most `limit` bytes: 413 above it, 400
/// `invalidSyntax` when it is not JSON. Either content type is accepted.
pub async fn read_json(mut payload: web::Payload, limit: usize) -> Result<Value, ScimHttpError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ScimError::invalid_syntax("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(ScimError::new(413, None, format!("the request body exceeds {limit} bytes")).into());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ScimError::invalid_syntax("a JSON request body is required").into());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")).into())
}

/// The `{id}` of a resource route. Named, because tenant routes also carry
/// `{tenant}` and a positional extractor would read that instead.
#[derive(Debug, serde::Deserialize)]
pub struct IdPath {
    pub id: String,
}

/// SCIM query parameters; names are matched case-insensitively because
/// clients spell them variously (`startindex`, `StartIndex`).
#[derive(Debug, Default)]
pub struct ScimQuery {
    pairs: Vec<(String, String)>,
}

impl ScimQuery {
    pub fn parse(req: &HttpRequest) -> Result<Self, ScimHttpError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| ScimError::invalid_value(format!("malformed query string: {e}")))?
            .into_inner();
        Ok(ScimQuery { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A non-negative integer parameter; garbage is a 400, not a silent default.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ScimHttpError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, got \"{raw}\"")).into()),
        }
    }
}
