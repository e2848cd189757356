//! `facewatch enroll | import | lists | remove | threshold`: the watch lists in the data folder.
//! The commands that change them hold the data folder and refuse while the service runs on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use facewatch::access::Caller;
use facewatch::config::ServiceConfig;
use facewatch::data_lock::DataLock;
use facewatch::pipeline::Pipeline;
use facewatch::vision::decode::decode_file;
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::enroll::{self, Examined};
use facewatch::watchlist::policy::PolicyPatch;

use super::{open_pipeline, open_watchlists, watchlists_for};

/// The operator at this machine: the watch-list service's use cases, audited as `cli:<user>`.
const LOCAL: Caller = Caller::Local;

/// Commands that change watch lists hold the data folder for their whole run, and refuse while
/// a running service holds it: the service would not see the change until restart.
fn own_data_dir(s: &ServiceConfig) -> anyhow::Result<DataLock> {
    Ok(DataLock::acquire(&s.service.data_dir)?)
}

pub fn lists(s: &ServiceConfig, json: bool) -> anyhow::Result<ExitCode> {
    /// A line of `lists` (its `--json` shape is an interface: unchanged).
    #[derive(serde::Serialize)]
    struct Line {
        name: String,
        threshold: f32,
        subjects: i64,
        templates: i64,
    }
    let lists: Vec<Line> = open_watchlists(s)?
        .lists(&LOCAL)?
        .into_iter()
        .map(|l| Line { name: l.name, threshold: l.policy.threshold, subjects: l.subjects, templates: l.templates })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&lists)?);
    } else if lists.is_empty() {
        println!("no watch lists");
    } else {
        println!("{:<24} {:>9} {:>9} {:>10}", "list", "threshold", "subjects", "templates");
        for l in lists {
            println!("{:<24} {:>9.3} {:>9} {:>10}", l.name, l.threshold, l.subjects, l.templates);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(s: &ServiceConfig, list: &str, subject: &str) -> anyhow::Result<ExitCode> {
    let _owner = own_data_dir(s)?;
    let wl = open_watchlists(s)?;
    let n = wl.delete_subject(&LOCAL, list, subject)?;
    wl.close();
    println!("removed {subject} from {list} ({n} templates purged)");
    Ok(ExitCode::SUCCESS)
}

pub fn threshold(s: &ServiceConfig, list: &str, value: f32) -> anyhow::Result<ExitCode> {
    let _owner = own_data_dir(s)?;
    open_watchlists(s)?.set_policy(&LOCAL, list, &PolicyPatch::threshold(value))?;
    println!("{list}: threshold {value}");
    Ok(ExitCode::SUCCESS)
}

/// Examines each photo with the local pipeline and judges it by the one enrollment path
/// (the API's): the stored source is `cli:<file name>`, never the local path.
fn assess_photos(s: &ServiceConfig, p: &mut Pipeline, images: &[PathBuf]) -> enroll::Assessed {
    let gate = QualityGate::enrollment();
    let mut assessed = enroll::Assessed::new();
    // One photo at a time: a folder of large photos never sits decoded in memory at once.
    for path in images {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let res = decode_file(path, s.limits.max_pixels).and_then(|img| Ok((enroll::examine(p, &img, &gate)?, img)));
        let x = res.as_ref().map_err(|e| e.to_string()).map(|((face, refused), img)| Examined {
            image: img,
            face: face.as_ref(),
            refused: refused.as_ref(),
        });
        assessed.judge("cli", name, x);
    }
    assessed
}

/// The refused photos of an assessment, with their reasons, by path.
fn refusals(images: &[PathBuf], a: &enroll::Assessed) -> Vec<(PathBuf, String)> {
    images
        .iter()
        .zip(&a.verdicts)
        .filter(|(_, v)| !v.accepted)
        .map(|(p, v)| (p.clone(), v.reasons.join("; ")))
        .collect()
}

pub fn enroll(
    s: &ServiceConfig,
    list: &str,
    subject: &str,
    name: Option<&str>,
    threshold: Option<f32>,
    images: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let _owner = own_data_dir(s)?;
    let mut p = open_pipeline(s)?;
    let wl = watchlists_for(s, &p.manifest.embedder)?;
    wl.ensure_list(&LOCAL, list, &new_list(threshold))?;
    let assessed = assess_photos(s, &mut p, images);
    let refused = refusals(images, &assessed);
    for (path, why) in &refused {
        eprintln!("refused {}: {why}", path.display());
    }
    if assessed.accepted() == 0 {
        bail!("nothing enrolled for {subject}: every photo was refused");
    }
    let n = assessed.accepted();
    wl.enroll_assessed(&LOCAL, list, subject, name, assessed)?;
    wl.close();
    println!("enrolled {subject} in {list}: {n} template(s), {} photo(s) refused", refused.len());
    Ok(ExitCode::SUCCESS)
}

/// A list created by `enroll` or `import`: the model's threshold unless one is given.
fn new_list(threshold: Option<f32>) -> PolicyPatch {
    PolicyPatch { threshold, ..PolicyPatch::default() }
}

pub fn import(s: &ServiceConfig, list: &str, threshold: Option<f32>, dir: &Path) -> anyhow::Result<ExitCode> {
    let mut subjects: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subjects.sort();
    if subjects.is_empty() {
        bail!("{}: no sub-folders (expected one folder of photos per subject)", dir.display());
    }
    let _owner = own_data_dir(s)?;
    let mut p = open_pipeline(s)?;
    let wl = watchlists_for(s, &p.manifest.embedder)?;
    wl.ensure_list(&LOCAL, list, &new_list(threshold))?;
    let bar = indicatif::ProgressBar::new(subjects.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} subjects {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut enrolled, mut templates) = (0usize, 0usize);
    let mut refused_photos: Vec<(PathBuf, String)> = Vec::new();
    let mut refused_subjects = Vec::new();
    for sub in &subjects {
        let id = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(sub)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        photos.sort();
        let assessed = assess_photos(s, &mut p, &photos);
        refused_photos.extend(refusals(&photos, &assessed));
        if assessed.accepted() == 0 {
            refused_subjects.push(id);
        } else {
            templates += assessed.accepted();
            let name = id.replace('_', " ");
            match wl.enroll_assessed(&LOCAL, list, &id, Some(&name), assessed) {
                Ok(_) => enrolled += 1,
                Err(e) => refused_photos.push((sub.clone(), e.to_string())),
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    wl.close();
    println!(
        "imported {enrolled}/{} subjects into {list}: {templates} templates; {} photos refused",
        subjects.len(),
        refused_photos.len()
    );
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for (_, why) in &refused_photos {
        let key = why.split(" (").next().unwrap_or(why).to_string();
        *by_reason.entry(key).or_default() += 1;
    }
    for (why, n) in &by_reason {
        println!("  refused {n:>5}: {why}");
    }
    for (path, why) in &refused_photos {
        eprintln!("refused {}: {why}", path.display());
    }
    if !refused_subjects.is_empty() {
        println!("  subjects with no usable photo: {}", refused_subjects.join(", "));
    }
    Ok(if enrolled > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
