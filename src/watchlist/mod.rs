//! Watch lists: named lists of subjects with per-list thresholds, SQLite as the source of
//! truth and one FAISS index per list for matching. Open-set: a probe matches a subject only
//! above that list's threshold; otherwise it is unknown.

pub mod index;
pub mod policy;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit::Actor;
use crate::error::{Error, Result};
use index::{ListIndex, Owner};
use policy::Policy;
use store::{ListRow, ListSummary, NewTemplate, Store, SubjectInfo};

/// A candidate subject for a probe, best template score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    pub list: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub score: f32,
    pub threshold: f32,
    /// The subject's template that scored best (its reference image is shown to officers).
    pub template_id: i64,
}

impl Candidate {
    pub fn is_match(&self) -> bool {
        self.score >= self.threshold
    }
}

pub struct Watchlist {
    store: Store,
    dir: PathBuf,
    factory: String,
    model: String,
    dim: u32,
    lists: HashMap<i64, (ListRow, ListIndex, bool)>,
    rebuilds: usize,
}

impl Watchlist {
    /// Opens (or creates) the store in `data_dir` and loads or rebuilds every list's index.
    pub fn open(data_dir: &Path, factory: &str, model: &str, dim: u32) -> Result<Self> {
        let store = Store::open(&data_dir.join("facewatch.db"))?;
        let mut wl = Self {
            store,
            dir: data_dir.join("index"),
            factory: factory.to_string(),
            model: model.to_string(),
            dim,
            lists: HashMap::new(),
            rebuilds: 0,
        };
        for row in wl.store.lists()? {
            wl.load_list(row)?;
        }
        Ok(wl)
    }

    fn index_path(&self, list_id: i64) -> PathBuf {
        self.dir.join(format!("list-{list_id}.faiss"))
    }

    fn load_list(&mut self, row: ListRow) -> Result<()> {
        let fp = self.store.fingerprint(row.id)?;
        let path = self.index_path(row.id);
        let (ix, rebuilt) =
            ListIndex::load_or_build(&path, fp, || self.store.templates(row.id), &self.factory, &self.model, self.dim)?;
        if rebuilt {
            self.rebuilds += 1;
            tracing::info!(list = %row.name, templates = ix.len(), "index rebuilt from the store");
        }
        self.lists.insert(row.id, (row, ix, false));
        Ok(())
    }

