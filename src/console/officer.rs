//! The officer console: the queue of alerts under review (newest first) and the selected alert,
//! its live crop beside the enrolled photo, the numbers behind it, its history, and the review
//! form. Plain links and forms: it works without JavaScript; `assets/console.js` adds live
//! updates ([`live`](crate::console::live)), keys, shift sounds and the idle blur.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::access::Principal;
use crate::alerts::store::Review;
use crate::alerts::{AlertView, Decision, Status};
use crate::api::AppState;
use crate::console::csrf::Checked;
use crate::console::layout::{self, csrf_field};
use crate::console::page::PageResult;
use crate::console::session::Session;
use crate::error::Error;

/// Alerts the queue shows at most (the oldest beyond it wait for the next page load).
pub const QUEUE_LEN: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(queue_page))
        .route("/alerts/live", get(crate::console::live::stream))
        .route("/alerts/{id}", get(alert_page))
        .route("/alerts/{id}/card", get(card_fragment))
        .route("/alerts/{id}/review", post(review))
        .route("/alerts/{id}/crop", get(crop))
        .route("/alerts/{id}/reference", get(reference))
}

/// "0.962" (scores and thresholds are cosine similarities; three decimals tell them apart).
fn num(x: f32) -> String {
    format!("{x:.3}")
}

/// How long ago, in words an officer reads at a glance.
fn age(captured_at: &str, now_ms: i64) -> String {
    let Some(t) = crate::clock::parse_rfc3339(captured_at) else { return String::new() };
    let s = now_ms.saturating_sub(t).max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h {} min ago", s / 3600, s % 3600 / 60),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn title_of(v: &AlertView) -> String {
    match &v.alert.subject_name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => v.alert.subject.clone(),
    }
}

fn status_text(v: &AlertView) -> String {
    let confirmations = v.alert.reviews.iter().filter(|r| r.decision == Decision::Confirm).count();
    match v.alert.status {
        Status::Open => "open".into(),
        Status::Confirmed => format!("confirmed {confirmations} of 2"),
        Status::Verified => "verified".into(),
        Status::Dismissed => "dismissed".into(),
    }
}

/// One entry of the queue (also sent by the live stream, so both render alike).
pub fn queue_item(v: &AlertView, selected: Option<&str>, now_ms: i64) -> Markup {
    let a = &v.alert;
    let current = selected.is_some_and(|s| s == a.id).then_some("true");
    html! {
        li data-id=(a.id) data-severity=(a.severity.as_str()) aria-current=[current] {
            a href={ "/alerts/" (a.id) } {
                span class={ "sev sev-" (a.severity.as_str()) } { (a.severity.as_str()) }
                span.name { (title_of(v)) }
                span.score { (num(a.score)) " / " (num(a.threshold)) }
                span.meta {
                    (a.list) " · " (a.camera) " · " (age(&a.captured_at, now_ms)) " · "
                    span.status { (status_text(v)) }
                }
            }
        }
    }
}

fn queue(views: &[AlertView], selected: Option<&str>, now_ms: i64) -> Markup {
    html! {
        section aria-labelledby="queue-title" {
            h2 #queue-title { "Under review " span.muted #queue-count { "(" (views.len()) ")" } }
            ol.queue #queue {
                @for v in views {
                    (queue_item(v, selected, now_ms))
                }
            }
            @if views.is_empty() {
                p.empty #queue-empty { "No alert waits for review." }
            }
        }
    }
}

fn history(reviews: &[Review]) -> Markup {
    html! {
        h3 { "Review history" }
        @if reviews.is_empty() {
            p.muted { "Not reviewed yet." }
        } @else {
            ol.history {
                @for r in reviews {
                    li {
                        (r.at) " · " strong { (r.officer) } " "
                        (if r.decision == Decision::Confirm { "confirmed" } else { "dismissed" })
                        @if let Some(n) = r.note.as_deref().filter(|n| !n.is_empty()) {
                            ": " q.note { (n) }
                        }
                    }
                }
            }
        }
    }
}

