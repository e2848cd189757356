//! Watch lists, their policies and subjects (role `ops`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::watchlist::ListView;
use crate::watchlist::enroll::{EnrollReport, Examined};
use crate::watchlist::policy::{Policy, PolicyPatch};

use super::error::rejection;
use super::{AppState, Auth, JsonBody};
use crate::access::Action;
use crate::error::{Error, Result};
use crate::inference::Mode;
use crate::vision::quality::QualityGate;

/// Most photos accepted in one enrollment request.
const MAX_PHOTOS: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    name: String,
    /// Policy fields to set (the rest take their defaults).
    #[serde(default)]
    policy: PolicyPatch,
}

pub async fn lists(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Value>> {
    Ok(Json(json!({"lists": s.blocking(move |a| a.watchlists.lists(&who)).await?})))
}

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

pub async fn get_list(State(s): State<AppState>, Auth(who): Auth, Path(list): Path<String>) -> Result<Json<ListView>> {
    Ok(Json(s.blocking(move |a| a.watchlists.list(&who, &list)).await?))
}

pub async fn delete_list(State(s): State<AppState>, Auth(who): Auth, Path(list): Path<String>) -> Result<Json<Value>> {
    let l = list.clone();
    let n = s.blocking(move |a| a.watchlists.delete_list(&who, &l)).await?;
    Ok(Json(json!({"deleted": list, "templates_purged": n})))
}

pub async fn get_policy(State(s): State<AppState>, Auth(who): Auth, Path(list): Path<String>) -> Result<Json<Policy>> {
    Ok(Json(s.blocking(move |a| a.watchlists.policy(&who, &list)).await?))
}

/// Sets the policy fields given (the others keep their values); audited with old and new.
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

pub async fn subjects(State(s): State<AppState>, Auth(who): Auth, Path(list): Path<String>) -> Result<Json<Value>> {
    Ok(Json(json!({"subjects": s.blocking(move |a| a.watchlists.subjects(&who, &list)).await?})))
}

pub async fn subject(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path((list, subject)): Path<(String, String)>,
) -> Result<Json<Value>> {
    Ok(Json(json!(s.blocking(move |a| a.watchlists.subject(&who, &list, &subject)).await?)))
}

pub async fn delete_subject(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path((list, subject)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let (l, sub) = (list.clone(), subject.clone());
    let n = s.blocking(move |a| a.watchlists.delete_subject(&who, &l, &sub)).await?;
    Ok(Json(json!({"list": list, "deleted": subject, "templates_purged": n})))
}

/// Multipart form: `subject` (required), `name` (optional), one or more `image` files.
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
