//! Ops pages: the watch lists, and per list its policy with what a change would cost. The
//! threshold sits beside the latest evaluation's DET curve and score histograms (SVG routes,
//! `<img>`: nothing inline for the CSP to refuse) with the expected FPIR and FNIR, and beside how
//! officers judged the alerts at and above each threshold. A change is previewed first, then
//! applied through [`Watchlists::set_policy`](crate::watchlist::Watchlists::set_policy), which
//! audits it as the API's does.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::alerts::ReviewRate;
use crate::api::AppState;
use crate::console::csrf::Checked;
use crate::console::{PageResult, Session, layout};
use crate::error::Error;
use crate::eval::report::OperatingPoint;
use crate::tuning::{Chart, Preview};
use crate::watchlist::ListView;
use crate::watchlist::policy::{Policy, PolicyPatch, Severity};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ops", get(lists))
        .route("/ops/lists/{list}", get(list))
        .route("/ops/lists/{list}/preview", post(preview))
        .route("/ops/lists/{list}/policy", post(apply))
        .route("/ops/lists/{list}/det.svg", get(det_svg))
        .route("/ops/lists/{list}/histogram.svg", get(histogram_svg))
        .route("/ops/status", get(super::status::show))
}

/// A list name as one path segment (names may hold spaces, apostrophes and any letter).
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn list_url(name: &str) -> String {
    format!("/ops/lists/{}", segment(name))
}

pub fn percent(r: f64) -> String {
    format!("{:.1} %", r * 100.0)
}

fn rate(r: Option<f64>) -> String {
    r.map(percent).unwrap_or_else(|| "-".into())
}

/// `GET /ops`: every list with its policy's headline and the latest evaluation.
async fn lists(State(s): State<AppState>, who: Session) -> PageResult<Html<String>> {
    let caller = who.caller();
    let (views, report) = s
        .blocking(move |a| {
            let views = a.watchlists.lists(&caller)?;
            Ok((views, a.tuning.report(&caller)?))
        })
        .await?;
    let body = html! {
        h1 { "Watch lists and policies" }
        p { a href="/ops/status" { "Cameras, queues and the outbox" } }
        @if views.is_empty() {
            p { "No watch list yet (create one with the API or " code { "facewatch enroll" } ")." }
        } @else {
            table.plain {
                thead { tr { th { "List" } th { "Subjects" } th { "Threshold" } th { "Severity" } th { "Crops shared" } } }
                tbody {
                    @for l in &views {
                        tr {
                            td { a href=(list_url(&l.name)) { (l.name) } }
                            td { (l.subjects) }
                            td { (l.policy.threshold) }
                            td { (l.policy.severity.as_str()) }
                            td { (if l.policy.share_crops { "yes" } else { "no" }) }
                        }
                    }
                }
            }
        }
        h2 { "Latest evaluation" }
        @match &report {
            Some(r) => p {
                "Run " (r.created_at) " on " code { (r.source) } " (" (r.images) " photos, embedder " (r.embedder) "): "
                "threshold " (format!("{:.3}", r.recommended.threshold)) " keeps false alarms at "
                (percent(r.recommended.fpir)) " (target " (percent(r.target_fpir)) ") and misses "
                (percent(r.recommended.fnir)) " of enrolled people."
            },
            None => p { "None yet: run " code { "facewatch eval FACES_DIR" } " on this data folder." },
        }
    };
    Ok(Html(layout::page("Watch lists", Some(&who), body).into_string()))
}

/// Everything the list page shows besides the form.
struct Tuning {
    view: ListView,
    rates: Vec<ReviewRate>,
    /// The evaluation at the threshold in force, or why there is none.
    expected: Result<OperatingPoint, String>,
}

#[derive(Deserialize)]
struct Shown {
    applied: Option<String>,
}