/// What the card says about where the review stands, for this officer.
fn standing(v: &AlertView, me: &Principal) -> Markup {
    let confirmed_by: Vec<&Review> = v.alert.reviews.iter().filter(|r| r.decision == Decision::Confirm).collect();
    let mine = confirmed_by.iter().any(|r| r.principal == me.principal);
    html! {
        @match v.alert.status {
            Status::Confirmed if mine => {
                p.awaits role="status" { "You confirmed this alert. It awaits a different officer to verify it." }
            }
            Status::Confirmed => {
                p.awaits role="status" {
                    "Confirmed by " (confirmed_by.first().map(|r| r.officer.as_str()).unwrap_or("an officer"))
                    ". It awaits a different officer: your confirmation verifies it."
                }
            }
            Status::Verified => { p.final role="status" { "Verified by two officers. Final." } }
            Status::Dismissed => { p.final role="status" { "Dismissed. Final." } }
            Status::Open => {}
        }
    }
}

/// The selected alert: both faces at the same size, the numbers, the history and the form.
pub fn card(v: &AlertView, me: &Session, message: Option<&str>, now_ms: i64) -> Markup {
    let a = &v.alert;
    let q = a.quality.as_ref();
    let my_confirmation =
        a.reviews.iter().any(|r| r.decision == Decision::Confirm && r.principal == me.principal.principal);
    let open = matches!(a.status, Status::Open | Status::Confirmed);
    html! {
        article.card #card data-id=(a.id) aria-labelledby="card-title" {
            h2 #card-title {
                span class={ "sev sev-" (a.severity.as_str()) } { (a.severity.as_str()) } " "
                (title_of(v))
            }
            p.idle-note { "Faces are blurred while the console is idle: move the mouse or press a key." }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
            }
            (standing(v, &me.principal))
            div.card-top {
                div.faces {
                    figure {
                        @if a.has_crop {
                            img src={ "/alerts/" (a.id) "/crop" } alt={ "Live face from camera " (a.camera) };
                        } @else {
                            div.noimg { "Live face deleted (retention)" }
                        }
                        figcaption { "Live: camera " (a.camera) }
                    }
                    figure {
                        @if v.has_reference {
                            img src={ "/alerts/" (a.id) "/reference" } alt={ "Enrolled photo of " (title_of(v)) };
                        } @else {
                            div.noimg { "Enrolled photo no longer available" }
                        }
                        figcaption { "Enrolled: list " (a.list) }
                    }
                }
                dl.facts {
                    dt { "Score" }
                    dd {
                        span.score { (num(a.score)) } " (list threshold " (num(a.threshold)) ", "
                        (format!("{:+.3}", a.score - a.threshold)) ")"
                    }
                    dt { "Face size" }
                    dd {
                        @if let Some(q) = q {
                            (format!("{:.0}", q.measures.face_px)) " px (eyes " (format!("{:.0}", q.measures.eye_distance_px)) " px apart)"
                        } @else { "unknown" }
                    }
                    dt { "Quality" }
                    dd {
                        @if let Some(q) = q {
                            (format!("{:.2}", q.overall)) " of 1 · sharpness " (format!("{:.0}", q.measures.sharpness))
                            " · brightness " (format!("{:.0}", q.measures.brightness))
                            " · yaw " (format!("{:.0}", q.measures.yaw_deg)) "° · pitch " (format!("{:.0}", q.measures.pitch_deg)) "°"
                        } @else { "unknown" }
                    }
                    dt { "List" } dd { (a.list) " · severity " (a.severity.as_str()) }
                    dt { "Subject" }
                    dd {
                        (a.subject)
                        @if let Some(n) = &a.subject_name { " · " (n) }
                    }
                    dt { "Camera" } dd { (a.camera) " at " (a.site) }
                    dt { "Captured" } dd { (a.captured_at) " (" (age(&a.captured_at, now_ms)) ")" }
                    dt { "Times seen" } dd { (a.sightings) }
                    dt { "Status" } dd { (status_text(v)) }
                }
            }
            @if open {
                form.review method="post" action={ "/alerts/" (a.id) "/review" } {
                    (csrf_field(me))
                    label for="note" { "Note (why; seen by the second officer and the audit)" }
                    textarea #note name="note" maxlength="2000" {}
                    div.buttons {
                        @if !my_confirmation {
                            button.primary #confirm type="submit" name="decision" value="confirm" { "Confirm (c)" }
                        }
                        button.danger #dismiss type="submit" name="decision" value="dismiss" { "Dismiss (d)" }
                    }
                }
            }
            (history(&a.reviews))
        }
    }
}

