//! Alerts: a match above a list's threshold, kept for a human to judge. Lifecycle:
//! `open` -> `confirmed` (one officer) -> `verified` (a second, different officer) or
//! `dismissed` (any officer). A match is a lead for a human, never an automatic decision.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::Principal;
use crate::audit;
use crate::clock;
use crate::error::{Error, Result};
use crate::events::{kind, outbox};
use crate::vision::quality::QualityReport;
use crate::watchlist::policy::Severity;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    captured_ms     INTEGER NOT NULL,
    site            TEXT NOT NULL,
    camera          TEXT NOT NULL,
    list            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    subject_name    TEXT,
    template_id     INTEGER NOT NULL,
    score           REAL NOT NULL,
    threshold       REAL NOT NULL,
    severity        TEXT NOT NULL,
    status          TEXT NOT NULL,
    bbox            TEXT NOT NULL,
    quality         TEXT NOT NULL,
    models          TEXT NOT NULL,
    has_crop        INTEGER NOT NULL,
    retention_days  INTEGER NOT NULL
);
-- Cooldown looks alerts up by capture time (frames may arrive late or out of order);
-- the index of older stores, on arrival time, is replaced.
DROP INDEX IF EXISTS alerts_recent;
CREATE INDEX IF NOT EXISTS alerts_sighting ON alerts(list, subject, camera, captured_ms);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, seq);
CREATE TABLE IF NOT EXISTS reviews (
    id          INTEGER PRIMARY KEY,
    alert_id    TEXT NOT NULL REFERENCES alerts(id),
    officer     TEXT NOT NULL,
    decision    TEXT NOT NULL,
    note        TEXT,
    at_ms       INTEGER NOT NULL,
    principal   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_alert ON reviews(alert_id);
-- Who has opened which alert (the first time is audited as `alert.viewed`).
CREATE TABLE IF NOT EXISTS alert_views (
    alert_id    TEXT NOT NULL REFERENCES alerts(id),
    principal   TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (alert_id, principal)
);
";

/// Confirmations by different officers needed for `verified`.
pub const CONFIRMATIONS_TO_VERIFY: usize = 2;

/// `confirmed` by one officer, `verified` when a second, different officer confirms;
/// `verified` and `dismissed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Confirmed,
    Verified,
    Dismissed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Confirmed => "confirmed",
            Status::Verified => "verified",
            Status::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        serde_json::from_value(Value::String(s.into()))
            .map_err(|_| Error::BadRequest(format!("status {s:?}: expected open, confirmed, verified or dismissed")))
    }

    fn is_final(self) -> bool {
        matches!(self, Status::Verified | Status::Dismissed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Confirm,
    Dismiss,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Review {
    /// The token's name, as the officer was shown.
    pub officer: String,
    /// Who that is: the two-officer rule compares these.
    pub principal: String,
    pub decision: Decision,
    pub note: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// A lead for an officer: a face that matched a watch-list subject at or above the list's
/// threshold.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: String,
    pub status: Status,
    pub site: String,
    pub camera: String,
    /// When the camera captured the frame (RFC 3339).
    pub captured_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub list: String,
    pub subject: String,
    pub subject_name: Option<String>,
    /// The enrolled template that matched (its image is the alert's reference).
    pub template_id: i64,
    /// Cosine score of the match.
    pub score: f32,
    /// The list's threshold when the alert was raised.
    pub threshold: f32,
    pub severity: Severity,
    /// `[x, y, width, height]` in frame pixels.
    pub bbox: [f32; 4],
    /// `None` only if the stored value cannot be read.
    pub quality: Option<QualityReport>,
    pub models: Option<ModelIds>,
    /// False once retention has deleted the crop.
    pub has_crop: bool,
    /// Sightings of the subject at this camera that this alert holds (the first included):
    /// frames within the cooldown while it is under review.
    pub sightings: i64,
    pub reviews: Vec<Review>,
}

pub use crate::backend::ModelId;

/// The models that produced an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelIds {
    pub detector: ModelId,
    pub embedder: ModelId,
}

impl From<&crate::backend::Models> for ModelIds {
    fn from(m: &crate::backend::Models) -> Self {
        Self {
            detector: m.detector.clone(),
            embedder: ModelId { name: m.embedder.name.clone(), sha256: m.embedder.sha256.clone() },
        }
    }
}

#[cfg(test)]
impl ModelIds {
    pub fn test() -> Self {
        let m = |n: &str| ModelId { name: n.into(), sha256: "0".repeat(64) };
        Self { detector: m("detector"), embedder: m("embedder") }
    }
}

#[cfg(test)]
impl Alert {
    /// An alert at gate-1 of list `wanted` for subject `x` (score 0.95 over 0.94), with a crop,
    /// one sighting and no review: tests change what they need.
    pub fn test(id: &str, status: Status) -> Self {
        Alert {
            id: id.into(),
            status,
            site: "s".into(),
            camera: "gate-1".into(),
            captured_at: "2026-11-30T12:00:00Z".into(),
            created_at: String::new(),
            updated_at: String::new(),
            list: "wanted".into(),
            subject: "x".into(),
            subject_name: None,
            template_id: 1,
            score: 0.95,
            threshold: 0.94,
            severity: crate::watchlist::policy::Severity::High,
            bbox: [0.0; 4],
            quality: None,
            models: Some(ModelIds::test()),
            has_crop: true,
            sightings: 1,
            reviews: Vec::new(),
        }
    }
}

/// What the matcher knows when it raises an alert.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub site: String,
    pub camera: String,
    pub captured_ms: i64,
    pub list: String,
    pub subject: String,
    pub subject_name: Option<String>,
    pub template_id: i64,
    pub score: f32,
    pub threshold: f32,
    pub severity: Severity,
    pub bbox: [f32; 4],
    pub quality: QualityReport,
    pub models: ModelIds,
    pub retention_days: u32,
    /// Whether the crop reached the disk (an alert is raised even when it did not).
    pub has_crop: bool,
    /// The crop as base64 JPEG when the list's policy lets crops leave the checkpoint.
    pub shared_crop: Option<String>,
}

