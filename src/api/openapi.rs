//! The OpenAPI document, generated: each route is registered with its `#[utoipa::path]` entry by
//! one call (`super::routes`), its schemas are derived from the types the handlers serialise, and
//! this file holds only what is common to all routes: the header, the bearer scheme and the error
//! answers. Built once, on first use.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "facewatch",
        version = "1",
        description = "Face-recognition checkpoint service. A match is a lead for a human: an alert is \
            verified only after two different officers confirm it.\n\n\
            Every error is `{\"error\": {\"code\", \"message\"}}`. Roles do not nest (`x-role` on each \
            operation): camera (frames), officer (alerts), ops (lists, subjects, policies, cameras), \
            admin (tokens, audit), relay (the central system reading `/v1/events`). No token or a bad \
            one is 401, the wrong role 403.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document: no token"),
        (name = "frames", description = "Cameras posting frames"),
        (name = "alerts", description = "Officers reviewing alerts"),
        (name = "lists", description = "Watch lists, their policies and subjects"),
        (name = "cameras", description = "Pulled and push cameras"),
        (name = "admin", description = "Tokens and the audit log"),
        (name = "events", description = "The local event outbox, for the central system"),
    ),
)]
pub struct ApiDoc;

/// `Authorization: Bearer <token>` (`facewatch token create`, `POST /v1/tokens`).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let doc = super::routes(|r| r).split_for_parts().1;
        doc.to_pretty_json().unwrap_or_else(|e| panic!("the OpenAPI document does not serialise: {e}"))
    })
}

/// An image's bytes, as a request or answer body (`image/jpeg`, `image/png`).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ImageBytes(Vec<u8>);

// The error answers a route may give, named once and listed in each route's `responses(...)`.
// They are never built: the body is `ErrorBody`, made by `Error::into_response`.

/// `bad_request` (a malformed query, body or form field) or `empty_input`.
#[derive(utoipa::IntoResponses)]
#[response(status = 400)]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

/// `unauthorized`: no token, or one that is unknown or revoked.
#[derive(utoipa::IntoResponses)]
#[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"facewatch\"`")))]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

/// `forbidden`: the token's role may not do this.
#[derive(utoipa::IntoResponses)]
#[response(status = 403)]
#[allow(dead_code)]
pub struct Forbidden(ErrorBody);

/// `not_found`.
#[derive(utoipa::IntoResponses)]
#[response(status = 404)]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

/// `payload_too_large`: the body is over `[limits] max_body_bytes` (counted as it arrives).
#[derive(utoipa::IntoResponses)]
#[response(status = 413)]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody);

/// `payload_too_large` (the body is over `[limits] max_body_bytes`, counted as it arrives) or
/// `image_too_large` (over `[limits] max_pixels`, read from the image header before decoding).
#[derive(utoipa::IntoResponses)]
#[response(status = 413)]
#[allow(dead_code)]
pub struct ImageTooLarge(ErrorBody);

/// `unsupported_media_type`: not the content type this route reads.
#[derive(utoipa::IntoResponses)]
#[response(status = 415)]
#[allow(dead_code)]
pub struct UnsupportedMediaType(ErrorBody);

/// `corrupt_image`: the image does not decode.
#[derive(utoipa::IntoResponses)]
#[response(status = 422)]
#[allow(dead_code)]
pub struct CorruptImage(ErrorBody);

/// `too_many_streams`: `[api] sse_max_streams` in all or `sse_max_streams_per_token` are open.
#[derive(utoipa::IntoResponses)]
#[response(status = 429)]
#[allow(dead_code)]
pub struct TooManyStreams(ErrorBody);

/// `overloaded` (a bounded queue is full: retry after `Retry-After` seconds) or `shutting_down`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    headers(("Retry-After" = u64, description = "Seconds to wait (`overloaded` only)"))
)]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);

/// `internal`: the store, the index or a model failed (logged).
#[derive(utoipa::IntoResponses)]
#[response(status = 500)]
#[allow(dead_code)]
pub struct Internal(ErrorBody);
