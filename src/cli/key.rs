//! `facewatch key create | rotate`: the key that seals the data folder's data key
//! (`[encryption] key_file`, see `facewatch::vault`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use facewatch::config::ServiceConfig;

#[derive(Subcommand)]
pub enum KeyAction {
    /// Write a new random key file (mode 0600); never overwrites one.
    Create { path: PathBuf },
    /// Seal the data key under a new key and replace the key file with it; allowed while the
    /// service runs. The old key file opens nothing afterwards.
    Rotate,
}

pub fn run(s: &ServiceConfig, action: KeyAction) -> anyhow::Result<ExitCode> {
    match action {
        KeyAction::Create { path } => {
            facewatch::vault::create_key_file(&path)?;
            println!("key file {} created; set [encryption] key_file to it", path.display());
        }
        KeyAction::Rotate => {
            facewatch::vault::rotate(&s.encryption, &s.service.data_dir)?;
            println!(
                "data key of {} sealed under a new key in {}",
                s.service.data_dir.display(),
                s.encryption.key_file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
