//! One JSON error shape for every failure: `{"error": {"code", "message", "details"}}`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use application::{AppError, ErrorKind};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self(AppError::new(kind, code, message))
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Validation => StatusCode::BAD_REQUEST,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable | ErrorKind::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Every error answer: a stable machine-readable code, a sentence, and
/// details such as the offending `field`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// e.g. `validation_failed`, `role_not_allowed`, `not_found`.
    code: String,
    message: String,
    /// e.g. `{"field": "systemPrompt"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<serde_json::Value>,
}

pub fn error_body(code: &str, message: &str, details: Option<&serde_json::Value>) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            details: details.cloned(),
        },
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.0.kind)
    }

    fn error_response(&self) -> HttpResponse {
        // The one place a request's internal failure is logged, with its causes.
        match self.0.kind {
            ErrorKind::Internal => tracing::error!(error = %self.0.report(), "request failed"),
            ErrorKind::Unavailable => tracing::warn!(error = %self.0.report(), "a provider failed the request"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ErrorKind::TooManyRequests { retry_after } | ErrorKind::Busy { retry_after } = self.0.kind {
            response.insert_header((header::RETRY_AFTER, retry_after.as_secs().max(1).to_string()));
        }
        if self.0.kind == ErrorKind::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(error_body(self.0.code, &self.0.message, self.0.details.as_ref()))
    }
}

/// A 422 with the usual error body.
pub fn unprocessable(code: &str, message: &str) -> actix_web::Error {
    let body = error_body(code, message, None);
    actix_web::error::InternalError::from_response(
        message.to_owned(),
        HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY).json(body),
    )
    .into()
}

/// Malformed, mistyped, incomplete or oversized JSON bodies.
pub fn json_error(error: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &error {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
            ErrorKind::Validation,
            "payload_too_large",
            "the request body is larger than the limit",
        ),
        E::ContentType => ApiError::new(
            ErrorKind::Validation,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        ),
        E::Deserialize(inner) if inner.is_data() => {
            ApiError::new(ErrorKind::Validation, "invalid_body", inner.to_string())
        }
        E::Deserialize(inner) => ApiError::new(ErrorKind::Validation, "malformed_json", inner.to_string()),
        other => ApiError::new(ErrorKind::Validation, "invalid_body", other.to_string()),
    };
    let status = match &error {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        E::Deserialize(inner) if inner.is_data() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = error_body(api.0.code, &api.0.message, None);
    actix_web::error::InternalError::from_response(error, HttpResponse::build(status).json(body)).into()
}

pub fn query_error(error: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let body = error_body("invalid_query", &error.to_string(), None);
    actix_web::error::InternalError::from_response(error, HttpResponse::BadRequest().json(body)).into()
}

pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    let body = error_body("invalid_path", &error.to_string(), None);
    actix_web::error::InternalError::from_response(error, HttpResponse::NotFound().json(body)).into()
}

/// No route took the request: 405 when the path is documented under other
/// methods, 404 otherwise.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if crate::openapi::methods_of(req.path()).is_empty() {
        return HttpResponse::NotFound().json(error_body("not_found", "no such route", None));
    }
    method_not_allowed(req).await
}

/// The route at `path`: the methods added to it are served, any other is
/// answered by [`method_not_allowed`].
pub fn resource(path: &str) -> actix_web::Resource {
    actix_web::web::resource(path).default_service(actix_web::web::to(method_not_allowed))
}

/// 405 with the `Allow` header (RFC 9110) listing the path's documented methods.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let allowed = crate::openapi::methods_of(req.path())
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ");
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allowed))
        .json(error_body(
            "method_not_allowed",
            "this route does not accept that method",
            None,
        ))
}
