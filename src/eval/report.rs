//! The evaluation report ops read: `facewatch eval` writes it (`<data_dir>/eval/latest.json`,
//! atomically), the ops pages read it to say what a threshold costs. Schema `facewatch.eval.v1`:
//!
//! ```text
//! schema            "facewatch.eval.v1"
//! created_at        RFC 3339
//! source            the labelled folder evaluated
//! embedder          the embedder's name (scores of another model do not apply)
//! images, seconds   photos embedded and how long it took
//! verification      LFW pair numbers, or null without pairs_lfw_view2.tsv
//! identification    open-set numbers (rank-1, FNIR at FPIR 1 % / 5 %)
//! target_fpir       what --target-fpir asked for
//! recommended       {threshold, fpir, fnir}: the lowest threshold whose FPIR <= target_fpir
//! det               [{threshold, fpir, fnir}], thresholds ascending (the DET curve)
//! histogram         {lo, width, mated: [count], non_mated: [count]}: bin i is [lo + i width, lo + (i+1) width)
//! scores            {mated_total, mated_hits: [score], non_mated_total, non_mated: [score]}, ascending:
//!                   a mated probe is a hit at threshold t when its top-1 is its own identity with
//!                   score >= t (a wrong or missing top-1 misses at every threshold); a non-mated
//!                   probe is a false alarm when its top-1 score is >= t
//! ```
//!
//! FPIR(t) = non-mated scores >= t / non_mated_total; FNIR(t) = 1 - mated hits >= t / mated_total.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::{Identification, Verification};

pub const SCHEMA: &str = "facewatch.eval.v1";
/// The report's file name in its folder.
pub const LATEST: &str = "latest.json";
/// A report is read whole: this is as large as one may be (the full development set's is 0.2 MB).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;
/// Scores in a report, at most (each list of them).
const MAX_SCORES: usize = 4_000_000;
/// Points on the DET curve.
const DET_POINTS: usize = 201;
/// Histogram bin width (cosine).
pub const BIN_WIDTH: f32 = 0.005;

/// Where `facewatch eval` writes and the service reads the latest report.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("eval")
}

/// Open-set scores (see the module doc), each list ascending.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub mated_total: usize,
    pub mated_hits: Vec<f32>,
    pub non_mated_total: usize,
    pub non_mated: Vec<f32>,
}

/// One threshold and what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub threshold: f32,
    /// False-positive identification rate: non-mated probes that would alert.
    pub fpir: f64,
    /// False-negative identification rate: mated probes that would not.
    pub fnir: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub lo: f32,
    pub width: f32,
    pub mated: Vec<u64>,
    pub non_mated: Vec<u64>,
}

/// How many of ascending `sorted` are >= `t`.
fn at_or_above(sorted: &[f32], t: f32) -> usize {
    sorted.len() - sorted.partition_point(|s| *s < t)
}

impl Scores {
    /// From each mated probe's (top-1 is its identity, top-1 score) and the top-1 scores of the
    /// non-mated probes that gave one (`non_mated_total` counts them all: a probe without a face
    /// cannot raise a false alarm).
    pub fn new(mated: &[(bool, f32)], non_mated_total: usize, mut non_mated: Vec<f32>) -> Self {
        let mut mated_hits: Vec<f32> = mated.iter().filter(|(ok, s)| *ok && s.is_finite()).map(|m| m.1).collect();
        mated_hits.sort_by(f32::total_cmp);
        non_mated.retain(|s| s.is_finite());
        non_mated.sort_by(f32::total_cmp);
        Self { mated_total: mated.len(), mated_hits, non_mated_total: non_mated_total.max(non_mated.len()), non_mated }
    }

    pub fn fpir(&self, t: f32) -> f64 {
        at_or_above(&self.non_mated, t) as f64 / self.non_mated_total.max(1) as f64
    }

    pub fn fnir(&self, t: f32) -> f64 {
        1.0 - at_or_above(&self.mated_hits, t) as f64 / self.mated_total.max(1) as f64
    }

    pub fn at(&self, threshold: f32) -> OperatingPoint {
        OperatingPoint { threshold, fpir: self.fpir(threshold), fnir: self.fnir(threshold) }
    }

    /// The lowest threshold that keeps FPIR at or below `target`: just above the non-mated score
    /// that would be one false alarm too many (the lowest score of all when none is).
    pub fn threshold_for_fpir(&self, target: f64) -> f32 {
        let allowed = (target.clamp(0.0, 1.0) * self.non_mated_total as f64).floor() as usize;
        // The (allowed + 1)-th highest non-mated score must fall below the threshold.
        match self.non_mated.len().checked_sub(allowed + 1) {
            Some(i) => next_up(self.non_mated[i]),
            None => self.lowest().unwrap_or(-1.0),
        }
    }