impl NewAlert {
    /// The `alert.created` event's data (see `schemas/event.v1.json`).
    fn event(&self, id: &str) -> Value {
        let mut v = json!({
            "alert_id": id,
            "captured_at": clock::rfc3339(self.captured_ms),
            "list": self.list,
            "subject": self.subject,
            "subject_name": self.subject_name,
            "score": self.score,
            "threshold": self.threshold,
            "severity": self.severity,
            "bbox": self.bbox,
            "quality": self.quality,
            "models": self.models,
        });
        if let (Some(crop), Value::Object(m)) = (&self.shared_crop, &mut v) {
            m.insert("crop_jpeg".into(), json!(crop));
        }
        v
    }
}

/// `GET /v1/alerts`: which alerts, newest first, one page.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// `open`, `confirmed`, `verified` or `dismissed`.
    pub status: Option<String>,
    pub camera: Option<String>,
    pub list: Option<String>,
    pub subject: Option<String>,
    /// Only alerts created at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Alerts per page: 1..500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// Alerts per page by default, and at most.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

impl Filter {
    /// `(limit, offset)`, checked: an offset is one of SQLite's integers (at most `i64::MAX`),
    /// so it binds as itself, never as a negative number that SQLite would read as 0.
    pub fn page(&self) -> Result<(usize, i64)> {
        let limit = self.limit.unwrap_or(PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::BadRequest(format!("limit {limit}: expected 1..{MAX_PAGE}")));
        }
        let offset = self.offset.unwrap_or(0);
        let offset = i64::try_from(offset)
            .map_err(|_| Error::BadRequest(format!("offset {offset}: expected 0..{}", i64::MAX)))?;
        Ok((limit, offset))
    }
}

/// Reviewed alerts of a list scored at or above a threshold: confirmed (once, or verified by a
/// second officer) counts as a true match, dismissed as a false one. Open alerts are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReviewRate {
    pub threshold: f32,
    pub confirmed: u64,
    pub dismissed: u64,
}

impl ReviewRate {
    pub fn reviewed(&self) -> u64 {
        self.confirmed + self.dismissed
    }

    /// Confirmed share of the reviewed alerts; `None` when none was reviewed.
    pub fn confirm_rate(&self) -> Option<f64> {
        (self.reviewed() > 0).then(|| self.confirmed as f64 / self.reviewed() as f64)
    }