/// `GET /ops/lists/{list}`: the policy form beside what the threshold costs.
async fn list(
    State(s): State<AppState>,
    who: Session,
    Path(name): Path<String>,
    shown: Result<Query<Shown>, QueryRejection>,
) -> PageResult<Html<String>> {
    let applied = shown.is_ok_and(|Query(q)| q.applied.is_some());
    let caller = who.caller();
    let n = name.clone();
    let t = s
        .blocking(move |a| {
            let view = a.watchlists.list(&caller, &n)?;
            let rates = a.tuning.review_rates(&caller, &n, &[view.policy.threshold])?;
            let expected = a.tuning.applicable_report(&caller)?.map(|r| r.scores.at(view.policy.threshold));
            Ok(Tuning { view, rates, expected })
        })
        .await?;
    let p = &t.view.policy;
    let body = html! {
        p { a href="/ops" { "All lists" } }
        h1 { "List " (t.view.name) }
        @if applied {
            p.notice role="status" { "Policy applied (recorded in the audit log)." }
        }
        p { (t.view.subjects) " subjects, " (t.view.templates) " templates." }
        div.tuning {
            section {
                h2 { "Policy" }
                (policy_form(&who, &t.view.name, p, "preview", "Preview the change"))
            }
            section {
                h2 { "What threshold " (p.threshold) " costs" }
                (expected(&t.expected, None))
                (charts(&t.view.name, p.threshold, t.expected.is_ok()))
            }
        }
        h2 { "How officers judged the alerts" }
        (review_table(&t.rates, p.threshold, None))
    };
    Ok(Html(layout::page(&format!("List {name}"), Some(&who), body).into_string()))
}

/// The expected rates at a threshold (and at the one in force, when previewing another).
fn expected(e: &Result<OperatingPoint, String>, old: Option<&OperatingPoint>) -> Markup {
    html! {
        @match e {
            Ok(at) => dl.facts {
                dt { "Expected false alarms (FPIR)" }
                dd { (percent(at.fpir)) @if let Some(o) = old { " (now " (percent(o.fpir)) ")" } }
                dt { "Expected missed matches (FNIR)" }
                dd { (percent(at.fnir)) @if let Some(o) = old { " (now " (percent(o.fnir)) ")" } }
            },
            Err(why) => p.muted { (why) },
        }
    }
}

fn charts(list: &str, threshold: f32, have: bool) -> Markup {
    let q = format!("?threshold={threshold}");
    html! {
        @if have {
            figure {
                img src=(format!("{}/det.svg{q}", list_url(list))) width="480" height="300"
                    alt=(format!("DET curve of the latest evaluation, threshold {threshold} marked"));
                figcaption { "False alarms against missed matches as the threshold moves; the dot is threshold " (threshold) "." }
            }
            figure {
                img src=(format!("{}/histogram.svg{q}", list_url(list))) width="480" height="300"
                    alt=(format!("Score histograms of enrolled and not enrolled people, threshold {threshold} marked"));
                figcaption { "Top-1 scores of enrolled people (mated) and of people on no list (non-mated)." }
            }
        }
    }
}

/// Confirmed and dismissed alerts at and above each threshold; the rows of `current` and `new`
/// say so in words.
fn review_table(rates: &[ReviewRate], current: f32, new: Option<f32>) -> Markup {
    let none = rates.iter().all(|r| r.reviewed() == 0);
    html! {
        p { "Reviewed alerts scored at or above each threshold: confirmed ones were the person on the list, "
            "dismissed ones were not. Alerts are only raised above the threshold in force, so lower "
            "thresholds are judged by the evaluation alone." }
        @if none {
            p.muted { "No alert of this list has been reviewed yet." }
        } @else {
            table.plain {
                thead { tr { th { "Threshold" } th { "Reviewed" } th { "Confirmed" } th { "Dismissed" } th { "Confirmed share" } } }
                tbody {
                    @for r in rates {
                        tr {
                            td {
                                (format!("{:.2}", r.threshold))
                                @if r.threshold == current { " (in force)" }
                                @if Some(r.threshold) == new { " (new)" }
                            }
                            td { (r.reviewed()) }
                            td { (r.confirmed) }
                            td { (r.dismissed) }
                            td { (rate(r.confirm_rate())) }
                        }
                    }
                }
            }
        }
    }
}

/// One line on the reviewed alerts at or above a threshold.
fn reviews(r: &ReviewRate) -> String {
    match r.confirm_rate() {
        None => "none reviewed".into(),
        Some(c) => format!("{} confirmed, {} dismissed ({} confirmed)", r.confirmed, r.dismissed, percent(c)),
    }
}

