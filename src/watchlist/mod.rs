//! Watch lists: named lists of subjects with per-list thresholds, SQLite as the source of
//! truth and one FAISS index per list for matching. Open-set: a probe matches a subject only
//! above that list's threshold; otherwise it is unknown.

pub mod enroll;
pub mod flusher;
pub mod index;
pub mod live;
pub mod migrate;
pub mod policy;
pub mod service;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::audit::Actor;
use crate::error::{Error, Result};
use index::{ListIndex, Owner};
use live::Live;
use migrate::IdFloors;
use policy::Policy;
pub use service::{EmbedderInfo, ListView, Watchlists};
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

/// The writer side of the watch lists (store, index changes); matching goes through
/// [`Watchlist::live`], which a writer never blocks for longer than a small index change.
pub struct Watchlist {
    store: Store,
    dir: PathBuf,
    factory: String,
    model: String,
    dim: u32,
    live: Arc<Live>,
    rebuilds: usize,
}

impl Watchlist {
    /// Opens (or creates) the store in `data_dir` and loads or rebuilds every list's index.
    pub fn open(data_dir: &Path, factory: &str, model: &str, dim: u32) -> Result<Self> {
        let dir = data_dir.join("index");
        let floors = || IdFloors {
            lists: highest_id(&dir, "list-", ".faiss"),
            templates: highest_id(&crate::media::references_dir(data_dir), "", ".jpg"),
        };
        let store = Store::open_with_floors(&data_dir.join("facewatch.db"), floors)?;
        let mut wl = Self {
            store,
            live: Arc::new(Live::new(dir.clone())),
            dir,
            factory: factory.to_string(),
            model: model.to_string(),
            dim,
            rebuilds: 0,
        };
        for row in wl.store.lists()? {
            wl.load_list(row)?;
        }
        Ok(wl)
    }

    fn index_path(&self, list_id: i64) -> PathBuf {
        live::index_path(&self.dir, list_id)
    }

    /// The indexes as frames are matched against them, shared with the matcher.
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
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
        self.live.insert(row, ix);
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
        if !self.live.contains(row.id) {
            self.load_list(row.clone())?;
        }
        Ok((row, created))
    }

    /// Replaces a list's policy (audited); returns the old and the new policy.
    pub fn set_policy(&mut self, list: &str, policy: &Policy, by: &Actor) -> Result<(Policy, Policy)> {
        let change = self.store.set_policy(list, policy, by)?;
        self.live.set_row(self.store.list(list)?);
        Ok(change)
    }

    /// Deletes a list, its subjects, templates and index file; returns the purged template ids.
    pub fn delete_list(&mut self, list: &str, by: &Actor) -> Result<Vec<i64>> {
        let row = self.store.list(list)?;
        let ids = self.store.delete_list(&row, by)?;
        self.live.remove(row.id);
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
        self.live.list(name)
    }

    pub fn lists(&self) -> Vec<ListRow> {
        self.live.lists()
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
        if !self.live.contains(row.id) {
            return Err(Error::UnknownList(list.into()));
        }
        let ids = self.store.add_templates(row.id, subject, name, &self.model, &templates, by)?;
        let embs: Vec<Vec<f32>> = templates.into_iter().map(|t| t.embedding).collect();
        let owner = Owner { subject: subject.to_string(), name: name.map(str::to_string) };
        // Only the append runs under the list's lock; persisting is the flusher's (or flush's).
        self.live.update(row.id, |ix| ix.add(&ids, &embs, &owner))?;
        Ok(ids)
    }

    /// Removes a subject and purges its templates from store and index; returns their ids.
    pub fn remove(&mut self, list: &str, subject: &str, by: &Actor) -> Result<Vec<i64>> {
        let row = self.store.list(list)?;
        let ids = self.store.remove_subject(&row, subject, by)?;
        // The removed ids lose their owner at once, so they stop matching even before a rebuild.
        if !self.live.update(row.id, |ix| ix.remove(&ids))? {
            // Index type without removal (HNSW): rebuild from the store off the lock (writers
            // are serialized by the caller, so nothing is enrolled meanwhile), then swap.
            let t = self.store.templates(row.id)?;
            self.live.swap(row.id, ListIndex::build(&t, &self.factory, &self.model, self.dim)?)?;
        }
        Ok(ids)
    }

    /// Persists every changed index now (the service leaves this to a [`flusher::Flusher`]).
    pub fn flush(&mut self) -> Result<()> {
        self.live.flush()
    }

    /// The best `k` subjects of every list for one probe, best first, threshold not applied.
    pub fn candidates(&self, probe: &[f32], k: usize) -> Result<Vec<Candidate>> {
        self.live.candidates(probe, k)
    }

    /// Open-set identification: the candidates at or above their list's threshold.
    pub fn matches(&self, probe: &[f32], k: usize) -> Result<Vec<Candidate>> {
        self.live.matches(probe, k)
    }
}

/// The highest id that a file name `<prefix><id><suffix>` in `dir` carries (0 if none).
fn highest_id(dir: &Path, prefix: &str, suffix: &str) -> i64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse::<i64>().ok()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_id_a_file_name_carries() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["list-3.faiss", "list-12.faiss", "list-40.json", "list-x.faiss", "7.jpg", "41.jpg", "90.jpg.tmp"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        assert_eq!(highest_id(dir.path(), "list-", ".faiss"), 12);
        assert_eq!(highest_id(dir.path(), "", ".jpg"), 41);
        assert_eq!(highest_id(&dir.path().join("missing"), "", ".jpg"), 0);
    }
}
