//! `facewatch enroll | import | lists | remove | threshold`: the watch lists in the data folder.
//! The commands that change them hold the data folder and refuse while the service runs on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use facewatch::audit::Actor;
use facewatch::config::ServiceConfig;
use facewatch::data_lock::DataLock;
use facewatch::enroll::{self, Examined};
use facewatch::media::Media;
use facewatch::pipeline::Pipeline;
use facewatch::vision::decode::decode_file;
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::Watchlist;
use facewatch::watchlist::policy::Policy;

use super::{open_pipeline, open_watchlist, open_watchlist_light};

/// Commands that change watch lists hold the data folder for their whole run, and refuse while
/// a running service holds it: the service would not see the change until restart.
fn own_data_dir(s: &ServiceConfig) -> anyhow::Result<DataLock> {
    Ok(DataLock::acquire(&s.service.data_dir)?)
}

pub fn lists(s: &ServiceConfig, json: bool) -> anyhow::Result<ExitCode> {
    let wl = open_watchlist_light(s)?;
    let lists = wl.summaries()?;
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
    let mut wl = open_watchlist_light(s)?;
    let ids = wl.remove(list, subject, &Actor::local())?;
    wl.flush()?;
    Media::open(&s.service.data_dir)?.delete_references(&ids);
    println!("removed {subject} from {list} ({} templates purged)", ids.len());
    Ok(ExitCode::SUCCESS)
}

pub fn threshold(s: &ServiceConfig, list: &str, value: f32) -> anyhow::Result<ExitCode> {
    let _owner = own_data_dir(s)?;
    let mut wl = open_watchlist_light(s)?;
    let policy = Policy { threshold: value, ..wl.list(list)?.policy };
    wl.set_policy(list, &policy, &Actor::local())?;
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
    let mut wl = open_watchlist(s, &p)?;
    let policy = Policy::with_threshold(threshold.unwrap_or(p.manifest.embedder.default_threshold));
    wl.create_list(list, &policy, &Actor::local())?;
    let assessed = assess_photos(s, &mut p, images);
    let refused = refusals(images, &assessed);
    for (path, why) in &refused {
        eprintln!("refused {}: {why}", path.display());
    }
    if assessed.accepted() == 0 {
        bail!("nothing enrolled for {subject}: every photo was refused");
    }
    let n = assessed.accepted();
    store_enrollment(s, &mut wl, list, subject, name, assessed)?;
    wl.flush()?;
    println!("enrolled {subject} in {list}: {n} template(s), {} photo(s) refused", refused.len());
    Ok(ExitCode::SUCCESS)
}

/// Stores the accepted templates (audited) and their reference images.
fn store_enrollment(
    s: &ServiceConfig,
    wl: &mut Watchlist,
    list: &str,
    subject: &str,
    name: Option<&str>,
    assessed: enroll::Assessed,
) -> anyhow::Result<()> {
    let media = Media::open(&s.service.data_dir)?;
    assessed.store(&media, |t| wl.enroll(list, subject, name, t, &Actor::local()))?;
    Ok(())
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
    let mut wl = open_watchlist(s, &p)?;
    let policy = Policy::with_threshold(threshold.unwrap_or(p.manifest.embedder.default_threshold));
    wl.create_list(list, &policy, &Actor::local())?;
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
            match store_enrollment(s, &mut wl, list, &id, Some(&name), assessed) {
                Ok(_) => enrolled += 1,
                Err(e) => refused_photos.push((sub.clone(), e.to_string())),
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    wl.flush()?;
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
