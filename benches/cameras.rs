//! Pulled cameras in the real service: N cameras, each replaying a generated arrival-hall clip
//! at its own speed (5 fps, like a live camera: frames the engine cannot take are dropped, oldest
//! first), tracked and decided per pass. For each resolution and camera count: frames in and
//! out, dropped, and frame read -> decided latency (queue wait included; (p50 / p99 from the service's
//! `facewatch_stage_seconds{stage="camera"}` histogram)). A level holds when nothing is dropped
//! and p99 stays under 1 s. `cargo bench --bench cameras`; under `cargo test` one camera for a
//! few seconds.
//!
//! The 720p clip has about 3 people in view, the 1080p one is a busy hall (`crowd` 16: 10+ faces
//! in view most of the time). Flags: `--sizes 720,1080`, `--counts 1,2,3,4`, `--secs 20`, and
//! `--detect-max-side 0,1280` to run each level once per `[tracking] detect_max_side` (0 = the
//! full frame), alternating, so before and after come from the same minutes.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facewatch::eval::clip::{self, ClipOptions};

const BIN: &str = env!("CARGO_BIN_EXE_facewatch");

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn run(args: &[String]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run facewatch");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env("FACEWATCH_SERVICE__BIND", "127.0.0.1:0")
            .env("FACEWATCH_MODELS__DIR", models())
            .env_remove("FACEWATCH_SERVICE__DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start facewatch serve");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        use std::io::BufRead as _;
        while out.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening on") {
            line.clear();
        }
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(url.starts_with("http://"), "service did not start");
        Self { child, url }
    }

    fn get(&self, path: &str, token: &str) -> String {
        ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .map(|r| r.into_string().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// The `q` quantile (seconds) of a Prometheus histogram in `text`, from its cumulative buckets.
fn quantile(text: &str, series: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("facewatch_stage_seconds_bucket") && l.contains(series))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets.iter().find(|(_, n)| *n >= q * total).map(|(le, _)| *le)
}

struct Level {
    side: Option<u32>,
    width: u32,
    cameras: usize,
    fps_in: f64,
    fps_out: f64,
    dropped: u64,
    p50: Option<f64>,
    p99: Option<f64>,
    /// The service's own CPU time (ffmpeg not included) per frame out, in ms: what a frame
    /// costs, and so how many frames 2 cores can take, however busy the machine is otherwise.
    cpu_ms: f64,
    /// Mean detector and embedder call (ms) and embeddings per frame, over the whole run.
    detect_ms: f64,
    embed_ms: f64,
    embedded: f64,
}

/// The process's user + system CPU seconds (`/proc/PID/stat`, clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // After the name: state (not a number, skipped), then fields 4.. ; utime and stime are 14 and 15.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

/// Sum and count of a series in the metrics text.
fn sum_count(text: &str, name: &str, series: &str) -> (f64, f64) {
    let get = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}")) && l.contains(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    (get("sum"), get("count"))
}

