//! The JSON error shape of the API: `{"error": {"code": ..., "message": ...}}`, with the status
//! from [`Error::status_code`] (the one mapping of errors to HTTP).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
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

/// Maps axum's extractor rejections (body limit, bad JSON, wrong content type) onto [`Error`].
pub fn rejection(status: StatusCode, text: String, limit: usize) -> Error {
    match status.as_u16() {
        413 => Error::PayloadTooLarge { limit },
        415 => Error::UnsupportedMediaType(text),
        _ => Error::BadRequest(text),
    }
}
