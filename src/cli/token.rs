//! `facewatch token create | list | revoke`: API tokens in the store (allowed beside a running
//! service, which reloads its token cache from the store).

use std::process::ExitCode;

use clap::Subcommand;

use facewatch::access::{Role, Tokens};
use facewatch::audit::Actor;
use facewatch::config::ServiceConfig;

#[derive(Subcommand)]
pub enum TokenAction {
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        role: String,
        /// Who or what holds the token (an officer's name, a camera id).
        #[arg(long)]
        name: String,
        /// The unique id of the person or device (e.g. a staff number) when they already hold a
        /// token; omitted = a new principal. Two-officer rules compare principals, not names.
        #[arg(long)]
        principal: Option<String>,
        /// A camera id this (camera) token may post frames as; repeat for more. Required for
        /// role camera, refused for the others.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub fn run(s: &ServiceConfig, action: TokenAction) -> anyhow::Result<ExitCode> {
    let mut tokens = Tokens::open(&s.service.data_dir.join("facewatch.db"))?;
    match action {
        TokenAction::Create { role, name, principal, cameras, json } => {
            let role: Role = role.parse()?;
            let t = tokens.create(&name, role, principal.as_deref(), &cameras, &Actor::local())?;
            if json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                println!("{}", t.token);
                eprintln!(
                    "token {} for {} ({}, principal {}): shown once, store it now",
                    t.id, t.name, t.role, t.principal
                );
            }
        }
        TokenAction::List => {
            for t in tokens.list()? {
                let state = if t.revoked { "revoked" } else { "active" };
                let cameras = if t.cameras.is_empty() { String::new() } else { format!(" [{}]", t.cameras.join(", ")) };
                println!("{:>4} {:<8} {:<8} {:<38} {}{cameras}", t.id, t.role.as_str(), state, t.principal, t.name);
            }
        }
        TokenAction::Revoke { id } => {
            tokens.revoke(id, &Actor::local())?;
            println!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
