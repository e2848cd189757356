//! A track's appearance: the running mean direction of its unit embeddings, to notice when another
//! person took over the box (two people crossing, one occluding the other).

/// Longest embedding accepted (dlib's has 128 dimensions): bounds what a caller makes a track keep.
pub const MAX_DIM: usize = 1024;

/// `e / |e|`, or `None` for an empty, too long, non-finite or zero vector.
pub fn unit(e: &[f32]) -> Option<Vec<f64>> {
    if e.is_empty() || e.len() > MAX_DIM {
        return None;
    }
    let norm = e.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return None;
    }
    Some(e.iter().map(|&x| f64::from(x) / norm).collect())
}

/// Sum of the unit embeddings seen; its direction is the mean.
#[derive(Debug, Clone, Default)]
pub struct Appearance {
    sum: Vec<f64>,
    count: u32,
}

impl Appearance {
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The embeddings' length, once there is one.
    pub fn dim(&self) -> Option<usize> {
        (self.count > 0).then_some(self.sum.len())
    }

    /// Cosine between `unit` and the mean direction; `None` before the first embedding (or when
    /// the lengths differ, or the mean cancelled out).
    pub fn cosine(&self, unit: &[f64]) -> Option<f64> {
        if self.count == 0 || unit.len() != self.sum.len() {
            return None;
        }
        let norm = self.sum.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= f64::EPSILON {
            return None;
        }
        Some(self.sum.iter().zip(unit).map(|(a, b)| a * b).sum::<f64>() / norm)
    }

    /// Adds a unit vector of the same length as the ones before (the caller checks).
    pub fn add(&mut self, unit: &[f64]) {
        if self.count == 0 {
            self.sum = unit.to_vec();
        } else {
            self.sum.iter_mut().zip(unit).for_each(|(s, u)| *s += u);
        }
        self.count = self.count.saturating_add(1);
    }
}