    pub fn dismiss_rate(&self) -> Option<f64> {
        self.confirm_rate().map(|c| 1.0 - c)
    }
}

/// The newest reviewed alerts of a list that [`AlertStore::review_rates`] reads, at most.
pub const REVIEW_SCAN: i64 = 1_000_000;
/// Thresholds one [`AlertStore::review_rates`] call may ask about.
pub const MAX_RATE_THRESHOLDS: usize = 1001;

/// For each of `thresholds` (answered ascending, once each), the reviewed alerts of `list`
/// scored at or above it. One pass over the newest [`REVIEW_SCAN`] reviewed alerts, memory
/// by the thresholds only.
pub fn review_rates(conn: &Connection, list: &str, thresholds: &[f32]) -> Result<Vec<ReviewRate>> {
    if thresholds.len() > MAX_RATE_THRESHOLDS || thresholds.iter().any(|t| !t.is_finite()) {
        return Err(Error::BadRequest(format!("review rates: up to {MAX_RATE_THRESHOLDS} finite thresholds")));
    }
    let mut ts = thresholds.to_vec();
    ts.sort_by(f32::total_cmp);
    ts.dedup();
    // by_rank[k]: alerts that reach exactly the k lowest thresholds (confirmed, dismissed).
    let mut by_rank = vec![(0u64, 0u64); ts.len() + 1];
    let mut st = conn.prepare(
        "SELECT score, status FROM alerts WHERE list = ?1 AND status IN ('confirmed', 'verified', 'dismissed')
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let mut rows = st.query(params![list, REVIEW_SCAN])?;
    while let Some(r) = rows.next()? {
        let (score, status): (f64, String) = (r.get(0)?, r.get(1)?);
        // Scores are stored from f32: compare as f32, as the matcher did.
        let k = ts.partition_point(|t| *t <= score as f32);
        if status == "dismissed" {
            by_rank[k].1 += 1;
        } else {
            by_rank[k].0 += 1;
        }
    }
    let mut out = vec![ReviewRate { threshold: 0.0, confirmed: 0, dismissed: 0 }; ts.len()];
    let (mut c, mut d) = (0, 0);
    for i in (0..ts.len()).rev() {
        c += by_rank[i + 1].0;
        d += by_rank[i + 1].1;
        out[i] = ReviewRate { threshold: ts[i], confirmed: c, dismissed: d };
    }
    Ok(out)
}

pub struct AlertStore {
    conn: Connection,
}

const COLUMNS: &str = "id, status, site, camera, captured_ms, created_ms, updated_ms, list, subject, subject_name,
     template_id, score, threshold, severity, bbox, quality, models, has_crop, sightings";

fn row(r: &Row) -> rusqlite::Result<Alert> {
    let status: String = r.get(1)?;
    let text = |i| r.get::<_, String>(i);
    Ok(Alert {
        id: r.get(0)?,
        status: Status::parse(&status).unwrap_or(Status::Open),
        site: r.get(2)?,
        camera: r.get(3)?,
        captured_at: clock::rfc3339(r.get(4)?),
        created_at: clock::rfc3339(r.get(5)?),
        updated_at: clock::rfc3339(r.get(6)?),
        list: r.get(7)?,
        subject: r.get(8)?,
        subject_name: r.get(9)?,
        template_id: r.get(10)?,
        score: r.get(11)?,
        threshold: r.get(12)?,
        severity: Severity::parse(&text(13)?).unwrap_or(Severity::High),
        bbox: serde_json::from_str(&text(14)?).unwrap_or_default(),
        quality: serde_json::from_str(&text(15)?).ok(),
        models: serde_json::from_str(&text(16)?).ok(),
        has_crop: r.get(17)?,
        sightings: r.get(18)?,
        reviews: Vec::new(),
    })
}

/// Added to `reviews` when principals came (in place on older stores): an old review's
/// principal is its officer's name, as tokens of that time are migrated (see `auth`).
const REVIEW_COLUMNS: [(&str, &str); 1] = [("principal", "TEXT NOT NULL DEFAULT ''")];
const LEGACY_PRINCIPALS: &str = "UPDATE reviews SET principal = 'name:' || officer WHERE principal = ''";

/// Added to `alerts` when sightings were first counted (older alerts count one).
const ALERT_COLUMNS: [(&str, &str); 1] = [("sightings", "INTEGER NOT NULL DEFAULT 1")];

/// What [`AlertStore::raise`] did with a match.
#[derive(Debug)]
pub enum Raised {
    /// A new alert (its crop, if any, is on disk).
    Created(Alert),
    /// An alert for the same subject at the same camera is still under review: the sighting
    /// belongs to it (its id).
    Reused(String),
}

/// The newest alert for this subject, list and camera created at or after `since_ms` that is
/// still under review (open or confirmed once). A dismissed or verified alert is closed: a new
/// sighting after it is a new lead, never silently absorbed.
fn recent_open(conn: &Connection, a: &NewAlert, cooldown_ms: i64) -> Result<Option<String>> {
    // Either side of this frame's capture time: a late frame from a camera's buffer belongs
    // to the alert its neighbours raised, whenever it arrives. The nearest one wins.
    let (from, to) = (a.captured_ms.saturating_sub(cooldown_ms), a.captured_ms.saturating_add(cooldown_ms));
    Ok(conn
        .query_row(
            "SELECT id FROM alerts WHERE list = ?1 AND subject = ?2 AND camera = ?3
               AND captured_ms BETWEEN ?4 AND ?5 AND status IN ('open', 'confirmed')
             ORDER BY ABS(captured_ms - ?6), seq DESC LIMIT 1",
            params![a.list, a.subject, a.camera, from, to, a.captured_ms],
            |r| r.get(0),
        )
        .optional()?)
}

/// Writes an alert row and its `alert.created` event in the caller's transaction.
fn insert(tx: &rusqlite::Transaction, id: &str, a: &NewAlert) -> Result<()> {
    tx.execute(
        "INSERT INTO alerts (id, created_ms, updated_ms, captured_ms, site, camera, list, subject, subject_name,
                             template_id, score, threshold, severity, status, bbox, quality, models, has_crop,
                             retention_days)
         VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'open', ?13, ?14, ?15, ?17, ?16)",
        params![
            id,
            clock::now_ms(),
            a.captured_ms,
            a.site,
            a.camera,
            a.list,
            a.subject,
            a.subject_name,
            a.template_id,
            a.score,
            a.threshold,
            a.severity.as_str(),
            json!(a.bbox).to_string(),
            json!(a.quality).to_string(),
            json!(a.models).to_string(),
            a.retention_days,
            a.has_crop
        ],
    )?;
    outbox::append(tx, kind::ALERT_CREATED, &a.camera, &a.event(id))?;
    Ok(())
}

