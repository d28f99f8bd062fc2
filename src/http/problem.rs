//! RFC 9457 `application/problem+json` answers of the admin API.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::admin::AdminError;
use crate::auth::AuthError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug)]
pub struct Problem {
    pub status: u16,
    pub detail: String,
    pub www_authenticate: Option<&'static str>,
}

impl Problem {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        Problem {
            status,
            detail: detail.into(),
            www_authenticate: None,
        }
    }

    /// A stable, documented problem type per status.
    fn kind(&self) -> (&'static str, &'static str) {
        match self.status {
            400 => ("invalid-request", "Invalid request"),
            401 => ("unauthorized", "Authentication required"),
            403 => ("forbidden", "Forbidden"),
            404 => ("not-found", "Not found"),
            405 => ("method-not-allowed", "Method not allowed"),
            409 => ("conflict", "Conflict"),
            413 => ("payload-too-large", "Payload too large"),
            415 => ("unsupported-media-type", "Unsupported media type"),
            422 => ("refused", "Refused by the rules"),
            503 => ("unavailable", "Service unavailable"),
            _ => ("internal-error", "Internal error"),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title) = self.kind();
        let body = json!({
            "type": format!("urn:scimd:problem:{slug}"),
            "title": title,
            "status": self.status,
            "detail": self.detail,
        });
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CONTENT_TYPE, PROBLEM_CONTENT_TYPE));
        if let Some(challenge) = self.www_authenticate {
            response.insert_header((WWW_AUTHENTICATE, challenge));
        }
        response.body(body.to_string())
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        Problem::new(e.status(), e.to_string())
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        let challenge = |detail: String, header| Problem {
            status: 401,
            detail,
            www_authenticate: Some(header),
        };
        match e {
            AuthError::Missing => challenge(
                "authentication required: send Authorization: Bearer <API key>".into(),
                "Bearer realm=\"scimd\"",
            ),
            AuthError::Invalid | AuthError::WrongTenant => challenge(
                "invalid API key".into(),
                "Bearer realm=\"scimd\", error=\"invalid_token\"",
            ),
            AuthError::Disabled | AuthError::Expired => {
                challenge(e.to_string(), "Bearer realm=\"scimd\", error=\"invalid_token\"")
            }
            AuthError::AddressNotAllowed => Problem::new(403, e.to_string()),
            AuthError::MissingScope(scope) => Problem::new(403, format!("this operation requires the scope {scope}")),
            AuthError::Unavailable(cause) => {
                tracing::error!(%cause, "authentication unavailable");
                Problem::new(503, "authentication is temporarily unavailable")
            }
        }
    }
}

pub type ProblemResult<T> = Result<T, Problem>;
