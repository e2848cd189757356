//! Watch lists, their policies and subjects (role `ops`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::watchlist::ListView;
use crate::watchlist::enroll::{EnrollReport, Examined};
use crate::watchlist::policy::{Policy, PolicyPatch};
use crate::watchlist::store::SubjectInfo;

use super::error::rejection;
use super::openapi::{
    BadRequest, Forbidden, Internal, NotFound, PayloadTooLarge, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::{AppState, Auth, JsonBody};
use crate::access::Action;
use crate::error::{Error, Result};
use crate::inference::Mode;
use crate::vision::quality::QualityGate;

/// Most photos accepted in one enrollment request.
const MAX_PHOTOS: usize = 16;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    name: String,
    /// Policy fields to set (the rest take their defaults).
    #[serde(default)]
    policy: PolicyPatch,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListList {
    lists: Vec<ListView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListDeleted {
    /// The list's name.
    deleted: String,
    /// Templates removed from the store and the index.
    templates_purged: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubjectList {
    subjects: Vec<SubjectInfo>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubjectDeleted {
    list: String,
    /// The subject's id.
    deleted: String,
    /// Templates removed from the store and the index.
    templates_purged: usize,
}

/// The enrollment form (`multipart/form-data`), as `enroll` reads it (a description for
/// clients: the handler reads the parts one by one).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EnrollForm {
    /// The subject's id on the list (new, or one to add photos to).
    subject: String,
    /// A display name for officers.
    name: Option<String>,
    /// One or more photos (JPEG or PNG), at most 16; each gets a verdict.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 16)]
    image: Vec<Vec<u8>>,
}

const LIST: &str = "The watch list's name";
const SUBJECT: &str = "The subject's id on the list";

/// Watch lists with their policies and counts
#[utoipa::path(
    get,
    path = "/v1/lists",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    responses((status = 200, description = "Every watch list", body = ListList), Unauthorized, Forbidden, Internal)
)]
pub async fn lists(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<ListList>> {
    Ok(Json(ListList { lists: s.blocking(move |a| a.watchlists.lists(&who)).await? }))
}

/// Create a watch list
///
/// With the policy fields given; the others take their defaults (the threshold: the model's).
#[utoipa::path(
    post,
    path = "/v1/lists",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    request_body = NewList,
    responses(
        (status = 201, description = "Created", body = ListView),
        BadRequest,
        Unauthorized,
        Forbidden,
        (status = 409, description = "`conflict`: a list of that name exists", body = super::error::ErrorBody),
        PayloadTooLarge,
        UnsupportedMediaType,
        Internal,
    )
)]
pub async fn create_list(
    State(s): State<AppState>,
    Auth(who): Auth,
    body: JsonBody<NewList>,
) -> Result<(StatusCode, Json<ListView>)> {
    who.may(Action::CreateLists)?;
    let new = s.json(body)?;
    let list = s.blocking(move |a| a.watchlists.create_list(&who, &new.name, &new.policy)).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

/// One watch list
#[utoipa::path(
    get,
    path = "/v1/lists/{list}",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST)),
    responses((status = 200, description = "The list", body = ListView), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn get_list(State(s): State<AppState>, Auth(who): Auth, Path(list): Path<String>) -> Result<Json<ListView>> {
    Ok(Json(s.blocking(move |a| a.watchlists.list(&who, &list)).await?))
}

/// Delete a list with its subjects, templates and reference images
///
/// Each subject removed is announced with a `subject.removed` event; audited.
#[utoipa::path(
    delete,
    path = "/v1/lists/{list}",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST)),
    responses((status = 200, description = "Deleted", body = ListDeleted), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn delete_list(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(list): Path<String>,
) -> Result<Json<ListDeleted>> {
    let l = list.clone();
    let n = s.blocking(move |a| a.watchlists.delete_list(&who, &l)).await?;
    Ok(Json(ListDeleted { deleted: list, templates_purged: n }))
}

/// The list's policy
#[utoipa::path(
    get,
    path = "/v1/lists/{list}/policy",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST)),
    responses((status = 200, description = "The policy in force", body = Policy), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn get_policy(State(s): State<AppState>, Auth(who): Auth, Path(list): Path<String>) -> Result<Json<Policy>> {
    Ok(Json(s.blocking(move |a| a.watchlists.policy(&who, &list)).await?))
}

/// Set policy fields (the others keep their values)
///
/// Audited with the old and the new policy; announced with a `policy.changed` event.
#[utoipa::path(
    put,
    path = "/v1/lists/{list}/policy",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST)),
    request_body = PolicyPatch,
    responses(
        (status = 200, description = "The policy now in force", body = Policy),
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        PayloadTooLarge,
        UnsupportedMediaType,
        Internal,
    )
)]
pub async fn put_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(list): Path<String>,
    body: JsonBody<PolicyPatch>,
) -> Result<Json<Policy>> {
    who.may(Action::ChangePolicies)?;
    let patch = s.json(body)?;
    Ok(Json(s.blocking(move |a| a.watchlists.set_policy(&who, &list, &patch)).await?))
}