impl AlertStore {
    pub fn open(db: &Path) -> Result<Self> {
        let conn = crate::db::connect(db)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        conn.execute_batch(outbox::SCHEMA)?;
        crate::db::add_columns(&conn, "reviews", &REVIEW_COLUMNS, Some(LEGACY_PRINCIPALS))?;
        crate::db::add_columns(&conn, "alerts", &ALERT_COLUMNS, None)?;
        Ok(Self { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Raises an alert unless one for the same subject at the same camera, captured within
    /// `cooldown_ms` of this sighting's capture time (before or after it), is still under
    /// review. The check and the insert are one IMMEDIATE transaction, so
    /// concurrent frames of one traveller (from any thread or process) raise one alert.
    /// `save_crop(id, alert)` runs inside it only for a new alert, before the row is written (an
    /// alert never points at a missing file): it sets `has_crop` (and `shared_crop`).
    /// `on_error(id)` cleans up after a failed insert.
    pub fn raise(
        &mut self,
        a: &mut NewAlert,
        cooldown_ms: i64,
        save_crop: impl FnOnce(&str, &mut NewAlert),
        on_error: impl FnOnce(&str),
    ) -> Result<Raised> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Cooldown 0 means every sighting is an alert, even two frames captured the same instant.
        if cooldown_ms > 0
            && let Some(id) = recent_open(&tx, a, cooldown_ms)?
        {
            tx.execute("UPDATE alerts SET sightings = sightings + 1 WHERE id = ?1", [&id])?;
            tx.commit()?;
            return Ok(Raised::Reused(id));
        }
        let id = uuid::Uuid::now_v7().to_string();
        save_crop(&id, a);
        let res = insert(&tx, &id, a).and_then(|()| Ok(tx.commit()?));
        if let Err(e) = res {
            on_error(&id);
            return Err(e);
        }
        self.get(&id).map(Raised::Created)
    }

    pub fn get(&self, id: &str) -> Result<Alert> {
        let mut a = self
            .conn
            .query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id], row)
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("alert {id}")))?;
        a.reviews = self.reviews(id)?;
        Ok(a)
    }

    fn reviews(&self, id: &str) -> Result<Vec<Review>> {
        let mut st = self
            .conn
            .prepare("SELECT officer, decision, note, at_ms, principal FROM reviews WHERE alert_id = ?1 ORDER BY id")?;
        let rows = st.query_map([id], |r| {
            let d: String = r.get(1)?;
            Ok(Review {
                officer: r.get(0)?,
                principal: r.get(4)?,
                decision: if d == "confirm" { Decision::Confirm } else { Decision::Dismiss },
                note: r.get(2)?,
                at: clock::rfc3339(r.get(3)?),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The alerts still under review (open, or confirmed once), newest first: an officer's queue.
    pub fn under_review(&self, limit: usize) -> Result<Vec<Alert>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE status IN ('open', 'confirmed') ORDER BY seq DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit as i64], row)?;
        let mut out: Vec<Alert> = rows.collect::<std::result::Result<_, _>>()?;
        for a in &mut out {
            a.reviews = self.reviews(&a.id)?;
        }
        Ok(out)
    }

    /// Whether `principal` has opened alert `id` before.
    pub fn viewed(&self, id: &str, principal: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM alert_views WHERE alert_id = ?1 AND principal = ?2", [id, principal], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records that `who` opened alert `id`; the first time per principal is audited
    /// (`alert.viewed`) in the same transaction. True when this was the first time.
    pub fn record_view(&mut self, id: &str, who: &Principal) -> Result<bool> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO alert_views (alert_id, principal, at_ms) VALUES (?1, ?2, ?3)",
            params![id, who.principal, clock::now_ms()],
        )?;
        if n == 1 {
            let new = json!({"principal": who.principal});
            audit::append(&tx, &who.actor(), "alert.viewed", &format!("alert:{id}"), None, Some(&new))?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Newest first, filtered and paged.
    pub fn list(&self, f: &Filter) -> Result<Vec<Alert>> {
        let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = &f.status {
            Status::parse(s)?;
            sql.push_str(" AND status = ?");
            args.push(s.clone().into());
        }
        for (col, v) in [("camera", &f.camera), ("list", &f.list), ("subject", &f.subject)] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                args.push(v.clone().into());
            }
        }
        if let Some(since) = &f.since {
            let ms = clock::parse_rfc3339(since)
                .ok_or_else(|| Error::BadRequest(format!("since {since:?}: expected an RFC 3339 time")))?;
            sql.push_str(" AND created_ms >= ?");
            args.push(ms.into());
        }
        let (limit, offset) = f.page()?;
        sql.push_str(" ORDER BY seq DESC LIMIT ? OFFSET ?");
        args.push((limit as i64).into());
        args.push(offset.into());
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), row)?;
        let mut out: Vec<Alert> = rows.collect::<std::result::Result<_, _>>()?;
        for a in &mut out {
            a.reviews = self.reviews(&a.id)?;
        }
        Ok(out)
    }

    /// Records an officer's decision (audited in the same transaction) and moves the alert on.
    /// Verification needs confirmations by two different principals (people), whatever their
    /// tokens are named.
    pub fn review(&mut self, id: &str, who: &Principal, decision: Decision, note: Option<&str>) -> Result<Alert> {
        let by = &who.actor();
        if note.is_some_and(|n| n.len() > 2000) {
            return Err(Error::BadRequest("note longer than 2000 bytes".into()));
        }
        let before = self.get(id)?;
        if before.status.is_final() {
            return Err(Error::Conflict(format!("alert {id} is already {}", before.status.as_str())));
        }
        let confirmations: Vec<&Review> = before.reviews.iter().filter(|r| r.decision == Decision::Confirm).collect();
        if decision == Decision::Confirm && confirmations.iter().any(|r| r.principal == who.principal) {
            return Err(Error::Conflict(format!(
                "{} (principal {}) already confirmed alert {id}: verification needs a second, different officer",
                by.name, who.principal
            )));
        }
        let confirmed_by: Vec<&str> = confirmations.iter().map(|r| r.officer.as_str()).collect();
        let status = match decision {
            Decision::Dismiss => Status::Dismissed,
            Decision::Confirm if confirmed_by.len() + 1 >= CONFIRMATIONS_TO_VERIFY => Status::Verified,
            Decision::Confirm => Status::Confirmed,
        };
        let now = clock::now_ms();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let dec = if decision == Decision::Confirm { "confirm" } else { "dismiss" };
        tx.execute(
            "INSERT INTO reviews (alert_id, officer, decision, note, at_ms, principal) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, by.name, dec, note, now, who.principal],
        )?;
        // The status guard makes a concurrent review of the same alert fail instead of racing.
        let n = tx.execute(
            "UPDATE alerts SET status = ?1, updated_ms = ?2 WHERE id = ?3 AND status = ?4",
            params![status.as_str(), now, id, before.status.as_str()],
        )?;
        if n != 1 {
            return Err(Error::Conflict(format!("alert {id} changed while it was being reviewed")));
        }
        let old = json!({"status": before.status});
        let new = json!({"status": status, "decision": dec, "note": note, "principal": who.principal});
        audit::append(&tx, by, "alert.review", &format!("alert:{id}"), Some(&old), Some(&new))?;
        let ev = json!({"alert_id": id, "decision": dec, "officer": by.name, "principal": who.principal,
            "note": note, "status": status});
        outbox::append(&tx, kind::ALERT_REVIEWED, &before.camera, &ev)?;
        if status == Status::Verified {
            let mut officers = confirmed_by.clone();
            officers.push(&by.name);
            let mut principals: Vec<&str> = confirmations.iter().map(|r| r.principal.as_str()).collect();
            principals.push(&who.principal);
            let ev = json!({"alert_id": id, "list": before.list, "subject": before.subject, "confirmed_by": officers,
                "confirmed_by_principals": principals});
            outbox::append(&tx, kind::ALERT_VERIFIED, &before.camera, &ev)?;
        }
        tx.commit()?;
        self.get(id)
    }

    /// Alerts whose crop is older than their list's retention (`days_by_list`, else the days
    /// stored with the alert); marks them crop-less and returns their ids.
    pub fn expire_crops(&mut self, days_by_list: &[(String, u32)], now_ms: i64) -> Result<Vec<String>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids: Vec<String> = Vec::new();
        {
            let mut st = tx.prepare("SELECT id, list, created_ms, retention_days FROM alerts WHERE has_crop = 1")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, u32>(3)?))
            })?;
            for r in rows {
                let (id, list, created, stored_days) = r?;
                let days = days_by_list.iter().find(|(l, _)| *l == list).map(|(_, d)| *d).unwrap_or(stored_days);
                if created < now_ms - days as i64 * 86_400_000 {
                    ids.push(id);
                }
            }
        }
        for id in &ids {
            tx.execute("UPDATE alerts SET has_crop = 0 WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// [`review_rates`] on this store's connection.
    pub fn review_rates(&self, list: &str, thresholds: &[f32]) -> Result<Vec<ReviewRate>> {
        review_rates(&self.conn, list, thresholds)
    }

    /// The lists alerts were raised on (a deleted list's alerts stay), up to `limit`.
    pub fn alert_lists(&self, limit: usize) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT DISTINCT list FROM alerts ORDER BY list LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn count(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn sighting(subject: &str) -> NewAlert {
        NewAlert {
            site: "s".into(),
            camera: "gate-1".into(),
            captured_ms: 0,
            list: "wanted".into(),
            subject: subject.into(),
            subject_name: None,
            template_id: 1,
            score: 0.97,
            threshold: 0.94,
            severity: Severity::High,
            bbox: [0.0; 4],
            quality: QualityReport::default(),
            models: ModelIds::test(),
            retention_days: 30,
            has_crop: false,
            shared_crop: None,
        }
    }

    fn raise(alerts: &mut AlertStore, subject: &str) -> Raised {
        alerts.raise(&mut sighting(subject), 600_000, |_, a| a.has_crop = true, |_| {}).unwrap()
    }

    fn officer(name: &str, principal: &str) -> Principal {
        Principal {
            token_id: 1,
            name: name.into(),
            role: Role::Officer,
            principal: principal.into(),
            cameras: Vec::new(),
        }
    }

    #[test]
    fn only_an_alert_under_review_absorbs_the_next_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let mut alerts = AlertStore::open(&dir.path().join("a.db")).unwrap();
        let Raised::Created(first) = raise(&mut alerts, "x") else { panic!("first sighting raises") };
        assert!(first.has_crop);
        assert!(matches!(raise(&mut alerts, "x"), Raised::Reused(id) if id == first.id), "open alert reused");
        alerts.review(&first.id, &officer("ann", "p-ann"), Decision::Confirm, None).unwrap();
        assert!(matches!(raise(&mut alerts, "x"), Raised::Reused(id) if id == first.id), "confirmed once: still open");
        alerts.review(&first.id, &officer("bob", "p-bob"), Decision::Dismiss, None).unwrap();
        let Raised::Created(second) = raise(&mut alerts, "x") else { panic!("a dismissed alert swallowed a sighting") };
        assert_ne!(second.id, first.id);
        assert!(matches!(raise(&mut alerts, "y"), Raised::Created(_)), "another subject is another alert");
    }

    #[test]
    fn sightings_are_counted_and_the_first_view_per_principal_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let mut alerts = AlertStore::open(&dir.path().join("a.db")).unwrap();
        let Raised::Created(a) = raise(&mut alerts, "x") else { panic!() };
        assert_eq!(a.sightings, 1);
        raise(&mut alerts, "x");
        raise(&mut alerts, "x");
        assert_eq!(alerts.get(&a.id).unwrap().sightings, 3);
        let Raised::Created(b) = raise(&mut alerts, "y") else { panic!() };
        let queue: Vec<String> = alerts.under_review(10).unwrap().into_iter().map(|a| a.id).collect();
        assert_eq!(queue, [b.id.clone(), a.id.clone()], "newest first");
        alerts.review(&b.id, &officer("ann", "p-ann"), Decision::Dismiss, None).unwrap();
        assert_eq!(alerts.under_review(10).unwrap().len(), 1, "a dismissed alert leaves the queue");

        let ann = officer("ann", "p-ann");
        assert!(!alerts.viewed(&a.id, "p-ann").unwrap());
        assert!(alerts.record_view(&a.id, &ann).unwrap());
        assert!(!alerts.record_view(&a.id, &officer("ann (tablet)", "p-ann")).unwrap(), "same person");
        assert!(alerts.record_view(&a.id, &officer("bob", "p-bob")).unwrap());
        assert!(alerts.viewed(&a.id, "p-ann").unwrap());
        let viewed: Vec<audit::Entry> =
            audit::entries(alerts.conn(), 0, 100).unwrap().into_iter().filter(|e| e.action == "alert.viewed").collect();
        assert_eq!(viewed.len(), 2);
        assert_eq!(viewed[0].target, format!("alert:{}", a.id));
        assert_eq!(viewed[1].new.as_ref().unwrap()["principal"], "p-bob");
        assert!(audit::verify(alerts.conn()).unwrap().ok);
    }

    #[test]
    fn cooldown_is_measured_between_capture_times() {
        // Raised in arrival order 0 s, +2 h, then a late frame captured 10 s before the first:
        // capture times decide, so the late frame joins the first alert and +2 h is its own.
        let dir = tempfile::tempdir().unwrap();
        let mut alerts = AlertStore::open(&dir.path().join("a.db")).unwrap();
        let at = |alerts: &mut AlertStore, captured_ms: i64| {
            let mut a = NewAlert { captured_ms, ..sighting("x") };
            alerts.raise(&mut a, 600_000, |_, _| {}, |_| {}).unwrap()
        };
        let t0 = 1_790_000_000_000;
        let Raised::Created(first) = at(&mut alerts, t0) else { panic!("first sighting raises") };
        let Raised::Created(later) = at(&mut alerts, t0 + 7_200_000) else { panic!("2 h later is a new alert") };
        assert!(matches!(at(&mut alerts, t0 - 10_000), Raised::Reused(id) if id == first.id), "late frame");
        assert!(matches!(at(&mut alerts, t0 + 7_190_000), Raised::Reused(id) if id == later.id), "nearest alert");
        assert_eq!(alerts.count().unwrap(), 2);
        // Cooldown 0: every sighting alerts, even one captured the same instant as an open alert.
        let mut same = NewAlert { captured_ms: t0, ..sighting("x") };
        assert!(matches!(alerts.raise(&mut same, 0, |_, _| {}, |_| {}).unwrap(), Raised::Created(_)));
    }

    #[test]
    fn concurrent_sightings_raise_one_alert() {
        // Eight frames of one traveller at once, each on its own connection (as several
        // threads or processes would be): the check and the insert are one transaction.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        drop(AlertStore::open(&db).unwrap());
        let barrier = std::sync::Barrier::new(8);
        let created: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut alerts = AlertStore::open(&db).unwrap();
                        barrier.wait();
                        // The crop write is where the old code's gap between check and insert was.
                        let slow_crop = |_: &str, a: &mut NewAlert| {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            a.has_crop = true;
                        };
                        matches!(
                            alerts.raise(&mut sighting("x"), 600_000, slow_crop, |_| {}).unwrap(),
                            Raised::Created(_)
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(created, 1);
        assert_eq!(AlertStore::open(&db).unwrap().count().unwrap(), 1);
    }

    #[test]
    fn review_rates_count_reviews_at_and_above_each_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let mut alerts = AlertStore::open(&dir.path().join("a.db")).unwrap();
        // (score, reviews): confirmed once, verified, dismissed, left open; another list's alert.
        let cases: [(f32, &[Decision]); 5] = [
            (0.93, &[Decision::Dismiss]),
            (0.95, &[Decision::Confirm]),
            (0.96, &[Decision::Dismiss]),
            (0.97, &[Decision::Confirm, Decision::Confirm]),
            (0.99, &[]),
        ];
        for (i, (score, reviews)) in cases.iter().enumerate() {
            let mut a = NewAlert { score: *score, ..sighting(&format!("s{i}")) };
            let Raised::Created(a) = alerts.raise(&mut a, 0, |_, _| {}, |_| {}).unwrap() else { panic!() };
            for (n, d) in reviews.iter().enumerate() {
                alerts.review(&a.id, &officer("o", &format!("p{n}")), *d, None).unwrap();
            }
        }
        let mut other = NewAlert { list: "other".into(), score: 0.99, ..sighting("z") };
        let Raised::Created(o) = alerts.raise(&mut other, 0, |_, _| {}, |_| {}).unwrap() else { panic!() };
        alerts.review(&o.id, &officer("o", "p"), Decision::Dismiss, None).unwrap();

        let r = alerts.review_rates("wanted", &[0.96, 0.9, 0.95, 0.98, 0.95]).unwrap();
        let got: Vec<(f32, u64, u64)> = r.iter().map(|r| (r.threshold, r.confirmed, r.dismissed)).collect();
        assert_eq!(got, [(0.9, 2, 2), (0.95, 2, 1), (0.96, 1, 1), (0.98, 0, 0)]);
        assert_eq!(r[1].confirm_rate(), Some(2.0 / 3.0));
        assert_eq!(r[3].confirm_rate(), None);
        assert_eq!(alerts.alert_lists(10).unwrap(), ["other", "wanted"]);
        assert!(alerts.review_rates("wanted", &[f32::NAN]).is_err());
        assert!(alerts.review_rates("wanted", &vec![0.5; MAX_RATE_THRESHOLDS + 1]).is_err());
    }

    #[test]
    fn verification_needs_two_principals_not_two_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut alerts = AlertStore::open(&dir.path().join("a.db")).unwrap();
        // One person with two tokens (two names, one principal) cannot verify alone.
        let Raised::Created(a) = raise(&mut alerts, "x") else { panic!() };
        alerts.review(&a.id, &officer("ann", "p-1"), Decision::Confirm, None).unwrap();
        let alone = alerts.review(&a.id, &officer("ann (tablet)", "p-1"), Decision::Confirm, None);
        assert!(matches!(alone, Err(Error::Conflict(_))), "{alone:?}");
        // Two officers who share a name are two people.
        let verified = alerts.review(&a.id, &officer("ann", "p-2"), Decision::Confirm, None).unwrap();
        assert_eq!(verified.status, Status::Verified);
        let principals: Vec<&str> = verified.reviews.iter().map(|r| r.principal.as_str()).collect();
        assert_eq!(principals, ["p-1", "p-2"]);
    }
}
