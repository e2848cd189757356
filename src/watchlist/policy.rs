//! A watch list's policy: when a match becomes an alert, how loud it is, how long its images live.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Cosine score at or above which a face matches a subject of this list.
    pub threshold: f32,
    /// Faces smaller than this (shorter box side, frame pixels) never alert on this list.
    pub min_face_px: f32,
    /// Faces whose overall quality (0..1) is below this never alert on this list.
    pub min_quality: f32,
    pub severity: Severity,
    /// A subject seen again by the same camera within this many seconds adds no new alert.
    pub cooldown_secs: u32,
    /// Alert crops and enrolled reference images are deleted after this many days.
    pub retention_days: u32,
    /// Whether face crops may leave the checkpoint with the events sent to the central system.
    pub share_crops: bool,
}

impl Policy {
    pub fn with_threshold(threshold: f32) -> Self {
        Self {
            threshold,
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

    /// Applies the fields present in `patch` (a JSON object of policy fields).
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(fields) = patch else {
            return Err(Error::BadRequest("policy must be a JSON object".into()));
        };
        let mut merged = serde_json::to_value(self).map_err(|e| Error::Invalid(e.to_string()))?;
        if let serde_json::Value::Object(m) = &mut merged {
            for (k, v) in fields {
                m.insert(k.clone(), v.clone());
            }
        }
        let p: Policy = serde_json::from_value(merged).map_err(|e| Error::BadRequest(format!("policy: {e}")))?;
        p.validate()?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_merges_and_validates() {
        let p = Policy::with_threshold(0.94);
        let q = p.patched(&serde_json::json!({"threshold": 0.9, "severity": "critical"})).unwrap();
        assert_eq!((q.threshold, q.severity, q.cooldown_secs), (0.9, Severity::Critical, 60));
        assert!(p.patched(&serde_json::json!({"threshold": 3})).is_err());
        assert!(p.patched(&serde_json::json!({"colour": "red"})).is_err());
        assert!(p.patched(&serde_json::json!({"severity": "loud"})).is_err());
        assert!(p.patched(&serde_json::json!([1])).is_err());
    }
}