/// The policy form; `action` is `preview` (first step) or `policy` (apply, hidden fields).
fn policy_form(who: &Session, list: &str, p: &Policy, action: &str, submit: &str) -> Markup {
    let to = format!("{}/{action}", list_url(list));
    let hidden = action == "policy";
    let field = |name: &str, label: &str, value: String, step: &str, min: &str, max: &str| -> Markup {
        html! {
            @if hidden {
                input type="hidden" name=(name) value=(value);
            } @else {
                label for=(name) { (label) }
                input id=(name) name=(name) type="number" value=(value) step=(step) min=(min) max=(max) required;
            }
        }
    };
    html! {
        form.policy method="post" action=(to) {
            (layout::csrf_field(who))
            (field("threshold", "Threshold (cosine, a frame)", p.threshold.to_string(), "0.001", "-1", "1"))
            (field("track_threshold", "Track threshold (a tracked pass)", p.track_threshold.to_string(), "0.001", "-1", "1"))
            (field("min_face_px", "Smallest face (pixels)", p.min_face_px.to_string(), "1", "0", "10000"))
            (field("min_quality", "Lowest quality (0-1)", p.min_quality.to_string(), "0.01", "0", "1"))
            (field("cooldown_secs", "Cooldown (seconds)", p.cooldown_secs.to_string(), "1", "0", "86400"))
            (field("retention_days", "Keep face images (days)", p.retention_days.to_string(), "1", "0", "3650"))
            @if hidden {
                input type="hidden" name="severity" value=(p.severity.as_str());
                input type="hidden" name="share_crops" value=(p.share_crops);
            } @else {
                label for="severity" { "Severity" }
                select id="severity" name="severity" {
                    @for s in [Severity::Low, Severity::Medium, Severity::High, Severity::Critical] {
                        option value=(s.as_str()) selected[s == p.severity] { (s.as_str()) }
                    }
                }
                label for="share_crops" { "Send face crops to the central system" }
                select id="share_crops" name="share_crops" {
                    option value="false" selected[!p.share_crops] { "no" }
                    option value="true" selected[p.share_crops] { "yes" }
                }
            }
            button type="submit" { (submit) }
        }
    }
}

/// The form's fields: every one of them (a form always sends the whole policy).
#[derive(Debug, Deserialize)]
struct PolicyForm {
    threshold: f32,
    track_threshold: f32,
    min_face_px: f32,
    min_quality: f32,
    severity: Severity,
    cooldown_secs: u32,
    retention_days: u32,
    share_crops: bool,
}

impl From<PolicyForm> for PolicyPatch {
    fn from(f: PolicyForm) -> Self {
        PolicyPatch {
            threshold: Some(f.threshold),
            track_threshold: Some(f.track_threshold),
            min_face_px: Some(f.min_face_px),
            min_quality: Some(f.min_quality),
            severity: Some(f.severity),
            cooldown_secs: Some(f.cooldown_secs),
            retention_days: Some(f.retention_days),
            share_crops: Some(f.share_crops),
        }
    }
}

/// `POST /ops/lists/{list}/preview`: what the change would do; nothing is changed.
async fn preview(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Checked { session: who, form }: Checked<PolicyForm>,
) -> PageResult<Html<String>> {
    let caller = who.caller();
    let patch = PolicyPatch::from(form);
    let n = name.clone();
    let (p, rates) = s
        .blocking(move |a| {
            let p = a.tuning.preview(&caller, &n, &patch)?;
            let rates = a.tuning.review_rates(&caller, &n, &[p.old.threshold, p.new.threshold])?;
            Ok((p, rates))
        })
        .await?;
    Ok(Html(layout::page(&format!("Preview: list {name}"), Some(&who), preview_page(&who, &p, &rates)).into_string()))
}

