//! SQLite (WAL) store: the source of truth for watch lists, subjects and templates.
//! The FAISS indexes are a cache of the templates and are rebuilt from here.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::error::{Error, Result};
use crate::events::{kind, outbox};
use crate::watchlist::migrate::{self, IdFloors};
use crate::watchlist::policy::{Policy, Severity};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lists (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    threshold   REAL NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS subjects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id     INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (list_id, external_id)
);
CREATE TABLE IF NOT EXISTS templates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_id  INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL,
    embedding   BLOB NOT NULL,
    quality     TEXT,
    source      TEXT,
    created_at  INTEGER NOT NULL
);
";

/// Indexes of the tables above (dropped with a table, so created after any migration).
const INDEXES: &str = "CREATE INDEX IF NOT EXISTS templates_subject ON templates(subject_id);";

/// Tables whose ids name a file or an index entry (`references/<template>.jpg`,
/// `index/list-<list>.faiss`, FAISS ids = template ids), oldest first (parents before children).
/// AUTOINCREMENT: a deleted id is never handed out again, so an old alert can never show a newer
/// subject's face. Subjects too, so that no id of the watch lists is ever reused.
const NEVER_REUSED: [&str; 3] = ["lists", "subjects", "templates"];

/// Policy columns added to `lists` after the first release (added in place on older stores).
const POLICY_COLUMNS: [(&str, &str); 7] = [
    ("min_face_px", "REAL NOT NULL DEFAULT 40"),
    ("min_quality", "REAL NOT NULL DEFAULT 0"),
    ("severity", "TEXT NOT NULL DEFAULT 'high'"),
    ("cooldown_secs", "INTEGER NOT NULL DEFAULT 60"),
    ("retention_days", "INTEGER NOT NULL DEFAULT 30"),
    ("share_crops", "INTEGER NOT NULL DEFAULT 0"),
    // The track rule's threshold (NULL until backfilled from the frame threshold).
    ("track_threshold", "REAL"),
];

/// Lists from before the track rule get its threshold from their frame threshold.
const TRACK_THRESHOLD_BACKFILL: &str =
    "UPDATE lists SET track_threshold = MIN(threshold + 0.01, 1.0) WHERE track_threshold IS NULL";

const LIST_COLUMNS: &str = "id, name, threshold, min_face_px, min_quality, severity, cooldown_secs, retention_days,
     share_crops, track_threshold";

