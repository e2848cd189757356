//! `facewatch identify | embed`: run the local pipeline on photos (read-only).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use facewatch::config::ServiceConfig;
use facewatch::vision::decode::decode_file;
use facewatch::vision::quality::{QualityGate, Rejection};

use super::{open_pipeline, open_watchlist};

fn reasons(r: &[Rejection]) -> String {
    r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; ")
}

pub fn identify(s: &ServiceConfig, json: bool, top: usize, images: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut p = open_pipeline(s)?;
    let wl = open_watchlist(s, &p)?;
    let gate = QualityGate::default();
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in images {
        let file = path.display().to_string();
        let faces = match decode_file(path, s.limits.max_pixels).and_then(|img| p.faces(&img, Some(&gate))) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                failed = true;
                continue;
            }
        };
        let mut rows = Vec::new();
        for f in &faces {
            let matches = match &f.embedding {
                Some(e) => wl.matches(e, top)?,
                None => Vec::new(),
            };
            rows.push((f, matches));
        }
        if json {
            let faces: Vec<_> = rows
                .iter()
                .map(|(f, m)| {
                    json!({
                        "bbox": f.detection.bbox,
                        "score": f.detection.score,
                        "quality": f.quality,
                        "status": if !f.rejections.is_empty() { "rejected" } else if m.is_empty() { "unknown" } else { "match" },
                        "rejections": f.rejections.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        "matches": m,
                    })
                })
                .collect();
            writeln!(out, "{}", json!({"file": file, "faces": faces}))?;
        } else {
            writeln!(out, "{file}: {} face(s)", rows.len())?;
            for (i, (f, m)) in rows.iter().enumerate() {
                let b = f.detection.bbox;
                let head = format!("  face {} at [{:.0},{:.0} {:.0}x{:.0}]", i + 1, b[0], b[1], b[2], b[3]);
                if !f.rejections.is_empty() {
                    writeln!(out, "{head}: not usable ({})", reasons(&f.rejections))?;
                } else if m.is_empty() {
                    writeln!(out, "{head}: unknown")?;
                } else {
                    for c in m {
                        let name = c.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
                        writeln!(
                            out,
                            "{head}: MATCH {}/{}{name} score {:.3} (threshold {:.3})",
                            c.list, c.subject, c.score, c.threshold
                        )?;
                    }
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub fn embed(s: &ServiceConfig, images: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut p = open_pipeline(s)?;
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in images {
        let file = path.display().to_string();
        let faces = match decode_file(path, s.limits.max_pixels).and_then(|img| p.faces(&img, None)) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                failed = true;
                continue;
            }
        };
        if faces.is_empty() {
            writeln!(out, "{}", json!({"file": file, "faces": 0}))?;
        }
        for f in faces {
            let d = f.detection;
            writeln!(
                out,
                "{}",
                json!({"file": file, "bbox": d.bbox, "score": d.score, "landmarks": d.landmarks, "embedding": f.embedding})
            )?;
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
