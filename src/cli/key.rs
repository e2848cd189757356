//! `facewatch key create | rotate [--data-key]`: the key that seals the data folder's data key
//! (`[encryption] key_file`), and the data key itself (see `facewatch::vault`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;

use facewatch::config::ServiceConfig;

#[derive(Subcommand)]
pub enum KeyAction {
    /// Write a new random key file (mode 0600); never overwrites one.
    Create { path: PathBuf },
    /// Seal the data key under a new key and replace the key file with it; allowed while the
    /// service runs. The old key file opens nothing afterwards.
    Rotate {
        /// Also replace the data key itself: the store is re-keyed and every encrypted file
        /// re-encrypted, so that no old copy of the key file and `data.key.sealed` opens the data
        /// any more. Only with the service stopped; an interrupted run is finished by the next
        /// one or by the service's start.
        #[arg(long)]
        data_key: bool,
    },
}

pub fn run(s: &ServiceConfig, action: KeyAction) -> anyhow::Result<ExitCode> {
    let data_dir = &s.service.data_dir;
    match action {
        KeyAction::Create { path } => {
            facewatch::vault::create_key_file(&path)?;
            println!("key file {} created; set [encryption] key_file to it", path.display());
        }
        KeyAction::Rotate { data_key: false } => {
            facewatch::vault::rotate(&s.encryption, data_dir)?;
            println!(
                "data key of {} sealed under a new key in {}",
                data_dir.display(),
                s.encryption.key_file.display()
            );
        }
        KeyAction::Rotate { data_key: true } => {
            let t = Instant::now();
            let r = facewatch::vault::rotate_data_key(&s.encryption, data_dir)?;
            println!(
                "data key of {} replaced{} in {:.1} s: store {}, {} file(s) re-encrypted ({:.1} MB){}{}{}; sealed under a \
                 new key in {}",
                data_dir.display(),
                if r.resumed { " (an interrupted rotation finished)" } else { "" },
                t.elapsed().as_secs_f64(),
                if r.store { "re-keyed" } else { "already re-keyed or absent" },
                r.files,
                r.bytes as f64 / 1e6,
                if r.already > 0 { format!(", {} already were", r.already) } else { String::new() },
                if r.leftovers > 0 {
                    format!(", {} leftover(s) of interrupted writes deleted", r.leftovers)
                } else {
                    String::new()
                },
                if r.unreadable > 0 {
                    format!(", {} file(s) neither key opens left as they were", r.unreadable)
                } else {
                    String::new()
                },
                s.encryption.key_file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
