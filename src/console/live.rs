//! The officer console's live stream (`GET /alerts/live`, Server-Sent Events): first a
//! `snapshot` of the alerts under review, then each change as it happens (`change`), and a new
//! snapshot (with `resync` set) when the browser fell behind the feed's buffer. Nothing is
//! silently skipped: after any gap the client holds the store's state again.
//!
//! Entries are rendered here with the page's own template (`officer::queue_item`, escaped by
//! maud), so the live queue and a reloaded one look alike. The stream takes one of the
//! service's stream slots (capped in all and per token) and ends at shutdown, when the token is
//! revoked, and when the session ends (idle or too old: a stream is not a use).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt as _, stream};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::alerts::{AlertEvent, AlertView, Change, Status};
use crate::api::AppState;
use crate::app::App;
use crate::console::officer::{QUEUE_LEN, queue_item};
use crate::console::page::PageResult;
use crate::console::session::Session;
use crate::error::{Error, Result};

/// How often a stream checks that its session is still live.
const SESSION_CHECK: Duration = Duration::from_secs(10);

/// The browser reconnects this soon after the stream drops (a restart of the service).
const RETRY: Duration = Duration::from_millis(1000);

fn snapshot(views: &[AlertView], missed: Option<u64>) -> Event {
    let now = crate::clock::now_ms();
    let items: Vec<Value> =
        views.iter().map(|v| json!({"id": v.alert.id, "html": queue_item(v, None, now).into_string()})).collect();
    Event::default().event("snapshot").retry(RETRY).data(json!({"items": items, "resync": missed}).to_string())
}

fn change(ev: &AlertEvent) -> Event {
    let a = &ev.alert;
    let view = AlertView { alert: a.clone(), has_reference: ev.has_reference };
    let under_review = matches!(a.status, Status::Open | Status::Confirmed);
    let name = a.subject_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| a.subject.clone());
    let data = json!({
        "kind": ev.kind.as_str(),
        "id": a.id,
        "severity": a.severity.as_str(),
        "under_review": under_review,
        "html": queue_item(&view, None, crate::clock::now_ms()).into_string(),
        // Read by screen readers (aria-live) and shown nowhere else.
        "announce": (ev.kind == Change::Created)
            .then(|| format!("New {} alert: {name}, list {}, camera {}", a.severity.as_str(), a.list, a.camera)),
    });
    Event::default().event("change").id(a.id.clone()).data(data.to_string())
}

async fn under_review(app: &std::sync::Arc<App>, me: &Session) -> Result<Vec<AlertView>> {
    let (app, who) = (app.clone(), me.caller());
    tokio::task::spawn_blocking(move || app.alerts.under_review(&who, QUEUE_LEN))
        .await
        .map_err(|e| Error::Runtime(format!("background task failed: {e}")))?
}

/// The feed as SSE events: each change, or, after a gap, a fresh snapshot from `reread` (the
/// store's alerts under review) flagged with how many changes were missed.
fn changes<F, Fut>(feed: broadcast::Receiver<AlertEvent>, reread: F) -> impl Stream<Item = Event>
where
    F: Fn() -> Fut + Clone,
    Fut: Future<Output = Result<Vec<AlertView>>>,
{
    BroadcastStream::new(feed).then(move |m| {
        let reread = reread.clone();
        async move {
            match m {
                Ok(ev) => change(&ev),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "console stream fell behind: a fresh snapshot is sent");
                    match reread().await {
                        Ok(views) => snapshot(&views, Some(missed)),
                        // The client reloads the page on `resync` without items.
                        Err(e) => Event::default().event("resync").data(json!({"error": e.to_string()}).to_string()),
                    }
                }
            }
        }
    })
}

/// `GET /alerts/live`.
pub async fn stream(State(s): State<AppState>, me: Session) -> PageResult<Response> {
    let token_id = me.principal.token_id;
    // Subscribed before the snapshot is read: a change in between is in both, never in neither
    // (the client applies changes by id, so a repeat is harmless).
    let feed = s.app.alerts.subscribe(&me.caller())?;
    let slot = s.streams.acquire(token_id)?;
    let first = snapshot(&under_review(&s.app, &me).await?, None);

    let (app, who) = (s.app.clone(), me.clone());
    let changes = changes(feed, move || {
        let (app, who) = (app.clone(), who.clone());
        async move { under_review(&app, &who).await }
    });

    let mut shutdown = s.shutdown.clone();
    let mut revocations = s.app.access.cache.revocations();
    let app = s.app.clone();
    let ended = async move {
        let mut tick = tokio::time::interval(SESSION_CHECK);
        let live = || app.sessions.is_live(&me, |t| app.access.cache.is_active(t), crate::clock::now_ms());
        tokio::select! {
            _ = shutdown.recv() => {}
            _ = revocations.wait_for(|_| !app.access.cache.is_active(token_id)) => {}
            _ = async { loop { tick.tick().await; if !live() { break; } } } => {}
        }
    };
    let events = stream::once(async move { first })
        .chain(changes)
        .map(move |e| {
            let _held = &slot;
            Ok::<_, Infallible>(e)
        })
        .take_until(ended);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Alert;

    fn alert(id: &str, status: Status) -> Alert {
        Alert { subject_name: Some("<b>X</b>".into()), ..Alert::test(id, status) }
    }

    /// On the wire: changes as they come; a subscriber behind the buffer gets a fresh snapshot
    /// (flagged `resync` with the count it missed) instead of a silent gap.
    #[tokio::test]
    async fn changes_then_a_fresh_snapshot_after_a_gap() {
        let (tx, rx) = broadcast::channel(2);
        for (i, status) in [Status::Open, Status::Open, Status::Open, Status::Dismissed].into_iter().enumerate() {
            let kind = if status == Status::Open { Change::Created } else { Change::Reviewed };
            tx.send(AlertEvent { kind, alert: alert(&format!("a{i}"), status), has_reference: true }).unwrap();
        }
        drop(tx);
        let reread = || async { Ok(vec![AlertView { alert: alert("a2", Status::Open), has_reference: true }]) };
        let body = Sse::new(changes(rx, reread).map(Ok::<_, Infallible>)).into_response().into_body();
        let text = String::from_utf8(axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(events, ["snapshot", "change", "change"], "{text}");
        let data: Vec<Value> =
            text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
        assert_eq!(data[0]["resync"], 2);
        assert_eq!(data[0]["items"][0]["id"], "a2");
        assert_eq!((data[1]["id"].as_str(), data[1]["under_review"].as_bool()), (Some("a2"), Some(true)));
        assert_eq!(data[1]["announce"], "New high alert: <b>X</b>, list wanted, camera gate-1");
        assert_eq!((data[2]["id"].as_str(), data[2]["under_review"].as_bool()), (Some("a3"), Some(false)));
        // The entries are the page's own markup, escaped.
        let html = data[1]["html"].as_str().unwrap();
        assert!(html.contains("&lt;b&gt;X&lt;/b&gt;") && !html.contains("<b>X"), "{html}");
    }
}
