//! `facewatch config check`: what `serve` would need, checked before it is started (by an
//! installer, an admin after editing the file, or `ExecStartPre`): the settings load and
//! validate, the models are there with the manifest's hashes, ONNX Runtime's library is found,
//! the data folder is writable, and ffmpeg runs when cameras are configured.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use clap::Subcommand;

use facewatch::config::ServiceConfig;
use facewatch::manifest::{Manifest, verify_file};

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Check the settings and what they point at; prints one line per check, exits 1 if any failed.
    Check,
}

pub fn run(s: &ServiceConfig, action: ConfigAction) -> anyhow::Result<ExitCode> {
    match action {
        ConfigAction::Check => {
            // Reaching here means the file and variables loaded and validated.
            let mut failed = 0;
            let mut report = |what: &str, r: Result<String, String>| match r {
                Ok(detail) => println!("ok    {what}: {detail}"),
                Err(why) => {
                    failed += 1;
                    println!("FAIL  {what}: {why}");
                }
            };
            report("settings", Ok(format!("bind {}, site {}", s.service.bind, s.service.site)));
            report("models", models(&s.models_dir(), s.models.verify));
            report("onnx runtime", onnx_runtime());
            report("data folder", writable(&s.service.data_dir));
            report("encryption", encryption(s));
            if !s.cameras.is_empty() {
                report("ffmpeg", ffmpeg(&s.ingest.ffmpeg, s.cameras.len()));
            }
            if failed > 0 {
                println!("{failed} check(s) failed");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn models(dir: &Path, verify: bool) -> Result<String, String> {
    let m = Manifest::load(dir).map_err(|e| e.to_string())?;
    for (path, sha) in [(m.detector_path(), &m.detector.sha256), (m.embedder_path(), &m.embedder.sha256)] {
        if verify {
            verify_file(&path, sha).map_err(|e| e.to_string())?;
        } else if !path.is_file() {
            return Err(format!("{} is missing", path.display()));
        }
    }
    Ok(format!("{} ({})", dir.display(), if verify { "sha256 verified" } else { "present, not verified" }))
}

fn onnx_runtime() -> Result<String, String> {
    let lib = facewatch::vision::runtime::locate_library()
        .ok_or("not found: set ORT_DYLIB_PATH or run scripts/setup.sh".to_string())?;
    // Loading it proves more than its presence: a wrong architecture or ABI fails here.
    facewatch::vision::runtime::environment().map_err(|e| e.to_string())?;
    Ok(lib.display().to_string())
}

/// Writable as the service will use it: created if missing (as `serve` does), then a file made
/// and removed in it.
fn writable(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let probe = dir.join(format!(".config-check-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir.display().to_string())
}

/// The key file opens the data folder's data key (made now on an empty folder, as `serve` would).
fn encryption(s: &ServiceConfig) -> Result<String, String> {
    match facewatch::vault::unlock(&s.encryption, &s.service.data_dir) {
        Ok(Some(_)) => Ok(format!("data folder encrypted, key file {}", s.encryption.key_file.display())),
        Ok(None) => Ok("off ([encryption] key_file not set): the data folder is not encrypted".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn ffmpeg(bin: &str, cameras: usize) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("-version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{bin}: {e} (install Debian's ffmpeg, or set [ingest] ffmpeg)"))?;
    if !out.status.success() {
        return Err(format!("{bin} -version exited with {}", out.status));
    }
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    Ok(format!("{first} ({cameras} camera(s))"))
}
