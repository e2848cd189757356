//! A deterministic stand-in for the models: no files, microseconds a call. It comes with the
//! synthetic frames it understands: [`frame`] paints each [`FakeFace`] as a square whose texture
//! spells its identity; [`FakeDetector`] finds the squares (box, five landmarks where the
//! embedder's template puts a face's eyes, nose and mouth, a high score) and [`FakeEmbedder`]
//! reads the identity back from the aligned chip and returns [`embedding`]`(identity)`, a unit
//! vector that depends on the identity alone. So the same identity scores 1.0 against itself,
//! different ones about 0 +- 0.09 (cosine of random 128-d directions), and the faces pass the
//! live and enrollment quality gates and go through the real alignment and quality code.
//!
//! The texture: every face pixel has red 255 and blue 0 (the marker the detector looks for; the
//! background never has it), and its green spells the identity's 32 bits on a grid of 8 rows x
//! 4 cells, each cell split into a left and a right half, bright-dark for a 1 and dark-bright
//! for a 0 (Manchester code: every cell has an edge, so every face is sharp, and reading a bit
//! compares two halves of one chip instead of a level against a threshold). Faces of 32 px and
//! more are read exactly; faces must lie inside the frame and apart from each other.

use std::sync::Arc;
use std::time::Duration;

use image::{Rgb, RgbImage};

use crate::backend::{Backend, Detect, Embed, ModelId, Models};
use crate::error::{Error, Result};
use crate::manifest::{ChannelOrder, EmbedderSpec};
use crate::vision::detect::Detection;
use crate::vision::embed::normalized;

/// One face to paint: `identity` as a `size` x `size` square with its top-left corner at `x`, `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeFace {
    pub identity: u32,
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

const ROWS: u32 = 8;
/// Half-cells per row: 4 cells of two halves.
const HALVES: u32 = 8;
const BRIGHT: u8 = 200;
const DARK: u8 = 60;
/// Grey background: never red 255 with blue 0.
const BACKGROUND: Rgb<u8> = Rgb([110, 110, 110]);
/// The score the fake detector gives every face.
pub const SCORE: f32 = 0.99;
/// Smallest square the detector reports (the live gate wants 32 px).
pub const MIN_SIDE: u32 = 8;

/// The dlib embedder's chip and template (as `models/manifest.toml` writes them), so alignment
/// and quality run as on real faces.
const CHIP: u32 = 150;
#[allow(clippy::excessive_precision)]
const TEMPLATE: [[f32; 2]; 5] =
    [[46.6255, 44.4870], [102.9910, 45.3544], [74.5067, 77.2496], [50.8013, 101.6565], [98.6521, 102.2027]];
pub const EMBEDDING_SIZE: usize = 128;

/// A `width` x `height` grey frame with `faces` painted on it (clipped to the frame).
pub fn frame(width: u32, height: u32, faces: &[FakeFace]) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    for f in faces {
        paint(&mut img, f);
    }
    img
}

/// Paints one face onto `img` (clipped to it).
pub fn paint(img: &mut RgbImage, f: &FakeFace) {
    let s = u64::from(f.size.max(1));
    for py in 0..f.size {
        let row = (u64::from(py) * u64::from(ROWS) / s) as u32;
        for px in 0..f.size {
            let (x, y) = (f.x.saturating_add(px), f.y.saturating_add(py));
            if x >= img.width() || y >= img.height() {
                continue;
            }
            let half = (u64::from(px) * u64::from(HALVES) / s) as u32;
            let bit = f.identity >> (row * HALVES / 2 + half / 2) & 1 == 1;
            // A 1 is bright then dark, a 0 dark then bright.
            let green = if bit == half.is_multiple_of(2) { BRIGHT } else { DARK };
            img.put_pixel(x, y, Rgb([255, green, 0]));
        }
    }
}

/// The unit vector the fake embedder gives every face of `identity` (a seeded pseudo-random
/// direction: different identities are nearly orthogonal).
pub fn embedding(identity: u32) -> Vec<f32> {
    let mut state = u64::from(identity) ^ 0x5EED_FACE_0000_0000;
    let v: Vec<f32> = (0..EMBEDDING_SIZE)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    normalized(&v)
}

/// What a detect call costs, from the frame: lets a test make some frames slower than others.
pub type DetectDelay = Arc<dyn Fn(&RgbImage) -> Duration + Send + Sync>;

/// The fake models. `FakeBackend::default()` answers at once.
#[derive(Clone)]
pub struct FakeBackend {
    models: Models,
    delay: Option<DetectDelay>,
}

impl Default for FakeBackend {
    fn default() -> Self {
        let embedder = EmbedderSpec {
            name: "fake-embedder-v1".into(),
            file: String::new(),
            sha256: "fake".into(),
            input_size: CHIP,
            channel_order: ChannelOrder::Rgb,
            mean: [0.0; 3],
            std: [1.0; 3],
            embedding_size: EMBEDDING_SIZE,
            template: TEMPLATE,
            default_threshold: 0.94,
            // The fake embedder reads an identity spelt left to right: a mirror spells another.
            enroll_mirrored: false,
        };
        let detector = ModelId { name: "fake-detector-v1".into(), sha256: "fake".into() };
        Self { models: Models { detector, embedder }, delay: None }
    }
}

