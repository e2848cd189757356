//! The live feed of alert changes: what the API's Server-Sent Events (and the officers'
//! console) follow. Bounded: a subscriber further behind than the buffer is told how many it
//! missed, never silently skipped (see the API's stream).

use serde::Serialize;
use tokio::sync::broadcast;

use crate::alerts::store::Alert;
use crate::events::kind;

/// A change to an alert, named as the outbox names its event (one vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Change {
    #[serde(rename = "alert.created")]
    Created,
    #[serde(rename = "alert.reviewed")]
    Reviewed,
    #[serde(rename = "alert.verified")]
    Verified,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => kind::ALERT_CREATED,
            Change::Reviewed => kind::ALERT_REVIEWED,
            Change::Verified => kind::ALERT_VERIFIED,
        }
    }
}

/// One message of the feed.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub kind: Change,
    pub alert: Alert,
    /// Whether the alert's reference image may be shown (looked up when announced, so that
    /// live streams never touch the store on the async runtime).
    pub has_reference: bool,
}

pub struct Feed {
    tx: broadcast::Sender<AlertEvent>,
}

impl Feed {
    /// Keeps the last `buffer` events for slow subscribers.
    pub fn new(buffer: usize) -> Self {
        Self { tx: broadcast::channel(buffer.max(1)).0 }
    }

    pub fn announce(&self, ev: AlertEvent) {
        // No subscriber is fine: the alert is in the store either way.
        let _ = self.tx.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_names_changes_as_the_outbox_does() {
        for (c, k) in [
            (Change::Created, "alert.created"),
            (Change::Reviewed, "alert.reviewed"),
            (Change::Verified, "alert.verified"),
        ] {
            assert_eq!(c.as_str(), k);
            assert_eq!(serde_json::to_value(c).unwrap(), k);
        }
    }
}
