//! Tuning a list's policy: what a change would do before ops make it. The latest evaluation
//! report (`facewatch eval`) says what a threshold costs in false alarms (FPIR) and missed
//! matches (FNIR); reviewed alerts say how officers judged what each threshold let through
//! (faces that match nothing are never stored, so thresholds below today's come from the
//! evaluation alone). Reads only: a change is applied by [`Watchlists::set_policy`], audited.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::access::{Action, Caller};
use crate::alerts::{Alerts, ReviewRate};
use crate::error::Result;
use crate::eval::plot;
use crate::eval::report::{EvalReport, OperatingPoint};
use crate::watchlist::Watchlists;
use crate::watchlist::policy::{Policy, PolicyPatch};

/// One policy field before and after, as ops read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

/// What the evaluation expects at the old and the new threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expected {
    /// When the report was made and on what.
    pub report_created_at: String,
    pub source: String,
    pub old: OperatingPoint,
    pub new: OperatingPoint,
}

/// A policy change, not yet made.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub list: String,
    pub old: Policy,
    pub new: Policy,
    /// Only the fields that change.
    pub changes: Vec<FieldChange>,
    /// `None` without a report for the loaded embedder (`expected_note` says why).
    pub expected: Option<Expected>,
    pub expected_note: Option<String>,
    /// Reviewed alerts at and above the old and the new threshold.
    pub reviews_old: ReviewRate,
    pub reviews_new: ReviewRate,
}

impl Preview {
    pub fn is_change(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Every policy field as text, in the order ops see them.
fn fields(p: &Policy) -> [(&'static str, String); 8] {
    [
        ("threshold", p.threshold.to_string()),
        ("track_threshold", p.track_threshold.to_string()),
        ("min_face_px", p.min_face_px.to_string()),
        ("min_quality", p.min_quality.to_string()),
        ("severity", p.severity.as_str().to_string()),
        ("cooldown_secs", p.cooldown_secs.to_string()),
        ("retention_days", p.retention_days.to_string()),
        ("share_crops", p.share_crops.to_string()),
    ]
}

/// Whether a report's scores apply to the loaded embedder; why not otherwise.
fn applicable<'a>(report: Option<&'a EvalReport>, embedder: &str) -> std::result::Result<&'a EvalReport, String> {
    match report {
        None => Err("no evaluation report: run `facewatch eval FACES_DIR` on this data folder".into()),
        Some(r) if r.embedder != embedder => {
            Err(format!("the latest evaluation scored embedder {}, this service runs {embedder}", r.embedder))
        }
        Some(r) => Ok(r),
    }
}

/// The preview of `patch` on `old` (validated as applying it would be): the changed fields, the
/// evaluation's FPIR and FNIR at the old and the new threshold, and the reviewed alerts at and
/// above each (`rates` must answer both thresholds; a missing one counts nothing).
pub fn preview(
    list: &str,
    old: &Policy,
    patch: &PolicyPatch,
    report: Option<&EvalReport>,
    embedder: &str,
    rates: &[ReviewRate],
) -> Result<Preview> {
    let new = old.patched(patch)?;
    let changes = fields(old)
        .into_iter()
        .zip(fields(&new))
        .filter(|(a, b)| a.1 != b.1)
        .map(|((field, old), (_, new))| FieldChange { field, old, new })
        .collect();
    let (expected, expected_note) = match applicable(report, embedder) {
        Ok(r) => (
            Some(Expected {
                report_created_at: r.created_at.clone(),
                source: r.source.clone(),
                old: r.scores.at(old.threshold),
                new: r.scores.at(new.threshold),
            }),
            None,
        ),
        Err(why) => (None, Some(why)),
    };
    let rate = |t: f32| {
        rates.iter().find(|r| r.threshold == t).copied().unwrap_or(ReviewRate {
            threshold: t,
            confirmed: 0,
            dismissed: 0,
        })
    };
    Ok(Preview {
        list: list.to_string(),
        reviews_old: rate(old.threshold),
        reviews_new: rate(new.threshold),
        old: old.clone(),
        new,
        changes,
        expected,
        expected_note,
    })
}

/// The thresholds review rates are shown for beside a list's policy: 0.80 to 1.00 by 0.01.
pub fn rate_grid() -> Vec<f32> {
    (80..=100).map(|i| i as f32 / 100.0).collect()
}

/// The tuning use cases for ops.
pub struct Tuning {
    watchlists: Arc<Watchlists>,
    alerts: Arc<Alerts>,
    eval_dir: PathBuf,
    embedder: String,
    /// The report as last read, by the file's modification time (pages and charts read it often).
    cached: Mutex<Option<(SystemTime, Arc<EvalReport>)>>,
}

impl Tuning {
    pub fn new(watchlists: Arc<Watchlists>, alerts: Arc<Alerts>, eval_dir: PathBuf, embedder: String) -> Self {
        Self { watchlists, alerts, eval_dir, embedder, cached: Mutex::new(None) }
    }

    /// The latest evaluation report, if one was written (blocking: reads the file when it changed).
    pub fn report(&self, who: &Caller) -> Result<Option<Arc<EvalReport>>> {
        who.may(Action::ReadPolicies)?;
        let path = self.eval_dir.join(crate::eval::report::LATEST);
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            return Ok(None);
        };
        let mut cached = crate::db::lock(&self.cached);
        if let Some((at, r)) = cached.as_ref()
            && *at == modified
        {
            return Ok(Some(r.clone()));
        }
        let report = EvalReport::load(&self.eval_dir)?.map(Arc::new);
        *cached = report.clone().map(|r| (modified, r));
        Ok(report)
    }