impl FakeBackend {
    /// Each detect call first sleeps for `delay(frame)`, as a real model takes longer on some frames.
    pub fn with_detect_delay(mut self, delay: impl Fn(&RgbImage) -> Duration + Send + Sync + 'static) -> Self {
        self.delay = Some(Arc::new(delay));
        self
    }
}

impl Backend for FakeBackend {
    fn models(&self) -> &Models {
        &self.models
    }

    fn detector(&self) -> Result<Box<dyn Detect>> {
        Ok(Box::new(FakeDetector { template: TEMPLATE, chip: CHIP, delay: self.delay.clone() }))
    }

    fn embedder(&self) -> Result<Box<dyn Embed>> {
        Ok(Box::new(FakeEmbedder { chip: CHIP }))
    }

    fn provider(&self) -> &'static str {
        "fake"
    }
}

/// Finds the painted squares.
pub struct FakeDetector {
    template: [[f32; 2]; 5],
    chip: u32,
    delay: Option<DetectDelay>,
}

impl Detect for FakeDetector {
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>> {
        if let Some(d) = &self.delay {
            std::thread::sleep(d(image));
        }
        let (w, h) = (image.width() as usize, image.height() as usize);
        let raw = image.as_raw();
        let face = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            raw[i] == 255 && raw[i + 2] == 0
        };
        let mut out = Vec::new();
        for (y, row) in raw.chunks_exact(w * 3).enumerate() {
            for (x, p) in row.chunks_exact(3).enumerate() {
                // A square's top-left corner: a face pixel with none above it or to its left.
                let corner = p[0] == 255 && p[2] == 0 && (x == 0 || !face(x - 1, y)) && (y == 0 || !face(x, y - 1));
                if !corner {
                    continue;
                }
                let width = (x..w).take_while(|&i| face(i, y)).count();
                let height = (y..h).take_while(|&j| face(x, j)).count();
                if width.min(height) < MIN_SIDE as usize {
                    continue;
                }
                let (x, y, width, height) = (x as f32, y as f32, width as f32, height as f32);
                let (sx, sy) = (width / self.chip as f32, height / self.chip as f32);
                let landmarks = self.template.map(|[tx, ty]| [x + tx * sx, y + ty * sy]);
                out.push(Detection { bbox: [x, y, width, height], landmarks, score: SCORE });
            }
        }
        // Best first, as a real detector: all scores are equal, so the larger face first.
        out.sort_by(|a, b| b.area().total_cmp(&a.area()));
        Ok(out)
    }
}

/// Reads the identity from an aligned chip.
pub struct FakeEmbedder {
    chip: u32,
}

impl FakeEmbedder {
    /// The identity spelt on `chip`: each bit from the mean green of the inner half of its two
    /// half-cells.
    pub fn identity(chip: &RgbImage) -> u32 {
        let (w, h) = (chip.width() as usize, chip.height() as usize);
        if w == 0 || h == 0 {
            return 0;
        }
        let mean = |row: usize, half: usize| {
            let (x0, x1) = ((4 * half + 1) * w / (4 * HALVES as usize), (4 * half + 3) * w / (4 * HALVES as usize));
            let (y0, y1) = ((4 * row + 1) * h / (4 * ROWS as usize), (4 * row + 3) * h / (4 * ROWS as usize));
            let mut sum = 0u64;
            for y in y0..y1.max(y0 + 1) {
                for x in x0..x1.max(x0 + 1) {
                    sum += u64::from(chip.get_pixel(x as u32, y as u32).0[1]);
                }
            }
            sum
        };
        let mut id = 0u32;
        for row in 0..ROWS as usize {
            for cell in 0..HALVES as usize / 2 {
                if mean(row, 2 * cell) > mean(row, 2 * cell + 1) {
                    id |= 1 << (row * HALVES as usize / 2 + cell);
                }
            }
        }
        id
    }
}

