//! The JSON error shape of the API: `{"error": {"code": ..., "message": ...}}`, with the status
//! from [`status`]: the one mapping of errors to HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable; the status says the class.
    #[schema(schema_with = error_codes)]
    pub code: String,
    /// For people: what was wrong, naming the field or limit.
    pub message: String,
}

/// Every code an error answer may carry: those of [`status`] and of [`json_errors`].
pub const CODES: [&str; 19] = [
    "bad_request",
    "empty_input",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "model_mismatch",
    "payload_too_large",
    "image_too_large",
    "unsupported_media_type",
    "corrupt_image",
    "enrollment_refused",
    "unprocessable",
    "too_many_streams",
    "overloaded",
    "shutting_down",
    "model_unavailable",
    "internal",
];

fn error_codes() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(CODES))
        .build()
}

pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody { error: ErrorDetail { code: code.into(), message: message.into() } };
    (status, Json(body)).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = status(&self);
        if status >= 500 && !matches!(self, Error::Overloaded { .. } | Error::ShuttingDown) {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = error_response(status, code, &self.to_string());
        let h = resp.headers_mut();
        match &self {
            Error::Overloaded { retry_after_s, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            Error::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"facewatch\""));
            }
            _ => {}
        }
        resp
    }
}

/// HTTP status and stable machine-readable code: the one mapping of errors to the API.
pub fn status(e: &Error) -> (u16, &'static str) {
    match e {
        Error::UnsupportedImage(_) | Error::UnsupportedMediaType(_) => (415, "unsupported_media_type"),
        Error::CorruptImage(_) => (422, "corrupt_image"),
        Error::ImageTooLarge { .. } => (413, "image_too_large"),
        Error::PayloadTooLarge { .. } => (413, "payload_too_large"),
        Error::EmptyInput => (400, "empty_input"),
        Error::Invalid(_) | Error::BadRequest(_) => (400, "bad_request"),
        Error::EnrollmentRefused(_) => (422, "enrollment_refused"),
        Error::UnknownList(_) | Error::UnknownSubject { .. } | Error::NotFound(_) => (404, "not_found"),
        Error::Conflict(_) | Error::DataDirInUse { .. } => (409, "conflict"),
        Error::Unauthorized => (401, "unauthorized"),
        Error::Forbidden { .. } => (403, "forbidden"),
        Error::Overloaded { .. } => (503, "overloaded"),
        Error::ShuttingDown => (503, "shutting_down"),
        Error::TooManyStreams { .. } => (429, "too_many_streams"),
        Error::ModelsNotFound(_) | Error::ModelMissing { .. } | Error::ModelChecksum { .. } => {
            (503, "model_unavailable")
        }
        Error::ModelMismatch { .. } => (409, "model_mismatch"),
        Error::Io { .. }
        | Error::Manifest(_)
        | Error::Runtime(_)
        | Error::ModelOutput(_)
        | Error::Index(_)
        | Error::Store(_)
        | Error::Migration(_)
        | Error::Config(_)
        | Error::Encryption(_) => (500, "internal"),
    }
}

/// Maps axum's extractor rejections (body limit, bad JSON, wrong content type) onto [`Error`].
pub fn rejection(status: StatusCode, text: String, limit: usize) -> Error {
    match status.as_u16() {
        413 => Error::PayloadTooLarge { limit },
        415 => Error::UnsupportedMediaType(text),
        _ => Error::BadRequest(text),
    }
}

/// Every error answer in the documented shape, also those that axum's extractors and router
/// make on their own (a path segment that is not UTF-8, a missing extension): a 4xx or 5xx
/// body that is not JSON is rewritten as `{"error": ...}` with the same status and headers.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // These texts are axum's own, one short line; a longer body is not buffered (the status's
    // reason stands in for it).
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let code = match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let message = String::from_utf8_lossy(&text);
    let message = if message.trim().is_empty() { status.canonical_reason().unwrap_or("error").into() } else { message };
    let (new_parts, new_body) = error_response(status.as_u16(), code, message.trim()).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, new_body)
}