fn preview_page(who: &Session, p: &Preview, rates: &[ReviewRate]) -> Markup {
    let exp = p.expected.as_ref().map(|e| e.new).ok_or_else(|| p.expected_note.clone().unwrap_or_default());
    html! {
        p { a href=(list_url(&p.list)) { "Back to list " (p.list) " (nothing changed)" } }
        h1 { "Preview: list " (p.list) }
        @if p.is_change() {
            table.plain {
                caption { "What changes" }
                thead { tr { th { "Setting" } th { "Now" } th { "After" } } }
                tbody {
                    @for c in &p.changes {
                        tr { td { (c.field) } td { (c.old) } td { (c.new) } }
                    }
                }
            }
            div.tuning {
                section {
                    h2 { "Expected at threshold " (p.new.threshold) }
                    (expected(&exp, p.expected.as_ref().map(|e| &e.old)))
                    dl.facts {
                        dt { "Reviewed alerts at or above " (p.new.threshold) }
                        dd { (reviews(&p.reviews_new)) }
                        dt { "At or above " (p.old.threshold) " (in force)" }
                        dd { (reviews(&p.reviews_old)) }
                    }
                    (policy_form(who, &p.list, &p.new, "policy", "Apply this policy"))
                }
                section {
                    (charts(&p.list, p.new.threshold, p.expected.is_some()))
                }
            }
            h2 { "How officers judged the alerts" }
            (review_table(rates, p.old.threshold, Some(p.new.threshold)))
        } @else {
            p role="status" { "Nothing would change: the policy already has these values." }
        }
    }
}

/// `POST /ops/lists/{list}/policy`: applies the previewed policy (audited), back to the list.
async fn apply(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Checked { session: who, form }: Checked<PolicyForm>,
) -> PageResult<Response> {
    let caller = who.caller();
    let patch = PolicyPatch::from(form);
    let n = name.clone();
    s.blocking(move |a| a.watchlists.set_policy(&caller, &n, &patch)).await?;
    Ok(Redirect::to(&format!("{}?applied=1", list_url(&name))).into_response())
}

#[derive(Deserialize)]
struct Marked {
    threshold: Option<f32>,
}

async fn chart(
    s: AppState,
    who: Session,
    name: String,
    which: Chart,
    q: Result<Query<Marked>, QueryRejection>,
) -> PageResult<Response> {
    let Query(q) = q.map_err(|e| Error::BadRequest(e.body_text()))?;
    let caller = who.caller();
    let svg = s.blocking(move |a| a.tuning.chart(&caller, &name, which, q.threshold)).await?;
    let svg = svg.ok_or_else(|| Error::NotFound("evaluation report (run facewatch eval)".into()))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `GET /ops/lists/{list}/det.svg?threshold=`: the latest evaluation's DET curve, the point marked.
async fn det_svg(
    State(s): State<AppState>,
    who: Session,
    Path(name): Path<String>,
    q: Result<Query<Marked>, QueryRejection>,
) -> PageResult<Response> {
    chart(s, who, name, Chart::Det, q).await
}

/// `GET /ops/lists/{list}/histogram.svg?threshold=`: the score histograms, the threshold marked.
async fn histogram_svg(
    State(s): State<AppState>,
    who: Session,
    Path(name): Path<String>,
    q: Result<Query<Marked>, QueryRejection>,
) -> PageResult<Response> {
    chart(s, who, name, Chart::Histogram, q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_are_one_path_segment() {
        assert_eq!(segment("wanted"), "wanted");
        assert_eq!(segment("O'Brien list/2"), "O%27Brien%20list%2F2");
        assert_eq!(segment("Ünal"), "%C3%9Cnal");
    }

    #[test]
    fn preview_escapes_names_and_says_what_changes() {
        let who = Session {
            principal: crate::access::Principal {
                token_id: 1,
                name: "ops".into(),
                role: crate::access::Role::Ops,
                principal: "p".into(),
                cameras: vec![],
            },
            csrf: "c".into(),
            digest: [0; 32],
        };
        let list = r#"<script>alert("x")</script>"#;
        let old = Policy::with_threshold(0.94);
        let patch = PolicyPatch::threshold(0.93);
        let rates = [ReviewRate { threshold: 0.93, confirmed: 3, dismissed: 1 }];
        let p = crate::tuning::preview(list, &old, &patch, None, "dlib", &rates).unwrap();
        let html = preview_page(&who, &p, &rates).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), "{html}");
        // The link and the forms name the list as one encoded path segment.
        assert!(html.contains(r#"action="/ops/lists/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E/policy""#), "{html}");
        assert!(html.contains("<td>threshold</td><td>0.94</td><td>0.93</td>"), "{html}");
        assert!(html.contains("3 confirmed, 1 dismissed (75.0 % confirmed)"), "{html}");
        assert!(html.contains(r#"<input type="hidden" name="threshold" value="0.93">"#), "{html}");
        // Without a report: why, and no charts.
        assert!(html.contains("no evaluation report") && !html.contains("<img"), "{html}");
    }
}
