//! Matching: a frame's faces against every watch list, with each list's policy attached. No
//! side effects (nothing is stored, nothing announced): what becomes an alert is [`crate::decide`]'s
//! call, and raising it is [`crate::alerts`]'.

use std::sync::Arc;

use crate::alerts::{ModelIds, NewAlert};
use crate::error::Result;
use crate::pipeline::Face;
use crate::watchlist::Candidate;
use crate::watchlist::live::Live;
use crate::watchlist::policy::Policy;

/// A candidate at or above its list's threshold, with the policy in force when it was found.
#[derive(Debug, Clone)]
pub struct PolicyMatch {
    pub candidate: Candidate,
    pub policy: Policy,
}

impl PolicyMatch {
    /// The alert this match raises for `face`, seen by `camera` at `captured_ms`, under the
    /// rule's `threshold` (the frame rule's or the track rule's), as every rule raises it.
    pub fn sighting(
        &self,
        site: &str,
        camera: &str,
        captured_ms: i64,
        face: &Face,
        models: &ModelIds,
        threshold: f32,
    ) -> NewAlert {
        let (c, p) = (&self.candidate, &self.policy);
        NewAlert {
            site: site.to_string(),
            camera: camera.to_string(),
            captured_ms,
            list: c.list.clone(),
            subject: c.subject.clone(),
            subject_name: c.name.clone(),
            template_id: c.template_id,
            score: c.score,
            threshold,
            severity: p.severity,
            bbox: face.detection.bbox,
            quality: face.quality.into(),
            models: models.clone(),
            retention_days: p.retention_days,
            has_crop: false,
            shared_crop: None,
        }
    }
}

pub struct Matching {
    live: Arc<Live>,
}

impl Matching {
    pub fn new(live: Arc<Live>) -> Self {
        Self { live }
    }

    /// For each face, the best subject of every list that it matches (none for faces without
    /// an embedding: refused by the quality gate).
    pub fn faces(&self, faces: &[Face]) -> Result<Vec<Vec<PolicyMatch>>> {
        faces.iter().map(|f| self.face(f)).collect()
    }

    pub fn face(&self, face: &Face) -> Result<Vec<PolicyMatch>> {
        let Some(e) = &face.embedding else { return Ok(Vec::new()) };
        Ok(self.with_policy(self.live.matches(e, 1)?))
    }

    /// The best subject of every list for `embedding`, whatever its score: for a rule with a
    /// threshold of its own (the track rule compares a fused embedding with `track_threshold`).
    pub fn best(&self, embedding: &[f32]) -> Result<Vec<PolicyMatch>> {
        Ok(self.with_policy(self.live.candidates(embedding, 1)?))
    }

    fn with_policy(&self, found: Vec<crate::watchlist::Candidate>) -> Vec<PolicyMatch> {
        found
            .into_iter()
            // A list deleted between the search and here has no policy: its match is dropped.
            .filter_map(|c| self.live.list(&c.list).ok().map(|row| PolicyMatch { candidate: c, policy: row.policy }))
            .collect()
    }
}