fn help() -> Markup {
    html! {
        dialog.help #help aria-labelledby="help-title" {
            h2 #help-title { "Keys" }
            dl.facts {
                dt { kbd { "j" } " / " kbd { "k" } } dd { "next / previous alert in the queue" }
                dt { kbd { "Enter" } } dd { "open the highlighted alert" }
                dt { kbd { "c" } " / " kbd { "d" } } dd { "go to Confirm / Dismiss (Enter submits)" }
                dt { kbd { "Esc" } } dd { "back to the queue, close this help" }
                dt { kbd { "?" } } dd { "this help" }
            }
            form method="dialog" { button type="submit" { "Close" } }
        }
    }
}

fn console(
    me: &Session,
    views: &[AlertView],
    selected: Option<Markup>,
    selected_id: Option<&str>,
    blur_after_ms: u64,
) -> Markup {
    let now = crate::clock::now_ms();
    let body = html! {
        div.toolbar {
            h1 { "Alerts" }
            span.live #live data-state="static" role="status" { "Live updates need JavaScript: reload to refresh" }
            button #shift type="button" aria-pressed="false" { "Start shift (sound on)" }
            button #help-button type="button" aria-keyshortcuts="?" { "Keys (?)" }
        }
        div.sr-only #announce aria-live="assertive" {}
        div.console data-officer-console data-selected=[selected_id] data-blur-ms=(blur_after_ms) {
            (queue(views, selected_id, now))
            @if let Some(card) = selected {
                (card)
            } @else {
                section.card #card {
                    p.muted { "Select an alert (j / k, then Enter)." }
                }
            }
        }
        (help())
    };
    layout::page("Alerts", Some(me), body)
}

async fn queue_views(s: &AppState, me: &Session) -> PageResult<Vec<AlertView>> {
    let who = me.caller();
    Ok(s.blocking(move |a| a.alerts.under_review(&who, QUEUE_LEN)).await?)
}

/// `GET /alerts`: the queue.
async fn queue_page(State(s): State<AppState>, me: Session) -> PageResult<Html<String>> {
    let views = queue_views(&s, &me).await?;
    Ok(Html(console(&me, &views, None, None, s.app.sessions.blur_after_ms()).into_string()))
}

/// Opens an alert (recording the first view per officer in the audit log).
async fn open(s: &AppState, me: &Session, id: String) -> PageResult<AlertView> {
    let who = me.caller();
    Ok(s.blocking(move |a| a.alerts.open_for_review(&who, &id)).await?)
}

async fn render_alert(s: &AppState, me: &Session, id: String, message: Option<&str>) -> PageResult<String> {
    let v = open(s, me, id).await?;
    let views = queue_views(s, me).await?;
    let card = card(&v, me, message, crate::clock::now_ms());
    Ok(console(me, &views, Some(card), Some(&v.alert.id), s.app.sessions.blur_after_ms()).into_string())
}

/// `GET /alerts/{id}`: the queue and the alert.
async fn alert_page(State(s): State<AppState>, me: Session, Path(id): Path<String>) -> PageResult<Html<String>> {
    Ok(Html(render_alert(&s, &me, id, None).await?))
}

/// `GET /alerts/{id}/card`: the card alone, for the live view to refresh the selected alert.
async fn card_fragment(State(s): State<AppState>, me: Session, Path(id): Path<String>) -> PageResult<Html<String>> {
    let v = open(&s, &me, id).await?;
    Ok(Html(card(&v, &me, None, crate::clock::now_ms()).into_string()))
}

#[derive(Deserialize)]
pub struct ReviewForm {
    decision: Decision,
    note: Option<String>,
}

