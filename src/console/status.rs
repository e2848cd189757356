//! The status page (ops): every camera's health as `GET /v1/cameras` reports it, the inference
//! queues and the outbox, on one page. Read from state and one cheap outbox count.

use axum::extract::State;
use axum::response::Html;
use maud::html;

use crate::access::Action;
use crate::api::AppState;
use crate::console::{PageResult, Session, layout};

/// `GET /ops/status`.
pub async fn show(State(s): State<AppState>, who: Session) -> PageResult<Html<String>> {
    let caller = who.caller();
    caller.may(Action::ReadCameras)?;
    let cameras = s.app.cameras.list(&caller)?;
    let (ingest, embed) = s.app.inference.queue_depths();
    let capacity = s.app.config.inference.queue_capacity;
    let outbox = s.app.outbox_gauges().await;
    let ready = s.app.readiness();
    let body = html! {
        h1 { "Status" }
        p { a href="/ops" { "Watch lists and policies" } }
        h2 { "Service" }
        dl.facts {
            dt { "Ready" }
            dd { (if ready.ready { "yes" } else { "NO" })
                 @if !ready.ready {
                     " (models " (if ready.models_loaded { "loaded" } else { "NOT loaded" })
                     ", index " (if ready.index_loaded { "loaded" } else { "NOT loaded" })
                     ", store " (if ready.store_writable { "writable" } else { "NOT writable" }) ")"
                 } }
            dt { "Frames waiting for inference" }
            dd { (ingest) " of " (capacity) }
            dt { "Faces waiting for the embedder" }
            dd { (embed) }
            dt { "Events waiting in the outbox" }
            dd { @if outbox.depth < 0 { "unknown (the store could not be read)" } @else { (outbox.depth) } }
            dt { "Oldest waiting event" }
            dd { (format!("{:.0} s", outbox.oldest_ms as f64 / 1000.0)) }
            dt { "Events parked (never deliverable)" }
            dd { @if outbox.parked < 0 { "unknown" } @else { (outbox.parked) } }
        }
        h2 { "Cameras" }
        @if cameras.is_empty() {
            p { "No pulled camera is configured (cameras that post frames are not listed)." }
        } @else {
            table.plain {
                thead { tr {
                    th { "Camera" } th { "State" } th { "Last frame" } th { "fps in / out" }
                    th { "Dropped" } th { "Queue" } th { "Restarts" } th { "Size" }
                } }
                tbody {
                    @for c in &cameras {
                        tr {
                            td { (c.id) br; small { (c.url) } }
                            td { (c.state) @if let Some(r) = &c.reason { br; small { (r) } } }
                            td { @match c.last_frame_age_s { Some(a) => (format!("{a:.1} s ago")), None => "never" } }
                            td { (format!("{:.1} / {:.1}", c.fps_in, c.fps_out)) }
                            td { (c.frames_dropped) " of " (c.frames_read) }
                            td { (c.queue) " of " (c.queue_capacity) }
                            td { (c.restarts) }
                            td { @match (c.width, c.height) { (Some(w), Some(h)) => (format!("{w}x{h}")), _ => "-" } }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(layout::page("Status", Some(&who), body).into_string()))
}
