//! A watch list's policy: when a match becomes an alert, how loud it is, how long its images live.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| Error::Invalid(format!("severity {s:?}: expected low, medium, high or critical")))
    }
}

/// A new list's track threshold above its frame threshold, until `facewatch eval` measures one.
pub const TRACK_MARGIN: f32 = 0.01;

/// A watch list's policy: when a match becomes an alert, and how long its images are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Cosine score at or above which a face matches a subject of this list (the frame rule:
    /// one frame's embedding).
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub threshold: f32,
    /// The same for the track rule: a tracked pass's fused embedding (the quality-weighted mean
    /// of its faces' unit vectors, renormalised). A mean scores higher against everyone than a
    /// single frame does, so it has a threshold of its own (`facewatch eval` recommends both).
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub track_threshold: f32,
    /// Faces smaller than this (shorter box side, frame pixels) never alert on this list.
    #[schema(minimum = 0.0, maximum = 10000.0)]
    pub min_face_px: f32,
    /// Faces whose overall quality (0..1) is below this never alert on this list.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_quality: f32,
    pub severity: Severity,
    /// A subject seen again by the same camera within this many seconds adds no new alert.
    #[schema(maximum = 86400)]
    pub cooldown_secs: u32,
    /// Alert crops and enrolled reference images are deleted after this many days.
    #[schema(maximum = 3650)]
    pub retention_days: u32,
    /// Whether face crops may leave the checkpoint with the events sent to the central system.
    pub share_crops: bool,
}

impl Policy {
    pub fn with_threshold(threshold: f32) -> Self {
        Self {
            threshold,
            track_threshold: (threshold + TRACK_MARGIN).min(1.0),
            min_face_px: 40.0,
            min_quality: 0.0,
            severity: Severity::High,
            cooldown_secs: 60,
            retention_days: 30,
            share_crops: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let mut bad = Vec::new();
        if !(-1.0..=1.0).contains(&self.threshold) {
            bad.push(format!("threshold {} outside the cosine range -1..1", self.threshold));
        }
        if !(-1.0..=1.0).contains(&self.track_threshold) {
            bad.push(format!("track_threshold {} outside the cosine range -1..1", self.track_threshold));
        }
        if !(0.0..=10_000.0).contains(&self.min_face_px) {
            bad.push(format!("min_face_px {} outside 0..10000", self.min_face_px));
        }
        if !(0.0..=1.0).contains(&self.min_quality) {
            bad.push(format!("min_quality {} outside 0..1", self.min_quality));
        }
        if self.retention_days > 3650 {
            bad.push(format!("retention_days {} over 3650", self.retention_days));
        }
        if self.cooldown_secs > 86_400 {
            bad.push(format!("cooldown_secs {} over 86400", self.cooldown_secs));
        }
        if bad.is_empty() { Ok(()) } else { Err(Error::Invalid(bad.join("; "))) }
    }

    /// Applies the fields present in `patch`, validated.
    pub fn patched(&self, patch: &PolicyPatch) -> Result<Self> {
        let p = Policy {
            threshold: patch.threshold.unwrap_or(self.threshold),
            track_threshold: patch.track_threshold.unwrap_or(self.track_threshold),
            min_face_px: patch.min_face_px.unwrap_or(self.min_face_px),
            min_quality: patch.min_quality.unwrap_or(self.min_quality),
            severity: patch.severity.unwrap_or(self.severity),
            cooldown_secs: patch.cooldown_secs.unwrap_or(self.cooldown_secs),
            retention_days: patch.retention_days.unwrap_or(self.retention_days),
            share_crops: patch.share_crops.unwrap_or(self.share_crops),
        };
        p.validate()?;
        Ok(p)
    }
}

/// Policy fields to change (`PUT /v1/lists/{list}/policy`, a new list's `policy`); the others
/// keep their values. Unknown fields are refused.
/// The ranges are those of [`Policy`]; a value outside them is refused (400).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub threshold: Option<f32>,
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub track_threshold: Option<f32>,
    #[schema(minimum = 0.0, maximum = 10000.0)]
    pub min_face_px: Option<f32>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_quality: Option<f32>,
    pub severity: Option<Severity>,
    #[schema(maximum = 86400)]
    pub cooldown_secs: Option<u32>,
    #[schema(maximum = 3650)]
    pub retention_days: Option<u32>,
    pub share_crops: Option<bool>,
}

impl PolicyPatch {
    pub fn threshold(t: f32) -> Self {
        Self { threshold: Some(t), ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(v: serde_json::Value) -> Result<Policy> {
        let p: PolicyPatch = serde_json::from_value(v).map_err(|e| Error::BadRequest(e.to_string()))?;
        Policy::with_threshold(0.94).patched(&p)
    }

    #[test]
    fn patch_merges_and_validates() {
        let q = patch(serde_json::json!({"threshold": 0.9, "severity": "critical"})).unwrap();
        assert_eq!((q.threshold, q.severity, q.cooldown_secs), (0.9, Severity::Critical, 60));
        assert!(patch(serde_json::json!({"threshold": 3})).is_err());
        assert!(patch(serde_json::json!({"colour": "red"})).is_err());
        assert!(patch(serde_json::json!({"severity": "loud"})).is_err());
        assert!(patch(serde_json::json!([1])).is_err());
    }
}