    /// How many list indexes had to be rebuilt from the store since opening.
    pub fn rebuilds(&self) -> usize {
        self.rebuilds
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a list (no-op if it exists); returns it and whether it is new.
    pub fn create_list(&mut self, name: &str, policy: &Policy, by: &Actor) -> Result<(ListRow, bool)> {
        let (row, created) = self.store.create_list(name, policy, by)?;
        if !self.lists.contains_key(&row.id) {
            self.load_list(row.clone())?;
        }
        Ok((row, created))
    }

    /// Replaces a list's policy (audited); returns the old and the new policy.
    pub fn set_policy(&mut self, list: &str, policy: &Policy, by: &Actor) -> Result<(Policy, Policy)> {
        let change = self.store.set_policy(list, policy, by)?;
        let row = self.store.list(list)?;
        if let Some(entry) = self.lists.get_mut(&row.id) {
            entry.0 = row;
        }
        Ok(change)
    }

    /// Deletes a list, its subjects, templates and index file; returns the purged template ids.
    pub fn delete_list(&mut self, list: &str, by: &Actor) -> Result<Vec<i64>> {
        let row = self.store.list(list)?;
        let ids = self.store.delete_list(&row, by)?;
        self.lists.remove(&row.id);
        let path = self.index_path(row.id);
        for p in [path.with_extension("faiss"), path.with_extension("json")] {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "could not delete index file");
            }
        }
        Ok(ids)
    }

    /// The list's current row (policy included).
    pub fn list(&self, name: &str) -> Result<ListRow> {
        self.lists
            .values()
            .find(|(row, _, _)| row.name == name)
            .map(|(row, _, _)| row.clone())
            .ok_or_else(|| Error::UnknownList(name.to_string()))
    }

    pub fn lists(&self) -> Vec<ListRow> {
        let mut v: Vec<ListRow> = self.lists.values().map(|(row, _, _)| row.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn subjects(&self, list: &str) -> Result<Vec<SubjectInfo>> {
        let row = self.list(list)?;
        self.store.subjects(row.id)
    }

    pub fn subject(&self, list: &str, subject: &str) -> Result<SubjectInfo> {
        let row = self.list(list)?;
        self.store.subject(&row, subject)
    }

    pub fn summaries(&self) -> Result<Vec<ListSummary>> {
        self.store.summaries()
    }

    /// Stores templates for a subject and adds them to the list's index.
    pub fn enroll(
        &mut self,
        list: &str,
        subject: &str,
        name: Option<&str>,
        templates: Vec<NewTemplate>,
        by: &Actor,
    ) -> Result<Vec<i64>> {
        let row = self.store.list(list)?;
        let ids = self.store.add_templates(row.id, subject, name, &self.model, &templates, by)?;
        let (_, ix, dirty) = self.lists.get_mut(&row.id).ok_or_else(|| Error::UnknownList(list.into()))?;
        let embs: Vec<Vec<f32>> = templates.into_iter().map(|t| t.embedding).collect();
        let owner = Owner { subject: subject.to_string(), name: name.map(str::to_string) };
        ix.add(&ids, &embs, &owner)?;
        *dirty = true;
        Ok(ids)
    }

    /// Removes a subject and purges its templates from store and index; returns their ids.
    pub fn remove(&mut self, list: &str, subject: &str, by: &Actor) -> Result<Vec<i64>> {
        let row = self.store.list(list)?;
        let ids = self.store.remove_subject(&row, subject, by)?;
        let (_, ix, dirty) = self.lists.get_mut(&row.id).ok_or_else(|| Error::UnknownList(list.into()))?;
        *dirty = true;
        if !ix.remove(&ids)? {
            // Index type without removal (HNSW): rebuild from the store.
            let t = self.store.templates(row.id)?;
            *ix = ListIndex::build(&t, &self.factory, &self.model, self.dim)?;
        }
        Ok(ids)
    }

    /// Persists every changed index.
    pub fn flush(&mut self) -> Result<()> {
        let dirty: Vec<i64> = self.lists.iter().filter(|(_, v)| v.2).map(|(k, _)| *k).collect();
        for id in dirty {
            let fp = self.store.fingerprint(id)?;
            let path = self.index_path(id);
            if let Some(entry) = self.lists.get_mut(&id) {
                entry.1.save(&path, fp)?;
                entry.2 = false;
            }
        }
        Ok(())
    }

    /// The best `k` subjects of every list for one probe, best first, threshold not applied.
    pub fn candidates(&mut self, probe: &[f32], k: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        for (row, ix, _) in self.lists.values_mut() {
            // Several templates per subject: over-fetch, keep each subject's best.
            let hits = ix.search(probe, k.saturating_mul(4).max(8))?.pop().unwrap_or_default();
            let mut best: HashMap<&str, Candidate> = HashMap::new();
            for (tid, score) in hits {
                let Some(owner) = ix.owner(tid) else { continue };
                let e = best.entry(owner.subject.as_str()).or_insert_with(|| Candidate {
                    list: row.name.clone(),
                    subject: owner.subject.clone(),
                    name: owner.name.clone(),
                    score,
                    threshold: row.policy.threshold,
                    template_id: tid,
                });
                if score > e.score {
                    e.score = score;
                    e.template_id = tid;
                }
            }
            let mut v: Vec<Candidate> = best.into_values().collect();
            v.sort_by(|a, b| b.score.total_cmp(&a.score));
            v.truncate(k);
            out.extend(v);
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(out)
    }

    /// Open-set identification: the candidates at or above their list's threshold.
    pub fn matches(&mut self, probe: &[f32], k: usize) -> Result<Vec<Candidate>> {
        Ok(self.candidates(probe, k)?.into_iter().filter(Candidate::is_match).collect())
    }
}
