//! The watch-list service: every use case on lists, policies and subjects, written once for the
//! API and the command line. Writers take turns on one [`Watchlist`]; matching reads the
//! [`Live`] indexes, which a writer never blocks for longer than a small index change; changed
//! indexes are persisted by the [`Flusher`], off the request path.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use crate::access::{Action, Caller};
use crate::db::lock;
use crate::error::{Error, Result};
use crate::media::Media;
use crate::watchlist::Watchlist;
use crate::watchlist::enroll::{self, Assessed, EnrollReport, Examined};
use crate::watchlist::flusher::Flusher;
use crate::watchlist::live::Live;
use crate::watchlist::policy::{Policy, PolicyPatch};
use crate::watchlist::store::{ListRow, SubjectInfo};

/// A watch list as ops see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub name: String,
    pub policy: Policy,
    pub subjects: i64,
    pub templates: i64,
}

/// What the embedder is, as lists and templates need it.
#[derive(Debug, Clone)]
pub struct EmbedderInfo {
    pub name: String,
    pub dim: u32,
    /// A new list's threshold unless one is given.
    pub default_threshold: f32,
}

pub struct Watchlists {
    writer: Mutex<Watchlist>,
    live: Arc<Live>,
    /// `None` for a command-line run: it flushes when it is done ([`Watchlists::close`]).
    flusher: Option<Flusher>,
    media: Arc<Media>,
    default_threshold: f32,
    /// Woken when a change wrote an outbox event (subject removed, list deleted, policy set).
    outbox: Arc<Notify>,
}

impl Watchlists {
    /// Opens the lists in `data_dir` for embeddings of `embedder`; `background_flush` persists
    /// changed indexes on a thread of their own (the service), else at [`Watchlists::close`].
    pub fn open(
        data_dir: &Path,
        factory: &str,
        embedder: &EmbedderInfo,
        media: Arc<Media>,
        outbox: Arc<Notify>,
        background_flush: bool,
    ) -> Result<Self> {
        let wl = Watchlist::open(data_dir, factory, &embedder.name, embedder.dim)?;
        let live = wl.live();
        let flusher = if background_flush { Some(Flusher::spawn(live.clone())?) } else { None };
        Ok(Self { writer: Mutex::new(wl), live, flusher, media, default_threshold: embedder.default_threshold, outbox })
    }

    /// What matching reads (see [`crate::matching`]).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// Whether the writer is usable (a panic while an index was changed poisons it). Never
    /// waits behind an enrollment: readiness probes call it.
    pub fn healthy(&self) -> bool {
        !self.writer.is_poisoned()
    }

    pub fn lists(&self, who: &Caller) -> Result<Vec<ListView>> {
        who.may(Action::ReadWatchlists)?;
        self.views()
    }

    fn views(&self) -> Result<Vec<ListView>> {
        let wl = lock(&self.writer);
        let summaries = wl.summaries()?;
        Ok(wl
            .lists()
            .into_iter()
            .map(|row| {
                let s = summaries.iter().find(|s| s.name == row.name);
                ListView {
                    name: row.name,
                    policy: row.policy,
                    subjects: s.map(|s| s.subjects).unwrap_or(0),
                    templates: s.map(|s| s.templates).unwrap_or(0),
                }
            })
            .collect())
    }

    pub fn list(&self, who: &Caller, name: &str) -> Result<ListView> {
        who.may(Action::ReadWatchlists)?;
        self.view(name)
    }

    fn view(&self, name: &str) -> Result<ListView> {
        self.views()?.into_iter().find(|l| l.name == name).ok_or_else(|| Error::UnknownList(name.to_string()))
    }

    /// Creates a list with the model's default threshold and the fields of `policy`;
    /// `Conflict` if it exists.
    pub fn create_list(&self, who: &Caller, name: &str, policy: &PolicyPatch) -> Result<ListView> {
        who.may(Action::CreateLists)?;
        let (_, created) = self.ensure_list(who, name, policy)?;
        if !created {
            return Err(Error::Conflict(format!("watch list {name} exists")));
        }
        self.view(name)
    }

    /// The list, created with `policy` if it does not exist yet (the command line's enroll and
    /// import); whether it is new.
    pub fn ensure_list(&self, who: &Caller, name: &str, policy: &PolicyPatch) -> Result<(ListRow, bool)> {
        who.may(Action::CreateLists)?;
        let policy = Policy::with_threshold(self.default_threshold).patched(policy)?;
        lock(&self.writer).create_list(name, &policy, &who.actor())
    }

