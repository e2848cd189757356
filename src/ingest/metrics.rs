//! The cameras' series in `/metrics`, one label value per configured camera.

use std::fmt::Write;
use std::sync::Arc;

use super::Camera;
use super::status::{Restart, State};

pub fn render(cameras: &[Arc<Camera>], o: &mut String) {
    if cameras.is_empty() {
        return;
    }
    let series = |o: &mut String, name: &str, kind: &str, help: &str, v: &dyn Fn(&Camera) -> f64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for c in cameras {
            let _ = writeln!(o, "{name}{{camera=\"{}\"}} {}", c.config.id, v(c));
        }
    };
    series(o, "facewatch_camera_frames_total", "counter", "Frames read from the camera's ffmpeg.", &|c| {
        c.status.frames_read() as f64
    });
    series(
        o,
        "facewatch_camera_frames_dropped_total",
        "counter",
        "Frames dropped, oldest first, because the consumer fell behind.",
        &|c| c.queue.dropped() as f64,
    );
    series(o, "facewatch_camera_up", "gauge", "1 while the camera delivers frames.", &|c| {
        f64::from(u8::from(c.status.state() == State::Up))
    });
    series(
        o,
        "facewatch_camera_last_frame_age_seconds",
        "gauge",
        "Seconds since the camera's last frame (-1: none yet).",
        &|c| c.status.last_frame_age().map_or(-1.0, |d| d.as_secs_f64()),
    );
    let name = "facewatch_camera_restarts_total";
    let _ = writeln!(o, "# HELP {name} ffmpeg restarts, by reason.\n# TYPE {name} counter");
    for c in cameras {
        for r in Restart::ALL {
            let _ =
                writeln!(o, "{name}{{camera=\"{}\",reason=\"{}\"}} {}", c.config.id, r.name(), c.status.restarts(r));
        }
    }
}
