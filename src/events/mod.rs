//! Match events for the central system: written to the [`outbox`] with the change they report,
//! then delivered by the [`publisher`] to NATS JetStream ([`nats`]) or served locally by
//! `GET /v1/events`. The wire format is versioned: `schemas/event.v1.json`.

pub mod gauges;
pub mod local;
pub mod nats;
pub mod outbox;
pub mod publisher;
pub mod tail;
pub mod webhook;

use serde::Serialize;
use serde_json::Value;

use crate::clock;

/// Why a delivery failed: `permanent` failures (the sink refuses the event itself: too large,
/// not permitted, rejected by the receiver) are parked, the others retried.
#[derive(Debug)]
pub struct Failure {
    pub permanent: bool,
    pub message: String,
}

/// The `schema` field of every event; bumped on an incompatible change.
pub const SCHEMA: &str = "facewatch.event.v1";

/// Event types.
pub mod kind {
    pub const ALERT_CREATED: &str = "alert.created";
    pub const ALERT_REVIEWED: &str = "alert.reviewed";
    pub const ALERT_VERIFIED: &str = "alert.verified";
    pub const SUBJECT_ENROLLED: &str = "subject.enrolled";
    pub const SUBJECT_REMOVED: &str = "subject.removed";
    pub const POLICY_CHANGED: &str = "policy.changed";
}

/// One event as it leaves the checkpoint (`schemas/event.v1.json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Envelope {
    pub schema: &'static str,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub site: String,
    pub camera: String,
    /// Position in this checkpoint's outbox (gaps are normal; order is the order of events).
    pub seq: i64,
    pub time: String,
    pub data: Value,
}

/// Builds the envelope of a stored event; `Err(reason)` for a row that can never be sent.
pub fn envelope(row: &outbox::Row, site: &str) -> Result<Envelope, String> {
    let data: Value = serde_json::from_str(&row.data).map_err(|e| format!("malformed event data: {e}"))?;
    if !data.is_object() {
        return Err("malformed event data: not a JSON object".into());
    }
    Ok(Envelope {
        schema: SCHEMA,
        id: row.id.clone(),
        kind: row.kind.clone(),
        site: site.to_string(),
        camera: row.camera.clone(),
        seq: row.seq,
        time: clock::rfc3339(row.created_ms),
        data,
    })
}

/// `facewatch.<site>.<camera>.<event-type>`; characters NATS reserves in a token become `_`.
pub fn subject(site: &str, camera: &str, kind: &str) -> String {
    let token = |s: &str| -> String {
        let t: String =
            s.chars().map(|c| if c == '.' || c == '*' || c == '>' || c.is_whitespace() { '_' } else { c }).collect();
        if t.is_empty() { "_".into() } else { t }
    };
    format!("facewatch.{}.{}.{kind}", token(site), token(camera))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_one_token_per_part() {
        assert_eq!(subject("lhr-t5", "gate.1", "alert.created"), "facewatch.lhr-t5.gate_1.alert.created");
        assert_eq!(subject("a b", "", "policy.changed"), "facewatch.a_b._.policy.changed");
    }
}