#[allow(clippy::too_many_arguments)]
fn level(
    dir: &Path,
    video: &Path,
    width: u32,
    cameras: usize,
    side: Option<u32>,
    secs: u64,
    ops: &str,
    data: &Path,
) -> Level {
    let mut cfg = format!("[service]\ndata_dir = {:?}\n", data.display().to_string());
    if let Some(side) = side {
        cfg += &format!("\n[tracking]\ndetect_max_side = {side}\n");
    }
    for i in 0..cameras {
        cfg += &format!(
            "\n[[cameras]]\nid = \"cam-{i}\"\nurl = {:?}\nfps = 5\nmax_width = {width}\nloop = true\n",
            video.display().to_string()
        );
    }
    let config = dir.join(format!("cameras-{width}-{cameras}.toml"));
    std::fs::write(&config, cfg).unwrap();
    let s = Service::start(&config);
    // Warm up (ffmpeg starts, the first frames), then measure from a clean histogram: the
    // service's counters run from its start, so the measured window is the difference.
    std::thread::sleep(Duration::from_secs(3));
    let before: serde_json::Value = serde_json::from_str(&s.get("/v1/cameras", ops)).unwrap_or_default();
    let (t, cpu) = (Instant::now(), cpu_seconds(s.child.id()));
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = cpu_seconds(s.child.id()) - cpu;
    let after: serde_json::Value = serde_json::from_str(&s.get("/v1/cameras", ops)).unwrap_or_default();
    let metrics = s.get("/metrics", ops);
    let elapsed = t.elapsed().as_secs_f64();
    let sum = |v: &serde_json::Value, k: &str| -> f64 {
        v["cameras"].as_array().map(|a| a.iter().map(|c| c[k].as_f64().unwrap_or(0.0)).sum()).unwrap_or(0.0)
    };
    let read = sum(&after, "frames_read") - sum(&before, "frames_read");
    let out = sum(&after, "frames_out") - sum(&before, "frames_out");
    let (ds, dn) = sum_count(&metrics, "facewatch_stage_seconds", "stage=\"detect\"");
    let (es, en) = sum_count(&metrics, "facewatch_stage_seconds", "stage=\"embed\"");
    let faces = metrics
        .lines()
        .find(|l| l.starts_with("facewatch_embed_faces_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    Level {
        cpu_ms: cpu * 1e3 / out.max(1.0),
        detect_ms: ds * 1e3 / dn.max(1.0),
        embed_ms: es * 1e3 / en.max(1.0),
        embedded: faces / dn.max(1.0),
        side,
        width,
        cameras,
        fps_in: read / elapsed,
        fps_out: out / elapsed,
        dropped: (sum(&after, "frames_dropped")) as u64,
        p50: quantile(&metrics, "stage=\"camera\"", 0.5),
        p99: quantile(&metrics, "stage=\"camera\"", 0.99),
    }
}

/// The values of `--name a,b,c`, if given.
fn list_flag<T: std::str::FromStr>(args: &[String], name: &str) -> Option<Vec<T>> {
    let v = args.windows(2).find(|w| w[0] == name)?;
    Some(v[1].split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

/// Mean faces in view per frame (at least half visible), and the share of frames with 10 or more.
fn in_view(truth: &[clip::TruthFrame]) -> (f64, f64) {
    let counts: Vec<usize> = truth.iter().map(|t| t.people.iter().filter(|p| p.visible >= 0.5).count()).collect();
    let n = counts.len().max(1) as f64;
    (counts.iter().sum::<usize>() as f64 / n, counts.iter().filter(|&&c| c >= 10).count() as f64 / n)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = support::data();
    let ops = run(&[
        "--data-dir".into(),
        data.display().to_string(),
        "token".into(),
        "create".into(),
        "--role".into(),
        "ops".into(),
        "--name".into(),
        "bench".into(),
    ]);
    let heights: Vec<u32> = list_flag(&args, "--sizes").unwrap_or(if full { vec![720, 1080] } else { vec![360] });
    let sides: Vec<Option<u32>> =
        list_flag(&args, "--detect-max-side").map(|v| v.into_iter().map(Some).collect()).unwrap_or(vec![None]);
    let secs: u64 = list_flag(&args, "--secs").and_then(|v| v.first().copied()).unwrap_or(if full { 20 } else { 3 });
    println!("pulled cameras, each looping a generated arrival-hall clip at 5 fps;");
    println!(
        "frame read from ffmpeg -> faces tracked and decided (queue wait included); a level holds with no frame dropped and p99 < 1 s"
    );
    println!(
        "| frame | faces in view | detect_max_side | cameras | fps in | fps out | dropped | p50 | p99 | CPU ms/frame | detect ms | embed ms/call | embedded/frame |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let fmt = |v: Option<f64>| {
        v.map(|s| if s.is_infinite() { "> 4 s".into() } else { format!("<= {:.0} ms", s * 1e3) }).unwrap_or("-".into())
    };
    for h in heights {
        let w = h / 9 * 16;
        let clip_dir = dir.path().join(format!("clip-{w}"));
        // 1080p is the busy hall: 10+ faces in view; the smaller sizes keep the quieter clip.
        let opts = if h >= 1080 {
            ClipOptions {
                passes: 72,
                enrolled: 8,
                width: w,
                height: h,
                fps: 5,
                crowd: 16.0,
                ..ClipOptions::new(7, &data_dir)
            }
        } else {
            ClipOptions { passes: 10, enrolled: 3, width: w, height: h, fps: 5, ..ClipOptions::new(7, &data_dir) }
        };
        let c = clip::Clip::plan(&opts).expect("plan a clip");
        c.write(&clip_dir).expect("generate a clip (ffmpeg)");
        let (mean, busy) = in_view(&c.truth);
        let m = c.manifest;
        eprintln!(
            "clip {w}x{h}: {} frames, {mean:.1} faces in view on average, {:.0} % of frames with 10+",
            m.frames,
            busy * 100.0
        );
        // Its enrolled people on the list, so passes raise alerts as they would in service.
        for e in &m.enroll {
            let mut args: Vec<String> = vec![
                "--data-dir".into(),
                data.display().to_string(),
                "--models-dir".into(),
                models().display().to_string(),
                "enroll".into(),
                "--list".into(),
                "wanted".into(),
                "--subject".into(),
                e.subject.clone(),
            ];
            args.extend(e.photos.iter().map(|p| m.faces_dir.join(p).display().to_string()));
            run(&args);
        }
        let video = clip_dir.join(&m.video);
        let counts: Vec<usize> = list_flag(&args, "--counts").unwrap_or(if full { (1..=6).collect() } else { vec![1] });
        for n in counts {
            let mut any_holds = false;
            for &side in &sides {
                let l = level(dir.path(), &video, w, n, side, secs, &ops, &data);
                println!(
                    "| {}x{} | {mean:.1} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.2} |",
                    l.width,
                    h,
                    l.side.map(|s| s.to_string()).unwrap_or("default".into()),
                    l.cameras,
                    l.fps_in,
                    l.fps_out,
                    l.dropped,
                    fmt(l.p50),
                    fmt(l.p99),
                    l.cpu_ms,
                    l.detect_ms,
                    l.embed_ms,
                    l.embedded
                );
                if !full {
                    assert!(l.fps_out > 0.0, "frames reached the engine");
                }
                any_holds |= l.dropped == 0 && l.p99.is_some_and(|p| p < 1.0);
            }
            if full && !any_holds {
                break;
            }
        }
    }
}
