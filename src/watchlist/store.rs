//! SQLite (WAL) store: the source of truth for watch lists, subjects and templates.
//! The FAISS indexes are a cache of the templates and are rebuilt from here.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lists (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    threshold   REAL NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS subjects (
    id          INTEGER PRIMARY KEY,
    list_id     INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (list_id, external_id)
);
CREATE TABLE IF NOT EXISTS templates (
    id          INTEGER PRIMARY KEY,
    subject_id  INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL,
    embedding   BLOB NOT NULL,
    quality     TEXT,
    source      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_subject ON templates(subject_id);
";

#[derive(Debug, Clone, Serialize)]
pub struct ListRow {
    pub id: i64,
    pub name: String,
    pub threshold: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListSummary {
    pub name: String,
    pub threshold: f32,
    pub subjects: i64,
    pub templates: i64,
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
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    pub fn create_list(&self, name: &str, threshold: f32) -> Result<ListRow> {
        validate_name("list", name)?;
        validate_threshold(threshold)?;
        self.conn.execute(
            "INSERT INTO lists (name, threshold, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            params![name, threshold, now()],
        )?;
        self.list(name)
    }

    pub fn list(&self, name: &str) -> Result<ListRow> {
        self.conn
            .query_row("SELECT id, name, threshold FROM lists WHERE name = ?1", [name], |r| {
                Ok(ListRow { id: r.get(0)?, name: r.get(1)?, threshold: r.get(2)? })
            })
            .optional()?
            .ok_or_else(|| Error::UnknownList(name.to_string()))
    }

    pub fn lists(&self) -> Result<Vec<ListRow>> {
        let mut st = self.conn.prepare("SELECT id, name, threshold FROM lists ORDER BY name")?;
        let rows = st.query_map([], |r| Ok(ListRow { id: r.get(0)?, name: r.get(1)?, threshold: r.get(2)? }))?;
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

    pub fn set_threshold(&self, list: &str, threshold: f32) -> Result<()> {
        validate_threshold(threshold)?;
        let n = self.conn.execute("UPDATE lists SET threshold = ?1 WHERE name = ?2", params![threshold, list])?;
        if n == 0 {
            return Err(Error::UnknownList(list.to_string()));
        }
        Ok(())
    }

    /// Adds templates for one subject (created if new) in one transaction; returns template ids.
    pub fn add_templates(
        &mut self,
        list_id: i64,
        subject: &str,
        name: Option<&str>,
        model: &str,
        templates: &[NewTemplate],
    ) -> Result<Vec<i64>> {
        validate_name("subject", subject)?;
        let tx = self.conn.transaction()?;
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
        tx.commit()?;
        Ok(ids)
    }

    /// Deletes a subject and all its templates; returns the removed template ids.
    pub fn remove_subject(&mut self, list: &ListRow, subject: &str) -> Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
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

fn validate_threshold(t: f32) -> Result<()> {
    if (-1.0..=1.0).contains(&t) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("threshold {t} outside the cosine range -1..1")))
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
        let l = s.create_list("wanted", 0.9).unwrap();
        assert_eq!(s.create_list("wanted", 0.5).unwrap().threshold, 0.9, "create is idempotent");
        let ids = s.add_templates(l.id, "A1", Some("Ann"), "m", &[nt(vec![1.0, 0.0])]).unwrap();
        s.add_templates(l.id, "A1", None, "m", &[nt(vec![0.0, 1.0])]).unwrap();
        let t = s.templates(l.id).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name.as_deref(), Some("Ann"));
        assert_eq!(t[1].embedding, vec![0.0, 1.0]);
        let removed = s.remove_subject(&l, "A1").unwrap();
        assert_eq!(removed.len(), 2);
        assert!(removed.contains(&ids[0]));
        assert_eq!(s.fingerprint(l.id).unwrap().count, 0);
        assert!(matches!(s.remove_subject(&l, "A1"), Err(Error::UnknownSubject { .. })));
        assert!(matches!(s.list("nope"), Err(Error::UnknownList(_))));
        assert!(s.create_list("bad/name", 0.5).is_err());
    }
}