    /// The report if it scored the loaded embedder, else why not.
    pub fn applicable_report(&self, who: &Caller) -> Result<std::result::Result<Arc<EvalReport>, String>> {
        let r = self.report(who)?;
        if let Err(why) = applicable(r.as_deref(), &self.embedder) {
            return Ok(Err(why));
        }
        Ok(r.ok_or_else(String::new))
    }

    /// Reviewed alerts of `list` at and above each threshold of [`rate_grid`] and `extra`.
    pub fn review_rates(&self, who: &Caller, list: &str, extra: &[f32]) -> Result<Vec<ReviewRate>> {
        self.watchlists.require_list(list)?;
        let mut ts = rate_grid();
        ts.extend_from_slice(extra);
        self.alerts.review_rates(who, list, &ts)
    }

    /// What `patch` would change on `list` (nothing is changed).
    pub fn preview(&self, who: &Caller, list: &str, patch: &PolicyPatch) -> Result<Preview> {
        let old = self.watchlists.policy(who, list)?;
        let new = old.patched(patch)?;
        let rates = self.alerts.review_rates(who, list, &[old.threshold, new.threshold])?;
        let report = self.report(who)?;
        preview(list, &old, patch, report.as_deref(), &self.embedder, &rates)
    }

    /// The DET curve (`det`) or the score histograms (`histogram`) of the latest evaluation as SVG,
    /// titled for `list`, with `threshold` (else the list's) marked. `None` without an applicable report.
    pub fn chart(&self, who: &Caller, list: &str, which: Chart, threshold: Option<f32>) -> Result<Option<String>> {
        let policy = self.watchlists.policy(who, list)?;
        let t = threshold.filter(|t| t.is_finite()).unwrap_or(policy.threshold).clamp(-1.0, 1.0);
        let Ok(r) = self.applicable_report(who)? else { return Ok(None) };
        let what = format!("list {list}");
        Ok(Some(match which {
            Chart::Det => plot::det_chart(&what, &r.scores, &r.scores.det(), Some(&r.scores.at(t))).svg(),
            // Drawn from the scores, not the stored bins: those are input too.
            Chart::Histogram => plot::histogram_chart(&what, &r.scores.histogram(), Some(t)).svg(),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Det,
    Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Identification;
    use crate::eval::report::{Measured, tests::known};
    use crate::watchlist::policy::Severity;

    fn report(embedder: &str) -> EvalReport {
        let ident = Identification {
            gallery: 8,
            mated: 10,
            non_mated: 10,
            missing: 0,
            rank1: 0.8,
            fnir_at_fpir_1pct: 0.7,
            threshold_at_fpir_1pct: 0.95,
            fnir_at_fpir_5pct: 0.7,
            threshold_at_fpir_5pct: 0.95,
        };
        let m = Measured {
            source: "faces".into(),
            embedder: embedder.into(),
            images: 28,
            seconds: 1.0,
            verification: None,
            identification: ident,
            scores: known(),
        };
        EvalReport::new(m, 0.01).unwrap()
    }

    #[test]
    fn preview_shows_changes_expected_rates_and_reviews() {
        let old = Policy::with_threshold(0.95);
        let patch = PolicyPatch { threshold: Some(0.88), severity: Some(Severity::Critical), ..Default::default() };
        let rates = [
            ReviewRate { threshold: 0.88, confirmed: 5, dismissed: 3 },
            ReviewRate { threshold: 0.95, confirmed: 4, dismissed: 1 },
        ];
        let r = report("dlib");
        let p = preview("wanted", &old, &patch, Some(&r), "dlib", &rates).unwrap();
        let changed: Vec<(&str, &str, &str)> =
            p.changes.iter().map(|c| (c.field, c.old.as_str(), c.new.as_str())).collect();
        assert_eq!(changed, [("threshold", "0.95", "0.88"), ("severity", "high", "critical")]);
        let e = p.expected.as_ref().unwrap();
        // Known scores: at 0.95 FPIR 10 %, FNIR 60 %; at 0.88 two false alarms, 2 misses.
        assert_eq!((e.old.fpir, e.old.fnir), (0.1, 1.0 - 0.4));
        assert_eq!((e.new.fpir, e.new.fnir), (0.2, 1.0 - 0.8));
        assert_eq!((p.reviews_old.confirmed, p.reviews_old.dismissed), (4, 1));
        assert_eq!((p.reviews_new.confirmed, p.reviews_new.dismissed), (5, 3));
        assert!(p.is_change());

        // Another embedder's report does not apply; no report says how to make one.
        let other = preview("wanted", &old, &patch, Some(&r), "arcface", &rates).unwrap();
        assert!(other.expected.is_none() && other.expected_note.unwrap().contains("arcface"));
        let none = preview("wanted", &old, &PolicyPatch::default(), None, "dlib", &[]).unwrap();
        assert!(!none.is_change() && none.expected_note.unwrap().contains("facewatch eval"));
        assert_eq!(none.reviews_new.reviewed(), 0);
        // A patch that could not be applied cannot be previewed either.
        assert!(preview("wanted", &old, &PolicyPatch::threshold(2.0), None, "dlib", &[]).is_err());
    }
}