impl Embed for FakeEmbedder {
    fn embed(&mut self, chips: &[&RgbImage]) -> Result<Vec<Vec<f32>>> {
        chips
            .iter()
            .map(|c| {
                if c.dimensions() != (self.chip, self.chip) {
                    let (w, h) = c.dimensions();
                    let s = self.chip;
                    return Err(Error::Invalid(format!("chip is {w}x{h}, the embedder takes {s}x{s}")));
                }
                Ok(embedding(Self::identity(c)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::prepare_faces;
    use crate::vision::embed::cosine;
    use crate::vision::quality::QualityGate;
    use crate::watchlist::enroll;

    fn faces_of(img: &RgbImage, gate: &QualityGate) -> Vec<crate::pipeline::Face> {
        let b = FakeBackend::default();
        let dets = b.detector().unwrap().detect(img).unwrap();
        let mut faces = prepare_faces(&b.models().embedder, img, dets, Some(gate));
        let mut emb = b.embedder().unwrap();
        for f in faces.iter_mut().filter(|f| f.accepted()) {
            f.embedding = Some(emb.embed(&[&f.chip]).unwrap().remove(0));
        }
        faces
    }

    #[test]
    fn same_identity_matches_and_others_do_not() {
        let ids = [0u32, 1, 7, 0xDEAD_BEEF, u32::MAX, 123_456];
        // Sizes from the live gate's minimum up, at odd places.
        let layout: Vec<FakeFace> = ids
            .iter()
            .enumerate()
            .map(|(i, &identity)| FakeFace {
                identity,
                x: 7 + 130 * i as u32,
                y: 11 + 9 * i as u32,
                size: 32 + 19 * i as u32,
            })
            .collect();
        let img = frame(800, 260, &layout);
        let faces = faces_of(&img, &QualityGate::default());
        assert_eq!(faces.len(), ids.len());
        for f in &faces {
            assert!(f.accepted(), "{:?} {:?}", f.rejections, f.quality);
            let painted = layout.iter().find(|l| l.x as f32 == f.detection.bbox[0]).unwrap();
            assert_eq!(FakeEmbedder::identity(&f.chip), painted.identity, "{painted:?}");
            let e = f.embedding.as_ref().unwrap();
            assert!((cosine(e, &embedding(painted.identity)) - 1.0).abs() < 1e-5);
        }
        // Other identities stay far below any usable threshold (0.94 by default).
        let mut worst = f32::MIN;
        for a in 0..200u32 {
            for b in a + 1..200 {
                worst = worst.max(cosine(&embedding(a), &embedding(b)));
            }
        }
        assert!(worst < 0.5, "{worst}");
        let e = embedding(42);
        assert!((e.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn passes_the_enrollment_gate_and_choice() {
        let img = frame(300, 300, &[FakeFace { identity: 99, x: 80, y: 70, size: 120 }]);
        let b = FakeBackend::default();
        let dets = b.detector().unwrap().detect(&img).unwrap();
        let chosen = enroll::choose(&dets).unwrap();
        let faces = faces_of(&img, &QualityGate::enrollment());
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].detection, chosen);
        assert!(faces[0].accepted(), "{:?} {:?}", faces[0].rejections, faces[0].quality);
        let q = faces[0].quality;
        assert!(q.yaw_deg.abs() < 5.0 && q.pitch_deg.abs() < 5.0 && q.overall() > 0.5, "{q:?}");
        // Two faces of comparable size make an enrollment photo ambiguous, as with real faces.
        let two = frame(
            300,
            150,
            &[FakeFace { identity: 1, x: 5, y: 5, size: 100 }, FakeFace { identity: 2, x: 150, y: 5, size: 100 }],
        );
        assert!(enroll::choose(&b.detector().unwrap().detect(&two).unwrap()).is_err());
        // No face, and small squares are not faces.
        assert!(b.detector().unwrap().detect(&frame(64, 64, &[])).unwrap().is_empty());
        assert!(
            b.detector()
                .unwrap()
                .detect(&frame(64, 64, &[FakeFace { identity: 1, x: 0, y: 0, size: 7 }]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_enrolled_fake_face_matches_on_the_watch_list_and_no_other_does() {
        use crate::audit::Actor;
        use crate::watchlist::Watchlist;
        use crate::watchlist::policy::Policy;
        use crate::watchlist::store::NewTemplate;
        let dir = tempfile::tempdir().unwrap();
        let spec = FakeBackend::default().models().embedder.clone();
        let mut wl = Watchlist::open(dir.path(), "auto", &spec.name, spec.embedding_size as u32).unwrap();
        wl.create_list("wanted", &Policy::with_threshold(spec.default_threshold), &Actor::local()).unwrap();
        let photo = frame(300, 300, &[FakeFace { identity: 11, x: 80, y: 70, size: 120 }]);
        let enrolled = faces_of(&photo, &QualityGate::enrollment());
        let template = NewTemplate {
            embedding: enrolled[0].embedding.clone().unwrap(),
            quality: "{}".into(),
            source: "fake".into(),
        };
        wl.enroll("wanted", "s-11", None, vec![template], &Actor::local()).unwrap();
        // The same identity smaller and elsewhere in a live frame, beside a stranger.
        let faces =
            [FakeFace { identity: 11, x: 300, y: 100, size: 48 }, FakeFace { identity: 12, x: 10, y: 10, size: 90 }];
        let live = faces_of(&frame(400, 200, &faces), &QualityGate::default());
        let best = |i: usize| wl.candidates(live[i].embedding.as_ref().unwrap(), 1).unwrap().remove(0);
        let (stranger, same) = (best(0), best(1));
        assert_eq!((same.subject.as_str(), same.is_match()), ("s-11", true), "{same:?}");
        assert!(same.score > 0.999, "{same:?}");
        assert!(!stranger.is_match() && stranger.score < 0.5, "{stranger:?}");
        assert!(wl.matches(live[0].embedding.as_ref().unwrap(), 5).unwrap().is_empty());
    }
}
