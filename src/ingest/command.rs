//! The ffmpeg command line of one camera: its input, then scaled and rate-capped frames as PPM
//! (raw rgb24 with a size header, see [`super::ppm`]) on stdout.

use std::process::{Command, Stdio};

use super::config::{CameraConfig, Source};

/// `ffmpeg ... -i URL ... pipe:1` for `cam` (whose source is `source`).
pub fn ffmpeg(binary: &str, cam: &CameraConfig, source: &Source) -> Command {
    let mut c = Command::new(binary);
    c.args(["-hide_banner", "-nostdin", "-loglevel", "warning"]);
    match source {
        // TCP: no UDP loss on a busy network, and it passes firewalls. Stream analysis capped
        // at 1 s (default 5): the first frame after a (re)connect came after 3.0 s instead of
        // 1.6 s on a 10 fps H.264 stream; the size is in the SPS anyway.
        Source::Rtsp => {
            c.args(["-rtsp_transport", "tcp", "-analyzeduration", "1000000"]);
        }
        // MJPEG carries no timestamps: the demuxer assumes 25 fps, so the fps cap would count
        // frames, not time (a 15 fps camera capped at 5 gave 3). Arrival time is the clock.
        Source::Http => {
            c.args(["-use_wallclock_as_timestamps", "1"]);
        }
        // Never started: a push camera has no ffmpeg (see `Cameras::new`).
        Source::Push => {}
        Source::File(_) => {
            if cam.realtime {
                c.arg("-re");
            }
            if cam.repeat {
                c.args(["-stream_loop", "-1"]);
            }
        }
    }
    c.arg("-i");
    match source {
        Source::File(path) => c.arg(path),
        _ => c.arg(cam.url.expose()),
    };
    // Width capped and even (chroma subsampling upstream and the models like even sizes),
    // height following the aspect (-2: even).
    let vf = format!("fps=fps={},scale=w='2*trunc(min({},iw)/2)':h=-2", cam.fps, cam.max_width);
    c.args(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", &vf]);
    c.args(["-pix_fmt", "rgb24", "-c:v", "ppm", "-f", "image2pipe", "pipe:1"]);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretUrl;

    fn args(c: &Command) -> Vec<String> {
        c.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn rtsp_over_tcp_files_paced_and_looped_frames_scaled_and_capped() {
        let cam =
            CameraConfig { url: SecretUrl::new("rtsp://u:p@cam/1"), fps: 5.0, max_width: 1280, ..Default::default() };
        let a = args(&ffmpeg("ffmpeg", &cam, &cam.source().unwrap())).join(" ");
        assert!(
            a.contains("-nostdin -loglevel warning -rtsp_transport tcp -analyzeduration 1000000 -i rtsp://u:p@cam/1"),
            "{a}"
        );
        assert!(a.contains("-vf fps=fps=5,scale=w='2*trunc(min(1280,iw)/2)':h=-2"), "{a}");
        assert!(a.ends_with("-pix_fmt rgb24 -c:v ppm -f image2pipe pipe:1"), "{a}");
        let file = CameraConfig { url: SecretUrl::new("file:///v/a.mp4"), repeat: true, ..Default::default() };
        let a = args(&ffmpeg("ffmpeg", &file, &file.source().unwrap())).join(" ");
        assert!(a.contains("-re -stream_loop -1 -i /v/a.mp4"), "{a}");
        let fast = CameraConfig { url: SecretUrl::new("/v/a.mp4"), realtime: false, ..Default::default() };
        let a = args(&ffmpeg("ffmpeg", &fast, &fast.source().unwrap())).join(" ");
        assert!(a.contains("warning -i /v/a.mp4"), "{a}");
        let mjpeg = CameraConfig { url: SecretUrl::new("http://cam/mjpg"), ..Default::default() };
        let a = args(&ffmpeg("ffmpeg", &mjpeg, &mjpeg.source().unwrap())).join(" ");
        assert!(a.contains("-use_wallclock_as_timestamps 1 -i http://cam/mjpg"), "{a}");
    }
}