    /// Deletes a list, its subjects and their reference images; how many templates went.
    pub fn delete_list(&self, who: &Caller, name: &str) -> Result<usize> {
        who.may(Action::DeleteLists)?;
        let ids = lock(&self.writer).delete_list(name, &who.actor())?;
        self.media.delete_references(&ids);
        self.outbox.notify_one();
        Ok(ids.len())
    }

    pub fn policy(&self, who: &Caller, list: &str) -> Result<Policy> {
        who.may(Action::ReadPolicies)?;
        Ok(self.live.list(list)?.policy)
    }

    /// Applies the fields of `patch`; audited with the old and the new policy. Matching uses
    /// the new policy from the next frame on.
    pub fn set_policy(&self, who: &Caller, list: &str, patch: &PolicyPatch) -> Result<Policy> {
        who.may(Action::ChangePolicies)?;
        let mut wl = lock(&self.writer);
        let new = wl.list(list)?.policy.patched(patch)?;
        let policy = wl.set_policy(list, &new, &who.actor())?.1;
        self.outbox.notify_one();
        Ok(policy)
    }

    pub fn subjects(&self, who: &Caller, list: &str) -> Result<Vec<SubjectInfo>> {
        who.may(Action::ReadSubjects)?;
        lock(&self.writer).subjects(list)
    }

    pub fn subject(&self, who: &Caller, list: &str, subject: &str) -> Result<SubjectInfo> {
        who.may(Action::ReadSubjects)?;
        lock(&self.writer).subject(list, subject)
    }

    /// `UnknownList` unless the list exists (checked before photos are analysed).
    pub fn require_list(&self, list: &str) -> Result<()> {
        self.live.list(list).map(|_| ())
    }

    /// Removes a subject: templates leave the store and the index (it stops matching at once),
    /// reference images the disk. How many templates went.
    pub fn delete_subject(&self, who: &Caller, list: &str, subject: &str) -> Result<usize> {
        who.may(Action::DeleteSubjects)?;
        let ids = lock(&self.writer).remove(list, subject, &who.actor())?;
        self.wake_flusher();
        self.media.delete_references(&ids);
        self.outbox.notify_one();
        Ok(ids.len())
    }

    /// The one enrollment path: judges every examined photo (`origin` says which front end:
    /// `api`, `cli`), stores the accepted ones as templates with their reference image and
    /// adds them to the index. `EnrollmentRefused` when no photo is usable.
    pub fn enroll<'a>(
        &self,
        who: &Caller,
        list: &str,
        subject: &str,
        name: Option<&str>,
        origin: &str,
        photos: impl IntoIterator<Item = (String, std::result::Result<Examined<'a>, String>)>,
    ) -> Result<EnrollReport> {
        who.may(Action::EnrollSubjects)?;
        self.enroll_assessed(who, list, subject, name, enroll::assess(origin, photos))
    }

    /// [`Watchlists::enroll`] for photos judged one at a time by the caller (the command line
    /// decodes and drops each photo in turn: a folder never sits decoded in memory at once).
    pub fn enroll_assessed(
        &self,
        who: &Caller,
        list: &str,
        subject: &str,
        name: Option<&str>,
        assessed: Assessed,
    ) -> Result<EnrollReport> {
        who.may(Action::EnrollSubjects)?;
        let verdicts =
            assessed.store(&self.media, |t| lock(&self.writer).enroll(list, subject, name, t, &who.actor()))?;
        self.wake_flusher();
        let templates = verdicts.iter().filter(|v| v.template_id.is_some()).count();
        Ok(EnrollReport { list: list.to_string(), subject: subject.to_string(), templates, images: verdicts })
    }

    /// `(list, retention days)` of every list, for the retention sweep.
    pub fn retention_days(&self) -> Vec<(String, u32)> {
        self.live.lists().into_iter().map(|l| (l.name, l.policy.retention_days)).collect()
    }

    /// Template ids of the list older than `cutoff_s` (Unix seconds).
    pub fn templates_before(&self, list: &str, cutoff_s: i64) -> Result<Vec<i64>> {
        let wl = lock(&self.writer);
        let row = wl.list(list)?;
        let ages = wl.store().template_ages(row.id)?;
        Ok(ages.into_iter().filter(|(_, created_s)| *created_s < cutoff_s).map(|(id, _)| id).collect())
    }

    fn wake_flusher(&self) {
        if let Some(f) = &self.flusher {
            f.wake();
        }
    }

    /// Stops the flusher and persists every changed index (blocking; at shutdown and at the
    /// end of a command).
    pub fn close(&self) {
        if let Some(f) = &self.flusher {
            f.stop();
        }
        if let Err(e) = lock(&self.writer).flush() {
            tracing::error!(error = %e, "flushing the watch-list indexes");
        }
    }
}
