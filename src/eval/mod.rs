//! Accuracy on labelled photos: LFW pair verification and open-set identification, through
//! the same pipeline and index the service uses. LFW photos often show several people; the
//! labelled one is the face nearest the centre.
//!
//! On video: [`clip`] generates arrival-hall clips with ground truth, [`replay`] runs one
//! through the engine, [`rule`] decides on the frames, [`video`] scores the decisions per pass,
//! [`calibrate`] sweeps both rules' thresholds and recommends one for each.

pub mod calibrate;
pub mod clip;
pub mod plot;
pub mod replay;
pub mod report;
pub(crate) mod rng;
pub mod rule;
pub mod video;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::{Pipeline, PipelineOptions, nearest_center};
use crate::vision::decode::{DEFAULT_MAX_PIXELS, decode_file};
use crate::vision::embed::cosine;
use crate::watchlist::index::ListIndex;
use crate::watchlist::store::TemplateRow;

/// The centre face of one image: its embedding as a probe, and, for the images asked for as a
/// gallery, the enrollment template the service would store for it (mirrored where the
/// embedder's manifest says so).
#[derive(Debug, Clone)]
pub struct CentreFace {
    pub embedding: Vec<f32>,
    pub template: Option<Vec<f32>>,
}

/// Embeds the centre face of every image with `workers` pipelines in parallel (each with
/// `opts.runtime.intra_threads` threads), and makes the template of those in `gallery`. `None`
/// where no face was found or the file is bad.
pub fn embed_centre_faces(
    models: &Path,
    opts: &PipelineOptions,
    paths: &[PathBuf],
    workers: usize,
    gallery: &BTreeSet<PathBuf>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Option<CentreFace>>> {
    let out = Mutex::new(vec![None; paths.len()]);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let first_err = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                let mut p = match Pipeline::open(models, opts.clone()) {
                    Ok(p) => p,
                    Err(e) => {
                        first_err.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= paths.len() {
                        break;
                    }
                    let emb = decode_file(&paths[i], DEFAULT_MAX_PIXELS).ok().and_then(|img| {
                        let faces = p.faces(&img, None).ok()?;
                        let face = nearest_center(&faces, img.width(), img.height())?;
                        let embedding = face.embedding.clone()?;
                        let template = if gallery.contains(&paths[i]) {
                            // Exactly what the service stores for this face.
                            let mut t = face.clone();
                            p.embed_templates(std::slice::from_mut(&mut t)).ok()?;
                            t.embedding
                        } else {
                            None
                        };
                        Some(CentreFace { embedding, template })
                    });
                    out.lock().unwrap_or_else(|e| e.into_inner())[i] = emb;
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(out.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// One LFW pair: paths relative to the faces folder, same person or not, fold 1..10.
#[derive(Debug, Clone)]
pub struct Pair {
    pub left: String,
    pub right: String,
    pub same: bool,
    pub fold: u32,
}

pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            return Err(Error::Invalid(format!("{}:{}: expected 4 tab-separated fields", path.display(), n + 1)));
        }
        pairs.push(Pair {
            left: f[0].to_string(),
            right: f[1].to_string(),
            same: f[2] == "1",
            fold: f[3].parse().map_err(|_| Error::Invalid(format!("{}:{}: bad fold", path.display(), n + 1)))?,
        });
    }
    Ok(pairs)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub pairs: usize,
    /// Pairs where one image had no face (scored as "different").
    pub missing: usize,
    /// Accuracy at the single best cosine threshold over all pairs.
    pub best_accuracy: f64,
    pub best_threshold: f32,
    /// LFW protocol: threshold chosen on 9 folds, accuracy on the 10th, averaged.
    pub cv_accuracy: f64,
    pub tar_at_far_1pct: f64,
}

/// Best threshold and its accuracy over (score, same) samples.
fn best_threshold(samples: &[(f32, bool)]) -> (f32, f64) {
    let mut s: Vec<(f32, bool)> = samples.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = s.iter().filter(|x| x.1).count();
    // Threshold below s[i]: everything from i up is "same".
    let (mut best_t, mut best_correct) = (f32::MIN, positives);
    let mut neg_below = 0usize;
    let mut pos_below = 0usize;
    for i in 0..s.len() {
        if s[i].1 {
            pos_below += 1
        } else {
            neg_below += 1
        }
        let correct = neg_below + (positives - pos_below);
        if correct > best_correct {
            best_correct = correct;
            best_t = match s.get(i + 1) {
                Some(next) => (s[i].0 + next.0) / 2.0,
                None => s[i].0 + 1e-6,
            };
        }
    }
    (best_t, best_correct as f64 / s.len().max(1) as f64)
}

fn accuracy_at(samples: &[(f32, bool)], t: f32) -> f64 {
    let ok = samples.iter().filter(|(s, same)| (*s >= t) == *same).count();
    ok as f64 / samples.len().max(1) as f64
}

pub fn verification(pairs: &[Pair], emb: &BTreeMap<String, Option<Vec<f32>>>) -> Verification {
    let mut missing = 0;
    let samples: Vec<(f32, bool, u32)> = pairs
        .iter()
        .map(|p| {
            let score = match (emb.get(&p.left).cloned().flatten(), emb.get(&p.right).cloned().flatten()) {
                (Some(a), Some(b)) => cosine(&a, &b),
                _ => {
                    missing += 1;
                    -1.0
                }
            };
            (score, p.same, p.fold)
        })
        .collect();
    let all: Vec<(f32, bool)> = samples.iter().map(|s| (s.0, s.1)).collect();
    let (best_threshold, best_accuracy) = best_threshold(&all);
    let folds: Vec<u32> = {
        let mut f: Vec<u32> = samples.iter().map(|s| s.2).collect();
        f.sort_unstable();
        f.dedup();
        f
    };
    let mut cv = Vec::new();
    for &f in &folds {
        let train: Vec<(f32, bool)> = samples.iter().filter(|s| s.2 != f).map(|s| (s.0, s.1)).collect();
        let test: Vec<(f32, bool)> = samples.iter().filter(|s| s.2 == f).map(|s| (s.0, s.1)).collect();
        if train.is_empty() || test.is_empty() {
            continue;
        }
        cv.push(accuracy_at(&test, best_threshold_of(&train)));
    }
    let cv_accuracy = if cv.is_empty() { best_accuracy } else { cv.iter().sum::<f64>() / cv.len() as f64 };
    let mut impostors: Vec<f32> = all.iter().filter(|s| !s.1).map(|s| s.0).collect();
    impostors.sort_by(|a, b| b.total_cmp(a));
    let t_far = impostors.get(impostors.len() / 100).copied().unwrap_or(1.0);
    let genuine: Vec<f32> = all.iter().filter(|s| s.1).map(|s| s.0).collect();
    let tar = genuine.iter().filter(|&&s| s > t_far).count() as f64 / genuine.len().max(1) as f64;
    Verification { pairs: pairs.len(), missing, best_accuracy, best_threshold, cv_accuracy, tar_at_far_1pct: tar }
}

fn best_threshold_of(samples: &[(f32, bool)]) -> f32 {
    best_threshold(samples).0
}

/// Development-set split for open-set identification.
#[derive(Debug, Clone, Default)]
pub struct IdentificationSet {
    /// (identity, image path) — the first image of every identity with >= 2 images.
    pub gallery: Vec<(String, PathBuf)>,
    pub mated: Vec<(String, PathBuf)>,
    /// Images of identities with exactly one image (not in the gallery).
    pub non_mated: Vec<(String, PathBuf)>,
}

impl IdentificationSet {
    pub fn from_faces_dir(dir: &Path) -> Result<Self> {
        let mut set = Self::default();
        let mut ids: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        ids.sort();
        for id_dir in ids {
            let name = id_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let mut imgs: Vec<PathBuf> = std::fs::read_dir(&id_dir)
                .map_err(|e| Error::io(&id_dir, e))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")))
                .collect();
            imgs.sort();
            match imgs.len() {
                0 => {}
                1 => set.non_mated.push((name, imgs.remove(0))),
                _ => {
                    let first = imgs.remove(0);
                    set.gallery.push((name.clone(), first));
                    set.mated.extend(imgs.into_iter().map(|p| (name.clone(), p)));
                }
            }
        }
        Ok(set)
    }

    pub fn all_paths(&self) -> Vec<PathBuf> {
        self.gallery.iter().chain(&self.mated).chain(&self.non_mated).map(|x| x.1.clone()).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identification {
    pub gallery: usize,
    pub mated: usize,
    pub non_mated: usize,
    /// Probes or gallery images where no face was found.
    pub missing: usize,
    pub rank1: f64,
    pub fnir_at_fpir_1pct: f64,
    pub threshold_at_fpir_1pct: f32,
    pub fnir_at_fpir_5pct: f64,
    pub threshold_at_fpir_5pct: f32,
}

/// Runs open-set identification through a FAISS index built like a watch list's.
/// `emb` maps every probe of `set` to its embedding, `gallery` every gallery photo to its
/// enrollment template ([`CentreFace::template`]).
pub fn identification(
    set: &IdentificationSet,
    emb: &BTreeMap<PathBuf, Option<Vec<f32>>>,
    gallery: &BTreeMap<PathBuf, Option<Vec<f32>>>,
    factory: &str,
    model: &str,
    dim: u32,
) -> Result<Identification> {
    Ok(identification_scores(set, emb, gallery, factory, model, dim)?.0)
}

/// [`identification`] and the scores behind it (the DET curve, histograms and thresholds of
/// [`report`]).
pub fn identification_scores(
    set: &IdentificationSet,
    emb: &BTreeMap<PathBuf, Option<Vec<f32>>>,
    gallery: &BTreeMap<PathBuf, Option<Vec<f32>>>,
    factory: &str,
    model: &str,
    dim: u32,
) -> Result<(Identification, report::Scores)> {
    let mut missing = 0;
    let mut templates = Vec::new();
    for (i, (name, path)) in set.gallery.iter().enumerate() {
        match gallery.get(path).cloned().flatten() {
            Some(e) => templates.push(TemplateRow {
                id: i as i64 + 1,
                subject: name.clone(),
                name: None,
                model: model.to_string(),
                embedding: e,
            }),
            None => missing += 1,
        }
    }
    let mut index = ListIndex::build(&templates, factory, model, dim)?;
    let mut top1 = |path: &PathBuf| -> Result<Option<(String, f32)>> {
        let Some(e) = emb.get(path).cloned().flatten() else { return Ok(None) };
        let hits = index.search(&e, 1)?.pop().unwrap_or_default();
        Ok(hits.first().and_then(|(id, s)| index.owner(*id).map(|o| (o.subject.clone(), *s))))
    };
    let mut mated = Vec::with_capacity(set.mated.len());
    for (name, path) in &set.mated {
        match top1(path)? {
            Some((who, s)) => mated.push((who == *name, s)),
            None => {
                missing += 1;
                mated.push((false, f32::MIN));
            }
        }
    }
    let mut non_mated = Vec::with_capacity(set.non_mated.len());
    for (_, path) in &set.non_mated {
        match top1(path)? {
            Some((_, s)) => non_mated.push(s),
            None => missing += 1, // no face: cannot raise a false alarm
        }
    }
    non_mated.sort_by(|a, b| b.total_cmp(a));
    let n_non = set.non_mated.len().max(1);
    let at_fpir = |fpir: f64| -> (f32, f64) {
        // Smallest threshold with at most `fpir` of non-mated probes at or above it.
        let allowed = (fpir * n_non as f64).floor() as usize;
        let t = non_mated.get(allowed).map(|s| s + 1e-6).unwrap_or(f32::MIN);
        let hits = mated.iter().filter(|(ok, s)| *ok && *s >= t).count();
        (t, 1.0 - hits as f64 / mated.len().max(1) as f64)
    };
    let (t1, f1) = at_fpir(0.01);
    let (t5, f5) = at_fpir(0.05);
    let scores = report::Scores::new(&mated, set.non_mated.len(), non_mated.clone());
    let ident = Identification {
        gallery: set.gallery.len(),
        mated: set.mated.len(),
        non_mated: set.non_mated.len(),
        missing,
        rank1: mated.iter().filter(|m| m.0).count() as f64 / mated.len().max(1) as f64,
        fnir_at_fpir_1pct: f1,
        threshold_at_fpir_1pct: t1,
        fnir_at_fpir_5pct: f5,
        threshold_at_fpir_5pct: t5,
    };
    Ok((ident, scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_threshold_separates() {
        let s = [(0.1, false), (0.2, false), (0.8, true), (0.9, true), (0.3, true)];
        let (t, acc) = best_threshold(&s);
        assert!((acc - 1.0).abs() < 1e-9, "{t} {acc}");
        assert!(t > 0.2 && t <= 0.3);
    }
}