/// Subjects of a list (template ids, no biometric data)
#[utoipa::path(
    get,
    path = "/v1/lists/{list}/subjects",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST)),
    responses((status = 200, description = "The list's subjects", body = SubjectList), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn subjects(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(list): Path<String>,
) -> Result<Json<SubjectList>> {
    Ok(Json(SubjectList { subjects: s.blocking(move |a| a.watchlists.subjects(&who, &list)).await? }))
}

/// One subject (template ids, no biometric data)
#[utoipa::path(
    get,
    path = "/v1/lists/{list}/subjects/{subject}",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST), ("subject" = String, Path, description = SUBJECT)),
    responses((status = 200, description = "The subject", body = SubjectInfo), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn subject(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path((list, subject)): Path<(String, String)>,
) -> Result<Json<SubjectInfo>> {
    Ok(Json(s.blocking(move |a| a.watchlists.subject(&who, &list, &subject)).await?))
}

/// Delete a subject: its templates leave the store and the index, its reference images the disk
///
/// Audited; announced with a `subject.removed` event.
#[utoipa::path(
    delete,
    path = "/v1/lists/{list}/subjects/{subject}",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST), ("subject" = String, Path, description = SUBJECT)),
    responses((status = 200, description = "Deleted", body = SubjectDeleted), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn delete_subject(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path((list, subject)): Path<(String, String)>,
) -> Result<Json<SubjectDeleted>> {
    let (l, sub) = (list.clone(), subject.clone());
    let n = s.blocking(move |a| a.watchlists.delete_subject(&who, &l, &sub)).await?;
    Ok(Json(SubjectDeleted { list, deleted: subject, templates_purged: n }))
}

/// Enroll a subject from one or more photos; a quality verdict for each
///
/// Multipart form: `subject` (required), `name` (optional), one or more `image` files (at most
/// 16). Each photo must show exactly one clear, frontal, well-lit face; the accepted ones become
/// templates (422 `enrollment_refused` when none is). Audited; announced with `subject.enrolled`.
/// Uploads are read one body at a time per slot (`[limits] max_concurrent_uploads`, 503 beyond).
#[utoipa::path(
    post,
    path = "/v1/lists/{list}/subjects",
    tag = "lists",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    params(("list" = String, Path, description = LIST)),
    request_body(content = EnrollForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Enrolled: a verdict for each photo", body = EnrollReport),
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        PayloadTooLarge,
        UnsupportedMediaType,
        (
            status = 422,
            description = "`enrollment_refused`: no photo was usable (the message says why for each)",
            body = super::error::ErrorBody
        ),
        Internal,
        Unavailable,
    )
)]
pub async fn enroll(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(list): Path<String>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<EnrollReport>)> {
    who.may(Action::EnrollSubjects)?;
    let mut form = form.map_err(|e| rejection(e.status(), e.body_text(), s.body_limit()))?;
    // Read the whole form (bounded by the body limit) before answering: a client still sending
    // its upload when the answer comes and the connection closes sees a broken pipe, not the error.
    let mut parts = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| rejection(e.status(), e.body_text(), s.body_limit()))? {
        let field_name = field.name().unwrap_or("").to_string();
        let file = field.file_name().map(str::to_string);
        let ct = field.content_type().map(str::to_string);
        let data = field.bytes().await.map_err(|e| rejection(e.status(), e.body_text(), s.body_limit()))?;
        parts.push((field_name, file, ct, data));
    }
    s.app.watchlists.require_list(&list)?;
    let (mut subject, mut name, mut photos): (Option<String>, Option<String>, Vec<(String, Bytes)>) =
        (None, None, Vec::new());
    for (field_name, file, ct, data) in parts {
        match field_name.as_str() {
            "subject" => subject = Some(text(&data, "subject")?),
            "name" => name = Some(text(&data, "name")?),
            "image" => {
                if let Some(ct) = ct.as_deref()
                    && !matches!(ct, "image/jpeg" | "image/jpg" | "image/png" | "application/octet-stream")
                {
                    return Err(Error::UnsupportedMediaType(format!("image part {ct}: send image/jpeg or image/png")));
                }
                if photos.len() == MAX_PHOTOS {
                    return Err(Error::BadRequest(format!("at most {MAX_PHOTOS} images per request")));
                }
                photos.push((file.unwrap_or_else(|| format!("image-{}", photos.len() + 1)), data));
            }
            other => return Err(Error::BadRequest(format!("unknown form field {other:?}"))),
        }
    }
    let subject = subject.ok_or_else(|| Error::BadRequest("form field `subject` is required".into()))?;
    if photos.is_empty() {
        return Err(Error::BadRequest("at least one `image` file is required".into()));
    }
    // Queue every photo first so the embedder can batch them, then collect the results.
    let mut pending = Vec::new();
    for (file, data) in photos {
        let rx = s.app.inference.submit(data, Mode::Enroll(QualityGate::enrollment()))?;
        pending.push((file, rx));
    }
    let mut analysed = Vec::new();
    for (file, rx) in pending {
        analysed.push((file, rx.await.map_err(|_| Error::ShuttingDown).and_then(|r| r)));
    }
    let report = s
        .blocking(move |a| {
            let examined = analysed.iter().map(|(image, res)| {
                let x = res.as_ref().map_err(|e| e.to_string()).map(|an| Examined {
                    image: &an.image,
                    face: an.faces.first(),
                    refused: an.refused.as_ref(),
                });
                (image.clone(), x)
            });
            a.watchlists.enroll(&who, &list, &subject, name.as_deref(), "api", examined)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

fn text(data: &[u8], field: &str) -> Result<String> {
    let s = std::str::from_utf8(data).map_err(|_| Error::BadRequest(format!("form field `{field}` is not UTF-8")))?;
    Ok(s.trim().to_string())
}
