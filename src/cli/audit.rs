//! `facewatch audit verify | show`: the hash-chained audit log, read-only.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use facewatch::access::Tokens;
use facewatch::audit;
use facewatch::config::ServiceConfig;

#[derive(Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain; exit status 1 if it is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print entries as JSON lines.
    Show {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub fn run(s: &ServiceConfig, action: AuditAction) -> anyhow::Result<ExitCode> {
    let db = s.service.data_dir.join("facewatch.db");
    if !db.exists() {
        bail!("no store at {} (set --data-dir)", db.display());
    }
    let tokens = Tokens::open(&db)?;
    match action {
        AuditAction::Verify { json } => {
            let v = audit::verify(tokens.conn())?;
            if json {
                println!("{}", serde_json::to_string(&v)?);
            } else if v.ok {
                println!("audit chain intact: {} entries", v.entries);
            } else {
                println!(
                    "audit chain BROKEN at entry {}: {}",
                    v.first_bad_seq.unwrap_or_default(),
                    v.problem.as_deref().unwrap_or("")
                );
            }
            Ok(if v.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        AuditAction::Show { after, limit } => {
            let mut out = std::io::stdout().lock();
            for e in audit::entries(tokens.conn(), after, limit)? {
                writeln!(out, "{}", serde_json::to_string(&e)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