    pub fn recommend(&self, target_fpir: f64) -> OperatingPoint {
        self.at(self.threshold_for_fpir(target_fpir))
    }

    fn lowest(&self) -> Option<f32> {
        [self.mated_hits.first(), self.non_mated.first()].into_iter().flatten().copied().reduce(f32::min)
    }

    /// The score range the curves span: from the lowest score (down to a bin edge) to 1.
    pub fn range(&self) -> (f32, f32) {
        let lo = self.lowest().unwrap_or(0.0).clamp(-1.0, 1.0);
        let lo = ((lo / BIN_WIDTH).floor() * BIN_WIDTH).max(-1.0);
        (lo, 1.0_f32.max(lo + BIN_WIDTH))
    }

    /// The DET curve on evenly spaced thresholds across [`Scores::range`], ascending.
    pub fn det(&self) -> Vec<OperatingPoint> {
        let (lo, hi) = self.range();
        (0..DET_POINTS).map(|i| self.at(lo + (hi - lo) * i as f32 / (DET_POINTS - 1) as f32)).collect()
    }

    pub fn histogram(&self) -> Histogram {
        let (lo, hi) = self.range();
        let bins = (((hi - lo) / BIN_WIDTH).round() as usize).max(1) + 1;
        let count = |scores: &[f32]| {
            let mut c = vec![0u64; bins];
            for s in scores {
                let i = (((s - lo) / BIN_WIDTH).floor().max(0.0) as usize).min(bins - 1);
                c[i] += 1;
            }
            c
        };
        Histogram { lo, width: BIN_WIDTH, mated: count(&self.mated_hits), non_mated: count(&self.non_mated) }
    }

    /// A report read from disk is input: sorted, finite, in range, counts that add up.
    fn validate(&self) -> Result<()> {
        let ok = |v: &[f32]| v.iter().all(|s| (-1.0..=1.0).contains(s)) && v.is_sorted_by(|a, b| a <= b);
        if self.mated_hits.len() > MAX_SCORES || self.non_mated.len() > MAX_SCORES {
            return Err(Error::Invalid(format!("evaluation report: more than {MAX_SCORES} scores")));
        }
        if !ok(&self.mated_hits) || !ok(&self.non_mated) {
            return Err(Error::Invalid("evaluation report: scores not ascending cosines in -1..1".into()));
        }
        if self.mated_hits.len() > self.mated_total || self.non_mated.len() > self.non_mated_total {
            return Err(Error::Invalid("evaluation report: more scores than probes".into()));
        }
        Ok(())
    }
}

/// The next larger f32: a threshold strictly above a score (scores at or above it alert).
fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    let next = if x == 0.0 {
        1
    } else if x > 0.0 {
        bits + 1
    } else {
        bits - 1
    };
    f32::from_bits(next)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub schema: String,
    pub created_at: String,
    pub source: String,
    pub embedder: String,
    pub images: usize,
    pub seconds: f64,
    pub verification: Option<Verification>,
    pub identification: Identification,
    pub target_fpir: f64,
    pub recommended: OperatingPoint,
    pub det: Vec<OperatingPoint>,
    pub histogram: Histogram,
    pub scores: Scores,
}

/// What an evaluation measured, before it becomes a report.
pub struct Measured {
    pub source: String,
    pub embedder: String,
    pub images: usize,
    pub seconds: f64,
    pub verification: Option<Verification>,
    pub identification: Identification,
    pub scores: Scores,
}

