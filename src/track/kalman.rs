//! Constant-velocity Kalman filter on a face's centre and side, (cx, cy, s) with their velocities,
//! predicted over the real time between frames: cameras drop and bunch frames, so a step is
//! `dt` seconds from the capture times, never "one frame".
//!
//! Under this motion model with diagonal noise the three coordinates never mix, so the 6-state
//! filter is exactly three independent 2-state filters (position, velocity): closed-form 2x2
//! algebra, no matrix library, nothing to invert. The noise scales with the face's side: a face
//! near the camera moves more pixels per second, and the detector's jitter grows with the box.

/// Detector jitter of one box, as a share of its side (std of a measurement).
const MEASURE_STD: f64 = 0.05;
/// How fast a face changes speed (std of the white-noise acceleration), in sides per second
/// squared, for cx, cy and s: people stop, turn and come closer slower than they walk past.
const ACCEL_STD: [f64; 3] = [2.0, 2.0, 0.5];
/// A new track's speed is unknown: std in sides per second, for cx, cy and s.
const START_SPEED_STD: [f64; 3] = [3.0, 3.0, 0.5];
/// The smallest side the state keeps: a face predicted to shrink must not reach zero.
pub const MIN_SIDE: f64 = 1.0;

/// One coordinate: position x, velocity v, covariance [[xx, xv], [xv, vv]].
#[derive(Debug, Clone, Copy)]
struct Axis {
    x: f64,
    v: f64,
    xx: f64,
    xv: f64,
    vv: f64,
}

impl Axis {
    fn start(x: f64, x_std: f64, v_std: f64) -> Self {
        Self { x, v: 0.0, xx: x_std * x_std, xv: 0.0, vv: v_std * v_std }
    }

    /// x += v dt; P = F P F' + Q, Q for white-noise acceleration of spectral density `q`.
    fn predict(&mut self, dt: f64, q: f64) {
        let dt2 = dt * dt;
        self.x += self.v * dt;
        self.xx += 2.0 * dt * self.xv + dt2 * self.vv + q * dt2 * dt / 3.0;
        self.xv += dt * self.vv + q * dt2 / 2.0;
        self.vv += q * dt;
    }

    /// Measurement `z` of x with variance `r`.
    fn update(&mut self, z: f64, r: f64) {
        let s = self.xx + r;
        let (kx, kv) = (self.xx / s, self.xv / s);
        let innovation = z - self.x;
        self.x += kx * innovation;
        self.v += kv * innovation;
        let (xx, xv) = (self.xx, self.xv);
        self.xx = (1.0 - kx) * xx;
        self.xv = (1.0 - kx) * xv;
        self.vv -= kv * xv;
    }
}

/// A face's motion: centre (cx, cy) and side s, in pixels and pixels per second.
#[derive(Debug, Clone, Copy)]
pub struct Motion {
    axes: [Axis; 3],
}

impl Motion {
    /// Starts at a measured `[cx, cy, s]` (s >= [`MIN_SIDE`]), speed unknown.
    pub fn start(z: [f64; 3]) -> Self {
        let side = z[2].max(MIN_SIDE);
        let axis = |i: usize| Axis::start(z[i], MEASURE_STD * side, START_SPEED_STD[i] * side);
        let mut m = Self { axes: [axis(0), axis(1), axis(2)] };
        m.axes[2].x = side;
        m
    }

    /// Moves the state `dt` seconds ahead (`dt` >= 0).
    pub fn predict(&mut self, dt: f64) {
        if dt <= 0.0 || !dt.is_finite() {
            return;
        }
        let side = self.side();
        for (axis, accel) in self.axes.iter_mut().zip(ACCEL_STD) {
            axis.predict(dt, (accel * side).powi(2));
        }
        let s = &mut self.axes[2];
        if s.x < MIN_SIDE {
            s.x = MIN_SIDE;
            s.v = s.v.max(0.0);
        }
    }

    /// Corrects the state with a measured `[cx, cy, s]`.
    pub fn update(&mut self, z: [f64; 3]) {
        let r = (MEASURE_STD * z[2].max(MIN_SIDE)).powi(2);
        for (axis, z) in self.axes.iter_mut().zip(z) {
            axis.update(z, r);
        }
        self.axes[2].x = self.axes[2].x.max(MIN_SIDE);
    }

    /// `[cx, cy, s]`, s >= [`MIN_SIDE`].
    pub fn state(&self) -> [f64; 3] {
        [self.axes[0].x, self.axes[1].x, self.side()]
    }

    /// `[vx, vy, vs]` in pixels per second.
    #[cfg(test)]
    pub fn velocity(&self) -> [f64; 3] {
        self.axes.map(|a| a.v)
    }

    /// Std of the predicted centre, px (mean of x and y).
    pub fn centre_std(&self) -> f64 {
        (0.5 * (self.axes[0].xx + self.axes[1].xx)).max(0.0).sqrt()
    }

    fn side(&self) -> f64 {
        self.axes[2].x.max(MIN_SIDE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_over_uneven_steps() {
        // 120 px/s to the right, 30 px/s down, the face growing 6 px/s; steps from 20 to 700 ms.
        let truth = |t: f64| [100.0 + 120.0 * t, 200.0 + 30.0 * t, 60.0 + 6.0 * t];
        let mut m = Motion::start(truth(0.0));
        let mut t = 0.0;
        for step_ms in [40, 100, 20, 300, 60, 700, 40, 500, 100, 250].repeat(2) {
            let dt = f64::from(step_ms) / 1000.0;
            t += dt;
            m.predict(dt);
            m.update(truth(t));
        }
        // Prediction 0.5 s ahead lands on the truth within 1 % of a side.
        m.predict(0.5);
        let [cx, cy, s] = m.state();
        let want = truth(t + 0.5);
        assert!((cx - want[0]).abs() < 0.6 && (cy - want[1]).abs() < 0.6, "{:?} vs {want:?}", m.state());
        assert!((s - want[2]).abs() < 0.6, "{:?} vs {want:?}", m.state());
        let [vx, vy, _] = m.velocity();
        assert!((vx - 120.0).abs() < 2.0 && (vy - 30.0).abs() < 2.0, "{:?}", m.velocity());
    }

    #[test]
    fn side_stays_positive_and_bad_steps_do_nothing() {
        let mut m = Motion::start([10.0, 10.0, 40.0]);
        m.update([10.0, 10.0, 20.0]);
        m.update([10.0, 10.0, 2.0]);
        m.predict(10.0);
        assert!(m.state()[2] >= MIN_SIDE);
        let before = m.state();
        m.predict(f64::NAN);
        m.predict(-1.0);
        assert_eq!(m.state(), before);
        assert!(m.state().iter().all(|v| v.is_finite()));
    }
}
