//! How SCIM errors become HTTP answers (RFC 7644 §3.12).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::scim::ScimError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM error as an actix error; 401s carry `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct ScimHttpError {
    pub error: ScimError,
    pub www_authenticate: Option<&'static str>,
}

impl std::fmt::Display for ScimHttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<ScimError> for ScimHttpError {
    fn from(error: ScimError) -> Self {
        ScimHttpError {
            error,
            www_authenticate: None,
        }
    }
}

impl From<AuthError> for ScimHttpError {
    fn from(e: AuthError) -> Self {
        let challenge = |error: ScimError, header| ScimHttpError {
            error,
            www_authenticate: Some(header),
        };
        match e {
            AuthError::Missing => challenge(
                ScimError::unauthorized("authentication required: send Authorization: Bearer <API key>"),
                "Bearer realm=\"scimd\"",
            ),
            AuthError::Invalid | AuthError::WrongTenant => challenge(
                ScimError::unauthorized("invalid API key"),
                "Bearer realm=\"scimd\", error=\"invalid_token\"",
            ),
            AuthError::Disabled | AuthError::Expired => challenge(
                ScimError::unauthorized(e.to_string()),
                "Bearer realm=\"scimd\", error=\"invalid_token\"",
            ),
            AuthError::AddressNotAllowed => ScimError::forbidden(e.to_string()).into(),
            AuthError::MissingScope(scope) => {
                ScimError::forbidden(format!("this operation requires the scope {scope}")).into()
            }
            AuthError::Unavailable(cause) => {
                tracing::error!(%cause, "authentication unavailable");
                ScimError::new(503, None, "authentication is temporarily unavailable").into()
            }
        }
    }
}

impl ResponseError for ScimHttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CONTENT_TYPE, SCIM_CONTENT_TYPE));
        if let Some(challenge) = self.www_authenticate {
            response.insert_header((WWW_AUTHENTICATE, challenge));
        }
        response.body(self.error.to_body().to_string())
    }
}

pub type ScimHttpResult<T> = Result<T, ScimHttpError>;
