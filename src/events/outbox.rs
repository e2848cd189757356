//! The durable outbox: every event is written in the same SQLite transaction as the change it
//! reports, before the API answers. A publisher drains it in order; a row is marked delivered
//! only after the sink acknowledged it. Rows that can never be delivered (malformed, oversized)
//! are parked with a reason so they cannot block the ones behind them.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::clock;
use crate::error::Result;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    camera          TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    data            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_ms    INTEGER,
    parked_reason   TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(seq) WHERE delivered_ms IS NULL AND parked_reason IS NULL;
";

/// Events about the site rather than one camera use this camera token in their subject.
pub const SITE_CAMERA: &str = "_site";

/// Appends one event inside the caller's transaction; returns its id (a UUIDv7).
pub fn append(conn: &Connection, kind: &str, camera: &str, data: &Value) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    conn.execute(
        "INSERT INTO outbox (id, type, camera, created_ms, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, kind, camera, clock::now_ms(), data.to_string()],
    )?;
    Ok(id)
}

/// One stored event.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub camera: String,
    pub created_ms: i64,
    /// The stored data as text (it is parsed when the envelope is built; bad JSON is parked).
    #[serde(skip)]
    pub data: String,
    pub attempts: i64,
    pub delivered: bool,
    pub parked_reason: Option<String>,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        camera: r.get(3)?,
        created_ms: r.get(4)?,
        data: r.get(5)?,
        attempts: r.get(6)?,
        delivered: r.get::<_, Option<i64>>(7)?.is_some(),
        parked_reason: r.get(8)?,
    })
}

const COLUMNS: &str = "seq, id, type, camera, created_ms, data, attempts, delivered_ms, parked_reason";

/// The oldest undelivered, unparked events, in order.
pub fn pending(conn: &Connection, limit: usize) -> Result<Vec<Row>> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE delivered_ms IS NULL AND parked_reason IS NULL ORDER BY seq LIMIT ?1"
    ))?;
    let rows = st.query_map([limit as i64], row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Every event after `after_seq` (delivered or not), for `GET /v1/events`.
pub fn after(conn: &Connection, after_seq: i64, limit: usize) -> Result<Vec<Row>> {
    let mut st = conn.prepare(&format!("SELECT {COLUMNS} FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
    let rows = st.query_map(params![after_seq, limit as i64], row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Acknowledged by the sink: delivered. A shared face crop leaves the local copy once delivered.
pub fn mark_delivered(conn: &Connection, seq: i64) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET delivered_ms = ?1, last_error = NULL,
                data = CASE WHEN json_valid(data) THEN json_remove(data, '$.crop_jpeg') ELSE data END
         WHERE seq = ?2",
        params![clock::now_ms(), seq],
    )?;
    Ok(())
}

pub fn mark_failed(conn: &Connection, seq: i64, error: &str) -> Result<()> {
    conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?1 WHERE seq = ?2", params![error, seq])?;
    Ok(())
}

pub fn park(conn: &Connection, seq: i64, reason: &str) -> Result<()> {
    conn.execute("UPDATE outbox SET parked_reason = ?1 WHERE seq = ?2", params![reason, seq])?;
    Ok(())
}

/// Undelivered events and the age of the oldest (ms), parked ones excluded.
pub fn depth(conn: &Connection) -> Result<(i64, Option<i64>)> {
    let (n, oldest): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE delivered_ms IS NULL AND parked_reason IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((n, oldest.map(|t| clock::now_ms() - t)))
}

pub fn parked(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM outbox WHERE parked_reason IS NOT NULL", [], |r| r.get(0))?)
}

/// Deletes delivered and parked events (parked ones will never be sent) older than
/// `cutoff_ms`; with `undelivered_too` (no sink configured, consumers read `GET /v1/events`)
/// undelivered ones as well. Returns how many.
pub fn purge(conn: &Connection, cutoff_ms: i64, undelivered_too: bool) -> Result<usize> {
    let n = if undelivered_too {
        conn.execute("DELETE FROM outbox WHERE created_ms < ?1", [cutoff_ms])?
    } else {
        conn.execute(
            "DELETE FROM outbox WHERE created_ms < ?1 AND (delivered_ms IS NOT NULL OR parked_reason IS NOT NULL)",
            [cutoff_ms],
        )?
    };
    Ok(n)
}

/// Removes the face crop from alert events (waiting or parked; delivered ones lost it at
/// delivery) once older than their list's retention. `days_for(list, alert_id)` gives the
/// retention in days, `None` when unknown: the crop goes at once. Returns how many rows.
pub fn strip_expired_crops(
    conn: &Connection,
    now_ms: i64,
    mut days_for: impl FnMut(&str, &str) -> Option<u32>,
) -> Result<usize> {
    let with_crops: Vec<(i64, i64, String, String)> = {
        let mut st = conn.prepare(
            "SELECT seq, created_ms, COALESCE(json_extract(data, '$.list'), ''), COALESCE(json_extract(data, '$.alert_id'), '')
             FROM outbox WHERE json_valid(data) AND json_type(data, '$.crop_jpeg') IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut n = 0;
    for (seq, created_ms, list, alert_id) in with_crops {
        let days = days_for(&list, &alert_id).unwrap_or(0);
        if created_ms < now_ms - days as i64 * 86_400_000 {
            n += conn.execute("UPDATE outbox SET data = json_remove(data, '$.crop_jpeg') WHERE seq = ?1", [seq])?;
        }
    }
    Ok(n)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Row>> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"), [id], row).optional()?)
}