impl EvalReport {
    pub fn new(m: Measured, target_fpir: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&target_fpir) {
            return Err(Error::Invalid(format!("target FPIR {target_fpir}: expected 0..1")));
        }
        Ok(Self {
            schema: SCHEMA.into(),
            created_at: crate::clock::rfc3339(crate::clock::now_ms()),
            recommended: m.scores.recommend(target_fpir),
            det: m.scores.det(),
            histogram: m.scores.histogram(),
            source: m.source,
            embedder: m.embedder,
            images: m.images,
            seconds: m.seconds,
            verification: m.verification,
            identification: m.identification,
            target_fpir,
            scores: m.scores,
        })
    }

    /// Writes `latest.json` into `dir` atomically (a reader sees the old report or the new one,
    /// never half of one); its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(format!("evaluation report: {e}")))?;
        write_atomic(&dir.join(LATEST), &json)
    }

    /// The report in `dir`; `None` when no evaluation was run there. Bounded and checked: a
    /// report is a file anyone with the data folder could have edited.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(LATEST);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_REPORT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
        if bytes.len() as u64 > MAX_REPORT_BYTES {
            return Err(Error::Invalid(format!("{}: larger than {MAX_REPORT_BYTES} bytes", path.display())));
        }
        let r: Self = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{}: not an evaluation report: {e}", path.display())))?;
        if r.schema != SCHEMA {
            return Err(Error::Invalid(format!("{}: schema {:?}, expected {SCHEMA}", path.display(), r.schema)));
        }
        r.scores.validate()?;
        Ok(Some(r))
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("report");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 10 mated probes (8 right at 0.91..0.98, 2 wrong), 10 non-mated at 0.80..0.89 and 0.95.
    pub(crate) fn known() -> Scores {
        let mut mated: Vec<(bool, f32)> =
            [0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98].into_iter().map(|s| (true, s)).collect();
        mated.extend([(false, 0.99), (false, f32::MIN)]);
        let non = vec![0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.95];
        Scores::new(&mated, 10, non)
    }

    #[test]
    fn rates_at_a_threshold() {
        let s = known();
        assert_eq!((s.mated_total, s.mated_hits.len(), s.non_mated.len()), (10, 8, 10));
        // At 0.95: one false alarm (0.95) of 10; hits 0.95..0.98 = 4 of 10 mated.
        assert!((s.fpir(0.95) - 0.1).abs() < 1e-9);
        assert!((s.fnir(0.95) - 0.6).abs() < 1e-9);
        // Wrong identities miss at any threshold.
        assert!((s.fnir(-1.0) - 0.2).abs() < 1e-9);
        assert!((s.fpir(-1.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn recommended_threshold_for_a_target_fpir() {
        let s = known();
        // 10 % of 10 non-mated = 1 false alarm allowed: just above the second highest (0.88).
        let r = s.recommend(0.10);
        assert!(r.threshold > 0.88 && r.threshold < 0.8801, "{r:?}");
        assert!((r.fpir - 0.1).abs() < 1e-9, "{r:?}");
        // Hits 0.91..0.98 all at or above it: only the 2 wrong identities miss.
        assert!((r.fnir - 0.2).abs() < 1e-9, "{r:?}");
        // 0 % allowed: above the highest non-mated score, 0.95; 0.96..0.98 hit.
        let z = s.recommend(0.0);
        assert!(z.threshold > 0.95 && z.fpir == 0.0 && (z.fnir - 0.7).abs() < 1e-9, "{z:?}");
        // Everything allowed: the lowest score, where every non-mated probe alerts.
        assert_eq!(s.recommend(1.0).fpir, 1.0);
        // The same point identification() reports (its own rule).
        let t = s.threshold_for_fpir(0.01);
        assert!(t > 0.95);
    }

    #[test]
    fn det_and_histogram_cover_every_score() {
        let s = known();
        let det = s.det();
        assert_eq!(det.len(), DET_POINTS);
        assert!(det.windows(2).all(|w| w[0].threshold < w[1].threshold && w[0].fpir >= w[1].fpir));
        assert!(det.windows(2).all(|w| w[0].fnir <= w[1].fnir));
        let h = s.histogram();
        assert!(h.lo <= 0.80 && h.lo > 0.79, "{}", h.lo);
        assert_eq!(h.mated.iter().sum::<u64>(), 8);
        assert_eq!(h.non_mated.iter().sum::<u64>(), 10);
        // The false alarm at 0.95 is in its bin, nothing above it is non-mated.
        let bin = ((0.95 - h.lo) / h.width).floor() as usize;
        assert_eq!(h.non_mated[bin], 1);
        assert!(h.non_mated[bin + 1..].iter().all(|c| *c == 0));
    }

    #[test]
    fn report_round_trips_and_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(EvalReport::load(dir.path()).unwrap().is_none());
        let ident = Identification {
            gallery: 1,
            mated: 10,
            non_mated: 10,
            missing: 1,
            rank1: 0.8,
            fnir_at_fpir_1pct: 0.7,
            threshold_at_fpir_1pct: 0.95,
            fnir_at_fpir_5pct: 0.7,
            threshold_at_fpir_5pct: 0.95,
        };
        let m = Measured {
            source: "x".into(),
            embedder: "e".into(),
            images: 21,
            seconds: 1.0,
            verification: None,
            identification: ident,
            scores: known(),
        };
        let r = EvalReport::new(m, 0.1).unwrap();
        r.write(dir.path()).unwrap();
        let back = EvalReport::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.scores, r.scores);
        assert_eq!(back.recommended, r.recommended);
        std::fs::write(dir.path().join(LATEST), br#"{"schema": "other"}"#).unwrap();
        assert!(EvalReport::load(dir.path()).is_err());
        let mut bad = serde_json::to_value(&r).unwrap();
        bad["scores"]["non_mated"] = serde_json::json!([0.9, 0.1]);
        std::fs::write(dir.path().join(LATEST), bad.to_string()).unwrap();
        assert!(matches!(EvalReport::load(dir.path()), Err(Error::Invalid(_))));
    }
}