fn list_row(r: &Row) -> rusqlite::Result<ListRow> {
    let severity: String = r.get(5)?;
    Ok(ListRow {
        id: r.get(0)?,
        name: r.get(1)?,
        policy: Policy {
            threshold: r.get(2)?,
            min_face_px: r.get(3)?,
            min_quality: r.get(4)?,
            severity: Severity::parse(&severity).unwrap_or(Severity::High),
            cooldown_secs: r.get(6)?,
            retention_days: r.get(7)?,
            share_crops: r.get(8)?,
            track_threshold: r.get(9)?,
        },
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ListRow {
    pub id: i64,
    pub name: String,
    pub policy: Policy,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListSummary {
    pub name: String,
    pub threshold: f32,
    pub subjects: i64,
    pub templates: i64,
}

/// A subject as the API shows it (no biometric data).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubjectInfo {
    pub subject: String,
    pub name: Option<String>,
    /// Its templates' ids (the embeddings themselves are never shown).
    pub templates: Vec<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A template to store: the embedding, its quality measures (JSON) and where it came from.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub embedding: Vec<f32>,
    pub quality: String,
    pub source: String,
}

/// One stored template with the subject it belongs to.
#[derive(Debug, Clone)]
pub struct TemplateRow {
    pub id: i64,
    pub subject: String,
    pub name: Option<String>,
    pub model: String,
    pub embedding: Vec<f32>,
}

/// Identifies a list's template set; a persisted index is valid only for the same fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub count: i64,
    pub id_sum: i64,
    pub max_id: i64,
}

pub struct Store {
    conn: Connection,
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Store {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_floors(path, IdFloors::default)
    }

    /// Opens the store; an older store is migrated in place so that ids are never reused, with
    /// its id counters raised to at least `floors()` (ids that files still name; called only
    /// when migrating).
    pub fn open_with_floors(path: &Path, floors: impl FnOnce() -> IdFloors) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut conn = crate::db::connect(path)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        conn.execute_batch(outbox::SCHEMA)?;
        crate::db::add_columns(&conn, "lists", &POLICY_COLUMNS, Some(TRACK_THRESHOLD_BACKFILL))?;
        if migrate::never_reuse_ids(&mut conn, &NEVER_REUSED, floors)? {
            tracing::info!(db = %path.display(), "store migrated: watch-list ids are never reused");
        }
        conn.execute_batch(INDEXES)?;
        Ok(Self { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Creates a list with `policy` unless it exists; returns the list and whether it is new.
    pub fn create_list(&mut self, name: &str, policy: &Policy, by: &Actor) -> Result<(ListRow, bool)> {
        validate_name("list", name)?;
        policy.validate()?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT INTO lists (name, threshold, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            params![name, policy.threshold, now()],
        )?;
        if n == 1 {
            write_policy(&tx, name, policy)?;
            let new = json!({"name": name, "policy": policy});
            audit::append(&tx, by, "list.create", &format!("list:{name}"), None, Some(&new))?;
        }
        tx.commit()?;
        Ok((self.list(name)?, n == 1))
    }

    pub fn list(&self, name: &str) -> Result<ListRow> {
        self.conn
            .query_row(&format!("SELECT {LIST_COLUMNS} FROM lists WHERE name = ?1"), [name], list_row)
            .optional()?
            .ok_or_else(|| Error::UnknownList(name.to_string()))
    }

    pub fn lists(&self) -> Result<Vec<ListRow>> {
        let mut st = self.conn.prepare(&format!("SELECT {LIST_COLUMNS} FROM lists ORDER BY name"))?;
        let rows = st.query_map([], list_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Replaces a list's policy; the old and new values go to the audit log in the same transaction.
    pub fn set_policy(&mut self, list: &str, policy: &Policy, by: &Actor) -> Result<(Policy, Policy)> {
        policy.validate()?;
        let old = self.list(list)?.policy;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_policy(&tx, list, policy)?;
        audit::append(&tx, by, "policy.update", &format!("list:{list}"), Some(&json!(old)), Some(&json!(policy)))?;
        let ev = json!({"list": list, "old": old, "new": policy, "by": by.name});
        outbox::append(&tx, kind::POLICY_CHANGED, outbox::SITE_CAMERA, &ev)?;
        tx.commit()?;
        Ok((old, policy.clone()))
    }

    /// Deletes a list with all its subjects and templates; returns the removed template ids.
    /// Each subject's removal is announced (`subject.removed`, as for one subject) in the same
    /// transaction, so the central system does not keep watching for them.
    pub fn delete_list(&mut self, list: &ListRow, by: &Actor) -> Result<Vec<i64>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare(
                "SELECT s.external_id, (SELECT COUNT(*) FROM templates t WHERE t.subject_id = s.id)
                 FROM subjects s WHERE s.list_id = ?1 ORDER BY s.id",
            )?;
            let mut rows = st.query([list.id])?;
            while let Some(r) = rows.next()? {
                let (subject, templates): (String, i64) = (r.get(0)?, r.get(1)?);
                let ev = json!({"list": list.name, "subject": subject, "templates": templates});
                outbox::append(&tx, kind::SUBJECT_REMOVED, outbox::SITE_CAMERA, &ev)?;
            }
        }
        let ids: Vec<i64> = {
            let mut st =
                tx.prepare("SELECT t.id FROM templates t JOIN subjects s ON t.subject_id = s.id WHERE s.list_id = ?1")?;
            st.query_map([list.id], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?
        };
        tx.execute(
            "DELETE FROM templates WHERE subject_id IN (SELECT id FROM subjects WHERE list_id = ?1)",
            [list.id],
        )?;
        tx.execute("DELETE FROM subjects WHERE list_id = ?1", [list.id])?;
        tx.execute("DELETE FROM lists WHERE id = ?1", [list.id])?;
        let old = json!({"policy": list.policy, "templates": ids.len()});
        audit::append(&tx, by, "list.delete", &format!("list:{}", list.name), Some(&old), None)?;
        tx.commit()?;
        Ok(ids)
    }

    pub fn subjects(&self, list_id: i64) -> Result<Vec<SubjectInfo>> {
        let mut st = self.conn.prepare(
            "SELECT s.external_id, s.name, s.created_at, COALESCE(GROUP_CONCAT(t.id), '')
             FROM subjects s LEFT JOIN templates t ON t.subject_id = s.id
             WHERE s.list_id = ?1 GROUP BY s.id ORDER BY s.external_id",
        )?;
        let rows = st.query_map([list_id], |r| {
            let ids: String = r.get(3)?;
            Ok(SubjectInfo {
                subject: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                templates: ids.split(',').filter_map(|x| x.parse().ok()).collect(),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn subject(&self, list: &ListRow, subject: &str) -> Result<SubjectInfo> {
        self.subjects(list.id)?
            .into_iter()
            .find(|s| s.subject == subject)
            .ok_or_else(|| Error::UnknownSubject { list: list.name.clone(), subject: subject.to_string() })
    }

    /// Template ids with their creation time, for the retention sweep of reference images.
    pub fn template_ages(&self, list_id: i64) -> Result<Vec<(i64, i64)>> {
        let mut st = self.conn.prepare(
            "SELECT t.id, t.created_at FROM templates t JOIN subjects s ON t.subject_id = s.id WHERE s.list_id = ?1",
        )?;
        let rows = st.query_map([list_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn summaries(&self) -> Result<Vec<ListSummary>> {
        let mut st = self.conn.prepare(
            "SELECT l.name, l.threshold,
                    (SELECT COUNT(*) FROM subjects s WHERE s.list_id = l.id),
                    (SELECT COUNT(*) FROM templates t JOIN subjects s ON t.subject_id = s.id WHERE s.list_id = l.id)
             FROM lists l ORDER BY l.name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ListSummary { name: r.get(0)?, threshold: r.get(1)?, subjects: r.get(2)?, templates: r.get(3)? })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Adds templates for one subject (created if new) in one transaction; returns template ids.
    pub fn add_templates(
        &mut self,
        list_id: i64,
        subject: &str,
        name: Option<&str>,
        model: &str,
        templates: &[NewTemplate],
        by: &Actor,
    ) -> Result<Vec<i64>> {
        validate_name("subject", subject)?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO subjects (list_id, external_id, name, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(list_id, external_id) DO UPDATE SET name = COALESCE(excluded.name, subjects.name)",
            params![list_id, subject, name, now()],
        )?;
        let subject_id: i64 = tx.query_row(
            "SELECT id FROM subjects WHERE list_id = ?1 AND external_id = ?2",
            params![list_id, subject],
            |r| r.get(0),
        )?;
        let mut ids = Vec::with_capacity(templates.len());
        {
            let mut st = tx.prepare(
                "INSERT INTO templates (subject_id, model, dim, embedding, quality, source, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for t in templates {
                let e = &t.embedding;
                st.execute(params![subject_id, model, e.len() as i64, to_blob(e), t.quality, t.source, now()])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        let list: String = tx.query_row("SELECT name FROM lists WHERE id = ?1", [list_id], |r| r.get(0))?;
        let sources: Vec<&str> = templates.iter().map(|t| t.source.as_str()).collect();
        let new = json!({"name": name, "templates": ids, "sources": sources, "model": model});
        audit::append(&tx, by, "subject.enroll", &format!("list:{list}/subject:{subject}"), None, Some(&new))?;
        let ev = json!({"list": list, "subject": subject, "name": name, "templates": ids.len(), "model": model});
        outbox::append(&tx, kind::SUBJECT_ENROLLED, outbox::SITE_CAMERA, &ev)?;
        tx.commit()?;
        Ok(ids)
    }

    /// Deletes a subject and all its templates; returns the removed template ids.
    pub fn remove_subject(&mut self, list: &ListRow, subject: &str, by: &Actor) -> Result<Vec<i64>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let subject_id: Option<i64> = tx
            .query_row(
                "SELECT id FROM subjects WHERE list_id = ?1 AND external_id = ?2",
                params![list.id, subject],
                |r| r.get(0),
            )
            .optional()?;
        let Some(subject_id) = subject_id else {
            return Err(Error::UnknownSubject { list: list.name.clone(), subject: subject.to_string() });
        };
        let ids: Vec<i64> = {
            let mut st = tx.prepare("SELECT id FROM templates WHERE subject_id = ?1")?;
            st.query_map([subject_id], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?
        };
        tx.execute("DELETE FROM templates WHERE subject_id = ?1", [subject_id])?;
        tx.execute("DELETE FROM subjects WHERE id = ?1", [subject_id])?;
        let target = format!("list:{}/subject:{subject}", list.name);
        audit::append(&tx, by, "subject.delete", &target, Some(&json!({"templates": ids})), None)?;
        let ev = json!({"list": list.name, "subject": subject, "templates": ids.len()});
        outbox::append(&tx, kind::SUBJECT_REMOVED, outbox::SITE_CAMERA, &ev)?;
        tx.commit()?;
        Ok(ids)
    }

    pub fn templates(&self, list_id: i64) -> Result<Vec<TemplateRow>> {
        let mut st = self.conn.prepare(
            "SELECT t.id, s.external_id, s.name, t.model, t.embedding
             FROM templates t JOIN subjects s ON t.subject_id = s.id
             WHERE s.list_id = ?1 ORDER BY t.id",
        )?;
        let rows = st.query_map([list_id], |r| {
            let blob: Vec<u8> = r.get(4)?;
            Ok(TemplateRow {
                id: r.get(0)?,
                subject: r.get(1)?,
                name: r.get(2)?,
                model: r.get(3)?,
                embedding: from_blob(&blob),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn fingerprint(&self, list_id: i64) -> Result<Fingerprint> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(t.id), 0), COALESCE(MAX(t.id), 0)
             FROM templates t JOIN subjects s ON t.subject_id = s.id WHERE s.list_id = ?1",
            [list_id],
            |r| Ok(Fingerprint { count: r.get(0)?, id_sum: r.get(1)?, max_id: r.get(2)? }),
        )?)
    }
}

/// The list and subject (external id) that a template belongs to, while it exists. Takes any
/// connection to the store's database (the alert reference check runs on the alerts' one).
pub fn template_owner(conn: &Connection, template_id: i64) -> Result<Option<(String, String)>> {
    Ok(conn
        .query_row(
            "SELECT l.name, s.external_id FROM templates t JOIN subjects s ON t.subject_id = s.id
             JOIN lists l ON s.list_id = l.id WHERE t.id = ?1",
            [template_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

fn write_policy(conn: &Connection, list: &str, policy: &Policy) -> Result<()> {
    conn.execute(
        "UPDATE lists SET threshold = ?1, min_face_px = ?2, min_quality = ?3, severity = ?4, cooldown_secs = ?5,
                          retention_days = ?6, share_crops = ?7, track_threshold = ?9 WHERE name = ?8",
        params![
            policy.threshold,
            policy.min_face_px,
            policy.min_quality,
            policy.severity.as_str(),
            policy.cooldown_secs,
            policy.retention_days,
            policy.share_crops,
            list,
            policy.track_threshold
        ],
    )?;
    Ok(())
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ' | '\''));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{what} name {name:?}: 1-128 letters, digits, space, '-', '_', '.' or apostrophe")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nt(embedding: Vec<f32>) -> NewTemplate {
        NewTemplate { embedding, quality: "{}".into(), source: "test".into() }
    }

    #[test]
    fn subjects_templates_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("fw.db")).unwrap();
        let me = Actor::local();
        let (l, created) = s.create_list("wanted", &Policy::with_threshold(0.9), &me).unwrap();
        assert!(created);
        let (again, created) = s.create_list("wanted", &Policy::with_threshold(0.5), &me).unwrap();
        assert_eq!((again.policy.threshold, created), (0.9, false), "create is idempotent");
        let ids = s.add_templates(l.id, "A1", Some("Ann"), "m", &[nt(vec![1.0, 0.0])], &me).unwrap();
        s.add_templates(l.id, "A1", None, "m", &[nt(vec![0.0, 1.0])], &me).unwrap();
        assert_eq!(s.subject(&l, "A1").unwrap().templates.len(), 2);
        let t = s.templates(l.id).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name.as_deref(), Some("Ann"));
        assert_eq!(t[1].embedding, vec![0.0, 1.0]);
        let removed = s.remove_subject(&l, "A1", &me).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(removed.contains(&ids[0]));
        assert_eq!(s.fingerprint(l.id).unwrap().count, 0);
        assert!(matches!(s.remove_subject(&l, "A1", &me), Err(Error::UnknownSubject { .. })));
        assert!(matches!(s.list("nope"), Err(Error::UnknownList(_))));
        assert!(s.create_list("bad/name", &Policy::with_threshold(0.5), &me).is_err());
        let actions: Vec<String> = audit::entries(s.conn(), 0, 100).unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["list.create", "subject.enroll", "subject.enroll", "subject.delete"]);
        assert!(audit::verify(s.conn()).unwrap().ok);
    }

    #[test]
    fn ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("fw.db")).unwrap();
        let me = Actor::local();
        let (l, _) = s.create_list("wanted", &Policy::with_threshold(0.9), &me).unwrap();
        s.add_templates(l.id, "A", None, "m", &[nt(vec![1.0, 0.0])], &me).unwrap();
        let b = s.add_templates(l.id, "B", None, "m", &[nt(vec![0.0, 1.0])], &me).unwrap()[0];
        s.remove_subject(&l, "B", &me).unwrap();
        let c = s.add_templates(l.id, "C", None, "m", &[nt(vec![0.0, 1.0])], &me).unwrap()[0];
        assert!(c > b, "the deleted last template id {b} was handed out again ({c})");
        s.delete_list(&l, &me).unwrap();
        let (l2, _) = s.create_list("wanted", &Policy::with_threshold(0.9), &me).unwrap();
        assert!(l2.id > l.id, "the deleted list id {} was handed out again", l.id);
    }

    /// A store of the first schema (no AUTOINCREMENT, no policy columns) whose last enrolled
    /// subject B (template 3) was deleted after an alert was raised against it.
    fn old_store(path: &Path) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, threshold REAL NOT NULL,
                                 created_at INTEGER NOT NULL);
             CREATE TABLE subjects (id INTEGER PRIMARY KEY,
                                    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
                                    external_id TEXT NOT NULL, name TEXT, created_at INTEGER NOT NULL,
                                    UNIQUE (list_id, external_id));
             CREATE TABLE templates (id INTEGER PRIMARY KEY,
                                     subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
                                     model TEXT NOT NULL, dim INTEGER NOT NULL, embedding BLOB NOT NULL,
                                     quality TEXT, source TEXT, created_at INTEGER NOT NULL);
             CREATE INDEX templates_subject ON templates(subject_id);
             INSERT INTO lists VALUES (1, 'wanted', 0.9, 0);
             INSERT INTO subjects VALUES (1, 1, 'A', 'Ann', 0), (2, 1, 'B', NULL, 0);
             INSERT INTO templates VALUES (1, 1, 'm', 2, x'0000803f00000000', '{}', 'a1', 0),
                                          (2, 1, 'm', 2, x'000000000000803f', '{}', 'a2', 0),
                                          (3, 2, 'm', 2, x'0000803f00000000', '{}', 'b1', 0);",
        )
        .unwrap();
        c.execute_batch(crate::alerts::store::SCHEMA).unwrap();
        c.execute_batch(
            "INSERT INTO alerts (id, created_ms, updated_ms, captured_ms, site, camera, list, subject, template_id,
                                 score, threshold, severity, status, bbox, quality, models, has_crop, retention_days)
             VALUES ('al-1', 0, 0, 0, 's', 'c', 'wanted', 'B', 3, 0.99, 0.9, 'high', 'open', '[]', '{}', '{}', 0, 30);
             DELETE FROM templates WHERE id = 3; DELETE FROM subjects WHERE id = 2;",
        )
        .unwrap();
    }

    fn sql_of(s: &Store, table: &str) -> String {
        s.conn().query_row("SELECT sql FROM sqlite_master WHERE name = ?1", [table], |r| r.get(0)).unwrap()
    }

    #[test]
    fn an_old_store_is_migrated_in_place_and_never_reuses_ids() {
        let me = Actor::local();
        // Seeded from the alert that names template 3 (the deleted max id the old schema lost).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw.db");
        old_store(&path);
        let mut s = Store::open(&path).unwrap();
        for t in ["lists", "subjects", "templates"] {
            assert!(sql_of(&s, t).contains("AUTOINCREMENT"), "{t}: {}", sql_of(&s, t));
        }
        let l = s.list("wanted").unwrap();
        assert_eq!((l.id, l.policy.cooldown_secs), (1, 60), "ids kept, policy columns added");
        let kept = s.templates(l.id).unwrap();
        assert_eq!(kept.iter().map(|t| t.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((kept[0].name.as_deref(), kept[1].embedding.clone()), (Some("Ann"), vec![0.0, 1.0]));
        let id = s.add_templates(l.id, "C", None, "m", &[nt(vec![1.0, 0.0])], &me).unwrap()[0];
        assert_eq!(id, 4, "template 3 is named by an alert: never handed out again");
        assert!(sql_of(&s, "templates_subject").contains("subject_id"), "the index is back");
        // Foreign keys and their cascades survived the rebuild.
        assert!(
            s.conn()
                .execute(
                    "INSERT INTO templates (subject_id, model, dim, embedding, created_at)
                                  VALUES (99, 'm', 2, x'00', 0)",
                    []
                )
                .is_err()
        );
        s.conn().execute("DELETE FROM lists WHERE id = 1", []).unwrap();
        let left: i64 = s
            .conn()
            .query_row("SELECT (SELECT COUNT(*) FROM subjects) + (SELECT COUNT(*) FROM templates)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "deleting the list cascades to its subjects and templates");
        drop(s);
        // Opening again migrates nothing and keeps counting up.
        let mut s = Store::open(&path).unwrap();
        let (l2, _) = s.create_list("again", &Policy::with_threshold(0.9), &me).unwrap();
        assert_eq!(l2.id, 2, "list 1 was deleted: never handed out again");

        // Seeded from files that still name ids (a reference image, an index file).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw.db");
        old_store(&path);
        let mut s = Store::open_with_floors(&path, || IdFloors { lists: 7, templates: 41 }).unwrap();
        let id = s.add_templates(1, "C", None, "m", &[nt(vec![1.0, 0.0])], &me).unwrap()[0];
        assert_eq!(id, 42, "reference 41.jpg still on disk: its id is never handed out again");
        assert_eq!(s.create_list("other", &Policy::with_threshold(0.9), &me).unwrap().0.id, 8);
    }
}