/// `POST /alerts/{id}/review`: one alert, one decision (there is no bulk review). A refusal
/// the officer can act on (already confirmed by them, reviewed meanwhile) is shown on the card.
async fn review(State(s): State<AppState>, Path(id): Path<String>, f: Checked<ReviewForm>) -> PageResult<Response> {
    let Checked { session: me, form } = f;
    let who = me.caller();
    let note = form.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let target = id.clone();
    let done = s.blocking(move |a| a.alerts.review(&who, &target, form.decision, note.as_deref())).await;
    match done {
        Ok(v) => Ok(Redirect::to(&format!("/alerts/{}", v.alert.id)).into_response()),
        Err(e @ (Error::Conflict(_) | Error::BadRequest(_))) => {
            let status = if matches!(e, Error::Conflict(_)) { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
            let page = render_alert(&s, &me, id, Some(&e.to_string())).await?;
            Ok((status, Html(page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /alerts/{id}/crop`: the live face, through the session, never cached.
async fn crop(State(s): State<AppState>, me: Session, Path(id): Path<String>) -> PageResult<Response> {
    let who = me.caller();
    Ok(crate::api::alerts::jpeg(s.blocking(move |a| a.alerts.crop_jpeg(&who, &id)).await?))
}

/// `GET /alerts/{id}/reference`: the enrolled photo the alert was raised against.
async fn reference(State(s): State<AppState>, me: Session, Path(id): Path<String>) -> PageResult<Response> {
    let who = me.caller();
    Ok(crate::api::alerts::jpeg(s.blocking(move |a| a.alerts.reference_jpeg(&who, &id)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;
    use crate::alerts::Alert;

    fn officer(principal: &str) -> Session {
        Session {
            principal: Principal {
                token_id: 1,
                name: "Ann".into(),
                role: Role::Officer,
                principal: principal.into(),
                cameras: vec![],
            },
            csrf: "tok".into(),
            digest: [0; 32],
        }
    }

    fn view(name: &str, note: &str, status: Status) -> AlertView {
        AlertView {
            alert: Alert {
                subject_name: Some(name.into()),
                score: 0.9621,
                sightings: 4,
                reviews: vec![Review {
                    officer: "Bob <b>".into(),
                    principal: "p-bob".into(),
                    decision: Decision::Confirm,
                    note: Some(note.into()),
                    at: "2026-11-30T12:01:00Z".into(),
                }],
                ..Alert::test("a1", status)
            },
            has_reference: true,
        }
    }

    const NAME: &str = "<img src=x onerror=alert(1)> O'Brien & \"Sons\"";
    const NOTE: &str = "</q><script>steal()</script>";

    #[test]
    fn subject_names_and_notes_are_escaped() {
        let now = crate::clock::parse_rfc3339("2026-11-30T12:03:00Z").unwrap();
        let v = view(NAME, NOTE, Status::Confirmed);
        let html = card(&v, &officer("p-ann"), Some("<i>msg</i>"), now).into_string()
            + &queue_item(&v, Some("a1"), now).into_string();
        assert!(!html.contains("<img src=x") && !html.contains("<script>") && !html.contains("<i>msg"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; O'Brien &amp; &quot;Sons&quot;"), "{html}");
        assert!(html.contains("&lt;/q&gt;&lt;script&gt;steal()&lt;/script&gt;"), "{html}");
        assert!(html.contains("Bob &lt;b&gt;"), "{html}");
        // The numbers, as numbers, and how long ago.
        assert!(html.contains("0.962") && html.contains("0.940") && html.contains("+0.022"), "{html}");
        assert!(html.contains("3 min ago") && html.contains("Times seen"), "{html}");
        assert!(html.contains(r#"aria-current="true""#), "{html}");
    }

    #[test]
    fn the_card_says_who_must_confirm_next() {
        let now = 0;
        let v = view("N", "n", Status::Confirmed);
        let other = card(&v, &officer("p-ann"), None, now).into_string();
        assert!(other.contains("awaits a different officer") && other.contains(r#"value="confirm""#), "{other}");
        let same = card(&v, &officer("p-bob"), None, now).into_string();
        assert!(same.contains("You confirmed this alert"), "{same}");
        assert!(!same.contains(r#"value="confirm""#), "the confirming officer is not offered a second confirm");
        assert!(same.contains(r#"value="dismiss""#));
        let done = card(&view("N", "n", Status::Verified), &officer("p-ann"), None, now).into_string();
        assert!(!done.contains("<form"), "a final alert has no review form");
    }
}
