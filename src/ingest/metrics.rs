//! The cameras' series in `/metrics`, one label value per configured camera, read from their
//! status at each scrape (a `prometheus-client` collector).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Camera;
use super::status::{Restart, State};

pub struct CameraSeries(pub Vec<Arc<Camera>>);

impl std::fmt::Debug for CameraSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CameraSeries({} cameras)", self.0.len())
    }
}

impl Collector for CameraSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        // Counters are named without `_total`: the encoder appends it.
        let counters: [(&str, &str, &dyn Fn(&Camera) -> u64); 2] = [
            ("facewatch_camera_frames", "Frames read from the camera's ffmpeg", &|c| c.status.frames_read()),
            (
                "facewatch_camera_frames_dropped",
                "Frames dropped, oldest first, because the consumer fell behind",
                &|c| c.queue.dropped(),
            ),
        ];
        for (name, help, value) in counters {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &self.0 {
                ConstCounter::new(value(c)).encode(m.encode_family(&[("camera", c.config.id.as_str())])?)?;
            }
        }
        let gauges: [(&str, &str, &dyn Fn(&Camera) -> f64); 2] = [
            ("facewatch_camera_up", "1 while the camera delivers frames", &|c| {
                f64::from(u8::from(c.status.state() == State::Up))
            }),
            ("facewatch_camera_last_frame_age_seconds", "Seconds since the camera's last frame (-1: none yet)", &|c| {
                c.status.last_frame_age().map_or(-1.0, |d| d.as_secs_f64())
            }),
        ];
        for (name, help, value) in gauges {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for c in &self.0 {
                ConstGauge::new(value(c)).encode(m.encode_family(&[("camera", c.config.id.as_str())])?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "facewatch_camera_restarts",
            "ffmpeg restarts, by reason",
            None,
            MetricType::Counter,
        )?;
        for c in &self.0 {
            for r in Restart::ALL {
                let labels = [("camera", c.config.id.as_str()), ("reason", r.name())];
                ConstCounter::new(c.status.restarts(r)).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
