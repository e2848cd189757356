//! The `facewatch` command line: parses, loads the one configuration and dispatches to the
//! command families in `cli/`. Errors end in one line on stderr and a non-zero status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    facewatch::logging::init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Needs no settings: the document is the same for every configuration.
    if let Command::Openapi = cli.command {
        return Ok(openapi());
    }
    let s = &cli.settings.load(cli.config.as_deref(), std::env::vars())?;
    // Commands that open the data folder learn its key first (`serve` does so in App::open).
    if matches!(
        cli.command,
        Command::Token { .. }
            | Command::Audit { .. }
            | Command::Enroll { .. }
            | Command::Import { .. }
            | Command::Identify { .. }
            | Command::Lists { .. }
            | Command::Remove { .. }
            | Command::Threshold { .. }
    ) {
        facewatch::vault::unlock(&s.encryption, &s.service.data_dir)?;
    }
    match cli.command {
        Command::Serve => cli::serve::run(s.clone()),
        Command::Token { action } => cli::token::run(s, action),
        Command::Config { action } => cli::config::run(s, action),
        Command::Key { action } => cli::key::run(s, action),
        Command::Audit { action } => cli::audit::run(s, action),
        Command::Events { action } => cli::events::run(action),
        Command::Enroll { list, subject, name, threshold, images } => {
            cli::watchlist::enroll(s, &list, &subject, name.as_deref(), threshold, &images)
        }
        Command::Import { list, threshold, dir } => cli::watchlist::import(s, &list, threshold, &dir),
        Command::Identify { json, top, images } => cli::probe::identify(s, json, top, &images),
        Command::Embed { json: _, images } => cli::probe::embed(s, &images),
        Command::Openapi => Ok(openapi()),
        Command::Lists { json } => cli::watchlist::lists(s, json),
        Command::Remove { list, subject } => cli::watchlist::remove(s, &list, &subject),
        Command::Threshold { list, value } => cli::watchlist::threshold(s, &list, value),
        Command::Eval { action: Some(action), .. } => cli::eval::action(s, action),
        Command::Eval { action: None, faces: Some(faces), workers, target_fpir, out } => {
            let folder = cli::eval::FolderEval { faces, workers, target_fpir, out };
            cli::eval::run(s, cli.settings.threads.is_some(), &folder)
        }
        Command::Eval { action: None, faces: None, .. } => {
            anyhow::bail!("eval: give a faces folder, `eval clip` to make a clip, or `eval video` to run one")
        }
    }
}

/// `facewatch openapi`: the API's document, for clients and for review.
fn openapi() -> ExitCode {
    println!("{}", facewatch::api::openapi_json());
    ExitCode::SUCCESS
}
