//! The list indexes that frames are matched against, shared by the matcher (any number of
//! threads) and the one writer (enroll and remove, serialized by the watch-list mutex).
//!
//! Matching never waits for a store transaction, an index rebuild or a disk write: the writer
//! holds a list's index lock only to add or remove a few vectors or to swap in an index built
//! off the lock, and persistence writes a copy taken under that lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::error::{Error, Result};
use crate::watchlist::Candidate;
use crate::watchlist::index::ListIndex;
use crate::watchlist::store::ListRow;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under these locks leaves the index as it was before or after one FAISS call;
    // the store stays the source of truth and a stale file is rebuilt at start.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a list's index is persisted (its metadata sits beside it as `.json`).
pub fn index_path(dir: &Path, list_id: i64) -> PathBuf {
    dir.join(format!("list-{list_id}.faiss"))
}

struct IndexCell {
    index: Mutex<ListIndex>,
    /// Changed since it was last written to disk.
    dirty: AtomicBool,
    /// Held while the index file is written; true once the list is deleted (never written again).
    gone: Mutex<bool>,
}

/// One list as the matcher sees it: its row (name, policy) and its index.
#[derive(Clone)]
struct LiveList {
    row: ListRow,
    cell: Arc<IndexCell>,
}

pub struct Live {
    dir: PathBuf,
    lists: RwLock<HashMap<i64, LiveList>>,
}

impl Live {
    /// `dir`: where the indexes are persisted.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, lists: RwLock::new(HashMap::new()) }
    }

    fn snapshot(&self) -> Vec<LiveList> {
        self.lists.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    fn get(&self, list_id: i64) -> Option<LiveList> {
        self.lists.read().unwrap_or_else(|p| p.into_inner()).get(&list_id).cloned()
    }

    /// Adds (or replaces) a list with its index, as loaded or built from the store.
    pub fn insert(&self, row: ListRow, index: ListIndex) {
        let cell =
            Arc::new(IndexCell { index: Mutex::new(index), dirty: AtomicBool::new(false), gone: Mutex::new(false) });
        self.lists.write().unwrap_or_else(|p| p.into_inner()).insert(row.id, LiveList { row, cell });
    }

    pub fn contains(&self, list_id: i64) -> bool {
        self.get(list_id).is_some()
    }

    /// A new policy for a list; its index stays.
    pub fn set_row(&self, row: ListRow) {
        if let Some(l) = self.lists.write().unwrap_or_else(|p| p.into_inner()).get_mut(&row.id) {
            l.row = row;
        }
    }

    /// Forgets a list; once this returns its index file is never written again, so the
    /// caller may delete it.
    pub fn remove(&self, list_id: i64) {
        let removed = self.lists.write().unwrap_or_else(|p| p.into_inner()).remove(&list_id);
        if let Some(l) = removed {
            *lock(&l.cell.gone) = true;
        }
    }

    /// Changes a list's index under its lock (hold it only for small changes) and marks it
    /// for persisting.
    pub fn update<R>(&self, list_id: i64, f: impl FnOnce(&mut ListIndex) -> Result<R>) -> Result<R> {
        let l = self.get(list_id).ok_or_else(|| Error::UnknownList(format!("id {list_id}")))?;
        let r = f(&mut lock(&l.cell.index));
        l.cell.dirty.store(true, Ordering::Release);
        r
    }

    /// Replaces a list's index with one built off the lock.
    pub fn swap(&self, list_id: i64, index: ListIndex) -> Result<()> {
        self.update(list_id, |ix| {
            let old = std::mem::replace(ix, index);
            // The old index is freed after the lock is released, not under it.
            Ok(old)
        })
        .map(drop)
    }

    /// The list's current row (policy included).
    pub fn list(&self, name: &str) -> Result<ListRow> {
        self.lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|l| l.row.name == name)
            .map(|l| l.row.clone())
            .ok_or_else(|| Error::UnknownList(name.to_string()))
    }

    /// Every list, by name.
    pub fn lists(&self) -> Vec<ListRow> {
        let mut v: Vec<ListRow> = self.snapshot().into_iter().map(|l| l.row).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The best `k` subjects of every list for one probe, best first, threshold not applied.
    pub fn candidates(&self, probe: &[f32], k: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        for l in self.snapshot() {
            let row = &l.row;
            let mut ix = lock(&l.cell.index);
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
    pub fn matches(&self, probe: &[f32], k: usize) -> Result<Vec<Candidate>> {
        Ok(self.candidates(probe, k)?.into_iter().filter(Candidate::is_match).collect())
    }

    /// Writes every changed index: a copy taken under the list's lock (a memory copy, while
    /// matching waits at most that long) is written off it, with the fingerprint of exactly
    /// the templates it holds. A failed write leaves the list marked for the next flush.
    pub fn flush(&self) -> Result<()> {
        let mut first_err = None;
        for l in self.snapshot() {
            if !l.cell.dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            let gone = lock(&l.cell.gone);
            if *gone {
                continue;
            }
            let copy = lock(&l.cell.index).try_clone();
            let written = copy.and_then(|c| c.save(&index_path(&self.dir, l.row.id), c.fingerprint()));
            if let Err(e) = written {
                l.cell.dirty.store(true, Ordering::Release);
                tracing::error!(list = %l.row.name, error = %e, "index not persisted (rebuilt from the store at start)");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
