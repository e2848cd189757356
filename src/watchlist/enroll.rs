//! Enrollment: the one path from examined photos to stored templates, used by the API and the
//! CLI alike. A watch-list photo must show one clear face. The largest face is taken; a second
//! face of comparable size makes the photo ambiguous and it is refused.

use image::RgbImage;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::media::{self, Media};
use crate::pipeline::{Face, Pipeline};
use crate::vision::detect::Detection;
use crate::vision::quality::{QualityGate, QualityReport, Rejection};
use crate::watchlist::store::NewTemplate;

/// The verdict on one enrollment photo.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImageVerdict {
    /// The photo's file name in the form.
    pub image: String,
    pub accepted: bool,
    /// Why it was refused (no face, several faces, too small, blurry, dark, not frontal...).
    pub reasons: Vec<String>,
    pub quality: Option<QualityReport>,
    pub template_id: Option<i64>,
}

/// An enrollment: a verdict for each photo, a template for each accepted one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnrollReport {
    pub list: String,
    pub subject: String,
    /// Templates added by this request.
    pub templates: usize,
    pub images: Vec<ImageVerdict>,
}

/// One photo after detection, from the service's model workers or the CLI's own pipeline.
pub struct Examined<'a> {
    pub image: &'a RgbImage,
    /// The face [`choose`] picked, with its quality (embedded only when it passed the gate).
    pub face: Option<&'a Face>,
    /// Why the photo has no face to enroll.
    pub refused: Option<&'a Rejection>,
}

/// Photos judged: a verdict for each, a template (and reference crop) for each accepted one.
pub struct Assessed {
    pub verdicts: Vec<ImageVerdict>,
    kept: Vec<(usize, NewTemplate, Result<Vec<u8>>)>,
}

/// Judges each named photo (an `Err` is why it could not be examined). `origin` ("api", "cli")
/// prefixes the stored source with the photo's bare name: never a path on some machine.
pub fn assess<'a>(
    origin: &str,
    photos: impl IntoIterator<Item = (String, std::result::Result<Examined<'a>, String>)>,
) -> Assessed {
    let mut a = Assessed { verdicts: Vec::new(), kept: Vec::new() };
    for (image, res) in photos {
        a.judge(origin, image, res);
    }
    a
}

impl Assessed {
    /// An empty assessment, for callers that judge one photo at a time (and drop it after).
    pub fn new() -> Self {
        Self { verdicts: Vec::new(), kept: Vec::new() }
    }

    /// Judges one photo; only its template and reference crop are kept.
    pub fn judge(&mut self, origin: &str, image: String, res: std::result::Result<Examined<'_>, String>) {
        let v = match res {
            Err(e) => ImageVerdict { image, accepted: false, reasons: vec![e], quality: None, template_id: None },
            Ok(x) => match (x.face.filter(|f| f.embedding.is_some()), x.refused) {
                (Some(f), None) => {
                    let q = QualityReport::from(f.quality);
                    let t = NewTemplate {
                        embedding: f.embedding.clone().unwrap_or_default(),
                        quality: serde_json::to_string(&q).unwrap_or_default(),
                        source: format!("{origin}:{image}"),
                    };
                    self.kept.push((self.verdicts.len(), t, media::face_jpeg(x.image, f.detection.bbox)));
                    ImageVerdict { image, accepted: true, reasons: vec![], quality: Some(q), template_id: None }
                }
                _ => {
                    let mut reasons: Vec<String> = x.refused.iter().map(|r| r.to_string()).collect();
                    if let Some(f) = x.face {
                        reasons.extend(f.rejections.iter().map(|r| r.to_string()));
                    }
                    let quality = x.face.map(|f| QualityReport::from(f.quality));
                    ImageVerdict { image, accepted: false, reasons, quality, template_id: None }
                }
            },
        };
        self.verdicts.push(v);
    }
}

impl Default for Assessed {
    fn default() -> Self {
        Self::new()
    }
}

impl Assessed {
    pub fn accepted(&self) -> usize {
        self.kept.len()
    }

    /// Stores the accepted templates with `store` (the caller's watch list, audited) and saves
    /// their reference images; `EnrollmentRefused` when no photo is usable.
    pub fn store(
        self,
        media: &Media,
        store: impl FnOnce(Vec<NewTemplate>) -> Result<Vec<i64>>,
    ) -> Result<Vec<ImageVerdict>> {
        let Assessed { mut verdicts, kept } = self;
        if kept.is_empty() {
            let why: Vec<String> = verdicts.iter().map(|v| format!("{}: {}", v.image, v.reasons.join(", "))).collect();
            return Err(Error::EnrollmentRefused(format!("no usable photo ({})", why.join("; "))));
        }
        let (slots, rest): (Vec<usize>, Vec<_>) = kept.into_iter().map(|(i, t, j)| (i, (t, j))).unzip();
        let (templates, crops): (Vec<_>, Vec<_>) = rest.into_iter().unzip();
        let ids = store(templates)?;
        for ((vi, jpeg), id) in slots.into_iter().zip(crops).zip(&ids) {
            verdicts[vi].template_id = Some(*id);
            if let Err(e) = jpeg.and_then(|j| media.save_reference(*id, &j)) {
                tracing::warn!(template = id, error = %e, "reference image not saved");
            }
        }
        Ok(verdicts)
    }
}

/// Detects and judges one photo with a local pipeline, as the service's workers do
/// (`inference`'s enroll mode): the chosen face, embedded only if it passes `gate`.
pub fn examine(
    pipeline: &mut Pipeline,
    img: &RgbImage,
    gate: &QualityGate,
) -> Result<(Option<Face>, Option<Rejection>)> {
    let dets = pipeline.detector.detect(img)?;
    let chosen = match choose(&dets) {
        Ok(d) => d,
        Err(r) => return Ok((None, Some(r))),
    };
    let mut face = pipeline.prepare(img, vec![chosen], Some(gate)).pop();
    if let Some(f) = face.as_mut().filter(|f| f.rejections.is_empty()) {
        pipeline.embed_templates(std::slice::from_mut(f))?;
    }
    Ok((face, None))
}

/// Another face at least this fraction of the largest face's area makes the photo ambiguous.
const AMBIGUOUS_AREA_RATIO: f32 = 0.5;

/// The detection to enroll: the largest, unless there is none or another is comparable.
pub fn choose(dets: &[Detection]) -> Result<Detection, Rejection> {
    let largest = dets.iter().max_by(|a, b| a.area().total_cmp(&b.area())).ok_or(Rejection::NoFace)?;
    let comparable = dets.iter().filter(|d| d.area() >= AMBIGUOUS_AREA_RATIO * largest.area()).count();
    if comparable > 1 {
        return Err(Rejection::SeveralFaces { count: comparable });
    }
    Ok(*largest)
}
