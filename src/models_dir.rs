//! Where the models are: the folder configured (`--models-dir`, `FACEWATCH_MODELS__DIR`,
//! `[models] dir`), else `./models`, else next to the executable: `<exe dir>/models`, then
//! `<exe dir>/../share/facewatch/models` (an installed `bin/` + `share/` layout). Never the
//! build tree: an installed binary must not depend on where it was built.

use std::path::{Path, PathBuf};

/// The folder to load models from. With none found, `./models`, so that loading the manifest
/// fails naming it (and [`defaults`]).
pub fn resolve(given: Option<&Path>) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    resolve_from(given, &cwd, std::env::current_exe().ok().as_deref())
}

/// The places tried, in order, when no folder is configured.
pub fn defaults() -> Vec<PathBuf> {
    candidates(&std::env::current_dir().unwrap_or_default(), std::env::current_exe().ok().as_deref())
}

fn candidates(cwd: &Path, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut v = vec![cwd.join("models")];
    if let Some(bin) = exe.and_then(Path::parent) {
        v.push(bin.join("models"));
        if let Some(prefix) = bin.parent() {
            v.push(prefix.join("share/facewatch/models"));
        }
    }
    v
}

fn resolve_from(given: Option<&Path>, cwd: &Path, exe: Option<&Path>) -> PathBuf {
    if let Some(d) = given {
        return d.to_path_buf();
    }
    let tried = candidates(cwd, exe);
    tried.iter().find(|d| d.join("manifest.toml").is_file()).unwrap_or(&tried[0]).clone()
}

/// The error's text for a folder without `manifest.toml`: where it looked, and how to say.
pub fn not_found(dir: &Path) -> String {
    let tried: Vec<String> = defaults().iter().map(|d| d.display().to_string()).collect();
    format!(
        "no manifest.toml in {}; without --models-dir, FACEWATCH_MODELS__DIR or [models] dir the folders tried \
         are {} (run scripts/setup.sh, see models/README.md)",
        dir.display(),
        tried.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_then_working_dir_then_next_to_the_executable() {
        let root = tempfile::tempdir().unwrap();
        let (cwd, prefix) = (root.path().join("work"), root.path().join("opt"));
        let exe = prefix.join("bin/facewatch");
        let with_manifest = |d: &Path| {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("manifest.toml"), "").unwrap();
        };
        std::fs::create_dir_all(&cwd).unwrap();
        // Nothing anywhere: ./models, for the manifest's error to name. Never the build tree.
        let none = resolve_from(None, &cwd, Some(&exe));
        assert_eq!(none, cwd.join("models"));
        assert!(!none.starts_with(env!("CARGO_MANIFEST_DIR")));
        with_manifest(&prefix.join("share/facewatch/models"));
        assert_eq!(resolve_from(None, &cwd, Some(&exe)), prefix.join("share/facewatch/models"));
        with_manifest(&prefix.join("bin/models"));
        assert_eq!(resolve_from(None, &cwd, Some(&exe)), prefix.join("bin/models"));
        with_manifest(&cwd.join("models"));
        assert_eq!(resolve_from(None, &cwd, Some(&exe)), cwd.join("models"));
        let given = root.path().join("elsewhere");
        assert_eq!(resolve_from(Some(&given), &cwd, Some(&exe)), given, "the configured folder, found or not");
    }
}
